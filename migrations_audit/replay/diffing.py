"""The diff trigger: an exchange is diffed once all its results in the run are final, exactly once,
and a run completes when nothing of it is open and every exchange is diffed."""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from migrations_audit.diff.services import exchanges_diff_record
from migrations_audit.models import ReplayResult, ReplayRun

from .claims import OPEN, diffs_claim


def exchanges_finished(run_id: int, exchange_ids: set[int], held: Iterable[ReplayResult] = ()) -> None:
    """Diff the exchanges whose results in the run are all final: each exactly once, by whichever
    worker wins the conditional update of the exchange's first result. `held`: results this worker
    stored and still has in memory, for the diff not to read them back."""
    busy = set(
        ReplayResult.objects.filter(run_id=run_id, exchange_id__in=exchange_ids, state__in=OPEN).values_list(
            "exchange_id", flat=True
        )
    )
    undiffed = (
        ReplayResult.objects.filter(run_id=run_id, exchange_id__in=exchange_ids - busy)
        .values("exchange_id")
        .annotate(first=Min("pk"), diffed=Max("diffed_at"))
        .filter(diffed__isnull=True)
    )
    # The claim and the diff commit together: a worker that dies while diffing leaves the exchanges
    # unclaimed, for the run's completion check to diff them.
    with transaction.atomic():
        won = diffs_claim([row["first"] for row in undiffed])
        if won:
            exchanges_diff_record(run_id=run_id, exchange_ids=won, held=held)


def run_complete_if_done(run_id: int) -> None:
    """Complete the run once its results are all made (`preparing`), all final and all diffed."""
    if ReplayRun.objects.filter(pk=run_id, prepared_at__isnull=True).exists():
        return
    if ReplayResult.objects.filter(run_id=run_id, state__in=OPEN).exists():
        return
    undiffed = (
        ReplayResult.objects.filter(run_id=run_id)
        .values("exchange_id")
        .annotate(diffed=Max("diffed_at"))
        .filter(diffed__isnull=True)
        .values_list("exchange_id", flat=True)
    )
    undiffed = sorted(undiffed)
    for start in range(0, len(undiffed), 500):
        exchanges_finished(run_id, set(undiffed[start : start + 500]))
    if ReplayRun.objects.filter(pk=run_id, status=ReplayRun.Status.RUNNING).update(
        status=ReplayRun.Status.COMPLETED, finished_at=timezone.now()
    ):
        from migrations_audit.tracking.services import migrations_refresh_after_run

        migrations_refresh_after_run(run_id=run_id)  # the boards show the run's results now
