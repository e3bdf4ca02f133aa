"""NDJSON ingest rate (exchanges/s) into SQLite and PostgreSQL, in-process and through the HTTP API.

    .venv/bin/python bench/ingest.py [--lines 20000]

Target (issue 5): at least 5,000 exchanges/s into PostgreSQL.
"""

import argparse
import json
import time

from common import django_shell, install, process, upstream_setup

MEASURE = """
import json, time, uuid
from migrations_audit.capture.ingest import ndjson_ingest
from migrations_audit.models import Upstream
upstream = Upstream.objects.get(slug="anthropic")
lines = [json.dumps({{"method": "POST", "path": "/v1/messages", "started_at": "2026-11-20T10:00:00Z",
    "request_headers": {{"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-k{{}}".format(n % 50),
                         "user-agent": "Anthropic/Python 1.17.0"}},
    "request_body": {{"model": "claude-haiku-4-5", "max_tokens": 64, "n": n, "run": str(uuid.uuid4()),
                      "messages": [{{"role": "user", "content": "x" * 600}}]}},
    "status": 200, "response_headers": {{"content-type": "application/json"}},
    "response_body": {{"id": "msg_1", "content": [{{"type": "text", "text": "y" * 900}}]}},
    "duration_ms": 321}}).encode() for n in range({lines})]
started = time.perf_counter()
summary = ndjson_ingest(upstream=upstream, lines=lines)
seconds = time.perf_counter() - started
print(json.dumps({{"accepted": summary.accepted, "seconds": seconds, "bytes": sum(map(len, lines))}}))
"""


def measure(database: str, lines: int) -> dict:
    with install(database=database) as env:
        upstream_setup(env, "http://127.0.0.1:9")
        result = json.loads(django_shell(env, MEASURE.format(lines=lines)).strip().splitlines()[-1])
        via_http = http_rate(env, min(lines, 5000))
    return {
        "database": database,
        "lines": lines,
        "in_process_per_s": round(result["accepted"] / result["seconds"]),
        "line_kb": round(result["bytes"] / lines / 1024, 1),
        "http_per_s": via_http,
    }


def http_rate(env: dict, lines: int) -> int:
    import httpx

    from tests.support.servers import free_port

    token = (
        django_shell(
            env,
            """
from migrations_audit import services
from migrations_audit.models import Team
print(services.api_token_create(team=Team.objects.get(), name="bench")[1])
""",
        )
        .strip()
        .splitlines()[-1]
    )
    body = "\n".join(
        json.dumps(
            {"method": "POST", "path": "/v1/complete", "request_body": {"prompt": f"p{n}"}, "status": 200}
        )
        for n in range(lines)
    )
    port = free_port()
    with process(
        ["-m", "uvicorn", "dashboard.asgi:application", "--port", str(port), "--no-access-log"],
        env,
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ):
        started = time.perf_counter()
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/upstreams/anthropic/exchanges",
            content=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
        )
        seconds = time.perf_counter() - started
    assert response.json()["accepted"] == lines, response.text[:300]
    return round(lines / seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    rows = [measure(database, args.lines) for database in ("sqlite", "postgres")]
    print(f"{'database':10} {'lines':>7} {'KB/line':>8} {'in-process/s':>13} {'HTTP API/s':>11}")
    for row in rows:
        print(
            f"{row['database']:10} {row['lines']:>7} {row['line_kb']:>8} {row['in_process_per_s']:>13} "
            f"{row['http_per_s']:>11}"
        )


if __name__ == "__main__":
    main()
