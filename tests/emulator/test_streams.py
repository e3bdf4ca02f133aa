"""Each stream format byte by byte, and what makes the generated text the same or different."""

import itertools
import json

import httpx

from migrations_audit.sse import parse_sse

from .conftest import COMPLETE, MESSAGE, WEATHER_TOOL, api_headers, emulator_running


def post(http, path: str, version: str, body: dict, **headers: str):
    response = http.post(path, headers=api_headers(version, **headers), json=body)
    assert response.status_code == 200, response.text
    return response


def stream_bytes(http, path: str, version: str, body: dict, **headers: str) -> bytes:
    response = post(http, path, version, {**body, "stream": True}, **headers)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    return response.content


def test_legacy_complete_stream_is_data_only_cumulative_crlf_and_ends_with_done(http):
    raw = stream_bytes(http, "/v1/complete", "2023-01-01", COMPLETE)
    assert raw.endswith(b"data: [DONE]\r\n\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")  # every line ends in CRLF
    assert raw.startswith(b'data: {"completion": ')
    assert b"\r\nevent: ping\r\ndata: 20" in raw  # the bare-timestamp ping
    events = parse_sse(raw)
    assert [e.event for e in events if e.event is not None] == ["ping"]
    assert events[-1].event is None and events[-1].data == "[DONE]"
    completions = [json.loads(e.data) for e in events[:-1] if e.event is None]
    assert all(set(c) >= {"exception", "truncated", "stop"} for c in completions)
    texts = [c["completion"] for c in completions]
    assert len(texts) >= 2
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    assert [c["stop_reason"] for c in completions[:-1]] == [None] * (len(completions) - 1)
    assert completions[-1]["stop_reason"] in ("stop_sequence", "max_tokens")
    # log_id is in JSON answers only: the new stream format has none, and no changelog entry says
    # it was removed, so the emulator keeps streams alike there (see its README).
    assert not any("log_id" in c for c in completions)


def test_2023_06_01_complete_stream_is_named_incremental_crlf_without_done(http):
    raw = stream_bytes(http, "/v1/complete", "2023-06-01", COMPLETE)
    assert b"[DONE]" not in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.startswith(b"event: completion\r\ndata: {")
    assert b'event: ping\r\ndata: {"type": "ping"}\r\n\r\n' in raw
    events = parse_sse(raw)
    assert {e.event for e in events} == {"completion", "ping"}
    pieces = [json.loads(e.data) for e in events if e.event == "completion"]
    assert all("exception" not in p and "truncated" not in p for p in pieces)
    assert all(p["type"] == "completion" and p["id"].startswith("compl_") for p in pieces)
    assert len({p["id"] for p in pieces}) == 1
    assert pieces[-1]["completion"] == "" and pieces[-1]["stop_reason"] is not None
    assert all(p["stop_reason"] is None for p in pieces[:-1])


def test_the_pieces_of_2023_06_01_concatenate_to_the_last_legacy_completion(http):
    legacy = parse_sse(stream_bytes(http, "/v1/complete", "2023-01-01", COMPLETE))
    pieces = parse_sse(stream_bytes(http, "/v1/complete", "2023-06-01", COMPLETE))
    last_legacy = [json.loads(e.data) for e in legacy if e.event is None and e.data != "[DONE]"][-1]
    joined = "".join(json.loads(e.data)["completion"] for e in pieces if e.event == "completion")
    assert joined == last_legacy["completion"]
    # And both equal the JSON answer of either version.
    for version in ("2023-01-01", "2023-06-01"):
        assert post(http, "/v1/complete", version, COMPLETE).json()["completion"] == joined


def test_json_complete_fields_per_version(http):
    legacy = post(http, "/v1/complete", "2023-01-01", COMPLETE).json()
    current = post(http, "/v1/complete", "2023-06-01", COMPLETE).json()
    assert legacy["exception"] is None and legacy["truncated"] is False
    assert "exception" not in current and "truncated" not in current
    assert current["type"] == "completion" and current["id"].startswith("compl_")
    assert legacy["log_id"] != current["log_id"]


def test_messages_stream_is_lf_framed_with_the_full_event_sequence(http):
    for version in ("2023-06-01", "2026-10-21"):
        raw = stream_bytes(http, "/v1/messages", version, MESSAGE)
        assert b"\r" not in raw and b"[DONE]" not in raw
        assert raw.startswith(b"event: message_start\ndata: {")
        assert raw.endswith(b'event: message_stop\ndata: {"type": "message_stop"}\n\n')
        events = parse_sse(raw)
        names = [e.event for e in events]
        assert names[:3] == ["message_start", "content_block_start", "ping"]
        assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        assert set(names[3:-3]) == {"content_block_delta"}
        data = [json.loads(e.data) for e in events]
        assert all(d["type"] == e.event for d, e in zip(data, events, strict=True))
        text = "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta")
        message = post(http, "/v1/messages", version, MESSAGE).json()
        assert text == message["content"][0]["text"]
        assert data[-2]["usage"]["output_tokens"] == message["usage"]["output_tokens"]
        assert data[-2]["delta"]["stop_reason"] == message["stop_reason"] == "end_turn"


def test_tool_use_streams_as_input_json_delta(http):
    body = {**MESSAGE, "tools": [WEATHER_TOOL]}
    events = parse_sse(stream_bytes(http, "/v1/messages", "2026-10-21", body))
    data = [json.loads(e.data) for e in events]
    tool_start = next(d for d in data if d["type"] == "content_block_start" and d["index"] == 1)
    assert tool_start["content_block"]["type"] == "tool_use"
    assert tool_start["content_block"]["input"] == {}
    partial = [
        d["delta"]["partial_json"]
        for d in data
        if d["type"] == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert len(partial) >= 2
    message = post(http, "/v1/messages", "2026-10-21", body).json()
    assert json.loads("".join(partial)) == message["content"][1]["input"]
    assert message["stop_reason"] == "tool_use"
    assert data[-2]["delta"]["stop_reason"] == "tool_use"
    # tool_choice none: text only.
    plain = post(http, "/v1/messages", "2026-10-21", {**body, "tool_choice": {"type": "none"}}).json()
    assert [block["type"] for block in plain["content"]] == ["text"]


def test_same_request_and_seed_same_text_ids_vary(http):
    first = post(http, "/v1/messages", "2023-06-01", MESSAGE)
    second = post(http, "/v1/messages", "2023-06-01", MESSAGE)
    assert first.json()["content"] == second.json()["content"]
    assert first.json()["id"] != second.json()["id"]
    assert first.headers["request-id"] != second.headers["request-id"]
    other = post(http, "/v1/messages", "2023-06-01", {**MESSAGE, "max_tokens": 299}).json()
    assert other["content"] != first.json()["content"]
    varied = {
        post(http, "/v1/messages", "2023-06-01", MESSAGE, **{"x-emulator-vary": "1"}).json()["content"][0][
            "text"
        ]
        for _ in range(4)
    }
    assert len(varied) > 1


def test_the_seed_decides_the_text():
    texts = {}
    for options in (("--seed", "0"), ("--seed", "0"), ("--seed", "7"), ("--vary",)):
        with emulator_running(*options) as url:
            response = httpx.post(f"{url}/v1/messages", headers=api_headers("2023-06-01"), json=MESSAGE)
            texts.setdefault(options, []).append(response.json()["content"][0]["text"])
            if options == ("--vary",):
                again = httpx.post(f"{url}/v1/messages", headers=api_headers("2023-06-01"), json=MESSAGE)
                texts[options].append(again.json()["content"][0]["text"])
    assert texts[("--seed", "0")][0] == texts[("--seed", "0")][1]
    assert texts[("--seed", "7")][0] != texts[("--seed", "0")][0]
    assert texts[("--vary",)][0] != texts[("--vary",)][1]


def test_ids_log_ids_and_timestamps_vary_per_call_while_the_text_does_not(http):
    legacy = [post(http, "/v1/complete", "2023-01-01", COMPLETE).json() for _ in range(2)]
    assert legacy[0]["completion"] == legacy[1]["completion"]
    assert legacy[0]["log_id"] != legacy[1]["log_id"]
    assert all(len(c["log_id"]) == 32 and int(c["log_id"], 16) >= 0 for c in legacy)
    current = [post(http, "/v1/complete", "2023-06-01", COMPLETE).json() for _ in range(2)]
    assert current[0]["id"] != current[1]["id"]
    streams = [parse_sse(stream_bytes(http, "/v1/messages", "2026-10-21", MESSAGE)) for _ in range(2)]
    starts = [json.loads(events[0].data)["message"]["id"] for events in streams]
    assert starts[0] != starts[1] and all(start.startswith("msg_") for start in starts)
    texts = [[e.data for e in events if e.event == "content_block_delta"] for events in streams]
    assert texts[0] == texts[1]
