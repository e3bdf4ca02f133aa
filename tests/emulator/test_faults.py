"""Faults on demand (x-emulator-fault, --fault-rate-*) and added latency.

Timing is only checked from below (a delay is at least what was asked), never against a ceiling.
"""

import json
import time
from collections import Counter

import httpx
import pytest

from migrations_audit.sse import SseParser, parse_sse

from .conftest import COMPLETE, MESSAGE, api_headers, emulator_running, stats

ERRORS = {
    "rate_limit": (429, "rate_limit_error"),
    "overloaded": (529, "overloaded_error"),
    "server_error": (500, "api_error"),
}


@pytest.mark.parametrize("fault", list(ERRORS))
@pytest.mark.parametrize("stream", [False, True])
def test_error_faults(http, fault, stream):
    headers = api_headers("2026-10-21", **{"x-emulator-fault": fault})
    response = http.post("/v1/messages", headers=headers, json={**MESSAGE, "stream": stream})
    status, error_type = ERRORS[fault]
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert response.headers["request-id"] == response.json()["request_id"]
    assert response.headers["anthropic-ratelimit-requests-limit"] == "4000"
    assert "anthropic-ratelimit-requests-reset" in response.headers
    if fault == "rate_limit":
        assert response.headers["retry-after"] == "1"


def test_fault_times_and_key_fail_only_the_first_requests(http):
    headers = api_headers(
        "2023-06-01",
        **{
            "x-emulator-fault": "overloaded",
            "x-emulator-fault-times": "2",
            "x-emulator-fault-key": "k-times",
        },
    )
    statuses = [http.post("/v1/messages", headers=headers, json=MESSAGE).status_code for _ in range(4)]
    assert statuses == [529, 529, 200, 200]
    other_key = {**headers, "x-emulator-fault-key": "k-other"}
    assert http.post("/v1/messages", headers=other_key, json=MESSAGE).status_code == 529


@pytest.mark.parametrize(
    ("path", "version", "body", "framing"),
    [
        ("/v1/messages", "2026-10-21", MESSAGE, b"\n"),
        ("/v1/complete", "2023-06-01", COMPLETE, b"\r\n"),
        ("/v1/complete", "2023-01-01", COMPLETE, b"\r\n"),
    ],
)
def test_stream_error_arrives_as_an_error_event_midway(http, path, version, body, framing):
    headers = api_headers(version, **{"x-emulator-fault": "stream_error"})
    response = http.post(path, headers=headers, json={**body, "stream": True})
    assert response.status_code == 200
    error_data = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert response.content.endswith(
        b"event: error" + framing + b"data: " + json.dumps(error_data).encode() + framing * 2
    )
    events = parse_sse(response.content)
    assert events[-1].event == "error" and json.loads(events[-1].data) == error_data
    assert len(events) >= 3  # some content came first
    assert all(e.data != "[DONE]" and e.event != "message_stop" for e in events)


@pytest.mark.parametrize(
    ("path", "version", "body"),
    [("/v1/messages", "2026-10-21", MESSAGE), ("/v1/complete", "2023-01-01", COMPLETE)],
)
def test_drop_cuts_the_stream_without_its_terminating_chunk(http, path, version, body):
    headers = api_headers(version, **{"x-emulator-fault": "drop"})
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", path, headers=headers, json={**body, "stream": True}) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
    events = parse_sse(received)
    assert events  # it started...
    assert b"[DONE]" not in received and b"message_stop" not in received  # ...and never finished


def test_drop_cuts_a_json_answer_too(http):
    headers = api_headers("2023-06-01", **{"x-emulator-fault": "drop"})
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/messages", headers=headers, json=MESSAGE)
    assert http.get("/v1/models", headers=api_headers("2023-06-01")).status_code == 200


def test_fault_rates_mix_every_fault_into_the_traffic():
    rates = ("--fault-rate-429", "--fault-rate-529", "--fault-rate-500", "--fault-rate-stream-error")
    options = [arg for rate in rates for arg in (rate, "0.2")] + ["--fault-rate-drop", "0.2"]
    outcomes = Counter()
    with emulator_running(*options) as url, httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(150):
            try:
                response = http.post(
                    "/v1/messages", headers=api_headers("2023-06-01"), json={**MESSAGE, "stream": True}
                )
            except httpx.RemoteProtocolError:
                outcomes["drop"] += 1
                continue
            if response.status_code != 200:
                outcomes[response.status_code] += 1
            elif b"event: error" in response.content:
                outcomes["stream_error"] += 1
            else:
                outcomes["ok"] += 1
        by_status = httpx.get(f"{url}/_emulator/stats").json()["by_status"]
    assert set(outcomes) == {429, 529, 500, "stream_error", "drop", "ok"}, outcomes
    assert by_status == {
        "429": outcomes[429],
        "529": outcomes[529],
        "500": outcomes[500],
        "200": outcomes["stream_error"] + outcomes["drop"] + outcomes["ok"],
    }


def timed_events(http, headers: dict, body: dict) -> list[tuple[float, object]]:
    """Each event with the monotonic time its bytes arrived."""
    parser, events = SseParser(), []
    started = time.monotonic()
    with http.stream("POST", "/v1/messages", headers=headers, json={**body, "stream": True}) as response:
        for chunk in response.iter_raw():
            events += [(time.monotonic() - started, event) for event in parser.feed(chunk)]
    return events + [(time.monotonic() - started, event) for event in parser.close()]


def test_latency_headers_delay_the_first_token_and_each_event(http):
    headers = api_headers(
        "2026-10-21", **{"x-emulator-first-token-delay-ms": "300", "x-emulator-event-delay-ms": "20"}
    )
    events = timed_events(http, headers, MESSAGE)
    assert events[-1][1].event == "message_stop"
    assert events[0][0] >= 0.29
    assert events[-1][0] - events[0][0] >= 0.02 * (len(events) - 1) * 0.9


def test_latency_options_apply_server_wide():
    with (
        emulator_running("--first-token-delay-ms", "250", "--event-delay-ms", "15") as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        events = timed_events(http, api_headers("2023-06-01"), MESSAGE)
    assert events[0][0] >= 0.24
    assert events[-1][0] - events[0][0] >= 0.015 * (len(events) - 1) * 0.9


def test_a_slow_stream_stops_when_its_client_leaves(emulator, http):
    """Stats count open streams; a client that leaves frees its stream at the next event, not at the end.

    At 2 s an event the whole stream would take well over 20 s; the wait below gives up after 10 s.
    """
    headers = api_headers("2026-10-21", **{"x-emulator-event-delay-ms": "2000"})
    with http.stream("POST", "/v1/messages", headers=headers, json={**MESSAGE, "stream": True}) as response:
        next(response.iter_raw())
        assert stats(emulator)["open_streams"] == 1
    deadline = time.monotonic() + 10
    while stats(emulator)["open_streams"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stats(emulator)["open_streams"] == 0
    assert stats(emulator)["max_open_streams"] >= 1
