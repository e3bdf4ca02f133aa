"""Versions in use: per upstream and per client, over the last 7 and 30 days, in the report and on
the client's page."""

from datetime import timedelta

import jsonschema
from django.urls import reverse
from django.utils import timezone

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.reports.build import report_payload
from tests.reports.test_reports import SCHEMA


def sent(upstream, *, client, version, days_ago, count=1):
    started = timezone.now() - timedelta(days=days_ago)
    exchanges_record(
        upstream=upstream,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={"x-audit-client": client, "anthropic-version": version},
                request_body=b'{"model": "m"}',
                started_at=started,
                status=200,
                response_headers={"content-type": "application/json"},
                response_body=b"{}",
            )
            for _ in range(count)
        ],
    )


def test_versions_in_use_over_7_and_30_days(client, alice, charlie, upstream_a):
    sent(upstream_a, client="checkout", version="2023-06-01", days_ago=20, count=3)
    sent(upstream_a, client="checkout", version="2026-10-21", days_ago=1, count=2)
    sent(upstream_a, client="search", version="2023-06-01", days_ago=2, count=1)
    sent(upstream_a, client="search", version="2023-01-01", days_ago=45, count=4)  # too old for both
    payload = report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")
    jsonschema.validate(payload, SCHEMA)
    used = payload["versions_in_use"]
    assert [(r["version"], r["exchanges"], r["clients"]) for r in used["last_30_days"]] == [
        ("2023-06-01", 4, 2),
        ("2026-10-21", 2, 1),
    ]
    assert [(r["version"], r["exchanges"]) for r in used["last_7_days"]] == [
        ("2026-10-21", 2),
        ("2023-06-01", 1),
    ]
    checkout = next(c for c in used["by_client"] if c["client"] == "checkout")
    assert checkout["last_7_days"] == [{"version": "2026-10-21", "exchanges": 2}]
    assert checkout["last_30_days"] == [
        {"version": "2023-06-01", "exchanges": 3},
        {"version": "2026-10-21", "exchanges": 2},
    ]

    page_url = reverse(
        "migrations_audit:client", args=[upstream_a.slug, upstream_a.clients.get(identity="checkout").pk]
    )
    client.force_login(alice)
    page = client.get(page_url).content.decode()
    assert "Versions in use" in page
    rows = page.split("<h2>Versions in use</h2>", 1)[1].split("</table>", 1)[0]
    assert "<td>2023-06-01</td><td>0</td><td>3" in rows and "<td>2026-10-21</td><td>2" in rows
    client.force_login(charlie)
    assert client.get(page_url).status_code == 404
