"""A report payload as CSV, and as a self-contained HTML file (inline styles, for email)."""

import csv
import io
from xml.etree import ElementTree

from django.template.loader import render_to_string

from .findings import Finding, report_findings

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


def plain_text(title: str) -> str:
    """A changelog title without its markdown backticks (`temperature` -> temperature)."""
    return title.replace("`", "")


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
                plain_text(rule["title"]),
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
                plain_text(d["rule_title"] or ""),
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
        fixed = trend["fixed"] if "fixed" in trend else trend["resolved"]
        still = f"{len(trend['still_open'])} still open, " if "still_open" in trend else ""
        lines.append(
            f"Since last time: {len(trend['new'])} new, {len(fixed)} fixed, {still}"
            f"{len(trend['growing'])} growing, {len(trend['shrinking'])} shrinking"
        )
    if link:
        lines.append(f"Full report: {link}")
    return "\n".join(lines)


def _verdict(finding: Finding, gate: dict) -> str:
    """ "fail", "ignored", "acknowledged" or "pass" for one finding under a gate evaluation."""
    if finding.signature in gate["failing"]:
        return "fail"
    if finding.signature in gate["ignored"]:
        return "ignored"
    return "acknowledged" if finding.acknowledged else "pass"


def _explain(finding: Finding) -> str:
    what = "unexplained " if not finding.explained else ""
    text = (
        f"{what}{finding.classification} finding in {finding.exchanges} exchange(s); "
        f"signature {finding.signature}"
    )
    if finding.acknowledgement:
        ack = finding.acknowledgement
        until = f" until {ack['expires_on']}" if ack.get("expires_on") else ""
        text += f"; acknowledged by {ack.get('by') or 'unknown'}{until}: {ack['reason']}"
    return text


def report_junit(payload: dict, gate: dict) -> str:
    """JUnit XML: one test suite per report, one test case per finding's signature; a failure for
    each finding that fails the gate, skipped for an acknowledged or ignored one."""
    findings = report_findings(payload)
    verdicts = [_verdict(finding, gate) for finding in findings]
    failures = verdicts.count("fail")
    skipped = verdicts.count("ignored") + verdicts.count("acknowledged")
    upstream, versions = payload["upstream"], payload["versions"]
    counts = {"tests": str(len(findings)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ElementTree.Element(
        "testsuites", name="compat_report", **{k: v for k, v in counts.items() if k != "skipped"}
    )
    suite = ElementTree.SubElement(
        root,
        "testsuite",
        name=f"{upstream['slug']} {versions['from']} -> {versions['to']} (fail on {gate['fail_on']})",
        timestamp=payload["generated_at"],
        **counts,
    )
    for finding, verdict in zip(findings, verdicts, strict=True):
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"{upstream['slug']}.{finding.section}",
            name=f"{finding.title} [{finding.signature[:12]}]",
        )
        if verdict == "fail":
            failure = ElementTree.SubElement(
                case, "failure", message=finding.title, type=finding.classification
            )
            failure.text = _explain(finding)
        elif verdict in ("ignored", "acknowledged"):
            ElementTree.SubElement(case, "skipped", message=f"{verdict}: {_explain(finding)}")
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def report_github(payload: dict, gate: dict) -> str:
    """GitHub Actions workflow commands: `::error` for each finding that fails the gate, `::warning`
    for the others at the same level or above it that pass, `::notice` for acknowledged or ignored
    ones, and a last line saying whether the gate passed."""
    lines = []
    for finding in report_findings(payload):
        verdict = _verdict(finding, gate)
        if verdict == "fail":
            level = "error"
        elif verdict in ("ignored", "acknowledged"):
            level = "notice"
        elif finding.in_level("unexplained"):
            level = "warning"
        else:
            continue
        title = _escape_property(f"{payload['upstream']['slug']}: {finding.title}")
        lines.append(f"::{level} title={title}::{_escape_data(verdict + ': ' + _explain(finding))}")
    verdict = "passes" if gate["passed"] else "fails"
    summary = f"Release gate {verdict} (fail on {gate['fail_on']}): {len(gate['failing'])} failing finding(s)"
    lines.append(f"::{'notice' if gate['passed'] else 'error'} title=Release gate::{_escape_data(summary)}")
    return "\n".join(lines) + "\n"
