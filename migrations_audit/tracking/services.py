"""Tracking writes: migrations, each client's status derived from its traffic, overrides, claims.

A status is derived from evidence, never typed in: `migration_refresh` reads the recorded traffic
of every client in scope and records a StatusChange whenever a derived status moves. A user may
override a status with a reason; that is recorded too, as an override.
"""

from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from migrations_audit.models import (
    Client,
    Exchange,
    Membership,
    Migration,
    MigrationClientState,
    Status,
    StatusChange,
    Team,
    Upstream,
)
from migrations_audit.replay.variants import saved_variant

from . import traffic as traffic_facts
from .accidental import accidental_migration
from .selectors import migration_scope
from .verdicts import client_verdicts

# Days of versions-per-day kept in a state's evidence: enough for the charts and the burn-down.
EVIDENCE_DAYS = 60


def migration_create(
    *,
    upstream: Upstream,
    name: str,
    target_version: str,
    deadline: date,
    target_model: str = "",
    from_versions: list[str] | None = None,
    quiet_period_days: int = 7,
    at_risk_window_days: int = 14,
    clients: list[Client] | None = None,
    created_by=None,
) -> Migration:
    """A new migration. Without `clients`, every client of the upstream is in scope."""
    if not target_version:
        raise ValidationError("A migration needs a target version.")
    target_version, target_model = migration_target_parse(
        upstream=upstream, spelled=target_version, model=target_model
    )
    if from_versions is None:
        from_versions = [upstream.baseline_version] if upstream.baseline_version else []
    from_versions = [version for version in from_versions if version and version != target_version]
    if clients and any(client.upstream_id != upstream.pk for client in clients):
        raise ValidationError("Every client in scope must be a client of the migration's upstream.")
    with transaction.atomic():
        migration = Migration.objects.create(
            upstream=upstream,
            name=name,
            target_version=target_version,
            target_model=target_model,
            from_versions=from_versions,
            deadline=deadline,
            quiet_period_days=quiet_period_days,
            at_risk_window_days=at_risk_window_days,
            all_clients=not clients,
            created_by=created_by,
        )
        if clients:
            migration.clients.set(clients)
    return migration


def migration_target_parse(*, upstream: Upstream, spelled: str, model: str = "") -> tuple[str, str]:
    """(version, model) of a migration's target: a version, `VERSION@MODEL`, or a saved variant's
    name (its version, and the model it maps every model to)."""
    spelled = spelled.strip()
    saved = upstream.variants.filter(name=spelled).first()
    if saved is not None:
        variant = saved_variant(saved)
        return variant.version, model.strip() or variant.model_map.get("*", "")
    version, _, at_model = spelled.partition("@")
    model = model.strip() or at_model.strip()
    if len(model) > 100:
        raise ValidationError("A target model id has at most 100 characters.")
    return version.strip(), model


def status_derive(
    *,
    facts: traffic_facts.ClientTraffic,
    migration: Migration,
    impact: list[dict],
    now: datetime,
) -> tuple[str, str]:
    """The status the evidence supports, and why, in words (the cause of a status change).

    `impact`: the cards of the changes the client is affected by (verdicts.client_verdicts), on its
    own evidence only: what it might be affected by never moves a status."""
    # A target variant (version and model): the facts' versions are split by model
    # (traffic.versions_with_models), and only the target's version with its model is the target.
    target = migration.target_label
    versions = facts.versions
    old = {version: info for version, info in versions.items() if version != target}
    on_target = versions.get(target)
    quiet = timedelta(days=migration.quiet_period_days)
    last_old_at = max((info["last_at"] for info in old.values()), default=None)
    days_left = (migration.deadline - timezone.localdate(now)).days
    breaking = f"; hit by {len(impact)} breaking change(s)" if impact else ""

    if on_target and (last_old_at is None or on_target["last_at"] > last_old_at):
        # Target-only since the first target request after the last old one (a gap with no traffic
        # at all does not count as time on the target).
        target_only_since = max(filter(None, (last_old_at, on_target["first_at"])))
        if now - target_only_since >= quiet:
            since = "no other version ever" if last_old_at is None else f"last {_fmt(last_old_at)}"
            return Status.MIGRATED, (
                f"Only {target} for {migration.quiet_period_days}+ days (old versions: {since})"
            )
        waiting = (
            f"only {target} since {_fmt(target_only_since)}, "
            f"quiet period of {migration.quiet_period_days} days not over"
        )
    elif on_target:
        waiting = (
            f"mixed versions: {', '.join(sorted(old))} still sent after {target} (last {_fmt(last_old_at)})"
        )
    else:
        waiting = ""

    if days_left <= migration.at_risk_window_days:
        deadline = (
            f"deadline {migration.deadline:%Y-%m-%d} in {days_left} day(s)"
            if days_left >= 0
            else (f"deadline {migration.deadline:%Y-%m-%d} passed")
        )
        where = waiting or (f"still on {', '.join(sorted(old))}" if old else "no traffic recorded")
        return Status.AT_RISK, f"Not migrated and {deadline}: {where}{breaking}"
    if on_target:
        return Status.IN_PROGRESS, f"In progress: {waiting}{breaking}"
    if not versions:
        return Status.NOT_STARTED, "No traffic recorded yet"
    if impact:
        titles = "; ".join(entry["title"] for entry in impact[:3])
        return (
            Status.AFFECTED,
            f"Still on {', '.join(sorted(old))}; its own exchanges show it is hit by: {titles}",
        )
    return Status.NOT_STARTED, (
        f"Still sending {', '.join(sorted(old))}; none of its own requests or replays shows a breaking change"
    )


def _fmt(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "never"


def _iso(moment):
    return moment.isoformat() if moment else None


def evidence_build(
    *,
    facts: traffic_facts.ClientTraffic,
    impact: list[dict],
    accidental: dict | None,
    today: date,
    might: list[dict] | None = None,
) -> dict:
    """The JSON kept with a state: what the pages show as the evidence for its status."""
    first_day = today - timedelta(days=EVIDENCE_DAYS)
    return {
        "requests": facts.requests,
        "versions": {
            version: {
                "requests": info["requests"],
                "first_at": _iso(info["first_at"]),
                "last_at": _iso(info["last_at"]),
                "example_ids": info["example_ids"],
            }
            for version, info in sorted(facts.versions.items())
        },
        "days": [
            {"day": day.isoformat(), "versions": dict(counts), "errors": facts.day_errors.get(day, 0)}
            for day, counts in sorted(facts.days.items())
            if day >= first_day
        ],
        "sdks": facts.sdks,
        "features": facts.features,
        "endpoints": facts.endpoints,
        "impact": impact,
        "might": might or [],
        "accidental": _jsonable(accidental),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def migration_refresh(*, migration: Migration, now: datetime | None = None) -> list[StatusChange]:
    """Derive every in-scope client's status from its recorded traffic; record each change.

    Idempotent and safe to run concurrently: a state moves only from the status it was read with
    (UPDATE ... WHERE derived_status = old), so two refreshes never record one change twice.
    """
    now = now or timezone.now()
    upstream = migration.upstream
    clients = list(migration_scope(migration=migration))
    facts_by_client = traffic_facts.clients_traffic(upstream=upstream, client_ids=[c.pk for c in clients])
    states = {state.client_id: state for state in migration.states.all()}
    verdicts = client_verdicts(
        upstream=upstream,
        target_version=migration.target_version,
        client_ids=list(facts_by_client),
        facts=facts_by_client,
        examples=True,
    )
    if migration.target_model:
        by_model = traffic_facts.models_on_version(
            client_ids=list(facts_by_client), version=migration.target_version
        )
    derived = []
    for client in clients:
        facts = facts_by_client[client.pk]
        if migration.target_model:
            facts.versions = traffic_facts.versions_with_models(
                facts.versions,
                version=migration.target_version,
                model=migration.target_model,
                models=by_model[client.pk],
            )
        verdict = verdicts.get(client.pk)
        impact = verdict.affected if verdict else []
        accidental = accidental_migration(facts=facts, exchanges=Exchange.objects.filter(client=client))
        status, reason = status_derive(facts=facts, migration=migration, impact=impact, now=now)
        evidence = evidence_build(
            facts=facts,
            impact=impact,
            might=verdict.might if verdict else [],
            accidental=accidental,
            today=timezone.localdate(now),
        )
        derived.append((client, states.get(client.pk), status, reason, evidence))
    changes = _states_write(migration, derived, now)
    MigrationClientState.objects.filter(migration=migration).exclude(client__in=clients).delete()
    Migration.objects.filter(pk=migration.pk).update(refreshed_at=now)
    migration.refreshed_at = now
    return changes


# States rewritten per statement when only their reason and evidence change.
STATES_PER_UPDATE = 500


def _states_write(migration, derived, now) -> list[StatusChange]:
    """Store the derived states. A state whose status stays as it was read only gets its reason and
    evidence, batched (a refresh of thousands of clients is a few statements); a new state or a
    status that moves is written on its own, from the status it was read with, with its change."""
    changes, steady = [], []
    for client, state, status, reason, evidence in derived:
        if state is not None and state.derived_status == status:
            state.reason, state.evidence, state.updated_at = reason, evidence, now
            steady.append(state)
            continue
        change = _state_update(migration, client, state, status, reason, evidence, now)
        if change is not None:
            changes.append(change)
    MigrationClientState.objects.bulk_update(
        steady, ["reason", "evidence", "updated_at"], batch_size=STATES_PER_UPDATE
    )
    return changes


def _state_update(migration, client, state, status, reason, evidence, now) -> StatusChange | None:
    with transaction.atomic():
        if state is None:
            state, created = MigrationClientState.objects.get_or_create(
                migration=migration,
                client=client,
                defaults={"derived_status": status, "reason": reason, "evidence": evidence},
            )
            if created:
                return StatusChange.objects.create(
                    migration=migration, client=client, from_status="", to_status=status, cause=reason, at=now
                )
        previous = state.derived_status
        moved = MigrationClientState.objects.filter(pk=state.pk, derived_status=previous).update(
            derived_status=status, reason=reason, evidence=evidence, updated_at=now
        )
        if moved and previous != status:
            return StatusChange.objects.create(
                migration=migration,
                client=client,
                from_status=previous,
                to_status=status,
                cause=reason,
                at=now,
            )
    return None


def migration_refresh_queue(*, migration: Migration) -> None:
    """Queue a refresh of the migration's board (the tracking_refresh_migration task) for when the
    caller's transaction commits; the page says one is queued until it has run."""
    from migrations_audit.tasks import tracking_refresh_migration

    now = timezone.now()
    Migration.objects.filter(pk=migration.pk).update(refresh_queued_at=now)
    migration.refresh_queued_at = now
    transaction.on_commit(lambda: tracking_refresh_migration.delay(migration.pk), robust=True)


def migrations_refresh_after_run(*, run_id: int) -> None:
    """Queue a refresh of the open migrations of a replay run's upstream: the boards show what the run
    found without waiting for the periodic refresh."""
    migrations = Migration.objects.filter(closed_at__isnull=True, upstream__runs__pk=run_id)
    for migration in migrations.only("pk"):
        migration_refresh_queue(migration=migration)


def migrations_refresh_active(*, now: datetime | None = None) -> int:
    """Refresh every open migration; returns how many were refreshed."""
    migrations = Migration.objects.filter(closed_at__isnull=True).select_related("upstream")
    count = 0
    for migration in migrations:
        migration_refresh(migration=migration, now=now)
        count += 1
    return count


def migration_close(*, migration: Migration, closed: bool = True) -> Migration:
    """Close a migration (it stops being refreshed and leaves the Clients page), or reopen it."""
    migration.closed_at = timezone.now() if closed else None
    migration.save(update_fields=["closed_at"])
    return migration


def migration_state_override(*, state: MigrationClientState, status: str, reason: str, by) -> StatusChange:
    """Set (or, with an empty status, clear) a user's override of a client's status."""
    if status and status not in Status.values:
        raise ValidationError(f"Unknown status {status!r}.")
    reason = (reason or "").strip()
    if status and not reason:
        raise ValidationError("An override needs a reason.")
    now = timezone.now()
    before = state.status
    with transaction.atomic():
        state.override_status = status
        state.override_reason = reason if status else ""
        state.override_by = by if status else None
        state.override_at = now if status else None
        state.save(
            update_fields=["override_status", "override_reason", "override_by", "override_at", "updated_at"]
        )
        cause = f"Override: {reason}" if status else "Override cleared" + (f": {reason}" if reason else "")
        return StatusChange.objects.create(
            migration=state.migration,
            client=state.client,
            from_status=before,
            to_status=state.status,
            cause=cause[:500],
            is_override=True,
            at=now,
            by=by,
        )


def migration_state_annotate(*, state: MigrationClientState, note: str, owner=None) -> MigrationClientState:
    """Set the note and the owner (a member of the migration's team, or nobody)."""
    if (
        owner is not None
        and not Membership.objects.filter(team=state.migration.upstream.team, user=owner).exists()
    ):
        raise ValidationError("The owner must be a member of the team.")
    state.note = note.strip()
    state.owner = owner
    state.save(update_fields=["note", "owner", "updated_at"])
    return state


def client_claim(*, client: Client, team: Team, by) -> Client:
    """Make `team` the owner of an unowned client. `by` must be a member or admin of that team."""
    role = Membership.objects.filter(team=team, user=by).values_list("role", flat=True).first()
    if role not in (Membership.Role.MEMBER, Membership.Role.ADMIN):
        raise ValidationError("Only a member or admin of the team can claim a client for it.")
    claimed = Client.objects.filter(pk=client.pk, team__isnull=True).update(team=team)
    if not claimed:
        raise ValidationError("This client already has an owner.")
    client.team = team
    return client
