"""Across models, text differs but shape must not: the shape of two answers to one request.

Two models never give the same words, ids or token counts; between two variants whose models
differ those are noise or measured quantities (NoiseModel.across_models). What a client depends on
is the answer's shape, compared here: the content block types it holds, the stop reason, whether it
calls a tool, and whether a structured-output answer still parses under the requested schema.
Each shape change is breaking, and explained by the shape rule of the model ruleset
(`{"response_shape": <kind>}`) when one is installed.
"""

import json

from .changes import Change

BLOCK_TYPE_REMOVED = "content_block_type_removed"
TOOL_CALL_ADDED = "tool_call_added"
STOP_REASON_CHANGED = "stop_reason_changed"
STRUCTURED_OUTPUT_INVALID = "structured_output_invalid"
SHAPE_KINDS = (BLOCK_TYPE_REMOVED, TOOL_CALL_ADDED, STOP_REASON_CHANGED, STRUCTURED_OUTPUT_INVALID)
_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use"})


def answer_of(snapshot) -> dict | None:
    """The Messages answer of a response (a stream's reassembled from its events), or None."""
    if not snapshot.accepted:
        return None
    if snapshot.streamed:
        return _answer_from_events(snapshot.stream_events())
    body = snapshot.json()
    return body if isinstance(body, dict) and isinstance(body.get("content"), list) else None


def shape_changes(a, b, *, request_body: bytes = b"") -> list[Change]:
    """The shape changes from answer `a` to answer `b` (ResponseSnapshots) to the same request."""
    before, after = answer_of(a), answer_of(b)
    if before is None or after is None:
        return []
    changes = []
    types_before, types_after = _block_types(before), _block_types(after)
    for block_type in sorted(types_before - types_after):
        changes.append(Change(BLOCK_TYPE_REMOVED, "/content/*/type", block_type, None))
    if not types_before & _TOOL_BLOCKS and types_after & _TOOL_BLOCKS:
        changes.append(
            Change(TOOL_CALL_ADDED, "/content/*/type", None, sorted(types_after & _TOOL_BLOCKS)[0])
        )
    if before.get("stop_reason") != after.get("stop_reason"):
        changes.append(
            Change(STOP_REASON_CHANGED, "/stop_reason", before.get("stop_reason"), after.get("stop_reason"))
        )
    schema = requested_schema(request_body)
    if schema is not None:
        problem_before, problem_after = schema_problem(before, schema), schema_problem(after, schema)
        if problem_before is None and problem_after is not None:
            changes.append(Change(STRUCTURED_OUTPUT_INVALID, "/content/*/text", None, problem_after))
    return changes


def requested_schema(request_body: bytes) -> dict | None:
    """The JSON schema a request asks its answer to follow (structured outputs), if any:
    `output_config.format` or the earlier `output_format`, of type json_schema."""
    try:
        document = json.loads(request_body) if request_body[:1] == b"{" else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    config = document.get("output_config")
    candidates = [config.get("format") if isinstance(config, dict) else None, document.get("output_format")]
    for fmt in candidates:
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            return fmt["schema"]
    return None


def schema_problem(answer: dict, schema: dict) -> str | None:
    """Why the answer's text does not parse under `schema` (None when it does)."""
    text = "".join(
        block.get("text", "")
        for block in answer.get("content", ())
        if isinstance(block, dict) and block.get("type") == "text"
    )
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "the answer is not JSON"
    return _validate(value, schema, "")


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value, expected: str) -> bool:
    if expected in ("integer", "number"):
        if isinstance(value, bool):
            return False
        return isinstance(value, int) if expected == "integer" else isinstance(value, int | float)
    kind = _TYPES.get(expected)
    return kind is None or isinstance(value, kind)


def _validate(value, schema: dict, where: str) -> str | None:
    """The subset of JSON Schema that structured outputs use: type, enum, required, properties,
    additionalProperties: false, items."""
    expected = schema.get("type")
    types = expected if isinstance(expected, list) else [expected] if expected else []
    if types and not any(_type_ok(value, t) for t in types):
        return f"{where or '/'} is not of type {expected}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where or '/'} is not one of {schema['enum']}"
    if isinstance(value, dict):
        return _validate_object(value, schema, where)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return _first_problem(
            _validate(item, schema["items"], f"{where}/{n}") for n, item in enumerate(value)
        )
    return None


def _validate_object(value: dict, schema: dict, where: str) -> str | None:
    properties = schema.get("properties") or {}
    missing = [name for name in schema.get("required") or () if name not in value]
    if missing:
        return f"{where}/{missing[0]} is required"
    if schema.get("additionalProperties") is False:
        extra = [name for name in value if name not in properties]
        if extra:
            return f"{where}/{extra[0]} is not allowed"
    return _first_problem(
        _validate(value[name], sub, f"{where}/{name}")
        for name, sub in properties.items()
        if name in value and isinstance(sub, dict)
    )


def _first_problem(problems) -> str | None:
    return next((problem for problem in problems if problem), None)


def _block_types(answer: dict) -> set[str]:
    return {
        block["type"]
        for block in answer.get("content", ())
        if isinstance(block, dict) and isinstance(block.get("type"), str)
    }


def _answer_from_events(events: list[dict]) -> dict | None:
    answer: dict | None = None
    for event in events:
        try:
            data = json.loads(event.get("data") or "null")
        except (ValueError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            answer = {**data["message"], "content": []}
        elif answer is None:
            continue
        elif kind == "content_block_start" and isinstance(data.get("content_block"), dict):
            answer["content"].append(dict(data["content_block"]))
        elif kind == "content_block_delta" and answer["content"]:
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                last = answer["content"][-1]
                last["text"] = last.get("text", "") + str(delta.get("text", ""))
        elif kind == "message_delta" and isinstance(data.get("delta"), dict):
            answer.update({k: v for k, v in data["delta"].items() if k in ("stop_reason", "stop_sequence")})
    return answer
