"""Which clients a version change breaks, on their own evidence: the one place that the Overview, the
Clients and client pages, the migration board, the reports and `compat_report` read verdicts from.

A client is **affected** by a rule (or by an unexplained breaking difference) only on evidence from
its own exchanges:
- request: the request check flagged its recorded requests under the target version (findings that
  a replay contradicted do not count);
- replay: a breaking difference seen in replays of its own exchanges, between two versions it goes
  through (it sent the pair's first version, or an older one).

Anything weaker (it uses the feature that changed, other clients' replays show the difference, it
sends a forbidden field under a version the request check does not look at) is returned apart as
**might be affected**, with the reason, and never counts in a verdict, a board status or the gate.
One card per rule (or per signature when no rule explains it): a rule seen both ways is one card.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Sum

from migrations_audit.diff import selectors as diff_selectors
from migrations_audit.diff.request_check import is_dated_version, rule_applies_to_version
from migrations_audit.model_rules import rule_ref
from migrations_audit.models import Client, TrafficDay

from . import traffic as traffic_facts

EXAMPLES = 5
EVIDENCE = {"request": "request check", "replay": "replay", "features": "features"}
STREAM_KINDS = {"stream_framing_changed", "done_marker_removed", "event_type_removed", "text_mode_changed"}


@dataclass(frozen=True)
class Scope:
    """The move judged: to `target`, from `version_from` (a report's version pair), or, without
    `version_from`, through every version pair up to the target (a migration, a client's page)."""

    target: str
    version_from: str = ""

    def covers_pair(self, version_from: str, version_to: str) -> bool:
        if version_from == version_to:
            return False
        if self.version_from:
            return (version_from, version_to) == (self.version_from, self.target)
        if not rule_applies_to_version(version_to, self.target):
            return False
        return (
            not (is_dated_version(version_from) and is_dated_version(version_to)) or version_from < version_to
        )

    def covers_finding(self, version: str) -> bool:
        return version == self.target if self.version_from else rule_applies_to_version(version, self.target)


@dataclass
class ClientVerdict:
    client_id: int
    affected: list[dict] = field(default_factory=list)  # cards: direct evidence, counted
    might: list[dict] = field(default_factory=list)  # cards: weaker evidence with its reason, never counted

    @property
    def is_affected(self) -> bool:
        return bool(self.affected)


def goes_through(versions_sent, version_from: str, version_to: str) -> bool:
    """Whether a client that sent `versions_sent` makes the move version_from -> version_to: it sent
    version_from, or (dated versions) one before it."""
    for version in versions_sent:
        if version == version_to:
            continue
        if version == version_from:
            return True
        if is_dated_version(version) and is_dated_version(version_from) and version < version_from:
            return True
    return False


def card_in_pair(card: dict, version_from: str, version_to: str) -> bool:
    """Whether a card's evidence is about this version pair (a rejection under version_to, or a
    difference replayed between the two)."""
    return [version_from, version_to] in card.get("pairs", []) or version_to in card.get("rejected_under", [])


def clients_in_pair(cards_by_client: dict, version_from: str, version_to: str) -> set:
    """The clients some card of which is about this version pair (keys as given: ids or names)."""
    return {
        client
        for client, cards in cards_by_client.items()
        if any(card_in_pair(card, version_from, version_to) for card in cards)
    }


def client_verdicts(
    *,
    upstream,
    target_version: str,
    version_from: str = "",
    client_ids: list[int] | None = None,
    facts: dict[int, "traffic_facts.ClientTraffic"] | None = None,
    examples: bool = False,
) -> dict[int, ClientVerdict]:
    """The verdict on each client of the upstream (or of `client_ids`) for the move in `Scope`.

    Only clients with a card are returned. `facts` (tracking.traffic.clients_traffic) adds the
    "might be affected" cards of those clients; `examples` reads up to five of the client's own
    exchanges per card (otherwise only the latest flagged request of each field)."""
    scope = Scope(target=target_version, version_from=version_from)
    if not target_version:
        return {}
    sent = versions_sent(upstream=upstream, client_ids=client_ids)
    verdicts: dict[int, ClientVerdict] = {}
    cards: dict[int, dict[str, dict]] = defaultdict(dict)
    _request_cards(upstream, scope, client_ids, cards, examples=examples)
    signatures = [
        signature
        for signature in diff_selectors.breaking_signatures(upstream=upstream)
        if scope.covers_pair(signature.version_from, signature.version_to)
    ]
    _replay_cards(upstream, signatures, sent, client_ids, cards, examples=examples)
    for client_id, by_key in cards.items():
        verdicts[client_id] = ClientVerdict(client_id, affected=sorted(by_key.values(), key=_order))
    request_rules = diff_selectors.breaking_rules(upstream=upstream) if facts else []
    for client_id, client_facts in (facts or {}).items():
        known = {card["key"] for card in verdicts.get(client_id, ClientVerdict(client_id)).affected}
        sent_by_client = sent.get(client_id, set())
        might = _might_cards(scope, signatures, request_rules, client_facts, sent_by_client, known)
        if might:
            verdicts.setdefault(client_id, ClientVerdict(client_id)).might = might
    return verdicts


def versions_sent(*, upstream, client_ids: list[int] | None = None) -> dict[int, set[str]]:
    """The versions each client sent, from the daily traffic rollup."""
    rows = TrafficDay.objects.filter(upstream=upstream, client__isnull=False)
    if client_ids is not None:
        rows = rows.filter(client_id__in=client_ids)
    sent: dict[int, set[str]] = defaultdict(set)
    for client_id, version in rows.values_list("client_id", "api_version").distinct():
        sent[client_id].add(version)
    return sent


def _order(card: dict) -> tuple:
    return (card["title"].lower(), card["key"])


def _card(key: str, title: str, *, endpoint: str = "") -> dict:
    return {
        "key": key,
        "title": title,
        "direct": True,
        "sources": [],
        "why": "",
        "endpoint": endpoint,
        "exchange_ids": [],
        "count": 0,
        "pairs": [],
        "rejected_under": [],
    }


def _request_cards(upstream, scope: Scope, client_ids, cards, *, examples: bool) -> None:
    """Findings of the request check on each client's own requests (not contradicted by a replay)."""
    rows = diff_selectors.request_findings_per_client(
        upstream=upstream,
        version=scope.target if scope.version_from else "",  # a pair's: only its target's findings
        client_ids=client_ids,
    )
    details: dict[tuple[int, str], dict] = {}
    for row in rows:
        if not scope.covers_finding(row["version"]):
            continue
        # A model rule's finding (the model the request would be sent with rejects it) is request
        # check evidence too, keyed apart from the changelog rules.
        key, title = (
            (row["rule__key"], row["rule__title"])
            if row["rule__key"]
            else (rule_ref(row["model_rule__key"]), row["model_rule__title"])
        )
        card = cards[row["client_id"]].setdefault(key, _card(key, title))
        detail = details.setdefault(
            (row["client_id"], key), {"fields": set(), "models": set(), "exchanges": 0}
        )
        detail["fields"].add(row["field"])
        if row["model"]:
            detail["models"].add(row["model"])
        detail["exchanges"] = max(detail["exchanges"], row["exchanges"])
        if "request" not in card["sources"]:
            card["sources"].append("request")
        if row["version"] not in card["rejected_under"]:
            card["rejected_under"].append(row["version"])
        card["exchange_ids"] = sorted({*card["exchange_ids"], row["last"]}, reverse=True)[:EXAMPLES]
    for (client_id, key), detail in details.items():
        card = cards[client_id][key]
        card["count"] += detail["exchanges"]
        under = ", ".join(card["rejected_under"])
        fields = ", ".join(sorted(detail["fields"]))
        if detail["models"]:
            by = ", ".join(sorted(detail["models"]))
            why = f"its recorded requests would be rejected by {by} under {under} ({fields})"
        else:
            why = f"its recorded requests are rejected under {under} ({fields})"
        card["why"] = _join(card["why"], why)
        if examples:
            card["exchange_ids"] = diff_selectors.request_finding_examples(
                upstream=upstream,
                client_id=client_id,
                rule_key=key,
                versions=card["rejected_under"],
                limit=EXAMPLES,
            )


def _replay_cards(upstream, signatures, sent, client_ids, cards, *, examples: bool) -> None:
    """Breaking differences seen in replays of each client's own exchanges, for pairs it goes through."""
    by_id = {signature.pk: signature for signature in signatures}
    seen = diff_selectors.signature_clients(signature_ids=list(by_id), client_ids=client_ids)
    hits = [
        (client_id, by_id[signature_id])
        for client_id, signature_id in seen
        if goes_through(
            sent.get(client_id, ()), by_id[signature_id].version_from, by_id[signature_id].version_to
        )
    ]
    example_ids = _replay_examples(upstream, hits) if examples else {}
    for client_id, signature in sorted(hits, key=lambda hit: (hit[0], hit[1].pk)):
        key, title = _signature_key(signature)
        card = cards[client_id].setdefault(key, _card(key, title, endpoint=signature.endpoint))
        card["endpoint"] = card["endpoint"] or signature.endpoint
        if "replay" not in card["sources"]:
            card["sources"].append("replay")
        pair = [signature.version_from, signature.version_to]
        if pair not in card["pairs"]:
            card["pairs"].append(pair)
        ids = example_ids.get((client_id, signature.signature), [])  # the client's own, never another's
        card["exchange_ids"] = sorted({*card["exchange_ids"], *ids}, reverse=True)[:EXAMPLES]
    for by_key in cards.values():
        for card in by_key.values():
            if card["pairs"]:
                pairs = ", ".join(
                    f"{version_from} → {version_to}" for version_from, version_to in card["pairs"]
                )
                card["why"] = _join(card["why"], f"replays of its own exchanges show it ({pairs})")


def _replay_examples(upstream, hits) -> dict[tuple[int, str], list[int]]:
    """Up to five exchanges of the client that show each signature: one query per signature."""
    found: dict[tuple[int, str], list[int]] = {}
    by_signature: dict[str, set[int]] = defaultdict(set)
    for client_id, signature in hits:
        by_signature[signature.signature].add(client_id)
    for signature, client_ids in by_signature.items():
        rows = diff_selectors.signature_examples(
            upstream=upstream, signature=signature, client_ids=client_ids, limit=EXAMPLES * len(client_ids)
        )
        for client_id, exchange_id in rows:
            found.setdefault((client_id, signature), [])
            if len(found[(client_id, signature)]) < EXAMPLES:
                found[(client_id, signature)].append(exchange_id)
    return found


def _signature_key(signature) -> tuple[str, str]:
    rule = signature.explained_by  # a changelog rule, or a model rule (keyed "model:<key>")
    if rule is not None:
        return rule.ref, rule.title
    return signature.signature[:12], f"{signature.kind} at {signature.path}"


def _join(before: str, after: str) -> str:
    return f"{before}; {after}" if before else after


# Might be affected: what the client's features suggest, never counted.


def _might_cards(scope, signatures, rules, facts, sent, known: set[str]) -> list[dict]:
    cards: dict[str, dict] = {}
    for signature in signatures:
        key, title = _signature_key(signature)
        if key in known or signature.kind == "outcome_changed":
            continue  # a request rule's rejection depends on what is sent: see the request rules below
        if not goes_through(sent, signature.version_from, signature.version_to):
            continue
        reason = _feature_reason(signature, facts)
        if reason is None:
            continue
        why, exchange_ids = reason
        card = cards.setdefault(key, _card(key, title, endpoint=signature.endpoint))
        card["direct"] = False
        card["sources"] = ["features"]
        if why not in card["why"]:
            card["why"] = _join(card["why"], why)
        pair = [signature.version_from, signature.version_to]
        if pair not in card["pairs"]:
            card["pairs"].append(pair)
        card["exchange_ids"] = sorted({*card["exchange_ids"], *exchange_ids}, reverse=True)[:EXAMPLES]
    for rule in rules:
        check = (rule.match or {}).get("request") or {}
        forbidden = check.get("forbid_fields") or []
        if (
            not forbidden
            or rule.key in known
            or rule.key in cards
            or not scope.covers_finding(rule.version_to)
        ):
            continue
        endpoints = [endpoint.split(" ", 1)[-1] for endpoint in check.get("endpoints") or []]
        sent_fields = {
            (endpoint, param): ids
            for endpoint, by_param in facts.sampling.items()
            if not endpoints or endpoint.split(" ", 1)[-1] in endpoints
            for param, ids in by_param.items()
            if param in forbidden
        }
        if not sent_fields:
            continue
        params = ", ".join(sorted({param for _, param in sent_fields}))
        endpoint = ", ".join(sorted({endpoint for endpoint, _ in sent_fields}))
        card = _card(rule.key, rule.title, endpoint=endpoint)
        card["direct"] = False
        card["sources"] = ["features"]
        card["why"] = (
            f"it sends {params} on {endpoint}, but none of its requests checked under {scope.target} "
            "was flagged (a request already sent under the target is not checked)"
        )
        card["exchange_ids"] = sorted({i for ids in sent_fields.values() for i in ids}, reverse=True)[
            :EXAMPLES
        ]
        cards[rule.key] = card
    return sorted(cards.values(), key=_order)


def _feature_reason(signature, facts) -> tuple[str, list[int]] | None:
    """Why a difference seen on other clients' exchanges may reach this one, from what it uses."""
    endpoint = signature.endpoint
    if endpoint and not any(ep == endpoint for ep, _ in facts.usage):
        return None
    where = endpoint or "this API"
    others = f"replays of other clients' exchanges show it, and this client {{}} {where}"
    if signature.path.startswith("stream:") or signature.kind in STREAM_KINDS:
        if not facts.streams_on(endpoint):
            return None
        return others.format("streams on"), facts.examples_on(endpoint, streamed=True)
    if "tool" in signature.path:
        if endpoint not in facts.tools_endpoints and not (not endpoint and facts.tools_endpoints):
            return None
        return others.format("sends tools on"), facts.tools_endpoints.get(endpoint, [])[:EXAMPLES]
    if signature.path.startswith("/"):
        if not facts.plain_on(endpoint):
            return None
        return others.format("reads non-streamed responses of"), facts.examples_on(endpoint, streamed=False)
    return others.format("calls"), facts.examples_on(endpoint)


# What the Overview and the reports list.


def verdict_pairs(*, upstream) -> list[tuple[str, str]]:
    """The version pairs with evidence to judge: those of breaking differences, and the upstream's
    baseline -> target (the request check's), oldest first."""
    pairs = diff_selectors.breaking_version_pairs(upstream=upstream)
    pairs = {(f, t) for f, t in pairs if f and t and f != t}
    if upstream.baseline_version and upstream.target_version:
        pairs.add((upstream.baseline_version, upstream.target_version))
    return sorted(pairs, key=lambda pair: (pair[1], pair[0]))


@dataclass
class PairVerdicts:
    version_from: str
    version_to: str
    # The affected clients shown (the first OVERVIEW_CLIENTS by name): each with its cards and its
    # kinds of evidence ("request check", "replay"); `count` of them in all.
    clients: list[tuple[Client, list[dict], list[str]]]
    count: int = 0

    @property
    def more(self) -> int:
        return self.count - len(self.clients)


# The overview names this many affected clients per version pair; the Clients page lists them all.
OVERVIEW_CLIENTS = 20


def overview_verdicts(*, upstream) -> dict:
    """Per version pair, the affected clients and why; and how many clients moving to the
    upstream's target would break (affected in a pair that ends at or before it)."""
    pairs = []
    headline: set[int] = set()
    for version_from, version_to in verdict_pairs(upstream=upstream):
        verdicts = client_verdicts(upstream=upstream, target_version=version_to, version_from=version_from)
        affected = {client_id: v.affected for client_id, v in verdicts.items() if v.affected}
        clients = Client.objects.only("pk", "label", "kind", "identity").in_bulk(list(affected))
        shown = sorted(affected, key=lambda client_id: clients[client_id].display_name.lower())
        rows = [
            (
                clients[client_id],
                affected[client_id],
                sorted({EVIDENCE[s] for card in affected[client_id] for s in card["sources"]}),
            )
            for client_id in shown[:OVERVIEW_CLIENTS]
        ]
        pairs.append(PairVerdicts(version_from, version_to, rows, count=len(affected)))
        if upstream.target_version and rule_applies_to_version(version_to, upstream.target_version):
            headline.update(affected)
    return {"pairs": pairs, "clients_breaking": len(headline)}


def clients_affected_report(*, upstream, version_from: str, version_to: str) -> list[dict]:
    """The affected clients of a version pair as a report lists them: who (name, label, fingerprint),
    with what (SDKs with name and version, versions sent), and why (rules, rejected requests)."""
    verdicts = client_verdicts(upstream=upstream, target_version=version_to, version_from=version_from)
    affected = {client_id: verdict.affected for client_id, verdict in verdicts.items() if verdict.affected}
    if not affected:
        return []
    clients = Client.objects.in_bulk(list(affected))
    identity = traffic_facts.clients_identity_facts(client_ids=list(affected))
    checked = dict(
        TrafficDay.objects.filter(upstream=upstream, client_id__in=list(affected))
        .exclude(api_version=version_to)
        .values("client_id")
        .annotate(total=Sum("count"))
        .values_list("client_id", "total")
    )
    rejected = diff_selectors.request_rejections_per_client(
        upstream=upstream, version=version_to, client_ids=list(affected)
    )
    rows = []
    for client_id, cards in affected.items():
        client, facts = clients[client_id], identity[client_id]
        sdks = sorted({era.sdk for era in facts.eras if era.sdk is not None}, key=str)
        rows.append(
            {
                "client": client.display_name,
                "label": client.label,
                "kind": client.kind,
                "fingerprint": client.identity,
                "sdks": [{"name": sdk.name, "version": sdk.version} for sdk in sdks],
                "versions_sent": sorted(facts.versions),
                "rules": [card["key"] for card in cards],
                "evidence": sorted({source for card in cards for source in card["sources"]}),
                "exchanges_checked": max(checked.get(client_id, 0), rejected.get(client_id, 0)),
                "exchanges_rejected": rejected.get(client_id, 0),
            }
        )
    return sorted(rows, key=lambda row: (-row["exchanges_rejected"], row["client"].lower()))
