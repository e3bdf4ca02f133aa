"""Replay's Celery tasks: one per batch of whole exchanges (ids only), and a reconcile tick for work
nobody is doing. Names are kept as `migrations_audit.tasks.*` for messages already queued and for
the beat schedule (dashboard/schedules.py)."""

from celery import shared_task


@shared_task(name="migrations_audit.tasks.replay_batch", acks_late=True)
def replay_batch(result_ids: list[int]) -> None:
    from .executor import results_execute

    results_execute(result_ids=result_ids)


@shared_task(name="migrations_audit.tasks.replay_reconcile", acks_late=True)
def replay_reconcile() -> None:
    from .runs import run_reconcile

    run_reconcile()


@shared_task(name="migrations_audit.tasks.replay_prepare", acks_late=True)
def replay_prepare(run_id: int) -> None:
    from .preparing import run_prepare

    run_prepare(run_id=run_id)
