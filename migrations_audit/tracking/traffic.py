"""Traffic facts: what clients' recorded traffic says about them (versions per day, SDK eras,
features).

Reads stored Exchange rows only, with a few aggregate queries for any number of clients, so that a
refresh of a migration stays cheap. Which changes hit a client is verdicts.py's to say; whether a
version change came with an SDK upgrade, accidental.py's.
"""

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db.models import Count, F, Max, Min, Q, QuerySet, TextField, Value, Window
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, RowNumber, TruncDate

from migrations_audit.models import Exchange

from .sdk import Sdk, sdk_parse

SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
# Request bodies read per client to tell which request features it uses (tools, sampling).
BODY_SAMPLE_SIZE = 50
# Clients whose samples are read in one query: at most this many times BODY_SAMPLE_SIZE bodies at once.
BODY_SAMPLE_CLIENTS = 200
EXAMPLES_PER_FACT = 5
ERROR = Q(status__gte=400) | Q(status__isnull=True)


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


def clients_identity_facts(*, client_ids: list[int]) -> dict[int, ClientTraffic]:
    """Only the versions and SDK eras of each client: what a report says of who it is."""
    traffic = {client_id: ClientTraffic(client_id=client_id) for client_id in client_ids}
    if client_ids:
        exchanges = Exchange.objects.filter(client_id__in=client_ids)
        _collect_versions(traffic, exchanges)
        _collect_eras(traffic, exchanges)
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
    """Tools and sampling parameters live in request bodies: read the latest few of each client, in
    one query per BODY_SAMPLE_CLIENTS clients."""
    client_ids = list(traffic)
    for start in range(0, len(client_ids), BODY_SAMPLE_CLIENTS):
        sample = (
            exchanges.filter(client_id__in=client_ids[start : start + BODY_SAMPLE_CLIENTS], method="POST")
            .annotate(
                recency=Window(
                    RowNumber(),
                    partition_by=F("client_id"),
                    order_by=[F("started_at").desc(), F("id").desc()],
                )
            )
            .filter(recency__lte=BODY_SAMPLE_SIZE)
            .order_by("client_id", "-started_at", "-id")
            .values_list("client_id", "id", "endpoint", "request_body")
        )
        for client_id, exchange_id, endpoint, body in sample:
            facts = traffic[client_id]
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


def models_on_version(*, client_ids: list[int], version: str) -> dict[int, dict[str, dict]]:
    """Per client, the models its requests on `version` name (JSON body `model`), each with
    {"requests", "first_at", "last_at", "example_ids"}. Reads the bodies of that version's requests
    only (a migration's target: little traffic until clients move), one at a time."""
    out: dict[int, dict[str, dict]] = {client_id: {} for client_id in client_ids}
    rows = (
        Exchange.objects.filter(client_id__in=client_ids, api_version=version)
        .values_list("client_id", "id", "started_at", "request_body")
        .iterator(chunk_size=500)
    )
    for client_id, exchange_id, started_at, body in rows:
        info = out[client_id].setdefault(
            _body_model(bytes(body or b"")),
            {"requests": 0, "first_at": started_at, "last_at": started_at, "example_ids": []},
        )
        info["requests"] += 1
        info["first_at"] = min(info["first_at"], started_at)
        if started_at >= info["last_at"]:
            info["last_at"] = started_at
            info["example_ids"] = [exchange_id]
    return out


def versions_with_models(
    versions: dict[str, dict], *, version: str, model: str, models: dict[str, dict]
) -> dict[str, dict]:
    """A client's versions with `version` split by model (`VERSION@MODEL`): what a target variant
    (`version` and `model`) is compared with. A request naming no model (listing models, say)
    contradicts no target and counts with it."""
    out = {label: info for label, info in versions.items() if label != version}
    for named, info in models.items():
        label = f"{version}@{named or model}"
        if label in out:
            known = out[label]
            newer = info if info["last_at"] >= known["last_at"] else known
            info = {
                "requests": known["requests"] + info["requests"],
                "first_at": min(known["first_at"], info["first_at"]),
                "last_at": newer["last_at"],
                "example_ids": newer["example_ids"],
            }
        out[label] = info
    return out


def _body_model(body: bytes) -> str:
    if body[:1] != b"{":
        return ""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    model = document.get("model") if isinstance(document, dict) else None
    return model if isinstance(model, str) else ""
