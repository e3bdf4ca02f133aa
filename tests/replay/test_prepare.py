"""A run over more exchanges than SQLite takes parameters in one query starts in one short request
and creates its results in the background, in chunks, with progress; and a run prepared in chunks
by a real worker replays every exchange once per version."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.urls import reverse

from migrations_audit.models import Exchange, ReplayResult, ReplayRun
from migrations_audit.replay.diffing import run_complete_if_done
from migrations_audit.replay.preparing import run_prepare
from migrations_audit.replay.runs import run_start
from tests.replay.test_replay import FAST, finish, on_emulator, record

VERSIONS = ["2023-06-01", "2026-10-21"]
SQLITE_OLDEST_LIMIT = 999
POSTGRESQL_LIMIT = 65535  # its protocol counts parameters in 16 bits


class Parameters:
    """The most parameters any one statement carried (each row of an executemany counted alone)."""

    def __init__(self):
        self.most = 0
        self.statements = 0

    def __call__(self, execute, sql, params, many, context):
        rows = params if many else [params]
        for row in rows or [()]:
            self.most = max(self.most, len(row or ()))
        self.statements += 1
        return execute(sql, params, many, context)


def copies(upstream, count):
    """`count` exchanges like a recorded one, over a few hours, many sharing a start time."""
    record(upstream, 1)
    model = Exchange.objects.get(upstream=upstream)
    fields = {
        field.attname: getattr(model, field.attname)
        for field in Exchange._meta.concrete_fields
        if not field.primary_key and field.attname != "capture_key"  # a capture key is unique
    }
    Exchange.objects.bulk_create(
        [
            Exchange(**{**fields, "started_at": model.started_at - timedelta(seconds=n % 3000)})
            for n in range(count)
        ],
        batch_size=2000,
    )
    return count + 1


def test_a_sampled_run_is_prepared_once_its_sample_is_complete(upstream_a, settings):
    """A sample smaller than the selection ends the preparation (it once looped for ever)."""
    settings.REPLAY_PREPARE_CHUNK = 5
    copies(upstream_a, 30)
    run = run_start(upstream=upstream_a, versions=VERSIONS, selection={"sample": "12"}, noise_sample_rate=0)
    run_prepare(run_id=run.pk)
    run.refresh_from_db()
    assert run.prepared_at is not None and (run.exchanges_prepared, run.exchanges_total) == (12, 12)
    assert ReplayResult.objects.filter(run=run).count() == 12 * len(VERSIONS)


def test_a_run_over_40000_exchanges_starts_at_once_and_prepares_in_chunks_under_the_limit(
    db, client, alice, upstream_a
):
    total = copies(upstream_a, 40_000)
    parameters = Parameters()
    with connection.execute_wrapper(parameters):
        run = run_start(upstream=upstream_a, versions=VERSIONS, created_by=alice, noise_sample_rate=0.1)
    # The request made one chunk: the rest is the task's.
    assert run.status == ReplayRun.Status.RUNNING and run.prepared_at is None
    assert run.exchanges_prepared == 500
    assert ReplayResult.objects.filter(run=run).values("exchange").distinct().count() == 500
    # One chunk's INSERTs (each under 999 parameters) and a dozen others, whatever the run's size.
    assert parameters.statements < 60, f"starting a run took {parameters.statements} statements"

    # It cannot complete while its results are being made.
    run_complete_if_done(run.pk)
    run.refresh_from_db()
    assert run.status == ReplayRun.Status.RUNNING

    client.force_login(alice)
    page = client.get(reverse("migrations_audit:run", args=[upstream_a.slug, run.pk])).content.decode()
    assert "Preparing: 500 of … exchanges" in page

    with connection.execute_wrapper(parameters):
        run_prepare(run_id=run.pk)  # the body of the replay_prepare task
    limit = SQLITE_OLDEST_LIMIT if connection.vendor == "sqlite" else POSTGRESQL_LIMIT
    assert parameters.most <= limit, f"a statement carried {parameters.most} parameters"

    run.refresh_from_db()
    assert run.prepared_at is not None
    assert run.exchanges_prepared == run.exchanges_total == total
    first = ReplayResult.objects.filter(run=run, attempt=1)
    assert first.count() == total * len(VERSIONS)
    per_exchange = first.values("exchange").annotate(n=Count("id")).values_list("n", flat=True).distinct()
    assert list(per_exchange) == [len(VERSIONS)], "every exchange once per version, none twice"
    repeated = ReplayResult.objects.filter(run=run, attempt=2).values("exchange").distinct().count()
    assert 0.05 * total < repeated < 0.15 * total, "about the noise sample rate repeated"

    page = client.get(reverse("migrations_audit:run", args=[upstream_a.slug, run.pk])).content.decode()
    assert "Preparing:" not in page

    # A second delivery of the task adds nothing.
    before = ReplayResult.objects.filter(run=run).count()
    run_prepare(run_id=run.pk)
    assert ReplayResult.objects.filter(run=run).count() == before


@pytest.mark.slow
def test_a_worker_prepares_and_replays_a_run_chunk_by_chunk(worker_factory, emulator, upstream_a, settings):
    settings.REPLAY_PREPARE_CHUNK = 2
    worker_factory(env={**FAST, "REPLAY_PREPARE_CHUNK": 2})
    upstream = on_emulator(upstream_a, emulator)
    record(upstream, 7)
    run = run_start(upstream=upstream, versions=VERSIONS, noise_sample_rate=0)
    assert run.exchanges_prepared == 2 and run.prepared_at is None
    finish(run)
    assert run.status == ReplayRun.Status.COMPLETED, run.error
    assert run.exchanges_prepared == run.exchanges_total == 7
    results = ReplayResult.objects.filter(run=run)
    assert results.count() == 7 * len(VERSIONS)
    assert set(results.values_list("state", flat=True)) == {"done"}
    assert results.filter(diffed_at__isnull=False).values("exchange").distinct().count() == 7
