"""Time to build a compatibility report and render it in every format, over scale-issue data.

    .venv/bin/python bench/reports.py --rows 1000000     # its own database: migration_audit_bench_reports

Generates once (rerun with --regenerate) an upstream with `--rows` exchanges (COPY), their daily
rollup, a request finding for every third exchange, `--signatures` difference signatures over
`--clients` clients, a replay's comparison tallies and some acknowledgements; then builds the report
payload and renders JSON, CSV, HTML, JUnit and GitHub annotations `--repeat` times, and prints the
p50/max of each step and of the whole (the target: under 2 s)."""

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rows", type=int, default=1_000_000)
parser.add_argument("--clients", type=int, default=200)
parser.add_argument("--signatures", type=int, default=2_000)
parser.add_argument("--repeat", type=int, default=5)
parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/migration_audit_bench_reports")
parser.add_argument("--regenerate", action="store_true")
args = parser.parse_args()

os.environ["DATABASE_URL"] = args.database
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("STATIC_MANIFEST", "0")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from migrations_audit import services  # noqa: E402
from migrations_audit.models import (  # noqa: E402
    Acknowledgement,
    Client,
    ComparisonTally,
    DifferenceSignature,
    Exchange,
    Team,
    Upstream,
)
from migrations_audit.reports.build import report_payload  # noqa: E402
from migrations_audit.reports.findings import gate_evaluate  # noqa: E402
from migrations_audit.reports.render import (  # noqa: E402
    report_csv,
    report_github,
    report_html,
    report_junit,
)

ENDPOINTS = ["POST /v1/messages", "POST /v1/complete", "POST /v1/messages/count_tokens", "GET /v1/models"]
VERSIONS = ["2023-01-01", "2023-06-01", "2026-10-21"]


def ensure_database():
    params = settings.DATABASES["default"]
    with psycopg.connect(
        host=params["HOST"],
        port=params["PORT"] or 5432,
        user=params["USER"],
        dbname="postgres",
        autocommit=True,
    ) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [params["NAME"]]).fetchone():
            admin.execute(f'CREATE DATABASE "{params["NAME"]}"')
    call_command("migrate", verbosity=0)


def _copy(table: str, columns: str, lines) -> None:
    buffer = io.StringIO()
    buffer.writelines(lines)
    buffer.seek(0)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        while chunk := buffer.read(1 << 20):
            copy.write(chunk)


def generate() -> Upstream:
    upstream = Upstream.objects.filter(slug="bench-reports").first()
    if upstream and not args.regenerate and upstream.exchanges.count() >= args.rows:
        return upstream
    if upstream:
        upstream.delete()
    team = Team.objects.filter(slug="bench-reports").first() or services.team_create(
        name="Bench reports", slug="bench-reports"
    )
    upstream = services.upstream_create(
        team=team, name="Bench reports", slug="bench-reports", base_url="http://127.0.0.1:9",
        baseline_version="2023-06-01", target_version="2026-10-21",
    )  # fmt: skip
    started = time.perf_counter()
    clients = Client.objects.bulk_create(
        Client(upstream=upstream, kind="declared", identity=f"client-{i}") for i in range(args.clients)
    )
    body = "\\\\x7b226d6f64656c223a22636c61756465222c2274656d7065726174757265223a317d"
    today = timezone.now()
    _copy(
        Exchange._meta.db_table,
        "upstream_id, client_id, source, started_at, method, path, query, endpoint, api_version, user_agent, "
        "sdk, request_headers, request_body, status, response_headers, response_body, streamed, "
        "response_events, duration_ms, first_byte_ms, error, content_hash",
        (
            f"{upstream.pk}\t{clients[i % len(clients)].pk}\tproxy"
            f"\t{(today - timezone.timedelta(days=i % 30, seconds=i % 86400)).isoformat()}"
            f"\t{ENDPOINTS[i % 4].split(' ')[0]}\t{ENDPOINTS[i % 4].split(' ')[1]}\t\t{ENDPOINTS[i % 4]}"
            f"\t{VERSIONS[i % 3]}\t\t\t{{}}\t{body}\t200\t{{}}\t\\\\x\tf\t[]\t{50 + i % 900}\t\\N\t\th{i}\n"
            for i in range(args.rows)
        ),
    )
    rule = upstream.changelog_rules.get(key="sampling-parameters-removed")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO migrations_audit_trafficday "
            "(upstream_id, day, endpoint, api_version, client_id, count) "
            "SELECT upstream_id, started_at::date, endpoint, api_version, client_id, count(*) "
            "FROM migrations_audit_exchange WHERE upstream_id = %s GROUP BY 1, 2, 3, 4, 5",
            [upstream.pk],
        )
        cursor.execute(
            "INSERT INTO migrations_audit_requestfinding "
            "(upstream_id, exchange_id, client_id, version, rule_id, field, message, confirmed) "
            "SELECT upstream_id, id, client_id, '2026-10-21', %s, '/temperature', "
            "'temperature is rejected', NULL "
            "FROM migrations_audit_exchange WHERE upstream_id = %s AND id %% 3 = 0",
            [rule.pk, upstream.pk],
        )
        cursor.execute("ANALYZE")
    signatures = DifferenceSignature.objects.bulk_create(
        DifferenceSignature(
            upstream=upstream,
            signature=f"{i:064x}",
            version_from="2023-06-01",
            version_to="2026-10-21",
            endpoint=ENDPOINTS[i % 4],
            kind=("field_removed", "type_changed", "field_added")[i % 3],
            path=f"/content/{i}/text",
            classification=("breaking", "additive")[i % 2],
            count=10 + i,
            exchanges=5 + i % 500,
        )
        for i in range(args.signatures)
    )
    through = DifferenceSignature.clients.through
    through.objects.bulk_create(
        through(differencesignature_id=s.pk, client_id=clients[(n + k) % len(clients)].pk)
        for n, s in enumerate(signatures)
        for k in range(20)
    )
    ComparisonTally.objects.bulk_create(
        ComparisonTally(
            upstream=upstream,
            endpoint=e,
            version_from="2023-06-01",
            version_to="2026-10-21",
            exchanges=args.rows // 12,
        )
        for e in ENDPOINTS
    )
    Acknowledgement.objects.bulk_create(
        Acknowledgement(
            upstream=upstream, signature=s.signature, finding="difference", title=s.path, reason="bench"
        )
        for s in signatures[: args.signatures // 10]
    )
    print(f"generated {args.rows:,} exchanges and the rest in {time.perf_counter() - started:.1f} s")
    return upstream


def main():
    ensure_database()
    upstream = generate()
    steps = {
        name: []
        for name in (
            "payload",
            "gate",
            "json",
            "csv",
            "html",
            "junit",
            "github",
            "all formats, payload included",
        )
    }
    for _ in range(args.repeat):
        began = time.perf_counter()
        payload = report_payload(upstream=upstream, version_from="2023-06-01", version_to="2026-10-21")
        steps["payload"].append(time.perf_counter() - began)
        renderers = {
            "gate": lambda p: gate_evaluate(p, fail_on="any"),
            "json": lambda p: json.dumps(p, indent=2),
            "csv": report_csv,
            "html": lambda p: report_html(p, title="Bench"),
            "junit": lambda p: report_junit(p, p["gate"]),
            "github": lambda p: report_github(p, p["gate"]),
        }
        for name, render in renderers.items():
            started = time.perf_counter()
            render(payload)
            steps[name].append(time.perf_counter() - started)
        steps["all formats, payload included"].append(time.perf_counter() - began)
    summary = payload["summary"]
    print(
        f"{upstream.exchanges.count():,} exchanges, {len(payload['differences']):,} signatures, "
        f"{summary['exchanges_rejected']:,} requests rejected, {len(payload['clients_affected'])} clients; "
        f"{args.repeat} runs"
    )
    for name, times in steps.items():
        print(f"{name:<32} p50 {statistics.median(times) * 1000:8.1f} ms   max {max(times) * 1000:8.1f} ms")
    worst = max(steps["all formats, payload included"])
    print(f"{'under' if worst < 2 else 'OVER'} 2 s: worst whole build and render {worst:.2f} s")


if __name__ == "__main__":
    main()
