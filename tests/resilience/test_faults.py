"""Replays that survive their infrastructure: a worker killed twice, and a broker restarted mid-run.
The run completes with every result stored exactly once."""

import json
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.models import ReplayResult, ReplayRun, Upstream
from tests.conftest import WorkerProcess, beat_start, child_env
from tests.support.servers import PROJECT_ROOT, free_port, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

FAST_RECOVERY = {"REPLAY_LEASE_SECONDS": 3, "REPLAY_RECONCILE_SECONDS": 1, "REPLAY_BACKOFF_MS": 100}


def record(upstream, count):
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
                    "x-emulator-first-token-delay-ms": "150",
                },
                request_body=json.dumps(
                    {
                        "model": "claude-sonnet-4-5",
                        "max_tokens": 20,
                        "messages": [{"role": "user", "content": f"n{n}"}],
                    }
                ).encode(),
                started_at=datetime(2026, 11, 1, tzinfo=UTC),
                status=200,
            )
            for n in range(count)
        ],
    )


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def done(run_id) -> int:
    return ReplayResult.objects.filter(run_id=run_id, state="done").count()


def assert_complete_and_unique(run):
    run.refresh_from_db()
    assert run.status == "completed"
    results = ReplayResult.objects.filter(run=run)
    assert results.exclude(state="done").count() == 0
    keys = list(results.values_list("exchange_id", "version", "attempt"))
    assert len(keys) == len(set(keys))


def test_a_run_completes_though_its_worker_is_killed_twice(transactional_db, emulator, upstream_a, tmp_path):
    from migrations_audit.replay.runs import run_start
    from tests.conftest import purge_broker

    purge_broker()
    Upstream.objects.filter(pk=upstream_a.pk).update(
        base_url=emulator, rate_limit_rps=40, rate_limit_concurrency=4
    )
    upstream_a.refresh_from_db()
    record(upstream_a, 40)
    scheduler = beat_start(tmp_path, **FAST_RECOVERY)
    try:
        first = WorkerProcess(tmp_path, env=FAST_RECOVERY).start()
        run = run_start(
            upstream=upstream_a, versions=["2023-06-01", "2026-10-21"], selection={}, noise_sample_rate=0
        )
        total = run.results.count()
        wait_until(lambda: done(run.pk) >= 10, timeout=60, interval=0.3, message="first results")
        first.kill()
        second = WorkerProcess(tmp_path, env=FAST_RECOVERY).start()
        wait_until(lambda: done(run.pk) >= total // 2, timeout=90, interval=0.3, message="half the results")
        second.kill()
        third = WorkerProcess(tmp_path, env=FAST_RECOVERY).start()
        wait_until(
            lambda: not ReplayRun.objects.get(pk=run.pk).is_active,
            timeout=120,
            interval=0.3,
            message="the run to finish",
        )
        third.stop()
    finally:
        stop(scheduler)
    assert_complete_and_unique(run)
    assert ReplayResult.objects.filter(run=run).count() == total


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_run_completes_though_its_broker_restarts(transactional_db, emulator, upstream_a, tmp_path):
    Upstream.objects.filter(pk=upstream_a.pk).update(
        base_url=emulator, rate_limit_rps=30, rate_limit_concurrency=4
    )
    record(upstream_a, 30)
    port = free_port()
    redis_args = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    broker = {"CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0", **FAST_RECOVERY}
    redis = subprocess.Popen(redis_args, stdout=subprocess.DEVNULL, start_new_session=True)
    scheduler = None
    try:
        wait_until(lambda: redis_answers(port), timeout=30, message="redis to start")
        worker = WorkerProcess(tmp_path, env=broker).start()
        scheduler = beat_start(tmp_path, **broker)
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "replay",
                "--upstream",
                upstream_a.slug,
                "--versions",
                "2023-06-01,2026-10-21",
                "--noise",
                "0",
            ],
            cwd=PROJECT_ROOT,
            env=child_env(**broker),
            check=True,
            capture_output=True,
        )
        run = ReplayRun.objects.get()
        wait_until(lambda: done(run.pk) >= 5, timeout=60, interval=0.3, message="first results")
        stop(redis)  # every queued message is lost with it: nothing is persisted
        # The broker stays away until the worker has noticed: it must reconnect, and the queued
        # messages are gone.
        wait_until(
            lambda: "Connection to broker lost" in worker.log,
            timeout=60,
            interval=0.2,
            message="the worker to notice that the broker is gone",
        )
        redis = subprocess.Popen(redis_args, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_until(
            lambda: not ReplayRun.objects.get(pk=run.pk).is_active,
            timeout=150,
            interval=0.3,
            message="the run to finish",
        )
        worker.stop()
    finally:
        if scheduler is not None:
            stop(scheduler)
        stop(redis)
    assert_complete_and_unique(run)
