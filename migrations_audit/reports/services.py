"""Report schedules, runs and delivery.

Schedules are rows (interval or crontab) with `next_run_at`; a beat tick (dashboard/schedules.py)
claims due ones with a conditional UPDATE, so two beats or workers never run one twice.
(django-celery-beat would keep them in its own tables, but its releases pin Django below 6.1.)
"""

import smtplib
from datetime import datetime, timedelta

from croniter import croniter
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from migrations_audit.models import ReplayRun, ReportDefinition, ReportDelivery, ReportSnapshot

from .acknowledgements import acknowledgements_expire
from .build import report_payload
from .delivery import backoff_seconds
from .render import report_html, report_text_summary
from .tasks import report_email, report_webhook

# How long a report waits for its fresh replay before it reports with what is stored.
REPLAY_WAIT = timedelta(minutes=30)


def schedule_next(*, definition: ReportDefinition, after: datetime | None = None) -> datetime | None:
    after = after or timezone.now()
    if definition.schedule_kind == ReportDefinition.ScheduleKind.CRONTAB:
        if not definition.crontab or not croniter.is_valid(definition.crontab):
            return None
        return croniter(definition.crontab, after).get_next(datetime)
    if not definition.interval_seconds:
        return None
    return after + timedelta(seconds=definition.interval_seconds)


def definition_save(*, definition: ReportDefinition) -> ReportDefinition:
    definition.next_run_at = schedule_next(definition=definition) if definition.enabled else None
    definition.save()
    return definition


def reports_due_claim(*, now: datetime | None = None) -> list[int]:
    """Ids of the definitions due now, each claimed by moving its next_run_at forward atomically."""
    now = now or timezone.now()
    claimed = []
    for definition in ReportDefinition.objects.filter(enabled=True, next_run_at__lte=now):
        following = schedule_next(definition=definition, after=max(now, definition.next_run_at))
        won = ReportDefinition.objects.filter(pk=definition.pk, next_run_at=definition.next_run_at).update(
            next_run_at=following, last_run_at=now
        )
        if won:
            claimed.append(definition.pk)
    return claimed


def report_run(*, definition_id: int) -> ReportSnapshot | None:
    """Run a report now: start a fresh replay first if asked (the snapshot is taken when it ends),
    otherwise take the snapshot at once."""
    definition = ReportDefinition.objects.select_related("upstream").get(pk=definition_id)
    if definition.fresh_replay:
        try:
            run = _replay_start(definition)
        except Exception as error:  # the upstream or the replay could not start: report all the same
            return snapshot_create(
                definition=definition, status="degraded", reason=f"The fresh replay could not start: {error}"
            )
        ReportDefinition.objects.filter(pk=definition.pk).update(pending_run=run)
        return None
    return snapshot_create(definition=definition)


def report_replay_check(*, definition_id: int) -> ReportSnapshot | None:
    """Take the snapshot of a report whose fresh replay has ended (or waited too long)."""
    definition = ReportDefinition.objects.select_related("upstream", "pending_run").get(pk=definition_id)
    run = definition.pending_run
    if run is None:
        return None
    if run.is_active and timezone.now() - run.created_at < REPLAY_WAIT:
        return None
    if not ReportDefinition.objects.filter(pk=definition.pk, pending_run=run).update(pending_run=None):
        return None  # another worker took it
    failed = run.results.filter(state="failed").count()
    total = run.results.count()
    if run.is_active:
        return snapshot_create(
            definition=definition,
            status="degraded",
            reason=f"The fresh replay (run #{run.pk}) did not finish in time.",
        )
    if run.status == ReplayRun.Status.FAILED or (total and failed == total):
        return snapshot_create(
            definition=definition,
            status="degraded",
            reason=f"The fresh replay (run #{run.pk}) failed: {run.error or 'the upstream did not answer'}",
        )
    if failed:
        return snapshot_create(
            definition=definition,
            status="degraded",
            reason=f"{failed} of {total} replayed requests failed in run #{run.pk}.",
        )
    return snapshot_create(definition=definition)


def _replay_start(definition: ReportDefinition) -> ReplayRun:
    from migrations_audit.replay.runs import run_start

    return run_start(
        upstream=definition.upstream,
        versions=[definition.version_from, definition.version_to],
        selection={"sample": definition.replay_sample},
    )


def snapshot_create(*, definition: ReportDefinition, status: str = "ok", reason: str = "") -> ReportSnapshot:
    acknowledgements_expire(upstream=definition.upstream)
    previous = definition.snapshots.order_by("-created_at", "-id").first()
    payload = report_payload(
        upstream=definition.upstream,
        version_from=definition.version_from,
        version_to=definition.version_to,
        migration=definition.migration,
        status=status,
        status_reason=reason,
        previous=previous.payload if previous else None,
    )
    with transaction.atomic():
        snapshot = ReportSnapshot.objects.create(
            definition=definition,
            status=status,
            status_reason=reason,
            payload=payload,
            breaking=payload["summary"]["breaking"],
            unexplained=payload["summary"]["unexplained"],
            blocking=payload["summary"]["blocking"],
        )
    if definition.recipient_list:
        transaction.on_commit(lambda: report_email.delay(snapshot.pk))
    if definition.webhook_url_encrypted:
        transaction.on_commit(lambda: report_webhook.delay(snapshot.pk))
    return snapshot


def snapshot_email(*, snapshot_id: int, attempt: int = 1) -> int | None:
    """Email a snapshot to its recipients, each attempt recorded. Returns the seconds to wait before
    trying again after a failure, or None when done (sent, or out of tries)."""
    snapshot = ReportSnapshot.objects.select_related("definition__upstream").get(pk=snapshot_id)
    if snapshot.emailed_to:
        return None  # sent already: a task delivered twice sends once
    definition = snapshot.definition
    link = settings.SITE_URL.rstrip("/") + reverse("migrations_audit:report_snapshot", args=[snapshot.pk])
    title = f"Compatibility report “{definition.name}”"
    message = EmailMultiAlternatives(
        subject=f"[Migration Audit] {definition.name}: {snapshot.blocking} blocking, "
        f"{snapshot.breaking} breaking",
        body=report_text_summary(snapshot.payload, title=title, link=link),
        to=definition.recipient_list,
    )
    html = report_html(snapshot.payload, title=title, link=link)
    message.attach_alternative(html, "text/html")
    message.attach(f"report-{snapshot.pk}.html", html, "text/html")
    try:
        message.send()
    except (OSError, smtplib.SMTPException) as error:
        retry_in = None if attempt >= settings.REPORT_DELIVERY_TRIES else backoff_seconds(attempt=attempt)
        ReportDelivery.objects.create(
            definition=definition,
            snapshot=snapshot,
            channel=ReportDelivery.Channel.EMAIL,
            attempt=attempt,
            status=ReportDelivery.Status.RETRYING if retry_in is not None else ReportDelivery.Status.FAILED,
            error=f"{type(error).__name__}: {str(error)[:300]}",
        )
        return retry_in
    ReportSnapshot.objects.filter(pk=snapshot.pk).update(emailed_to=", ".join(definition.recipient_list))
    ReportDelivery.objects.create(
        definition=definition,
        snapshot=snapshot,
        channel=ReportDelivery.Channel.EMAIL,
        attempt=attempt,
        status=ReportDelivery.Status.SENT,
    )
    return None
