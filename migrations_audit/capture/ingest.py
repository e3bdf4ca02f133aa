"""Bulk ingestion: NDJSON lines (the ingest API), and reading HAR 1.2 entries (capture/har.py imports
the files).

The NDJSON line schema is documented in migrations_audit/capture/README.md. A bad line or entry is
rejected with its number and reason and never stops the good ones; each batch is stored in one
transaction, so nothing is ever half-written. A line or entry larger than MIGRATION_AUDIT_MAX_BODY_BYTES
or nested deeper than MIGRATION_AUDIT_MAX_JSON_DEPTH is rejected alone, before it takes much memory.
"""

import base64
import binascii
import gc
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import ijson
from django.conf import settings

from migrations_audit.json_depth import json_nests_deeper, json_text_may_nest_deeper, max_json_depth
from migrations_audit.models import Upstream

from .recording import CapturedExchange, is_event_stream
from .services import DATABASE_OUTAGE_ERRORS, exchanges_record

# Each batch is stored in one transaction with a handful of queries, so larger batches cost less
# per exchange; the byte limit keeps a batch of large bodies from taking too much memory.
NDJSON_BATCH_LINES = 5000
NDJSON_BATCH_BYTES = 16 * 1024 * 1024
MAX_REJECTIONS_LISTED = 1000
# json.dumps(value, ensure_ascii=False), without building an encoder for every body.
JSON_TEXT = json.JSONEncoder(ensure_ascii=False)
# What reading a line or entry of unexpected shape may raise: the line or entry is rejected with it.
SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError)
# The rest of a line too long to keep is read and dropped this many bytes at a time.
SKIP_CHUNK_BYTES = 1024 * 1024


class IngestError(ValueError):
    """A line or entry that cannot be turned into an exchange; the message says why."""


@dataclass
class IngestSummary:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    rejections: list[dict] = field(default_factory=list)

    def reject(self, number: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REJECTIONS_LISTED:
            self.rejections.append({"line": number, "reason": reason})

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejections": self.rejections,
        }


def ndjson_lines(stream, *, max_line_bytes: int | None = None) -> Iterator[bytes | None]:
    """The lines of a binary stream, none held longer than `max_line_bytes` (the proxy's body limit):
    a longer line is read past in chunks and given as None, to be rejected alone."""
    limit = max_line_bytes or settings.MIGRATION_AUDIT_MAX_BODY_BYTES
    while raw := stream.readline(limit + 1):
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := stream.readline(SKIP_CHUNK_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


def ndjson_ingest(*, upstream: Upstream, lines: Iterable[bytes | None]) -> IngestSummary:
    """Store the good lines of an NDJSON upload, rejecting each bad one (None: a line too long to read)."""
    summary = IngestSummary()
    numbered = enumerate(lines, start=1)
    more = True
    while more:
        with garbage_collection_paused():
            batch, more = _ndjson_batch(numbered, summary)
            batch_store(upstream, batch, summary, source="ingest")
    return summary


def _ndjson_batch(numbered, summary: IngestSummary) -> tuple[list[tuple[int, CapturedExchange]], bool]:
    """The next batch of good lines (with their numbers), the bad ones rejected on the way; and whether
    lines remain."""
    batch: list[tuple[int, CapturedExchange]] = []
    batch_bytes = 0
    for number, raw in numbered:
        if raw is None:
            limit = settings.MIGRATION_AUDIT_MAX_BODY_BYTES
            summary.reject(number, f"the line is longer than {limit} bytes (MIGRATION_AUDIT_MAX_BODY_BYTES)")
            continue
        if not raw.strip():
            continue
        try:
            captured = captured_from_line(raw)
        except IngestError as error:
            summary.reject(number, str(error))
            continue
        # The line is the exchange's idempotency key: the same line sent again is stored once.
        captured.capture_key = hashlib.sha256(raw.strip()).hexdigest()
        batch.append((number, captured))
        batch_bytes += len(raw)
        if len(batch) >= NDJSON_BATCH_LINES or batch_bytes >= NDJSON_BATCH_BYTES:
            return batch, True
    return batch, False


_pause_lock = threading.Lock()
_pauses = 0
_collection_was_enabled = False


@contextmanager
def garbage_collection_paused():
    """CPython's automatic garbage collection paused while one batch is parsed and stored.

    A batch keeps tens of thousands of new objects alive at once; each time enough have survived,
    CPython runs a full collection that walks every object of the process, about a tenth of the time
    of an ingest. The batch makes no reference cycles that only the collector could free, and the
    pause lasts one batch, not a whole upload, since it holds for every thread of the process.
    Collection resumes when the last of the batches paused at the same time is stored.
    """
    global _pauses, _collection_was_enabled
    with _pause_lock:
        if _pauses == 0:
            _collection_was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _collection_was_enabled:
                gc.enable()


def batch_store(upstream, batch: list[tuple[int, CapturedExchange]], summary: IngestSummary, *, source: str):
    """Store a batch in one transaction; if one of its exchanges cannot be stored (other than the
    database being away), store them one by one, and reject the ones that fail with their reason."""
    if not batch:
        return
    try:
        results = [_record(upstream, [captured for _, captured in batch], source)]
    except DATABASE_OUTAGE_ERRORS:
        raise
    except Exception:
        results = []
        for number, captured in batch:
            try:
                results.append(_record(upstream, [captured], source))
            except DATABASE_OUTAGE_ERRORS:
                raise
            except Exception as error:
                summary.reject(number, f"could not be stored ({type(error).__name__})")
    for result in results:
        summary.accepted += result.stored
        summary.duplicates += result.duplicates


def _record(upstream, captured: list[CapturedExchange], source: str):
    return exchanges_record(upstream=upstream, captured=captured, source=source, dedupe=True)


def captured_from_line(raw: bytes) -> CapturedExchange:
    """One NDJSON line as a captured exchange, or IngestError saying why it cannot be one."""
    try:
        line = json.loads(raw)
    except RecursionError:
        raise IngestError(f"nested deeper than {max_json_depth()} levels") from None
    except ValueError as error:
        raise IngestError(f"not valid JSON: {error}") from None
    if not isinstance(line, dict):
        raise IngestError("each line must be a JSON object")
    limit = max_json_depth()
    if json_text_may_nest_deeper(raw, limit) and json_nests_deeper(line, limit):
        raise IngestError(f"nested deeper than {limit} levels (MIGRATION_AUDIT_MAX_JSON_DEPTH)")
    try:
        return _captured_from_line(line)
    except IngestError:
        raise
    except SHAPE_ERRORS as error:  # a shape no check above foresaw: this line only
        raise IngestError(f"the line cannot be read ({type(error).__name__})") from None


def _captured_from_line(line: dict) -> CapturedExchange:
    method = _text(line, "method", required=True).upper()
    path = _text(line, "path", required=True)
    if not path.startswith("/"):
        raise IngestError("path must start with '/'")
    status = line.get("status")
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599
    ):
        raise IngestError("status must be an HTTP status code (100-599) or null")
    streamed = line.get("streamed", False)
    if not isinstance(streamed, bool):
        raise IngestError("streamed must be true or false")
    return CapturedExchange(
        method=method,
        path=path,
        query=_text(line, "query"),
        request_headers=_headers(line, "request_headers"),
        request_body=_body(line, "request_body"),
        started_at=_timestamp(line.get("started_at")),
        status=status,
        response_headers=_headers(line, "response_headers"),
        response_body=_body(line, "response_body"),
        streamed=streamed,
        duration_ms=_number(line, "duration_ms"),
        error=_text(line, "error"),
    )


def _text(line: dict, name: str, *, required: bool = False) -> str:
    value = line.get(name)
    if value is None:
        if required:
            raise IngestError(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise IngestError(f"{name} must be a string")
    return value


def _headers(line: dict, name: str) -> dict[str, str]:
    value = line.get(name) or {}
    if isinstance(value, list):  # HAR style: [{"name": ..., "value": ...}]
        try:
            value = {item["name"]: item["value"] for item in value}
        except (TypeError, KeyError):
            raise IngestError(f"{name} must be an object or a list of {{name, value}}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise IngestError(f"{name} must be an object of strings")
    return {str(key).lower(): item for key, item in value.items()}


def _body(line: dict, name: str) -> bytes:
    value = line.get(name)
    encoding = line.get(f"{name}_encoding")
    if value is None:
        return b""
    if isinstance(value, str):
        if encoding == "base64":
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise IngestError(f"{name} is not valid base64") from None
        return value.encode("utf-8", errors="replace")
    return JSON_TEXT.encode(value).encode()


def _number(line: dict, name: str) -> float | None:
    value = line.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise IngestError(f"{name} must be a non-negative number")
    return float(value)


def _timestamp(value) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, str):
        raise IngestError("started_at must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(f"started_at is not an ISO 8601 time: {value[:100]!r}") from None
    try:
        # In UTC, as it is stored: 0001-01-01T00:00:00+05:00 is before the first time there is.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:
        raise IngestError(f"started_at is out of range: {value[:100]!r}") from None


# --- HAR ------------------------------------------------------------------------------------------


def har_entries(
    stream, *, max_depth: int | None = None, max_bytes: int | None = None, found: dict | None = None
):
    """(number, entry) for each item of the HAR's `log.entries`, read as a stream; the entry is an
    IngestError when it nests deeper than `max_depth` or holds more than about `max_bytes`.
    `found["entries"]` is set once the `log.entries` list opens (a JSON file without it is no HAR).

    Built here from the parser's basic events rather than by ijson.items, whose memory grows with the
    square of the nesting depth (a 200 KB file of 100,000 nested arrays took 5 GB): what is not an
    entry is only counted through, and an entry past a limit is dropped as soon as it passes it.
    """
    max_depth = max_depth or max_json_depth()
    max_bytes = max_bytes or settings.MIGRATION_AUDIT_MAX_BODY_BYTES
    frames: list[list] = []  # the containers open around the entries: [kind, current key]
    ignored = 0  # depth inside a value that is not an entry
    builder: _EntryBuilder | None = None
    number = 0
    for event, value in ijson.basic_parse(stream, use_float=True):
        if builder is not None:
            if builder.feed(event, value):
                yield number, builder.outcome()
                builder = None
        elif ignored:
            ignored += _DEPTH_CHANGE.get(event, 0)
        elif event == "map_key":
            frames[-1][1] = value
        elif event in ("end_map", "end_array"):
            frames.pop()
        elif frames[:2] == ENTRIES_PATH and len(frames) == 3 and frames[2][0] == "array":
            number += 1
            builder = _EntryBuilder(max_depth=max_depth, max_bytes=max_bytes)
            if builder.feed(event, value):
                yield number, builder.outcome()
                builder = None
        elif event in ("start_map", "start_array"):
            if len(frames) < 3:
                frames.append(["map" if event == "start_map" else "array", None])
                if found is not None and frames[:2] == ENTRIES_PATH and len(frames) == 3:
                    found["entries"] = frames[2][0] == "array"
            else:
                ignored = 1


ENTRIES_PATH = [["map", "log"], ["map", "entries"]]
_DEPTH_CHANGE = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}


class _EntryBuilder:
    """One JSON value built from the parser's events, given up on (and its memory freed) once it nests
    past `max_depth` or grows past about `max_bytes`."""

    def __init__(self, *, max_depth: int, max_bytes: int):
        self.max_depth, self.max_bytes = max_depth, max_bytes
        self.open: list = []  # the containers being filled, outermost first
        self.keys: list = []  # the key awaiting a value in each open object
        self.depth = 0  # containers open, still counted once given up on
        self.size = 0
        self.value = None
        self.refusal: str | None = None

    def feed(self, event: str, value) -> bool:
        """Take one event; True once the value is complete."""
        change = _DEPTH_CHANGE.get(event, 0)
        self.depth += change
        if self.refusal is not None:
            return self.depth == 0
        if change > 0:
            if self.depth > self.max_depth:
                return self._refuse(
                    f"nested deeper than {self.max_depth} levels (MIGRATION_AUDIT_MAX_JSON_DEPTH)"
                )
            container = {} if event == "start_map" else []
            self._add(container)
            self.open.append(container)
            self.keys.append(None)
            self.size += 2
        elif change < 0:
            self.open.pop()
            self.keys.pop()
        elif event == "map_key":
            self.keys[-1] = value
            self.size += len(value) + 4
        else:
            self._add(value)
            self.size += len(value) + 2 if isinstance(value, str) else 8
        if self.size > self.max_bytes:
            return self._refuse(f"larger than {self.max_bytes} bytes (MIGRATION_AUDIT_MAX_BODY_BYTES)")
        return self.depth == 0

    def _add(self, item) -> None:
        if not self.open:
            self.value = item
        elif isinstance(self.open[-1], dict):
            self.open[-1][self.keys[-1]] = item
        else:
            self.open[-1].append(item)

    def _refuse(self, reason: str) -> bool:
        self.refusal = reason
        self.open, self.keys, self.value = [], [], None
        return self.depth == 0

    def outcome(self):
        return IngestError(f"entry {self.refusal}") if self.refusal else self.value


def stream_position(stream) -> int:
    try:
        return stream.tell()
    except (OSError, AttributeError):
        return 0


def captured_from_har_entry(entry, *, upstream_slug: str, base_path: str) -> CapturedExchange | None:
    """One HAR entry as a captured exchange; None for an entry that is not an API call (a page, an image)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise IngestError("entry has no request object")
    try:
        return _captured_from_har_entry(entry, upstream_slug=upstream_slug, base_path=base_path)
    except IngestError:
        raise
    except SHAPE_ERRORS as error:  # a shape no check foresaw: this entry only
        raise IngestError(f"entry cannot be read ({type(error).__name__})") from None


def _captured_from_har_entry(entry: dict, *, upstream_slug: str, base_path: str) -> CapturedExchange | None:
    request, response = entry["request"], _har_object(entry.get("response"), "response")
    url = request.get("url")
    method = request.get("method")
    if not isinstance(url, str) or not isinstance(method, str):
        raise IngestError("entry request needs a url and a method")
    parts = urlsplit(url)
    path = parts.path or "/"
    for prefix in (f"/proxy/{upstream_slug}", base_path):
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
    if not path.startswith("/v") and "/v1/" not in path:
        return None
    request_headers = _har_headers(request.get("headers"), "request headers")
    response_headers = _har_headers(response.get("headers"), "response headers")
    post = _har_object(request.get("postData"), "request postData")
    content = _har_object(response.get("content"), "response content")
    body = content.get("text") or ""
    if not isinstance(body, str):
        raise IngestError("response content text must be a string")
    if content.get("encoding") == "base64":
        try:
            response_body = base64.b64decode(body)
        except (binascii.Error, ValueError):
            raise IngestError("response content is not valid base64") from None
    else:
        response_body = body.encode("utf-8", errors="replace")
    mime = content.get("mimeType") or ""
    if mime and isinstance(mime, str) and "content-type" not in response_headers:
        response_headers["content-type"] = mime
    status = response.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        status = None
    duration = entry.get("time")
    post_text = post.get("text") or ""
    if not isinstance(post_text, str):
        raise IngestError("request postData text must be a string")
    return CapturedExchange(
        method=method.upper(),
        path=path,
        query=parts.query,
        request_headers=request_headers,
        request_body=post_text.encode("utf-8", errors="replace"),
        started_at=_timestamp(entry.get("startedDateTime")),
        status=status,
        response_headers=response_headers,
        response_body=response_body,
        streamed=is_event_stream(response_headers),
        duration_ms=float(duration) if isinstance(duration, int | float) and duration >= 0 else None,
        error="" if status else "no response recorded in the HAR entry",
    )


def _har_object(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngestError(f"{what} must be an object")
    return value


def _har_headers(value, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise IngestError(f"{what} must be a list of {{name, value}}")
    headers: dict[str, str] = {}
    for item in value:
        if (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("value"), str)
        ):
            name = item["name"].lower()
            if not name.startswith(":"):  # HTTP/2 pseudo-headers
                headers[name] = item["value"]
    return headers
