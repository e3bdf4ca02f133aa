"""The content of a compatibility report, as a JSON-ready payload (schema: schema/report-v2.json)."""

from django.db.models import Sum
from django.utils import timezone

from migrations_audit import selectors
from migrations_audit.diff import selectors as diff_selectors
from migrations_audit.models import (
    Acknowledgement,
    Client,
    ComparisonTally,
    DifferenceSignature,
    Migration,
    Upstream,
)
from migrations_audit.tracking.verdicts import clients_affected_report

from .acknowledgements import acknowledgements_active, request_findings_open
from .economics import variant_economics
from .findings import gate_evaluate, request_signature, trend_compute

SCHEMA_VERSION = 2


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
        )
    )
    names = _client_names(signatures)
    acknowledged = {
        acknowledgement.signature: acknowledgement
        for acknowledgement in acknowledgements_active(upstream=upstream).select_related("created_by")
    }
    differences = [
        _difference(signature, acknowledged.get(signature.signature), names.get(signature.pk, []))
        for signature in signatures
    ]
    findings = diff_selectors.request_findings_summary(upstream=upstream, version=version_to)
    by_rule: dict[str, list[dict]] = {}
    for found in request_findings_open(upstream=upstream, version=version_to):
        by_rule.setdefault(found.rule_key, []).append(
            {
                "client": found.client.display_name if found.client else "unidentified",
                "signature": found.signature,
                "exchanges": found.exchanges,
                "acknowledgeable": found.client is not None,
                "acknowledged": found.signature in acknowledged,
                "acknowledgement": _acknowledgement(acknowledged.get(found.signature)),
            }
        )
    request_rules = []
    for row in findings.rules:
        clients = by_rule.get(row.rule.ref, [])
        request_rules.append(
            {
                "rule": row.rule.ref,
                "signature": request_signature(
                    version_to=version_to, rule_key=row.rule.ref, client_identity=None
                ),
                "title": row.rule.title,
                "exchanges": row.exchanges,
                "clients": row.clients,
                "confirmed": row.confirmed,
                "contradicted": row.contradicted,
                "acknowledged": bool(clients) and all(client["acknowledged"] for client in clients),
                "by_client": clients,
            }
        )
    # Affected on their own evidence (the request check on their requests, or replays of their
    # exchanges), as every page and the board count them.
    clients = clients_affected_report(upstream=upstream, version_from=version_from, version_to=version_to)
    breaking = [d for d in differences if d["classification"] == "breaking"]
    compared = ComparisonTally.objects.filter(
        upstream=upstream, version_from=version_from, version_to=version_to
    ).aggregate(n=Sum("exchanges"))["n"]
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
            "blocking": sum(1 for d in breaking if not d["acknowledged"])
            + sum(1 for rule in request_rules for client in rule["by_client"] if not client["acknowledged"]),
            "exchanges_compared": compared or 0,
            "clients_affected": len(clients),
            "exchanges_checked": findings.exchanges_checked,
            "exchanges_rejected": findings.exchanges_rejected,
            "share_rejected": round(findings.share, 4),
        },
        "differences": differences,
        "request_rules": request_rules,
        "clients_affected": clients,
        "migration": _migration(migration) if migration else None,
        "versions_in_use": _versions_in_use(upstream),
        # Two variants of a run with usage: per client, the monthly cost and p95 latency change.
        "economics": variant_economics(upstream=upstream, version_from=version_from, version_to=version_to),
    }
    payload["gate"] = gate_evaluate(payload)
    payload["trend"] = trend_compute(previous=previous, current=payload)
    return payload


def _versions_in_use(upstream: Upstream) -> dict:
    overall = selectors.versions_in_use(upstream=upstream, windows=(7, 30))
    return {
        "last_7_days": overall[7],
        "last_30_days": overall[30],
        "by_client": selectors.versions_in_use_by_client(upstream=upstream),
    }


def _acknowledgement(acknowledgement: Acknowledgement | None) -> dict | None:
    if acknowledgement is None:
        return None
    return {
        "reason": acknowledgement.reason,
        "expires_on": acknowledgement.expires_on.isoformat() if acknowledgement.expires_on else None,
        "by": acknowledgement.created_by.get_username() if acknowledgement.created_by else None,
        "at": acknowledgement.created_at.isoformat(),
    }


def _client_names(signatures: list[DifferenceSignature]) -> dict[int, list[str]]:
    """Signature id -> the names of its clients, from the link rows and each client loaded once
    (a prefetch would build a client object per link: thousands of signatures times their clients)."""
    links = list(
        DifferenceSignature.clients.through.objects.filter(
            differencesignature_id__in=[signature.pk for signature in signatures]
        ).values_list("differencesignature_id", "client_id")
    )
    clients = Client.objects.in_bulk({client_id for _, client_id in links})
    names: dict[int, list[str]] = {}
    for signature_id, client_id in links:
        names.setdefault(signature_id, []).append(clients[client_id].display_name)
    return names


def _difference(
    signature: DifferenceSignature, acknowledgement: Acknowledgement | None, clients: list[str]
) -> dict:
    rule = signature.explained_by  # a changelog rule, or a model rule ("model:<key>")
    return {
        "signature": signature.signature,
        "kind": signature.kind,
        "path": signature.path,
        "endpoint": signature.endpoint,
        "classification": signature.classification,
        "rule": rule.ref if rule else None,
        "rule_title": rule.title if rule else None,
        "explained": rule is not None,
        "acknowledged": acknowledgement is not None,
        "acknowledgement": _acknowledgement(acknowledgement),
        "count": signature.count,
        "exchanges": signature.exchanges,
        "share": round(signature.share, 4) if signature.share is not None else None,
        "example_exchange": signature.example_id,
        "clients": sorted(clients)[:50],
    }


def _migration(migration: Migration) -> dict:
    from migrations_audit.tracking.selectors import migration_board

    return {
        "name": migration.name,
        "target_version": migration.target_label,
        "deadline": migration.deadline.isoformat(),
        "status_counts": {
            column.status: len(column.states) for column in migration_board(migration=migration)
        },
    }
