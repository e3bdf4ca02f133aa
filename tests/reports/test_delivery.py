"""Report delivery: a signed webhook to a real receiver on 127.0.0.1, retried on 500, not on 400;
email attempts recorded; the schedule preview; a test delivery on request, by role."""

import hashlib
import hmac
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from migrations_audit.models import ReportDefinition, ReportDelivery
from migrations_audit.reports import delivery
from migrations_audit.reports import services as report_services
from migrations_audit.tasks import report_email, report_webhook
from tests.reports.test_reports import definition, record, replayed  # noqa: F401

SECRET = "whsec-test-signing-secret"


class Receiver:
    """An HTTP server on 127.0.0.1 that answers the statuses it is given, in turn, and keeps what
    it received."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                if status == 500:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/report"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def verified(headers: dict, body: bytes) -> bool:
    """What a receiver does: recompute the HMAC over timestamp.body and compare in constant time."""
    expected = hmac.new(
        SECRET.encode(), headers["x-migration-audit-timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(headers["x-migration-audit-signature"], f"sha256={expected}")


def with_webhook(definition, url):  # noqa: F811
    delivery.webhook_set(definition=definition, url=url, secret=SECRET)
    definition.save()
    return definition


def test_a_snapshot_is_delivered_signed_and_retried_when_the_receiver_answers_500(upstream_a, definition):  # noqa: F811
    record(upstream_a, {"model": "m", "temperature": 1}, client="checkout")
    with Receiver([500, 500, 200]) as receiver:
        with_webhook(definition, receiver.url)
        snapshot = report_services.snapshot_create(definition=definition)
        report_webhook.apply(args=[snapshot.pk])  # retries run in turn here (countdowns skipped)
        report_webhook.apply(args=[snapshot.pk])  # delivered twice: sent once
    assert len(receiver.received) == 3
    for headers, body in receiver.received:
        assert headers["content-type"] == "application/json" and verified(headers, body)
    tampered_headers, tampered_body = receiver.received[-1]
    assert not verified(tampered_headers, tampered_body + b" ")
    message = json.loads(receiver.received[-1][1])
    assert "Blocking (not acknowledged): 1" in message["text"]  # Slack shows `text`
    assert message["report"]["gate"]["passed"] is False and message["test"] is False
    attempts = list(snapshot.deliveries.order_by("attempt").values_list("attempt", "status", "http_status"))
    assert attempts == [(1, "retrying", 500), (2, "retrying", 500), (3, "sent", 200)]
    definition.refresh_from_db()
    assert (
        receiver.url not in definition.webhook_url_encrypted
        and SECRET not in definition.webhook_secret_encrypted
    )


@override_settings(REPORT_DELIVERY_TRIES=2)
def test_a_client_error_is_not_retried_and_tries_are_bounded(upstream_a, definition):  # noqa: F811
    with Receiver([400]) as receiver:
        with_webhook(definition, receiver.url)
        snapshot = report_services.snapshot_create(definition=definition)
        report_webhook.apply(args=[snapshot.pk])
    assert len(receiver.received) == 1
    assert list(snapshot.deliveries.values_list("status", "http_status")) == [("failed", 400)]
    with Receiver([500, 500, 500]) as receiver:
        with_webhook(definition, receiver.url)
        snapshot = report_services.snapshot_create(definition=definition)
        report_webhook.apply(args=[snapshot.pk])
    assert len(receiver.received) == 2
    assert list(snapshot.deliveries.order_by("attempt").values_list("status", flat=True)) == [
        "retrying",
        "failed",
    ]


def test_email_attempts_are_recorded(definition):  # noqa: F811
    snapshot = report_services.snapshot_create(definition=definition)
    report_email.apply(args=[snapshot.pk])
    report_email.apply(args=[snapshot.pk])
    assert len(mail.outbox) == 1
    assert list(snapshot.deliveries.values_list("channel", "status")) == [("email", "sent")]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "http://user:pass@example.com/hook",
        "https://:token@example.com/",
        "javascript:alert(1)",
        "example.com",
    ],
)
def test_webhook_urls_are_http_without_credentials(client, alice, definition, url):  # noqa: F811
    client.force_login(alice)
    response = client.post(
        reverse("migrations_audit:report_edit", args=[definition.pk]),
        {
            "name": definition.name,
            "upstream": definition.upstream_id,
            "version_from": definition.version_from,
            "version_to": definition.version_to,
            "schedule_kind": "interval",
            "interval_seconds": 3600,
            "replay_sample": 10,
            "enabled": "on",
            "webhook_url": url,
            "webhook_secret": SECRET,
        },
    )
    assert response.status_code == 200 and "webhook_url" in response.context["form"].errors
    assert not ReportDefinition.objects.get(pk=definition.pk).webhook_url_encrypted


def test_the_edit_page_previews_the_next_five_runs_and_never_shows_the_webhook(client, alice, definition):  # noqa: F811
    client.force_login(alice)
    preview = reverse("migrations_audit:report_schedule_preview")
    weekly = client.get(
        preview, {"schedule_kind": "crontab", "crontab": "0 8 * * 1"}, headers={"HX-Request": "true"}
    )
    runs = weekly.content.decode().count("<li>")
    assert weekly.status_code == 200 and runs == 5 and weekly.content.decode().count("Mon ") == 5
    assert "08:00" in weekly.content.decode()
    bad = client.get(preview, {"schedule_kind": "crontab", "crontab": "every day"})
    assert "Give a crontab expression" in bad.content.decode()
    hourly, _ = delivery.schedule_preview(kind="interval", interval_seconds="3600", crontab="")
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(hourly)] == [3600] * 4

    with_webhook(definition, "https://hooks.slack.com/services/T000/B000/SECRETPATH")
    edit = client.get(reverse("migrations_audit:report_edit", args=[definition.pk])).content.decode()
    assert "Next five runs" in edit and "hooks.slack.com" in edit
    assert "SECRETPATH" not in edit and SECRET not in edit
    page = client.get(reverse("migrations_audit:report", args=[definition.pk])).content.decode()
    assert "hooks.slack.com" in page and "SECRETPATH" not in page and page.count("<dd>") >= 5


def test_a_test_delivery_on_request_by_role(client, alice, bob, charlie, definition):  # noqa: F811
    with Receiver([200]) as receiver:
        with_webhook(definition, receiver.url)
        url = reverse("migrations_audit:report_test_delivery", args=[definition.pk])
        client.force_login(bob)
        assert client.post(url).status_code == 403
        client.force_login(charlie)
        assert client.post(url).status_code == 404
        assert receiver.received == []
        client.force_login(alice)
        response = client.post(url, follow=True)
    assert response.status_code == 200 and "Test delivery to 127.0.0.1: 200" in response.content.decode()
    headers, body = receiver.received[0]
    assert verified(headers, body) and json.loads(body)["test"] is True
    latest = ReportDelivery.objects.get()
    assert latest.snapshot is None and latest.status == "sent"
    assert "Last webhook delivery" in response.content.decode()


def test_the_weekly_digest_gives_each_upstreams_gate_to_its_team_only(upstream_a, upstream_b, charlie):
    from migrations_audit.reports.digest import team_digest_send
    from migrations_audit.tasks import team_digest

    upstream_a.team.upstreams.create(name="Quiet", slug="quiet", base_url="http://127.0.0.1:9")
    team_digest_send(team=upstream_a.team)
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert sorted(mail.outbox[0].to) == ["alice@example.com", "bob@example.com"]
    assert "Anthropic 2023-06-01 -> 2026-10-21: no replay yet" in body and "Quiet : not configured" in body
    replayed(upstream_a)
    record(upstream_a, {"model": "m", "temperature": 1}, client="checkout")
    team_digest_send(team=upstream_a.team)
    assert (
        "Anthropic 2023-06-01 -> 2026-10-21: fails (1 failing, 1 breaking, 0 unexplained)"
        in mail.outbox[1].body
    )
    assert "/u/anthropic/acknowledgements/" in mail.outbox[1].body
    team_digest.apply(args=[upstream_b.team_id])  # team B's digest: to charlie alone, on its own upstream
    to_charlie = [m for m in mail.outbox[2:] if m.to == ["charlie@example.com"]]
    assert len(to_charlie) == 1 and "Anthropic" not in to_charlie[0].body and "Other" in to_charlie[0].body


def test_a_webhook_reaches_only_hosts_the_operator_allows(upstream_a, definition, settings):  # noqa: F811
    # Refused when saved: loopback is not on the default list, and neither is a metadata address.
    settings.MIGRATION_AUDIT_WEBHOOK_HOSTS = ["hooks.slack.com"]
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest/", "http://localhost:8000/x"):
        with pytest.raises(ValidationError, match="MIGRATION_AUDIT_WEBHOOK_HOSTS"):
            delivery.webhook_url_validate(url)
    assert delivery.webhook_url_validate("https://hooks.slack.com/services/T/B/X")
    with Receiver([200]) as receiver:
        settings.MIGRATION_AUDIT_WEBHOOK_HOSTS = ["127.0.0.0/8"]
        with_webhook(definition, receiver.url)  # saved while the operator allowed it
        # ... then refused at delivery once the list no longer covers the address, by name or not.
        settings.MIGRATION_AUDIT_WEBHOOK_HOSTS = ["hooks.slack.com", "localhost"]
        snapshot = report_services.snapshot_create(definition=definition)
        report_webhook.apply(args=[snapshot.pk])
        with_webhook(definition, receiver.url.replace("127.0.0.1", "localhost"))
        report_webhook.apply(args=[report_services.snapshot_create(definition=definition).pk])
    assert receiver.received == [], "the receiver was never contacted"
    failures = ReportDelivery.objects.filter(definition=definition, channel="webhook")
    assert {(d.status, d.error) for d in failures} == {
        ("failed", "The receiver's address is not allowed by MIGRATION_AUDIT_WEBHOOK_HOSTS.")
    }
