"""How much the emulator serves on one core: JSON requests/s, SSE streams/s, latency, open streams.

    .venv/bin/python bench/emulator.py [--seconds 5] [--clients 100] [--open-streams 1000]

The emulator runs pinned to core 0; the load comes from core 1 (wrk, at /usr/bin/wrk, for the
throughput runs with `--clients` connections; an asyncio client for the open streams, which each
last ~12 s thanks to x-emulator-event-delay-ms). Prints one JSON object. Targets (issue 4): >= 2,000
JSON requests/s and 1,000 concurrent open streams on one core. The machine is shared: the load
average before and after is printed with the figures.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port, stop, wait_for_http  # noqa: E402

SERVER_CORE, CLIENT_CORE = 0, 1
MESSAGE = {
    "model": "claude-haiku-4-5",
    "max_tokens": 300,
    "messages": [{"role": "user", "content": "Tell me about foxes."}],
}
HEADERS = {"x-api-key": "sk-ant-bench", "anthropic-version": "2023-06-01", "content-type": "application/json"}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = %(body)s
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "bytes": %%d, "errors": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for this ASCII text


def wrk_run(url: str, *, body: dict, seconds: float, clients: int) -> dict:
    headers = "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in HEADERS.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"body": lua_string(json.dumps(body)), "headers": headers})
    try:
        completed = subprocess.run(
            [
                "taskset",
                "-c",
                str(CLIENT_CORE),
                shutil.which("wrk") or "/usr/bin/wrk",
                "-t1",
                f"-c{clients}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                f"{url}/v1/messages",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(script.name)
    result = json.loads(completed.stdout.split("RESULT ", 1)[1])
    seconds_taken = result["duration_us"] / 1e6
    return {
        "per_second": round(result["requests"] / seconds_taken),
        "requests": result["requests"],
        "errors": result["errors"],
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
    }


def request_bytes(port: int, body: dict, extra: dict) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        "POST /v1/messages HTTP/1.1",
        f"host: 127.0.0.1:{port}",
        *(f"{k}: {v}" for k, v in {**HEADERS, **extra}.items()),
        f"content-length: {len(payload)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + payload


async def one_open_stream(port: int, request: bytes, state: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        received = b""
        first = True
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            if first:
                state["open"] += 1
                state["max_open"] = max(state["max_open"], state["open"])
                first = False
            received += chunk
            if received.endswith(b"\r\n0\r\n\r\n"):
                break
        ok = (
            received.startswith(b"HTTP/1.1 200")
            and b'event: message_stop\ndata: {"type": "message_stop"}' in received
        )
        state["ok" if ok and b"event: error" not in received else "failed"] += 1
    except OSError:
        state["failed"] += 1
    finally:
        if not first:
            state["open"] -= 1
        writer.close()


async def open_streams(port: int, count: int, event_delay_ms: int) -> dict:
    body = {**MESSAGE, "stream": True}
    request = request_bytes(port, body, {"x-emulator-event-delay-ms": str(event_delay_ms)})
    state = {"open": 0, "max_open": 0, "ok": 0, "failed": 0}
    started = time.monotonic()
    await asyncio.gather(*(one_open_stream(port, request, state) for _ in range(count)))
    return {
        "streams": count,
        "max_concurrently_open": state["max_open"],
        "completed_ok": state["ok"],
        "failed": state["failed"],
        "seconds": round(time.monotonic() - started, 1),
    }


def raise_open_files_limit(limit: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(limit, hard)), hard))


def on_server_core() -> None:
    raise_open_files_limit()
    os.sched_setaffinity(0, {SERVER_CORE})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--open-streams", type=int, default=1000)
    parser.add_argument("--event-delay-ms", type=int, default=700, help="keeps each open stream ~12 s long")
    args = parser.parse_args()

    raise_open_files_limit()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    server = subprocess.Popen(
        [sys.executable, "-m", "migrations_audit.emulator", "--port", str(port)],
        cwd=ROOT,
        preexec_fn=on_server_core,
        start_new_session=True,
    )
    try:
        wait_for_http(f"{url}/_emulator/stats", process=server)
        seconds = max(1, int(args.seconds))
        figures = {
            "json": wrk_run(url, body=MESSAGE, seconds=seconds, clients=args.clients),
            "sse": wrk_run(url, body={**MESSAGE, "stream": True}, seconds=seconds, clients=args.clients),
            # What one request costs when nothing queues in front of it: the latency it adds.
            "json_one_client": wrk_run(url, body=MESSAGE, seconds=2, clients=1),
            "sse_one_client": wrk_run(url, body={**MESSAGE, "stream": True}, seconds=2, clients=1),
        }
        os.sched_setaffinity(0, {CLIENT_CORE})
        figures["open_streams"] = asyncio.run(open_streams(port, args.open_streams, args.event_delay_ms))
        server_stats = json.loads(urllib.request.urlopen(f"{url}/_emulator/stats").read())
        figures["open_streams"]["server_max_open_streams"] = server_stats["max_open_streams"]
    finally:
        stop(server)
    print(
        json.dumps(
            {
                "json_requests_per_s": figures["json"]["per_second"],
                "sse_streams_per_s": figures["sse"]["per_second"],
                "json": figures["json"],
                "sse": figures["sse"],
                "latency_added_one_client": {
                    "json_p50_ms": figures["json_one_client"]["p50_ms"],
                    "json_p99_ms": figures["json_one_client"]["p99_ms"],
                    "sse_p50_ms": figures["sse_one_client"]["p50_ms"],
                    "sse_p99_ms": figures["sse_one_client"]["p99_ms"],
                },
                "open_streams": figures["open_streams"],
                "clients": args.clients,
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "targets_met": figures["json"]["per_second"] >= 2000
                and figures["open_streams"]["max_concurrently_open"] >= 1000
                and figures["open_streams"]["failed"] == 0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
