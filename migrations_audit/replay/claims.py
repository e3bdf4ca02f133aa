"""Replay's raw SQL: leasing results under the upstream's concurrency limit, saving answers only
while the lease holds, and claiming an exchange's diff once.

Work is keyed by ReplayResult (run, exchange, version, attempt), claimed with a conditional UPDATE and
a lease, so a task delivered twice or run by two workers stores one result, and a result whose
worker died is claimed again once its lease expires (see `runs.run_reconcile`). Only quoted table
and column names from the models' metadata and placeholders are formatted into SQL; every value is a
parameter.
"""

import random
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from migrations_audit.models import RateLimiterState, ReplayResult, ReplayRun, Upstream

Status = ReplayResult.Status
OPEN = (Status.PENDING, Status.RUNNING, Status.RETRYING)
LEASE = timedelta(seconds=settings.REPLAY_LEASE_SECONDS)
# What a batch reads of its results to claim and record them (the answers are not read: the worker
# writes them).
CLAIM_FIELDS = ("run", "exchange", "version", "attempt", "state", "tries", "leased_until", "not_before")


@dataclass
class Claim:
    run_active: bool
    claimed: list[ReplayResult] = field(default_factory=list)
    # Results another worker holds (a duplicate delivery) or has finished: not this task's to do.
    taken_elsewhere: set[int] = field(default_factory=set)
    # With no room under the concurrency limit, when to look again.
    wait_seconds: float = 0.0


def claim(run: ReplayRun, upstream: Upstream, candidates: list[ReplayResult]) -> Claim:
    """Lease as many of the candidates as the concurrency limit allows. Claims to one upstream are
    serialised by its limiter row, so what is counted as in flight is exactly what is leased.

    One UPDATE does the work (the run still running, each result still claimable, the room left
    under the limit): on this path every round trip to the database is a cost per replayed request.
    Only when it leases fewer than asked does a second query say why."""
    now = timezone.now()
    ids = [r.pk for r in candidates]
    with transaction.atomic():
        RateLimiterState.objects.select_for_update().get_or_create(upstream=upstream)
        leased = set(_claim_update(run, upstream, ids, now=now))
        if len(leased) < len(ids):
            run_active, claimable = _claim_blockers(run, ids, now=now)
    claimed = [r for r in candidates if r.pk in leased]
    for result in claimed:
        result.tries += 1
        result.leased_until = now + LEASE
    if len(leased) == len(ids):
        return Claim(True, claimed=claimed)
    if not run_active and not claimed:
        return Claim(run_active=False)
    taken_elsewhere = set(ids) - leased - claimable
    if not claimed and claimable:
        # No room: every concurrent slot is taken.
        return Claim(True, taken_elsewhere=taken_elsewhere, wait_seconds=0.01 + random.random() * 0.04)
    return Claim(True, claimed=claimed, taken_elsewhere=taken_elsewhere)


# A result a worker may lease: waiting, or leased by a worker whose lease ran out. Parameters:
# `_claimable_params(now)`.
_CLAIMABLE = "(state IN (%s, %s) OR (state = %s AND leased_until < %s))"


def _claimable_params(now) -> list:
    return [Status.PENDING, Status.RETRYING, Status.RUNNING, _db_time(now)]


def _db_time(moment):
    return ReplayResult._meta.get_field("leased_until").get_db_prep_value(moment, connection)


def _claim_update(run: ReplayRun, upstream: Upstream, ids: list[int], *, now) -> list[int]:
    quote = connection.ops.quote_name
    results, runs = quote(ReplayResult._meta.db_table), quote(ReplayRun._meta.db_table)
    marks = ", ".join(["%s"] * len(ids))
    # The room is the upstream's limit less the results leased as running in any of its runs (a
    # cancelled run's requests in flight count until they end).
    sql = f"""
        UPDATE {results} SET state = %s, leased_until = %s, tries = tries + 1
        WHERE id IN (
            SELECT id FROM {results}
            WHERE id IN ({marks}) AND {_CLAIMABLE}
              AND EXISTS (SELECT 1 FROM {runs} WHERE id = %s AND status = %s)
            ORDER BY id
            LIMIT (
                SELECT CASE WHEN COUNT(*) >= %s THEN 0 ELSE %s - COUNT(*) END FROM {results}
                WHERE state = %s AND leased_until > %s
                  AND run_id IN (SELECT id FROM {runs} WHERE upstream_id = %s)
            )
        )
        RETURNING id
    """  # noqa: S608
    limit = upstream.rate_limit_concurrency
    params = [
        Status.RUNNING,
        _db_time(now + LEASE),
        *ids,
        *_claimable_params(now),
        run.pk,
        ReplayRun.Status.RUNNING,
        limit,
        limit,
        Status.RUNNING,
        _db_time(now),
        upstream.pk,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _claim_blockers(run: ReplayRun, ids: list[int], *, now) -> tuple[bool, set[int]]:
    """Why a claim leased fewer than asked: whether the run still runs, and which candidates were
    claimable (those not leased then found no room)."""
    run_active = ReplayRun.objects.filter(pk=run.pk, status=ReplayRun.Status.RUNNING).exists()
    marks = ", ".join(["%s"] * len(ids))
    results = connection.ops.quote_name(ReplayResult._meta.db_table)
    sql = f"SELECT id FROM {results} WHERE id IN ({marks}) AND {_CLAIMABLE}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*ids, *_claimable_params(now)])
        return run_active, {row[0] for row in cursor.fetchall()}


def release(results: list[ReplayResult]) -> None:
    """Give claimed results back (the rate limit said wait), undoing the try each had counted."""
    ReplayResult.objects.filter(pk__in=[r.pk for r in results], state=Status.RUNNING).update(
        state=Status.RETRYING, leased_until=None, tries=F("tries") - 1
    )


def running_results_save(results: list[ReplayResult], field_names: tuple[str, ...]) -> None:
    """Save these fields of results still leased as running; a result whose lease ran out was
    claimed again by another worker, and its answer wins.

    One parameterised UPDATE run for every row (psycopg pipelines executemany): Django's
    bulk_update builds a CASE per field and row, which cost more CPU than the requests it recorded.
    """
    if not results:
        return
    fields = [ReplayResult._meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(ReplayResult._meta.db_table)} SET {assignments} WHERE id = %s AND state = %s"  # noqa: S608
    rows = [
        [field.get_db_prep_save(getattr(result, field.attname), connection) for field in fields]
        + [result.pk, Status.RUNNING]
        for result in results
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def diffs_claim(first_result_ids: list[int]) -> list[int]:
    """Mark exchanges as diffed through their first result; returns the exchanges this call won.
    UPDATE ... RETURNING (PostgreSQL, SQLite 3.35+) claims them all in one statement."""
    if not first_result_ids:
        return []
    quote = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(first_result_ids))
    sql = (
        f"UPDATE {quote(ReplayResult._meta.db_table)} SET diffed_at = %s "  # noqa: S608
        f"WHERE id IN ({marks}) AND diffed_at IS NULL RETURNING exchange_id"
    )
    diffed_at = ReplayResult._meta.get_field("diffed_at").get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [diffed_at, *first_result_ids])
        return [row[0] for row in cursor.fetchall()]
