"""Turning stored exchanges and results into what the pages show: pretty bodies with differences
marked in place, and stream timelines aligned across versions. Everything returned is escaped."""

import json
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from django.utils.html import escape

from migrations_audit.diff.json_diff import escape as pointer_escape
from migrations_audit.diff.streams import stream_profile
from migrations_audit.json_depth import json_nests_deeper, json_text_may_nest_deeper, max_json_depth

MAX_LINES = 3000
PREVIEW_BYTES = 256 * 1024  # a longer body shows its first part, its size and a download link


@dataclass
class BodyLine:
    indent: int
    html: str
    mark: str = ""  # "breaking", "additive", "noise" or ""


@dataclass
class BodyPart:
    """One part of a multipart body: its name, file name, type and size, and a short preview."""

    name: str
    filename: str
    content_type: str
    size: int
    preview: str
    binary: bool


@dataclass
class PreparedBody:
    kind: str  # "json", "text", "binary", "multipart", "empty"
    lines: list[BodyLine] = field(default_factory=list)
    text: str = ""
    truncated: bool = False
    size: int = 0  # of the whole body, set when only its first PREVIEW_BYTES are shown
    content_type: str = ""
    parts: list[BodyPart] = field(default_factory=list)


def body_prepare(body: bytes, *, marks: dict[str, str] | None = None, content_type: str = "") -> PreparedBody:
    """A body as indented JSON lines (with the given JSON pointers marked), as text, or, for bytes
    that are not text (a file, an image, a multipart upload), as its size, type and a hex preview:
    never the raw bytes."""
    raw = bytes(body or b"")
    if not raw:
        return PreparedBody(kind="empty")
    if content_type.lower().startswith("multipart/"):
        return _multipart(raw, content_type)
    if len(raw) > PREVIEW_BYTES:
        if _is_binary(raw):
            return PreparedBody(
                kind="binary", size=len(raw), content_type=content_type, text=hex_preview(raw)
            )
        # Laid out whole, a body of megabytes took seconds and buried the page: its head, as it came.
        head = raw[:PREVIEW_BYTES].decode("utf-8", errors="ignore")
        return PreparedBody(kind="text", text=head, truncated=True, size=len(raw))
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        if _is_binary(raw):
            return PreparedBody(
                kind="binary", size=len(raw), content_type=content_type, text=hex_preview(raw)
            )
        return _as_text(raw)
    limit = max_json_depth()
    if json_text_may_nest_deeper(raw, limit) and json_nests_deeper(value, limit):
        return _as_text(raw)  # laid out line by line recursively: past the depth, shown as it came
    lines: list[BodyLine] = []
    _json_lines(value, "", 0, marks or {}, lines, key=None, last=True)
    return PreparedBody(kind="json", lines=lines[:MAX_LINES], truncated=len(lines) > MAX_LINES)


HEX_PREVIEW_BYTES = 64
PART_TEXT_PREVIEW = 2000


def header_value(headers, name: str) -> str:
    """A header of stored headers (a dict in any case), or ''."""
    for key, value in (headers or {}).items():
        if str(key).lower() == name:
            return str(value)
    return ""


def hex_preview(raw: bytes) -> str:
    """The first bytes in hex, 16 a line, with their printable ASCII beside them."""
    lines = []
    for offset in range(0, min(len(raw), HEX_PREVIEW_BYTES), 16):
        chunk = raw[offset : offset + 16]
        ascii_text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<47}  {ascii_text}")
    if len(raw) > HEX_PREVIEW_BYTES:
        lines.append(f"… {len(raw) - HEX_PREVIEW_BYTES} more bytes")
    return "\n".join(lines)


def _is_binary(raw: bytes) -> bool:
    """Bytes that are not text: a NUL, or more than a few undecodable bytes in ten (text with a stray
    bad byte is still text, shown with a replacement character)."""
    sample = raw[:65536]
    if b"\x00" in sample:
        return True
    text = sample.decode("utf-8", errors="replace")
    return text.count("\ufffd") > max(4, len(text) // 10)


def _multipart(raw: bytes, content_type: str) -> PreparedBody:
    """The parts of a multipart body (boundary from its Content-Type), each summarised."""
    boundary = ""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return PreparedBody(kind="binary", size=len(raw), content_type=content_type, text=hex_preview(raw))
    parts = []
    for chunk in raw.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, payload = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        payload = payload.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        binary = _is_binary(payload)
        parts.append(
            BodyPart(
                name=_disposition_param(disposition, "name"),
                filename=_disposition_param(disposition, "filename"),
                content_type=headers.get("content-type", ""),
                size=len(payload),
                preview=hex_preview(payload)
                if binary
                else payload[:PART_TEXT_PREVIEW].decode("utf-8", errors="replace"),
                binary=binary,
            )
        )
    return PreparedBody(kind="multipart", size=len(raw), content_type=content_type.split(";")[0], parts=parts)


def _disposition_param(disposition: str, name: str) -> str:
    for param in disposition.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return ""


def _as_text(raw: bytes) -> PreparedBody:
    text = raw.decode("utf-8", errors="replace")
    return PreparedBody(kind="text", text=text[:200_000], truncated=len(text) > 200_000)


def _json_lines(value, pointer, depth, marks, out, *, key, last):
    if len(out) > MAX_LINES:
        return
    prefix = (
        f'<span class="k">{escape(json.dumps(key, ensure_ascii=False))}</span>: ' if key is not None else ""
    )
    comma = "" if last else ","
    mark = marks.get(pointer, "")
    if isinstance(value, dict) and value:
        out.append(BodyLine(depth, prefix + "{", mark))
        items = list(value.items())
        for index, (name, item) in enumerate(items):
            _json_lines(
                item,
                f"{pointer}/{pointer_escape(name)}",
                depth + 1,
                marks,
                out,
                key=name,
                last=index == len(items) - 1,
            )
        out.append(BodyLine(depth, "}" + comma, mark))
    elif isinstance(value, list) and value:
        out.append(BodyLine(depth, prefix + "[", mark))
        for index, item in enumerate(value):
            _json_lines(
                item, f"{pointer}/{index}", depth + 1, marks, out, key=None, last=index == len(value) - 1
            )
        out.append(BodyLine(depth, "]" + comma, mark))
    else:
        literal = escape(json.dumps(value, ensure_ascii=False))
        out.append(BodyLine(depth, f'{prefix}<span class="v">{literal}</span>{comma}', mark))


@dataclass
class StreamSummary:
    events: list[dict]
    framing: str
    done: bool
    text: str
    text_mode: str


def stream_summarise(events: list[dict]) -> StreamSummary:
    profile = stream_profile(events or [])
    modes = [mode for mode in profile.text_mode.values() if mode]
    return StreamSummary(
        events=events or [],
        framing=profile.framing,
        done=profile.done,
        text=profile.text or "",
        text_mode=modes[0] if modes else "no text",
    )


def timeline_align(columns: list[list[dict]]) -> list[list[dict | None]]:
    """Rows of events, one cell per column, aligned on the sequence of event names (the first column
    is the reference): a row where one version sent an event the other did not has an empty cell."""
    if not columns:
        return []
    rows: list[list[dict | None]] = [[event] for event in columns[0]]
    names = [_event_name(event) for event in columns[0]]
    for column_index, column in enumerate(columns[1:], start=1):
        other = [_event_name(event) for event in column]
        aligned: list[list[dict | None]] = []
        matcher = SequenceMatcher(None, names, other, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
                aligned += [rows[i] + [column[j]] for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
                continue
            aligned += [rows[i] + [None] for i in range(i1, i2)]
            aligned += [[None] * column_index + [column[j]] for j in range(j1, j2)]
        rows = aligned
        names = [next((_event_name(cell) for cell in row if cell), "") for row in rows]
    return rows


def _event_name(event: dict) -> str:
    if event.get("event"):
        return event["event"]
    return "[DONE]" if event.get("data", "").strip() == "[DONE]" else "(data-only)"
