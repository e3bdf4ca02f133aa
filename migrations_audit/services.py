"""Services for the entities every stage shares: teams, upstreams, versions, tokens, clients."""

import hashlib
import secrets as token_generator
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from migrations_audit import crypto, upstream_guard
from migrations_audit.diff.noise import INFRASTRUCTURE_HEADERS
from migrations_audit.models import ApiToken, ApiVersion, Membership, Team, Upstream, WorkerHeartbeat

# Anthropic's versions and endpoints: the defaults of a new upstream whose version header is
# anthropic-version (see shared/reference/anthropic-versions.md).
ANTHROPIC_VERSIONS = (
    ("2023-01-01", date(2023, 1, 1)),
    ("2023-06-01", date(2023, 6, 1)),
    ("2026-10-21", date(2026, 10, 21)),
)
ANTHROPIC_REPLAYABLE_ENDPOINTS = ["POST /v1/messages", "POST /v1/complete", "POST /v1/messages/count_tokens"]
ANTHROPIC_VOLATILE_HEADERS = [
    "date",
    "request-id",
    "x-request-id",
    "content-length",
    "retry-after",
    "anthropic-ratelimit-*",
    "anthropic-organization-id",
    "server-timing",
    *INFRASTRUCTURE_HEADERS,
]


def team_create(*, name: str, slug: str, admin=None) -> Team:
    with transaction.atomic():
        team = Team.objects.create(name=name, slug=slug)
        if admin is not None:
            Membership.objects.create(team=team, user=admin, role=Membership.Role.ADMIN)
    return team


def upstream_create(
    *,
    team: Team,
    name: str,
    slug: str,
    base_url: str,
    version_header: str = "anthropic-version",
    versions: list[tuple[str, date | None]] | None = None,
    baseline_version: str = "",
    target_version: str = "",
    replay_key: str = "",
    **options,
) -> Upstream:
    """Create an upstream with its versions; an Anthropic-style upstream gets Anthropic's defaults.
    A base URL the allow-list does not cover, or a replay_key_env not named for the purpose, raises
    ValidationError."""
    upstream_check(base_url=base_url, replay_key_env=options.get("replay_key_env", ""))
    is_anthropic = version_header.lower() == "anthropic-version"
    if versions is None:
        versions = list(ANTHROPIC_VERSIONS) if is_anthropic else []
    options.setdefault("replayable_endpoints", list(ANTHROPIC_REPLAYABLE_ENDPOINTS) if is_anthropic else [])
    options.setdefault(
        "volatile_headers",
        list(ANTHROPIC_VOLATILE_HEADERS) if is_anthropic else ["date", *INFRASTRUCTURE_HEADERS],
    )
    with transaction.atomic():
        upstream = Upstream.objects.create(
            team=team,
            name=name,
            slug=slug,
            base_url=base_url.rstrip("/"),
            version_header=version_header.lower(),
            baseline_version=baseline_version,
            target_version=target_version,
            **options,
        )
        _upstream_versions_set(upstream=upstream, versions=versions)
        if replay_key:
            upstream_set_replay_key(upstream=upstream, replay_key=replay_key)
        if is_anthropic:
            # The one place changelog and model rules are installed for a new upstream.
            from migrations_audit.diff.services import changelog_rules_install, model_rules_install

            changelog_rules_install(upstream=upstream)
            model_rules_install(upstream=upstream)
    return upstream


def upstream_update(
    *,
    upstream: Upstream,
    versions: list[tuple[str, date | None]] | None = None,
    replay_key: str | None = None,
    **values,
) -> Upstream:
    """Change an upstream's settings (any of Upstream's fields), its versions when given (versions not
    listed are removed) and its replay credential when given ("" removes it). A base URL the
    allow-list does not cover, or a replay_key_env not named for the purpose, raises ValidationError."""
    for name, value in values.items():
        setattr(upstream, name, value)
    upstream_check(base_url=upstream.base_url, replay_key_env=upstream.replay_key_env)
    upstream.base_url = upstream.base_url.rstrip("/")
    upstream.version_header = upstream.version_header.lower()
    with transaction.atomic():
        upstream.save()
        if versions is not None:
            _upstream_versions_set(upstream=upstream, versions=versions)
        if replay_key is not None:
            upstream_set_replay_key(upstream=upstream, replay_key=replay_key)
    return upstream


def _upstream_versions_set(*, upstream: Upstream, versions: list[tuple[str, date | None]]) -> None:
    upstream.versions.exclude(name__in=[name for name, _ in versions]).delete()
    for name, released in versions:
        ApiVersion.objects.update_or_create(upstream=upstream, name=name, defaults={"released_on": released})


def upstream_check(*, base_url: str, replay_key_env: str = "") -> None:
    """Where an upstream may point and which variable may hold its key (see upstream_guard)."""
    errors = {}
    if problem := upstream_guard.base_url_problem(base_url):
        errors["base_url"] = problem
    if problem := upstream_guard.replay_key_env_problem(replay_key_env):
        errors["replay_key_env"] = problem
    if errors:
        raise ValidationError(errors)


class ReplayKeyRefused(ValueError):
    """The upstream names an environment variable replays may not send (stored before the rule)."""


def upstream_delete(*, upstream: Upstream) -> None:
    """Delete an upstream and everything recorded, replayed and reported for it."""
    with transaction.atomic():
        upstream.delete()


def upstream_set_replay_key(*, upstream: Upstream, replay_key: str) -> None:
    """Store a replay credential encrypted. It is never shown again, only replaced."""
    upstream.replay_key_encrypted = crypto.encrypt(replay_key) if replay_key else ""
    upstream.save(update_fields=["replay_key_encrypted"])


def upstream_replay_key(*, upstream: Upstream) -> str | None:
    """The credential replays send: the encrypted secret, else the named environment variable, if
    it is named MIGRATION_AUDIT_REPLAY_KEY_* (any other name raises ReplayKeyRefused)."""
    import os

    if upstream.replay_key_encrypted:
        return crypto.decrypt(upstream.replay_key_encrypted)
    if upstream.replay_key_env:
        if problem := upstream_guard.replay_key_env_problem(upstream.replay_key_env):
            raise ReplayKeyRefused(problem)
        return os.environ.get(upstream.replay_key_env) or None
    return None


def api_token_create(*, team: Team, name: str, created_by=None) -> tuple[ApiToken, str]:
    """A new ingest token. Returns the row and the token itself, which is shown once and not stored."""
    token = "ma_" + token_generator.token_urlsafe(32)
    row = ApiToken.objects.create(
        team=team,
        name=name,
        prefix=token[:10],
        token_hash=api_token_hash(token),
        created_by=created_by,
    )
    return row, token


def api_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_authenticate(*, token: str) -> ApiToken | None:
    row = (
        ApiToken.objects.select_related("team")
        .filter(token_hash=api_token_hash(token), revoked_at__isnull=True)
        .first()
    )
    if row is not None:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return row


def worker_heartbeat_record(*, hostname: str) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now()}
    )
    return heartbeat
