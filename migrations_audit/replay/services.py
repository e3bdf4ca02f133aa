"""Replay runs: choose exchanges, send each again under every version, retry within limits, diff.

Work is keyed by ReplayResult (run, exchange, version, attempt), claimed with a conditional UPDATE and
a lease, so a task delivered twice or run by two workers stores one result, and a result whose
worker died is claimed again once its lease expires (see `run_reconcile`).
"""

import concurrent.futures
import json
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Min, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from migrations_audit import services as core_services
from migrations_audit.bulk import rows_insert
from migrations_audit.capture.recording import HOP_BY_HOP
from migrations_audit.diff.services import exchanges_diff_record
from migrations_audit.models import (
    Exchange,
    RateLimiterState,
    ReplayAttempt,
    ReplayResult,
    ReplayRun,
    Upstream,
)
from migrations_audit.secrets import (
    MASK,
    holds_a_key,
    is_secret_header,
    mask_body,
    mask_message,
    mask_text,
    query_for_replay,
)

from . import ratelimit
from .sender import Outcome, ReplayRequest, Sender

logger = logging.getLogger(__name__)
Status = ReplayResult.Status
OPEN = (Status.PENDING, Status.RUNNING, Status.RETRYING)
LEASE = timedelta(seconds=settings.REPLAY_LEASE_SECONDS)
# 429 and 529 say "later": retried with backoff honouring retry-after. 5xx and transport errors are
# retried too, up to the limit; every other status is a result, a 400 included.
RETRY_LATER = {429, 529}
SHORT_WAIT = 1.0


class ReplayError(ValueError):
    """A run that cannot start; the message says why."""


def run_start(
    *,
    upstream: Upstream,
    versions: list[str],
    selection: dict | None = None,
    created_by=None,
    noise_sample_rate: float = 0.1,
    token_budget: int | None = None,
) -> ReplayRun:
    selection = dict(selection or {})
    known = list(upstream.versions.values_list("name", flat=True))
    if not versions:
        raise ReplayError("Choose at least one version to replay under.")
    unknown = [version for version in versions if version not in known]
    if unknown:
        raise ReplayError(f"{upstream.name} has no version {', '.join(unknown)} (it has {', '.join(known)}).")
    if not 0 <= noise_sample_rate <= 1:
        raise ReplayError("The noise sample rate is a share between 0 and 1.")
    try:
        key = core_services.upstream_replay_key(upstream=upstream)
    except core_services.ReplayKeyRefused as error:
        raise ReplayError(str(error)) from None
    if key is None:
        raise ReplayError(
            f"{upstream.name} has no replay credential: set one in its settings "
            "(replays never reuse recorded keys)."
        )
    exchanges = list(exchanges_select(upstream=upstream, selection=selection).values_list("pk", "endpoint"))
    if not exchanges:
        raise ReplayError(
            "No recorded exchange matches this selection (only replayable endpoints are replayed)."
        )
    ordered = [version for version in known if version in versions]
    with transaction.atomic():
        run = ReplayRun.objects.create(
            upstream=upstream,
            created_by=created_by,
            versions=ordered,
            selection=selection,
            noise_sample_rate=noise_sample_rate,
            token_budget=token_budget,
            status=ReplayRun.Status.RUNNING,
            started_at=timezone.now(),
        )
        sampled = _noise_sample(exchanges, rate=noise_sample_rate)
        now = timezone.now()
        ReplayResult.objects.bulk_create(
            [
                ReplayResult(run=run, exchange_id=pk, version=version, attempt=attempt, queued_at=now)
                for pk, _ in exchanges
                for version in ordered
                for attempt in ((1, 2) if pk in sampled else (1,))
            ],
            batch_size=1000,
        )
        transaction.on_commit(
            lambda: _queue(ReplayResult.objects.filter(run=run).values_list("pk", flat=True))
        )
    return run


def selection_parse(data) -> dict:
    """The exchange filter of a run from a form or JSON; bad values raise ReplayError."""
    selection = {}
    for name in ("endpoint", "version"):
        if data.get(name):
            selection[name] = str(data[name])
    if data.get("client"):
        if not str(data["client"]).isdigit():
            raise ReplayError("client must be a client id.")
        selection["client"] = int(data["client"])
    for name in ("since", "until"):
        if data.get(name):
            value = str(data[name])
            if parse_datetime(value) is None and parse_datetime(value + "T00:00:00") is None:
                raise ReplayError(f"{name} must be a date or an ISO 8601 time.")
            selection[name] = value if "T" in value else value + "T00:00:00+00:00"
    streamed = data.get("streamed")
    if streamed in ("yes", "no", True, False):
        selection["streamed"] = streamed in ("yes", True)
    if data.get("sample"):
        try:
            selection["sample"] = int(data["sample"])
        except (TypeError, ValueError):
            raise ReplayError("sample must be a whole number of exchanges.") from None
        if selection["sample"] < 1:
            raise ReplayError("sample must be at least 1.")
    return selection


def exchanges_select(*, upstream: Upstream, selection: dict):
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


def _noise_sample(exchanges: list[tuple[int, str]], *, rate: float) -> set[int]:
    """About `rate` of the exchanges, and at least one per endpoint, replayed twice per version."""
    if rate <= 0:
        return set()
    chooser = random.Random(len(exchanges))
    sampled = {pk for pk, _ in exchanges if chooser.random() < rate}
    for endpoint in {endpoint for _, endpoint in exchanges}:
        if not any(pk in sampled for pk, e in exchanges if e == endpoint):
            sampled.add(next(pk for pk, e in exchanges if e == endpoint))
    return sampled


def _queue(result_ids, *, countdown: float = 0) -> None:
    """Queue the work as batches of whole exchanges (every version and repeat of an exchange in one
    task, and a task's work of one run), so the worker that finishes a batch can diff its
    exchanges at once."""
    current_run = None
    rows = ReplayResult.objects.filter(pk__in=list(result_ids)).order_by("run_id", "exchange_id", "pk")
    batch: list[int] = []
    exchanges: set[tuple[int, int]] = set()
    for pk, run_id, exchange_id in rows.values_list("pk", "run_id", "exchange_id").iterator():
        full = (run_id, exchange_id) not in exchanges and len(exchanges) >= settings.REPLAY_BATCH_EXCHANGES
        if batch and (full or run_id != current_run):
            _send_batch(batch, countdown)
            batch, exchanges = [], set()
        exchanges.add((run_id, exchange_id))
        batch.append(pk)
        current_run = run_id
    if batch:
        _send_batch(batch, countdown)


def _send_batch(result_ids: list[int], countdown: float) -> None:
    current_app.send_task(
        "migrations_audit.tasks.replay_batch", args=[result_ids], countdown=countdown or None
    )


def run_cancel(*, run: ReplayRun) -> bool:
    """Workers stop picking up the run's work; requests in flight finish and are kept."""
    return bool(
        ReplayRun.objects.filter(
            pk=run.pk, status__in=[ReplayRun.Status.PENDING, ReplayRun.Status.RUNNING]
        ).update(status=ReplayRun.Status.CANCELLED, finished_at=timezone.now())
    )


def run_resume(*, run: ReplayRun) -> bool:
    resumed = ReplayRun.objects.filter(pk=run.pk, status=ReplayRun.Status.CANCELLED).update(
        status=ReplayRun.Status.RUNNING, finished_at=None
    )
    if resumed:
        pending = ReplayResult.objects.filter(run=run, state__in=OPEN)
        pending.update(queued_at=timezone.now(), not_before=None)
        transaction.on_commit(lambda: _queue(list(pending.values_list("pk", flat=True))))
    return bool(resumed)


def run_reconcile(*, stale_after: timedelta = timedelta(seconds=60)) -> int:
    """Queue again the results of active runs that nothing is working on: a lost message, a killed
    worker (its lease expired), a retry whose time has come. Queuing twice is harmless."""
    now = timezone.now()
    active = Q(run__status=ReplayRun.Status.RUNNING)
    lost = ReplayResult.objects.filter(
        active
        & (
            Q(state=Status.RUNNING, leased_until__lt=now)
            | Q(state=Status.PENDING, queued_at__lt=now - stale_after)
            | Q(state=Status.RETRYING, not_before__lt=now - stale_after)
        )
    )
    ids = list(lost.values_list("pk", flat=True)[:5000])
    ReplayResult.objects.filter(pk__in=ids).update(queued_at=now)
    _queue(ids)
    for run in ReplayRun.objects.filter(status=ReplayRun.Status.RUNNING):
        _run_complete_if_done(run.pk)
    return len(ids)


# --- A batch of results ---------------------------------------------------------------------------


def results_execute(*, result_ids: list[int]) -> None:
    """Claim the batch's results as the limits allow, send their requests concurrently, record every
    attempt, queue what must be retried, and diff the exchanges whose results are all final."""
    results = list(
        ReplayResult.objects.select_related("exchange")
        .only(*CLAIM_FIELDS, *(f"exchange__{name}" for name in REQUEST_FIELDS))
        .filter(pk__in=result_ids, state__in=OPEN)
        .order_by("pk")
    )
    if not results:
        return
    run = ReplayRun.objects.select_related("upstream").get(pk=results[0].run_id)
    if run.status != ReplayRun.Status.RUNNING:
        return
    upstream = run.upstream
    now = timezone.now()
    ready = [r for r in results if not (r.not_before and r.not_before > now)]
    later = [r for r in results if r.not_before and r.not_before > now]
    if later:
        # Not yet: the retry's backoff (or retry-after) has not passed.
        wait = min((r.not_before - now).total_seconds() for r in later)
        _queue([r.pk for r in later], countdown=wait)
    # In quarters at least, so that sending one overlaps with recording the one before.
    most = min(ratelimit.batch_size(upstream=upstream, max_wait=SHORT_WAIT), max(1, -(-len(ready) // 4)))
    try:
        key = core_services.upstream_replay_key(upstream=upstream) or ""
    except core_services.ReplayKeyRefused as error:
        _run_fail(run, str(error))
        return
    waited = 0.0
    # Two sub-batches in flight at most: one being sent while the one before it is recorded.
    sending: tuple[list[ReplayResult], concurrent.futures.Future] | None = None
    held: list[ReplayResult] = []
    while ready or sending:
        claimed = []
        if ready:
            claim = _claim(run, upstream, ready[:most])
            if not claim.run_active:
                ready = []  # cancelled, or stopped by its budget: the rest stays where it is
            else:
                ready = [result for result in ready if result.pk not in claim.taken_elsewhere]
                claimed = claim.claimed
                if not claimed and ready and not sending and waited + claim.wait_seconds <= SHORT_WAIT:
                    # Every concurrent slot is taken: one frees as soon as a request in flight
                    # ends, sooner than a trip through the broker would bring this batch back.
                    time.sleep(claim.wait_seconds)
                    waited += claim.wait_seconds
                    continue
                if not claimed and ready and not sending:
                    _requeue(ready, wait=claim.wait_seconds)
                    ready = []
        started = None
        if claimed:
            reservation = ratelimit.rate_reserve(upstream=upstream, count=len(claimed), max_wait=SHORT_WAIT)
            if not reservation.granted:
                _release(claimed)
                _requeue(ready, wait=reservation.wait_seconds)
                ready, claimed = [], []
            else:
                requests = [
                    ReplayRequest(
                        result.exchange.method,
                        *_request_for(result.exchange, upstream, result.version, key),
                        start_after=reservation.start_after(index),
                    )
                    for index, result in enumerate(claimed)
                ]
                started = (claimed, _sender.submit(requests))
                claimed_ids = {result.pk for result in claimed}
                ready = [result for result in ready if result.pk not in claimed_ids]
        if sending:
            held += _record(run, sending[0], sending[1].result())
        sending = started
    _exchanges_finished(run.pk, {result.exchange_id for result in results}, held=held)
    _run_complete_if_done(run.pk)


def _run_fail(run: ReplayRun, error: str) -> None:
    """Stop a run that must not send anything, saying why on the run and on each open result."""
    now = timezone.now()
    with transaction.atomic():
        ReplayRun.objects.filter(pk=run.pk, status=ReplayRun.Status.RUNNING).update(
            status=ReplayRun.Status.FAILED, finished_at=now, error=error
        )
        ReplayResult.objects.filter(run_id=run.pk, state__in=OPEN).update(
            state=Status.FAILED, leased_until=None, error=error, finished_at=now
        )


# What a batch reads of its results and their exchanges: what a claim, a request and a record need.
# The answers are not read: the worker writes them.
CLAIM_FIELDS = ("run", "exchange", "version", "attempt", "state", "tries", "leased_until", "not_before")
REQUEST_FIELDS = ("method", "path", "query", "request_headers", "request_body")


@dataclass
class _Claim:
    run_active: bool
    claimed: list[ReplayResult] = field(default_factory=list)
    # Results another worker holds (a duplicate delivery) or has finished: not this task's to do.
    taken_elsewhere: set[int] = field(default_factory=set)
    # With no room under the concurrency limit, when to look again.
    wait_seconds: float = 0.0


def _claim(run: ReplayRun, upstream: Upstream, candidates: list[ReplayResult]) -> _Claim:
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
        return _Claim(True, claimed=claimed)
    if not run_active and not claimed:
        return _Claim(run_active=False)
    taken_elsewhere = set(ids) - leased - claimable
    if not claimed and claimable:
        # No room: every concurrent slot is taken.
        return _Claim(True, taken_elsewhere=taken_elsewhere, wait_seconds=0.01 + random.random() * 0.04)
    return _Claim(True, claimed=claimed, taken_elsewhere=taken_elsewhere)


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
    # Only quoted table names and placeholders are formatted in; every value is a parameter. The
    # room is the upstream's limit less the results leased as running in any of its runs (a
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


def _release(results: list[ReplayResult]) -> None:
    """Give claimed results back (the rate limit said wait), undoing the try each had counted."""
    ReplayResult.objects.filter(pk__in=[r.pk for r in results], state=Status.RUNNING).update(
        state=Status.RETRYING, leased_until=None, tries=F("tries") - 1
    )


def _requeue(results: list[ReplayResult], *, wait: float) -> None:
    ids = [r.pk for r in results]
    later = timezone.now() + timedelta(seconds=wait)
    ReplayResult.objects.filter(pk__in=ids, state__in=[Status.PENDING, Status.RETRYING]).update(
        queued_at=timezone.now(), not_before=later
    )
    _queue(ids, countdown=wait)


_sender = Sender()


def replay_request(*, exchange: Exchange, upstream: Upstream, version: str) -> tuple[str, dict, bytes]:
    """The recorded request with only the version changed, the replay credential as its key, and
    max_tokens clamped. Recorded keys (stored as fingerprints), secret headers, masked values and
    secret query parameters are never sent: the only credential is the upstream's."""
    key = core_services.upstream_replay_key(upstream=upstream) or ""
    return _request_for(exchange, upstream, version, key)


def _request_for(exchange: Exchange, upstream: Upstream, version: str, key: str) -> tuple[str, dict, bytes]:
    # Masked again as it is sent, so that a row stored before a masking rule existed (a key in a
    # query string or a header now known as secret) does not send its key.
    headers = {
        name: value
        for name, value in exchange.request_headers.items()
        if name not in HOP_BY_HOP
        and not is_secret_header(name)
        and MASK not in value
        and not holds_a_key(value)
    }
    headers[upstream.version_header] = version
    header = upstream.replay_key_header.lower()
    headers[header] = f"Bearer {key}" if header == "authorization" else key
    body = mask_body(bytes(exchange.request_body or b""), content_type=headers.get("content-type", ""))
    if upstream.max_tokens_clamp and body:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict):
            for field in ("max_tokens", "max_tokens_to_sample"):
                if isinstance(document.get(field), int) and document[field] > upstream.max_tokens_clamp:
                    document[field] = upstream.max_tokens_clamp
                    body = json.dumps(document).encode()
    query = query_for_replay(exchange.query)
    url = upstream.base_url.rstrip("/") + mask_text(exchange.path) + (f"?{query}" if query else "")
    return url, headers, body


def _record(run: ReplayRun, results: list[ReplayResult], outcomes: list[Outcome]) -> list[ReplayResult]:
    """Store each attempt; finish the results that have their answer, queue the rest for a retry.
    Returns the finished results known to be stored as they are in memory: saved while this worker
    still held their lease, so no other worker can have answered them instead. What is stored is
    masked as a recording is (`mask_message`): an upstream's set-cookie, a key in an answer."""
    errors = [mask_text(outcome.error) for outcome in outcomes]
    # Each claim counts a try under the limiter lock, so (result, number) is new: no conflict.
    rows_insert(
        ReplayAttempt,
        [
            ReplayAttempt(
                result_id=result.pk,
                number=result.tries,
                started_at=outcome.started_at,
                duration_ms=outcome.duration_ms,
                status=outcome.status,
                error=error[:2000],
            )
            for result, outcome, error in zip(results, outcomes, errors, strict=True)
        ],
    )
    lease_ends = min(result.leased_until for result in results)
    now = timezone.now()
    retried: list[ReplayResult] = []
    finished: list[ReplayResult] = []
    tokens = 0
    for result, outcome, error in zip(results, outcomes, errors, strict=True):
        transient = bool(outcome.error) or (
            outcome.status is not None and (outcome.status in RETRY_LATER or outcome.status >= 500)
        )
        result.leased_until = None
        result.status = outcome.status
        if transient and not outcome.final and result.tries < settings.REPLAY_MAX_TRIES:
            delay = min(settings.REPLAY_BACKOFF_SECONDS * 2 ** (result.tries - 1), 60.0)
            delay = max(delay, outcome.retry_after or 0.0) + random.random() * delay * 0.25
            result.state = Status.RETRYING
            result.not_before = now + timedelta(seconds=delay)
            result.queued_at = now
            result.error = error[:2000]
            retried.append(result)
            continue
        answer = mask_message(headers=outcome.headers, body=outcome.body, events=outcome.events)
        result.state = Status.FAILED if transient else Status.DONE
        result.response_headers = answer.headers
        result.response_body = answer.body
        result.streamed = outcome.streamed
        result.response_events = answer.events or []
        result.duration_ms = outcome.duration_ms
        result.error = error[:2000] or (
            f"gave up after {result.tries} tries: HTTP {outcome.status}" if transient else ""
        )
        result.finished_at = now
        finished.append(result)
        tokens += _tokens_used(outcome)
    with transaction.atomic():
        _running_results_save(finished, FINISHED_FIELDS)
        _running_results_save(retried, RETRY_FIELDS)
    held = finished if timezone.now() < lease_ends else []
    if retried:
        # One task for the batch's retries: it runs at the earliest, and queues again what is not due.
        _queue([r.pk for r in retried], countdown=min((r.not_before - now).total_seconds() for r in retried))
    _tokens_count(run, tokens)
    return held


FINISHED_FIELDS = (
    "state",
    "leased_until",
    "status",
    "response_headers",
    "response_body",
    "streamed",
    "response_events",
    "duration_ms",
    "error",
    "finished_at",
)
RETRY_FIELDS = ("state", "leased_until", "not_before", "queued_at", "status", "error")


def _running_results_save(results: list[ReplayResult], field_names: tuple[str, ...]) -> None:
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
    # Only quoted names from the model's metadata are formatted in; every value is a parameter.
    sql = f"UPDATE {quote(ReplayResult._meta.db_table)} SET {assignments} WHERE id = %s AND state = %s"  # noqa: S608
    rows = [
        [field.get_db_prep_save(getattr(result, field.attname), connection) for field in fields]
        + [result.pk, Status.RUNNING]
        for result in results
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _tokens_count(run: ReplayRun, tokens: int) -> None:
    if not tokens:
        return
    ReplayRun.objects.filter(pk=run.pk).update(tokens_spent=F("tokens_spent") + tokens)
    if not run.token_budget:
        return  # a run's budget is set when it starts: without one, there is nothing to check
    spent = ReplayRun.objects.filter(pk=run.pk).values_list("tokens_spent", flat=True).get()
    if spent < run.token_budget:
        return
    stopped = ReplayRun.objects.filter(pk=run.pk, status=ReplayRun.Status.RUNNING).update(
        status=ReplayRun.Status.COMPLETED,
        finished_at=timezone.now(),
        error=f"Stopped: the token budget ({run.token_budget}) is spent.",
    )
    if stopped:
        ReplayResult.objects.filter(run_id=run.pk, state__in=[Status.PENDING, Status.RETRYING]).update(
            state=Status.SKIPPED, error="token budget spent"
        )


def _tokens_used(outcome: Outcome) -> int:
    documents = []
    if outcome.events:
        # Usage comes in message_start and message_delta: no need to parse every text delta.
        documents = [_json(event["data"]) for event in outcome.events if "usage" in event["data"]]
    elif outcome.body:
        documents = [_json(outcome.body)]
    total = 0
    for document in documents:
        if not isinstance(document, dict):
            continue
        usage = document.get("usage") or (document.get("message") or {}).get("usage") or {}
        if isinstance(usage, dict):
            total += sum(value for value in usage.values() if isinstance(value, int))
    return total or len(outcome.body) // 4


def _json(data):
    try:
        return json.loads(data)
    except (ValueError, TypeError, RecursionError):
        return None


def _exchanges_finished(run_id: int, exchange_ids: set[int], held: Iterable[ReplayResult] = ()) -> None:
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
        won = _diffs_claim([row["first"] for row in undiffed])
        if won:
            exchanges_diff_record(run_id=run_id, exchange_ids=won, held=held)


def _diffs_claim(first_result_ids: list[int]) -> list[int]:
    """Mark exchanges as diffed through their first result; returns the exchanges this call won.
    UPDATE ... RETURNING (PostgreSQL, SQLite 3.35+) claims them all in one statement."""
    if not first_result_ids:
        return []
    quote = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(first_result_ids))
    sql = (
        f"UPDATE {quote(ReplayResult._meta.db_table)} SET diffed_at = %s "  # noqa: S608 (names and placeholders only)
        f"WHERE id IN ({marks}) AND diffed_at IS NULL RETURNING exchange_id"
    )
    diffed_at = ReplayResult._meta.get_field("diffed_at").get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [diffed_at, *first_result_ids])
        return [row[0] for row in cursor.fetchall()]


def _run_complete_if_done(run_id: int) -> None:
    if ReplayResult.objects.filter(run_id=run_id, state__in=OPEN).exists():
        return
    undiffed = (
        ReplayResult.objects.filter(run_id=run_id)
        .values("exchange_id")
        .annotate(diffed=Max("diffed_at"))
        .filter(diffed__isnull=True)
        .values_list("exchange_id", flat=True)
    )
    _exchanges_finished(run_id, set(undiffed))
    if ReplayRun.objects.filter(pk=run_id, status=ReplayRun.Status.RUNNING).update(
        status=ReplayRun.Status.COMPLETED, finished_at=timezone.now()
    ):
        from migrations_audit.tracking.services import migrations_refresh_after_run

        migrations_refresh_after_run(run_id=run_id)  # the boards show the run's results now
