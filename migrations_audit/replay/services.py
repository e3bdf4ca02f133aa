"""Replay runs: choose exchanges, send each again under every version, retry within limits, diff.

Work is keyed by ReplayResult (run, exchange, version, attempt), claimed with a conditional UPDATE and
a lease, so a task delivered twice or run by two workers stores one result, and a result whose
worker died is claimed again once its lease expires (see `run_reconcile`).
"""

import json
import logging
import random
import time
from datetime import datetime, timedelta

import httpx
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from migrations_audit import services as core_services
from migrations_audit.capture.recording import HOP_BY_HOP
from migrations_audit.diff.services import exchange_diff_record
from migrations_audit.models import (
    Exchange,
    RateLimiterState,
    ReplayAttempt,
    ReplayResult,
    ReplayRun,
    Upstream,
)
from migrations_audit.secrets import MASK
from migrations_audit.sse import SseParser

from . import ratelimit

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
    if core_services.upstream_replay_key(upstream=upstream) is None:
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
    for result_id in result_ids:
        current_app.send_task(
            "migrations_audit.tasks.replay_result", args=[result_id], countdown=countdown or None
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


# --- One result ---------------------------------------------------------------------------------


def result_execute(*, result_id: int) -> None:
    """Claim a result, send its request under its version, record the attempt, and decide what next."""
    result = ReplayResult.objects.select_related("run__upstream", "exchange").filter(pk=result_id).first()
    if result is None or result.state in (Status.DONE, Status.FAILED, Status.SKIPPED):
        return
    run, upstream = result.run, result.run.upstream
    if run.status != ReplayRun.Status.RUNNING:
        return  # cancelled or finished: leave the work where it is
    now = timezone.now()
    if result.not_before and result.not_before > now:
        _queue([result.pk], countdown=(result.not_before - now).total_seconds())
        return
    if not _claim(result, upstream, now):
        return
    permit = ratelimit.rate_permit(upstream=upstream)
    while not permit.granted and permit.wait_seconds <= SHORT_WAIT:
        # A slot a fraction of a second away is cheaper to wait for than a trip through the broker.
        time.sleep(permit.wait_seconds)
        permit = ratelimit.rate_permit(upstream=upstream)
    if not permit.granted:
        _release(result, wait=permit.wait_seconds)
        return
    outcome = _send(result, upstream)
    _record(result, outcome)


def _claim(result: ReplayResult, upstream: Upstream, now: datetime) -> bool:
    with transaction.atomic():
        RateLimiterState.objects.select_for_update().get_or_create(upstream=upstream)
        if not ratelimit.concurrency_available(upstream=upstream, now=now):
            wait = 0.05 + random.random() * 0.2
            ReplayResult.objects.filter(pk=result.pk, state__in=[Status.PENDING, Status.RETRYING]).update(
                queued_at=now
            )
            transaction.on_commit(lambda: _queue([result.pk], countdown=wait))
            return False
        claimed = ReplayResult.objects.filter(
            Q(pk=result.pk)
            & (Q(state__in=[Status.PENDING, Status.RETRYING]) | Q(state=Status.RUNNING, leased_until__lt=now))
        ).update(state=Status.RUNNING, leased_until=now + LEASE, tries=F("tries") + 1)
    if claimed:
        result.refresh_from_db(fields=["tries"])
    return bool(claimed)


def _release(result: ReplayResult, *, wait: float) -> None:
    """Give a claimed result back (the rate limit said wait), undoing the try it had counted."""
    later = timezone.now() + timedelta(seconds=wait)
    ReplayResult.objects.filter(pk=result.pk, state=Status.RUNNING).update(
        state=Status.RETRYING,
        leased_until=None,
        not_before=later,
        queued_at=timezone.now(),
        tries=F("tries") - 1,
    )
    _queue([result.pk], countdown=wait)


class _Outcome:
    def __init__(self):
        self.status: int | None = None
        self.headers: dict = {}
        self.body = b""
        self.streamed = False
        self.events: list[dict] | None = None
        self.error = ""
        self.retry_after: float | None = None
        self.started_at = timezone.now()
        self.duration_ms = 0.0


_http: httpx.Client | None = None


def _client() -> httpx.Client:
    global _http
    if _http is None:
        _http = httpx.Client(
            timeout=httpx.Timeout(settings.REPLAY_TIMEOUT_SECONDS, connect=10.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
    return _http


def replay_request(*, exchange: Exchange, upstream: Upstream, version: str) -> tuple[str, dict, bytes]:
    """The recorded request with only the version changed, the replay credential as its key, and
    max_tokens clamped. Recorded keys (stored as fingerprints) and masked values are never sent."""
    headers = {
        name: value
        for name, value in exchange.request_headers.items()
        if name not in HOP_BY_HOP and name not in ("x-api-key", "authorization") and value != MASK
    }
    headers[upstream.version_header] = version
    key = core_services.upstream_replay_key(upstream=upstream) or ""
    header = upstream.replay_key_header.lower()
    headers[header] = f"Bearer {key}" if header == "authorization" else key
    body = bytes(exchange.request_body or b"")
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
    url = upstream.base_url.rstrip("/") + exchange.path + (f"?{exchange.query}" if exchange.query else "")
    return url, headers, body


def _send(result: ReplayResult, upstream: Upstream) -> _Outcome:
    outcome = _Outcome()
    url, headers, body = replay_request(exchange=result.exchange, upstream=upstream, version=result.version)
    started = time.perf_counter()
    chunks: list[bytes] = []
    try:
        with _client().stream(result.exchange.method, url, headers=headers, content=body) as response:
            outcome.status = response.status_code
            outcome.headers = {name.lower(): value for name, value in response.headers.items()}
            outcome.streamed = outcome.headers.get("content-type", "").startswith("text/event-stream")
            parser = SseParser() if outcome.streamed else None
            events: list[dict] = []
            for chunk in response.iter_raw():
                chunks.append(chunk)
                if parser is not None:
                    at = (time.perf_counter() - started) * 1000
                    events.extend(event.as_dict(t_ms=at) for event in parser.feed(chunk))
            if parser is not None:
                events.extend(
                    event.as_dict(t_ms=(time.perf_counter() - started) * 1000) for event in parser.close()
                )
                outcome.events = events
            outcome.retry_after = _retry_after(outcome.headers.get("retry-after"))
    except httpx.HTTPError as error:
        outcome.error = f"{type(error).__name__}: {error}"
    outcome.body = b"".join(chunks)
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _record(result: ReplayResult, outcome: _Outcome) -> None:
    ReplayAttempt.objects.get_or_create(
        result=result,
        number=result.tries,
        defaults={
            "started_at": outcome.started_at,
            "duration_ms": outcome.duration_ms,
            "status": outcome.status,
            "error": outcome.error[:2000],
        },
    )
    transient = outcome.error or (
        outcome.status is not None and (outcome.status in RETRY_LATER or outcome.status >= 500)
    )
    if transient and result.tries < settings.REPLAY_MAX_TRIES:
        delay = min(settings.REPLAY_BACKOFF_SECONDS * 2 ** (result.tries - 1), 60.0)
        delay = max(delay, outcome.retry_after or 0.0) + random.random() * delay * 0.25
        ReplayResult.objects.filter(pk=result.pk, state=Status.RUNNING).update(
            state=Status.RETRYING,
            leased_until=None,
            not_before=timezone.now() + timedelta(seconds=delay),
            queued_at=timezone.now(),
            status=outcome.status,
            error=outcome.error[:2000],
        )
        _queue([result.pk], countdown=delay)
        return
    final = Status.FAILED if transient else Status.DONE
    ReplayResult.objects.filter(pk=result.pk, state=Status.RUNNING).update(
        state=final,
        leased_until=None,
        status=outcome.status,
        response_headers=outcome.headers,
        response_body=outcome.body,
        streamed=outcome.streamed,
        response_events=outcome.events or [],
        duration_ms=outcome.duration_ms,
        error=outcome.error[:2000]
        or (f"gave up after {result.tries} tries: HTTP {outcome.status}" if transient else ""),
        finished_at=timezone.now(),
    )
    _tokens_count(result.run_id, outcome)
    _exchange_finished(result.run_id, result.exchange_id)
    _run_complete_if_done(result.run_id)


def _tokens_count(run_id: int, outcome: _Outcome) -> None:
    tokens = _tokens_used(outcome)
    if not tokens:
        return
    ReplayRun.objects.filter(pk=run_id).update(tokens_spent=F("tokens_spent") + tokens)
    run = ReplayRun.objects.get(pk=run_id)
    if run.token_budget and run.tokens_spent >= run.token_budget and run.status == ReplayRun.Status.RUNNING:
        ReplayRun.objects.filter(pk=run_id, status=ReplayRun.Status.RUNNING).update(
            status=ReplayRun.Status.COMPLETED,
            finished_at=timezone.now(),
            error=f"Stopped: the token budget ({run.token_budget}) is spent.",
        )
        ReplayResult.objects.filter(run_id=run_id, state__in=[Status.PENDING, Status.RETRYING]).update(
            state=Status.SKIPPED, error="token budget spent"
        )


def _tokens_used(outcome: _Outcome) -> int:
    documents = []
    if outcome.events:
        documents = [_json(event["data"]) for event in outcome.events]
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


def _exchange_finished(run_id: int, exchange_id: int) -> None:
    """Once every result of the exchange in the run is final, diff it: exactly once, by whichever
    worker wins the conditional update."""
    results = ReplayResult.objects.filter(run_id=run_id, exchange_id=exchange_id)
    if results.filter(state__in=OPEN).exists():
        return
    first = results.order_by("pk").values_list("pk", flat=True).first()
    if ReplayResult.objects.filter(pk=first, diffed_at__isnull=True).update(diffed_at=timezone.now()):
        exchange_diff_record(run_id=run_id, exchange_id=exchange_id)


def _run_complete_if_done(run_id: int) -> None:
    if ReplayResult.objects.filter(run_id=run_id, state__in=OPEN).exists():
        return
    unfinished_diffs = ReplayResult.objects.filter(run_id=run_id, diffed_at__isnull=True).values(
        "exchange_id"
    )
    for exchange_id in {row["exchange_id"] for row in unfinished_diffs}:
        _exchange_finished(run_id, exchange_id)
    ReplayRun.objects.filter(pk=run_id, status=ReplayRun.Status.RUNNING).update(
        status=ReplayRun.Status.COMPLETED, finished_at=timezone.now()
    )
