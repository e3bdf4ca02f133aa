"""Server time and query count of every dashboard page over a team's real size, on PostgreSQL.

    .venv/bin/python bench/pages.py                # full size: 1M exchanges (fills in minutes)
    .venv/bin/python bench/pages.py --scale 0.1    # a tenth of every table that grows

Fills its own database (migration_audit_bench_pages_<scale>) once, at realistic ratios: exchanges
over 90 days, 5,000 clients (a few make most of the traffic), request findings on 20% of requests,
20 replay runs with their results and comparisons, 100,000 differences over 300 signatures, a
migration over every client, 3 reports with 50 snapshots. Rows go in through COPY (bulk.rows_insert)
in chunks; the rollups are derived from them in SQL, as capture and the diff keep them. Rerun with
--regenerate to fill again. Then renders each page N times through Django's test client and prints
p50/p95 server time and the query count of each page, against the targets: p95 <= 150 ms, and as
many queries as at --scale 0.01 (query counts must not depend on the data's size)."""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--scale", type=float, default=1.0, help="share of the full size (1M exchanges)")
parser.add_argument("--repeat", type=int, default=20)
parser.add_argument("--database", default="", help="default: postgres://postgres@127.0.0.1:5432/...")
parser.add_argument("--regenerate", action="store_true")
parser.add_argument("--profile", default="", help="a page name: print its slowest queries")
parser.add_argument("--fill-only", action="store_true")
args = parser.parse_args()

SUFFIX = str(args.scale).replace(".", "_")
os.environ["DATABASE_URL"] = (
    args.database or f"postgres://postgres@127.0.0.1:5432/migration_audit_bench_pages_{SUFFIX}"
)
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
from migrations_audit.bulk import rows_insert  # noqa: E402
from migrations_audit.diff.services import changelog_rules_install, signature_of  # noqa: E402
from migrations_audit.models import (  # noqa: E402
    ChangelogRule,
    Client,
    Difference,
    DifferenceSignature,
    Exchange,
    ReplayResult,
    ReplayRun,
    ReportDefinition,
    ReportSnapshot,
    RequestFinding,
    Team,
    Upstream,
)
from migrations_audit.models.diff import ExchangeComparison  # noqa: E402
from migrations_audit.models.tracking import Migration, MigrationClientState, StatusChange  # noqa: E402

FULL = {
    "exchanges": 1_000_000,
    "clients": 5_000,
    "run_sample": 2_500,  # exchanges per replay run, each replayed under two versions
    "differences": 100_000,
}
SIZE = {name: max(10, int(count * args.scale)) for name, count in FULL.items()}
DAYS, RUNS, SIGNATURES, SNAPSHOTS = 90, 20, 300, 50
VERSIONS = ["2023-01-01", "2023-06-01", "2026-10-21"]
BASELINE, TARGET = "2023-06-01", "2026-10-21"
ENDPOINTS = [  # (endpoint, share of traffic)
    ("POST /v1/messages", 0.70),
    ("POST /v1/complete", 0.12),
    ("POST /v1/messages/count_tokens", 0.10),
    ("GET /v1/models", 0.05),
    ("POST /v1/messages/batches", 0.03),
]
CHUNK = 20_000
TARGETS_MS = 150.0
NOW = datetime.now(UTC).replace(microsecond=0)


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


def step(name: str, started: float) -> float:
    now = time.perf_counter()
    print(f"  {name:<44} {now - started:7.1f} s", flush=True)
    return now


def fill() -> Upstream:
    upstream = Upstream.objects.filter(slug="bench").first()
    if upstream and not args.regenerate and upstream.exchanges.count() >= SIZE["exchanges"]:
        return upstream
    print(f"filling: {', '.join(f'{count:,} {name}' for name, count in SIZE.items())}", flush=True)
    began = started = time.perf_counter()
    if upstream:
        with connection.cursor() as cursor:  # faster than the ORM's cascade over a million rows
            for table in (
                "migrations_audit_difference",
                "migrations_audit_differencesignature_clients",
                "migrations_audit_differencesignature",
                "migrations_audit_exchangecomparison",
                "migrations_audit_comparisontally",
                "migrations_audit_requestfinding",
                "migrations_audit_replayattempt",
                "migrations_audit_replayresult",
                "migrations_audit_reportsnapshot",
                "migrations_audit_reportdelivery",
                "migrations_audit_trafficday",
                "migrations_audit_statuschange",
                "migrations_audit_migrationclientstate",
                "migrations_audit_exchange",
                "migrations_audit_client",
                "migrations_audit_replayrun",
            ):
                cursor.execute(f"TRUNCATE {table} CASCADE")
        upstream.delete()
        started = step("emptied the previous fill", started)
    rng = random.Random(17)
    team = Team.objects.filter(slug="bench").first() or services.team_create(name="Bench", slug="bench")
    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_user("bench", password="bench-password")
        team.memberships.create(user=user, role="admin")
    upstream = services.upstream_create(
        team=team,
        name="Bench",
        slug="bench",
        base_url="http://127.0.0.1:9",
        baseline_version=BASELINE,
        target_version=TARGET,
    )
    changelog_rules_install(upstream=upstream)
    rules = list(ChangelogRule.objects.filter(upstream=upstream))
    request_rules = [rule for rule in rules if "request" in rule.match and rule.version_to == TARGET]
    response_rules = [rule for rule in rules if "request" not in rule.match]

    clients = [
        Client(
            upstream=upstream,
            kind=Client.Kind.KEY if index % 4 else Client.Kind.DECLARED,
            identity=hashlib.sha256(f"client-{index}".encode()).hexdigest()[:32]
            if index % 4
            else f"service-{index}",
            first_seen_at=NOW - timedelta(days=DAYS),
            last_seen_at=NOW - timedelta(minutes=index),
        )
        for index in range(SIZE["clients"])
    ]
    rows_insert(Client, clients)
    started = step(f"{len(clients):,} clients", started)

    # A few clients make most of the traffic (Zipf-like), as with real API keys.
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(clients))]
    client_of = rng.choices(range(len(clients)), weights=weights, k=SIZE["exchanges"])
    endpoint_of = rng.choices(range(len(ENDPOINTS)), weights=[w for _, w in ENDPOINTS], k=SIZE["exchanges"])
    span = timedelta(days=DAYS).total_seconds()
    findings: list[RequestFinding] = []
    exchange_ids: list[int] = []
    for offset in range(0, SIZE["exchanges"], CHUNK):
        chunk = []
        for index in range(offset, min(offset + CHUNK, SIZE["exchanges"])):
            progress = index / SIZE["exchanges"]  # the target version's share grows over the 90 days
            roll = rng.random()
            version = TARGET if roll < 0.6 * progress else VERSIONS[0] if roll > 0.85 else BASELINE
            endpoint = ENDPOINTS[endpoint_of[index]][0]
            client = clients[client_of[index]]
            chunk.append(
                _exchange(
                    upstream,
                    index,
                    client,
                    endpoint,
                    version,
                    NOW - timedelta(seconds=span * (1 - progress)),
                    rng,
                )
            )
        rows_insert(Exchange, chunk)
        for exchange in chunk:
            exchange_ids.append(exchange.pk)
            if exchange.pk % 5 == 0 and request_rules:
                rule = request_rules[exchange.pk % len(request_rules)]
                findings.append(
                    RequestFinding(
                        upstream=upstream,
                        exchange_id=exchange.pk,
                        client_id=exchange.client_id,
                        version=TARGET,
                        rule=rule,
                        field="/temperature",
                        message="temperature: Extra inputs are not permitted",
                        confirmed=True if exchange.pk % 15 == 0 else None,
                    )
                )
    started = step(f"{len(exchange_ids):,} exchanges over {DAYS} days", started)
    for offset in range(0, len(findings), CHUNK):
        rows_insert(RequestFinding, findings[offset : offset + CHUNK])
    started = step(f"{len(findings):,} request findings", started)
    with connection.cursor() as cursor:
        # The daily rollup that capture keeps up to date as it stores traffic, built here in one go.
        cursor.execute(
            "INSERT INTO migrations_audit_trafficday "
            "(upstream_id, day, endpoint, api_version, client_id, count) "
            "SELECT upstream_id, (started_at AT TIME ZONE 'UTC')::date, endpoint, api_version, client_id, "
            "count(*) "
            "FROM migrations_audit_exchange WHERE upstream_id = %s GROUP BY 1, 2, 3, 4, 5",
            [upstream.pk],
        )
    started = step("traffic rollup", started)

    runs = _runs_fill(upstream, user, exchange_ids, endpoint_of, rng)
    started = step(f"{RUNS} replay runs, their results and comparisons", started)
    _differences_fill(upstream, runs, response_rules, rng)
    started = step(f"{SIZE['differences']:,} differences over {SIGNATURES} signatures", started)
    _migration_fill(upstream, clients, user, rng)
    started = step(f"a migration over {len(clients):,} clients", started)
    _reports_fill(upstream, user)
    started = step(f"3 reports, {SNAPSHOTS} snapshots", started)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    step("ANALYZE", started)
    print(f"filled in {time.perf_counter() - began:.0f} s", flush=True)
    return upstream


def _exchange(upstream, index, client, endpoint, version, at, rng) -> Exchange:
    method, path = endpoint.split(" ", 1)
    streamed = endpoint == "POST /v1/messages" and index % 3 == 0
    status = 529 if index % 211 == 0 else 400 if index % 37 == 0 else 200
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": f"Summarise ticket #{index}"}],
        **({"temperature": 0.7} if index % 5 == 0 else {}),
        **({"stream": True} if streamed else {}),
    }
    text = "The ticket asks for a refund of an order that arrived damaged."
    if streamed:
        events = [
            {"event": "message_start", "data": {"type": "message_start", "message": {"id": f"msg_{index}"}}},
            {
                "event": "content_block_delta",
                "data": {"type": "content_block_delta", "delta": {"text": text}},
            },
            {
                "event": "message_delta",
                "data": {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
            },
            {"event": "message_stop", "data": {"type": "message_stop"}},
        ]
        body = "".join(f"event: {e['event']}\ndata: {json.dumps(e['data'])}\n\n" for e in events).encode()
    else:
        events = []
        body = json.dumps(
            {
                "id": f"msg_{index}",
                "type": "message",
                "content": [{"type": "text", "text": text}],
                "usage": {"input_tokens": 40, "output_tokens": 14},
            }
        ).encode()
    request_body = json.dumps(request).encode()
    return Exchange(
        upstream=upstream,
        client_id=client.pk,
        source="proxy",
        started_at=at,
        method=method,
        path=path,
        endpoint=endpoint,
        api_version=version,
        user_agent="Anthropic/Python 0.69.0",
        sdk="anthropic-python 0.69.0",
        request_headers={
            "anthropic-version": version,
            "x-api-key": "[masked]",
            "content-type": "application/json",
        },
        request_body=request_body,
        status=status,
        response_headers={
            "content-type": "text/event-stream" if streamed else "application/json",
            "request-id": f"req_{index}",
        },
        response_body=body,
        streamed=streamed,
        response_events=events,
        duration_ms=200 + rng.random() * 3000,
        first_byte_ms=100 + rng.random() * 500,
        content_hash=hashlib.sha256(request_body + version.encode()).hexdigest(),
    )


def _runs_fill(upstream, user, exchange_ids, endpoint_of, rng) -> list[tuple[ReplayRun, list[int]]]:
    runs = []
    for number in range(RUNS):
        created = NOW - timedelta(days=DAYS * (RUNS - number) / RUNS)
        last = number == RUNS - 1
        run = ReplayRun.objects.create(
            upstream=upstream,
            created_by=user,
            versions=[BASELINE, TARGET],
            selection={"sample": SIZE["run_sample"]},
            status=ReplayRun.Status.RUNNING if last else ReplayRun.Status.COMPLETED,
            started_at=created,
            finished_at=None if last else created + timedelta(minutes=20),
        )
        # Exchanges recorded before the run, the most recent first, as a run's sample is.
        end = int(len(exchange_ids) * (number + 1) / RUNS)
        before = range(max(0, end - SIZE["run_sample"] * 3), end)
        sample = sorted(rng.sample(before, min(SIZE["run_sample"], len(before))))
        results, comparisons = [], []
        for position, index in enumerate(sample):
            pending = last and position >= len(sample) // 2  # the last run is halfway through
            for version in run.versions:
                results.append(
                    ReplayResult(
                        run=run,
                        exchange_id=exchange_ids[index],
                        version=version,
                        state=ReplayResult.Status.PENDING if pending else ReplayResult.Status.DONE,
                        status=None if pending else 200,
                        response_headers={} if pending else {"content-type": "application/json"},
                        response_body=b"" if pending else b'{"type": "message", "content": []}',
                        tries=0 if pending else 1 + (index % 7 == 0),
                        duration_ms=None if pending else 800.0,
                        finished_at=None if pending else created + timedelta(minutes=10),
                        diffed_at=None if pending else created + timedelta(minutes=10),
                    )
                )
            if not pending:
                comparisons.append(
                    ExchangeComparison(
                        upstream=upstream,
                        run=run,
                        exchange_id=exchange_ids[index],
                        endpoint=ENDPOINTS[endpoint_of[index]][0],
                        version_from=BASELINE,
                        version_to=TARGET,
                        source="replay",
                    )
                )
        rows_insert(ReplayResult, results)
        rows_insert(ExchangeComparison, comparisons)
        ReplayRun.objects.filter(pk=run.pk).update(created_at=created)
        runs.append((run, [comparison.exchange_id for comparison in comparisons]))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO migrations_audit_comparisontally "
            "(upstream_id, endpoint, version_from, version_to, exchanges) "
            "SELECT upstream_id, endpoint, version_from, version_to, count(DISTINCT exchange_id) "
            "FROM migrations_audit_exchangecomparison WHERE upstream_id = %s GROUP BY 1, 2, 3, 4",
            [upstream.pk],
        )
    return runs


def _differences_fill(upstream, runs, response_rules, rng) -> None:
    kinds = ["field_removed", "field_added", "value_changed", "type_changed", "outcome_changed"]
    signatures = []
    for number in range(SIGNATURES):
        endpoint = ENDPOINTS[number % len(ENDPOINTS)][0]
        kind = kinds[number % len(kinds)]
        path = f"/content/*/field_{number}"
        classification = "breaking" if number % 5 == 0 else "noise" if number % 3 == 0 else "additive"
        rule = response_rules[number % len(response_rules)] if response_rules and number % 2 else None
        key = signature_of(
            version_from=BASELINE,
            version_to=TARGET,
            endpoint=endpoint,
            kind=kind,
            path=path,
            rule_key=rule.key if rule else None,
        )
        signatures.append(
            DifferenceSignature(
                upstream=upstream,
                signature=key,
                version_from=BASELINE,
                version_to=TARGET,
                endpoint=endpoint,
                kind=kind,
                path=path,
                classification=classification,
                rule=rule,
            )
        )
    rows_insert(DifferenceSignature, signatures)
    weights = [1 / (rank + 1) for rank in range(len(signatures))]
    compared = [(run, exchange_id) for run, exchange_ids in runs for exchange_id in exchange_ids]
    chosen = rng.choices(range(len(signatures)), weights=weights, k=SIZE["differences"])
    rows = []
    for number, which in enumerate(chosen):
        signature = signatures[which]
        run, exchange_id = compared[number % len(compared)]
        rows.append(
            Difference(
                upstream=upstream,
                exchange_id=exchange_id,
                run=run,
                version_from=BASELINE,
                version_to=TARGET,
                kind=signature.kind,
                path=signature.path.replace("*", "0"),
                before="a",
                after="b",
                classification=signature.classification,
                rule=signature.rule,
                signature=signature.signature,
                endpoint=signature.endpoint,
            )
        )
        if len(rows) == CHUNK:
            rows_insert(Difference, rows)
            rows = []
    rows_insert(Difference, rows)
    with connection.cursor() as cursor:
        # The aggregates the diff keeps up to date, computed from the rows in one go.
        cursor.execute(
            "UPDATE migrations_audit_differencesignature s "
            "SET count = d.n, exchanges = d.e, example_id = d.x "
            "FROM (SELECT signature, count(*) n, count(DISTINCT exchange_id) e, min(exchange_id) x "
            "      FROM migrations_audit_difference WHERE upstream_id = %s GROUP BY signature) d "
            "WHERE s.upstream_id = %s AND s.signature = d.signature",
            [upstream.pk, upstream.pk],
        )
        cursor.execute(
            "INSERT INTO migrations_audit_differencesignature_clients (differencesignature_id, client_id) "
            "SELECT DISTINCT s.id, e.client_id FROM migrations_audit_difference d "
            "JOIN migrations_audit_exchange e ON e.id = d.exchange_id "
            "JOIN migrations_audit_differencesignature s "
            "ON s.upstream_id = d.upstream_id AND s.signature = d.signature "
            "WHERE d.upstream_id = %s AND e.client_id IS NOT NULL",
            [upstream.pk],
        )


def _migration_fill(upstream, clients, user, rng) -> None:
    migration = Migration.objects.create(
        upstream=upstream,
        name=f"{BASELINE} → {TARGET}",
        target_version=TARGET,
        from_versions=[VERSIONS[0], BASELINE],
        deadline=date.today() + timedelta(days=60),
        created_by=user,
        refreshed_at=NOW,
    )
    statuses = ["not_started", "affected", "in_progress", "migrated", "at_risk"]
    states, changes = [], []
    for client in clients:
        status = rng.choices(statuses, weights=[30, 10, 25, 30, 5])[0]
        states.append(
            MigrationClientState(
                migration=migration,
                client=client,
                derived_status=status,
                reason="seen on both versions",
                evidence={"baseline": 10, "target": 5},
            )
        )
        changes += [
            StatusChange(
                migration=migration,
                client=client,
                from_status="",
                to_status="not_started",
                cause="first seen",
                at=NOW - timedelta(days=30),
            ),
            StatusChange(
                migration=migration,
                client=client,
                from_status="not_started",
                to_status=status,
                cause="traffic",
                at=NOW - timedelta(days=rng.randint(1, 29)),
            ),
        ]
    rows_insert(MigrationClientState, states)
    rows_insert(StatusChange, changes)


def _reports_fill(upstream, user) -> None:
    from migrations_audit.reports.build import report_payload

    started = time.perf_counter()
    payload = report_payload(upstream=upstream, version_from=BASELINE, version_to=TARGET)
    print(f"  (one report payload built in {time.perf_counter() - started:.1f} s)")
    definitions = [
        ReportDefinition.objects.create(
            team=upstream.team,
            upstream=upstream,
            name=f"Report {number}",
            version_from=BASELINE,
            version_to=TARGET,
            interval_seconds=86400,
            next_run_at=NOW + timedelta(hours=number),
            created_by=user,
        )
        for number in range(3)
    ]
    summary = payload["summary"]
    snapshots = [
        ReportSnapshot(
            definition=definitions[number % 3],
            payload=payload,
            breaking=summary["breaking"],
            unexplained=summary["unexplained"],
            blocking=summary["blocking"],
        )
        for number in range(SNAPSHOTS)
    ]
    rows_insert(ReportSnapshot, snapshots)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE migrations_audit_reportsnapshot SET created_at = now() - (id %% 50) * interval '1 day' "
            "WHERE definition_id = ANY(%s)",
            [[definition.pk for definition in definitions]],
        )


def measure(http: HttpClient, name: str, url: str, **headers) -> dict:
    times, queries, slowest = [], 0, []
    for _ in range(args.repeat):
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = http.get(url, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 286), (name, url, response.status_code)
        queries = len(captured)
        slowest = sorted(captured.captured_queries, key=lambda query: -float(query["time"]))[:5]
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    met = "ok" if p95 <= TARGETS_MS else "MISSED"
    print(
        f"{name:<26} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms"
        f"   queries {queries:3d}   {met}"
    )
    if args.profile == name:
        for query in slowest:
            print(f"    {float(query['time']) * 1000:7.1f} ms  {query['sql'][:300]}")
    return {"name": name, "p95": p95, "queries": queries}


def main():
    ensure_database()
    upstream = fill()
    if args.fill_only:
        return
    http = HttpClient()
    http.force_login(get_user_model().objects.get(username="bench"))
    slug = upstream.slug
    run = upstream.runs.order_by("-pk").first()
    exchange_id = run.results.values_list("exchange_id", flat=True).first()
    signature = upstream.signatures.order_by("-count").first()
    client = upstream.clients.order_by("pk").first()  # the client with the most traffic
    migration = upstream.migrations.first()
    definition = ReportDefinition.objects.filter(upstream=upstream).order_by("pk").first()
    snapshot = definition.snapshots.first()
    counts = {
        "exchanges": upstream.exchanges.count(),
        "clients": upstream.clients.count(),
        "request findings": RequestFinding.objects.filter(upstream=upstream).count(),
        "replay results": ReplayResult.objects.filter(run__upstream=upstream).count(),
        "differences": Difference.objects.filter(upstream=upstream).count(),
        "signatures": upstream.signatures.count(),
        "snapshots": ReportSnapshot.objects.filter(definition__upstream=upstream).count(),
    }
    print(f"scale {args.scale}: " + ", ".join(f"{count:,} {name}" for name, count in counts.items()))
    print(f"PostgreSQL, {args.repeat} requests per page; target p95 <= {TARGETS_MS:.0f} ms")
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    page = lambda name, *extra: reverse(f"migrations_audit:{name}", args=[slug, *extra])  # noqa: E731
    figures = [
        measure(http, "overview", page("overview")),
        measure(http, "traffic", page("traffic")),
        measure(http, "traffic client+version", page("traffic") + f"?client={client.pk}&version={BASELINE}"),
        measure(http, "exchange", page("exchange", exchange_id)),
        measure(http, "differences", page("differences")),
        measure(http, "difference examples", page("difference_examples", signature.pk)),
        measure(http, "clients", page("clients")),
        measure(http, "client", page("client", client.pk)),
        measure(http, "migration board", page("migration", migration.pk)),
        measure(http, "reports", reverse("migrations_audit:reports")),
        measure(http, "report", reverse("migrations_audit:report", args=[definition.pk])),
        measure(http, "snapshot", reverse("migrations_audit:report_snapshot", args=[snapshot.pk])),
        measure(http, "run progress (htmx)", page("run", run.pk), HX_Request="true"),
    ]
    missed = [figure["name"] for figure in figures if figure["p95"] > TARGETS_MS]
    print(f"p95 target missed by: {', '.join(missed)}" if missed else "every page within the p95 target")
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
