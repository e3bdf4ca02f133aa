"""A replay run's lifecycle: start (choose the exchanges, create a result per exchange, version and
repeat, queue them), cancel, resume, reconcile the work nobody is doing, fail."""

import random
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from migrations_audit import services as core_services
from migrations_audit.models import Exchange, ReplayResult, ReplayRun, Upstream

from .batching import queue
from .claims import OPEN
from .diffing import run_complete_if_done

Status = ReplayResult.Status


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
            lambda: queue(ReplayResult.objects.filter(run=run).values_list("pk", flat=True))
        )
    return run


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
        transaction.on_commit(lambda: queue(list(pending.values_list("pk", flat=True))))
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
    queue(ids)
    for run in ReplayRun.objects.filter(status=ReplayRun.Status.RUNNING):
        run_complete_if_done(run.pk)
    return len(ids)


def run_fail(run: ReplayRun, error: str) -> None:
    """Stop a run that must not send anything, saying why on the run and on each open result."""
    now = timezone.now()
    with transaction.atomic():
        ReplayRun.objects.filter(pk=run.pk, status=ReplayRun.Status.RUNNING).update(
            status=ReplayRun.Status.FAILED, finished_at=now, error=error
        )
        ReplayResult.objects.filter(run_id=run.pk, state__in=OPEN).update(
            state=Status.FAILED, leased_until=None, error=error, finished_at=now
        )
