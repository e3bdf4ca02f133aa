"""A report payload as CSV, and as a self-contained HTML file (inline styles, for email)."""

import csv
import io

from django.template.loader import render_to_string

CSV_COLUMNS = [
    "section",
    "classification",
    "kind",
    "path",
    "endpoint",
    "explained_by",
    "acknowledged",
    "exchanges",
    "share",
    "clients",
]


# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A value as a spreadsheet reads it literally: a text that would start a formula gets a leading
    single quote, as OWASP advises. Numbers are left alone, so they stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _SafeWriter:
    """csv.writer that escapes every cell, so no column is ever written unescaped."""

    def __init__(self, out):
        self._writer = csv.writer(out)

    def writerow(self, row):
        self._writer.writerow([csv_cell(value) for value in row])


def report_csv(payload: dict) -> str:
    out = io.StringIO()
    writer = _SafeWriter(out)
    writer.writerow(CSV_COLUMNS)
    for rule in payload["request_rules"]:
        writer.writerow(
            [
                "request_check",
                "breaking",
                "request_rejected",
                "",
                "",
                rule["title"],
                "",
                rule["exchanges"],
                "",
                rule["clients"],
            ]
        )
    for d in payload["differences"]:
        writer.writerow(
            [
                "replay",
                d["classification"],
                d["kind"],
                d["path"],
                d["endpoint"],
                d["rule_title"] or "",
                "yes" if d["acknowledged"] else "no",
                d["exchanges"],
                d["share"] if d["share"] is not None else "",
                "; ".join(d["clients"]),
            ]
        )
    return out.getvalue()


def report_html(payload: dict, *, title: str, link: str = "") -> str:
    return render_to_string(
        "migrations_audit/report_email.html", {"p": payload, "title": title, "link": link}
    )


def report_text_summary(payload: dict, *, title: str, link: str = "") -> str:
    s, versions = payload["summary"], payload["versions"]
    lines = [
        f"{title}: {payload['upstream']['name']} {versions['from']} -> {versions['to']}",
        f"Status: {payload['status']}"
        + (f" ({payload['status_reason']})" if payload["status_reason"] else ""),
        f"Breaking: {s['breaking']}  Blocking (not acknowledged): {s['blocking']}  "
        f"Unexplained: {s['unexplained']}",
        f"Clients affected: {s['clients_affected']}  Requests rejected: {s['exchanges_rejected']} of "
        f"{s['exchanges_checked']}",
    ]
    trend = payload["trend"]
    if trend["previous"]:
        lines.append(
            f"Since last time: {len(trend['new'])} new, {len(trend['resolved'])} resolved, "
            f"{len(trend['growing'])} growing, {len(trend['shrinking'])} shrinking"
        )
    if link:
        lines.append(f"Full report: {link}")
    return "\n".join(lines)
