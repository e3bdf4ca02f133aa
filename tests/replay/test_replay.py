"""Replay with a real worker against the emulator: faults retried, failures recorded, cancel and
resume, the shared rate limit, the clamp, and who may do what."""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest
from django.urls import reverse

from migrations_audit import services
from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.models import Exchange, ReplayAttempt, ReplayResult, ReplayRun, Upstream
from migrations_audit.replay.executor import replay_request
from migrations_audit.replay.runs import ReplayError, run_cancel, run_resume, run_start
from migrations_audit.secrets import MASK
from tests.conftest import child_env
from tests.support.servers import PROJECT_ROOT
from tests.support.upstream import fixed_upstream
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
FAST = {"REPLAY_BACKOFF_MS": 100, "REPLAY_MAX_TRIES": 3, "REPLAY_LEASE_SECONDS": 5}


def record(upstream, count=1, *, headers=None, body=None, stream=False):
    base = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-recorded-key", **(headers or {})}
    document = body or {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    exchanges_record(
        upstream=upstream,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers=dict(base),
                request_body=json.dumps({**document, "n": n}).encode(),
                started_at=datetime(2026, 11, 1, tzinfo=UTC),
                status=200,
            )
            for n in range(count)
        ],
    )


def on_emulator(upstream, emulator, **limits):
    Upstream.objects.filter(pk=upstream.pk).update(base_url=emulator, **limits)
    upstream.refresh_from_db()
    httpx.post(f"{emulator}/_emulator/reset")
    return upstream


def finish(run, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if not run.is_active:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run.pk} still {run.status}")


@pytest.fixture
def worker(worker_factory):
    return worker_factory(env=FAST)


def test_faults_are_retried_until_they_pass_and_a_400_is_a_result(worker, emulator, upstream_a):
    upstream = on_emulator(upstream_a, emulator)
    for fault in ("rate_limit", "overloaded", "server_error", "drop"):
        record(
            upstream,
            headers={
                "x-emulator-fault": fault,
                "x-emulator-fault-times": "1",
                "x-emulator-fault-key": f"{fault}-{upstream.pk}",
            },
            stream=fault == "drop",
        )
    record(
        upstream,
        body={
            "model": "claude-sonnet-4-5",
            "max_tokens": 20,
            "temperature": 1,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    run = finish(run_start(upstream=upstream, versions=["2026-10-21"], selection={}, noise_sample_rate=0))
    assert run.status == "completed"
    results = {
        json.loads(bytes(r.exchange.request_body)).get("temperature") is not None: r
        for r in ReplayResult.objects.select_related("exchange")
    }
    assert results[True].status == 400 and results[True].state == "done" and results[True].tries == 1
    retried = ReplayResult.objects.exclude(pk=results[True].pk)
    assert all(r.state == "done" and r.status == 200 and r.tries == 2 for r in retried)
    first_tries = ReplayAttempt.objects.filter(result__in=retried, number=1)
    # The dropped stream had answered 200 before the connection broke: an error, so retried too.
    assert sorted(a.status for a in first_tries) == [200, 429, 500, 529]
    assert first_tries.get(status=200).error


def test_a_fault_that_never_passes_is_recorded_as_failed(worker, emulator, upstream_a):
    upstream = on_emulator(upstream_a, emulator)
    record(upstream, headers={"x-emulator-fault": "server_error"})
    run = finish(run_start(upstream=upstream, versions=["2023-06-01"], selection={}, noise_sample_rate=0))
    result = ReplayResult.objects.get(run=run)
    assert result.state == "failed" and result.tries == FAST["REPLAY_MAX_TRIES"]
    assert "gave up after 3 tries" in result.error
    assert ReplayAttempt.objects.filter(result=result).count() == 3


def test_cancel_stops_new_requests_and_resume_finishes(worker, emulator, upstream_a):
    upstream = on_emulator(upstream_a, emulator, rate_limit_rps=5, rate_limit_concurrency=1)
    record(upstream, 20)
    run = run_start(upstream=upstream, versions=["2023-06-01"], selection={}, noise_sample_rate=0)
    wait_until(
        lambda: ReplayResult.objects.filter(run=run, state="done").exists(),
        timeout=60,
        message="the run's first result",
    )
    assert run_cancel(run=run)
    wait_until(
        lambda: not ReplayResult.objects.filter(run=run, state="running").exists(),
        timeout=30,
        message="the requests in flight when the run was cancelled to finish",
    )
    seen = httpx.get(f"{emulator}/_emulator/stats").json()["requests"]
    # A run started after the cancel is worked on after the cancelled run's queued batches: once it
    # has finished, the worker has been through them, and any request they sent has been counted.
    later = services.upstream_create(
        team=upstream.team,
        name="Later",
        slug="later",
        base_url=emulator,
        baseline_version="2023-06-01",
        target_version="2026-10-21",
        replay_key="sk-ant-later",
    )
    record(later)
    later_run = finish(run_start(upstream=later, versions=["2023-06-01"], selection={}, noise_sample_rate=0))
    sent_later = ReplayAttempt.objects.filter(result__run=later_run).count()
    assert sent_later >= 1
    assert httpx.get(f"{emulator}/_emulator/stats").json()["requests"] == seen + sent_later, (
        "nothing new after cancel"
    )
    assert ReplayResult.objects.filter(run=run, state="pending").exists()
    assert run_resume(run=run)
    finish(run)
    assert ReplayResult.objects.filter(run=run, state="done").count() == 20


def test_the_rate_limit_holds_across_two_workers(worker_factory, emulator, upstream_a):
    worker_factory(env=FAST)
    worker_factory(env=FAST)
    upstream = on_emulator(upstream_a, emulator, rate_limit_rps=10, rate_limit_concurrency=8)
    record(upstream, 40)
    finish(run_start(upstream=upstream, versions=["2023-06-01"], selection={}, noise_sample_rate=0))
    times = sorted(r["t"] for r in httpx.get(f"{emulator}/_emulator/stats").json()["recent"])
    assert len(times) == 40
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate <= 10 * 1.1, f"{rate:.2f} requests/s for a limit of 10"


def test_replays_send_the_replay_credential_only_the_version_changed_and_max_tokens_clamped(upstream_a):
    Upstream.objects.filter(pk=upstream_a.pk).update(max_tokens_clamp=8)
    upstream_a.refresh_from_db()
    record(upstream_a, body={"model": "m", "max_tokens": 500, "messages": []})
    url, headers, body = replay_request(
        exchange=Exchange.objects.get(), upstream=upstream_a, version="2026-10-21"
    )
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["x-api-key"] == "sk-ant-replay-secret"
    assert "authorization" not in headers and "sk-ant-recorded-key" not in json.dumps(headers)
    assert json.loads(body)["max_tokens"] == 8
    assert url.endswith("/v1/messages")


def test_replay_results_are_masked_as_recordings_and_no_recorded_key_is_sent(worker, upstream_a):
    """The answer's set-cookie and a key in its body are stored masked; the recorded query string's
    key and the recorded key headers are not sent again, only the replay credential."""
    recorded_key, cookie, echoed = (
        "sk-ant-api03-QUERYkey0123456789",
        "COOKIEsecret0123",
        "sk-ant-ECHOkey0123456789",
    )
    answer = json.dumps(
        {"id": "msg_1", "type": "message", "content": [{"type": "text", "text": f"you sent {echoed}"}]}
    ).encode()
    answer_headers = [("content-type", "application/json"), ("set-cookie", f"session={cookie}; HttpOnly")]
    with fixed_upstream(headers=answer_headers, body=answer) as fake:
        Upstream.objects.filter(pk=upstream_a.pk).update(base_url=fake.url)
        upstream_a.refresh_from_db()
        exchanges_record(
            upstream=upstream_a,
            source="ingest",
            captured=[
                CapturedExchange(
                    method="POST",
                    path="/v1/messages",
                    query=f"key={recorded_key}&beta=true",
                    request_headers={
                        "anthropic-version": "2023-06-01",
                        "anthropic-api-key": recorded_key,
                        "x-goog-api-key": recorded_key,
                    },
                    request_body=b'{"model": "m", "max_tokens": 5, "messages": []}',
                    started_at=datetime(2026, 11, 1, tzinfo=UTC),
                    status=200,
                )
            ],
        )
        finish(run_start(upstream=upstream_a, versions=["2026-10-21"], selection={}, noise_sample_rate=0))
    result = ReplayResult.objects.get()
    assert result.state == "done", result.error
    assert result.response_headers["set-cookie"] == MASK
    stored = json.dumps(result.response_headers) + bytes(result.response_body).decode()
    assert cookie not in stored and echoed not in stored
    [sent] = fake.received
    assert sent.target == "/v1/messages?beta=true"
    assert sent.headers["x-api-key"] == "sk-ant-replay-secret"
    everything_sent = sent.target + json.dumps(sent.headers) + sent.body.decode()
    assert recorded_key not in everything_sent and MASK not in everything_sent


def test_runs_refuse_bad_requests_clearly(upstream_a):
    record(upstream_a)
    with pytest.raises(ReplayError, match="has no version 2099"):
        run_start(upstream=upstream_a, versions=["2099-01-01"], selection={})
    with pytest.raises(ReplayError, match="No recorded exchange"):
        run_start(upstream=upstream_a, versions=["2023-06-01"], selection={"endpoint": "GET /v1/models"})
    services.upstream_set_replay_key(upstream=upstream_a, replay_key="")
    with pytest.raises(ReplayError, match="no replay credential"):
        run_start(upstream=upstream_a, versions=["2023-06-01"], selection={})


def test_views_and_api_by_role(client, alice, bob, charlie, upstream_a, team_a, team_b):
    record(upstream_a)
    start = reverse("migrations_audit:run_start", args=[upstream_a.slug])
    client.force_login(bob)
    assert client.post(start, {"versions": ["2023-06-01"]}).status_code == 403
    client.force_login(charlie)
    assert client.get(start).status_code == 404
    client.force_login(alice)
    bad = client.post(start, {"versions": ["2099-01-01"]})
    assert bad.status_code == 400 and "has no version 2099-01-01" in bad.content.decode()
    response = client.post(
        start, {"versions": ["2023-06-01", "2026-10-21"], "sample": "1", "noise_percent": "0"}
    )
    run = ReplayRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/runs/{run.pk}/")
    poll = client.get(
        reverse("migrations_audit:run", args=[upstream_a.slug, run.pk]), headers={"HX-Request": "true"}
    )
    assert poll.status_code == 200 and "<html" not in poll.content.decode()
    run_cancel(run=run)
    stopped = client.get(
        reverse("migrations_audit:run", args=[upstream_a.slug, run.pk]), headers={"HX-Request": "true"}
    )
    assert stopped.status_code == 286, "polling stops itself when the run ends"
    _, token = services.api_token_create(team=team_a, name="ci")
    api = client.__class__()
    made = api.post(
        "/api/v1/runs",
        json.dumps({"upstream": upstream_a.slug, "versions": ["2023-06-01"]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert made.status_code == 201 and made.json()["status"] == "running"
    got = api.get(f"/api/v1/runs/{made.json()['id']}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert set(got["progress"]["counts"]) >= {"pending", "done", "failed"}
    assert (
        api.post(
            "/api/v1/runs", b"{nope", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        ).status_code
        == 400
    )
    other = api.get(
        f"/api/v1/runs/{made.json()['id']}",
        HTTP_AUTHORIZATION=f"Bearer {services.api_token_create(team=charlie.teams.get(), name='x')[1]}",
    )
    assert other.status_code == 404


def test_the_replay_command_waits_and_summarises(worker, emulator, upstream_a):
    upstream = on_emulator(upstream_a, emulator)
    record(
        upstream,
        3,
        body={
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "temperature": 1,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "replay",
            "--upstream",
            upstream.slug,
            "--versions",
            "2023-06-01,2026-10-21",
            "--noise",
            "0",
            "--wait",
        ],
        cwd=PROJECT_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "completed: 6 done, 0 failed" in result.stdout
    assert "breaking" in result.stdout
