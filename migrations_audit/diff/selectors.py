"""Selectors of the diff stage: what the dashboard reads. Aggregates are precomputed by the
services, so these are indexed lookups, never a rescan of every difference."""

from dataclasses import dataclass, field

from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce

from migrations_audit.model_rules import KEY_PREFIX as MODEL_KEY_PREFIX
from migrations_audit.models import (
    ChangelogRule,
    Client,
    Difference,
    DifferenceSignature,
    Exchange,
    ReplayRun,
    RequestFinding,
    TrafficDay,
    Upstream,
)
from migrations_audit.models.diff import ComparisonTally, ExchangeComparison

from .changes import BREAKING, NOISE

# What explains a difference: a changelog rule or a model rule; neither is "unexplained".
RULES = ("rule", "model_rule")
_UNEXPLAINED = When(rule__isnull=True, model_rule__isnull=True, then=Value(1))


def signatures_for_upstream(
    *,
    upstream: Upstream,
    version_from=None,
    version_to=None,
    include_noise=False,
    run=None,
    client=None,
    classification=None,
):
    """Difference signatures of an upstream, the unexplained first, then the breaking, then the most
    widespread. Each carries `compared` (exchanges compared for its versions and endpoint) and
    `share` (the share of them it affects). `run` keeps the signatures that run's differences
    have, `client` those seen on the client's exchanges, `classification` one class."""
    signatures = DifferenceSignature.objects.filter(upstream=upstream).select_related(*RULES, "example")
    if version_from:
        signatures = signatures.filter(version_from=version_from)
    if version_to:
        signatures = signatures.filter(version_to=version_to)
    if classification:
        signatures = signatures.filter(classification=classification)
    elif not include_noise:
        signatures = signatures.exclude(classification=NOISE)
    if run is not None:
        in_run = Difference.objects.filter(upstream=upstream, run=run).values("signature")
        signatures = signatures.filter(signature__in=in_run)
    if client is not None:
        signatures = signatures.filter(clients=client)
    compared = ComparisonTally.objects.filter(
        upstream=upstream,
        version_from=OuterRef("version_from"),
        version_to=OuterRef("version_to"),
        endpoint=OuterRef("endpoint"),
    ).values("exchanges")[:1]
    return (
        signatures.filter(exchanges__gt=0)
        .annotate(
            compared=Coalesce(Subquery(compared, output_field=IntegerField()), Value(0)),
            unexplained=Case(_UNEXPLAINED, default=Value(0)),
            breaking=Case(When(classification=BREAKING, then=Value(1)), default=Value(0)),
        )
        .annotate(
            share=Case(
                When(
                    compared__gt=0,
                    then=Cast(F("exchanges"), FloatField()) / Cast(F("compared"), FloatField()),
                ),
                default=Value(None, output_field=FloatField()),
            )
        )
        .order_by("-unexplained", "-breaking", "-exchanges", "kind", "path")
    )


def signatures_for_client(*, client: Client, include_noise: bool = False):
    """The signatures a client's exchanges showed, unexplained and breaking first."""
    signatures = DifferenceSignature.objects.filter(clients=client).select_related(*RULES, "example")
    if not include_noise:
        signatures = signatures.exclude(classification=NOISE)
    return signatures.annotate(
        unexplained=Case(_UNEXPLAINED, default=Value(0)),
        breaking=Case(When(classification=BREAKING, then=Value(1)), default=Value(0)),
    ).order_by("-unexplained", "-breaking", "-exchanges", "kind", "path")


def differences_for_run(*, run: ReplayRun, include_noise: bool = False):
    """A run's differences, for its report: breaking and unexplained first."""
    differences = Difference.objects.filter(run=run).select_related(*RULES, "exchange")
    if not include_noise:
        differences = differences.exclude(classification=NOISE)
    return differences.annotate(unexplained=Case(_UNEXPLAINED, default=Value(0))).order_by(
        "-unexplained", "classification", "exchange_id", "version_from", "version_to", "path"
    )


def comparisons_for_run(*, run: ReplayRun):
    """One row per exchange and version pair compared in a run (even when nothing differed), with
    its counts of breaking and unexplained differences."""
    return (
        ExchangeComparison.objects.filter(run=run)
        .select_related("exchange")
        .order_by("exchange_id", "version_from")
    )


def differences_for_exchange(*, exchange: Exchange):
    """An exchange's differences, latest run first, breaking and unexplained first within it."""
    return (
        Difference.objects.filter(exchange=exchange)
        .select_related(*RULES, "run")
        .annotate(unexplained=Case(_UNEXPLAINED, default=Value(0)))
        .order_by("-run_id", "version_from", "version_to", "classification", "-unexplained", "path")
    )


@dataclass
class RuleFindings:
    rule: object
    exchanges: int
    clients: int
    confirmed: int
    contradicted: int


@dataclass
class ClientFindings:
    client: object  # None for traffic with no client identity
    exchanges_checked: int
    exchanges_rejected: int

    @property
    def share(self) -> float:
        return self.exchanges_rejected / self.exchanges_checked if self.exchanges_checked else 0.0


@dataclass
class RequestFindingsSummary:
    version: str
    exchanges_checked: int
    exchanges_rejected: int
    rules: list[RuleFindings] = field(default_factory=list)
    clients: list[ClientFindings] = field(default_factory=list)

    @property
    def share(self) -> float:
        """The share of recorded traffic (not sent with `version`) that `version` would reject."""
        return self.exchanges_rejected / self.exchanges_checked if self.exchanges_checked else 0.0


def request_findings_summary(
    *, upstream: Upstream, version: str, per_client: bool = True
) -> RequestFindingsSummary:
    """Which clients, and what share of traffic, `version`'s request rules would reject.

    Totals come from the daily traffic rollup and rejections from the findings, so the cost follows
    the number of findings and clients, not the number of exchanges. `per_client=False` leaves out
    the per-client rows (`clients` empty): three queries over every finding that a page showing the
    totals only does not need."""
    checked = TrafficDay.objects.filter(upstream=upstream).exclude(api_version=version)
    findings = RequestFinding.objects.filter(upstream=upstream, version=version)
    per_rule = (
        findings.values("rule", "model_rule")
        .annotate(
            exchanges=Count("exchange", distinct=True),
            clients=Count("client", distinct=True),
            confirmed_count=Count("exchange", filter=Q(confirmed=True), distinct=True),
            contradicted_count=Count("exchange", filter=Q(confirmed=False), distinct=True),
        )
        .order_by("-exchanges")
    )
    rules = _finding_rules(upstream, per_rule)
    rejected_by_client = (
        {
            row["client"]: row["rejected"]
            for row in findings.values("client").annotate(rejected=Count("exchange", distinct=True))
        }
        if per_client
        else {}
    )
    totals = (
        {
            row["client"]: row["total"]
            for row in checked.filter(client__in=[c for c in rejected_by_client if c is not None])
            .values("client")
            .annotate(total=Sum("count"))
        }
        if rejected_by_client
        else {}
    )
    clients = (
        {client.pk: client for client in upstream.clients.filter(pk__in=list(rejected_by_client))}
        if rejected_by_client
        else {}
    )
    per_client = sorted(rejected_by_client.items(), key=lambda item: -item[1])
    return RequestFindingsSummary(
        version=version,
        exchanges_checked=checked.aggregate(n=Sum("count"))["n"] or 0,
        exchanges_rejected=findings.values("exchange").distinct().count(),
        rules=[
            RuleFindings(
                rule=rules[(row["rule"], row["model_rule"])],
                exchanges=row["exchanges"],
                clients=row["clients"],
                confirmed=row["confirmed_count"],
                contradicted=row["contradicted_count"],
            )
            for row in per_rule
        ],
        clients=[
            ClientFindings(
                client=clients.get(client_id),
                exchanges_checked=max(totals.get(client_id, 0), rejected),
                exchanges_rejected=rejected,
            )
            for client_id, rejected in per_client
        ],
    )


def request_findings_by_client(*, upstream: Upstream, version: str) -> list[dict]:
    """(rule, client, exchanges) rows of the requests `version` rejects: what the release gate
    counts and what an acknowledgement covers (a request finding is acknowledged per client).
    Grouped by ids alone (rules are looked up apart): joining each finding to its rule cost more
    than the count itself."""
    rows = list(
        RequestFinding.objects.filter(upstream=upstream, version=version)
        .values("rule_id", "model_rule_id", "client_id")
        .annotate(exchanges=Count("exchange", distinct=True))
        .order_by()
    )
    rules = _finding_rules(upstream, [{"rule": r["rule_id"], "model_rule": r["model_rule_id"]} for r in rows])
    for row in rows:
        rule = rules[(row["rule_id"], row["model_rule_id"])]
        row["rule__key"], row["rule__title"] = rule.ref, rule.title
    return sorted(rows, key=lambda row: (row["rule__key"], row["client_id"] or 0))


def _finding_rules(upstream: Upstream, rows) -> dict[tuple, object]:
    """(rule id, model rule id) -> the changelog rule or model rule of findings grouped by both."""
    changelog = upstream.changelog_rules.in_bulk([row["rule"] for row in rows if row["rule"]])
    model = upstream.model_rules.in_bulk([row["model_rule"] for row in rows if row["model_rule"]])
    return {
        (row["rule"], row["model_rule"]): changelog[row["rule"]] if row["rule"] else model[row["model_rule"]]
        for row in rows
    }


# What tracking reads of the diff stage (tracking/verdicts.py): its verdicts come from these, never
# from the diff's tables directly.


def breaking_signatures(*, upstream: Upstream) -> list[DifferenceSignature]:
    """The upstream's breaking difference signatures, with their rule."""
    return list(
        DifferenceSignature.objects.filter(upstream=upstream, classification=BREAKING).select_related(
            "rule", "model_rule"
        )
    )


def breaking_rules(*, upstream: Upstream) -> list[ChangelogRule]:
    return list(ChangelogRule.objects.filter(upstream=upstream, classification=BREAKING, enabled=True))


def breaking_version_pairs(*, upstream: Upstream) -> set[tuple[str, str]]:
    """The (version_from, version_to) pairs some breaking difference was seen between."""
    return set(
        DifferenceSignature.objects.filter(upstream=upstream, classification=BREAKING, exchanges__gt=0)
        .values_list("version_from", "version_to")
        .distinct()
    )


def _standing_findings(*, upstream: Upstream, version: str = "", client_ids=None):
    """Request findings on clients' requests that no replay contradicted."""
    findings = RequestFinding.objects.filter(upstream=upstream, client__isnull=False).exclude(confirmed=False)
    if version:
        findings = findings.filter(version=version)
    if client_ids is not None:
        findings = findings.filter(client_id__in=client_ids)
    return findings


def request_findings_per_client(*, upstream: Upstream, version: str = "", client_ids=None):
    """Per client, rule (changelog or model rule), model, version and field: the standing findings'
    exchanges and the latest of them."""
    findings = _standing_findings(upstream=upstream, version=version, client_ids=client_ids)
    return findings.values(
        "client_id",
        "rule__key",
        "rule__title",
        "model_rule__key",
        "model_rule__title",
        "model",
        "version",
        "field",
    ).annotate(exchanges=Count("exchange", distinct=True), last=Max("exchange_id"))


def finding_of_rule(key: str) -> Q:
    """The findings of the rule a card key names (a changelog rule's key, or "model:<key>")."""
    if key.startswith(MODEL_KEY_PREFIX):
        return Q(model_rule__key=key.removeprefix(MODEL_KEY_PREFIX))
    return Q(rule__key=key)


def request_finding_examples(
    *, upstream: Upstream, client_id: int, rule_key: str, versions: list[str], limit: int
) -> list[int]:
    """The latest exchanges of a client flagged by a rule under these versions."""
    findings = _standing_findings(upstream=upstream, client_ids=[client_id])
    return list(
        findings.filter(finding_of_rule(rule_key), version__in=versions)
        .order_by("-exchange_id")
        .values_list("exchange_id", flat=True)
        .distinct()[:limit]
    )


def request_rejections_per_client(
    *, upstream: Upstream, version: str, client_ids: list[int]
) -> dict[int, int]:
    """How many of each client's exchanges the request check rejects under `version`."""
    rows = _standing_findings(upstream=upstream, version=version, client_ids=client_ids)
    return dict(
        rows.values("client_id").annotate(n=Count("exchange", distinct=True)).values_list("client_id", "n")
    )


def signature_clients(*, signature_ids: list[int], client_ids=None) -> list[tuple[int, int]]:
    """(client_id, signature_id) for each client whose exchanges showed one of these signatures."""
    seen = DifferenceSignature.clients.through.objects.filter(differencesignature_id__in=signature_ids)
    if client_ids is not None:
        seen = seen.filter(client_id__in=client_ids)
    return list(seen.values_list("client_id", "differencesignature_id"))


def signature_examples(
    *, upstream: Upstream, signature: str, client_ids, limit: int
) -> list[tuple[int, int]]:
    """(client_id, exchange_id) of these clients' exchanges that show a signature, the latest first,
    at most `limit`."""
    rows = (
        Difference.objects.filter(upstream=upstream, signature=signature, exchange__client_id__in=client_ids)
        .values_list("exchange__client_id", "exchange_id")
        .order_by("-exchange_id")
        .distinct()
    )
    return list(rows[:limit])
