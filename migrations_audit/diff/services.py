"""Services of the diff stage: everything it writes.

Capture calls request_findings_record after storing a batch; replay's task calls
exchange_diff_record once every result of one exchange in a run is finished.
"""

import hashlib
from itertools import pairwise

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from migrations_audit.models import (
    ChangelogRule,
    Difference,
    DifferenceSignature,
    Exchange,
    ReplayResult,
    ReplayRun,
    RequestFinding,
    Upstream,
)
from migrations_audit.models.diff import ComparisonTally, ExchangeComparison

from .changes import BREAKING, NOISE, Change
from .compare import ResponseSnapshot, compare_responses, error_field
from .noise import NoiseModel, path_pattern
from .request_check import is_dated_version, request_violations
from .rules import changes_explain, fields_related, ruleset_load


def changelog_rules_install(
    *, upstream: Upstream, ruleset: str = "anthropic", overwrite: bool = False
) -> int:
    """Load a shipped ruleset into the upstream's ChangelogRule rows; returns how many were written.

    Idempotent. Rules already there are left as the admin edited them unless `overwrite`."""
    written = 0
    for spec in ruleset_load(ruleset):
        values = {
            "version_from": spec.version_from,
            "version_to": spec.version_to,
            "title": spec.title,
            "explanation": spec.explanation,
            "classification": spec.classification,
            "match": spec.match,
            "documentation_url": spec.documentation_url,
        }
        if overwrite:
            ChangelogRule.objects.update_or_create(upstream=upstream, key=spec.key, defaults=values)
            written += 1
        else:
            _, created = ChangelogRule.objects.get_or_create(upstream=upstream, key=spec.key, defaults=values)
            written += created
    return written


def snapshot_from_exchange(exchange: Exchange) -> ResponseSnapshot:
    return ResponseSnapshot(
        status=exchange.status,
        headers=exchange.response_headers or {},
        body=bytes(exchange.response_body or b""),
        streamed=exchange.streamed,
        events=exchange.response_events or None,
        error=exchange.error,
    )


def snapshot_from_result(result: ReplayResult) -> ResponseSnapshot:
    return ResponseSnapshot(
        status=result.status,
        headers=result.response_headers or {},
        body=bytes(result.response_body or b""),
        streamed=result.streamed,
        events=result.response_events or None,
        error=result.error,
    )


def request_findings_record(*, exchanges: list[Exchange]) -> None:
    """Check each exchange against its upstream's target-version request rules; store what breaks.

    One query for the rules of each upstream in the batch and one insert, whatever its size."""
    by_upstream: dict[int, list[Exchange]] = {}
    for exchange in exchanges:
        by_upstream.setdefault(exchange.upstream_id, []).append(exchange)
    findings = []
    for upstream in Upstream.objects.filter(pk__in=by_upstream):
        target = upstream.target_version
        if not target:
            continue
        rules = [
            rule for rule in ChangelogRule.objects.filter(upstream=upstream) if rule.match.get("request")
        ]
        if not rules:
            continue
        rules_by_key = {rule.key: rule for rule in rules}
        for exchange in by_upstream[upstream.pk]:
            if exchange.api_version == target:
                continue  # already sent under the target: its own response says how it fares
            violations = request_violations(
                upstream_rules=rules,
                version=target,
                method=exchange.method,
                path=exchange.path,
                body=bytes(exchange.request_body or b""),
            )
            for violation in violations:
                findings.append(
                    RequestFinding(
                        upstream=upstream,
                        exchange=exchange,
                        client_id=exchange.client_id,
                        version=target,
                        rule=rules_by_key[violation.rule_key],
                        field=violation.field[:200],
                        message=violation.message[:500],
                    )
                )
    if findings:
        RequestFinding.objects.bulk_create(findings, ignore_conflicts=True)


def exchange_diff_record(*, run_id: int, exchange_id: int) -> None:
    """Diff one exchange's responses in a run, version pair by version pair, and store the result.

    Pairs: consecutive versions in the run's order, plus the upstream's baseline -> target. A
    version the run did not replay but the exchange was recorded under uses the recorded response.
    Noise comes from the run's repeats (attempt >= 2) of this exchange, known volatile patterns and
    the upstream's volatile headers. Safe to call again: the run's differences for this exchange are
    replaced, and the aggregates adjusted by the difference.
    """
    run = ReplayRun.objects.select_related("upstream").get(pk=run_id)
    exchange = Exchange.objects.select_related("client").get(pk=exchange_id)
    upstream = run.upstream
    results = ReplayResult.objects.filter(run=run, exchange=exchange, state=ReplayResult.Status.DONE)
    primary: dict[str, ResponseSnapshot] = {}
    repeats: dict[str, list[ResponseSnapshot]] = {}
    for result in results.order_by("attempt"):
        snapshot = snapshot_from_result(result)
        if result.attempt == 1:
            primary[result.version] = snapshot
        else:
            repeats.setdefault(result.version, []).append(snapshot)
    replayed = set(primary)
    if exchange.api_version and exchange.api_version not in primary and exchange.status is not None:
        primary[exchange.api_version] = snapshot_from_exchange(exchange)

    # Noise, Diffy-style: the same version called twice. This exchange's own repeats, plus what
    # the repeats of other exchanges of the endpoint already showed varying (recorded as v -> v
    # comparisons), so that the exchanges outside the sample benefit too.
    noise = NoiseModel.for_upstream(volatile_headers=upstream.volatile_headers)
    noise.varying.update(
        _noise_known(upstream_id=upstream.pk, endpoint=exchange.endpoint, versions=list(primary))
    )
    compared: list[tuple[str, str, list[Change]]] = []
    for version, many in repeats.items():
        if version not in primary:
            continue
        samples = [compare_responses(primary[version], again) for again in many]
        noise.learn(samples)
        varied: dict[tuple[str, str], Change] = {}
        for change in (change for sample in samples for change in sample):
            change.classification = NOISE
            change.noise_rate = noise.varying.get((change.kind, path_pattern(change.path)))
            varied.setdefault((change.kind, change.path), change)
        compared.append((version, version, list(varied.values())))

    rules = list(ChangelogRule.objects.filter(upstream=upstream))
    request_body = bytes(exchange.request_body or b"")
    for version_from, version_to in _version_pairs(run, upstream, primary):
        changes = compare_responses(primary[version_from], primary[version_to], noise=noise)
        changes = changes_explain(
            changes,
            rules=rules,
            version_from=version_from,
            version_to=version_to,
            endpoint=exchange.endpoint,
            request_body=request_body,
        )
        compared.append((version_from, version_to, changes))

    with transaction.atomic():
        _differences_replace(run=run, exchange=exchange, compared=compared, rules=rules, replayed=replayed)
        _findings_settle(exchange=exchange, outcomes={v: primary[v] for v in replayed})


def _noise_known(*, upstream_id: int, endpoint: str, versions: list[str]) -> dict[tuple[str, str], float]:
    """(kind, path pattern) -> share of repeats where it varied, for these versions and endpoint."""
    repeats = ComparisonTally.objects.filter(
        upstream_id=upstream_id, endpoint=endpoint, version_from__in=versions, version_to=F("version_from")
    )
    samples = {tally.version_from: tally.exchanges for tally in repeats}
    varying: dict[tuple[str, str], float] = {}
    signatures = DifferenceSignature.objects.filter(
        upstream_id=upstream_id, endpoint=endpoint, version_from__in=versions, version_to=F("version_from")
    ).values_list("version_from", "kind", "path", "exchanges")
    for version, kind, path, exchanges in signatures:
        if samples.get(version) and exchanges > 0:
            rate = min(1.0, exchanges / samples[version])
            varying[(kind, path)] = max(varying.get((kind, path), 0.0), rate)
    return varying


def _version_pairs(run: ReplayRun, upstream: Upstream, available: dict) -> list[tuple[str, str]]:
    order = [v for v in run.versions if v in available]
    recorded_only = [v for v in available if v not in order]
    if recorded_only:
        # The version the client itself used, not replayed: dated versions find their place in
        # time, others come first (the client's own, compared with what it would get).
        order = recorded_only + order
        if all(is_dated_version(v) for v in order):
            order.sort()
    pairs = list(pairwise(order))
    baseline, target = upstream.baseline_version, upstream.target_version
    if (
        baseline in available
        and target in available
        and baseline != target
        and (baseline, target) not in pairs
    ):
        pairs.append((baseline, target))
    return pairs


def signature_of(*, version_from: str, version_to: str, endpoint: str, kind: str, path: str, rule_key) -> str:
    text = "\x1f".join((version_from, version_to, endpoint, kind, path, rule_key or ""))
    return hashlib.sha256(text.encode()).hexdigest()


def _differences_replace(*, run, exchange, compared, rules, replayed) -> None:
    upstream_id = run.upstream_id
    old = Difference.objects.filter(run=run, exchange=exchange)
    old_counts: dict[str, int] = {}
    for signature in old.values_list("signature", flat=True):
        old_counts[signature] = old_counts.get(signature, 0) + 1
    for signature, count in old_counts.items():
        DifferenceSignature.objects.filter(upstream_id=upstream_id, signature=signature).update(
            count=F("count") - count, exchanges=F("exchanges") - 1
        )
    old.delete()

    rules_by_key = {rule.key: rule for rule in rules}
    rows = []
    new_counts: dict[str, list] = {}
    for version_from, version_to, changes in compared:
        if version_from == version_to:
            source = "repeat"
        elif {version_from, version_to} <= replayed:
            source = "replay"
        else:
            source = "capture"
        _, created = ExchangeComparison.objects.update_or_create(
            run=run,
            exchange=exchange,
            version_from=version_from,
            version_to=version_to,
            defaults={
                "upstream_id": upstream_id,
                "endpoint": exchange.endpoint,
                "source": source,
                "breaking": sum(c.classification == BREAKING for c in changes),
                "unexplained": sum(c.classification != NOISE and c.rule_key is None for c in changes),
            },
        )
        if created:
            tally, _ = ComparisonTally.objects.get_or_create(
                upstream_id=upstream_id,
                version_from=version_from,
                version_to=version_to,
                endpoint=exchange.endpoint,
            )
            ComparisonTally.objects.filter(pk=tally.pk).update(exchanges=F("exchanges") + 1)
        for change in changes:
            path = path_pattern(change.path)
            signature = signature_of(
                version_from=version_from,
                version_to=version_to,
                endpoint=exchange.endpoint,
                kind=change.kind,
                path=path,
                rule_key=change.rule_key,
            )
            rows.append(
                Difference(
                    upstream_id=upstream_id,
                    exchange=exchange,
                    run=run,
                    version_from=version_from,
                    version_to=version_to,
                    endpoint=exchange.endpoint,
                    kind=change.kind,
                    path=change.path[:500],
                    before=_storable(change.before),
                    after=_storable(change.after),
                    classification=change.classification,
                    rule=rules_by_key.get(change.rule_key),
                    signature=signature,
                    noise_rate=change.noise_rate,
                )
            )
            entry = new_counts.setdefault(signature, [0, change, version_from, version_to, path])
            entry[0] += 1
    Difference.objects.bulk_create(rows)
    for signature, (count, change, version_from, version_to, path) in new_counts.items():
        aggregate = _signature_get_or_create(
            upstream_id=upstream_id,
            signature=signature,
            defaults={
                "version_from": version_from,
                "version_to": version_to,
                "endpoint": exchange.endpoint,
                "kind": change.kind,
                "path": path[:500],
                "classification": change.classification,
                "rule": rules_by_key.get(change.rule_key),
                "example": exchange,
            },
        )
        updates = {"count": F("count") + count, "exchanges": F("exchanges") + 1}
        if change.noise_rate is not None:
            updates["noise_rate"] = change.noise_rate
        if change.classification == NOISE and aggregate.classification != NOISE:
            # Seen varying between identical calls once: noise from now on, whatever came first.
            updates["classification"] = NOISE
        if aggregate.example_id is None:
            updates["example"] = exchange
        DifferenceSignature.objects.filter(pk=aggregate.pk).update(**updates)
        if exchange.client_id:
            aggregate.clients.add(exchange.client_id)
    _noise_propagate(run=run, exchange=exchange, compared=compared)


def _noise_propagate(*, run, exchange, compared) -> None:
    """What a repeat just showed varying becomes noise in the version pairs recorded before it."""
    for version, same, changes in compared:
        if version != same or not changes:
            continue
        for change in changes:
            signatures = list(
                DifferenceSignature.objects.filter(
                    upstream_id=run.upstream_id,
                    endpoint=exchange.endpoint,
                    kind=change.kind,
                    path=path_pattern(change.path),
                )
                .filter(Q(version_from=version) | Q(version_to=version))
                .exclude(version_from=F("version_to"))
                .values_list("signature", flat=True)
            )
            if signatures:
                DifferenceSignature.objects.filter(
                    upstream_id=run.upstream_id, signature__in=signatures
                ).update(classification=NOISE)
                # The signature may have turned noise just now, with this exchange's own pair; the
                # differences recorded before under it have not.
                Difference.objects.filter(upstream_id=run.upstream_id, signature__in=signatures).exclude(
                    classification=NOISE
                ).update(classification=NOISE)


def _signature_get_or_create(*, upstream_id, signature, defaults) -> DifferenceSignature:
    try:
        with transaction.atomic():
            aggregate, _ = DifferenceSignature.objects.get_or_create(
                upstream_id=upstream_id, signature=signature, defaults=defaults
            )
    except IntegrityError:  # another worker created it between our get and create
        aggregate = DifferenceSignature.objects.get(upstream_id=upstream_id, signature=signature)
    return aggregate


def _storable(value):
    """Before/after values as JSON; long texts are cut, a page shows an excerpt anyway."""
    if isinstance(value, str) and len(value) > 2000:
        return value[:2000] + "…"
    return value


def _findings_settle(*, exchange: Exchange, outcomes: dict[str, ResponseSnapshot]) -> None:
    """What the replay answered settles the request check's findings for that version: rejected at
    the finding's field (or with no field named) confirms it, accepted contradicts it."""
    for finding in RequestFinding.objects.filter(exchange=exchange, version__in=list(outcomes)):
        outcome = outcomes[finding.version]
        if outcome.status is None:
            continue
        if outcome.accepted:
            confirmed = False
        else:
            body = outcome.json()
            error = body.get("error") if isinstance(body, dict) else None
            named = error_field(error.get("message")) if isinstance(error, dict) else None
            confirmed = True if named is None or fields_related(named, finding.field) else None
        if finding.confirmed != confirmed:
            finding.confirmed = confirmed
            finding.save(update_fields=["confirmed"])
