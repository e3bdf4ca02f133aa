"""What the pages, the API and the command read about runs."""

from datetime import timedelta

from django.db.models import Count, F, Sum
from django.utils import timezone

from migrations_audit.models import Difference, ReplayResult, ReplayRun, Upstream

STATES = [state.value for state in ReplayResult.Status]
THROUGHPUT_WINDOW = timedelta(seconds=30)


def runs_for_upstream(*, upstream: Upstream):
    return ReplayRun.objects.filter(upstream=upstream).select_related("created_by")


def run_progress(*, run: ReplayRun) -> dict:
    """Counts by state overall and per version, throughput, time left, tokens, and recent errors."""
    per_version: dict[str, dict[str, int]] = {version: dict.fromkeys(STATES, 0) for version in run.versions}
    counts = dict.fromkeys(STATES, 0)
    for row in ReplayResult.objects.filter(run=run).values("version", "state").annotate(n=Count("id")):
        per_version.setdefault(row["version"], dict.fromkeys(STATES, 0))[row["state"]] = row["n"]
        counts[row["state"]] += row["n"]
    total = sum(counts.values())
    finished = counts["done"] + counts["failed"] + counts["skipped"]
    now = timezone.now()
    recent = ReplayResult.objects.filter(run=run, finished_at__gte=now - THROUGHPUT_WINDOW).count()
    throughput = recent / THROUGHPUT_WINDOW.total_seconds()
    if not recent and run.started_at and finished:
        elapsed = ((run.finished_at or now) - run.started_at).total_seconds()
        throughput = finished / elapsed if elapsed > 0 else 0.0
    remaining = total - finished
    errors = (
        ReplayResult.objects.filter(run=run)
        .exclude(error="")
        .order_by("-finished_at", "-pk")
        .values("exchange_id", "version", "error", "tries", "state")[:10]
    )
    return {
        "status": run.status,
        "total": total,
        "finished": finished,
        "percent": round(100 * finished / total) if total else 100,
        "counts": counts,
        "per_version": per_version,
        "throughput_per_s": round(throughput, 2),
        "eta_seconds": round(remaining / throughput) if throughput and run.is_active and remaining else None,
        "tokens_spent": run.tokens_spent,
        "token_budget": run.token_budget,
        "retries": ReplayResult.objects.filter(run=run, tries__gt=1).aggregate(retries=Sum(F("tries") - 1))[
            "retries"
        ]
        or 0,
        "recent_errors": list(errors),
        "error": run.error,
        # While its results are being created: "preparing: N of M exchanges" (M once counted).
        "preparing": None
        if run.prepared_at
        else {"prepared": run.exchanges_prepared, "total": run.exchanges_total},
    }


def run_differences_summary(*, run: ReplayRun) -> dict:
    rows = Difference.objects.filter(run=run).values("classification").annotate(n=Count("id"))
    summary = {"breaking": 0, "additive": 0, "noise": 0}
    summary.update({row["classification"]: row["n"] for row in rows})
    summary["unexplained"] = (
        Difference.objects.filter(run=run, rule__isnull=True, model_rule__isnull=True)
        .exclude(classification="noise")
        .count()
    )
    return summary


def run_waiting(*, run: ReplayRun) -> list[str]:
    """Why an active run may be sending nothing, in words; empty when nothing holds it up."""
    if not run.is_active:
        return []
    reasons = []
    upstream = run.upstream
    if upstream.rate_limit_concurrency < 1 or upstream.rate_limit_rps <= 0:
        reasons.append(
            f"{upstream.name} allows {upstream.rate_limit_concurrency} request(s) in flight at "
            f"{upstream.rate_limit_rps:g} per second: nothing can be sent until its limits are raised "
            "in the upstream's settings."
        )
    ahead = ReplayRun.objects.filter(
        status__in=[ReplayRun.Status.PENDING, ReplayRun.Status.RUNNING], pk__lt=run.pk
    ).count()
    if ahead:
        reasons.append(f"{ahead} run(s) started before this one are still in the queue.")
    return reasons
