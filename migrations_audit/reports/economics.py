"""What a move costs and how fast it answers, per client, from the recorded month's volume: "moving
to SDK 2 + Sonnet 5 changes checkout-service's estimated monthly cost by +12% and its p95 latency
by -80 ms".

When the report compares two variants of a run whose answers carry usage: per client, the replayed
cost per request under each (replay.costs prices), times the client's exchanges of the last 30 days
(the daily rollup, TrafficDay), and the p95 of the replayed total time under each.
"""

from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from migrations_audit.models import Client, ReplayResult, ReplayRun, TrafficDay, Upstream
from migrations_audit.replay.costs import TOKENS, _tally, prices

MONTH_DAYS = 30
TOP_CLIENTS = 50


def run_with_usage(*, upstream: Upstream, version_from: str, version_to: str) -> ReplayRun | None:
    """The latest run of the upstream that replayed both labels and kept the answers' usage."""
    runs = ReplayRun.objects.filter(upstream=upstream).order_by("-created_at", "-pk")
    for run in runs[:20]:
        labels = run.versions or []
        if version_from in labels and version_to in labels:
            used = ReplayResult.objects.filter(
                run=run, version__in=(version_from, version_to), input_tokens__isnull=False
            )
            if used.exists():
                return run
    return None


def variant_economics(*, upstream: Upstream, version_from: str, version_to: str) -> dict | None:
    run = run_with_usage(upstream=upstream, version_from=version_from, version_to=version_to)
    if run is None:
        return None
    labels = (version_from, version_to)
    answered = ReplayResult.objects.filter(
        run=run, attempt=1, state=ReplayResult.Status.DONE, version__in=labels, exchange__client__isnull=False
    )
    rows = list(
        answered.values("version", "exchange__client_id", "model").annotate(
            requests=Count("id"), **{name: Sum(name) for name in TOKENS}
        )
    )
    durations: dict[tuple[int, str], list[float]] = {}
    for client_id, label, duration in answered.filter(duration_ms__isnull=False).values_list(
        "exchange__client_id", "version", "duration_ms"
    ):
        durations.setdefault((client_id, label), []).append(duration)
    client_ids = {row["exchange__client_id"] for row in rows}
    since = timezone.localdate() - timedelta(days=MONTH_DAYS - 1)
    month = dict(
        TrafficDay.objects.filter(upstream=upstream, day__gte=since, client_id__in=client_ids)
        .values("client_id")
        .annotate(n=Sum("count"))
        .values_list("client_id", "n")
    )
    names = {client.pk: client.display_name for client in Client.objects.filter(pk__in=client_ids)}
    clients = []
    for client_id in sorted(client_ids, key=lambda pk: (-(month.get(pk) or 0), names.get(pk, ""))):
        entry = _client_entry(
            name=names.get(client_id, "unidentified"),
            rows=[row for row in rows if row["exchange__client_id"] == client_id],
            durations={label: durations.get((client_id, label), []) for label in labels},
            labels=labels,
            exchanges=month.get(client_id) or 0,
        )
        if entry is not None:
            clients.append(entry)
    return {
        "run": run.pk,
        "from": version_from,
        "to": version_to,
        "days": MONTH_DAYS,
        "prices": {key: prices()[key] for key in ("date", "source", "currency")},
        "clients": clients[:TOP_CLIENTS],
    }


def _client_entry(*, name, rows, durations, labels, exchanges) -> dict | None:
    before, after = (_tally(row for row in rows if row["version"] == label) for label in labels)
    if not before["requests"] or not after["requests"]:
        return None
    per_before = before["cost"] / before["requests"] if before["cost"] is not None else None
    per_after = after["cost"] / after["requests"] if after["cost"] is not None else None
    p95_before, p95_after = (p95(durations[label]) for label in labels)
    entry = {
        "client": name,
        "exchanges_30_days": exchanges,
        "requests_replayed": {"from": before["requests"], "to": after["requests"]},
        "cost_per_request_usd": {"from": _round(per_before), "to": _round(per_after)},
        "monthly_cost_usd": {
            "from": _round(per_before * exchanges if per_before is not None else None),
            "to": _round(per_after * exchanges if per_after is not None else None),
        },
        "monthly_cost_change_usd": None,
        "monthly_cost_change_pct": None,
        "p95_ms": {"from": p95_before, "to": p95_after},
        "p95_change_ms": None,
        "unpriced": sorted(set(before["unpriced"]) | set(after["unpriced"])),
    }
    if per_before is not None and per_after is not None:
        entry["monthly_cost_change_usd"] = _round((per_after - per_before) * exchanges)
        if per_before:
            entry["monthly_cost_change_pct"] = round(100 * (per_after - per_before) / per_before, 1)
    if p95_before is not None and p95_after is not None:
        entry["p95_change_ms"] = round(p95_after - p95_before, 1)
    entry["sentence"] = economics_sentence(entry, to=labels[1])
    return entry


def economics_sentence(entry: dict, *, to: str) -> str:
    """The entry in words, as the report states it."""
    parts = []
    pct, usd = entry["monthly_cost_change_pct"], entry["monthly_cost_change_usd"]
    if pct is not None:
        parts.append(
            f"estimated monthly cost by {pct:+g}% ({usd:+,.2f} USD over "
            f"{entry['exchanges_30_days']:,} exchanges in the last 30 days)"
        )
    change = entry["p95_change_ms"]
    if change is not None:
        parts.append(f"p95 latency by {change:+g} ms")
    unpriced = f" (not priced: {', '.join(entry['unpriced'])})" if entry["unpriced"] else ""
    if not parts:
        return f"Moving to {to}: no cost or latency measured for {entry['client']}{unpriced}."
    return f"Moving to {to} changes {entry['client']}'s " + " and its ".join(parts) + f"{unpriced}."


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[int(0.95 * (len(ordered) - 1))], 1)


def _round(value):
    return None if value is None else round(value, 6)
