"""The content blocks of a Messages answer, and how each one streams.

Shapes from the `anthropic` SDK 2.15.0 types (ThinkingBlock, RedactedThinkingBlock, ServerToolUseBlock,
WebSearchToolResultBlock, WebFetchToolResultBlock, TextBlock.citations, ThinkingDelta, SignatureDelta,
CitationsDelta, Usage) and the Messages reference; see README.md for what is simplified.
"""

import base64
import hashlib
import json
import math
import os
from datetime import UTC, datetime

from .text import generate_pieces, rough_token_count

# The documented test string that makes the real API answer with a redacted_thinking block.
REDACTED_THINKING_TRIGGER = (
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_"
    "46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB"
)


def opaque(length: int = 96) -> str:
    """A signature or encrypted payload: base64 of random bytes, different on every call like the real one."""
    return base64.b64encode(os.urandom(length)).decode()


# --- Structured outputs ------------------------------------------------------------------------


def schema_instance(schema, *, root=None, depth: int = 0):
    """A small JSON value valid for a JSON Schema (the subset structured outputs accept).

    Follows `$ref` into `$defs`/`definitions`, takes the first branch of `anyOf`/`oneOf`, merges
    `allOf`, honours `enum`/`const`, required properties, lengths and bounds.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 32:
        return None
    if "$ref" in schema:
        return schema_instance(_follow_ref(root, schema["$ref"]), root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return schema_instance(schema[key][0], root=root, depth=depth + 1)
    if schema.get("allOf"):
        return schema_instance(_all_of_merged(schema, root), root=root, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else ("array" if "items" in schema else "string")
    return _instance_of_type(kind, schema, root, depth)


def _all_of_merged(schema: dict, root) -> dict:
    """The schema with its `allOf` parts merged in: their properties, required names and type."""
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = _follow_ref(root, part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
        if isinstance(part, dict):
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged.setdefault("type", part.get("type"))
    return merged


def _instance_of_type(kind, schema, root, depth):
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: schema_instance(sub, root=root, depth=depth + 1)
            for name, sub in properties.items()
            if isinstance(sub, dict)
        }
    if kind == "array":
        count = max(int(schema.get("minItems", 1) or 0), 0)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [schema_instance(schema.get("items", {}), root=root, depth=depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema)


def _number(schema, *, integer: bool):
    """1, moved inside the bounds (`minimum`, `maximum`, and their exclusive forms)."""
    step = 1 if integer else 0.5
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    lowers = [v for v in (low, None if ex_low is None else ex_low + step) if isinstance(v, int | float)]
    uppers = [v for v in (high, None if ex_high is None else ex_high - step) if isinstance(v, int | float)]
    value = max([1, *lowers]) if lowers else 1
    value = min([value, *uppers]) if uppers else value
    if integer:
        return math.ceil(value) if lowers and value == max(lowers) else math.floor(value)
    bottom = max([v for v in (low, ex_low) if isinstance(v, int | float)], default=None)
    top = min([v for v in (high, ex_high) if isinstance(v, int | float)], default=None)
    if bottom is not None and top is not None and not bottom < value < top:
        value = (bottom + top) / 2  # a narrow range: its middle
    return value


_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "fox@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "hostname": "example.com",
}


def _string(schema) -> str:
    value = _FORMATS.get(schema.get("format"), "fox")
    minimum, maximum = schema.get("minLength"), schema.get("maxLength")
    if minimum is not None and len(value) < minimum:
        value = value + "x" * (minimum - len(value))
    if maximum is not None and len(value) > maximum:
        value = value[:maximum]
    return value


def _follow_ref(root, ref: str):
    if not isinstance(ref, str) or not ref.startswith("#"):
        return {}
    target = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        target = (
            target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        )
    return target


def output_schema(request: dict) -> dict | None:
    """The JSON schema the answer must follow: `output_config.format`, or the beta `output_format`."""
    config = request.get("output_config")
    fmt = (config.get("format") if isinstance(config, dict) else None) or request.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    return None


def json_pieces(text: str, size: int = 8) -> list[str]:
    return [text[offset : offset + size] for offset in range(0, len(text), size)] or [""]


# --- Thinking ----------------------------------------------------------------------------------


def thinking_blocks(request: dict, *, always: bool, rng, max_tokens: int) -> list[dict]:
    """The thinking the answer starts with: none, a thinking block, or a redacted_thinking block.

    `rng` makes the random generator of the thinking text (only made when there is thinking).
    """
    config = request.get("thinking") if isinstance(request.get("thinking"), dict) else {}
    wanted = config.get("type") in ("enabled", "adaptive") or (always and config.get("type") != "disabled")
    if not wanted:
        return []
    if REDACTED_THINKING_TRIGGER in json.dumps(request.get("messages", [])):
        return [{"type": "redacted_thinking", "data": opaque(128)}]
    pieces, _ = generate_pieces(rng(), max_tokens=max(max_tokens, 8))
    thinking = "".join(pieces).strip()
    if config.get("display") == "omitted":
        thinking = ""
    return [{"type": "thinking", "thinking": thinking, "signature": opaque()}]


# --- Server tools and citations ----------------------------------------------------------------


def server_tool_kinds(tools: list) -> list[str]:
    """`web_search` / `web_fetch` for the server tools the request declares (any dated version)."""
    kinds = []
    for tool in tools:
        kind = tool.get("type", "") if isinstance(tool, dict) else ""
        for name in ("web_search", "web_fetch"):
            if kind.startswith(name + "_") and name not in kinds:
                kinds.append(name)
    return kinds


def server_tool_blocks(kinds: list[str], query: str) -> tuple[list[dict], list[dict]]:
    """The server_tool_use and result blocks, and the citations the answer text then carries."""
    blocks, citations = [], []
    url = "https://example.com/foxes"
    for kind in kinds:
        use_id = "srvtoolu_" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
        if kind == "web_search":
            blocks.append(
                {"type": "server_tool_use", "id": use_id, "name": "web_search", "input": {"query": query}}
            )
            results = [
                {
                    "type": "web_search_result",
                    "url": url,
                    "title": "Foxes",
                    "encrypted_content": opaque(64),
                    "page_age": "April 30, 2025",
                }
            ]
            blocks.append({"type": "web_search_tool_result", "tool_use_id": use_id, "content": results})
            citations.append(
                {
                    "type": "web_search_result_location",
                    "cited_text": "Foxes are small omnivores.",
                    "url": url,
                    "title": "Foxes",
                    "encrypted_index": opaque(24),
                }
            )
        else:
            blocks.append(
                {"type": "server_tool_use", "id": use_id, "name": "web_fetch", "input": {"url": url}}
            )
            fetched = {
                "type": "web_fetch_result",
                "url": url,
                "retrieved_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "content": {
                    "type": "document",
                    "source": {
                        "type": "text",
                        "media_type": "text/plain",
                        "data": "Foxes are small omnivores.",
                    },
                    "title": "Foxes",
                    "citations": None,
                },
            }
            blocks.append({"type": "web_fetch_tool_result", "tool_use_id": use_id, "content": fetched})
    return blocks, citations


def document_citations(messages: list) -> list[dict]:
    """A citation of the first user document that enables citations, in the location type of its source."""
    index = 0
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            continue
        for block in message["content"]:
            if not isinstance(block, dict) or block.get("type") != "document":
                continue
            enabled = (
                (block.get("citations") or {}).get("enabled")
                if isinstance(block.get("citations"), dict)
                else False
            )
            if message.get("role") == "user" and enabled:
                return [_citation(block, index)]
            index += 1
    return []


def _citation(document: dict, index: int) -> dict:
    source = document.get("source") if isinstance(document.get("source"), dict) else {}
    base = {"document_index": index, "document_title": document.get("title"), "file_id": None}
    if source.get("type") == "text":
        data = str(source.get("data", ""))
        cited = data[:80]
        return {
            "type": "char_location",
            "cited_text": cited,
            **base,
            "start_char_index": 0,
            "end_char_index": len(cited),
        }
    if source.get("type") == "content":
        return {
            "type": "content_block_location",
            "cited_text": "",
            **base,
            "start_block_index": 0,
            "end_block_index": 1,
        }
    return {"type": "page_location", "cited_text": "", **base, "start_page_number": 1, "end_page_number": 2}


def first_user_text(messages: list) -> str:
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content[:200]
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "text":
                    return str(block.get("text", ""))[:200]
    return ""


def block_tokens(block: dict) -> int:
    return rough_token_count(json.dumps(block))


# --- Streams -----------------------------------------------------------------------------------


def block_events(index: int, block: dict, pieces: list[str] | None = None) -> list[tuple[str, dict]]:
    """The (event name, data) of one content block in a stream: start, deltas, stop."""
    kind = block["type"]

    def delta(payload: dict) -> tuple[str, dict]:
        return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": payload}

    events = []
    if kind == "text":
        start = {"type": "text", "text": ""}
        if block.get("citations"):
            start["citations"] = []
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
        )
        events += [delta({"type": "citations_delta", "citation": c}) for c in block.get("citations") or []]
        events += [delta({"type": "text_delta", "text": piece}) for piece in (pieces or [block["text"]])]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
        )
        if block["thinking"]:
            events += [
                delta({"type": "thinking_delta", "thinking": p}) for p in json_pieces(block["thinking"], 24)
            ]
        events.append(delta({"type": "signature_delta", "signature": block["signature"]}))
    elif kind in ("tool_use", "server_tool_use"):
        start = {**block, "input": {}}
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
        )
        encoded = json.dumps(block["input"])
        events += [delta({"type": "input_json_delta", "partial_json": p}) for p in json_pieces(encoded, 12)]
    else:  # redacted_thinking and tool results arrive whole
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def padded(event: bytes, line_end: bytes) -> bytes:
    """The event with spaces before the closing brace of its JSON data line, as real streams pad them."""
    start = event.find(b"data: {")
    if start < 0:
        return event
    end = event.find(line_end, start)
    end = len(event) if end < 0 else end
    close = event.rfind(b"}", start, end)
    if close < 0:
        return event
    width = 16 - (end - start) % 16 + 8
    return event[:close] + b" " * width + event[close:]
