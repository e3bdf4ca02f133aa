"""The diff stage's Celery tasks (names kept as `migrations_audit.tasks.*` for messages already queued)."""

from celery import shared_task


@shared_task(name="migrations_audit.tasks.request_check", acks_late=True)
def request_check(exchange_ids: list[int]) -> None:
    """Queued by capture once a batch is committed: check its exchanges against the request rules.
    Idempotent (a finding is stored once), so a task delivered again changes nothing."""
    from migrations_audit.diff.services import request_findings_check

    request_findings_check(exchange_ids=exchange_ids)
