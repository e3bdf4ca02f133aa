"""Server time and query count of each dashboard page over a large PostgreSQL table of exchanges.

    .venv/bin/python bench/pages.py --rows 1000000     # its own database: migration_audit_bench

Generates the data once with COPY (rerun with --regenerate), then renders each page N times through
Django's test client and prints p50/p95 server time and the query count of each page."""

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rows", type=int, default=200_000)
parser.add_argument("--repeat", type=int, default=20)
parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/migration_audit_bench")
parser.add_argument("--regenerate", action="store_true")
args = parser.parse_args()

os.environ["DATABASE_URL"] = args.database
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("STATIC_MANIFEST", "0")
os.environ.setdefault("MIGRATION_AUDIT_UPSTREAM_HOSTS", "127.0.0.0/8")  # upstreams on loopback

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from migrations_audit import services  # noqa: E402
from migrations_audit.models import Client, Exchange, ReplayResult, ReplayRun, Team, Upstream  # noqa: E402


def ensure_database():
    params = settings.DATABASES["default"]
    with psycopg.connect(
        host=params["HOST"],
        port=params["PORT"] or 5432,
        user=params["USER"],
        dbname="postgres",
        autocommit=True,
    ) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [params["NAME"]]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{params["NAME"]}"')
    call_command("migrate", verbosity=0)


def generate(rows: int) -> Upstream:
    upstream = Upstream.objects.filter(slug="bench").first()
    if upstream and not args.regenerate and upstream.exchanges.count() >= rows:
        return upstream
    if upstream:
        upstream.delete()
    team = Team.objects.filter(slug="bench").first() or services.team_create(name="Bench", slug="bench")
    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_user("bench", password="bench-password")
        team.memberships.create(user=user, role="admin")
    upstream = services.upstream_create(
        team=team, name="Bench", slug="bench", base_url="http://127.0.0.1:9",
        baseline_version="2023-06-01", target_version="2026-10-21",
    )  # fmt: skip
    clients = [
        Client.objects.create(upstream=upstream, kind="declared", identity=f"client-{i}") for i in range(50)
    ]
    endpoints = ["POST /v1/messages", "POST /v1/complete", "POST /v1/messages/count_tokens", "GET /v1/models"]
    versions = ["2023-01-01", "2023-06-01", "2026-10-21"]
    started = time.perf_counter()
    buffer = io.StringIO()
    body = "\\\\x7b226d6f64656c223a22636c61756465227d"  # {"model":"claude"} as bytea hex
    for i in range(rows):
        endpoint = endpoints[i % 7 % 4]
        method, path = endpoint.split(" ", 1)
        status = 400 if i % 17 == 0 else 200
        buffer.write(
            f"{upstream.pk}\t{clients[i % 50].pk}\tproxy"
            f"\t2026-10-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i % 59:02d}+00"
            f"\t{method}\t{path}\t\t{endpoint}\t{versions[i % 3]}\t\t\t{{}}\t{body}\t{status}\t{{}}\t\\\\x"
            f"\t{'t' if i % 3 == 0 else 'f'}\t[]\t{50 + i % 900}\t\\N\t\th{i}\n"
        )
    buffer.seek(0)
    columns = (
        "upstream_id, client_id, source, started_at, method, path, query, endpoint, api_version, user_agent, "
        "sdk, request_headers, request_body, status, response_headers, response_body, streamed, "
        "response_events, duration_ms, first_byte_ms, error, content_hash"
    )
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {Exchange._meta.db_table} ({columns}) FROM STDIN") as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
        # The daily rollup that capture keeps up to date as it stores traffic, built here in one go.
        cursor.execute(
            "INSERT INTO migrations_audit_trafficday "
            "(upstream_id, day, endpoint, api_version, client_id, count) "
            "SELECT upstream_id, started_at::date, endpoint, api_version, client_id, count(*) "
            "FROM migrations_audit_exchange WHERE upstream_id = %s GROUP BY 1, 2, 3, 4, 5",
            [upstream.pk],
        )
        cursor.execute(f"ANALYZE {Exchange._meta.db_table}")
    print(f"generated {rows:,} exchanges in {time.perf_counter() - started:.1f} s")
    run = ReplayRun.objects.create(upstream=upstream, versions=versions[1:], status="running")
    sample = list(upstream.exchanges.values_list("id", flat=True)[:500])
    ReplayResult.objects.bulk_create(
        ReplayResult(run=run, exchange_id=pk, version=v, state="done" if pk % 2 else "pending")
        for pk in sample
        for v in run.versions
    )
    return upstream


def measure(http: HttpClient, name: str, url: str, **headers):
    times = []
    queries = 0
    for _ in range(args.repeat):
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = http.get(url, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 286), (name, response.status_code)
        queries = len(captured)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"{name:<28} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   queries {queries}")


def main():
    ensure_database()
    upstream = generate(args.rows)
    total = upstream.exchanges.count()
    http = HttpClient()
    http.force_login(get_user_model().objects.get(username="bench"))
    run = upstream.runs.first()
    last = upstream.exchanges.order_by("-started_at", "-id").values_list("started_at", "id")[1000]
    from urllib.parse import quote

    deep_cursor = quote(f"{last[0].isoformat()}|{last[1]}")
    exchange_id = upstream.exchanges.values_list("id", flat=True).first()
    slug = upstream.slug
    print(f"{total:,} exchanges in PostgreSQL; {args.repeat} requests per page")
    measure(http, "overview", reverse("migrations_audit:overview", args=[slug]))
    measure(http, "traffic", reverse("migrations_audit:traffic", args=[slug]))
    measure(
        http,
        "traffic deep cursor",
        reverse("migrations_audit:traffic", args=[slug]) + f"?after={deep_cursor}",
    )
    measure(http, "traffic client+version", reverse("migrations_audit:traffic", args=[slug]) + "?client="
            f"{upstream.clients.first().pk}&version=2023-06-01")  # fmt: skip
    measure(http, "traffic sort duration", reverse("migrations_audit:traffic", args=[slug]) + "?sort=slowest")
    measure(http, "traffic path search", reverse("migrations_audit:traffic", args=[slug]) + "?q=count_tokens")
    measure(http, "exchange", reverse("migrations_audit:exchange", args=[slug, exchange_id]))
    measure(http, "differences", reverse("migrations_audit:differences", args=[slug]))
    measure(http, "runs", reverse("migrations_audit:runs", args=[slug]))
    measure(
        http, "run progress (htmx)", reverse("migrations_audit:run", args=[slug, run.pk]), HX_Request="true"
    )


if __name__ == "__main__":
    main()
