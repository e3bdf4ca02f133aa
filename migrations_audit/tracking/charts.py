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
    ticks = [
        {"x": round(left + index * slot + slot / 2, 1), "label": _day(row["day"])[5:]}
        for index, row in enumerate(days)
        if _labelled(index, len(days))
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


def burndown_chart(*, series, width: int = 720, panel_height: int = 120) -> dict:
    """Two panels over the same days, so that neither line hides the other: clients still on an old
    version (solid line, circles) and the share of requests on an old version (dashed, squares)."""
    if not series:
        return {}
    left, right, top, gap, bottom = 44, 16, 22, 40, 24
    plot_w = width - left - right
    span = max(len(series) - 1, 1)
    peak = max(max(day.clients_seen for day in series), 1)

    def x_at(index):
        return round(left + plot_w * index / span, 1)

    def panel(index, title, kind, values, ticks):
        y0 = top + index * (panel_height + gap)

        def y_at(fraction):
            return round(y0 + panel_height * (1 - fraction), 1)

        points = [
            {"x": x_at(i), "y": y_at(fraction), "title": label}
            for i, (fraction, label) in enumerate(values)
            if fraction is not None
        ]
        return {
            "title": title,
            "kind": kind,
            "title_y": y0 - 8,
            "bottom": y0 + panel_height,
            "points": points,
            "polyline": " ".join(f"{p['x']},{p['y']}" for p in points),
            "y_ticks": [{"y": y_at(fraction), "label": label} for fraction, label in ticks],
        }

    clients = panel(
        0,
        "Clients still on an old version",
        "clients",
        [
            (day.clients_on_old / peak, f"{day.day}: {day.clients_on_old} of {day.clients_seen} client(s)")
            for day in series
        ],
        [(0, "0"), (0.5, f"{peak / 2:g}"), (1, f"{peak}")],
    )
    share = panel(
        1,
        "Share of requests on an old version",
        "share",
        [
            (
                day.old_share,
                f"{day.day}: {day.old_share:.0%} of {day.requests} request(s)" if day.requests else "",
            )
            for day in series
        ],
        [(0, "0%"), (0.5, "50%"), (1, "100%")],
    )
    return {
        "width": width,
        "height": top + 2 * panel_height + gap + bottom,
        "left": left,
        "right": width - right,
        "panels": [clients, share],
        "x_ticks": [
            {"x": x_at(i), "label": _day(day.day)[5:]}
            for i, day in enumerate(series)
            if _labelled(i, len(series))
        ],
        "x_label_y": top + 2 * panel_height + gap + 16,
    }


def _labelled(index: int, count: int) -> bool:
    """About six dates under a chart, counted back from the last day so that today is labelled."""
    return (count - 1 - index) % max(1, count // 6) == 0


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
