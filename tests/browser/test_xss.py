"""Recorded bodies, headers and client names holding HTML and script are shown escaped everywhere:
no script runs in Chromium, on any page or report."""

import json
from datetime import UTC, date, datetime

import pytest

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.diff.services import request_findings_check
from migrations_audit.models import ReportDefinition
from migrations_audit.reports import services as report_services
from migrations_audit.reports.acknowledgements import acknowledgement_create
from migrations_audit.reports.findings import request_signature

pytestmark = pytest.mark.browser

PAYLOAD = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
SHOWN = "<script>window.__xss = 1</script>"  # the payload's part that reads the same once in a JSON string


def test_no_recorded_script_runs(page, screenshot, live_server, alice, upstream_a):
    recorded = exchanges_record(
        upstream=upstream_a,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={
                    "x-audit-client": PAYLOAD,
                    "anthropic-version": "2023-06-01",
                    "user-agent": PAYLOAD,
                },
                request_body=json.dumps({"model": "m", "temperature": 1, "note": PAYLOAD}).encode(),
                started_at=datetime(2026, 11, 1, tzinfo=UTC),
                status=200,
                response_headers={"content-type": "application/json", "x-note": PAYLOAD},
                response_body=json.dumps({"text": PAYLOAD}).encode(),
            )
        ],
    )
    # What the request_check task does once the batch commits.
    request_findings_check(exchange_ids=recorded.exchange_ids)
    definition = report_services.definition_save(
        definition=ReportDefinition(
            team=upstream_a.team,
            upstream=upstream_a,
            name=PAYLOAD,
            version_from="2023-06-01",
            version_to="2026-10-21",
            interval_seconds=3600,
        )
    )
    exchange = upstream_a.exchanges.get()
    acknowledgement_create(  # the client (PAYLOAD) and the reason end up on the acknowledgements page
        upstream=upstream_a,
        signature=request_signature(
            version_to="2026-10-21", rule_key="sampling-parameters-removed", client_identity=PAYLOAD
        ),
        reason=PAYLOAD,
        expires_on=date(2099, 1, 1),
        user=None,
        via="page",
    )
    snapshot = report_services.snapshot_create(definition=definition)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password")
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    # Each page as it should be (its status and heading), with the payload shown as text: an error
    # page, or one that left the payload out, would run no script either and prove nothing.
    pages = [
        (f"/u/{upstream_a.slug}/", "Anthropic"),
        (f"/u/{upstream_a.slug}/traffic/", "Traffic"),
        (f"/u/{upstream_a.slug}/traffic/{exchange.pk}/", "POST /v1/messages"),
        (f"/u/{upstream_a.slug}/clients/", "Clients"),
        (f"/u/{upstream_a.slug}/clients/{exchange.client_id}/", SHOWN),
        ("/reports/", "Compatibility reports"),
        (f"/reports/{definition.pk}/", SHOWN),
        (f"/reports/snapshots/{snapshot.pk}/", SHOWN),
        (f"/u/{upstream_a.slug}/acknowledgements/", "Acknowledgements"),
    ]
    for index, (path, heading) in enumerate(pages):
        response = page.goto(live_server.url + path)
        assert response.status == 200, f"{path} answered {response.status}"
        assert heading in page.locator("h1").first.inner_text(), path
        assert SHOWN in page.locator("main").inner_text(), f"the payload is not shown on {path}"
        assert page.evaluate("window.__xss") is None, f"script ran on {path}"
        if index in (2, 3):
            screenshot(f"page-{index}")
    # The HTML file made for email, opened as a page.
    email = page.request.get(f"{live_server.url}/reports/snapshots/{snapshot.pk}.html")
    assert email.status == 200
    page.set_content(email.text())
    assert SHOWN in page.locator("body").inner_text()
    assert page.evaluate("window.__xss") is None
    screenshot("email-report")
    assert dialogs == []
