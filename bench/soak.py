"""Soak: concurrent streaming clients through the proxy while a worker replays, for a while.

    .venv/bin/python bench/soak.py [--clients 1000] [--seconds 60]

Prints errors (should be 0) and the resident memory of every process (proxy, emulator, worker):
before the clients start, after `--warmup` seconds (by then every connection is open and every pool
full), at the end, and the growth after warm-up; then every 5-s sample. Growth after warm-up is what
would accumulate. Streams are kept open by the emulator's per-event delay and started again as they
end, so `--clients` stay open the whole time.
"""

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time

import httpx
from common import ROOT, django_shell, emulator, install, process, rss_mb, upstream_setup

from bench.emulator import HEADERS, MESSAGE
from bench.replay import RECORD
from tests.support.servers import free_port


async def clients(base: str, count: int, seconds: float, state: dict) -> None:
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def one():
            while time.monotonic() < deadline:
                try:
                    headers = {**HEADERS, "x-emulator-event-delay-ms": "250"}
                    body = {**MESSAGE, "max_tokens": 20, "stream": True}
                    async with client.stream("POST", "/v1/messages", json=body, headers=headers) as response:
                        data = b"".join([chunk async for chunk in response.aiter_raw()])
                    ok = response.status_code == 200 and b"message_stop" in data
                    state["streams" if ok else "errors"] += 1
                except httpx.HTTPError:
                    state["errors"] += 1

        await asyncio.gather(*(one() for _ in range(count)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15, help="seconds before memory should be flat")
    args = parser.parse_args()
    with install() as env, emulator(env, core=None) as (emu, emu_process):
        upstream_setup(env, emu, rps=20, concurrency=4)
        django_shell(env, RECORD.format(count=2000))
        port = free_port()
        web = [
            *("-m", "uvicorn", "dashboard.asgi:proxy_application", "--port", str(port), "--no-access-log"),
            *("--http", "dashboard.server:HttpProtocol"),
        ]
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "dashboard",
                "worker",
                "-c",
                "2",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with process(web, env, ready_url=f"http://127.0.0.1:{port}/__audit/healthz") as proxy:
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "replay",
                    "--upstream",
                    "anthropic",
                    "--versions",
                    "2023-06-01,2026-10-21",
                ],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            state = {"streams": 0, "errors": 0}
            samples = []
            milestones = {}
            done = threading.Event()
            started = time.monotonic()

            def rss_now() -> tuple[float, float, float]:
                return rss_mb(proxy.pid), rss_mb(emu_process.pid), rss_mb(worker.pid)

            def sample():
                # Every second, for the warm-up milestone; a sample every 5 s for the table.
                for tick in itertools.count():
                    elapsed = time.monotonic() - started
                    if "after warm-up" not in milestones and elapsed >= args.warmup:
                        milestones["after warm-up"] = (elapsed, *rss_now())
                    if tick % 5 == 0:
                        samples.append((elapsed, *rss_now()))
                    if done.wait(1):
                        return

            milestones["start"] = (0.0, *rss_now())
            sampler = threading.Thread(target=sample)
            sampler.start()
            asyncio.run(
                clients(f"http://127.0.0.1:{port}/proxy/anthropic", args.clients, args.seconds, state)
            )
            milestones["end"] = (time.monotonic() - started, *rss_now())
            done.set()
            sampler.join()
            health = httpx.get(f"http://127.0.0.1:{port}/__audit/healthz").json()
            replayed = django_shell(
                env,
                "from migrations_audit.models import ReplayResult; "
                "print(ReplayResult.objects.filter(state='done').count())",
            ).strip()
        worker.terminate()
        worker.wait(timeout=30)
    print(
        f"{args.clients} streaming clients for {args.seconds:.0f} s: {state['streams']} streams completed, "
        f"{state['errors']} errors; worker replayed {replayed.splitlines()[-1]} requests meanwhile"
    )
    print(f"recorder: {json.dumps(health)}")
    header = f"{'':>22} {'t (s)':>6} {'proxy MB':>9} {'emulator MB':>12} {'worker MB':>10}"
    print(header)
    for name, row in milestones.items():
        print(f"{name:>22} {row[0]:>6.0f} {row[1]:>9} {row[2]:>12} {row[3]:>10}")
    if "after warm-up" in milestones:
        warm, end = milestones["after warm-up"], milestones["end"]
        growth = [f"{end[i] - warm[i]:+.1f}" for i in (1, 2, 3)]
        print(f"{'growth after warm-up':>22} {end[0] - warm[0]:>6.0f} ", end="")
        print(f"{growth[0]:>9} {growth[1]:>12} {growth[2]:>10}")
    print("every 5 s:")
    for row in samples:
        print(f"{'':>22} {row[0]:>6.0f} {row[1]:>9} {row[2]:>12} {row[3]:>10}")


if __name__ == "__main__":
    main()
