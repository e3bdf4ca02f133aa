"""Celery tasks: thin wrappers that take ids and call one service each."""

from celery import shared_task

from migrations_audit import services


@shared_task(bind=True, name="migrations_audit.tasks.heartbeat")
def heartbeat(self) -> None:
    services.worker_heartbeat_record(hostname=self.request.hostname or "local")


@shared_task(name="migrations_audit.tasks.har_import_run", acks_late=True)
def har_import_run(job_id: int) -> None:
    from migrations_audit.capture.services import har_import_run as run

    run(job_id=job_id)
