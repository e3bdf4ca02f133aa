"""Capture's Celery tasks (names kept as `migrations_audit.tasks.*` for messages already queued)."""

from celery import shared_task


@shared_task(name="migrations_audit.tasks.har_import_run", acks_late=True)
def har_import_run(job_id: int) -> None:
    from migrations_audit.capture.har import har_import_run as run

    run(job_id=job_id)
