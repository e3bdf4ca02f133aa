"""Bulk ingestion: NDJSON lines (the ingest API) and HAR 1.2 files (upload and `import_har`).

The NDJSON line schema is documented in migrations_audit/capture/README.md. A bad line or entry is
rejected with its number and reason and never stops the good ones; each batch is stored in one
transaction, so nothing is ever half-written.
"""

import base64
import binascii
import gc
import json
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import ijson
from django.db import transaction

from migrations_audit.models import Upstream

from .recording import CapturedExchange, is_event_stream
from .services import exchanges_record

# Each batch is stored in one transaction with a handful of queries, so larger batches cost less
# per exchange; the byte limit keeps a batch of large bodies from taking too much memory.
NDJSON_BATCH_LINES = 5000
NDJSON_BATCH_BYTES = 16 * 1024 * 1024
# Smaller for HAR files: the import's progress is reported after each batch.
HAR_BATCH_SIZE = 500
MAX_REJECTIONS_LISTED = 1000
# json.dumps(value, ensure_ascii=False), without building an encoder for every body.
JSON_TEXT = json.JSONEncoder(ensure_ascii=False)


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


def ndjson_ingest(*, upstream: Upstream, lines: Iterable[bytes]) -> IngestSummary:
    summary = IngestSummary()
    numbered = enumerate(lines, start=1)
    more = True
    while more:
        with garbage_collection_paused():
            batch, more = _ndjson_batch(numbered, summary)
            _store(upstream, batch, summary, source="ingest")
    return summary


def _ndjson_batch(numbered, summary: IngestSummary) -> tuple[list[CapturedExchange], bool]:
    """The next batch of good lines, the bad ones rejected on the way; and whether lines remain."""
    batch: list[CapturedExchange] = []
    batch_bytes = 0
    for number, raw in numbered:
        if not raw.strip():
            continue
        try:
            batch.append(captured_from_line(raw))
        except IngestError as error:
            summary.reject(number, str(error))
            continue
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


def _store(upstream, batch, summary: IngestSummary, *, source: str) -> None:
    if not batch:
        return
    result = exchanges_record(upstream=upstream, captured=batch, source=source, dedupe=True)
    summary.accepted += result.stored
    summary.duplicates += result.duplicates


def captured_from_line(raw: bytes) -> CapturedExchange:
    try:
        line = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise IngestError(f"not valid JSON: {error}") from None
    if not isinstance(line, dict):
        raise IngestError("each line must be a JSON object")
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
        raise IngestError(f"started_at is not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- HAR ------------------------------------------------------------------------------------------


@dataclass
class HarProgress:
    bytes_done: int
    summary: IngestSummary


def har_import(
    *,
    upstream: Upstream,
    stream,
    on_progress: Callable[[HarProgress], None] | None = None,
) -> IngestSummary:
    """Import the entries of a HAR file read as a stream (a 200 MB file is never loaded whole).

    All or nothing: a truncated or malformed file raises IngestError and stores nothing, so a corrected
    file can be imported again (duplicates are counted, not stored twice).
    """
    summary = IngestSummary()
    prefix = urlsplit(upstream.base_url).path.rstrip("/")
    batch: list[CapturedExchange] = []
    try:
        with transaction.atomic():
            for number, entry in enumerate(ijson.items(stream, "log.entries.item", use_float=True), start=1):
                try:
                    captured = captured_from_har_entry(entry, upstream_slug=upstream.slug, base_path=prefix)
                except IngestError as error:
                    summary.reject(number, str(error))
                    continue
                if captured is None:
                    summary.skipped += 1
                    continue
                batch.append(captured)
                if len(batch) >= HAR_BATCH_SIZE:
                    _store(upstream, batch, summary, source="har")
                    batch = []
                    if on_progress:
                        on_progress(HarProgress(bytes_done=_position(stream), summary=summary))
            _store(upstream, batch, summary, source="har")
    except ijson.JSONError as error:
        raise IngestError(
            f"the HAR file is truncated or not valid JSON near byte {_position(stream)} ({error}); "
            "nothing was imported"
        ) from None
    if on_progress:
        on_progress(HarProgress(bytes_done=_position(stream), summary=summary))
    return summary


def _position(stream) -> int:
    try:
        return stream.tell()
    except (OSError, AttributeError):
        return 0


def captured_from_har_entry(entry, *, upstream_slug: str, base_path: str) -> CapturedExchange | None:
    """One HAR entry as a captured exchange; None for an entry that is not an API call (a page, an image)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise IngestError("entry has no request object")
    request, response = entry["request"], entry.get("response") or {}
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
    request_headers = _har_headers(request.get("headers"))
    response_headers = _har_headers(response.get("headers"))
    post = request.get("postData") or {}
    content = response.get("content") or {}
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
    if mime and "content-type" not in response_headers:
        response_headers["content-type"] = mime
    status = response.get("status")
    status = status if isinstance(status, int) and 100 <= status <= 599 else None
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


def _har_headers(value) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in value or []:
        if (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("value"), str)
        ):
            name = item["name"].lower()
            if not name.startswith(":"):  # HTTP/2 pseudo-headers
                headers[name] = item["value"]
    return headers
