"""Delivering reports: a webhook (Slack-compatible JSON, signed), attempts recorded one row each.

The receiver verifies a delivery by computing HMAC-SHA256, keyed with the secret the team gave, over
`<X-Migration-Audit-Timestamp>.<raw body>` and comparing it with `X-Migration-Audit-Signature`
(`sha256=<hex>`); it should refuse timestamps more than a few minutes old (replays).

Webhook URLs are given by a team's members, like upstream URLs: only http(s), never with
credentials in them, redirects are not followed, the receiver's answer is not shown (its status
is), and the timeout is short. The URL and the secret are stored encrypted and shown as a host only.
"""

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import requests
from croniter import croniter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from migrations_audit import crypto, upstream_guard
from migrations_audit.models import ReportDefinition, ReportDelivery, ReportSnapshot

from .render import report_text_summary

SIGNATURE_HEADER = "X-Migration-Audit-Signature"
TIMESTAMP_HEADER = "X-Migration-Audit-Timestamp"
TIMEOUT = (5, 10)  # connect, read (seconds)
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


def webhook_url_validate(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("A webhook URL starts with https:// (or http://) and names a host.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("Put no credentials in the URL: deliveries are signed with the secret instead.")
    if len(url) > 2000:
        raise ValidationError("That URL is too long.")
    problem = upstream_guard.url_host_problem(url, setting=upstream_guard.WEBHOOK_SETTING)
    if problem:
        raise ValidationError(problem)
    return url


def webhook_set(*, definition: ReportDefinition, url: str | None, secret: str | None) -> None:
    """Set (or with url "" clear) the webhook of a definition; None leaves a value as it is."""
    if url == "":
        definition.webhook_url_encrypted = definition.webhook_host = definition.webhook_secret_encrypted = ""
        return
    if url is not None:
        url = webhook_url_validate(url)
        definition.webhook_url_encrypted = crypto.encrypt(url)
        definition.webhook_host = urlsplit(url).hostname or ""
    if secret:
        definition.webhook_secret_encrypted = crypto.encrypt(secret)


def webhook_sign(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_message(*, payload: dict, title: str, link: str = "", test: bool = False) -> dict:
    """Slack-compatible (`text`), with the report's summary and gate for other receivers."""
    text = report_text_summary(payload, title=title, link=link)
    return {
        "text": ("[test delivery] " if test else "") + text,
        "test": test,
        "report": {
            "upstream": payload["upstream"],
            "versions": payload["versions"],
            "status": payload["status"],
            "summary": payload["summary"],
            "gate": payload.get("gate"),
            "generated_at": payload["generated_at"],
            "link": link,
        },
    }


def backoff_seconds(*, attempt: int, retry_after: str | None = None) -> int:
    """Seconds before try `attempt + 1`: Retry-After if the receiver gave seconds, else doubling."""
    if retry_after and retry_after.strip().isdigit():
        return min(int(retry_after.strip()), 3600)
    return min(settings.REPORT_DELIVERY_BACKOFF_SECONDS * 2 ** (attempt - 1), 3600)


def webhook_attempt(
    *,
    definition: ReportDefinition,
    message: dict,
    attempt: int,
    snapshot: ReportSnapshot | None = None,
    final: bool = False,
) -> tuple[ReportDelivery, int | None]:
    """POST once. Returns the attempt's row and, if it may be retried, the seconds to wait first."""
    url = crypto.decrypt(definition.webhook_url_encrypted)
    secret = (
        crypto.decrypt(definition.webhook_secret_encrypted) if definition.webhook_secret_encrypted else ""
    )
    body = json.dumps(message).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "MigrationAudit-Webhook/1",
        TIMESTAMP_HEADER: timestamp,
    }
    if secret:
        headers[SIGNATURE_HEADER] = webhook_sign(secret=secret, timestamp=timestamp, body=body)
    started = time.monotonic()
    status, error, retry_in = None, "", None
    try:
        with upstream_guard.guarded_session(setting=upstream_guard.WEBHOOK_SETTING) as session:
            response = session.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.ConnectionError as exc:
        if isinstance(exc.__context__, upstream_guard.AddressNotAllowed) or "not allowed by" in str(exc):
            error = f"The receiver's address is not allowed by {upstream_guard.WEBHOOK_SETTING}."
        else:
            error = f"{type(exc).__name__}: the receiver could not be reached"
            retry_in = backoff_seconds(attempt=attempt)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: the receiver could not be reached"
        retry_in = backoff_seconds(attempt=attempt)
    else:
        status = response.status_code
        if not 200 <= status < 300:
            error = f"The receiver answered {status}."
            if status in RETRYABLE:
                retry_in = backoff_seconds(attempt=attempt, retry_after=response.headers.get("Retry-After"))
        response.close()
    if retry_in is not None and (final or attempt >= settings.REPORT_DELIVERY_TRIES):
        retry_in = None
    delivery = ReportDelivery.objects.create(
        definition=definition,
        snapshot=snapshot,
        channel=ReportDelivery.Channel.WEBHOOK,
        attempt=attempt,
        status=ReportDelivery.Status.SENT
        if not error
        else (ReportDelivery.Status.RETRYING if retry_in is not None else ReportDelivery.Status.FAILED),
        http_status=status,
        error=error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return delivery, retry_in


def snapshot_link(snapshot: ReportSnapshot) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("migrations_audit:report_snapshot", args=[snapshot.pk])


def snapshot_webhook(*, snapshot_id: int, attempt: int) -> int | None:
    """Deliver a snapshot to its definition's webhook (once: a delivered snapshot is not sent again).
    Returns the seconds to wait before retrying, or None when done."""
    snapshot = ReportSnapshot.objects.select_related("definition").get(pk=snapshot_id)
    definition = snapshot.definition
    if not definition.webhook_url_encrypted:
        return None
    if snapshot.deliveries.filter(channel="webhook", status=ReportDelivery.Status.SENT).exists():
        return None
    message = webhook_message(
        payload=snapshot.payload,
        title=f"Compatibility report “{definition.name}”",
        link=snapshot_link(snapshot),
    )
    _, retry_in = webhook_attempt(definition=definition, message=message, attempt=attempt, snapshot=snapshot)
    return retry_in


def delivery_test(*, definition: ReportDefinition) -> ReportDelivery:
    """Send a test message to the definition's webhook now, once, with the report as it stands."""
    from .build import report_payload

    payload = report_payload(
        upstream=definition.upstream, version_from=definition.version_from, version_to=definition.version_to
    )
    message = webhook_message(payload=payload, title=f"Compatibility report “{definition.name}”", test=True)
    delivery, _ = webhook_attempt(definition=definition, message=message, attempt=1, final=True)
    return delivery


def deliveries_latest(*, definition: ReportDefinition) -> dict[str, ReportDelivery]:
    """The last attempt per channel, for the report's page."""
    latest = {}
    for channel in ReportDelivery.Channel.values:
        found = definition.deliveries.filter(channel=channel).first()
        if found is not None:
            latest[channel] = found
    return latest


def schedule_preview(
    *, kind: str, interval_seconds, crontab: str, after: datetime | None = None, count: int = 5
) -> tuple[list[datetime], str]:
    """The next `count` run times of a schedule, or an error that says what is wrong with it."""
    after = after or timezone.now()
    if kind == ReportDefinition.ScheduleKind.CRONTAB:
        expression = (crontab or "").strip()
        if not expression or not croniter.is_valid(expression):
            return [], "Give a crontab expression such as “0 8 * * 1” (minute hour day month weekday)."
        iterator = croniter(expression, after)
        return [iterator.get_next(datetime) for _ in range(count)], ""
    try:
        seconds = int(interval_seconds)
    except (TypeError, ValueError):
        return [], "Give the interval in seconds (3600 = hourly, 86400 = daily)."
    if seconds <= 0:
        return [], "The interval must be at least one second."
    return [after + timedelta(seconds=seconds * n) for n in range(1, count + 1)], ""
