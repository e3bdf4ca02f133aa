"""Read access shared by every page: what a user may see."""

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from migrations_audit.models import (
    ApiToken,
    Client,
    Exchange,
    HarImport,
    Membership,
    RecorderTotals,
    Team,
    TrafficDay,
    Upstream,
    WorkerHeartbeat,
)


def teams_for_user(*, user) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user)


def upstreams_for_user(*, user) -> QuerySet[Upstream]:
    return Upstream.objects.filter(team__memberships__user=user).select_related("team")


def upstream_for_user(*, user, slug: str) -> Upstream:
    """The upstream if the user is in its team; otherwise 404, so ids of other teams stay unknown."""
    upstream = upstreams_for_user(user=user).filter(slug=slug).first()
    if upstream is None:
        raise Http404("No such upstream")
    return upstream


def membership_role(*, user, team: Team) -> str | None:
    return Membership.objects.filter(user=user, team=team).values_list("role", flat=True).first()


# Roles that may change a team's objects, on the pages and through the API alike; viewers only read.
EDITOR_ROLES = (Membership.Role.MEMBER, Membership.Role.ADMIN)


def user_can_edit(*, user, team: Team) -> bool:
    return membership_role(user=user, team=team) in EDITOR_ROLES


def teams_editable_by_user(*, user) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user, memberships__role__in=EDITOR_ROLES)


def token_can_edit(*, token: ApiToken) -> bool:
    """A token made by a user acts with that user's role in its team today, so a token outlives
    neither its maker's demotion to viewer nor their leaving the team; one made by an operator
    (manage.py, the admin: no maker) acts for the team as a member."""
    if token.created_by_id is None:
        return True
    return Membership.objects.filter(
        user_id=token.created_by_id, team_id=token.team_id, role__in=EDITOR_ROLES
    ).exists()


# --- Traffic: what the overview and the traffic explorer read ---------------------------------


@dataclass(frozen=True)
class WorkersStatus:
    """Whether any Celery worker reported in lately: jobs wait for one."""

    alive: bool
    last_seen_at: datetime | None


# Workers report every minute (dashboard.schedules) and when they start.
WORKER_SILENCE_ALLOWED = timedelta(minutes=3)


def workers_status() -> WorkersStatus:
    last_seen_at = WorkerHeartbeat.objects.aggregate(last=Max("seen_at"))["last"]
    alive = last_seen_at is not None and timezone.now() - last_seen_at <= WORKER_SILENCE_ALLOWED
    return WorkersStatus(alive=alive, last_seen_at=last_seen_at)


def har_imports_ahead(*, job: HarImport) -> int:
    """How many imports (of any upstream) queued before a queued one are still queued or running."""
    if job.state != HarImport.State.QUEUED:
        return 0
    active = [HarImport.State.QUEUED, HarImport.State.RUNNING]
    return HarImport.objects.filter(state__in=active, pk__lt=job.pk).count()


def upstream_contents(*, upstream: Upstream) -> dict[str, int]:
    """What deleting an upstream takes with it, counted from the rollups and small tables."""
    return {
        "exchanges": TrafficDay.objects.filter(upstream=upstream).aggregate(n=Sum("count"))["n"] or 0,
        "clients": upstream.clients.count(),
        "replay runs": upstream.runs.count(),
        "difference signatures": upstream.signatures.count(),
        "migrations": upstream.migrations.count(),
        "report definitions": upstream.report_definitions.count(),
    }


def traffic_summary(*, upstream: Upstream, days: int = 30) -> dict:
    """Recorded traffic per day and version (last `days` days), per endpoint, per version and per
    client (top 10), read from the daily rollup rather than from every exchange."""
    rollup = TrafficDay.objects.filter(upstream=upstream)
    since = timezone.localdate() - timedelta(days=days)
    per_day: dict = {}
    for row in rollup.filter(day__gte=since).values("day", "api_version").annotate(n=Sum("count")):
        per_day.setdefault(row["day"], {})[row["api_version"]] = row["n"]
    versions = list(rollup.values("api_version").annotate(n=Sum("count")).order_by("api_version"))
    # Grouped by the client's id alone, its name read for the ten kept: the rollup has a row per
    # client and day, and joining each to its client cost more than the sum.
    top = list(rollup.values("client").annotate(n=Sum("count")).order_by("-n", "client")[:10])
    names = Client.objects.filter(pk__in=[row["client"] for row in top if row["client"]]).values_list(
        "pk", "identity", "label"
    )
    names = {pk: (identity, label) for pk, identity, label in names}
    return {
        "days": [{"day": day, "versions": versions} for day, versions in sorted(per_day.items())],
        "endpoints": list(rollup.values("endpoint").annotate(n=Sum("count")).order_by("-n")[:10]),
        "versions": versions,
        "clients": [
            {
                **row,
                "client__identity": names.get(row["client"], ("", ""))[0],
                "client__label": names.get(row["client"], ("", ""))[1],
            }
            for row in top
        ],
        "total": sum(row["n"] for row in versions),
    }


def recording_losses(*, upstream: Upstream) -> dict | None:
    """Exchanges the proxy answered but did not record, summed over its processes, or None if none:
    `dropped` (its queue was full), `failed` (the database stayed away), `total` and `last_at`."""
    lost = RecorderTotals.objects.filter(upstream=upstream).exclude(dropped=0, failed=0)
    totals = lost.aggregate(dropped=Sum("dropped"), failed=Sum("failed"), last_at=Max("updated_at"))
    if totals["last_at"] is None:
        return None
    return {**totals, "total": totals["dropped"] + totals["failed"]}


SORTS = {
    "newest": ("-started_at", "-id"),
    "oldest": ("started_at", "id"),
    "slowest": ("-duration_ms", "-id"),
}


# The largest id a database integer holds: a bigger one in a query string is a bad value, not a 500.
MAX_ID = 2**63 - 1


@dataclass
class TrafficFilter:
    """The traffic explorer's filters, read from a query string. A bad value is not applied but
    listed in `errors`, which the page shows (and answers 400 for), never an exception."""

    client: int | None = None
    endpoint: str = ""
    version: str = ""
    status: str = ""  # a code, or 2xx/4xx/5xx, or "none"
    streamed: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""
    sort: str = "newest"
    cursor: tuple | None = None  # (value, id) of the last row of the page before; see exchanges_page
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, query) -> "TrafficFilter":
        found = cls()
        if query.get("client"):
            found.client = _id_parse(query["client"])
            if found.client is None:
                found.errors.append("Client must be chosen from the list.")
        found.endpoint = query.get("endpoint", "").strip()[:520]
        found.version = query.get("version", "").strip()[:50]
        status = query.get("status", "").strip().lower()
        if status and not (
            status in ("2xx", "3xx", "4xx", "5xx", "none") or re.fullmatch(r"[1-9][0-9]{2}", status)
        ):
            found.errors.append("Status must be a code such as 400, a class such as 4xx, or “none”.")
        else:
            found.status = status
        streamed = query.get("streamed", "")
        found.streamed = {"yes": True, "no": False}.get(streamed)
        for name in ("since", "until"):
            raw = query.get(name, "").strip()
            if raw:
                moment = _moment_parse(raw)
                if moment is None:
                    found.errors.append(f"“{name}” must be a date (2026-11-20) or a date and time.")
                setattr(found, name, moment)
        found.q = query.get("q", "").strip()[:200]
        found.sort = query.get("sort") if query.get("sort") in SORTS else "newest"
        if query.get("after"):
            found.cursor = _cursor_decode(query["after"], found.sort)
            if found.cursor is None:
                found.errors.append("This page link is broken: start again from the first page.")
        return found

    def apply(self, exchanges: QuerySet) -> QuerySet:
        if self.client:
            exchanges = exchanges.filter(client_id=self.client)
        if self.endpoint:
            exchanges = exchanges.filter(endpoint=self.endpoint)
        if self.version:
            exchanges = exchanges.filter(api_version="" if self.version == "none" else self.version)
        if self.status == "none":
            exchanges = exchanges.filter(status__isnull=True)
        elif self.status.endswith("xx"):
            low = int(self.status[0]) * 100
            exchanges = exchanges.filter(status__gte=low, status__lt=low + 100)
        elif self.status:
            exchanges = exchanges.filter(status=int(self.status))
        if self.streamed is not None:
            exchanges = exchanges.filter(streamed=self.streamed)
        if self.since:
            exchanges = exchanges.filter(started_at__gte=self.since)
        if self.until:
            exchanges = exchanges.filter(started_at__lt=self.until)
        if self.q:
            exchanges = exchanges.filter(
                Q(path__icontains=self.q)
                | Q(sdk__icontains=self.q)
                | Q(error__icontains=self.q)
                | Q(user_agent__icontains=self.q)
                | Q(client__identity__icontains=self.q)
                | Q(client__label__icontains=self.q)
            )
        return exchanges


def exchanges_page(*, upstream: Upstream, filters: TrafficFilter, size: int = 50):
    """One page of exchanges by keyset pagination: `filters.cursor` is the last row shown, so a
    page costs an index range scan however deep it is. Returns (rows, cursor of the next page)."""
    order = SORTS[filters.sort]
    exchanges = filters.apply(Exchange.objects.filter(upstream=upstream))
    if filters.sort == "slowest":
        exchanges = exchanges.filter(duration_ms__isnull=False)
    if filters.cursor is not None:
        value, last_id = filters.cursor
        field_name = order[0].lstrip("-")
        if order[0].startswith("-"):
            exchanges = exchanges.filter(
                Q(**{f"{field_name}__lt": value}) | Q(**{field_name: value, "id__lt": last_id})
            )
        else:
            exchanges = exchanges.filter(
                Q(**{f"{field_name}__gt": value}) | Q(**{field_name: value, "id__gt": last_id})
            )
    rows = list(
        exchanges.select_related("client")
        .defer("request_body", "response_body", "response_events", "request_headers", "response_headers")
        .order_by(*order)[: size + 1]
    )
    next_cursor = ""
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        value = last.started_at.isoformat() if filters.sort != "slowest" else repr(last.duration_ms)
        next_cursor = f"{value}|{last.pk}"
    return rows, next_cursor


def _id_parse(raw: str) -> int | None:
    """A database id written in ASCII digits, or None ("²".isdigit() is true, and ids overflow)."""
    if not re.fullmatch(r"[0-9]{1,19}", raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def _moment_parse(raw: str) -> datetime | None:
    """A date or a date and time, in UTC (naive ones taken as UTC), or None if it is none or out of
    range: 2026-13-45T10:00 matches the format but is no date, and year 1 at +05:00 is before year 1."""
    try:
        parsed = parse_datetime(raw) or datetime.fromisoformat(raw)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _cursor_decode(after: str, sort: str) -> tuple | None:
    value, _, last_id = after.rpartition("|")
    last_id = _id_parse(last_id)
    if not value or last_id is None:
        return None
    if sort == "slowest":
        try:
            duration = float(value)
        except ValueError:
            return None
        return (duration, last_id) if math.isfinite(duration) else None
    moment = _moment_parse(value)
    return (moment, last_id) if moment is not None else None


def traffic_choices(*, upstream: Upstream) -> dict:
    """Values offered by the traffic filters: endpoints, versions and clients seen."""
    return {
        "endpoints": list(
            TrafficDay.objects.filter(upstream=upstream)
            .values_list("endpoint", flat=True)
            .distinct()
            .order_by("endpoint")[:100]
        ),
        "versions": list(upstream.versions.values_list("name", flat=True)),
        "clients": list(upstream.clients.order_by("identity")[:500]),
    }


def versions_in_use(*, upstream: Upstream, client=None, windows: tuple[int, ...] = (7, 30)) -> dict:
    """Which versions the upstream's (or one client's) requests used in the last N days, for each
    N in `windows`: {N: [{"version", "exchanges", "share", "clients"}]}, most used first, read from
    the daily rollup ("" is requests that sent no version)."""
    today = timezone.localdate()
    found = {}
    for days in windows:
        rows = TrafficDay.objects.filter(upstream=upstream, day__gt=today - timedelta(days=days))
        if client is not None:
            rows = rows.filter(client=client)
        per_version = list(
            rows.values("api_version")
            .annotate(exchanges=Sum("count"), clients=Count("client", distinct=True))
            .order_by("-exchanges", "api_version")
        )
        total = sum(row["exchanges"] for row in per_version) or 1
        found[days] = [
            {
                "version": row["api_version"],
                "exchanges": row["exchanges"],
                "share": round(row["exchanges"] / total, 4),
                "clients": row["clients"],
            }
            for row in per_version
        ]
    return found


def versions_in_use_by_client(*, upstream: Upstream, limit: int = 200) -> list[dict]:
    """Per client (the `limit` busiest over 30 days), the versions its requests used in the last 7
    and 30 days."""
    today = timezone.localdate()
    rows = (
        TrafficDay.objects.filter(upstream=upstream, day__gt=today - timedelta(days=30))
        .values("client", "api_version", "day")
        .annotate(exchanges=Sum("count"))
    )
    recent_since = today - timedelta(days=7)
    month: dict = {}
    week: dict = {}
    for row in rows:
        versions = month.setdefault(row["client"], {})
        versions[row["api_version"]] = versions.get(row["api_version"], 0) + row["exchanges"]
        if row["day"] > recent_since:
            versions = week.setdefault(row["client"], {})
            versions[row["api_version"]] = versions.get(row["api_version"], 0) + row["exchanges"]
    busiest = sorted(month, key=lambda client_id: (-sum(month[client_id].values()), client_id or 0))[:limit]
    clients = upstream.clients.in_bulk([client_id for client_id in busiest if client_id])

    def listed(versions: dict) -> list[dict]:
        return [
            {"version": version, "exchanges": n}
            for version, n in sorted(versions.items(), key=lambda item: (-item[1], item[0]))
        ]

    return [
        {
            "client": clients[client_id].display_name if client_id in clients else "unidentified",
            "last_7_days": listed(week.get(client_id, {})),
            "last_30_days": listed(month[client_id]),
        }
        for client_id in busiest
    ]
