"""Bad input gets the API's error, in the API's shape, with a request-id, and never crashes the server."""

import json

import httpx
import pytest

from .conftest import COMPLETE, KEY, MESSAGE, api_headers, emulator_running

COUNT = {key: value for key, value in MESSAGE.items() if key != "max_tokens"}


def assert_api_error(response: httpx.Response, status: int, error_type: str, message_start: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    request_id = response.headers["request-id"]
    assert request_id.startswith("req_")
    body = response.json()
    assert body == {
        "type": "error",
        "error": {"type": error_type, "message": body["error"]["message"]},
        "request_id": request_id,
    }
    assert body["error"]["message"].startswith(message_start), body["error"]["message"]


def still_answers(http) -> None:
    assert http.get("/v1/models", headers=api_headers("2023-06-01")).status_code == 200


RAW_BODIES = {
    "malformed JSON": (b'{"model": "claude-2.1", ', "The request body is not valid JSON"),
    "not an object": (b'["model"]', "The request body must be a JSON object"),
    "bad UTF-8": (b'{"model": "claude-\xff\xfe"}', "The request body is not valid UTF-8"),
    "empty body": (b"", "The request body is not valid JSON"),
    "nested deeper than the stack": (b"[" * 100_000 + b"]" * 100_000, "The request body"),
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
@pytest.mark.parametrize("path", ["/v1/complete", "/v1/messages", "/v1/messages/count_tokens"])
def test_unparseable_bodies(http, case, path):
    body, message = RAW_BODIES[case]
    response = http.post(path, headers=api_headers("2023-06-01"), content=body)
    assert_api_error(response, 400, "invalid_request_error", message)
    still_answers(http)


def wrong_types(body: dict, wrong: dict) -> list[tuple[dict, str]]:
    return [({**body, name: value}, name) for name, value in wrong.items()]


def missing(body: dict) -> list[tuple[dict, str]]:
    return [({k: v for k, v in body.items() if k != name}, name) for name in body]


FIELD_CASES = [
    *[
        ("/v1/complete", body, f"{name}: Input should be")
        for body, name in wrong_types(
            COMPLETE,
            {"model": 21, "prompt": ["Human"], "max_tokens_to_sample": "300", "stream": "yes"},
        )
    ],
    *[("/v1/complete", body, f"{name}: Field required") for body, name in missing(COMPLETE)],
    *[
        ("/v1/messages", body, f"{name}: Input should be")
        for body, name in wrong_types(
            MESSAGE,
            {
                "model": None,
                "max_tokens": True,
                "messages": {"role": "user"},
                "stream": 1,
                "temperature": "hot",
                "top_k": 1.5,
                "tools": {},
                "system": 3,
            },
        )
    ],
    *[("/v1/messages", body, f"{name}: Field required") for body, name in missing(MESSAGE)],
    *[
        ("/v1/messages/count_tokens", body, f"{name}: Input should be")
        for body, name in wrong_types(COUNT, {"model": 1, "messages": "hi"})
    ],
    *[("/v1/messages/count_tokens", body, f"{name}: Field required") for body, name in missing(COUNT)],
    ("/v1/messages", {**MESSAGE, "messages": []}, "messages: at least one message"),
    ("/v1/messages", {**MESSAGE, "messages": ["hi"]}, "messages.0: Input should be"),
    ("/v1/messages", {**MESSAGE, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role:"),
    ("/v1/messages", {**MESSAGE, "messages": [{"role": "user"}]}, "messages.0.content: Field required"),
    ("/v1/messages", {**MESSAGE, "messages": [{"role": "user", "content": 5}]}, "messages.0.content:"),
    ("/v1/messages", {**MESSAGE, "max_tokens": 0}, "max_tokens: Input should be greater"),
    ("/v1/messages", {**MESSAGE, "tools": ["get_weather"]}, "tools.0: Input should be"),
    ("/v1/messages", {**MESSAGE, "tools": [{"name": 1}]}, "tools.0.name: Input should be"),
    ("/v1/messages", {**MESSAGE, "tools": [{"name": "t", "input_schema": "x"}]}, "tools.0.input_schema:"),
    (
        "/v1/messages",
        {**MESSAGE, "tools": [{"name": "t", "input_schema": {"properties": [1]}}]},
        "tools.0.input_schema.properties:",
    ),
    (
        "/v1/complete",
        {**COMPLETE, "max_tokens_to_sample": 0},
        "max_tokens_to_sample: Input should be greater",
    ),
    ("/v1/messages", {**MESSAGE, "tool_choice": "auto"}, "tool_choice: Input should be"),
    ("/v1/messages", {**MESSAGE, "metadata": "me"}, "metadata: Input should be"),
    ("/v1/messages", {**MESSAGE, "stop_sequences": "END"}, "stop_sequences: Input should be"),
    ("/v1/messages", {**MESSAGE, "stop_sequences": ["END", 1]}, "stop_sequences.1: Input should be"),
    ("/v1/complete", {**COMPLETE, "stop_sequences": [None]}, "stop_sequences.0: Input should be"),
    ("/v1/complete", {**COMPLETE, "metadata": ["user"]}, "metadata: Input should be"),
    ("/v1/complete", {**COMPLETE, "prompt": "Hello"}, 'prompt must start with "\\n\\nHuman:"'),
    ("/v1/complete", {**COMPLETE, "prompt": "\n\nHuman: hi"}, 'prompt must end with "\\n\\nAssistant:"'),
]


@pytest.mark.parametrize(("path", "body", "message"), FIELD_CASES, ids=[case[2] for case in FIELD_CASES])
def test_wrong_and_missing_fields_name_the_field(http, path, body, message):
    for stream in (False, True):
        if stream and "stream" in body:
            continue
        sent = {**body, "stream": True} if stream and not path.endswith("count_tokens") else body
        response = http.post(path, headers=api_headers("2023-06-01"), content=json.dumps(sent))
        assert_api_error(response, 400, "invalid_request_error", message)


def test_unknown_model_is_404(http):
    for path, body in (("/v1/messages", MESSAGE), ("/v1/complete", COMPLETE)):
        response = http.post(path, headers=api_headers("2023-06-01"), json={**body, "model": "claude-99"})
        assert_api_error(response, 404, "not_found_error", "model: claude-99")
    response = http.get("/v1/models/claude-99", headers=api_headers("2023-06-01"))
    assert_api_error(response, 404, "not_found_error")


def test_unknown_paths_and_wrong_methods(http):
    for method, path in (
        ("GET", "/"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v2/messages"),
        ("PUT", "/x"),
    ):
        response = http.request(method, path, headers=api_headers("2023-06-01"), content=b"{}")
        assert_api_error(response, 404, "not_found_error", f"Not Found: {method} {path}")
    for method, path in (("GET", "/v1/messages"), ("POST", "/v1/models"), ("DELETE", "/v1/complete")):
        response = http.request(method, path, headers=api_headers("2023-06-01"))
        assert_api_error(response, 405, "invalid_request_error", f"Method {method} not allowed")
    still_answers(http)


def test_version_header(http):
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    response = http.post("/v1/messages", headers=headers, json=MESSAGE)
    assert_api_error(response, 400, "invalid_request_error", "anthropic-version: header is required")
    response = http.post("/v1/messages", headers={**headers, "anthropic-version": ""}, json=MESSAGE)
    assert_api_error(response, 400, "invalid_request_error", "anthropic-version: header is required")
    for version in ("2024-01-01", "latest", "2023-06-01,2026-10-21"):
        response = http.post("/v1/messages", headers={**headers, "anthropic-version": version}, json=MESSAGE)
        assert_api_error(
            response, 400, "invalid_request_error", f'anthropic-version: "{version}" is not a valid'
        )


def test_key_header(http):
    for headers in ({}, {"x-api-key": ""}, {"authorization": "Bearer"}, {"authorization": f"Basic {KEY}"}):
        sent = {"anthropic-version": "2023-06-01", "content-type": "application/json", **headers}
        response = http.post("/v1/messages", headers=sent, json=MESSAGE)
        assert_api_error(response, 401, "authentication_error", "x-api-key header is required")
    bearer = {"anthropic-version": "2023-06-01", "authorization": f"Bearer {KEY}"}
    assert http.post("/v1/messages", headers=bearer, json=MESSAGE).status_code == 200


def test_only_configured_keys_pass_and_x_api_key_wins():
    with (
        emulator_running("--api-key", "good", "--api-key", "also-good") as url,
        httpx.Client(base_url=url) as http,
    ):
        version = {"anthropic-version": "2023-06-01"}
        for key in ("good", "also-good"):
            assert (
                http.post("/v1/messages", headers={**version, "x-api-key": key}, json=MESSAGE).status_code
                == 200
            )
        wrong = http.post("/v1/messages", headers={**version, "x-api-key": "bad"}, json=MESSAGE)
        assert_api_error(wrong, 401, "authentication_error", "invalid x-api-key")
        # x-api-key wins over Authorization when both come.
        both = {**version, "x-api-key": "bad", "authorization": "Bearer good"}
        assert_api_error(http.post("/v1/messages", headers=both, json=MESSAGE), 401, "authentication_error")
        both = {**version, "x-api-key": "good", "authorization": "Bearer bad"}
        assert http.post("/v1/messages", headers=both, json=MESSAGE).status_code == 200


def test_bodies_over_the_limit_get_413_and_the_server_goes_on():
    with emulator_running("--max-body-bytes", "2000") as url, httpx.Client(base_url=url, timeout=30) as http:
        padded = {**MESSAGE, "metadata": {"user_id": "x" * 1500}}
        assert http.post("/v1/messages", headers=api_headers("2023-06-01"), json=padded).status_code == 200
        for size in (2001, 5_000_000):
            huge = {**MESSAGE, "metadata": {"user_id": "x" * size}}
            response = http.post("/v1/messages", headers=api_headers("2023-06-01"), json=huge)
            assert_api_error(response, 413, "request_too_large")
            still_answers(http)


def test_bad_emulator_control_headers_get_a_clear_error_or_are_ignored(http):
    for times in ("once", "1.5", "-"):
        fault = {"x-emulator-fault": "rate_limit", "x-emulator-fault-times": times}
        response = http.post("/v1/messages", headers=api_headers("2023-06-01", **fault), json=MESSAGE)
        assert_api_error(response, 400, "invalid_request_error", "x-emulator-fault-times:")
    # Delays that are not finite numbers are ignored rather than hanging or crashing the response.
    for value in ("nan", "inf", "-inf", "-5", "soon"):
        headers = api_headers(
            "2023-06-01", **{"x-emulator-first-token-delay-ms": value, "x-emulator-event-delay-ms": value}
        )
        response = http.post("/v1/messages", headers=headers, json={**MESSAGE, "stream": True})
        assert response.status_code == 200 and response.content.endswith(b'{"type": "message_stop"}\n\n')
    # An unknown fault name is no fault.
    headers = api_headers("2023-06-01", **{"x-emulator-fault": "meteor"})
    assert http.post("/v1/messages", headers=headers, json=MESSAGE).status_code == 200
