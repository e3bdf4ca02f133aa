"""Celery tasks: thin wrappers that take ids and call one service each."""

from celery import shared_task

from migrations_audit import services
from migrations_audit.models import Migration
from migrations_audit.tracking import services as tracking_services


@shared_task(bind=True, name="migrations_audit.tasks.heartbeat")
def heartbeat(self) -> None:
    services.worker_heartbeat_record(hostname=self.request.hostname or "local")


@shared_task(name="migrations_audit.tasks.har_import_run", acks_late=True)
def har_import_run(job_id: int) -> None:
    from migrations_audit.capture.har import har_import_run as run

    run(job_id=job_id)


@shared_task(name="migrations_audit.tasks.request_check", acks_late=True)
def request_check(exchange_ids: list[int]) -> None:
    """Queued by capture once a batch is committed: check its exchanges against the request rules.
    Idempotent (a finding is stored once), so a task delivered again changes nothing."""
    from migrations_audit.diff.services import request_findings_check

    request_findings_check(exchange_ids=exchange_ids)


# Tracking: client statuses in open migrations, derived from recorded traffic.


@shared_task(name="migrations_audit.tasks.tracking_refresh_active", acks_late=True)
def tracking_refresh_active() -> int:
    return tracking_services.migrations_refresh_active()


@shared_task(name="migrations_audit.tasks.tracking_refresh_migration", acks_late=True)
def tracking_refresh_migration(migration_id: int) -> int:
    migration = Migration.objects.filter(pk=migration_id, closed_at__isnull=True).first()
    if migration is None:
        return 0
    return len(tracking_services.migration_refresh(migration=migration))


# Reports: scheduled compatibility snapshots.


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


# Replay: one task per batch of whole exchanges (ids only), and a reconcile tick for work nobody is doing.


@shared_task(name="migrations_audit.tasks.replay_batch", acks_late=True)
def replay_batch(result_ids: list[int]) -> None:
    from migrations_audit.replay import services as replay

    replay.results_execute(result_ids=result_ids)


@shared_task(name="migrations_audit.tasks.replay_reconcile", acks_late=True)
def replay_reconcile() -> None:
    from migrations_audit.replay import services as replay

    replay.run_reconcile()
