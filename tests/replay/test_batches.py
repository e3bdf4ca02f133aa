"""A worker's batch, in process against the real emulator and database: claims under the
concurrency limit, the diff of what the worker holds in memory, and a diff that fails midway."""

from datetime import timedelta

import pytest
from django.utils import timezone

from migrations_audit.diff.services import exchanges_diff_record
from migrations_audit.models import Difference, ExchangeComparison, ReplayResult, ReplayRun
from migrations_audit.replay import claims, diffing, executor, runs
from migrations_audit.replay.runs import run_cancel, run_start
from tests.replay.test_replay import on_emulator, record

VERSIONS = ["2023-06-01", "2026-10-21"]


def results_of(run):
    return list(ReplayResult.objects.filter(run=run).order_by("pk"))


def differences_of(run):
    return sorted(
        Difference.objects.filter(run=run).values_list("exchange_id", "kind", "path", "classification")
    )


def test_a_claim_leases_what_the_concurrency_limit_allows_and_no_more(db, upstream_a):
    upstream_a.rate_limit_concurrency = 3
    upstream_a.save()
    record(upstream_a, 5)
    run = run_start(upstream=upstream_a, versions=["2023-06-01"], noise_sample_rate=0)
    results = results_of(run)

    first = claims.claim(run, upstream_a, results)
    assert [r.pk for r in first.claimed] == [r.pk for r in results[:3]]
    assert all(r.tries == 1 for r in first.claimed) and not first.taken_elsewhere
    assert ReplayResult.objects.filter(run=run, state="running").count() == 3

    # No room left: nothing is leased, and the caller is told to look again shortly.
    full = claims.claim(run, upstream_a, results[3:])
    assert not full.claimed and full.wait_seconds > 0 and not full.taken_elsewhere

    # A second delivery of results another worker holds: not this task's to do.
    duplicate = claims.claim(run, upstream_a, results[:3])
    assert not duplicate.claimed and duplicate.taken_elsewhere == {r.pk for r in results[:3]}

    # A lease that ran out (its worker died) frees its slot and its result, for another try.
    ReplayResult.objects.filter(pk=results[0].pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    again = claims.claim(run, upstream_a, [results[0], results[3]])
    assert [r.pk for r in again.claimed] == [results[0].pk]
    assert ReplayResult.objects.get(pk=results[0].pk).tries == 2

    run_cancel(run=run)
    assert claims.claim(run, upstream_a, results[4:]).run_active is False


def test_the_diff_of_results_held_in_memory_equals_the_diff_of_what_was_stored(db, emulator, upstream_a):
    upstream = on_emulator(upstream_a, emulator)
    record(upstream, 3)
    record(upstream, 2, stream=True)
    run = run_start(upstream=upstream, versions=VERSIONS, noise_sample_rate=0)
    executor.results_execute(result_ids=[r.pk for r in results_of(run)])

    assert set(ReplayResult.objects.filter(run=run).values_list("state", flat=True)) == {"done"}
    held = differences_of(run)
    assert held, "the 2023-06-01 -> 2026-10-21 replays of these requests differ"
    exchange_ids = list(ReplayResult.objects.filter(run=run).values_list("exchange_id", flat=True).distinct())
    exchanges_diff_record(run_id=run.pk, exchange_ids=exchange_ids)  # read back from the database
    assert differences_of(run) == held


def test_a_diff_that_fails_leaves_its_exchanges_for_the_run_to_diff(db, emulator, upstream_a, monkeypatch):
    upstream = on_emulator(upstream_a, emulator)
    record(upstream, 2)
    run = run_start(upstream=upstream, versions=VERSIONS, noise_sample_rate=0)

    def worker_dies(**kwargs):
        raise RuntimeError("worker died while diffing")

    monkeypatch.setattr(diffing, "exchanges_diff_record", worker_dies)
    with pytest.raises(RuntimeError):
        executor.results_execute(result_ids=[r.pk for r in results_of(run)])
    # The answers are kept; the diff's claim went with the diff.
    assert set(ReplayResult.objects.filter(run=run).values_list("state", flat=True)) == {"done"}
    assert not ReplayResult.objects.filter(run=run, diffed_at__isnull=False).exists()

    monkeypatch.undo()
    runs.run_reconcile()
    run.refresh_from_db()
    assert run.status == ReplayRun.Status.COMPLETED
    assert ExchangeComparison.objects.filter(run=run).count() == 2
