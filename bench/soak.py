"""Soak: concurrent streaming clients through the proxy while a worker replays, for a while.

    .venv/bin/python bench/soak.py [--clients 1000] [--seconds 60]

Prints errors (should be 0) and the resident memory of every process (proxy, emulator, worker),
sampled every 5 s: flat lines mean nothing accumulates. Streams are kept open by the emulator's
per-event delay and started again as they end, so `--clients` stay open the whole time.
"""

import argparse
import asyncio
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
    args = parser.parse_args()
    with install() as env, emulator(env, core=None) as (emu, emu_process):
        upstream_setup(env, emu, rps=20, concurrency=4)
        django_shell(env, RECORD.format(count=2000))
        port = free_port()
        web = ["-m", "uvicorn", "dashboard.asgi:application", "--port", str(port), "--no-access-log"]
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
            done = threading.Event()

            def sample():
                started = time.monotonic()
                while not done.is_set():
                    samples.append(
                        (
                            round(time.monotonic() - started),
                            rss_mb(proxy.pid),
                            rss_mb(emu_process.pid),
                            rss_mb(worker.pid),
                        )
                    )
                    done.wait(5)

            sampler = threading.Thread(target=sample)
            sampler.start()
            asyncio.run(
                clients(f"http://127.0.0.1:{port}/proxy/anthropic", args.clients, args.seconds, state)
            )
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
    print(f"{'t (s)':>6} {'proxy MB':>9} {'emulator MB':>12} {'worker MB':>10}")
    for row in samples:
        print(f"{row[0]:>6} {row[1]:>9} {row[2]:>12} {row[3]:>10}")


if __name__ == "__main__":
    main()
