"""Outcome recording: each attempt of a replayed request is a row; a result either gets its answer
(masked as a recording is) or is queued for a retry with backoff; the tokens it spent count against
the run's budget, which stops the run once spent."""

import json
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from migrations_audit.bulk import rows_insert
from migrations_audit.models import ReplayAttempt, ReplayResult, ReplayRun
from migrations_audit.secrets import mask_message, mask_text

from .batching import queue
from .claims import running_results_save
from .sender import Outcome

Status = ReplayResult.Status
# 429 and 529 say "later": retried with backoff honouring retry-after. 5xx and transport errors are
# retried too, up to the limit; every other status is a result, a 400 included.
RETRY_LATER = {429, 529}


def record(run: ReplayRun, results: list[ReplayResult], outcomes: list[Outcome]) -> list[ReplayResult]:
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
        result.first_byte_ms = outcome.first_byte_ms
        _usage_keep(result, outcome)
        result.error = error[:2000] or (
            f"gave up after {result.tries} tries: HTTP {outcome.status}" if transient else ""
        )
        result.finished_at = now
        finished.append(result)
        tokens += _tokens_used(outcome)
    with transaction.atomic():
        running_results_save(finished, FINISHED_FIELDS)
        running_results_save(retried, RETRY_FIELDS)
    held = finished if timezone.now() < lease_ends else []
    if retried:
        # One task for the batch's retries: it runs at the earliest, and queues again what is not due.
        queue([r.pk for r in retried], countdown=min((r.not_before - now).total_seconds() for r in retried))
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
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "first_byte_ms",
)
RETRY_FIELDS = ("state", "leased_until", "not_before", "queued_at", "status", "error")


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


def _usages(outcome: Outcome) -> list[dict]:
    documents = []
    if outcome.events:
        # Usage comes in message_start and message_delta: no need to parse every text delta.
        documents = [_json(event["data"]) for event in outcome.events if "usage" in event["data"]]
    elif outcome.body:
        documents = [_json(outcome.body)]
    usages = []
    for document in documents:
        if not isinstance(document, dict):
            continue
        usage = document.get("usage") or (document.get("message") or {}).get("usage") or {}
        if isinstance(usage, dict):
            usages.append(usage)
    return usages


def _tokens_used(outcome: Outcome) -> int:
    total = sum(value for usage in _usages(outcome) for value in usage.values() if isinstance(value, int))
    return total or len(outcome.body) // 4


USAGE_FIELDS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_creation_tokens",
}


def _usage_keep(result: ReplayResult, outcome: Outcome) -> None:
    """The answer's usage on the result: a stream's message_delta counts last (its output_tokens is
    the total), its message_start first."""
    for attribute in USAGE_FIELDS.values():
        setattr(result, attribute, None)
    for usage in _usages(outcome):
        for name, attribute in USAGE_FIELDS.items():
            value = usage.get(name)
            if isinstance(value, int) and value >= 0:
                setattr(result, attribute, value)


def _json(data):
    try:
        return json.loads(data)
    except (ValueError, TypeError, RecursionError):
        return None
