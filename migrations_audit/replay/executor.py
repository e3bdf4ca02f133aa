"""Executing a batch of results: claim as the limits allow, build each request as the result's
version sends it, send concurrently, record the outcomes, and diff the exchanges that are done."""

import concurrent.futures
import json
import time

from django.utils import timezone

from migrations_audit import services as core_services
from migrations_audit.capture.recording import HOP_BY_HOP
from migrations_audit.models import Exchange, ReplayResult, ReplayRun, Upstream
from migrations_audit.secrets import (
    MASK,
    holds_a_key,
    is_secret_header,
    mask_body,
    mask_text,
    query_for_replay,
)

from . import claims, ratelimit
from .batching import queue, requeue
from .claims import CLAIM_FIELDS, OPEN, release
from .diffing import exchanges_finished, run_complete_if_done
from .outcomes import record
from .runs import run_fail
from .sender import ReplayRequest, Sender
from .variants import Variant, body_model, key_header, request_rewrite, run_variant

SHORT_WAIT = 1.0
# What a batch reads of its results' exchanges to build their requests.
REQUEST_FIELDS = ("method", "path", "query", "request_headers", "request_body")


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
    variants = {label: run_variant(run, label) for label in {r.version for r in results}}
    ready = _due_now(results)
    # In quarters at least, so that sending one overlaps with recording the one before.
    most = min(ratelimit.batch_size(upstream=upstream, max_wait=SHORT_WAIT), max(1, -(-len(ready) // 4)))
    try:
        key = core_services.upstream_replay_key(upstream=upstream) or ""
    except core_services.ReplayKeyRefused as error:
        run_fail(run, str(error))
        return
    waited = 0.0
    # Two sub-batches in flight at most: one being sent while the one before it is recorded.
    sending: tuple[list[ReplayResult], concurrent.futures.Future] | None = None
    held: list[ReplayResult] = []
    while ready or sending:
        claimed = []
        if ready:
            claim = claims.claim(run, upstream, ready[:most])
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
                    requeue(ready, wait=claim.wait_seconds)
                    ready = []
        started = None
        if claimed:
            started, wait = _start_sending(upstream, claimed, variants, key)
            if started is None:
                requeue(ready, wait=wait)  # the claimed ones too: they were released
                ready = []
            else:
                claimed_ids = {result.pk for result in claimed}
                ready = [result for result in ready if result.pk not in claimed_ids]
        if sending:
            held += record(run, sending[0], sending[1].result())
        sending = started
    exchanges_finished(run.pk, {result.exchange_id for result in results}, held=held)
    run_complete_if_done(run.pk)


def _due_now(results: list[ReplayResult]) -> list[ReplayResult]:
    """The results that may be sent now; the others are queued for when their wait is over."""
    now = timezone.now()
    ready = [r for r in results if not (r.not_before and r.not_before > now)]
    later = [r for r in results if r.not_before and r.not_before > now]
    if later:
        # Not yet: the retry's backoff (or retry-after) has not passed.
        wait = min((r.not_before - now).total_seconds() for r in later)
        queue([r.pk for r in later], countdown=wait)
    return ready


def _start_sending(
    upstream: Upstream, claimed: list[ReplayResult], variants: dict[str, Variant], key: str
) -> tuple[tuple[list[ReplayResult], concurrent.futures.Future] | None, float]:
    """Reserve the rate for the claimed results and submit their requests: ((claimed, future), 0), or
    (None, seconds to wait) with the claimed results released when the rate limit allows none now."""
    reservation = ratelimit.rate_reserve(upstream=upstream, count=len(claimed), max_wait=SHORT_WAIT)
    if not reservation.granted:
        release(claimed)
        return None, reservation.wait_seconds
    requests = [
        ReplayRequest(
            result.exchange.method,
            *_request_for(result.exchange, upstream, variants[result.version], key),
            start_after=reservation.start_after(index),
        )
        for index, result in enumerate(claimed)
    ]
    for result, request in zip(claimed, requests, strict=True):
        result.model = body_model(request.body)
    return (claimed, _sender.submit(requests)), 0.0


_sender = Sender()


def replay_request(
    *, exchange: Exchange, upstream: Upstream, version: str | Variant, key: str | None = None
) -> tuple[str, dict, bytes]:
    """The recorded request as a variant sends it (a plain version changes only the version header),
    the replay credential as its key (or `key`, e.g. a mask to show it), and max_tokens clamped.
    Recorded keys (stored as fingerprints), secret headers, masked values and secret query
    parameters are never sent: the only credential is the upstream's."""
    if key is None:
        key = core_services.upstream_replay_key(upstream=upstream) or ""
    variant = version if isinstance(version, Variant) else Variant(label=version, version=version)
    return _request_for(exchange, upstream, variant, key)


def _request_for(
    exchange: Exchange, upstream: Upstream, variant: Variant, key: str
) -> tuple[str, dict, bytes]:
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
    body = mask_body(bytes(exchange.request_body or b""), content_type=headers.get("content-type", ""))
    document = None
    if body and (upstream.max_tokens_clamp or variant.model_map):
        try:
            document = json.loads(body)
        except ValueError:
            document = None
    headers, changed = request_rewrite(variant, headers, document)
    if isinstance(document, dict) and upstream.max_tokens_clamp:
        for field in ("max_tokens", "max_tokens_to_sample"):
            if isinstance(document.get(field), int) and document[field] > upstream.max_tokens_clamp:
                document[field] = upstream.max_tokens_clamp
                changed = True
    if changed:
        body = json.dumps(document).encode()
    headers[upstream.version_header] = variant.version
    header = key_header(variant, upstream)
    headers[header] = f"Bearer {key}" if header == "authorization" else key
    query = query_for_replay(exchange.query)
    url = upstream.base_url.rstrip("/") + mask_text(exchange.path) + (f"?{query}" if query else "")
    return url, headers, body
