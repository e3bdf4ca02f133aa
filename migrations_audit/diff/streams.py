"""Semantic diff of two SSE streams: framing, event types, the [DONE] marker, per-event JSON by
event type, and the text mode (cumulative or incremental) with the reassembled text.

Events come in their stored form ({"event", "data", ...}, see migrations_audit.sse.SseEvent.as_dict)
so that the diff never re-parses bytes the recorder already parsed.
"""

import json
from dataclasses import dataclass
from itertools import pairwise

from migrations_audit.json_depth import json_nests_deeper, json_text_may_nest_deeper, max_json_depth

from .changes import Change
from .json_diff import json_diff

# Where streamed text lives, most specific first: Text Completions' `completion`, Messages'
# `delta.text` (text_delta) and `delta.partial_json` (input_json_delta). Which of them carries
# text, and whether it is cumulative, is read from the data.
TEXT_FIELDS = (("completion",), ("delta", "text"), ("delta", "partial_json"), ("text",))
# Per-event changes that say something about the shape of events; the value changes of every
# event but the last are artefacts of where the stream was cut into pieces.
_STRUCTURAL = frozenset({"field_added", "field_removed", "type_changed"})
_KEEP_ALIVE = frozenset({"ping"})
DATA_ONLY = "data-only"
NAMED = "named"
MIXED = "mixed"
CUMULATIVE = "cumulative"
INCREMENTAL = "incremental"
UNDETERMINED = "undetermined"


@dataclass(slots=True)
class StreamProfile:
    framing: str
    done: bool
    # Event type -> parsed data (a dict, or the raw string when the data is not JSON), in order.
    by_type: dict[str, list]
    error: object
    text_field: dict[str, tuple[str, ...]]
    text_mode: dict[str, str]
    text: str


def stream_profile(events: list[dict]) -> StreamProfile:
    by_type: dict[str, list] = {}
    done = False
    named = unnamed = 0
    error = None
    cache: dict[str, object] = {}
    for event in events:
        data = event["data"]
        name = event.get("event")
        if data[:1] != "{" and data.strip() == "[DONE]":
            done = True
            continue
        obj = cache.get(data)
        if obj is None:
            obj = cache[data] = _parse(data)
        kind = _event_kind(name, obj)
        if kind == "ping":
            pass  # keep-alives are named in either framing; they say nothing about it
        elif name:
            named += 1
        else:
            unnamed += 1
        if kind == "error":
            error = obj.get("error", obj) if type(obj) is dict else obj
            continue
        objs = by_type.get(kind)
        if objs is None:
            by_type[kind] = [obj]
        else:
            objs.append(obj)
    text_field, text_mode, text = _texts(by_type)
    return StreamProfile(
        _framing(named, unnamed, bool(events)), done, by_type, error, text_field, text_mode, text
    )


def _event_kind(name: str | None, obj) -> str:
    """The event's type: its SSE name, else the `type` of its JSON data, else "message"."""
    if name and name != "message":
        return name
    if type(obj) is dict and type(obj.get("type")) is str:
        return obj["type"]
    return "message"


def _framing(named: int, unnamed: int, any_event: bool) -> str:
    if not named and not unnamed:
        return NAMED if any_event else DATA_ONLY
    return NAMED if not unnamed else DATA_ONLY if not named else MIXED


def _texts(by_type: dict[str, list]) -> tuple[dict[str, tuple[str, ...]], dict[str, str], str]:
    """Per event type carrying text, its text field and mode; and the whole reassembled text."""
    text_field: dict[str, tuple[str, ...]] = {}
    text_mode: dict[str, str] = {}
    texts = []
    for kind, objs in by_type.items():
        found = _text_of(objs)
        if found is None:
            continue
        field, mode, text = found
        text_field[kind] = field
        text_mode[kind] = mode
        texts.append(text)
    return text_field, text_mode, "".join(texts)


_scan = json.JSONDecoder().scan_once


def _parse(data: str):
    """The event's data as JSON, or the string itself when it is not JSON (a legacy ping's date).

    Calls the C scanner directly: json.loads costs three times as much on small documents, and a
    stream pair has a hundred of them."""
    if data[:1] in ("{", "["):
        try:
            obj, end = _scan(data, 0)
        except (StopIteration, ValueError, RecursionError):
            return data
        if end == len(data) or data[end:].isspace():
            limit = max_json_depth()
            if json_text_may_nest_deeper(data, limit) and json_nests_deeper(obj, limit):
                return data  # the diff walks it recursively: past the depth, compared as text
            return obj
    return data


def _text_of(objs: list):
    """(field, mode, reassembled text) for the events of one type that carry text, else None."""
    field = None
    for obj in objs:
        if type(obj) is dict:
            field = _text_field(obj)
            if field is not None:
                break
    if field is None:
        return None
    groups: dict[object, list[str]] = {}
    if len(field) == 1:
        (name,) = field
        values = [obj.get(name) for obj in objs if type(obj) is dict]
        groups[None] = [value for value in values if type(value) is str]
    else:
        outer, inner = field
        for obj in objs:
            if type(obj) is dict:
                nested = obj.get(outer)
                value = nested.get(inner) if type(nested) is dict else None
                if type(value) is str:
                    # Messages streams interleave blocks; each block's text is its own sequence.
                    groups.setdefault(obj.get("index"), []).append(value)
    modes = {text_mode(pieces) for pieces in groups.values()}
    modes.discard(UNDETERMINED)
    mode = modes.pop() if len(modes) == 1 else (UNDETERMINED if not modes else INCREMENTAL)
    text = "".join(reassemble(pieces, mode) for pieces in groups.values())
    return field, mode, text


def _text_field(obj: dict):
    for field in TEXT_FIELDS:
        if len(field) == 1:
            if type(obj.get(field[0])) is str:
                return field
        else:
            nested = obj.get(field[0])
            if type(nested) is dict and type(nested.get(field[1])) is str:
                return field
    return None


def text_mode(pieces: list[str]) -> str:
    """Cumulative when each non-empty piece extends the one before, incremental otherwise.

    One piece (a one-event stream, or one cut short by an error) cannot tell: undetermined."""
    seen = [piece for piece in pieces if piece]
    if len(seen) < 2:
        return UNDETERMINED
    grew = False
    for before, after in pairwise(seen):
        if not after.startswith(before):
            return INCREMENTAL
        grew = grew or len(after) > len(before)
    # The same piece repeated ("ha", "ha") is text, not a prefix growing.
    return CUMULATIVE if grew else INCREMENTAL


def reassemble(pieces: list[str], mode: str) -> str:
    if mode == CUMULATIVE:
        return next((piece for piece in reversed(pieces) if piece), "")
    return "".join(pieces)


def stream_diff(events_a: list[dict], events_b: list[dict]) -> list[Change]:
    a = stream_profile(events_a)
    b = stream_profile(events_b)
    out = _outline_changes(a, b)
    _align(a, b)
    _align(b, a)
    out.extend(_event_type_changes(a.by_type, b.by_type))
    reported: set[tuple[str, str]] = set()
    for kind, objs_a in a.by_type.items():
        objs_b = b.by_type.get(kind)
        if objs_b:
            _event_changes(kind, a, b, objs_a, objs_b, out, reported)
    if a.text != b.text and (a.text_field or b.text_field):
        out.append(Change("reassembled_text_changed", "stream:text", a.text, b.text))
    return out


def _outline_changes(a: StreamProfile, b: StreamProfile) -> list[Change]:
    """Changes of the stream as a whole: its framing, the [DONE] marker, whether it ends in an error."""
    out: list[Change] = []
    if a.framing != b.framing:
        out.append(Change("stream_framing_changed", "stream:framing", a.framing, b.framing))
    if a.done and not b.done:
        out.append(Change("done_marker_removed", "stream:[DONE]", "[DONE]", None))
    elif b.done and not a.done:
        out.append(Change("done_marker_added", "stream:[DONE]", None, "[DONE]"))
    if (a.error is None) != (b.error is None):
        out.append(Change("outcome_changed", "stream:error", a.error, b.error))
    return out


def _event_type_changes(types_a: dict[str, list], types_b: dict[str, list]) -> list[Change]:
    out = [
        Change("event_type_removed", f"stream:{kind}", kind, None) for kind in types_a if kind not in types_b
    ]
    out.extend(
        Change("event_type_added", f"stream:{kind}", None, kind) for kind in types_b if kind not in types_a
    )
    return out


def _event_changes(
    kind: str, a: StreamProfile, b: StreamProfile, objs_a: list, objs_b: list, out: list, reported: set
) -> None:
    """The changes of one event type present in both streams: its text mode, the shape of its events,
    and everything in its last event."""
    prefix = f"stream:{kind}"
    text_field = a.text_field.get(kind) or b.text_field.get(kind)
    text_path = prefix + "/" + "/".join(text_field) if text_field else None
    mode_a = a.text_mode.get(kind, UNDETERMINED)
    mode_b = b.text_mode.get(kind, UNDETERMINED)
    if UNDETERMINED not in (mode_a, mode_b) and mode_a != mode_b:
        out.append(Change("text_mode_changed", text_path, mode_a, mode_b))
    _shape_changes(prefix, objs_a, objs_b, out, reported)
    # The last event of each type carries the final state (stop_reason, usage): all of it counts.
    for change in json_diff(objs_a[-1], objs_b[-1], prefix=prefix):
        if change.path == text_path and change.kind == "value_changed":
            continue  # compared once, as reassembled text
        _add(out, reported, change)


def _shape_changes(prefix: str, objs_a: list, objs_b: list, out: list, reported: set) -> None:
    """Structural changes of the events before the last, each pair of shapes diffed once."""
    shapes = set()
    last = min(len(objs_a), len(objs_b)) - 1
    for obj_a, obj_b in zip(objs_a[:last], objs_b[:last], strict=True):
        if type(obj_a) is dict and type(obj_b) is dict:
            shape = (tuple(obj_a), tuple(obj_b))
        else:
            shape = (type(obj_a), type(obj_b))
        if shape in shapes:
            continue
        shapes.add(shape)
        for change in json_diff(obj_a, obj_b, prefix=prefix):
            if change.kind in _STRUCTURAL:
                _add(out, reported, change)


def _add(out: list, reported: set, change: Change) -> None:
    key = (change.kind, change.path)
    if key not in reported:
        reported.add(key)
        out.append(change)


def _align(a: StreamProfile, b: StreamProfile) -> None:
    """Rename a's data-only events after b's main event type.

    A data-only stream has no event names, so its payload events are all "message"; when the other
    stream names them (`completion`), they are the same events and their contents must be compared,
    the renaming itself being reported once as a framing change.
    """
    if "message" not in a.by_type or "message" in b.by_type or a.framing == b.framing:
        return
    main = max(
        (kind for kind in b.by_type if kind not in _KEEP_ALIVE), key=lambda k: len(b.by_type[k]), default=None
    )
    if main is None or main in a.by_type:
        return
    for table in (a.by_type, a.text_field, a.text_mode):
        if "message" in table:
            table[main] = table.pop("message")
