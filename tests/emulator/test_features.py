"""Today's request features, each in its real shape, in JSON and in streams, over real HTTP."""

import json

import httpx
import jsonschema
import pytest

from migrations_audit.emulator.content import REDACTED_THINKING_TRIGGER, schema_instance
from migrations_audit.sse import parse_sse

from .conftest import MESSAGE, WEATHER_TOOL, api_headers, emulator_running

VERSION = "2026-10-21"
SONNET_5 = {**MESSAGE, "model": "claude-sonnet-5", "max_tokens": 4096}


def post(http, body: dict, path: str = "/v1/messages", version: str = VERSION, **headers) -> dict:
    response = http.post(path, headers=api_headers(version, **headers), json=body)
    assert response.status_code == 200, response.text
    return response.json()


def stream(http, body: dict, version: str = VERSION, **headers) -> list[dict]:
    response = http.post(
        "/v1/messages", headers=api_headers(version, **headers), json={**body, "stream": True}
    )
    assert response.status_code == 200, response.text
    events = parse_sse(response.content)
    data = [json.loads(event.data) for event in events]
    assert all(d["type"] == e.event for d, e in zip(data, events, strict=True))
    return data


def rebuild(events: list[dict]) -> list[dict]:
    """The content blocks a client assembles from a stream, as the SDKs do."""
    blocks = {}
    for event in events:
        if event["type"] == "content_block_start":
            blocks[event["index"]] = {**event["content_block"], "_json": ""}
        elif event["type"] == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "citations_delta":
                block["citations"].append(delta["citation"])
            elif delta["type"] == "input_json_delta":
                block["_json"] += delta["partial_json"]
        elif event["type"] == "content_block_stop":
            block = blocks[event["index"]]
            if block["_json"]:
                block["input"] = json.loads(block["_json"])
    return [{k: v for k, v in blocks[i].items() if k != "_json"} for i in sorted(blocks)]


def shapes(blocks: list[dict]) -> list[tuple]:
    return [(block["type"], tuple(sorted(block))) for block in blocks]


def test_usage_has_the_prompt_caching_fields_and_the_service_tier(http):
    message = post(http, SONNET_5)
    usage = message["usage"]
    assert set(usage) == {
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
        "output_tokens",
        "service_tier",
    }
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    assert usage["service_tier"] == "standard"
    assert post(http, {**SONNET_5, "service_tier": "standard_only"})["usage"]["service_tier"] == "standard"
    bad = http.post("/v1/messages", headers=api_headers(VERSION), json={**SONNET_5, "service_tier": "gold"})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("service_tier:")


def test_prompt_caching_writes_then_reads_a_long_enough_prefix(http):
    long_system = " ".join(f"rule{index} foxes are careful." for index in range(400))
    body = {
        **SONNET_5,
        "system": [
            {"type": "text", "text": long_system, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [{"role": "user", "content": f"Question {id(http)}"}],
    }
    first = post(http, body)["usage"]
    assert first["cache_creation_input_tokens"] >= 1024 and first["cache_read_input_tokens"] == 0
    assert first["cache_creation"]["ephemeral_1h_input_tokens"] == first["cache_creation_input_tokens"]
    events = stream(http, body)
    second = events[0]["message"]["usage"]
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert events[-2]["usage"]["cache_read_input_tokens"] == second["cache_read_input_tokens"]
    # A short prefix is below the minimum: nothing is cached.
    short = {
        **body,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    }
    assert post(http, short)["usage"]["cache_creation_input_tokens"] == 0


@pytest.mark.parametrize("thinking", [{"type": "adaptive"}, {"type": "enabled", "budget_tokens": 2048}])
def test_thinking_blocks_with_signatures_in_json_and_stream(http, thinking):
    body = {**SONNET_5, "model": "claude-sonnet-4-6", "thinking": thinking}
    message = post(http, body)
    first, text = message["content"]
    assert first["type"] == "thinking" and first["thinking"] and first["signature"]
    assert text["type"] == "text"
    events = stream(http, body)
    names = [(e["type"], e.get("delta", {}).get("type")) for e in events]
    assert ("content_block_delta", "thinking_delta") in names
    assert names.index(("content_block_delta", "signature_delta")) < names.index(("content_block_stop", None))
    assert events[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    rebuilt = rebuild(events)
    assert shapes(rebuilt) == shapes(message["content"])
    assert rebuilt[0]["thinking"] == first["thinking"]  # same request, same thinking; signatures vary
    assert rebuilt[1]["text"] == text["text"]


def test_fable_5_always_thinks_and_omitted_display_keeps_the_signature(http):
    fable = post(http, {**SONNET_5, "model": "claude-fable-5"})
    assert fable["content"][0]["type"] == "thinking"
    plain = post(http, SONNET_5)
    assert [block["type"] for block in plain["content"]] == ["text"]
    omitted = post(http, {**SONNET_5, "thinking": {"type": "adaptive", "display": "omitted"}})
    assert omitted["content"][0]["thinking"] == "" and omitted["content"][0]["signature"]


def test_redacted_thinking_for_the_documented_trigger(http):
    body = {
        **SONNET_5,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": REDACTED_THINKING_TRIGGER}],
    }
    block = post(http, body)["content"][0]
    assert block["type"] == "redacted_thinking" and set(block) == {"type", "data"}
    events = stream(http, body)
    assert events[1]["content_block"]["type"] == "redacted_thinking"
    assert events[2]["type"] == "ping" and events[3] == {"type": "content_block_stop", "index": 0}


def test_thinking_request_errors(http):
    for thinking, message in (
        (
            {"type": "enabled", "budget_tokens": 100},
            "thinking.enabled.budget_tokens: Input should be greater",
        ),
        (
            {"type": "enabled", "budget_tokens": 8192},
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        ({"type": "sometimes"}, "thinking.type:"),
        ("on", "thinking: Input should be a valid dictionary"),
    ):
        body = {**SONNET_5, "model": "claude-haiku-4-5", "thinking": thinking}
        response = http.post("/v1/messages", headers=api_headers("2023-06-01"), json=body)
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith(message)


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 5},
        "age": {"type": "integer", "minimum": 18, "maximum": 120},
        "email": {"type": "string", "format": "email"},
        "role": {"$ref": "#/$defs/Role"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "manager": {"anyOf": [{"$ref": "#/$defs/Ref"}, {"type": "null"}]},
        "score": {"type": "number", "exclusiveMinimum": 1.5},
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "email", "role", "tags", "manager", "score", "active"],
    "additionalProperties": False,
    "$defs": {
        "Role": {"type": "string", "enum": ["admin", "viewer"]},
        "Ref": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
    },
}


def test_schema_instances_are_valid():
    for schema in (
        PERSON,
        {"type": "array", "items": {"type": "integer", "minimum": 5}, "minItems": 3, "maxItems": 3},
        {"allOf": [{"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]}]},
        {"type": ["string", "null"], "maxLength": 2},
        {"oneOf": [{"type": "integer", "exclusiveMaximum": 0}, {"type": "string"}]},
        {"type": "number", "exclusiveMinimum": 1.5, "exclusiveMaximum": 1.6},
        {"type": "integer", "minimum": 1.5, "maximum": 9},
        {"type": "integer", "maximum": -3},
        {"type": "number", "minimum": 10, "maximum": 10},
    ):
        jsonschema.validate(schema_instance(schema), schema)


@pytest.mark.parametrize("where", ["output_config", "output_format"])
def test_structured_outputs_answer_json_valid_for_the_schema(http, where):
    fmt = {"type": "json_schema", "schema": PERSON}
    body = {
        **SONNET_5,
        **({"output_config": {"format": fmt}} if where == "output_config" else {"output_format": fmt}),
    }
    message = post(http, body)
    assert [block["type"] for block in message["content"]] == ["text"]
    jsonschema.validate(json.loads(message["content"][0]["text"]), PERSON)
    assert message["stop_reason"] == "end_turn"
    streamed = "".join(e["delta"]["text"] for e in stream(http, body) if e["type"] == "content_block_delta")
    assert json.loads(streamed) == json.loads(message["content"][0]["text"])
    bad = http.post(
        "/v1/messages",
        headers=api_headers(VERSION),
        json={**SONNET_5, where: {"format": "json"} if where == "output_config" else "json"},
    )
    assert bad.status_code == 400


def test_tool_input_is_valid_for_the_tool_schema(http):
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 3, "maximum": 5},
            "hourly": {"type": "boolean"},
            "places": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "window": {"$ref": "#/$defs/Window"},
            "extra": {"type": "string"},
        },
        "required": ["unit", "days", "hourly", "places", "window"],
        "additionalProperties": False,
        "$defs": {"Window": {"type": "object", "properties": {"from": {"type": "string", "format": "date"}}}},
    }
    tool = {"name": "forecast", "description": "Forecast", "input_schema": schema, "strict": True}
    message = post(http, {**SONNET_5, "tools": [tool]})
    tool_use = message["content"][-1]
    jsonschema.validate(tool_use["input"], schema)
    assert set(tool_use["input"]) == {"unit", "days", "hourly", "places", "window"}
    assert post(http, {**SONNET_5, "tools": [tool]})["content"][-1]["input"] == tool_use["input"]


def test_tool_use_stop_reason_and_blocks_with_thinking(http):
    body = {**SONNET_5, "thinking": {"type": "adaptive"}, "tools": [WEATHER_TOOL]}
    message = post(http, body)
    assert message["stop_reason"] == "tool_use"
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
    events = stream(http, body)
    rebuilt = rebuild(events)
    assert shapes(rebuilt) == shapes(message["content"])
    assert rebuilt[2]["input"] == message["content"][2]["input"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("tool", "result_type"),
    [
        ({"type": "web_search_20250305", "name": "web_search", "max_uses": 3}, "web_search_tool_result"),
        ({"type": "web_search_20260209", "name": "web_search"}, "web_search_tool_result"),
        ({"type": "web_fetch_20250910", "name": "web_fetch"}, "web_fetch_tool_result"),
    ],
)
def test_server_tools_give_use_and_result_blocks_and_usage(http, tool, result_type):
    body = {**SONNET_5, "tools": [tool]}
    message = post(http, body)
    use, result, text = message["content"]
    assert use["type"] == "server_tool_use" and use["id"].startswith("srvtoolu_")
    assert use["name"] == tool["name"]
    assert result["type"] == result_type and result["tool_use_id"] == use["id"]
    assert text["type"] == "text" and message["stop_reason"] == "end_turn"
    usage = message["usage"]["server_tool_use"]
    assert usage == {
        "web_search_requests": int(tool["name"] == "web_search"),
        "web_fetch_requests": int(tool["name"] == "web_fetch"),
    }
    if result_type == "web_search_tool_result":
        assert result["content"][0]["type"] == "web_search_result"
        assert text["citations"][0]["type"] == "web_search_result_location"
    else:
        assert result["content"]["type"] == "web_fetch_result"
        assert result["content"]["content"]["type"] == "document"
    events = stream(http, body)
    rebuilt = rebuild(events)
    assert shapes(rebuilt) == shapes(message["content"])
    assert rebuilt[0]["input"] == use["input"]
    assert events[-2]["usage"]["server_tool_use"] == usage


def test_citations_of_a_document_in_json_and_stream(http):
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Foxes are small omnivores."},
        "title": "Foxes",
        "citations": {"enabled": True},
    }
    body = {
        **SONNET_5,
        "messages": [{"role": "user", "content": [document, {"type": "text", "text": "What are foxes?"}]}],
    }
    text = post(http, body)["content"][0]
    citation = text["citations"][0]
    assert citation["type"] == "char_location" and citation["document_index"] == 0
    assert citation["cited_text"] == "Foxes are small omnivores." and citation["end_char_index"] == 26
    events = stream(http, body)
    assert events[1]["content_block"] == {"type": "text", "text": "", "citations": []}
    assert events[3]["delta"] == {"type": "citations_delta", "citation": citation}
    assert rebuild(events)[0] == text
    uncited = {**body, "messages": [{"role": "user", "content": [{**document, "citations": None}, "x"][:1]}]}
    assert "citations" not in post(http, uncited)["content"][0]


def test_count_tokens_answers_input_tokens(http):
    counted = post(
        http, {k: v for k, v in SONNET_5.items() if k != "max_tokens"}, path="/v1/messages/count_tokens"
    )
    assert set(counted) == {"input_tokens"} and counted["input_tokens"] > 0


def test_padded_streams_keep_the_same_json():
    with emulator_running("--pad-stream-json") as padded_url, emulator_running() as plain_url:
        raw = {}
        for name, url in (("padded", padded_url), ("plain", plain_url)):
            for path, version, body in (
                ("/v1/messages", VERSION, SONNET_5),
                (
                    "/v1/complete",
                    "2023-01-01",
                    {
                        "model": "claude-v1",
                        "prompt": "\n\nHuman: Hi\n\nAssistant:",
                        "max_tokens_to_sample": 30,
                    },
                ),
            ):
                response = httpx.post(
                    f"{url}{path}", headers=api_headers(version), json={**body, "stream": True}
                )
                raw[name, path] = response.content
        for path in ("/v1/messages", "/v1/complete"):
            padded, plain = parse_sse(raw["padded", path]), parse_sse(raw["plain", path])
            assert [e.event for e in padded] == [e.event for e in plain]
            assert any(e.data.endswith(" }") for e in padded)
            assert not any(e.data.endswith(" }") for e in plain)
            for a, b in zip(padded, plain, strict=True):
                if a.data.startswith("{"):
                    one, other = json.loads(a.data), json.loads(b.data)
                    assert one.keys() == other.keys()
        assert raw["padded", "/v1/complete"].endswith(b"data: [DONE]\r\n\r\n")
    # The header switches padding on for one request.
    with emulator_running() as url:
        response = httpx.post(
            f"{url}/v1/messages",
            headers=api_headers(VERSION, **{"x-emulator-pad-stream-json": "1"}),
            json={**SONNET_5, "stream": True},
        )
        assert any(e.data.endswith(" }") for e in parse_sse(response.content))
