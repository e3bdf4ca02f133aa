"""Reports' Celery tasks: scheduled compatibility snapshots, their delivery and the team digests
(names kept as `migrations_audit.tasks.*` for messages already queued and the beat schedule)."""

from celery import shared_task


@shared_task(name="migrations_audit.tasks.reports_due", acks_late=True)
def reports_due() -> None:
    from migrations_audit.models import ReportDefinition
    from migrations_audit.reports import services as reports
    from migrations_audit.reports.acknowledgements import acknowledgements_expire

    acknowledgements_expire()  # the audit trail says when each acknowledgement expired
    for definition_id in reports.reports_due_claim():
        report_run.delay(definition_id)
    for definition_id in ReportDefinition.objects.filter(pending_run__isnull=False).values_list(
        "pk", flat=True
    ):
        reports.report_replay_check(definition_id=definition_id)


@shared_task(name="migrations_audit.tasks.report_run", acks_late=True)
def report_run(definition_id: int) -> None:
    from migrations_audit.reports import services as reports

    reports.report_run(definition_id=definition_id)


@shared_task(name="migrations_audit.tasks.report_email", bind=True, acks_late=True, max_retries=None)
def report_email(self, snapshot_id: int) -> None:
    from migrations_audit.reports import services as reports

    # The service counts the tries (REPORT_DELIVERY_TRIES) and says how long to wait.
    retry_in = reports.snapshot_email(snapshot_id=snapshot_id, attempt=self.request.retries + 1)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(name="migrations_audit.tasks.team_digests", acks_late=True)
def team_digests() -> None:
    from migrations_audit.models import Team

    for team_id in Team.objects.values_list("pk", flat=True):
        team_digest.delay(team_id)


@shared_task(name="migrations_audit.tasks.team_digest", acks_late=True)
def team_digest(team_id: int) -> None:
    from migrations_audit.models import Team
    from migrations_audit.reports.digest import team_digest_send

    team_digest_send(team=Team.objects.get(pk=team_id))


@shared_task(name="migrations_audit.tasks.report_webhook", bind=True, acks_late=True, max_retries=None)
def report_webhook(self, snapshot_id: int) -> None:
    from migrations_audit.reports import delivery

    retry_in = delivery.snapshot_webhook(snapshot_id=snapshot_id, attempt=self.request.retries + 1)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
