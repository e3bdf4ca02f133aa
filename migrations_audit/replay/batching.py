"""Broker batching: a run's results go to workers as tasks of whole exchanges (every version and
repeat of an exchange in one task, and a task's work of one run), so the worker that finishes a
batch can diff its exchanges at once."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from migrations_audit.models import ReplayResult

from .claims import OPEN
from .tasks import replay_batch

Status = ReplayResult.Status


# The most ids one query lists: under SQLite's oldest limit of 999 parameters, with room to spare.
IDS_PER_QUERY = 900


def chunked(ids: list[int], size: int = IDS_PER_QUERY):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def queue(result_ids, *, countdown: float = 0) -> None:
    """Send these results to the workers, in batches of at most REPLAY_BATCH_EXCHANGES exchanges."""
    rows = []
    for ids in chunked(list(result_ids)):
        rows += ReplayResult.objects.filter(pk__in=ids).values_list("pk", "run_id", "exchange_id")
    queue_rows(sorted(rows, key=lambda row: (row[1], row[2], row[0])), countdown=countdown)


def queue_open(run_id: int) -> None:
    """Send a run's open results to the workers (a run resumed), read in the order they are batched."""
    rows = (
        ReplayResult.objects.filter(run_id=run_id, state__in=OPEN)
        .order_by("exchange_id", "pk")
        .values_list("pk", "run_id", "exchange_id")
    )
    queue_rows(rows.iterator())


def queue_rows(rows, *, countdown: float = 0) -> None:
    """Batch (result id, run id, exchange id) rows, ordered by run and exchange, as whole exchanges."""
    current_run = None
    batch: list[int] = []
    exchanges: set[tuple[int, int]] = set()
    for pk, run_id, exchange_id in rows:
        full = (run_id, exchange_id) not in exchanges and len(exchanges) >= settings.REPLAY_BATCH_EXCHANGES
        if batch and (full or run_id != current_run):
            _send(batch, countdown)
            batch, exchanges = [], set()
        exchanges.add((run_id, exchange_id))
        batch.append(pk)
        current_run = run_id
    if batch:
        _send(batch, countdown)


def _send(result_ids: list[int], countdown: float) -> None:
    replay_batch.apply_async(args=[result_ids], countdown=countdown or None)


def requeue(results: list[ReplayResult], *, wait: float) -> None:
    """Queue again results still waiting, not before `wait` seconds."""
    ids = [r.pk for r in results]
    later = timezone.now() + timedelta(seconds=wait)
    ReplayResult.objects.filter(pk__in=ids, state__in=[Status.PENDING, Status.RETRYING]).update(
        queued_at=timezone.now(), not_before=later
    )
    queue(ids, countdown=wait)
