"""Celery tasks: thin wrappers that take ids and call one service each."""

from celery import shared_task

from migrations_audit import services


@shared_task(bind=True, name="migrations_audit.tasks.heartbeat")
def heartbeat(self) -> None:
    services.worker_heartbeat_record(hostname=self.request.hostname or "local")
