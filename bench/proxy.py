"""The recording proxy against the emulator directly and against mitmproxy, in one run.

    .venv/bin/python bench/proxy.py [--requests 300] [--seconds 5] [--streams 1000] [--stream-seconds 30]
                                    [--no-mitmproxy]

Prints, for direct / our proxy (recording every exchange into SQLite) / mitmdump in reverse mode:
sequential latency p50/p99 and the overhead over direct, wrk throughput at 100 connections, the delay
of the first SSE event over direct; then holds `--streams` concurrent streams through our proxy.
mitmproxy is installed from PyPI into its own virtualenv under ~/.cache/migration-audit/bench.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import emulator, install, percentile, process, upstream_setup, wait

from bench.emulator import HEADERS, MESSAGE, wrk_run
from tests.support.servers import free_port, stop, wait_for_http

MITM_VENV = Path.home() / ".cache" / "migration-audit" / "bench" / "mitmproxy"


def mitmdump() -> str:
    binary = MITM_VENV / "bin" / "mitmdump"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MITM_VENV)], check=True)
        subprocess.run([str(MITM_VENV / "bin" / "pip"), "install", "-q", "mitmproxy"], check=True)
    return str(binary)


def sequential(base: str, count: int) -> list[float]:
    times = []
    with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post("/v1/messages", json=MESSAGE)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text[:200]
    return times


def first_event_ms(base: str, tries: int = 20) -> float:
    delays = []
    with httpx.Client(
        base_url=base, headers={**HEADERS, "x-emulator-first-token-delay-ms": "50"}, timeout=30
    ) as c:
        for _ in range(tries):
            started = time.perf_counter()
            with c.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as response:
                for _ in response.iter_raw():
                    delays.append((time.perf_counter() - started) * 1000)
                    break
    return percentile(delays, 0.5)


async def hold_streams(base: str, count: int, seconds: float) -> dict:
    state = {"ok": 0, "failed": 0}
    delay = max(10, int(seconds * 1000 / 40))
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=seconds + 60, limits=limits) as client:

        async def one():
            try:
                headers = {**HEADERS, "x-emulator-event-delay-ms": str(delay)}
                async with client.stream(
                    "POST",
                    "/v1/messages",
                    json={**MESSAGE, "max_tokens": 30, "stream": True},
                    headers=headers,
                ) as response:
                    body = b"".join([chunk async for chunk in response.aiter_raw()])
                state["ok" if b"message_stop" in body and response.status_code == 200 else "failed"] += 1
            except httpx.HTTPError:
                state["failed"] += 1

        await asyncio.gather(*(one() for _ in range(count)))
    return state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--stream-seconds", type=float, default=30)
    parser.add_argument("--no-mitmproxy", action="store_true")
    args = parser.parse_args()
    with install() as env, emulator(env, core=0) as (emu, _):
        upstream_setup(env, emu)
        port = free_port()
        ours = f"http://127.0.0.1:{port}/proxy/anthropic"
        targets = {"direct": emu, "ours": ours}
        mitm = None
        if not args.no_mitmproxy:
            mitm_port = free_port()
            mitm = subprocess.Popen(
                [
                    mitmdump(),
                    "--mode",
                    f"reverse:{emu}",
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    str(mitm_port),
                    "-q",
                ],
                start_new_session=True,
            )
            targets["mitmproxy"] = f"http://127.0.0.1:{mitm_port}"
        with process(
            [
                "-m",
                "uvicorn",
                "dashboard.asgi:proxy_application",
                "--port",
                str(port),
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "dashboard.server:HttpProtocol",
            ],
            env,
            ready_url=f"http://127.0.0.1:{port}/__audit/healthz",
        ):
            try:
                if mitm:
                    wait_for_http(targets["mitmproxy"] + "/v1/models", timeout=60, process=mitm)
                rows = {}
                for name, base in targets.items():
                    sequential(base, 20)  # warm up
                    latency = sequential(base, args.requests)
                    rows[name] = {
                        "p50": percentile(latency, 0.5),
                        "p99": percentile(latency, 0.99),
                        "rps": wrk_run(base, body=MESSAGE, seconds=args.seconds, clients=100),
                        "first_event": first_event_ms(base),
                    }
                recorded_target = args.requests + 20 + rows["ours"]["rps"]["requests"] + 20
                health = f"http://127.0.0.1:{port}/__audit/healthz"
                wait(lambda: httpx.get(health).json()["recorded"] >= recorded_target * 0.99, timeout=120)
                recorder = httpx.get(health).json()
                streams = (
                    asyncio.run(hold_streams(ours, args.streams, args.stream_seconds)) if args.streams else {}
                )
            finally:
                if mitm:
                    stop(mitm)
    direct = rows["direct"]
    print(
        f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'+p50':>7} {'+p99':>7} {'req/s @100':>11} {'errors':>7} "
        f"{'1st SSE +ms':>11}"
    )
    for name, row in rows.items():
        print(
            f"{name:10} {row['p50']:8.2f} {row['p99']:8.2f} {row['p50'] - direct['p50']:7.2f} "
            f"{row['p99'] - direct['p99']:7.2f} {row['rps']['per_second']:>11} {row['rps']['errors']:>7} "
            f"{row['first_event'] - direct['first_event']:11.2f}"
        )
    if "mitmproxy" in rows:
        m, o = rows["mitmproxy"], rows["ours"]
        print(
            f"ours / mitmproxy: throughput x{o['rps']['per_second'] / max(m['rps']['per_second'], 1):.2f}, "
            f"overhead p50 {o['p50'] - direct['p50']:.2f} vs {m['p50'] - direct['p50']:.2f} ms"
        )
    print(f"recorder: {json.dumps(recorder)} (every exchange sent through our proxy: {recorded_target})")
    if streams:
        print(
            f"{args.streams} concurrent streams for ~{args.stream_seconds:.0f} s through our proxy: {streams}"
        )


if __name__ == "__main__":
    main()
