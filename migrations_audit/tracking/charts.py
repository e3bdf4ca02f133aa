"""Small charts drawn on the server as SVG geometry, readable without colour.

These functions only compute coordinates; templates draw them (so every label is auto-escaped).
Versions are told apart by fill pattern (solid, hatched, dotted...) as well as colour, and the two
burn-down series by line style and marker shape, each labelled at its end.
"""

from datetime import date, timedelta

# Fill of each version's bars: the target is solid; older versions get patterns defined in the SVG.
PATTERNS = ["hatch", "dots", "cross", "grid"]


def versions_chart(*, days: list[dict], target_version: str, width: int = 640, height: int = 180) -> dict:
    """Stacked bars of requests per day and version. `days`: [{"day": date, "versions": {v: n}}]."""
    if not days:
        return {}
    days = _every_day(days)
    left, bottom, top, right = 40, 24, 10, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    versions = sorted({version for row in days for version in row["versions"]})
    old = [version for version in versions if version != target_version]
    fills = {version: PATTERNS[index % len(PATTERNS)] for index, version in enumerate(old)}
    fills[target_version] = "solid"
    peak = max(sum(row["versions"].values()) for row in days) or 1
    slot = plot_w / len(days)
    bar_w = min(max(2.0, slot * 0.7), 28.0)
    bars = []
    for index, row in enumerate(days):
        x = left + index * slot + (slot - bar_w) / 2
        y = top + plot_h
        for version in versions:
            count = row["versions"].get(version, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            bars.append(
                {
                    "x": round(x, 1),
                    "y": round(y, 1),
                    "w": round(bar_w, 1),
                    "h": round(h, 1),
                    "fill": fills[version],
                    "title": f"{_day(row['day'])}: {count} request(s) with {version or 'no version'}",
                }
            )
    step = max(1, len(days) // 6)
    ticks = [
        {"x": round(left + index * slot + slot / 2, 1), "label": _day(row["day"])[5:]}
        for index, row in enumerate(days)
        if index % step == 0
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "bottom": top + plot_h,
        "top": top,
        "right": width - right,
        "peak": peak,
        "bars": bars,
        "ticks": ticks,
        "legend": [{"version": version or "no version", "fill": fills[version]} for version in versions],
    }


def burndown_chart(*, series, width: int = 720, height: int = 240) -> dict:
    """Two lines over days: clients still on an old version (solid, circles, left axis) and the
    share of requests on an old version (dashed, squares, right axis in %)."""
    if not series:
        return {}
    left, right, top, bottom = 44, 56, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(day.clients_seen for day in series), 1)
    span = max(len(series) - 1, 1)

    def x_at(index):
        return round(left + plot_w * index / span, 1)

    def y_at(fraction):
        return round(top + plot_h * (1 - fraction), 1)

    clients = [
        {
            "x": x_at(i),
            "y": y_at(day.clients_on_old / peak),
            "title": f"{day.day}: {day.clients_on_old} client(s)",
        }
        for i, day in enumerate(series)
    ]
    share = [
        {"x": x_at(i), "y": y_at(day.old_share), "title": f"{day.day}: {day.old_share:.0%} of requests"}
        for i, day in enumerate(series)
        if day.old_share is not None
    ]
    step = max(1, len(series) // 6)
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": top + plot_h,
        "clients_points": " ".join(f"{p['x']},{p['y']}" for p in clients),
        "share_points": " ".join(f"{p['x']},{p['y']}" for p in share),
        "clients": clients,
        "share": share,
        "clients_label": {
            "x": clients[-1]["x"] + 6,
            "y": clients[-1]["y"],
            "text": f"{series[-1].clients_on_old}",
        },
        "y_ticks": [
            {"y": y_at(fraction), "clients": f"{peak * fraction:g}", "share": f"{fraction:.0%}"}
            for fraction in (0, 0.5, 1)
        ],
        "x_ticks": [
            {"x": x_at(i), "label": _day(day.day)[5:]} for i, day in enumerate(series) if i % step == 0
        ],
    }


def _every_day(days: list[dict]) -> list[dict]:
    """The days from the first to the last, with the days without traffic as empty bars, so that
    the x axis is time and a gap in traffic shows as a gap."""
    by_day = {_as_date(row["day"]): row["versions"] for row in days}
    first, last = min(by_day), max(by_day)
    return [
        {"day": first + timedelta(days=offset), "versions": by_day.get(first + timedelta(days=offset), {})}
        for offset in range((last - first).days + 1)
    ]


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _day(value) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)
