"""compare_responses: everything that differs between two responses to the same request."""

import json
import re
from dataclasses import dataclass, field

from migrations_audit.json_depth import json_nests_deeper, json_text_may_nest_deeper, max_json_depth
from migrations_audit.sse import parse_sse

from .changes import Change
from .json_diff import json_diff
from .noise import NoiseModel
from .shapes import shape_changes
from .streams import stream_diff

# Error messages name the request field at fault in a few shapes: "temperature: Extra inputs are
# not permitted" (observed), "messages.1.content.0: ...", "messages[1].content[0].type: ...",
# "`top_k` is not supported".
_FIELD_AT_START = re.compile(r"^\s*([A-Za-z_][\w]*(?:(?:\.\w+)|(?:\[\d+\]))*)\s*:")
_FIELD_QUOTED = re.compile(r"`([A-Za-z_][\w]*(?:(?:\.\w+)|(?:\[\d+\]))*)`")
_DEFAULT_NOISE = NoiseModel()


@dataclass
class ResponseSnapshot:
    """One response, whatever stored it (a captured Exchange or a ReplayResult)."""

    status: int | None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    streamed: bool = False
    # Stored SSE events ({"event", "data", ...}); parsed from `body` when a stream has none.
    events: list | None = None
    error: str = ""

    def stream_events(self) -> list[dict]:
        if self.events:
            return self.events
        return [event.as_dict() for event in parse_sse(self.body)] if self.body else []

    def json(self):
        """The body as JSON, or its text when it is not JSON (None when empty)."""
        if not self.body:
            return None
        try:
            value = json.loads(self.body)
        except (ValueError, RecursionError):  # nesting deeper than Python's stack: compared as text
            return self.body.decode("utf-8", errors="replace")
        limit = max_json_depth()
        if json_text_may_nest_deeper(self.body, limit) and json_nests_deeper(value, limit):
            return self.body.decode("utf-8", errors="replace")  # the diff walks it recursively
        return value

    @property
    def accepted(self) -> bool:
        return self.status is not None and self.status < 400


def compare_responses(
    a: ResponseSnapshot, b: ResponseSnapshot, *, noise: NoiseModel | None = None, request_body: bytes = b""
) -> list[Change]:
    """The changes from `a` to `b`, classed by the versioning promise and the noise model (known
    volatile headers and values when none is given). Explaining them is rules.changes_explain.

    Across models (`noise.across_models`), the generated answer is noise and its shape is compared
    instead (diff.shapes; `request_body` gives the schema a structured output must follow)."""
    noise = noise or _DEFAULT_NOISE
    if a.accepted != b.accepted:
        # Comparing a success's body with an error's says nothing more than the outcome itself.
        changes = [_outcome_change(a, b)]
        return noise.classify(changes)
    changes = []
    if a.status != b.status:
        changes.append(Change("status_changed", "status", a.status, b.status))
    changes.extend(headers_diff(a.headers, b.headers, noise=noise))
    if a.streamed != b.streamed:
        changes.append(Change("streamed_changed", "stream", a.streamed, b.streamed))
    elif a.streamed:
        changes.extend(stream_diff(a.stream_events(), b.stream_events()))
    elif a.body != b.body:
        changes.extend(json_diff(a.json(), b.json()))
    changes = noise.classify(changes)
    if noise.across_models:
        changes.extend(shape_changes(a, b, request_body=request_body))
    return changes


def headers_diff(a: dict, b: dict, *, noise: NoiseModel) -> list[Change]:
    """Header changes, volatile headers left out (they differ on every call by definition)."""
    a = _normalise_headers(a)
    b = _normalise_headers(b)
    out = []
    for name, value in a.items():
        if noise.header_is_volatile(name):
            continue
        if name not in b:
            out.append(Change("header_removed", f"header:{name}", value, None))
        elif b[name] != value:
            out.append(Change("header_changed", f"header:{name}", value, b[name]))
    for name, value in b.items():
        if name not in a and not noise.header_is_volatile(name):
            out.append(Change("header_added", f"header:{name}", None, value))
    return out


def _normalise_headers(headers) -> dict:
    if isinstance(headers, list):
        headers = dict(headers)
    out = {}
    for name, value in (headers or {}).items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        out[name.lower()] = value
    return out


def outcome_of(snapshot: ResponseSnapshot) -> dict:
    """Status, and for an error its type and message, as shown to a user."""
    outcome: dict = {"status": snapshot.status}
    if snapshot.status is None:
        outcome["error"] = snapshot.error or "no response"
        return outcome
    if snapshot.accepted:
        return outcome
    body = snapshot.json()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        outcome["error_type"] = error.get("type")
        outcome["message"] = error.get("message")
    elif isinstance(body, str):
        outcome["message"] = body[:500]
    return outcome


def error_field(message) -> str | None:
    """The request field an error message names, as a JSON pointer (`/temperature`), if any."""
    if not isinstance(message, str):
        return None
    match = _FIELD_AT_START.match(message) or _FIELD_QUOTED.search(message)
    if match is None:
        return None
    dotted = re.sub(r"\[(\d+)\]", r".\1", match.group(1))
    return "/" + "/".join(dotted.split("."))


def _outcome_change(a: ResponseSnapshot, b: ResponseSnapshot) -> Change:
    before = outcome_of(a)
    after = outcome_of(b)
    rejected = before if not a.accepted else after
    return Change("outcome_changed", error_field(rejected.get("message")) or "outcome", before, after)
