"""The vocabulary of the diff: what a difference is, and how the versioning promise classes it."""

from dataclasses import dataclass
from typing import Any

BREAKING = "breaking"
ADDITIVE = "additive"
NOISE = "noise"

# The API's versioning promise (reference/anthropic-versions.md): removed fields, type changes,
# framing changes and meaning changes break; new fields, headers and event types are additive.
# A value that changes for the same request is treated as breaking until noise or a rule says
# otherwise, because a client may depend on it and nobody has looked at it yet.
DEFAULT_CLASSIFICATION = {
    "status_changed": BREAKING,
    "outcome_changed": BREAKING,
    "streamed_changed": BREAKING,
    "header_added": ADDITIVE,
    "header_removed": BREAKING,
    "header_changed": BREAKING,
    "field_added": ADDITIVE,
    "field_removed": BREAKING,
    "field_renamed": BREAKING,
    "type_changed": BREAKING,
    "value_changed": BREAKING,
    "array_length_changed": BREAKING,
    "stream_framing_changed": BREAKING,
    "event_type_added": ADDITIVE,
    "event_type_removed": BREAKING,
    "done_marker_added": ADDITIVE,
    "done_marker_removed": BREAKING,
    "text_mode_changed": BREAKING,
    "reassembled_text_changed": BREAKING,
    # Across models (diff.shapes): the answer's shape.
    "content_block_type_removed": BREAKING,
    "tool_call_added": BREAKING,
    "stop_reason_changed": BREAKING,
    "structured_output_invalid": BREAKING,
}

# Kinds that come in mirrored pairs: diff(b, a) reports the mirror of what diff(a, b) reports.
MIRROR_KIND = {
    "header_added": "header_removed",
    "header_removed": "header_added",
    "field_added": "field_removed",
    "field_removed": "field_added",
    "event_type_added": "event_type_removed",
    "event_type_removed": "event_type_added",
    "done_marker_added": "done_marker_removed",
    "done_marker_removed": "done_marker_added",
}


@dataclass(slots=True)
class Change:
    """One difference between two responses.

    `path` is a JSON pointer into the body (`/content/0/text`), `header:<name>`, or `stream:...`
    (`stream:<event type><pointer>` for per-event fields, `stream:framing`, `stream:[DONE]`,
    `stream:text`). `classification` starts from the versioning promise and becomes noise when the
    noise model says so; `rule_key` names the changelog rule that explains it, if any.
    """

    kind: str
    path: str
    before: Any = None
    after: Any = None
    classification: str = ""
    rule_key: str | None = None
    noise_rate: float | None = None

    def __post_init__(self):
        if not self.classification:
            self.classification = DEFAULT_CLASSIFICATION.get(self.kind, BREAKING)

    @property
    def explained(self) -> bool:
        return self.rule_key is not None
