"""Replay throughput: replayed requests per second (exchanges x versions) with 1, 2 and 4 worker
processes, on SQLite + the filesystem broker and on PostgreSQL + Redis.

    .venv/bin/python bench/replay.py [--exchanges 200] [--workers 1,2,4] [--only sqlite|postgres]

Each configuration is a fresh install; the emulator answers (pinned to core 0); the upstream's limits
are set far above what is reached, so the figure is our own overhead plus the emulator's. It also
prints where a result's time goes: the HTTP request (ReplayAttempt.duration_ms) against the whole.
"""

import argparse
import json
import subprocess
import sys
import time

from common import ROOT, django_shell, emulator, install, manage, upstream_setup, wait

RECORD = """
import json
from datetime import datetime, UTC
from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.models import Upstream
upstream = Upstream.objects.get(slug="anthropic")
exchanges_record(upstream=upstream, source="ingest", captured=[CapturedExchange(
    method="POST", path="/v1/messages",
    request_headers={{"anthropic-version": "2023-06-01", "x-audit-client": "b"}},
    request_body=json.dumps({{"model": "claude-haiku-4-5", "max_tokens": 60, "stream": n % 4 == 0,
        "messages": [{{"role": "user", "content": f"question {{n}}"}}]}}).encode(),
    started_at=datetime.now(UTC), status=200) for n in range({count})])
"""

STATS = """
import json
from django.db.models import Avg, Max, Min
from migrations_audit.models import ReplayAttempt, ReplayResult, ReplayRun
run = ReplayRun.objects.get()
span = ReplayResult.objects.filter(run=run).aggregate(first=Min("finished_at"), last=Max("finished_at"))
print(json.dumps({
    "status": run.status,
    "done": ReplayResult.objects.filter(run=run, state="done").count(),
    "total": ReplayResult.objects.filter(run=run).count(),
    "http_ms": ReplayAttempt.objects.filter(result__run=run).aggregate(a=Avg("duration_ms"))["a"],
    "seconds": (run.finished_at - run.started_at).total_seconds() if run.finished_at else None,
}))
"""


def measure(database: str, broker: str, workers: int, exchanges: int) -> dict:
    with install(database=database, broker=broker) as env, emulator(env) as (url, _):
        upstream_setup(env, url)
        django_shell(env, RECORD.format(count=exchanges))
        env = {**env, "REPLAY_RECONCILE_SECONDS": "60"}
        children = [
            subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "1",
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "dashboard",
                    "worker",
                    "-c",
                    "1",
                    "--without-mingle",
                    "--without-gossip",
                    "-l",
                    "WARNING",
                    "-n",
                    f"bench{index}@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for index in range(workers)
        ]
        try:
            time.sleep(4)  # workers connect
            started = time.monotonic()
            manage(
                env,
                "replay",
                "--upstream",
                "anthropic",
                "--versions",
                "2023-06-01,2026-10-21",
                "--noise",
                "0",
            )

            def finished():
                return json.loads(django_shell(env, STATS).strip().splitlines()[-1])["status"] != "running"

            wait(finished, timeout=600)
            wall = time.monotonic() - started
            stats = json.loads(django_shell(env, STATS).strip().splitlines()[-1])
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(timeout=30)
    seconds = stats["seconds"] or wall
    return {
        "database": database,
        "broker": broker,
        "workers": workers,
        "requests": stats["total"],
        "done": stats["done"],
        "requests_per_s": round(stats["total"] / seconds, 1),
        "http_ms_avg": round(stats["http_ms"] or 0, 2),
        "overhead_ms_per_request": round(
            seconds * 1000 * workers / stats["total"] - (stats["http_ms"] or 0), 2
        ),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exchanges", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    configs = [("sqlite", "filesystem"), ("postgres", "redis")]
    if args.only:
        configs = [c for c in configs if c[0] == args.only]
    rows = [
        measure(db, broker, int(n), args.exchanges) for db, broker in configs for n in args.workers.split(",")
    ]
    header = ("database", "broker", "workers", "requests", "req/s", "http ms", "overhead ms")
    print("{:10} {:11} {:>7} {:>8} {:>8} {:>8} {:>11}".format(*header))
    for row in rows:
        print(
            f"{row['database']:10} {row['broker']:11} {row['workers']:>7} {row['requests']:>8} "
            f"{row['requests_per_s']:>8} {row['http_ms_avg']:>8} {row['overhead_ms_per_request']:>11}"
        )
    print("(overhead: worker time per request not spent on the HTTP answer: claims, limits, DB, broker)")


if __name__ == "__main__":
    main()
