"""Services of the diff stage: everything it writes.

Capture queues the request_check task (request_findings_check) once a batch is committed; replay's task calls
exchanges_diff_record once every result of a batch of exchanges in a run is finished.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from migrations_audit.bulk import rows_insert
from migrations_audit.content_encoding import body_decode
from migrations_audit.model_rules import (
    KEY_PREFIX,
    model_matches,
    model_ruleset_load,
    model_violations,
    request_model,
    shape_ruleset_load,
)
from migrations_audit.models import (
    ChangelogRule,
    Difference,
    DifferenceSignature,
    Exchange,
    ModelRule,
    ReplayResult,
    ReplayRun,
    RequestFinding,
    Upstream,
)
from migrations_audit.models.diff import ComparisonTally, ExchangeComparison
from migrations_audit.replay.variants import api_version_of, run_variant

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
        written += _rule_write(
            ChangelogRule, upstream=upstream, key=spec.key, values=values, overwrite=overwrite
        )
    return written


def model_rules_install(*, upstream: Upstream, ruleset: str = "anthropic", overwrite: bool = False) -> int:
    """Load a shipped model ruleset (rulesets/<ruleset>-models.json, which the emulator reads too)
    into the upstream's ModelRule rows; returns how many were written. Idempotent, as
    changelog_rules_install: rules the admin edited stay as they are unless `overwrite`."""
    written = 0
    for spec in model_ruleset_load(ruleset) + shape_ruleset_load(ruleset):
        values = {
            "model_pattern": spec.model_pattern,
            "title": spec.title,
            "explanation": spec.explanation,
            "classification": spec.classification,
            "match": spec.match,
            "error_status": spec.error_status,
            "error_type": spec.error_type,
            "error_message": spec.error_message,
            "documentation_url": spec.documentation_url,
            "source": spec.source,
        }
        written += _rule_write(ModelRule, upstream=upstream, key=spec.key, values=values, overwrite=overwrite)
    return written


def _rule_write(model, *, upstream: Upstream, key: str, values: dict, overwrite: bool) -> int:
    """Store one shipped rule; 1 if written. A rule already there keeps its edits unless `overwrite`."""
    if overwrite:
        model.objects.update_or_create(upstream=upstream, key=key, defaults=values)
        return 1
    _, created = model.objects.get_or_create(upstream=upstream, key=key, defaults=values)
    return int(created)


def snapshot_from_exchange(exchange: Exchange) -> ResponseSnapshot:
    headers = exchange.response_headers or {}
    return ResponseSnapshot(
        status=exchange.status,
        headers=headers,
        body=body_decode(bytes(exchange.response_body or b""), headers).body,
        streamed=exchange.streamed,
        events=exchange.response_events or None,
        error=exchange.error,
    )


def snapshot_from_result(result: ReplayResult) -> ResponseSnapshot:
    headers = result.response_headers or {}
    return ResponseSnapshot(
        status=result.status,
        headers=headers,
        body=body_decode(bytes(result.response_body or b""), headers).body,
        streamed=result.streamed,
        events=result.response_events or None,
        error=result.error,
    )


# What the request check reads of an exchange.
REQUEST_CHECK_FIELDS = ("upstream", "client", "api_version", "method", "path", "request_body")


def request_findings_check(*, exchange_ids: list[int]) -> None:
    """The request check of stored exchanges, by id (the task capture queues after its commit)."""
    exchanges = list(Exchange.objects.filter(pk__in=exchange_ids).only(*REQUEST_CHECK_FIELDS).order_by())
    with transaction.atomic():
        request_findings_record(exchanges=exchanges)


def request_findings_record(*, exchanges: list[Exchange]) -> None:
    """Check each exchange against its upstream's target: the target version's request rules, and
    the model rules of the model it would be sent with (the upstream's target model, or the one
    the request names); store what breaks.

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
            rule
            for rule in ChangelogRule.objects.filter(upstream=upstream, enabled=True)
            if rule.match.get("request")
        ]
        model_rules = list(ModelRule.objects.filter(upstream=upstream, enabled=True))
        if upstream.target_model:  # one model for every request: only its rules, often none to parse for
            model_rules = [r for r in model_rules if model_matches(r.model_pattern, upstream.target_model)]
        for exchange in by_upstream[upstream.pk]:
            findings += _version_findings(upstream, exchange, rules) + _model_findings(
                upstream, exchange, model_rules
            )
    if findings:
        RequestFinding.objects.bulk_create(findings, ignore_conflicts=True)


def _version_findings(upstream: Upstream, exchange: Exchange, rules) -> list[RequestFinding]:
    target = upstream.target_version
    if not rules or exchange.api_version == target:
        return []  # already sent under the target: its own response says how it fares
    rules_by_key = {rule.key: rule for rule in rules}
    violations = request_violations(
        upstream_rules=rules,
        version=target,
        method=exchange.method,
        path=exchange.path,
        body=bytes(exchange.request_body or b""),
    )
    return [
        RequestFinding(
            upstream=upstream,
            exchange=exchange,
            client_id=exchange.client_id,
            version=target,
            rule=rules_by_key[violation.rule_key],
            field=violation.field[:200],
            message=violation.message[:500],
        )
        for violation in violations
    ]


def _model_findings(upstream: Upstream, exchange: Exchange, model_rules) -> list[RequestFinding]:
    """The model rules that the model the request would be sent with (the target model, or its
    own) rejects it by. Recorded under the target version, as what the move to the target meets.
    Not for a request already sent exactly so (target version and model): its own response says."""
    if not model_rules:
        return []
    body = bytes(exchange.request_body or b"")
    target_model = upstream.target_model
    violations = model_violations(
        rules=model_rules, method=exchange.method, path=exchange.path, body=body, model=target_model
    )
    if exchange.api_version == upstream.target_version:
        violations = [v for v in violations if target_model and request_model(body, v.field) != target_model]
    rules_by_key = {rule.key: rule for rule in model_rules}
    return [
        RequestFinding(
            upstream=upstream,
            exchange=exchange,
            client_id=exchange.client_id,
            version=upstream.target_version,
            model_rule=rules_by_key[violation.rule_key],
            model=violation.model[:100],
            field=violation.field[:200],
            message=violation.message[:500],
        )
        for violation in violations
    ]


# An exchange's recorded response: what replay never reads, and the diff only when it compares it.
RECORDED_RESPONSE = ("response_headers", "response_body", "response_events")


@dataclass
class _ExchangeDiff:
    exchange: Exchange
    # (version_from, version_to, changes); version_from == version_to for a repeat's noise.
    compared: list[tuple[str, str, list[Change]]]
    replayed: dict[str, ResponseSnapshot]


def exchanges_diff_record(*, run_id: int, exchange_ids: list[int], held: Iterable[ReplayResult] = ()) -> None:
    """Diff each exchange's responses in a run, version pair by version pair, and store the result.

    Pairs: consecutive versions in the run's order, plus the upstream's baseline -> target. A
    version the run did not replay but the exchange was recorded under uses the recorded response.
    Noise comes from the run's repeats (attempt >= 2) of the exchange, known volatile patterns and
    the upstream's volatile headers. Safe to call again: the run's differences for these exchanges
    are replaced, and the aggregates adjusted by the difference. A batch is written together: the
    aggregates of a signature that many exchanges share are updated once.

    `held`: results the caller has in memory exactly as stored (the worker that just recorded
    them), which are not read back; the others are.
    """
    run = ReplayRun.objects.select_related("upstream").get(pk=run_id)
    # The recorded response is compared only when the run did not replay the recorded version (or
    # its replay failed: then it is loaded on access); most of the time it need not be read at all.
    recorded_replayed = Q(api_version__in=run.versions)
    exchanges = sorted(
        [
            *Exchange.objects.filter(recorded_replayed, pk__in=exchange_ids).defer(*RECORDED_RESPONSE),
            *Exchange.objects.filter(~recorded_replayed, pk__in=exchange_ids),
        ],
        key=lambda exchange: exchange.pk,
    )
    wanted = set(exchange_ids)
    held = [
        result
        for result in held
        if result.run_id == run.pk
        and result.exchange_id in wanted
        and result.state == ReplayResult.Status.DONE
    ]
    done = ReplayResult.objects.filter(
        run=run, exchange_id__in=exchange_ids, state=ReplayResult.Status.DONE
    ).exclude(pk__in=[result.pk for result in held])
    results: dict[int, list[ReplayResult]] = {}
    for result in sorted([*held, *done], key=lambda result: (result.attempt, result.pk)):
        results.setdefault(result.exchange_id, []).append(result)
    rules = _Rules(
        changelog=list(ChangelogRule.objects.filter(upstream=run.upstream, enabled=True)),
        model=list(ModelRule.objects.filter(upstream=run.upstream, enabled=True)),
    )
    known_noise: dict[tuple, dict] = {}
    diffs = [
        _exchange_compare(run, exchange, results.get(exchange.pk, []), rules, known_noise)
        for exchange in exchanges
    ]
    # Inside a caller's transaction (replay's diff claim), part of it: no savepoint to pay for.
    with transaction.atomic(savepoint=False):
        _findings_settle(diffs)
        _differences_replace(run=run, diffs=diffs, rules=rules)


@dataclass
class _Rules:
    """An upstream's changelog rules and model rules, and which one a change's rule_key names."""

    changelog: list
    model: list

    def __post_init__(self):
        self._changelog = {rule.key: rule for rule in self.changelog}
        self._model = {rule.key: rule for rule in self.model}

    def of(self, rule_key: str | None) -> dict:
        """The `rule` / `model_rule` fields of a row explained by `rule_key`."""
        if rule_key and rule_key.startswith(KEY_PREFIX):
            return {"rule": None, "model_rule": self._model.get(rule_key.removeprefix(KEY_PREFIX))}
        return {"rule": self._changelog.get(rule_key), "model_rule": None}


def _request_model(request_body: bytes) -> str:
    try:
        document = json.loads(request_body) if request_body[:1] == b"{" else None
    except (ValueError, RecursionError):
        return ""
    model = document.get("model") if isinstance(document, dict) else None
    return model if isinstance(model, str) else ""


def _exchange_compare(
    run: ReplayRun, exchange: Exchange, results, rules: _Rules, known_noise: dict
) -> _ExchangeDiff:
    upstream = run.upstream
    primary: dict[str, ResponseSnapshot] = {}
    repeats: dict[str, list[ResponseSnapshot]] = {}
    for result in results:
        snapshot = snapshot_from_result(result)
        if result.attempt == 1:
            primary[result.version] = snapshot
        else:
            repeats.setdefault(result.version, []).append(snapshot)
    replayed = dict(primary)
    if (
        exchange.api_version
        and exchange.api_version not in primary
        and exchange.status is not None
        and not exchange.error  # a failed or malformed answer is an error to show, not to compare
        and not exchange.truncated  # only its start was recorded
    ):
        primary[exchange.api_version] = snapshot_from_exchange(exchange)

    # Noise, Diffy-style: the same version called twice. This exchange's own repeats, plus what
    # the repeats of other exchanges of the endpoint already showed varying (recorded as v -> v
    # comparisons), so that the exchanges outside the sample benefit too.
    noise = NoiseModel.for_upstream(volatile_headers=upstream.volatile_headers)
    key = (exchange.endpoint, tuple(sorted(primary)))
    if key not in known_noise:
        known_noise[key] = _noise_known(upstream_id=upstream.pk, endpoint=exchange.endpoint, versions=key[1])
    noise.varying.update(known_noise[key])
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

    request_body = bytes(exchange.request_body or b"")
    recorded_model = _request_model(request_body)
    against_recording = replace(noise, against_recording=True)
    for version_from, version_to in _version_pairs(run, upstream, primary):
        recorded = version_from not in replayed or version_to not in replayed
        pair_noise = against_recording if recorded else noise
        if _models_differ(run, version_from, version_to, recorded_model):
            pair_noise = replace(pair_noise, across_models=True)
        changes = compare_responses(
            primary[version_from], primary[version_to], noise=pair_noise, request_body=request_body
        )
        changes = changes_explain(
            changes,
            rules=rules.changelog,
            # A variant's changelog is its version header's: rules are about versions.
            version_from=api_version_of(run, version_from),
            version_to=api_version_of(run, version_to),
            endpoint=exchange.endpoint,
            request_body=request_body,
            model_rules=rules.model,
            # The model the rejected side was sent with: a variant may map the recorded one.
            model=run_variant(run, version_to).model_for(recorded_model),
        )
        compared.append((version_from, version_to, changes))
    return _ExchangeDiff(exchange=exchange, compared=compared, replayed=replayed)


def _models_differ(run: ReplayRun, version_from: str, version_to: str, recorded_model: str) -> bool:
    """Whether the two sides were sent to different models (a variant may map the recorded one)."""
    if not recorded_model:
        return False
    models = {run_variant(run, label).model_for(recorded_model) for label in (version_from, version_to)}
    return len(models) > 1


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


@dataclass
class _SignatureTally:
    change: Change
    version_from: str
    version_to: str
    endpoint: str
    path: str
    example: Exchange
    count: int = 0
    exchanges: set[int] = field(default_factory=set)
    clients: set[int] = field(default_factory=set)
    noise_rate: float | None = None
    noise: bool = False


def _differences_replace(*, run, diffs: list[_ExchangeDiff], rules) -> None:
    upstream_id = run.upstream_id
    old = Difference.objects.filter(run=run, exchange_id__in=[diff.exchange.pk for diff in diffs])
    old_counts: dict[str, tuple[int, set[int]]] = {}
    for signature, exchange_id in old.values_list("signature", "exchange_id"):
        count, exchanges = old_counts.get(signature, (0, set()))
        old_counts[signature] = (count + 1, exchanges | {exchange_id})
    for signature, (count, exchanges) in old_counts.items():
        DifferenceSignature.objects.filter(upstream_id=upstream_id, signature=signature).update(
            count=F("count") - count, exchanges=F("exchanges") - len(exchanges)
        )
    old.delete()

    rows: list[Difference] = []
    tallies: dict[str, _SignatureTally] = {}
    comparisons: dict[tuple[int, str, str], dict] = {}
    for diff in diffs:
        exchange = diff.exchange
        for version_from, version_to, changes in diff.compared:
            if version_from == version_to:
                source = "repeat"
            elif {version_from, version_to} <= set(diff.replayed):
                source = "replay"
            else:
                source = "capture"
            comparisons[(exchange.pk, version_from, version_to)] = {
                "upstream_id": upstream_id,
                "endpoint": exchange.endpoint,
                "source": source,
                "breaking": sum(c.classification == BREAKING for c in changes),
                "unexplained": sum(c.classification != NOISE and c.rule_key is None for c in changes),
            }
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
                        **rules.of(change.rule_key),
                        signature=signature,
                        noise_rate=change.noise_rate,
                    )
                )
                tally = tallies.setdefault(
                    signature,
                    _SignatureTally(change, version_from, version_to, exchange.endpoint, path, exchange),
                )
                tally.count += 1
                tally.exchanges.add(exchange.pk)
                if exchange.client_id:
                    tally.clients.add(exchange.client_id)
                if change.noise_rate is not None:
                    tally.noise_rate = change.noise_rate
                tally.noise = tally.noise or change.classification == NOISE
    created = _comparisons_write(run=run, comparisons=comparisons)
    rows_insert(Difference, rows)
    # Last, just before the commit: the aggregates are rows every worker updates, locked from the
    # first update to the end of the transaction. Taken in one order (no deadlock between workers).
    _tallies_add(upstream_id=upstream_id, created=created)
    _signatures_add(upstream_id=upstream_id, tallies=tallies, rules=rules, varied=_noise_varied(diffs))


def _comparisons_write(
    *, run, comparisons: dict[tuple[int, str, str], dict]
) -> dict[tuple[str, str, str], int]:
    """One ExchangeComparison per exchange and version pair. Returns how many are new, per version
    pair and endpoint, for the tallies, which count each pair once."""
    existing = {
        (exchange_id, version_from, version_to): pk
        for pk, exchange_id, version_from, version_to in ExchangeComparison.objects.filter(
            run=run, exchange_id__in={key[0] for key in comparisons}
        ).values_list("pk", "exchange_id", "version_from", "version_to")
    }
    created: dict[tuple[str, str, str], int] = {}
    new = []
    for (exchange_id, version_from, version_to), values in comparisons.items():
        pk = existing.get((exchange_id, version_from, version_to))
        if pk is not None:
            ExchangeComparison.objects.filter(pk=pk).update(**values)
            continue
        new.append(
            ExchangeComparison(
                run=run, exchange_id=exchange_id, version_from=version_from, version_to=version_to, **values
            )
        )
        key = (version_from, version_to, values["endpoint"])
        created[key] = created.get(key, 0) + 1
    rows_insert(ExchangeComparison, new)
    return created


def _tallies_add(*, upstream_id: int, created: dict[tuple[str, str, str], int]) -> None:
    for (version_from, version_to, endpoint), count in sorted(created.items()):
        tally, _ = ComparisonTally.objects.get_or_create(
            upstream_id=upstream_id, version_from=version_from, version_to=version_to, endpoint=endpoint
        )
        ComparisonTally.objects.filter(pk=tally.pk).update(exchanges=F("exchanges") + count)


def _signatures_add(
    *, upstream_id: int, tallies: dict[str, _SignatureTally], rules: _Rules, varied: set[tuple]
) -> None:
    """Add a batch's differences to the per-signature aggregates: one update per signature. What the
    batch's repeats showed varying turns the cross-version signatures recorded before it to noise
    (`varied`, see _noise_varied), in the same pass: every aggregate row is locked in one order."""
    if not tallies:
        return
    DifferenceSignature.objects.bulk_create(
        [
            DifferenceSignature(
                upstream_id=upstream_id,
                signature=signature,
                version_from=tally.version_from,
                version_to=tally.version_to,
                endpoint=tally.endpoint,
                kind=tally.change.kind,
                path=tally.path[:500],
                classification=tally.change.classification,
                **rules.of(tally.change.rule_key),
                example=tally.example,
            )
            for signature, tally in tallies.items()
        ],
        # Most already exist, and another worker may create the others at the same moment.
        ignore_conflicts=True,
    )
    to_noise = _noise_targets(upstream_id=upstream_id, varied=varied)
    aggregates = (
        DifferenceSignature.objects.filter(upstream_id=upstream_id)
        .filter(Q(signature__in=list(tallies)) | Q(pk__in=list(to_noise)))
        .order_by("pk")
        .select_for_update()
    )
    memberships = []
    propagated = []
    for aggregate in aggregates:
        tally = tallies.get(aggregate.signature)
        if tally is None:
            if aggregate.classification != NOISE:
                propagated.append(aggregate.pk)
            continue
        updates = {"count": F("count") + tally.count, "exchanges": F("exchanges") + len(tally.exchanges)}
        if tally.noise_rate is not None:
            updates["noise_rate"] = tally.noise_rate
        if (tally.noise or aggregate.pk in to_noise) and aggregate.classification != NOISE:
            # Seen varying between identical calls once: noise from now on, whatever came first.
            updates["classification"] = NOISE
        if aggregate.example_id is None:
            updates["example"] = tally.example
        DifferenceSignature.objects.filter(pk=aggregate.pk).update(**updates)
        memberships += [
            DifferenceSignature.clients.through(differencesignature_id=aggregate.pk, client_id=client_id)
            for client_id in tally.clients
        ]
    DifferenceSignature.clients.through.objects.bulk_create(memberships, ignore_conflicts=True)
    if propagated:
        DifferenceSignature.objects.filter(pk__in=propagated).update(classification=NOISE)
    if to_noise:
        # The differences recorded before under those signatures (and this batch's own, classified
        # before the repeat was seen) follow their signature.
        Difference.objects.filter(upstream_id=upstream_id, signature__in=list(to_noise.values())).exclude(
            classification=NOISE
        ).update(classification=NOISE)


def _noise_varied(diffs: list[_ExchangeDiff]) -> set[tuple[str, str, str, str]]:
    """(endpoint, kind, path pattern, version) of every change a batch's repeats showed varying."""
    return {
        (diff.exchange.endpoint, change.kind, path_pattern(change.path), version)
        for diff in diffs
        for version, same, changes in diff.compared
        if version == same
        for change in changes
    }


def _noise_targets(*, upstream_id: int, varied: set[tuple[str, str, str, str]]) -> dict[int, str]:
    """pk -> signature of the cross-version signatures (either side of the pair being a version that
    varied) that what varied makes noise: one query for the whole batch."""
    if not varied:
        return {}
    endpoints, kinds, paths, versions = (sorted(set(column)) for column in zip(*varied, strict=True))
    candidates = (
        DifferenceSignature.objects.filter(
            upstream_id=upstream_id, endpoint__in=endpoints, kind__in=kinds, path__in=paths
        )
        .filter(Q(version_from__in=versions) | Q(version_to__in=versions))
        .exclude(version_from=F("version_to"))
        .values_list("pk", "signature", "endpoint", "kind", "path", "version_from", "version_to")
    )
    return {
        pk: signature
        for pk, signature, endpoint, kind, path, version_from, version_to in candidates
        if (endpoint, kind, path, version_from) in varied or (endpoint, kind, path, version_to) in varied
    }


def _storable(value):
    """Before/after values as JSON; long texts are cut, a page shows an excerpt anyway."""
    if isinstance(value, str) and len(value) > 2000:
        return value[:2000] + "…"
    return value


def _findings_settle(diffs: list[_ExchangeDiff]) -> None:
    """What the replay answered settles the request check's findings for that version: accepted
    contradicts them; rejected confirms each finding when the error names its field, names no field,
    or names the field of another finding of the same request. The API reports only the first fault
    it meets, so a request that breaks two rules is rejected for one of them: the request check
    predicted that rejection too, and the other rule's finding is not left "not replayed yet"."""
    outcomes = {diff.exchange.pk: diff.replayed for diff in diffs}
    bodies = {diff.exchange.pk: bytes(diff.exchange.request_body or b"") for diff in diffs}
    findings = [
        finding
        for finding in RequestFinding.objects.filter(exchange_id__in=list(outcomes))
        # A model rule's finding is settled only by a replay that sent the model it is about
        # (replays send the recorded request's model).
        if finding.model_rule_id is None
        or request_model(bodies[finding.exchange_id], finding.field) == finding.model
    ]
    flagged: dict[tuple[int, str], list[str]] = {}
    for finding in findings:
        flagged.setdefault((finding.exchange_id, finding.version), []).append(finding.field)
    changed = []
    for finding in findings:
        outcome = outcomes[finding.exchange_id].get(finding.version)
        if outcome is None or outcome.status is None:
            continue
        if outcome.accepted:
            confirmed = False
        else:
            body = outcome.json()
            error = body.get("error") if isinstance(body, dict) else None
            named = error_field(error.get("message")) if isinstance(error, dict) else None
            fields = flagged[(finding.exchange_id, finding.version)]
            predicted = named is None or any(fields_related(named, field) for field in fields)
            confirmed = True if predicted else None
        if finding.confirmed != confirmed:
            finding.confirmed = confirmed
            changed.append(finding)
    RequestFinding.objects.bulk_update(changed, ["confirmed"])


def rule_update(
    *, rule: ChangelogRule | ModelRule, user, title: str, explanation: str, classification: str, enabled: bool
) -> ChangelogRule | ModelRule:
    """A team's change to one of its rules, with who made it and when. It counts for the request
    checks and replays that run after it; what is already stored stays as it was found."""
    rule.title = title
    rule.explanation = explanation
    rule.classification = classification
    rule.enabled = enabled
    rule.updated_by = user
    rule.updated_at = timezone.now()
    rule.save(update_fields=["title", "explanation", "classification", "enabled", "updated_by", "updated_at"])
    return rule
