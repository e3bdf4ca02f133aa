"""Replay throughput: replayed requests per second (exchanges x versions) with 1, 2 and 4 worker
processes, on SQLite + the filesystem broker and on PostgreSQL + Redis.

    .venv/bin/python bench/replay.py [--exchanges 3000] [--workers 1,2,4] [--only sqlite|postgres]

Each configuration is a fresh install; the emulator answers (pinned to core 0, the workers run on
either core); the upstream's limits are set far above what is reached (10,000 requests/s, 256 at
once: four workers keep at most 200 leased), so the figure is our own overhead plus the
emulator's. Runs of a few thousand requests: a short run mostly measures its start and its end.
It also prints where the machine's time goes, per replayed request: CPU of the workers, of the
emulator, and of everything else (PostgreSQL, Redis), and what was idle.
"""

import argparse
import json
import subprocess
import sys
import time

from common import (
    ROOT,
    cpu_seconds,
    django_shell,
    emulator,
    install,
    machine_cpu_seconds,
    manage,
    upstream_setup,
    user_cpu_seconds,
    wait,
)

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


# The machine's Redis (the broker of the PostgreSQL configuration), not one a test started.
REDIS_PIDS = [
    int(line.split()[0])
    for line in subprocess.run(
        ["pgrep", "-af", "redis-server"], capture_output=True, text=True
    ).stdout.splitlines()
    if ":6379" in line
]


def run_status(env: dict) -> str:
    sql = "SELECT status FROM migrations_audit_replayrun"
    if "DATABASE_URL" in env:
        import psycopg

        with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as connection:
            row = connection.execute(sql).fetchone()
    else:
        import sqlite3

        connection = sqlite3.connect(f"{env['MIGRATION_AUDIT_VAR_DIR']}/db.sqlite3")
        try:
            row = connection.execute(sql).fetchone()
        finally:
            connection.close()
    return row[0] if row else "pending"


def measure(database: str, broker: str, workers: int, exchanges: int) -> dict:
    with install(database=database, broker=broker) as env, emulator(env) as (url, upstream):
        upstream_setup(env, url, concurrency=256)
        django_shell(env, RECORD.format(count=exchanges))
        env = {**env, "REPLAY_RECONCILE_SECONDS": "60"}
        children = [
            subprocess.Popen(
                [
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

            def cpu():
                return (
                    sum(cpu_seconds(child.pid) for child in children),
                    cpu_seconds(upstream.pid),
                    user_cpu_seconds("postgres"),
                    sum(cpu_seconds(pid) for pid in REDIS_PIDS),
                )

            cpu_before = cpu()
            machine_before = machine_cpu_seconds()
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
                # Straight from the database: a Django process per poll would cost more CPU than
                # the workers being measured.
                return run_status(env) not in ("pending", "running")

            wait(finished, timeout=600)
            wall = time.monotonic() - started
            machine_after = machine_cpu_seconds()
            cpu_after = cpu()
            stats = json.loads(django_shell(env, STATS).strip().splitlines()[-1])
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(timeout=30)
    seconds = stats["seconds"] or wall
    total = stats["total"]
    worker_cpu, emulator_cpu, database_cpu, redis_cpu = (
        after - before for after, before in zip(cpu_after, cpu_before, strict=True)
    )
    busy = machine_after[0] - machine_before[0]
    idle = machine_after[1] - machine_before[1]
    return {
        "database": database,
        "broker": broker,
        "workers": workers,
        "requests": total,
        "done": stats["done"],
        "requests_per_s": round(total / seconds, 1),
        "http_ms_avg": round(stats["http_ms"] or 0, 2),
        # Where the machine's time went, per replayed request. PostgreSQL and Redis are the whole
        # servers (run it on a quiet machine); SQLite's work is inside the workers.
        "worker_cpu_ms": round(worker_cpu * 1000 / total, 2),
        "emulator_cpu_ms": round(emulator_cpu * 1000 / total, 2),
        "postgres_cpu_ms": round(database_cpu * 1000 / total, 2),
        "redis_cpu_ms": round(redis_cpu * 1000 / total, 2),
        "idle_percent": round(100 * idle / (busy + idle)),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exchanges", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    configs = [("sqlite", "filesystem"), ("postgres", "redis")]
    if args.only:
        configs = [c for c in configs if c[0] == args.only]
    rows = [
        measure(db, broker, int(n), args.exchanges) for db, broker in configs for n in args.workers.split(",")
    ]
    header = (
        "database",
        "broker",
        "workers",
        "requests",
        "req/s",
        "http ms",
        "worker",
        "emulator",
        "pg",
        "redis",
        "idle",
    )
    print("{:10} {:11} {:>7} {:>8} {:>7} {:>7} {:>7} {:>8} {:>6} {:>6} {:>5}".format(*header))
    for row in rows:
        print(
            f"{row['database']:10} {row['broker']:11} {row['workers']:>7} {row['requests']:>8} "
            f"{row['requests_per_s']:>7} {row['http_ms_avg']:>7} {row['worker_cpu_ms']:>7} "
            f"{row['emulator_cpu_ms']:>8} {row['postgres_cpu_ms']:>6} {row['redis_cpu_ms']:>6} "
            f"{row['idle_percent']:>4}%"
        )
    print(
        "(http ms: the average answer time of a request; worker, emulator, pg, redis: CPU milliseconds "
        "per replayed request spent by each; idle: the share of the whole machine's CPU left unused, "
        "whatever else runs on it)"
    )


if __name__ == "__main__":
    main()
