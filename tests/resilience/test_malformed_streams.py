"""An upstream that sends a malformed event stream (one event's JSON cut short, the stream going on):
the proxy passes it on unchanged and records it as an error; replay retries it and, if it stays
malformed, records the result as failed; the diff compares neither, so it shows up as an error,
never as a difference between versions."""

import json
from datetime import UTC, datetime

import httpx
import pytest

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.emulator.core import respond
from migrations_audit.models import Difference, Exchange, ExchangeComparison, ReplayAttempt, ReplayResult
from migrations_audit.replay.runs import run_start
from migrations_audit.sse import parse_sse, stream_malformation
from tests.capture.test_proxy import proxy, recorded  # noqa: F401 - the proxy fixture, real processes
from tests.replay.test_replay import FAST, finish, on_emulator

MESSAGES = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 20,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
COMPLETE = {
    "model": "claude-2",
    "max_tokens_to_sample": 20,
    "stream": True,
    "prompt": "\n\nHuman: hi\n\nAssistant:",
}


def events_of(path, version, body, fault=None):
    response = respond(
        "POST", path, {"anthropic-version": version, "x-api-key": "k"}, json.dumps(body).encode(), fault=fault
    )
    return [event.as_dict() for event in parse_sse(response.full_body())]


@pytest.mark.parametrize("version", ["2023-01-01", "2023-06-01", "2026-10-21"])
@pytest.mark.parametrize(("path", "body"), [("/v1/messages", MESSAGES), ("/v1/complete", COMPLETE)])
def test_every_stream_the_api_sends_is_well_formed_and_the_fault_is_not(version, path, body):
    assert stream_malformation(events_of(path, version, body)) == ""
    problem = stream_malformation(events_of(path, version, body, fault="malformed_stream"))
    assert problem.startswith("malformed event stream: event ") and "does not carry JSON" in problem


def record_streams(upstream, faults: dict[str, str]):
    exchanges_record(
        upstream=upstream,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={
                    "anthropic-version": "2023-06-01",
                    "x-audit-client": "svc",
                    "x-emulator-fault": "malformed_stream",
                    **(
                        {"x-emulator-fault-times": times, "x-emulator-fault-key": f"{name}-{upstream.pk}"}
                        if times
                        else {}
                    ),
                },
                request_body=json.dumps({**MESSAGES, "n": name}).encode(),
                started_at=datetime(2026, 11, 1, tzinfo=UTC),
                status=200,
                streamed=True,
            )
            for name, times in faults.items()
        ],
    )
    return {json.loads(bytes(e.request_body))["n"]: e for e in Exchange.objects.filter(upstream=upstream)}


@pytest.mark.slow
def test_replay_retries_a_malformed_stream_and_fails_one_that_stays_malformed(
    worker_factory, emulator, upstream_a
):
    worker_factory(env=FAST)
    upstream = on_emulator(upstream_a, emulator)
    # "once": malformed on its first try of each version only; "always": on every try.
    exchanges = record_streams(upstream, {"once": "2", "always": ""})
    run = finish(
        run_start(upstream=upstream, versions=["2023-06-01", "2026-10-21"], selection={}, noise_sample_rate=0)
    )
    assert run.status == "completed"

    once = ReplayResult.objects.filter(run=run, exchange=exchanges["once"])
    assert {(r.state, r.status) for r in once} == {("done", 200)}
    assert sum(r.tries for r in once) == 4, "two malformed answers retried, each version done on its 2nd try"
    retried = ReplayAttempt.objects.filter(result__in=once, number=1)
    assert all(a.error.startswith("malformed event stream") and a.status == 200 for a in retried)

    always = ReplayResult.objects.filter(run=run, exchange=exchanges["always"])
    assert {r.state for r in always} == {"failed"}
    assert all(r.tries == FAST["REPLAY_MAX_TRIES"] and "malformed event stream" in r.error for r in always)
    # An error, not a difference: nothing is compared for the exchange whose answers were malformed.
    assert not Difference.objects.filter(run=run, exchange=exchanges["always"]).exists()
    assert not ExchangeComparison.objects.filter(run=run, exchange=exchanges["always"]).exists()
    assert ExchangeComparison.objects.filter(run=run, exchange=exchanges["once"]).exists()


@pytest.mark.slow
def test_the_proxy_passes_a_malformed_stream_on_unchanged_and_records_it_as_an_error(proxy):  # noqa: F811
    headers = {
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-test",
        "x-emulator-fault": "malformed_stream",
    }
    expected = respond(
        "POST", "/v1/messages", headers, json.dumps(MESSAGES).encode(), fault="malformed_stream"
    )
    response = httpx.post(f"{proxy['prefix']}/v1/messages", headers=headers, json=MESSAGES, timeout=10)
    assert response.status_code == 200
    received = [event.as_dict() for event in parse_sse(response.content)]
    assert [e["event"] for e in received] == [e.as_dict()["event"] for e in parse_sse(expected.full_body())]
    assert stream_malformation(received), "what the client got is the upstream's malformed stream, as sent"
    [exchange] = recorded(1)
    assert exchange.status == 200 and exchange.streamed
    assert exchange.error.startswith("malformed event stream: event ")
