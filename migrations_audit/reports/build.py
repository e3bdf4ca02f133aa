"""The content of a compatibility report, as a JSON-ready payload (schema: schema/report-v1.json)."""

from django.utils import timezone

from migrations_audit.diff import selectors as diff_selectors
from migrations_audit.models import DifferenceSignature, Migration, Upstream
from migrations_audit.tracking.verdicts import clients_affected_report

SCHEMA_VERSION = 1


def report_payload(
    *,
    upstream: Upstream,
    version_from: str,
    version_to: str,
    migration: Migration | None = None,
    status: str = "ok",
    status_reason: str = "",
    previous: dict | None = None,
) -> dict:
    signatures = list(
        diff_selectors.signatures_for_upstream(
            upstream=upstream, version_from=version_from, version_to=version_to
        ).prefetch_related("clients")
    )
    differences = [_difference(signature) for signature in signatures]
    findings = diff_selectors.request_findings_summary(upstream=upstream, version=version_to)
    request_rules = [
        {
            "rule": row.rule.key,
            "title": row.rule.title,
            "exchanges": row.exchanges,
            "clients": row.clients,
            "confirmed": row.confirmed,
            "contradicted": row.contradicted,
        }
        for row in findings.rules
    ]
    # Affected on their own evidence (the request check on their requests, or replays of their
    # exchanges), as every page and the board count them.
    clients = clients_affected_report(upstream=upstream, version_from=version_from, version_to=version_to)
    breaking = [d for d in differences if d["classification"] == "breaking"]
    payload = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": timezone.now().isoformat(),
        "upstream": {"slug": upstream.slug, "name": upstream.name},
        "versions": {"from": version_from, "to": version_to},
        "status": status,
        "status_reason": status_reason,
        "summary": {
            "breaking": len(breaking) + len(request_rules),
            "additive": sum(1 for d in differences if d["classification"] == "additive"),
            "unexplained": sum(1 for d in differences if not d["explained"]),
            "blocking": sum(1 for d in breaking if not d["acknowledged"]) + len(request_rules),
            "clients_affected": len(clients),
            "exchanges_checked": findings.exchanges_checked,
            "exchanges_rejected": findings.exchanges_rejected,
            "share_rejected": round(findings.share, 4),
        },
        "differences": differences,
        "request_rules": request_rules,
        "clients_affected": clients,
        "migration": _migration(migration) if migration else None,
    }
    payload["trend"] = trend_compute(previous=previous, current=payload)
    return payload


def _difference(signature: DifferenceSignature) -> dict:
    return {
        "signature": signature.signature,
        "kind": signature.kind,
        "path": signature.path,
        "endpoint": signature.endpoint,
        "classification": signature.classification,
        "rule": signature.rule.key if signature.rule else None,
        "rule_title": signature.rule.title if signature.rule else None,
        "explained": signature.rule_id is not None,
        "acknowledged": signature.acknowledged,
        "count": signature.count,
        "exchanges": signature.exchanges,
        "share": round(signature.share, 4) if signature.share is not None else None,
        "example_exchange": signature.example_id,
        "clients": sorted(client.display_name for client in signature.clients.all())[:50],
    }


def _migration(migration: Migration) -> dict:
    from migrations_audit.tracking.selectors import migration_board

    return {
        "name": migration.name,
        "target_version": migration.target_version,
        "deadline": migration.deadline.isoformat(),
        "status_counts": {
            column.status: len(column.states) for column in migration_board(migration=migration)
        },
    }


def trend_compute(*, previous: dict | None, current: dict) -> dict:
    """New, resolved, growing and shrinking findings against the previous snapshot of the report."""
    if previous is None:
        return {"previous": None, "new": [], "resolved": [], "growing": [], "shrinking": []}
    before, after = _findings(previous), _findings(current)
    grown = [key for key in after.keys() & before.keys() if after[key] > before[key]]
    shrunk = [key for key in after.keys() & before.keys() if after[key] < before[key]]
    return {
        "previous": previous.get("generated_at"),
        "new": sorted(after.keys() - before.keys()),
        "resolved": sorted(before.keys() - after.keys()),
        "growing": sorted(grown),
        "shrinking": sorted(shrunk),
    }


def _findings(payload: dict) -> dict[str, int]:
    """Each breaking or unexplained finding of a payload by a readable key, with how many exchanges."""
    findings = {
        f"{d['kind']} {d['path']} ({d['endpoint']})": d["exchanges"]
        for d in payload.get("differences", [])
        if d["classification"] == "breaking" or not d["explained"]
    }
    findings.update({f"request rule {r['rule']}": r["exchanges"] for r in payload.get("request_rules", [])})
    return findings
