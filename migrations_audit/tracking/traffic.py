"""What clients' recorded traffic says about them: versions per day, SDK eras, features, impact.

Reads stored Exchange, DifferenceSignature, RequestFinding and ChangelogRule rows only, with a few
aggregate queries for any number of clients, so that a refresh of a migration stays cheap.
"""

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db.models import Count, Max, Min, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, TruncDate

from migrations_audit.models import ChangelogRule, Difference, DifferenceSignature, Exchange, RequestFinding

from .sdk import Sdk, sdk_move, sdk_parse

SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
# Request bodies read per client to tell which request features it uses (tools, sampling).
BODY_SAMPLE_SIZE = 50
EXAMPLES_PER_FACT = 5
STREAM_KINDS = {"stream_framing_changed", "done_marker_removed", "event_type_removed", "text_mode_changed"}
ERROR = Q(status__gte=400) | Q(status__isnull=True)
DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def version_between(version: str, low: str, high: str) -> bool:
    """low <= version <= high for dated versions; otherwise only an exact end matches."""
    if version in (low, high):
        return True
    if all(DATED_VERSION.match(v or "") for v in (version, low, high)):
        return low <= version <= high
    return False


@dataclass
class SdkEra:
    """A stretch of a client's traffic with one SDK release, version and key header."""

    sdk: Sdk | None
    api_version: str
    key_header: str
    requests: int = 0
    errors: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    example_id: int | None = None

    @property
    def sdk_label(self) -> str:
        return str(self.sdk) if self.sdk else "unknown"


@dataclass
class ClientTraffic:
    """Everything a client's recorded traffic says, gathered for the status and the pages."""

    client_id: int
    days: dict[date, Counter] = field(default_factory=lambda: defaultdict(Counter))
    day_errors: dict[date, int] = field(default_factory=lambda: defaultdict(int))
    # version -> {"requests", "first_at", "last_at", "example_ids"}
    versions: dict[str, dict] = field(default_factory=dict)
    # (endpoint, streamed) -> {"requests", "example_ids"}
    usage: dict[tuple[str, bool], dict] = field(default_factory=dict)
    tools_endpoints: dict[str, list[int]] = field(default_factory=dict)
    sampling: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # endpoint -> param -> ids
    eras: list[SdkEra] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(v["requests"] for v in self.versions.values())

    @property
    def endpoints(self) -> list[str]:
        return sorted({endpoint for endpoint, _ in self.usage})

    def streams_on(self, endpoint: str) -> bool:
        return any(streamed for (ep, streamed) in self.usage if ep == endpoint or not endpoint)

    def plain_on(self, endpoint: str) -> bool:
        return any(not streamed for (ep, streamed) in self.usage if ep == endpoint or not endpoint)

    def examples_on(self, endpoint: str, *, streamed: bool | None = None) -> list[int]:
        ids = []
        for (ep, was_streamed), usage in self.usage.items():
            if (ep == endpoint or not endpoint) and (streamed is None or was_streamed == streamed):
                ids.extend(usage["example_ids"])
        return sorted(ids, reverse=True)[:EXAMPLES_PER_FACT]

    @property
    def sdks(self) -> list[str]:
        return sorted({era.sdk_label for era in self.eras})

    @property
    def features(self) -> list[str]:
        """Short names of what the client uses, for badges: streaming, messages, tools..."""
        found = []
        if any(streamed for _, streamed in self.usage):
            found.append("streaming")
        if any(not streamed for _, streamed in self.usage):
            found.append("non-streaming")
        endpoints = self.endpoints
        if any(ep.endswith("/v1/complete") for ep in endpoints):
            found.append("completions")
        if any(ep.endswith("/v1/messages") for ep in endpoints):
            found.append("messages")
        if self.tools_endpoints:
            found.append("tools")
        params = sorted({param for by_param in self.sampling.values() for param in by_param})
        found.extend(params)
        return found


def clients_traffic(
    *, upstream, client_ids: list[int], since: datetime | None = None
) -> dict[int, ClientTraffic]:
    """The traffic facts of each client, from a handful of aggregate queries over all of them."""
    traffic = {client_id: ClientTraffic(client_id=client_id) for client_id in client_ids}
    if not client_ids:
        return traffic
    # By client only (a client belongs to one upstream): this lets the database use the
    # (client, started_at) index instead of scanning the whole upstream's traffic.
    exchanges = Exchange.objects.filter(client_id__in=client_ids)
    if since is not None:
        exchanges = exchanges.filter(started_at__gte=since)
    _collect_days(traffic, exchanges)
    _collect_versions(traffic, exchanges)
    _collect_usage(traffic, exchanges)
    _collect_eras(traffic, exchanges)
    _collect_body_features(traffic, exchanges)
    return traffic


def _collect_days(traffic, exchanges: QuerySet) -> None:
    rows = (
        exchanges.annotate(day=TruncDate("started_at"))
        .values("client_id", "day", "api_version")
        .annotate(requests=Count("id"), errors=Count("id", filter=ERROR))
    )
    for row in rows:
        facts = traffic[row["client_id"]]
        facts.days[row["day"]][row["api_version"]] += row["requests"]
        facts.day_errors[row["day"]] += row["errors"]


def _collect_versions(traffic, exchanges: QuerySet) -> None:
    rows = exchanges.values("client_id", "api_version").annotate(
        requests=Count("id"), first_at=Min("started_at"), last_at=Max("started_at"), last_id=Max("id")
    )
    for row in rows:
        traffic[row["client_id"]].versions[row["api_version"]] = {
            "requests": row["requests"],
            "first_at": row["first_at"],
            "last_at": row["last_at"],
            "example_ids": [row["last_id"]],
        }


def _collect_usage(traffic, exchanges: QuerySet) -> None:
    rows = exchanges.values("client_id", "endpoint", "streamed").annotate(
        requests=Count("id"), first_id=Min("id"), last_id=Max("id")
    )
    for row in rows:
        traffic[row["client_id"]].usage[(row["endpoint"], row["streamed"])] = {
            "requests": row["requests"],
            "example_ids": sorted({row["first_id"], row["last_id"]}, reverse=True),
        }


def _collect_eras(traffic, exchanges: QuerySet) -> None:
    """Group the traffic by what identifies an SDK release, the version and the key header."""
    rows = (
        exchanges.annotate(
            sdk_header=Coalesce(KT("request_headers__anthropic-sdk"), Value(""), output_field=TextField()),
            stainless_lang=Coalesce(
                KT("request_headers__x-stainless-lang"), Value(""), output_field=TextField()
            ),
            stainless_version=Coalesce(
                KT("request_headers__x-stainless-package-version"), Value(""), output_field=TextField()
            ),
        )
        .values(
            "client_id",
            "api_version",
            "sdk",
            "user_agent",
            "sdk_header",
            "stainless_lang",
            "stainless_version",
        )
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=ERROR),
            first_at=Min("started_at"),
            last_at=Max("started_at"),
            example_id=Max("id"),
            with_x_api_key=Count("id", filter=Q(request_headers__has_key="x-api-key")),
            with_authorization=Count("id", filter=Q(request_headers__has_key="authorization")),
        )
    )
    merged: dict[tuple, SdkEra] = {}
    for row in rows:
        sdk = sdk_parse(
            user_agent=row["user_agent"],
            sdk=row["sdk"],
            headers={
                "anthropic-sdk": row["sdk_header"],
                "x-stainless-lang": row["stainless_lang"],
                "x-stainless-package-version": row["stainless_version"],
            },
        )
        # x-api-key wins when both arrive, as the API reads it.
        if row["with_x_api_key"]:
            key_header = "x-api-key"
        elif row["with_authorization"]:
            key_header = "authorization"
        else:
            key_header = ""
        key = (row["client_id"], sdk, row["api_version"], key_header)
        era = merged.get(key)
        if era is None:
            era = merged[key] = SdkEra(sdk=sdk, api_version=row["api_version"], key_header=key_header)
        era.requests += row["requests"]
        era.errors += row["errors"]
        era.first_at = min(filter(None, (era.first_at, row["first_at"])))
        era.last_at = max(filter(None, (era.last_at, row["last_at"])))
        era.example_id = max(filter(None, (era.example_id, row["example_id"])))
    for (client_id, *_), era in merged.items():
        traffic[client_id].eras.append(era)
    for facts in traffic.values():
        facts.eras.sort(key=lambda era: era.first_at)


def _collect_body_features(traffic, exchanges: QuerySet) -> None:
    """Tools and sampling parameters live in request bodies: read the latest few of each client."""
    for client_id, facts in traffic.items():
        sample = (
            exchanges.filter(client_id=client_id, method="POST")
            .order_by("-started_at", "-id")
            .values_list("id", "endpoint", "request_body")[:BODY_SAMPLE_SIZE]
        )
        for exchange_id, endpoint, body in sample:
            request = _json_object(body)
            if request.get("tools"):
                facts.tools_endpoints.setdefault(endpoint, []).append(exchange_id)
            for param in SAMPLING_PARAMETERS:
                if param in request:
                    facts.sampling.setdefault(endpoint, {}).setdefault(param, []).append(exchange_id)


def _json_object(body) -> dict:
    raw = bytes(body or b"")
    if not raw.lstrip().startswith(b"{"):
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


# Impact: the breaking differences of the upstream that this client's own traffic runs into.


@dataclass
class UpstreamChanges:
    """The upstream's breaking signatures and rules, read once for every client of a refresh."""

    signatures: list[DifferenceSignature]
    # client id -> ids of the signatures seen in replays of that client's own exchanges
    seen_by_client: dict[int, set[int]]
    rules: list[ChangelogRule]


def upstream_changes(*, upstream) -> UpstreamChanges:
    seen_by_client: dict[int, set[int]] = defaultdict(set)
    for client_id, signature_id in DifferenceSignature.clients.through.objects.filter(
        differencesignature__upstream=upstream, differencesignature__classification="breaking"
    ).values_list("client_id", "differencesignature_id"):
        seen_by_client[client_id].add(signature_id)
    return UpstreamChanges(
        signatures=list(
            DifferenceSignature.objects.filter(upstream=upstream, classification="breaking").select_related(
                "rule"
            )
        ),
        seen_by_client=seen_by_client,
        rules=list(ChangelogRule.objects.filter(upstream=upstream, classification="breaking")),
    )


def client_impact(
    *,
    upstream,
    facts: ClientTraffic,
    client_id: int,
    target_version: str,
    from_versions: list[str],
    changes: UpstreamChanges | None = None,
) -> list[dict]:
    """Which breaking changes between the client's versions and the target hit this client, and why.

    Each entry: key, title, source ("difference" or "request"), direct (seen on the client's own
    exchanges) or inferred from the features it uses, why (in words), endpoint, exchange_ids.
    Pass `changes` (upstream_changes) when judging many clients of one upstream.
    """
    changes = changes or upstream_changes(upstream=upstream)
    old_versions = [v for v in facts.versions if v and v != target_version]
    if not old_versions and from_versions:
        # A client already on the target is still hit by what its requests send (a 400 it gets now).
        old_versions = list(from_versions)
    low = min([*from_versions, *old_versions]) if (from_versions or old_versions) else target_version
    impact = []
    impact.extend(_difference_impact(upstream, changes, facts, client_id, target_version, low, old_versions))
    impact.extend(_request_impact(upstream, changes, facts, client_id, target_version, low))
    return impact


def _in_range(version_from: str, version_to: str, low: str, target: str, old_versions: list[str]) -> bool:
    if not version_between(version_to, low, target) or not version_between(version_from, low, target):
        return False
    return any(version_between(version_from, old, target) for old in old_versions) if old_versions else True


def _difference_impact(upstream, changes, facts, client_id, target, low, old_versions) -> list[dict]:
    direct_ids = changes.seen_by_client.get(client_id, set())
    impact = []
    for signature in changes.signatures:
        if not _in_range(signature.version_from, signature.version_to, low, target, old_versions):
            continue
        title = signature.rule.title if signature.rule else f"{signature.kind} at {signature.path}"
        key = signature.rule.key if signature.rule else signature.signature[:12]
        endpoint = signature.endpoint
        if signature.pk in direct_ids:
            exchange_ids = list(
                Difference.objects.filter(
                    upstream=upstream, signature=signature.signature, exchange__client_id=client_id
                )
                .order_by("-exchange_id")
                .values_list("exchange_id", flat=True)
                .distinct()[:EXAMPLES_PER_FACT]
            )
            why = "seen in replays of this client's own exchanges"
            impact.append(_entry(key, title, "difference", True, why, endpoint, exchange_ids, signature))
            continue
        if endpoint and not any(ep == endpoint for ep, _ in facts.usage):
            continue
        is_stream = signature.path.startswith("stream:") or signature.kind in STREAM_KINDS
        if is_stream:
            if not facts.streams_on(endpoint):
                continue
            why = f"streams on {endpoint or 'this API'}"
            exchange_ids = facts.examples_on(endpoint, streamed=True)
        elif "tool" in signature.path:
            if endpoint not in facts.tools_endpoints and not (not endpoint and facts.tools_endpoints):
                continue
            why = f"sends tools on {endpoint}"
            exchange_ids = facts.tools_endpoints.get(endpoint, [])[:EXAMPLES_PER_FACT]
        elif signature.path.startswith("/"):
            if not facts.plain_on(endpoint):
                continue
            why = f"reads non-streamed responses of {endpoint or 'this API'}"
            exchange_ids = facts.examples_on(endpoint, streamed=False)
        else:
            why = f"calls {endpoint or 'this API'}"
            exchange_ids = facts.examples_on(endpoint)
        impact.append(_entry(key, title, "difference", False, why, endpoint, exchange_ids, signature))
    return _dedupe(impact)


def _request_impact(upstream, changes, facts, client_id, target, low) -> list[dict]:
    """Requests the target version rejects: findings on the client's exchanges, else its features."""
    impact = []
    findings = (
        RequestFinding.objects.filter(upstream=upstream, client_id=client_id)
        .values("rule_id", "rule__key", "rule__title", "version", "field")
        .annotate(count=Count("id"), last_exchange=Max("exchange_id"))
    )
    found_rules = {}
    for row in findings:
        if not version_between(row["version"], low, target):
            continue
        entry = found_rules.get(row["rule_id"])
        if entry is None:
            entry = found_rules[row["rule_id"]] = _entry(
                row["rule__key"], row["rule__title"], "request", True, "", "", [], None
            )
            entry["fields"] = []
        entry["fields"].append(row["field"])
        entry["count"] += row["count"]
        entry["exchange_ids"].append(row["last_exchange"])
    for entry in found_rules.values():
        fields = ", ".join(sorted(set(entry.pop("fields"))))
        entry["why"] = f"{entry['count']} recorded request(s) rejected under {target} ({fields})"
        ids = RequestFinding.objects.filter(upstream=upstream, client_id=client_id, rule__key=entry["key"])
        entry["exchange_ids"] = list(
            ids.order_by("-exchange_id").values_list("exchange_id", flat=True).distinct()[:EXAMPLES_PER_FACT]
        )
        impact.append(entry)
    found_keys = {entry["key"] for entry in impact}
    # Request rules without findings yet (the diff stage checks requests at capture): the sampling
    # parameters a client sends are enough to know a rule that forbids them will reject it.
    for rule in changes.rules:
        request_rule = (rule.match or {}).get("request") or {}
        forbidden = request_rule.get("forbid_fields") or []
        if not forbidden or rule.key in found_keys:
            continue
        if not version_between(rule.version_to, low, target):
            continue
        endpoints = request_rule.get("endpoints") or list(facts.sampling)
        sent = {
            (endpoint, param): ids
            for endpoint in endpoints
            for param, ids in facts.sampling.get(endpoint, {}).items()
            if param in forbidden
        }
        if not sent:
            continue
        params = ", ".join(sorted({param for _, param in sent}))
        exchange_ids = sorted({i for ids in sent.values() for i in ids}, reverse=True)[:EXAMPLES_PER_FACT]
        endpoint = ", ".join(sorted({endpoint for endpoint, _ in sent}))
        why = f"sends {params} on {endpoint}"
        impact.append(_entry(rule.key, rule.title, "request", False, why, endpoint, exchange_ids, None))
    return impact


def _entry(key, title, source, direct, why, endpoint, exchange_ids, signature) -> dict:
    return {
        "key": key,
        "title": title,
        "source": source,
        "direct": direct,
        "why": why,
        "endpoint": endpoint,
        "exchange_ids": [i for i in exchange_ids if i is not None],
        "count": signature.count if signature is not None else 0,
        "signature_id": signature.pk if signature is not None else None,
    }


def _dedupe(impact: list[dict]) -> list[dict]:
    """One entry per rule (several signatures of one rule are one change for the client)."""
    by_key: dict[str, dict] = {}
    for entry in impact:
        kept = by_key.get(entry["key"])
        if kept is None:
            by_key[entry["key"]] = entry
            continue
        kept["direct"] = kept["direct"] or entry["direct"]
        kept["count"] += entry["count"]
        kept["exchange_ids"] = sorted(set(kept["exchange_ids"]) | set(entry["exchange_ids"]), reverse=True)[
            :EXAMPLES_PER_FACT
        ]
    return list(by_key.values())


# Accidental migrations: a version change that came with a move to another SDK major.


def accidental_migration(*, facts: ClientTraffic, exchanges: QuerySet) -> dict | None:
    """The latest change of version that came together with a new SDK major, with error rates.

    `exchanges` are the client's exchanges; the error rate is the share of 4xx/5xx (or no response)
    before and after the first request of the new era.
    """
    eras = [era for era in facts.eras if era.sdk is not None and era.sdk.major is not None]
    found = None
    for before in eras:
        for after in eras:
            if (
                after.first_at > before.first_at
                and after.sdk.language == before.sdk.language
                and after.sdk.major != before.sdk.major
                and after.api_version != before.api_version
                and (found is None or after.first_at > found[1].first_at)
            ):
                found = (before, after)
    if found is None:
        return None
    before, after = found
    counts = exchanges.aggregate(
        before=Count("id", filter=Q(started_at__lt=after.first_at)),
        before_errors=Count("id", filter=Q(started_at__lt=after.first_at) & ERROR),
        after=Count("id", filter=Q(started_at__gte=after.first_at)),
        after_errors=Count("id", filter=Q(started_at__gte=after.first_at) & ERROR),
    )
    return {
        "at": after.first_at,
        "sdk_before": str(before.sdk),
        "sdk_after": str(after.sdk),
        "sdk_move": sdk_move(before.sdk, after.sdk),
        "version_before": before.api_version,
        "version_after": after.api_version,
        "key_header_before": before.key_header,
        "key_header_after": after.key_header,
        "requests_before": counts["before"],
        "requests_after": counts["after"],
        "error_rate_before": _rate(counts["before_errors"], counts["before"]),
        "error_rate_after": _rate(counts["after_errors"], counts["after"]),
        "example_before": before.example_id,
        "example_after": after.example_id,
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
