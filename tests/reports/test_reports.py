"""Compatibility reports: content, trend, formats, the CI gate, pages, and a real beat + worker."""

import csv
import io
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command
from django.urls import reverse

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.diff.services import request_findings_check
from migrations_audit.models import (
    Acknowledgement,
    ComparisonTally,
    DifferenceSignature,
    ReportDefinition,
    ReportSnapshot,
)
from migrations_audit.reports import services
from migrations_audit.reports.build import report_payload
from migrations_audit.reports.render import report_csv, report_html
from tests.conftest import beat_start
from tests.support.servers import PROJECT_ROOT, stop

SCHEMA = json.loads((PROJECT_ROOT / "migrations_audit/reports/schema/report-v2.json").read_text())
SECRET = "sk-ant-report-secret-key"


def record(upstream, body: dict, *, client="svc", count=1):
    recorded = exchanges_record(
        upstream=upstream,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={
                    "x-audit-client": client,
                    "anthropic-version": "2023-06-01",
                    "x-api-key": SECRET,
                },
                request_body=json.dumps(body).encode(),
                started_at=datetime(2026, 11, 20, tzinfo=UTC),
                status=200,
                response_headers={"content-type": "application/json"},
                response_body=b"{}",
            )
            for _ in range(count)
        ],
    )
    # What the request_check task does once the batch commits.
    request_findings_check(exchange_ids=recorded.exchange_ids)


def signature(upstream, *, key, path, classification="breaking", rule=None, exchanges=3, acknowledged=False):
    if acknowledged:
        Acknowledgement.objects.create(
            upstream=upstream, signature=key, finding="difference", title=path, reason="known"
        )
    return DifferenceSignature.objects.create(
        upstream=upstream,
        signature=key,
        version_from="2023-06-01",
        version_to="2026-10-21",
        endpoint="POST /v1/messages",
        kind="field_removed",
        path=path,
        classification=classification,
        rule=rule,
        count=exchanges,
        exchanges=exchanges,
    )


def replayed(upstream, *, exchanges=10):
    """What a replay of 2023-06-01 and 2026-10-21 leaves: the count of exchanges it compared."""
    ComparisonTally.objects.update_or_create(
        upstream=upstream,
        endpoint="POST /v1/messages",
        version_from="2023-06-01",
        version_to="2026-10-21",
        defaults={"exchanges": exchanges},
    )


@pytest.fixture
def definition(upstream_a, alice):
    return services.definition_save(
        definition=ReportDefinition(
            team=upstream_a.team,
            upstream=upstream_a,
            name="Weekly",
            version_from="2023-06-01",
            version_to="2026-10-21",
            interval_seconds=3600,
            recipients="team@example.com",
            created_by=alice,
        )
    )


def test_payload_follows_its_schema_and_names_what_breaks(upstream_a):
    record(upstream_a, {"model": "m", "temperature": 0.3}, client="checkout")
    record(upstream_a, {"model": "m"}, client="search")
    signature(upstream_a, key="a" * 64, path="/exception")
    payload = report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")
    jsonschema.validate(payload, SCHEMA)
    assert payload["summary"]["clients_affected"] == 1
    assert payload["clients_affected"][0]["client"] == "checkout"
    assert payload["request_rules"][0]["rule"] == "sampling-parameters-removed"
    assert payload["summary"]["unexplained"] == 1
    assert payload["summary"]["blocking"] == 2
    assert SECRET not in json.dumps(payload) + report_csv(payload) + report_html(payload, title="t")


def test_csv_parses_back(upstream_a):
    record(upstream_a, {"model": "m", "top_k": 3})
    signature(upstream_a, key="b" * 64, path="/truncated", classification="additive")
    rows = list(
        csv.DictReader(
            io.StringIO(
                report_csv(
                    report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")
                )
            )
        )
    )
    assert [row["section"] for row in rows] == ["request_check", "replay"]
    assert rows[1]["path"] == "/truncated" and rows[1]["classification"] == "additive"


def test_trend_against_the_previous_snapshot(upstream_a, definition):
    grows = signature(upstream_a, key="c" * 64, path="/content/0/text", exchanges=2)
    goes = signature(upstream_a, key="d" * 64, path="/exception", exchanges=5)
    first = services.snapshot_create(definition=definition)
    assert first.payload["trend"]["previous"] is None
    DifferenceSignature.objects.filter(pk=grows.pk).update(exchanges=9)
    goes.delete()
    signature(upstream_a, key="e" * 64, path="/stop_reason")
    record(upstream_a, {"model": "m", "temperature": 1})
    second = services.snapshot_create(definition=definition)
    trend = second.payload["trend"]
    assert [item["title"] for item in trend["new"]] == [
        "field_removed /stop_reason (POST /v1/messages)",
        "request rule sampling-parameters-removed: requests of svc",
    ]
    assert [item["signature"] for item in trend["fixed"]] == ["d" * 64]
    assert [item["signature"] for item in trend["still_open"]] == ["c" * 64]
    assert trend["growing"] == ["c" * 64]
    assert trend["still_open"][0]["previous_exchanges"] == 2 and trend["still_open"][0]["exchanges"] == 9
    with pytest.raises(ValueError, match="immutable"):
        second.save()


def test_compat_report_exit_codes(upstream_a, upstream_b, tmp_path):
    replayed(upstream_b)
    replayed(upstream_a)
    with pytest.raises(SystemExit) as clean:
        call_command("compat_report", "--upstream", upstream_b.slug, "--versions", "2023-06-01,2026-10-21")
    assert clean.value.code == 0
    record(upstream_a, {"model": "m", "temperature": 1})
    output = tmp_path / "report.json"
    with pytest.raises(SystemExit) as breaking:
        call_command(
            "compat_report", "--upstream", upstream_a.slug, "--format", "json", "--output", str(output)
        )
    assert breaking.value.code == 1
    jsonschema.validate(json.loads(output.read_text()), SCHEMA)


def test_acknowledged_breaking_differences_do_not_block(upstream_a):
    signature(upstream_a, key="f" * 64, path="/exception", acknowledged=True)
    payload = report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")
    assert payload["summary"]["breaking"] == 1 and payload["summary"]["blocking"] == 0


def test_compat_report_refuses_bad_arguments(upstream_a):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No upstream"):
        call_command("compat_report", "--upstream", "nope")
    with pytest.raises(CommandError, match="Unknown version"):
        call_command("compat_report", "--upstream", upstream_a.slug, "--versions", "2023-06-01,2099-01-01")


def test_a_failed_fresh_replay_still_gives_a_snapshot_that_says_so(upstream_a, definition):
    upstream_a.replay_key_encrypted = ""
    upstream_a.save()
    ReportDefinition.objects.filter(pk=definition.pk).update(fresh_replay=True)
    snapshot = services.report_run(definition_id=definition.pk)
    assert snapshot.status == "degraded"
    assert "replay" in snapshot.status_reason.lower()


def test_schedules_are_claimed_once(definition):
    from datetime import timedelta

    from django.utils import timezone

    ReportDefinition.objects.filter(pk=definition.pk).update(
        next_run_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.reports_due_claim() == [definition.pk]
    assert services.reports_due_claim() == []


def test_pages_and_downloads_by_role(client, alice, bob, charlie, definition):
    snapshot = services.snapshot_create(definition=definition)
    client.force_login(bob)
    assert client.get(reverse("migrations_audit:report", args=[definition.pk])).status_code == 200
    assert client.post(reverse("migrations_audit:report_run", args=[definition.pk])).status_code == 403
    assert client.get(reverse("migrations_audit:report_edit", args=[definition.pk])).status_code == 403
    for fmt in ("json", "csv", "html"):
        response = client.get(reverse("migrations_audit:report_download", args=[snapshot.pk, fmt]))
        assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    client.force_login(charlie)
    assert client.get(reverse("migrations_audit:report", args=[definition.pk])).status_code == 404
    assert client.get(reverse("migrations_audit:report_snapshot", args=[snapshot.pk])).status_code == 404
    client.force_login(alice)
    response = client.post(
        reverse("migrations_audit:report_new"),
        {
            "name": "Nightly",
            "upstream": definition.upstream_id,
            "version_from": "2023-06-01",
            "version_to": "2099-01-01",
            "schedule_kind": "crontab",
            "crontab": "not a cron",
            "replay_sample": 10,
            "recipients": "nobody",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"version_to", "crontab", "recipients"} <= set(errors)


@pytest.mark.slow
def test_a_real_beat_and_worker_produce_snapshots_and_emails(
    worker_factory, upstream_a, definition, tmp_path
):
    record(upstream_a, {"model": "m", "temperature": 1})
    ReportDefinition.objects.filter(pk=definition.pk).update(interval_seconds=2)
    services.definition_save(definition=ReportDefinition.objects.get(pk=definition.pk))
    mail_dir = tmp_path / "mail"
    env = {"REPORTS_TICK_SECONDS": 1, "EMAIL_FILE_PATH": str(mail_dir)}
    worker_factory(env=env)
    beat = beat_start(tmp_path, **env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            emailed = ReportSnapshot.objects.filter(definition=definition).exclude(emailed_to="").count()
            if emailed >= 2:
                break
            time.sleep(0.5)
    finally:
        stop(beat)
    assert emailed >= 2, (tmp_path / "beat.log").read_text()[-2000:]
    messages = [path.read_text() for path in sorted(Path(mail_dir).iterdir())]
    assert len(messages) >= 2
    assert "team@example.com" in messages[0] and "Blocking (not acknowledged): 1" in messages[0]
    assert all(SECRET not in message for message in messages)
    assert os.path.getsize(sorted(Path(mail_dir).iterdir())[0]) > 1000


def test_reports_read_as_words_and_link_back_to_the_audit(client, alice, upstream_a, definition):
    from django.template import Context, Template

    from migrations_audit.reports.render import plain_text

    every = Template("{% load tracking %}{{ s|every }}")
    assert [every.render(Context({"s": s})) for s in (86400, 3600, 21600, 900, 90)] == [
        "every day",
        "every hour",
        "every 6 hours",
        "every 15 minutes",
        "every 90 seconds",
    ]
    label = Template("{% load tracking %}{{ s|status_label }}")
    assert label.render(Context({"s": "not_started"})) == "Not started"
    assert (
        plain_text("`temperature`, `top_p` and `top_k` are rejected")
        == "temperature, top_p and top_k are rejected"
    )
    snapshot = services.snapshot_create(definition=definition)
    client.force_login(alice)
    page = client.get(reverse("migrations_audit:report_snapshot", args=[snapshot.pk])).content.decode()
    differences = f"/u/{upstream_a.slug}/differences/?pair=2023-06-01..2026-10-21"
    assert differences in page
    assert client.get(differences).status_code == 200
    assert (
        "seconds" not in client.get(reverse("migrations_audit:report", args=[definition.pk])).content.decode()
    )


@pytest.mark.parametrize("page", ["reports", "report"])
def test_report_pages_take_as_many_queries_with_many_snapshots_and_read_no_payload(
    client, alice, upstream_a, definition, page
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = (
        reverse("migrations_audit:reports")
        if page == "reports"
        else reverse("migrations_audit:report", args=[definition.pk])
    )
    client.force_login(alice)
    big = {"summary": {"breaking": 1, "unexplained": 0, "blocking": 1}, "filler": "x" * 10_000}
    ReportSnapshot.objects.create(definition=definition, payload=big, breaking=1, blocking=1)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for index in range(5):
        other = ReportDefinition.objects.create(
            team=upstream_a.team,
            upstream=upstream_a,
            name=f"Report {index}",
            version_from="2023-06-01",
            version_to="2026-10-21",
            interval_seconds=3600,
        )
        for _ in range(12):
            ReportSnapshot.objects.create(definition=other, payload=big, breaking=2, blocking=2)
    for _ in range(60):
        ReportSnapshot.objects.create(
            definition=definition, payload=big, breaking=3, unexplained=4, blocking=0
        )
    with CaptureQueriesContext(connection) as large:
        response = client.get(url)
    assert response.status_code == 200
    assert len(large) == len(small), f"{page}: {len(small)} -> {len(large)} queries"
    assert not [q["sql"] for q in large if '"payload"' in q["sql"]], "a list read the snapshots' payloads"
    html = response.content.decode()
    if page == "reports":
        assert html.count("nothing blocks") == 1 and html.count("2 blocking") == 5
    else:
        assert html.count("<td>3</td><td>4</td>") == 50


def test_the_snapshot_page_lists_fifty_clients_and_links_the_rest_to_the_downloads(client, alice, definition):
    record(definition.upstream, {"model": "m", "temperature": 0.3}, client="checkout")
    payload = report_payload(upstream=definition.upstream, version_from="2023-06-01", version_to="2026-10-21")
    [affected] = payload["clients_affected"]
    payload["clients_affected"] = [{**affected, "client": f"svc-{index:03d}"} for index in range(130)]
    snapshot = ReportSnapshot.objects.create(definition=definition, payload=payload)
    client.force_login(alice)
    html = client.get(reverse("migrations_audit:report_snapshot", args=[snapshot.pk])).content.decode()
    assert html.count("<strong>svc-") == 50 and "<strong>svc-049</strong>" in html
    assert "and 80 more clients in the" in html
    assert reverse("migrations_audit:report_download", args=[snapshot.pk, "csv"]) in html
    whole = client.get(reverse("migrations_audit:report_download", args=[snapshot.pk, "json"])).json()
    assert len(whole["clients_affected"]) == 130


def test_run_now_shows_its_place_and_the_workers_and_the_page_refreshes_until_the_snapshot(
    client, alice, definition
):
    other = services.definition_save(
        definition=ReportDefinition(
            team=definition.team,
            upstream=definition.upstream,
            name="other",
            version_from=definition.version_from,
            version_to=definition.version_to,
            interval_seconds=3600,
        )
    )
    client.force_login(alice)
    url = reverse("migrations_audit:report", args=[definition.pk])
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286, "nothing waits: no polling"
    client.post(reverse("migrations_audit:report_run", args=[other.pk]))
    client.post(reverse("migrations_audit:report_run", args=[definition.pk]))
    page = client.get(url).content.decode()
    assert "A run of this report is waiting for its snapshot." in page
    assert "1 report run asked before it is still in the queue." in page
    assert "No worker is running." in page
    assert f'hx-get="{url}" hx-trigger="every 2s"' in page
    partial = client.get(url, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    services.snapshot_create(definition=other)
    assert "It is next in the queue." in client.get(url, headers={"HX-Request": "true"}).content.decode()
    snapshot = services.snapshot_create(definition=definition)
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286, "the refresh stops once the snapshot is taken"
    body = done.content.decode()
    assert reverse("migrations_audit:report_snapshot", args=[snapshot.pk]) in body
    assert "waiting for its snapshot" not in body and "hx-get" not in body
