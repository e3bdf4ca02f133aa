"""How long a migration refresh takes: clients x exchanges, all statuses derived from stored rows.

    .venv/bin/python bench/tracking.py [--clients 50] [--exchanges 200]

Builds a throwaway SQLite database under var/, stores `--exchanges` exchanges for each of
`--clients` clients over 30 days (the way capture stores them: fingerprints, SDK headers), then
times a first refresh (creates every state), a second one (nothing changed), the board, the
burn-down and one client profile.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--exchanges", type=int, default=200, help="per client")
    args = parser.parse_args()

    database = Path(tempfile.mkdtemp(dir=ROOT / "var")) / "bench.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    os.environ.setdefault("MIGRATION_AUDIT_UPSTREAM_HOSTS", "127.0.0.0/8")  # upstreams on loopback
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)
    bench(args.clients, args.exchanges)
    database.unlink()


def bench(clients: int, exchanges: int) -> None:
    import hashlib
    import json
    import random
    from datetime import timedelta

    from django.utils import timezone

    from migrations_audit import services as core
    from migrations_audit.models import Client, Exchange
    from migrations_audit.secrets import key_fingerprint
    from migrations_audit.tracking import selectors, services

    rng = random.Random(7)
    team = core.team_create(name="Bench", slug="bench")
    upstream = core.upstream_create(
        team=team,
        name="Anthropic",
        slug="anthropic",
        base_url="http://127.0.0.1:9",
        baseline_version="2023-06-01",
        target_version="2026-10-21",
    )
    now = timezone.now()
    rows = []
    started = time.perf_counter()
    for number in range(clients):
        client = Client.objects.create(
            upstream=upstream, kind="key", identity=key_fingerprint(f"sk-{number}")
        )
        switch_day = rng.choice([None, 3, 10, 20])
        for index in range(exchanges):
            days_ago = rng.uniform(0, 30)
            upgraded = switch_day is not None and days_ago < switch_day
            sdk = "2.13.0" if upgraded else "1.17.0"
            body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
            if number % 5 == 0:
                body["temperature"] = 0.5
            raw = json.dumps(body).encode()
            rows.append(
                Exchange(
                    upstream=upstream,
                    client=client,
                    started_at=now - timedelta(days=days_ago),
                    method="POST",
                    path="/v1/messages",
                    endpoint="POST /v1/messages",
                    api_version="2026-10-21" if upgraded else "2023-06-01",
                    user_agent=f"Anthropic/Python {sdk}",
                    sdk=f"Python {sdk}",
                    request_headers={
                        "user-agent": f"Anthropic/Python {sdk}",
                        "x-stainless-lang": "python",
                        "x-stainless-package-version": sdk,
                        ("authorization" if upgraded else "x-api-key"): client.identity,
                    },
                    request_body=raw,
                    status=400 if upgraded and number % 5 == 0 else 200,
                    streamed=index % 3 == 0,
                    content_hash=hashlib.sha256(f"{number}-{index}".encode()).hexdigest(),
                )
            )
    Exchange.objects.bulk_create(rows, batch_size=2000)
    print(f"stored {len(rows):,} exchanges of {clients} clients in {time.perf_counter() - started:.1f}s")

    migration = services.migration_create(
        upstream=upstream,
        name="Bench",
        target_version="2026-10-21",
        deadline=timezone.localdate() + timedelta(days=60),
    )
    for label, action in (
        ("first refresh (creates states)", lambda: services.migration_refresh(migration=migration)),
        ("second refresh (no change)", lambda: services.migration_refresh(migration=migration)),
        ("board", lambda: selectors.migration_board(migration=migration)),
        ("burn-down", lambda: selectors.migration_burndown(migration=migration)),
        ("client profile", lambda: selectors.client_profile(client=Client.objects.first())),
        ("clients overview", lambda: selectors.clients_overview(upstream=upstream)),
    ):
        started = time.perf_counter()
        action()
        elapsed = time.perf_counter() - started
        print(f"{label:32s} {elapsed * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
