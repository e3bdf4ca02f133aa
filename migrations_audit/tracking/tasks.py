"""Tracking's Celery tasks: client statuses in open migrations, derived from recorded traffic (names
kept as `migrations_audit.tasks.*` for messages already queued and the beat schedule)."""

from celery import shared_task

from migrations_audit.models import Migration
from migrations_audit.tracking import services as tracking_services


@shared_task(name="migrations_audit.tasks.tracking_refresh_active", acks_late=True)
def tracking_refresh_active() -> int:
    return tracking_services.migrations_refresh_active()


@shared_task(name="migrations_audit.tasks.tracking_refresh_migration", acks_late=True)
def tracking_refresh_migration(migration_id: int) -> int:
    migration = Migration.objects.filter(pk=migration_id, closed_at__isnull=True).first()
    if migration is None:
        return 0
    return len(tracking_services.migration_refresh(migration=migration))
