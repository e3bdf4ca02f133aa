"""Four real releases of the official `anthropic` SDK talk to the emulator over real HTTP.

Each release runs in its own cached virtualenv as a subprocess (tests.support.sdk); one script per
release batches its calls and prints what it saw as JSON, and the emulator's /_emulator/stats shows
what reached it (version header, key header, arrival times).
"""

import itertools
import json
import textwrap
import uuid

import pytest

from tests.support.sdk import run_sdk

from .conftest import COMPLETE, KEY, MESSAGE, WEATHER_TOOL, emulator_running, reset, stats

pytestmark = pytest.mark.slow


def sdk(release: str, script: str, **urls: str) -> dict:
    """Run `script` under SDK `release`; it finds KEY, the request bodies and `urls` as globals."""
    preamble = (
        "import json\n"
        f"KEY = {KEY!r}\n"
        f"COMPLETE = json.loads({json.dumps(COMPLETE)!r})\n"
        f"MESSAGE = json.loads({json.dumps(MESSAGE)!r})\n"
        f"WEATHER_TOOL = json.loads({json.dumps(WEATHER_TOOL)!r})\n"
        + "".join(f"{name} = {url!r}\n" for name, url in urls.items())
    )
    return run_sdk(release, preamble + textwrap.dedent(script))


def requests_seen(url: str) -> list[dict]:
    return [r for r in stats(url)["recent"] if not r["path"].startswith("/_emulator")]


def test_sdk_0_2_10_completion_and_stream_in_the_2023_01_01_era(emulator):
    reset(emulator)
    seen = sdk(
        "0.2.10",
        """
        import anthropic
        from anthropic import constants

        client = anthropic.Client(KEY, api_url=URL)
        out = {"json": client.completion(**COMPLETE)}
        out["stream"] = list(client.completion_stream(**COMPLETE))
        # The model aliases 2023 clients sent.
        out["aliases"] = {
            model: client.completion(**{**COMPLETE, "model": model})
            for model in ("claude-v1", "claude-instant-1")
        }
        out["alias_stream"] = list(client.completion_stream(**{**COMPLETE, "model": "claude-instant-1"}))
        # The same SDK pointed at a 2023-06-01 stream (its header is a module constant).
        constants.ANTHROPIC_VERSION = "2023-06-01"
        try:
            out["newer_stream"] = {"events": list(client.completion_stream(**COMPLETE))}
        except anthropic.ApiException as error:
            out["newer_stream"] = {"error": [str(arg) for arg in error.args]}
        print(json.dumps(out))
        """,
        URL=emulator,
    )
    completion = seen["json"]
    assert completion["exception"] is None and completion["truncated"] is False
    assert completion["stop_reason"] in ("stop_sequence", "max_tokens")
    assert len(completion["log_id"]) == 32

    events = seen["stream"]
    # The SDK skipped the ping and `data: [DONE]` itself: every item is a completion object.
    assert len(events) >= 2 and all(isinstance(event, dict) for event in events)
    texts = [event["completion"] for event in events]
    assert all(later.startswith(earlier) and later != earlier for earlier, later in itertools.pairwise(texts))
    assert [event["stop_reason"] is None for event in events] == [True] * (len(events) - 1) + [False]
    assert texts[-1] == completion["completion"]  # same request and seed, streamed or not

    # 0.2.10 parses lines itself and knows only data-only events: the named `event: completion`
    # line of a 2023-06-01 stream is not JSON, so it raises instead of returning anything.
    assert "error" in seen["newer_stream"]
    assert "Error processing stream data" in seen["newer_stream"]["error"][1]
    assert seen["newer_stream"]["error"][2] == "event: completion"

    for model, answer in seen["aliases"].items():
        assert answer["model"] == model and answer["exception"] is None and answer["completion"]
    assert seen["alias_stream"][-1]["stop_reason"] is not None
    assert all(event["model"] == "claude-instant-1" for event in seen["alias_stream"])

    versions = [(r["version"], r["key_header"], r["status"]) for r in requests_seen(emulator)]
    assert versions == [("2023-01-01", "x-api-key", 200)] * 5 + [("2023-06-01", "x-api-key", 200)]


def test_sdk_0_125_0_messages_with_temperature_and_text_completions(emulator):
    reset(emulator)
    seen = sdk(
        "0.125.0",
        """
        import anthropic

        client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
        out = {"message": client.messages.create(**MESSAGE, temperature=0.7).model_dump()}
        out["completion"] = client.completions.create(**COMPLETE).model_dump()
        pieces = list(client.completions.create(**COMPLETE, stream=True))
        out["pieces"] = [piece.model_dump() for piece in pieces]
        with client.messages.stream(**MESSAGE) as stream:
            out["stream_text"] = "".join(stream.text_stream)
            out["stream_final"] = stream.get_final_message().model_dump()
        out["plain"] = client.messages.create(**MESSAGE).model_dump()
        # The legacy data-only stream, read by this SDK's Stream: only `completion` events count.
        legacy = client.completions.create(
            **COMPLETE, stream=True, extra_headers={"anthropic-version": "2023-01-01"}
        )
        out["legacy_pieces"] = [piece.model_dump() for piece in legacy]
        print(json.dumps(out))
        """,
        URL=emulator,
    )
    message = seen["message"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "text" and message["content"][0]["text"]
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0

    completion = seen["completion"]
    assert completion["type"] == "completion" and completion["id"].startswith("compl_")
    pieces = seen["pieces"]
    assert pieces[-1]["stop_reason"] is not None
    assert all(piece["stop_reason"] is None for piece in pieces[:-1])
    assert "".join(piece["completion"] for piece in pieces) == completion["completion"]

    assert seen["stream_text"] == seen["stream_final"]["content"][0]["text"]
    assert seen["stream_text"] == seen["plain"]["content"][0]["text"]
    assert seen["stream_final"]["stop_reason"] == "end_turn"

    # A 0.x SDK given a 2023-01-01 stream: the data-only events are skipped, nothing comes out.
    assert seen["legacy_pieces"] == []

    versions = [(r["path"], r["version"], r["key_header"], r["status"]) for r in requests_seen(emulator)]
    assert versions[0] == ("/v1/messages", "2023-06-01", "x-api-key", 200)  # temperature accepted
    assert {v[1:] for v in versions[:-1]} == {("2023-06-01", "x-api-key", 200)}
    assert versions[-1] == ("/v1/complete", "2023-01-01", "x-api-key", 200)


def test_sdk_1_17_0_messages_under_2023_06_01_with_x_api_key(emulator):
    reset(emulator)
    seen = sdk(
        "1.17.0",
        """
        import anthropic

        client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
        out = {"message": client.messages.create(**MESSAGE).model_dump()}
        with client.messages.stream(**MESSAGE) as stream:
            out["stream_text"] = "".join(stream.text_stream)
            out["stream_final"] = stream.get_final_message().model_dump()
        # No Text Completions resource any more; a legacy stream read with the generic Stream.
        legacy = client.post(
            "/v1/complete", cast_to=object, body={**COMPLETE, "stream": True},
            options={"headers": {"anthropic-version": "2023-01-01"}},
            stream=True, stream_cls=anthropic.Stream[object],
        )
        out["legacy_items"] = list(legacy)
        print(json.dumps(out))
        """,
        URL=emulator,
    )
    # Like 0.125.0 and 2.x: the unnamed legacy events are skipped, the stream looks empty.
    assert seen["legacy_items"] == []
    text = seen["message"]["content"][0]["text"]
    assert text and seen["stream_text"] == text
    assert seen["stream_final"]["usage"]["output_tokens"] == seen["message"]["usage"]["output_tokens"]
    versions = [(r["version"], r["key_header"], r["status"]) for r in requests_seen(emulator)]
    assert versions == [("2023-06-01", "x-api-key", 200)] * 2 + [("2023-01-01", "x-api-key", 200)]


@pytest.fixture(scope="module")
def strict_emulator():
    """Accepts only the key `good` and asks for a 2-second pause in its 429s."""
    with emulator_running("--api-key", "good", "--retry-after", "2") as url:
        yield url


def test_sdk_2_messages_streams_tools_and_count_tokens_under_2026_10_21(emulator):
    reset(emulator)
    seen = sdk(
        "2",
        """
        import anthropic

        client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
        out = {"version": anthropic.__version__}
        out["message"] = client.messages.create(**MESSAGE).model_dump()
        with client.messages.stream(**MESSAGE) as stream:
            out["stream_text"] = "".join(stream.text_stream)
        tool_request = {**MESSAGE, "tools": [WEATHER_TOOL]}
        out["tool_json"] = client.messages.create(**tool_request).model_dump()
        with client.messages.stream(**tool_request) as stream:
            out["tool_deltas"] = [
                event.delta.partial_json
                for event in stream
                if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
            ]
            out["tool_final"] = stream.get_final_message().model_dump()
        out["count"] = client.messages.count_tokens(
            model=MESSAGE["model"], messages=MESSAGE["messages"]
        ).model_dump()
        print(json.dumps(out))
        """,
        URL=emulator,
    )
    assert seen["version"].startswith("2.")
    text = seen["message"]["content"][0]["text"]
    assert text and seen["stream_text"] == text

    tool_final = seen["tool_final"]
    assert tool_final["stop_reason"] == "tool_use"
    tool_use = tool_final["content"][1]
    assert tool_use["type"] == "tool_use" and tool_use["name"] == "get_weather"
    assert tool_use["id"].startswith("toolu_")
    # The SDK reassembled the input_json_delta pieces into the block's input.
    assert len(seen["tool_deltas"]) >= 2
    assert json.loads("".join(seen["tool_deltas"])) == tool_use["input"]
    assert tool_use["input"] == seen["tool_json"]["content"][1]["input"]
    assert set(tool_use["input"]) == {"location", "days"}

    assert seen["count"]["input_tokens"] > 0

    requests = requests_seen(emulator)
    assert {(r["version"], r["key_header"], r["status"]) for r in requests} == {
        ("2026-10-21", "authorization", 200)
    }
    assert [r["path"] for r in requests][-1] == "/v1/messages/count_tokens"


def test_sdk_2_error_classes(emulator, strict_emulator):
    seen = sdk(
        "2",
        """
        import anthropic

        client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
        strict = anthropic.Anthropic(base_url=STRICT_URL, api_key="not-the-good-one", max_retries=0)
        calls = {
            "temperature": lambda: client.messages.create(**MESSAGE, extra_body={"temperature": 1.0}),
            "wrong_key": lambda: strict.messages.create(**MESSAGE),
            # The SDK refuses to send an empty Bearer key itself; leave the header out instead.
            "no_key": lambda: client.messages.create(
                **MESSAGE, extra_headers={"Authorization": anthropic.Omit()}
            ),
            "unknown_model": lambda: client.messages.create(**{**MESSAGE, "model": "claude-nonexistent"}),
        }
        for fault in ("rate_limit", "overloaded", "server_error"):
            calls[fault] = lambda fault=fault: client.messages.create(
                **MESSAGE, extra_headers={"x-emulator-fault": fault}
            )
        out = {}
        for name, call in calls.items():
            try:
                call()
                out[name] = None
            except anthropic.APIStatusError as error:
                out[name] = {
                    "classes": [cls.__name__ for cls in type(error).__mro__],
                    "status": error.status_code,
                    "type": error.body["error"]["type"],
                    "message": error.body["error"]["message"],
                    "request_id": error.request_id,
                    "retry_after": error.response.headers.get("retry-after"),
                }
        for fault in ("stream_error", "drop"):
            try:
                with client.messages.stream(**MESSAGE, extra_headers={"x-emulator-fault": fault}) as stream:
                    "".join(stream.text_stream)
                out[fault] = None
            except Exception as error:
                out[fault] = {
                    "classes": [cls.__name__ for cls in type(error).__mro__],
                    "status": getattr(error, "status_code", None),
                    "body": getattr(error, "body", None),
                }
        print(json.dumps(out))
        """,
        URL=emulator,
        STRICT_URL=strict_emulator,
    )
    # An `event: error` mid-stream: the generic APIStatusError, carrying the stream's status 200.
    assert seen["stream_error"]["classes"][0] == "APIStatusError"
    assert seen["stream_error"]["status"] == 200
    assert seen["stream_error"]["body"]["error"]["type"] == "overloaded_error"
    # A connection cut mid-stream: the transport's own error comes through, not an APIConnectionError.
    assert seen["drop"]["classes"][0] == "RemoteProtocolError"
    assert "APIError" not in seen["drop"]["classes"]
    expected = {
        "temperature": ("BadRequestError", 400, "invalid_request_error"),
        "wrong_key": ("AuthenticationError", 401, "authentication_error"),
        "no_key": ("AuthenticationError", 401, "authentication_error"),
        "unknown_model": ("NotFoundError", 404, "not_found_error"),
        "rate_limit": ("RateLimitError", 429, "rate_limit_error"),
        # 2.x has OverloadedError for 529, a subclass of InternalServerError.
        "overloaded": ("OverloadedError", 529, "overloaded_error"),
        "server_error": ("InternalServerError", 500, "api_error"),
    }
    for name, (cls, status, error_type) in expected.items():
        assert seen[name] is not None, name
        assert seen[name]["classes"][0] == cls, (name, seen[name]["classes"])
        assert (seen[name]["status"], seen[name]["type"]) == (status, error_type), name
        assert seen[name]["request_id"].startswith("req_"), name
    assert "InternalServerError" in seen["overloaded"]["classes"]
    assert seen["temperature"]["message"] == "temperature: Extra inputs are not permitted"
    assert seen["rate_limit"]["retry_after"] == "1"


def test_sdk_2_retries_a_429_after_retry_after(emulator, strict_emulator):
    reset(emulator)
    reset(strict_emulator)
    seen = sdk(
        "2",
        """
        import anthropic

        out = {}
        servers = (("default", URL, KEY, FAULT_KEY), ("slow", STRICT_URL, "good", SLOW_KEY))
        for name, url, key, fault_key in servers:
            client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=2)
            message = client.messages.create(
                **MESSAGE,
                extra_headers={
                    "x-emulator-fault": "rate_limit",
                    "x-emulator-fault-times": "1",
                    "x-emulator-fault-key": fault_key,
                },
            )
            out[name] = message.content[0].text
        print(json.dumps(out))
        """,
        URL=emulator,
        STRICT_URL=strict_emulator,
        FAULT_KEY=str(uuid.uuid4()),
        SLOW_KEY=str(uuid.uuid4()),
    )
    assert seen["default"] and seen["slow"]
    for url, pause in ((emulator, 1), (strict_emulator, 2)):
        first, second = requests_seen(url)
        assert (first["status"], second["status"]) == (429, 200)
        # Arrival times recorded by the emulator: the SDK waited the retry-after it was given.
        assert second["t"] - first["t"] >= pause * 0.95


def test_sdk_2_given_a_legacy_2023_01_01_stream_sees_nothing(emulator):
    """A client that upgrades to SDK 2.x but keeps sending 2023-01-01 gets an empty stream, no error.

    The 2.x Stream skips every event without a name (`if sse.event is None: continue`), and every
    legacy completion event is data-only; the raw decoder shows the events were there all along. This
    is the silent breakage the product exists to surface.
    """
    seen = sdk(
        "2",
        """
        import anthropic

        client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
        options = {"headers": {"anthropic-version": "2023-01-01"}}
        body = {**COMPLETE, "stream": True}
        stream = client.post(
            "/v1/complete", cast_to=object, body=body, options=options,
            stream=True, stream_cls=anthropic.Stream[object],
        )
        out = {"items": list(stream)}
        raw = client.post(
            "/v1/complete", cast_to=object, body=body, options=options,
            stream=True, stream_cls=anthropic.Stream[object],
        )
        out["raw"] = [[sse.event, sse.data] for sse in anthropic.Stream.raw_events(raw.response)]
        print(json.dumps(out))
        """,
        URL=emulator,
    )
    assert seen["items"] == []
    raw = seen["raw"]
    assert raw[-1] == [None, "[DONE]"]
    completions = [json.loads(data) for event, data in raw[:-1] if event is None]
    assert len(completions) >= 2 and completions[-1]["stop_reason"] is not None
    assert [event for event, _ in raw if event is not None] == ["ping"]


def test_sdk_2_current_features_with_the_sdk_s_own_methods(emulator):
    """Thinking, structured outputs, web search, count_tokens, batches, files and the models list, as
    a team on the current SDK writes them (`claude-sonnet-5`, as the SDK's examples use)."""
    reset(emulator)
    seen = sdk(
        "2",
        """
        import anthropic
        import pydantic

        client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
        base = {**MESSAGE, "model": "claude-sonnet-5", "max_tokens": 2048}
        out = {}
        thought = client.messages.create(**base, thinking={"type": "adaptive"})
        out["thinking"] = thought.model_dump()
        with client.messages.stream(**base, thinking={"type": "adaptive"}) as stream:
            out["thinking_events"] = [event.type for event in stream]
            out["thinking_final"] = stream.get_final_message().model_dump()

        class Fox(pydantic.BaseModel):
            name: str
            age: int
            colours: list[str]

        parsed = client.messages.parse(**base, output_format=Fox)
        out["parsed"] = parsed.parsed_output.model_dump()
        out["parsed_text"] = parsed.content[0].text

        searched = client.messages.create(
            **base, tools=[{"type": "web_search_20260209", "name": "web_search"}]
        )
        out["search"] = searched.model_dump()
        out["count"] = client.messages.count_tokens(
            model=base["model"], messages=base["messages"]
        ).input_tokens

        batch = client.messages.batches.create(
            requests=[
                {"custom_id": "first", "params": base},
                {"custom_id": "second", "params": {**base, "model": "claude-opus-4-8"}},
            ]
        )
        out["batch_created"] = batch.processing_status
        out["batch_ended"] = client.messages.batches.retrieve(batch.id).processing_status
        out["batch_results"] = [
            [item.custom_id, item.result.type, item.result.message.model]
            for item in client.messages.batches.results(batch.id)
        ]
        out["batch_listed"] = [b.id for b in client.messages.batches.list(limit=10)][0] == batch.id

        uploaded = client.beta.files.upload(file=("notes.txt", b"foxes are small", "text/plain"))
        out["file"] = uploaded.model_dump(mode="json")
        out["file_meta"] = client.beta.files.retrieve_metadata(uploaded.id).model_dump(mode="json")
        out["file_bytes"] = client.beta.files.download(uploaded.id).read().decode()
        out["file_listed"] = [f.id for f in client.beta.files.list()]
        out["file_deleted"] = client.beta.files.delete(uploaded.id).model_dump()

        out["models"] = [model.id for model in client.models.list(limit=5)]
        out["alias"] = client.models.retrieve("claude-haiku-4-5").id
        print(json.dumps(out))
        """,
        URL=emulator,
    )
    thinking = seen["thinking"]["content"]
    assert [block["type"] for block in thinking] == ["thinking", "text"]
    assert thinking[0]["signature"] and thinking[0]["thinking"]
    assert "thinking" in seen["thinking_events"] and "signature" in seen["thinking_events"]
    assert seen["thinking_final"]["content"][0]["thinking"] == thinking[0]["thinking"]

    assert set(seen["parsed"]) == {"name", "age", "colours"}
    assert json.loads(seen["parsed_text"]) == seen["parsed"]

    search = seen["search"]
    assert [block["type"] for block in search["content"]] == [
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert search["usage"]["server_tool_use"]["web_search_requests"] == 1
    assert search["content"][2]["citations"][0]["type"] == "web_search_result_location"
    assert seen["count"] > 0

    assert (seen["batch_created"], seen["batch_ended"]) == ("in_progress", "ended")
    assert seen["batch_results"] == [
        ["first", "succeeded", "claude-sonnet-5"],
        ["second", "succeeded", "claude-opus-4-8"],
    ]
    assert seen["batch_listed"]

    assert seen["file"]["filename"] == "notes.txt" and seen["file"]["size_bytes"] == 15
    assert seen["file_meta"] == seen["file"]
    assert seen["file_bytes"] == "foxes are small"
    assert seen["file"]["id"] in seen["file_listed"]
    assert seen["file_deleted"] == {"id": seen["file"]["id"], "type": "file_deleted"}

    # The list pages itself (limit 5 per page) through every model, newest first.
    assert len(seen["models"]) > 30 and seen["models"].index("claude-opus-5") < seen["models"].index(
        "claude-2.1"
    )
    assert seen["alias"] == "claude-haiku-4-5-20251001"

    requests = requests_seen(emulator)
    assert {(r["version"], r["key_header"]) for r in requests} == {("2026-10-21", "authorization")}
    assert {r["status"] for r in requests} == {200}
