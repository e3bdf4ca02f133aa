"""A report's findings, one per signature hash: what the release gate judges, what the CI formats list
and what the trend matches across snapshots.

A finding is a difference found by replay (its `DifferenceSignature.signature`) or the requests one
client sends that the target version rejects under one request rule (a signature made the same way
from the version, the rule and the client's identity). Each request rule also has a signature of
its own, for every client at once: it names the rule, but is never acknowledged or ignored, since a
request the target version rejects is accepted only client by client.
"""

from dataclasses import dataclass

from migrations_audit.diff.services import signature_of

FAIL_ON_LEVELS = ("breaking", "unexplained", "any")
REQUEST_KIND = "request_rejected"


def request_signature(*, version_to: str, rule_key: str, client_identity: str | None) -> str:
    """The signature of the requests a client sends that `version_to` rejects under a rule
    (`client_identity` "" for requests with no client identity, None for the rule as a whole)."""
    path = "*" if client_identity is None else f"client:{client_identity}"
    return signature_of(
        version_from="", version_to=version_to, endpoint="", kind=REQUEST_KIND, path=path, rule_key=rule_key
    )


def difference_title(*, kind: str, path: str, endpoint: str) -> str:
    return f"{kind} {path} ({endpoint})"


def request_title(*, rule_key: str, client: str) -> str:
    return f"request rule {rule_key}: requests of {client}"


@dataclass(frozen=True)
class Finding:
    signature: str
    section: str  # "difference" or "request"
    title: str
    classification: str
    explained: bool
    acknowledged: bool
    acknowledgeable: bool
    exchanges: int
    acknowledgement: dict | None = None

    def in_level(self, fail_on: str) -> bool:
        if fail_on == "any":
            return True
        if fail_on == "unexplained":
            return self.classification == "breaking" or not self.explained
        return self.classification == "breaking"


def report_findings(payload: dict) -> list[Finding]:
    """Every finding of a report payload (schema v2), differences first, in the payload's order."""
    found = [
        Finding(
            signature=d["signature"],
            section="difference",
            title=difference_title(kind=d["kind"], path=d["path"], endpoint=d["endpoint"]),
            classification=d["classification"],
            explained=d["explained"],
            acknowledged=d["acknowledged"],
            acknowledgeable=True,
            exchanges=d["exchanges"],
            acknowledgement=d.get("acknowledgement"),
        )
        for d in payload.get("differences", [])
    ]
    for rule in payload.get("request_rules", []):
        found.extend(
            Finding(
                signature=row["signature"],
                section="request",
                title=request_title(rule_key=rule["rule"], client=row["client"]),
                classification="breaking",
                explained=True,
                acknowledged=row["acknowledged"],
                acknowledgeable=row["acknowledgeable"],
                exchanges=row["exchanges"],
                acknowledgement=row.get("acknowledgement"),
            )
            for row in rule.get("by_client", [])
        )
    return found


def rule_signatures(payload: dict) -> set[str]:
    """The signatures of whole request rules: they name a rule but are never acknowledged."""
    return {rule["signature"] for rule in payload.get("request_rules", []) if rule.get("signature")}


def gate_evaluate(payload: dict, *, fail_on: str = "breaking", ignored: frozenset[str] = frozenset()) -> dict:
    """The release gate over a payload: the findings at `fail_on`'s level that are neither
    acknowledged (in the product) nor ignored (by the team's ignore file) fail it."""
    if fail_on not in FAIL_ON_LEVELS:
        raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON_LEVELS)}")
    failing, skipped = [], []
    for finding in report_findings(payload):
        if finding.signature in ignored:
            skipped.append(finding.signature)
        elif finding.in_level(fail_on) and not finding.acknowledged:
            failing.append(finding.signature)
    return {"fail_on": fail_on, "passed": not failing, "failing": failing, "ignored": skipped}


def ignore_file_parse(text: str) -> frozenset[str]:
    """Signatures from an ignore file: one per line, `#` starting a comment (the reason), blank lines
    skipped. A line that is not a signature raises ValueError naming it."""
    signatures = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if len(entry) != 64 or any(c not in "0123456789abcdef" for c in entry.lower()):
            raise ValueError(f"line {number}: {entry[:80]!r} is not a signature (64 hex digits)")
        signatures.add(entry.lower())
    return frozenset(signatures)


def trend_compute(*, previous: dict | None, current: dict) -> dict:
    """What is new, fixed and still open since the previous snapshot, matched by signature hash, so
    that neither run ids nor row order matter. Counted: breaking and unexplained findings."""
    empty = {"previous": None, "new": [], "fixed": [], "still_open": [], "growing": [], "shrinking": []}
    if previous is None:
        return empty
    before, after = _trend_findings(previous), _trend_findings(current)
    still = after.keys() & before.keys()

    def items(signatures) -> list[dict]:
        rows = [
            {
                "signature": signature,
                "title": (after.get(signature) or before[signature])[0],
                "exchanges": after[signature][1] if signature in after else 0,
                "previous_exchanges": before[signature][1] if signature in before else 0,
            }
            for signature in signatures
        ]
        return sorted(rows, key=lambda row: (row["title"], row["signature"]))

    return {
        "previous": previous.get("generated_at"),
        "new": items(after.keys() - before.keys()),
        "fixed": items(before.keys() - after.keys()),
        "still_open": items(still),
        "growing": sorted(s for s in still if after[s][1] > before[s][1]),
        "shrinking": sorted(s for s in still if after[s][1] < before[s][1]),
    }


def _trend_findings(payload: dict) -> dict[str, tuple[str, int]]:
    """signature -> (title, exchanges) of a payload's breaking and unexplained findings. A v1 payload
    (before findings per client) contributes its differences only."""
    if payload.get("schema_version", 1) < 2:
        return {
            d["signature"]: (
                difference_title(kind=d["kind"], path=d["path"], endpoint=d["endpoint"]),
                d["exchanges"],
            )
            for d in payload.get("differences", [])
            if d["classification"] == "breaking" or not d["explained"]
        }
    return {
        f.signature: (f.title, f.exchanges) for f in report_findings(payload) if f.in_level("unexplained")
    }
