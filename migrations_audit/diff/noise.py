"""Noise: what differs between two identical calls of the same version.

Two sources, Diffy-style: what replay's noise sample saw vary (the same version called twice), and
values that are volatile by nature (ids, timestamps, log ids) or headers listed as volatile for an
upstream. Noise is kept, marked, and hidden by default, with the rate at which it varies.
"""

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .changes import NOISE, Change

# Response headers that differ on every call of any HTTP API, whatever the upstream.
DEFAULT_VOLATILE_HEADERS = (
    "date",
    "age",
    "expires",
    "etag",
    "last-modified",
    "request-id",
    "x-request-id",
    "server-timing",
    "content-length",
    # Bodies are compared decoded: how each side was compressed is the transport's business.
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "alt-svc",
    "set-cookie",
    "retry-after",
    "*ratelimit*",
    "x-cloud-trace-context",
)

# Headers that describe the serving infrastructure (web server, CDN, mesh), not the API: a
# recording made through a CDN and a replay against a local server differ in them by nature. New
# upstreams start with them in Upstream.volatile_headers, where a team can remove one it cares about.
INFRASTRUCTURE_HEADERS = (
    "server",
    "via",
    "x-powered-by",
    "cf-*",
    "x-envoy-*",
    "x-amz-*",
    "x-served-by",
    "x-cache",
    "x-cache-hits",
    "x-timer",
    "x-kong-*",
    "x-vercel-*",
    "fly-request-id",
    "strict-transport-security",
    "x-forwarded-*",
    "nel",
    "report-to",
)

# Generated content: between a recording and a replay (two different calls, possibly months
# apart) the words, the ids and the token counts differ without the API having changed. Only a
# change of their type or shape says something there.
_GENERATED_FIELDS = frozenset({"text", "completion", "thinking", "partial_json", "signature", "data", "stop"})
_GENERATED_PARENTS = frozenset({"usage", "cache_creation", "server_tool_use"})

# Values that identify one call: prefixed ids (msg_01..., req_..., compl_...), hex log ids, UUIDs,
# timestamps (ISO 8601 and the legacy ping's "2023-04-28 21:18:31.866238").
_VOLATILE_VALUE = re.compile(
    r"""^(?:
        [a-z]+(?:_[a-z]+)*_[A-Za-z0-9]{8,}
      | [0-9a-f]{24,64}
      | [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}
      | \d{4}-\d{2}-\d{2}[T\ ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?
    )$""",
    re.VERBOSE,
)
# Fields whose value identifies the call or the moment, whatever it looks like.
_VOLATILE_FIELDS = frozenset({"id", "log_id", "request_id", "created", "created_at", "timestamp"})
_VALUE_KINDS = frozenset({"value_changed", "header_changed"})
_INDEX = re.compile(r"/\d+(?=/|$)")


def path_pattern(path: str) -> str:
    """Array indexes fold into `*`: the text of the third block varies like that of the first, and
    differences of the same field in different blocks are one signature."""
    return _INDEX.sub("/*", path)


def is_volatile_value(value) -> bool:
    return isinstance(value, str) and _VOLATILE_VALUE.match(value) is not None


@dataclass
class NoiseModel:
    """Decides which changes are noise. `varying` maps (kind, path pattern) seen differing between
    two calls of the same version to the share of sampled calls where it differed."""

    volatile_headers: tuple[str, ...] = DEFAULT_VOLATILE_HEADERS
    varying: dict[tuple[str, str], float] = field(default_factory=dict)
    patterns: bool = True
    # Set when one side of the comparison is the recorded response and the other a replay.
    against_recording: bool = False
    # Set when the two sides were sent to different models (two variants): the generated answer
    # differs by nature; its shape is compared apart (diff.shapes).
    across_models: bool = False

    @classmethod
    def for_upstream(cls, *, volatile_headers=()) -> "NoiseModel":
        extra = tuple(name.lower() for name in volatile_headers or ())
        return cls(volatile_headers=DEFAULT_VOLATILE_HEADERS + extra)

    def header_is_volatile(self, name: str) -> bool:
        name = name.lower()
        for pattern in self.volatile_headers:
            if pattern == name or ("*" in pattern and fnmatchcase(name, pattern)):
                return True
        return False

    def learn(self, sample_changes: list[list[Change]]) -> None:
        """Learn from the changes between repeated calls of one version (one list per repeat)."""
        if not sample_changes:
            return
        seen: dict[tuple[str, str], int] = {}
        for changes in sample_changes:
            for key in {(change.kind, path_pattern(change.path)) for change in changes}:
                seen[key] = seen.get(key, 0) + 1
        for key, times in seen.items():
            self.varying[key] = max(self.varying.get(key, 0.0), times / len(sample_changes))

    def classify(self, changes: list[Change]) -> list[Change]:
        varying = self.varying
        for change in changes:
            rate = varying.get((change.kind, path_pattern(change.path))) if varying else None
            if rate is None and change.kind in _VALUE_KINDS and self.patterns and _looks_volatile(change):
                rate = 0.0  # volatile by nature: no sample measured how often
            if rate is None and (self.against_recording or self.across_models) and _is_generated(change):
                rate = 0.0
            if rate is None and self.across_models and _is_generated_answer(change):
                rate = 0.0
            if rate is not None:
                change.classification = NOISE
                change.noise_rate = rate or None
        return changes


def _looks_volatile(change: Change) -> bool:
    last = change.path.rsplit("/", 1)[-1]
    if last in _VOLATILE_FIELDS:
        return True
    return is_volatile_value(change.before) and is_volatile_value(change.after)


def _is_generated(change: Change) -> bool:
    """Generated text, ids and token counts whose value (not type) changed."""
    if change.kind == "reassembled_text_changed":
        return True
    if change.kind != "value_changed" or type(change.before) is not type(change.after):
        return False
    if isinstance(change.before, bool) or not isinstance(change.before, str | int | float):
        return False
    parts = change.path.rsplit("/", 2)
    last, parent = parts[-1], (parts[-2] if len(parts) > 1 else "")
    if parent in _GENERATED_PARENTS and isinstance(change.before, int | float):
        return True
    return last in _GENERATED_FIELDS and isinstance(change.before, str)


# Across models, where the answer is generated: its blocks, stop reason, model, usage and id.
_ANSWER_ROOTS = ("/content", "/stop_reason", "/stop_sequence", "/model", "/usage", "/id")
_STREAM_SHAPE_KINDS = frozenset(
    {"stream_framing_changed", "done_marker_added", "done_marker_removed", "text_mode_changed"}
)


def _is_generated_answer(change: Change) -> bool:
    """A difference inside the generated answer, between two models (diff.shapes compares its shape)."""
    path = change.path
    if path.startswith("stream:"):
        return change.kind not in _STREAM_SHAPE_KINDS
    return any(path == root or path.startswith(root + "/") for root in _ANSWER_ROOTS)
