"""Tracking reads: clients and what their traffic says, migrations, boards and burn-downs."""

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from django.core.paginator import Page, Paginator
from django.db.models import Count, F, QuerySet, Window
from django.db.models.functions import RowNumber
from django.http import Http404
from django.utils import timezone

from migrations_audit.models import (
    Client,
    Exchange,
    Migration,
    MigrationClientState,
    Status,
    Team,
    TrafficDay,
    Upstream,
)
from migrations_audit.selectors import upstreams_for_user

from . import traffic as traffic_facts
from .accidental import accidental_migration
from .sdk import sdk_parse
from .verdicts import client_verdicts

# Board columns, in the order a migration moves through them.
BOARD_ORDER = [Status.NOT_STARTED, Status.AFFECTED, Status.IN_PROGRESS, Status.AT_RISK, Status.MIGRATED]
PROFILE_DAYS = 60
CLIENTS_PER_PAGE = 50
# Exchanges read per client on the Clients page to name its SDKs: its latest, not all of them.
SDK_SAMPLE = 20


def migration_scope(*, migration: Migration) -> QuerySet[Client]:
    if migration.all_clients:
        return Client.objects.filter(upstream=migration.upstream)
    return migration.clients.filter(upstream=migration.upstream)


def migrations_for_upstream(*, upstream: Upstream) -> QuerySet[Migration]:
    return (
        Migration.objects.filter(upstream=upstream)
        .annotate(client_count=Count("states", distinct=True))
        .select_related("created_by")
    )


def migration_for_upstream(*, upstream: Upstream, migration_id: int) -> Migration:
    """The migration if it belongs to this upstream; 404 otherwise, so other teams' ids stay unknown."""
    migration = (
        Migration.objects.filter(upstream=upstream, pk=migration_id).select_related("upstream").first()
    )
    if migration is None:
        raise Http404("No such migration")
    return migration


def migration_for_user(*, user, migration_id: int) -> Migration:
    upstreams = upstreams_for_user(user=user)
    migration = (
        Migration.objects.filter(upstream__in=upstreams, pk=migration_id).select_related("upstream").first()
    )
    if migration is None:
        raise Http404("No such migration")
    return migration


def migration_for_team(*, team: Team, migration_id: int) -> Migration:
    migration = (
        Migration.objects.filter(upstream__team=team, pk=migration_id).select_related("upstream").first()
    )
    if migration is None:
        raise Http404("No such migration")
    return migration


def client_for_upstream(*, upstream: Upstream, client_id: int) -> Client:
    client = Client.objects.filter(upstream=upstream, pk=client_id).select_related("team").first()
    if client is None:
        raise Http404("No such client")
    return client


def state_for_migration(*, migration: Migration, client_id: int) -> MigrationClientState:
    state = (
        MigrationClientState.objects.filter(migration=migration, client_id=client_id)
        .select_related("client", "client__team", "owner", "override_by", "migration__upstream")
        .first()
    )
    if state is None:
        raise Http404("No such client in this migration")
    return state


@dataclass
class BoardColumn:
    status: str
    label: str
    states: list[MigrationClientState]


def migration_board(*, migration: Migration) -> list[BoardColumn]:
    """The in-scope clients by status (the override when set), one column per status."""
    states = (
        MigrationClientState.objects.filter(migration=migration)
        .select_related("client", "client__team", "owner", "override_by")
        .order_by("client__label", "client__identity")
    )
    columns = {status: BoardColumn(status.value, status.label, []) for status in BOARD_ORDER}
    for state in states:
        columns[Status(state.status)].states.append(state)
    return list(columns.values())


def migration_board_json(*, migration: Migration) -> dict:
    """The board as the API returns it: each client with its status, override and evidence summary."""
    clients = []
    for column in migration_board(migration=migration):
        for state in column.states:
            evidence = state.evidence or {}
            clients.append(
                {
                    "client_id": state.client_id,
                    "client": state.client.display_name,
                    "kind": state.client.kind,
                    "team": state.client.team.slug if state.client.team else None,
                    "status": state.status,
                    "derived_status": state.derived_status,
                    "reason": state.reason,
                    "override": {
                        "status": state.override_status,
                        "reason": state.override_reason,
                        "by": state.override_by.get_username() if state.override_by else None,
                        "at": state.override_at.isoformat() if state.override_at else None,
                    }
                    if state.is_overridden
                    else None,
                    "owner": state.owner.get_username() if state.owner else None,
                    "note": state.note,
                    "evidence": {
                        "requests": evidence.get("requests", 0),
                        "versions": {
                            version: info["requests"]
                            for version, info in (evidence.get("versions") or {}).items()
                        },
                        "sdks": evidence.get("sdks", []),
                        "features": evidence.get("features", []),
                        "impact": [entry["key"] for entry in evidence.get("impact", [])],
                        "might_be_affected": [entry["key"] for entry in evidence.get("might", [])],
                        "accidental_migration": bool(evidence.get("accidental")),
                    },
                    "updated_at": state.updated_at.isoformat(),
                }
            )
    counts = Counter(client["status"] for client in clients)
    return {
        "id": migration.pk,
        "name": migration.name,
        "upstream": migration.upstream.slug,
        "target_version": migration.target_version,
        "from_versions": migration.from_versions,
        "deadline": migration.deadline.isoformat(),
        "refreshed_at": migration.refreshed_at.isoformat() if migration.refreshed_at else None,
        "counts": {status.value: counts.get(status.value, 0) for status in BOARD_ORDER},
        "clients": clients,
    }


@dataclass
class BurndownDay:
    day: date
    clients_on_old: int
    clients_seen: int
    old_requests: int
    requests: int

    @property
    def old_share(self) -> float | None:
        return self.old_requests / self.requests if self.requests else None


def migration_burndown(*, migration: Migration, today: date | None = None) -> list[BurndownDay]:
    """Per day: how many clients still send an old version, and the share of traffic on old versions.

    A client counts as still on an old version on a day when the last day it sent traffic (that day
    or before) included an old version. Read from the evidence kept by the last refresh.
    """
    today = today or timezone.localdate()
    target = migration.target_version
    per_client = []
    first_day = None
    for evidence in MigrationClientState.objects.filter(migration=migration).values_list(
        "evidence", flat=True
    ):
        days = {date.fromisoformat(row["day"]): row["versions"] for row in (evidence or {}).get("days", [])}
        if days:
            per_client.append(days)
            first_day = min(first_day or min(days), min(days))
    if first_day is None:
        return []
    series = []
    last_seen: list[dict | None] = [None] * len(per_client)
    day = first_day
    while day <= today:
        old_requests = requests = 0
        for index, days in enumerate(per_client):
            versions = days.get(day)
            if versions:
                last_seen[index] = versions
                requests += sum(versions.values())
                old_requests += sum(n for version, n in versions.items() if version != target)
        clients_on_old = sum(1 for seen in last_seen if seen and any(v != target for v in seen))
        clients_seen = sum(1 for seen in last_seen if seen)
        series.append(BurndownDay(day, clients_on_old, clients_seen, old_requests, requests))
        day += timedelta(days=1)
    return series


def client_profile(*, client: Client, target_version: str = "") -> dict:
    """What a client's traffic says: versions per day, SDKs, features, impact, accidental migration.

    The impact (affected on its own evidence, and apart what it might be affected by) is judged
    by verdicts.client_verdicts against `target_version` (default: the latest open migration's
    target, so that the page agrees with the board, else the upstream's target).
    """
    upstream = client.upstream
    if not target_version:
        migration = latest_open_migration(upstream=upstream)
        target_version = migration.target_version if migration else upstream.target_version
    facts = traffic_facts.clients_traffic(upstream=upstream, client_ids=[client.pk])
    verdict = client_verdicts(
        upstream=upstream, target_version=target_version, client_ids=[client.pk], facts=facts, examples=True
    ).get(client.pk)
    facts = facts[client.pk]
    exchanges = Exchange.objects.filter(client=client)
    today = timezone.localdate()
    days = [
        {"day": day, "versions": dict(counts), "errors": facts.day_errors.get(day, 0)}
        for day, counts in sorted(facts.days.items())
        if day >= today - timedelta(days=PROFILE_DAYS)
    ]
    return {
        "client": client,
        "target_version": target_version,
        "requests": facts.requests,
        "versions": facts.versions,
        "days": days,
        "eras": facts.eras,
        "sdks": facts.sdks,
        "features": facts.features,
        "usage": [
            {"endpoint": endpoint, "streamed": streamed, **usage}
            for (endpoint, streamed), usage in sorted(facts.usage.items())
        ],
        "impact": verdict.affected if verdict else [],
        "might": verdict.might if verdict else [],
        "accidental": accidental_migration(facts=facts, exchanges=exchanges),
        "states": MigrationClientState.objects.filter(client=client).select_related("migration"),
    }


def latest_open_migration(*, upstream: Upstream) -> Migration | None:
    return Migration.objects.filter(upstream=upstream, closed_at__isnull=True).order_by("-created_at").first()


def clients_overview(
    *, upstream: Upstream, owner: str = "", migration: Migration | None = None, page: int | str | None = None
) -> Page:
    """The Clients page: one page of CLIENTS_PER_PAGE clients, each with its versions, SDKs, owner and
    impact summary (the page's object_list holds these rows).

    `owner` filters: "unowned", "owned" or "" (all). A handful of queries whatever the number of
    clients and exchanges: versions from the daily rollup (TrafficDay), SDKs from each client's latest
    SDK_SAMPLE exchanges, impact and status from `migration`'s states (see latest_open_migration).
    """
    clients = (
        Client.objects.filter(upstream=upstream)
        .select_related("team")
        .order_by("team", "label", "identity", "pk")
    )
    if owner == "unowned":
        clients = clients.filter(team__isnull=True)
    elif owner == "owned":
        clients = clients.filter(team__isnull=False)
    listed = Paginator(clients, CLIENTS_PER_PAGE).get_page(page)
    clients = list(listed.object_list)
    ids = [client.pk for client in clients]
    versions: dict[int, list[str]] = {}
    for client_id, version in (
        TrafficDay.objects.filter(upstream=upstream, client_id__in=ids)
        .values_list("client_id", "api_version")
        .distinct()
        .order_by("client_id", "api_version")
    ):
        versions.setdefault(client_id, []).append(version or "none")
    sdks = _clients_sdks(client_ids=ids)
    states = (
        {
            state.client_id: state
            for state in MigrationClientState.objects.filter(migration=migration, client_id__in=ids)
        }
        if migration and ids
        else {}
    )
    rows = []
    for client in clients:
        state = states.get(client.pk)
        evidence = state.evidence if state else {}
        rows.append(
            {
                "client": client,
                "versions": versions.get(client.pk, []),
                "sdks": sorted(sdks.get(client.pk, set())),
                "state": state,
                "impact": evidence.get("impact", []) if evidence else [],
                "might": evidence.get("might", []) if evidence else [],
                "accidental": bool(evidence.get("accidental")) if evidence else False,
            }
        )
    listed.object_list = rows
    return listed


def _clients_sdks(*, client_ids: list[int]) -> dict[int, set[str]]:
    """The SDKs of each client's latest SDK_SAMPLE exchanges, in one query."""
    if not client_ids:
        return {}
    latest = (
        Exchange.objects.filter(client_id__in=client_ids)
        .annotate(
            recency=Window(
                RowNumber(), partition_by=F("client_id"), order_by=[F("started_at").desc(), F("id").desc()]
            )
        )
        .filter(recency__lte=SDK_SAMPLE)
        .values_list("client_id", "sdk", "user_agent")
    )
    sdks: dict[int, set[str]] = {}
    for client_id, sdk, user_agent in latest:
        parsed = sdk_parse(user_agent=user_agent, sdk=sdk)
        if parsed is not None:
            sdks.setdefault(client_id, set()).add(str(parsed))
    return sdks


def claimable_teams(*, user) -> QuerySet[Team]:
    """The teams a user may claim clients for: those where they are a member or admin."""
    return Team.objects.filter(memberships__user=user, memberships__role__in=["member", "admin"])
