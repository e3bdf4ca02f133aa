"""Cost and latency of a run, per variant and per client: tokens the answers reported, their
estimated cost from the price table (prices.json, with its date and source), latency percentiles
(time to first byte or event, and total), and a chart of them computed as SVG geometry (templates
draw it, so every label is escaped). A few aggregate queries whatever the run's size."""

import json
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

from django.db.models import Count, Sum

from migrations_audit.models import Client, ReplayResult, ReplayRun

TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
PRICE_OF = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache_read",
    "cache_creation_tokens": "cache_write",
}
TOP_CLIENTS = 20


@cache
def prices() -> dict:
    return json.loads((Path(__file__).parent / "prices.json").read_text())


def price_for(model: str) -> dict | None:
    """The first entry of the table whose pattern matches the model id."""
    return next((entry for entry in prices()["models"] if model and fnmatch(model, entry["match"])), None)


def cost_usd(model: str, tokens: dict) -> float | None:
    price = price_for(model)
    if price is None:
        return None
    return sum((tokens.get(name) or 0) * price[key] for name, key in PRICE_OF.items()) / 1_000_000


def _change(value, base):
    if value is None or base in (None, 0):
        return None
    return round(100 * (value - base) / base, 1)


def _tally(rows) -> dict:
    """Sum token rows of one variant (or one client's) across models; cost None if a model has no price."""
    total = {name: 0 for name in TOKENS} | {"requests": 0, "cost": 0.0, "unpriced": set(), "assumed": set()}
    for row in rows:
        tokens = {name: row[name] or 0 for name in TOKENS}
        for name in TOKENS:
            total[name] += tokens[name]
        total["requests"] += row["requests"]
        cost = cost_usd(row["model"], tokens)
        if cost is None:
            total["unpriced"].add(row["model"] or "(no model)")
        else:
            total["cost"] += cost
            if price_for(row["model"]).get("assumed"):
                total["assumed"].add(row["model"])
    total["tokens"] = sum(total[name] for name in TOKENS)
    total["cost"] = None if total["unpriced"] else round(total["cost"], 6)
    total["unpriced"], total["assumed"] = sorted(total["unpriced"]), sorted(total["assumed"])
    return total


def _percentile(results, field: str, share: float) -> float | None:
    measured = results.filter(**{f"{field}__isnull": False})
    count = measured.count()
    if not count:
        return None
    value = measured.order_by(field).values_list(field, flat=True)[int(share * (count - 1))]
    return round(value, 1)


def run_costs(*, run: ReplayRun) -> dict:
    """Per variant and per client: requests, tokens, estimated cost and the change against the
    run's first variant; per variant, p50/p95 of total time and of time to first byte."""
    answered = ReplayResult.objects.filter(run=run, attempt=1, state=ReplayResult.Status.DONE)
    rows = list(
        answered.values("version", "exchange__client_id", "model").annotate(
            requests=Count("id"), **{name: Sum(name) for name in TOKENS}
        )
    )
    labels = [label for label in run.versions if any(row["version"] == label for row in rows)]
    if not labels:
        return {}
    variants = []
    for label in labels:
        tally = _tally(row for row in rows if row["version"] == label)
        mine = answered.filter(version=label)
        tally.update(
            label=label,
            p50_ms=_percentile(mine, "duration_ms", 0.5),
            p95_ms=_percentile(mine, "duration_ms", 0.95),
            first_byte_p50_ms=_percentile(mine, "first_byte_ms", 0.5),
            first_byte_p95_ms=_percentile(mine, "first_byte_ms", 0.95),
        )
        variants.append(tally)
    base = variants[0]
    for tally in variants:
        tally["tokens_change"] = _change(tally["tokens"], base["tokens"])
        tally["cost_change"] = _change(tally["cost"], base["cost"])
        tally["p95_change_ms"] = (
            round(tally["p95_ms"] - base["p95_ms"], 1)
            if None not in (tally["p95_ms"], base["p95_ms"])
            else None
        )
    return {
        "variants": variants,
        "clients": _clients(rows, labels),
        "chart": latency_chart(variants),
        "prices": {key: prices()[key] for key in ("date", "source", "currency", "unit")},
    }


def _clients(rows: list[dict], labels: list[str]) -> list[dict]:
    """The clients with the most replayed requests, each with its tally per variant."""
    volume: dict = {}
    for row in rows:
        volume[row["exchange__client_id"]] = volume.get(row["exchange__client_id"], 0) + row["requests"]
    top = sorted(volume, key=lambda client_id: -volume[client_id])[:TOP_CLIENTS]
    names = {c.pk: c.display_name for c in Client.objects.filter(pk__in=[pk for pk in top if pk])}
    clients = []
    for client_id in top:
        tallies = [
            _tally(r for r in rows if r["exchange__client_id"] == client_id and r["version"] == label)
            for label in labels
        ]
        base = tallies[0]
        clients.append(
            {
                "name": names.get(client_id, "(no client identity)"),
                "variants": [
                    {
                        "label": label,
                        "tokens": tally["tokens"],
                        "cost": tally["cost"],
                        "tokens_change": _change(tally["tokens"], base["tokens"]),
                        "cost_change": _change(tally["cost"], base["cost"]),
                    }
                    for label, tally in zip(labels, tallies, strict=True)
                ],
            }
        )
    return clients


def latency_chart(variants: list[dict], *, width: int = 640) -> dict:
    """Horizontal bars per variant: p50 (solid) and p95 (hatched) of the total time, in ms."""
    peak = max((v["p95_ms"] or 0 for v in variants), default=0) or 1
    left, right, row_h, bar_h, top = 200, 80, 34, 12, 8
    plot_w = width - left - right
    bars = []
    for index, variant in enumerate(variants):
        y = top + index * row_h
        for offset, (name, fill) in enumerate((("p50_ms", "solid"), ("p95_ms", "hatch"))):
            value = variant[name]
            if value is None:
                continue
            w = max(1.0, plot_w * value / peak)
            bars.append(
                {
                    "x": left,
                    "y": y + offset * (bar_h + 2),
                    "w": round(w, 1),
                    "h": bar_h,
                    "fill": fill,
                    "label": f"{name[:3]} {value:g} ms",
                    "label_x": round(left + w + 4, 1),
                    "title": f"{variant['label']}: {name[:3]} {value:g} ms",
                }
            )
    labels = [{"y": top + index * row_h + bar_h, "text": v["label"]} for index, v in enumerate(variants)]
    return {
        "width": width,
        "height": top * 2 + row_h * len(variants),
        "bars": bars,
        "labels": labels,
        "left": left,
    }
