"""Creating a run's results: per chunk of exchanges (newest first), a result per exchange, version
and repeat. The first chunk is made by the request that starts the run, so a small run is ready at
once; the rest by the `replay_prepare` task, a chunk per transaction, each queued as it commits, so
a run over a million exchanges starts in one short request and shows "preparing: N of M exchanges".

A chunk resumes where the last committed one ended (the run's `prepare_cursor`): a task delivered
twice, or run again after its worker died, adds nothing twice (results are unique per run,
exchange, version and attempt). No query lists more ids than a chunk holds.
"""

import random

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from migrations_audit.models import Exchange, ReplayResult, ReplayRun

from .batching import IDS_PER_QUERY, queue_rows
from .diffing import run_complete_if_done


def exchanges_select(*, upstream, selection: dict):
    """The exchanges a run's selection chooses, newest first (the sample is the newest N)."""
    exchanges = Exchange.objects.filter(upstream=upstream, endpoint__in=upstream.replayable_endpoints)
    if selection.get("client"):
        exchanges = exchanges.filter(client_id=int(selection["client"]))
    if selection.get("endpoint"):
        exchanges = exchanges.filter(endpoint=selection["endpoint"])
    if selection.get("version"):
        exchanges = exchanges.filter(api_version=selection["version"])
    if selection.get("since"):
        exchanges = exchanges.filter(started_at__gte=selection["since"])
    if selection.get("until"):
        exchanges = exchanges.filter(started_at__lt=selection["until"])
    if selection.get("streamed") in (True, False):
        exchanges = exchanges.filter(streamed=selection["streamed"])
    exchanges = exchanges.order_by("-started_at", "-id")
    if selection.get("sample"):
        exchanges = exchanges[: int(selection["sample"])]
    return exchanges


def chunk_prepare(run: ReplayRun, *, size: int | None = None) -> bool:
    """Create the results of the run's next chunk of exchanges and queue them once committed.
    Returns whether exchanges remain. Runs in the caller's transaction, with the run's row locked."""
    size = size or settings.REPLAY_PREPARE_CHUNK
    run = ReplayRun.objects.select_for_update().select_related("upstream").get(pk=run.pk)
    if run.prepared_at is not None or run.status != ReplayRun.Status.RUNNING:
        return False
    cursor = dict(run.prepare_cursor or {})
    sample = int(run.selection.get("sample") or 0)
    want = min(size, sample - run.exchanges_prepared) if sample else size
    if want > 0:
        chunk = list(_after(_unsampled(run), cursor).values_list("pk", "endpoint", "started_at")[: want + 1])
        more = len(chunk) > want
        chunk = chunk[:want]
    else:
        chunk, more = [], False  # the sample is complete, however many exchanges are left
    results = _results(run, chunk, cursor)
    if chunk:
        cursor["after"] = [chunk[-1][2].isoformat(), chunk[-1][0]]
    cursor["at"] = timezone.now().isoformat()
    ReplayResult.objects.bulk_create(results, batch_size=_rows_per_insert())
    run.exchanges_prepared += len(chunk)
    run.prepare_cursor = cursor
    fields = ["exchanges_prepared", "prepare_cursor"]
    if not more:
        run.prepared_at = timezone.now()
        run.exchanges_total = run.exchanges_prepared
        fields += ["prepared_at", "exchanges_total"]
    run.save(update_fields=fields)
    rows = sorted(
        ((result.pk, run.pk, result.exchange_id) for result in results), key=lambda row: (row[2], row[0])
    )
    transaction.on_commit(lambda: queue_rows(rows))
    return more


def _rows_per_insert() -> int:
    """Rows per INSERT: on SQLite, under its oldest limit of 999 parameters a statement."""
    if connection.vendor == "sqlite":
        return max(1, IDS_PER_QUERY // len(ReplayResult._meta.concrete_fields))
    return 1000


def run_prepare(*, run_id: int) -> None:
    """The rest of a run's chunks, each in its own transaction, until none is left or the run stops."""
    run = ReplayRun.objects.select_related("upstream").get(pk=run_id)
    if run.exchanges_total is None and run.prepared_at is None:
        total = exchanges_select(upstream=run.upstream, selection=run.selection).count()
        ReplayRun.objects.filter(pk=run_id, exchanges_total__isnull=True).update(exchanges_total=total)
    more = True
    while more:
        with transaction.atomic():
            more = chunk_prepare(run)
    # Its batches may all have finished before the last chunk was made: nothing else would complete
    # the run then but the reconcile tick.
    run_complete_if_done(run_id)


def _unsampled(run: ReplayRun):
    # The sample (the newest N) is applied by counting chunks, not by slicing the whole selection.
    return exchanges_select(upstream=run.upstream, selection={**run.selection, "sample": None})


def _after(exchanges, cursor: dict):
    """Keyset paging in the selection's order (newest first, then highest id)."""
    if not cursor.get("after"):
        return exchanges
    started, pk = cursor["after"]
    started = parse_datetime(started)
    return exchanges.filter(Q(started_at__lt=started) | Q(started_at=started, pk__lt=pk))


def _results(run: ReplayRun, chunk: list, cursor: dict) -> list[ReplayResult]:
    """A result per exchange and version; a second for the noise sample: about the run's rate of
    the exchanges (a choice fixed per exchange), and at least one per endpoint (the first of an
    endpoint is repeated while none of it has been)."""
    now = timezone.now()
    rate = run.noise_sample_rate
    sampled_endpoints = set(cursor.get("sampled", []))
    results = []
    for pk, endpoint, _ in chunk:
        repeat = rate > 0 and (
            endpoint not in sampled_endpoints or random.Random(f"{run.pk}:{pk}").random() < rate
        )
        if repeat:
            sampled_endpoints.add(endpoint)
        for version in run.versions:
            for attempt in (1, 2) if repeat else (1,):
                results.append(
                    ReplayResult(run=run, exchange_id=pk, version=version, attempt=attempt, queued_at=now)
                )
    cursor["sampled"] = sorted(sampled_endpoints)
    return results
