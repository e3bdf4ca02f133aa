"""A replay run's lifecycle: start (check what it replays, create it and its first chunk of results;
`preparing` makes the rest), cancel, resume, reconcile the work nobody is doing, fail."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from migrations_audit import services as core_services
from migrations_audit.models import ReplayResult, ReplayRun, Upstream

from .batching import chunked, queue, queue_open
from .claims import OPEN
from .diffing import run_complete_if_done
from .preparing import chunk_prepare, exchanges_select
from .tasks import replay_prepare
from .variants import VariantError, variant_parse

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
    try:
        variants = [
            variant_parse(spelled, upstream=upstream, known_versions=known)
            for spelled in dict.fromkeys(versions)
        ]
    except VariantError as error:
        raise ReplayError(str(error)) from None
    # In the upstream's order of versions; variants of one version in the order given.
    variants.sort(key=lambda variant: known.index(variant.version))
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
    if not exchanges_select(upstream=upstream, selection=selection).exists():
        raise ReplayError(
            "No recorded exchange matches this selection (only replayable endpoints are replayed)."
        )
    with transaction.atomic():
        run = ReplayRun.objects.create(
            upstream=upstream,
            created_by=created_by,
            versions=[variant.label for variant in variants],
            variants={variant.label: variant.as_dict() for variant in variants},
            selection=selection,
            noise_sample_rate=noise_sample_rate,
            token_budget=token_budget,
            status=ReplayRun.Status.RUNNING,
            started_at=timezone.now(),
        )
        # The first chunk now, so that a small run is ready at once; the rest in the background.
        if chunk_prepare(run):
            transaction.on_commit(lambda: replay_prepare.delay(run.pk))
    run.refresh_from_db()
    return run


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
        ReplayResult.objects.filter(run=run, state__in=OPEN).update(queued_at=timezone.now(), not_before=None)
        transaction.on_commit(lambda: queue_open(run.pk))
        if ReplayRun.objects.filter(pk=run.pk, prepared_at__isnull=True).exists():
            transaction.on_commit(lambda: replay_prepare.delay(run.pk))
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
    for some in chunked(ids):
        ReplayResult.objects.filter(pk__in=some).update(queued_at=now)
    queue(ids)
    for run in ReplayRun.objects.filter(status=ReplayRun.Status.RUNNING):
        if run.prepared_at is None:
            _prepare_if_stalled(run, stale_after=stale_after)
        else:
            run_complete_if_done(run.pk)
    return len(ids)


def _prepare_if_stalled(run: ReplayRun, *, stale_after: timedelta) -> None:
    """Start again the preparation of a run whose last chunk is old (its worker died, its message
    was lost): it resumes after the last committed chunk."""
    last = parse_datetime((run.prepare_cursor or {}).get("at") or "") or run.started_at
    if last is None or last < timezone.now() - stale_after:
        replay_prepare.delay(run.pk)


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
