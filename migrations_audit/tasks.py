"""Celery tasks: thin wrappers that take ids and call one service each. Each stage keeps its tasks
(capture/tasks.py, replay/tasks.py, tracking/tasks.py, reports/tasks.py); they are imported here,
where Celery's autodiscovery looks, and keep their `migrations_audit.tasks.*` names for messages
already queued and for the beat schedule (dashboard/schedules.py)."""

from celery import shared_task

from migrations_audit import services
from migrations_audit.capture.tasks import har_import_run
from migrations_audit.diff.tasks import request_check
from migrations_audit.replay.tasks import replay_batch, replay_prepare, replay_reconcile
from migrations_audit.reports.tasks import (
    report_email,
    report_run,
    report_webhook,
    reports_due,
    team_digest,
    team_digests,
)
from migrations_audit.tracking.tasks import tracking_refresh_active, tracking_refresh_migration

__all__ = [
    "har_import_run",
    "heartbeat",
    "replay_batch",
    "replay_prepare",
    "replay_reconcile",
    "report_email",
    "report_run",
    "report_webhook",
    "reports_due",
    "request_check",
    "team_digest",
    "team_digests",
    "tracking_refresh_active",
    "tracking_refresh_migration",
]


@shared_task(bind=True, name="migrations_audit.tasks.heartbeat")
def heartbeat(self) -> None:
    services.worker_heartbeat_record(hostname=self.request.hostname or "local")
