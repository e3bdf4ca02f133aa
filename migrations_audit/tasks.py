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
    from migrations_audit.capture.services import har_import_run as run

    run(job_id=job_id)


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
