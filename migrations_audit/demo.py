"""The demo a newcomer sees after `make run`: the Anthropic upstream on the built-in emulator."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from migrations_audit import services
from migrations_audit.models import Membership, Team, Upstream

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"
DEMO_TEAM_SLUG = "demo"
DEMO_UPSTREAM_SLUG = "anthropic"
EMULATOR_URL = "http://127.0.0.1:8100"
# The emulator accepts any key; this is the replay credential the demo upstream stores encrypted.
DEMO_REPLAY_KEY = "sk-ant-demo-replay-key"


def demo_seed(*, emulator_url: str = EMULATOR_URL) -> str:
    """Create what is missing of the demo; running it again changes nothing."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=DEMO_USERNAME, defaults={"email": "demo@example.com"})
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save()
    team = Team.objects.filter(slug=DEMO_TEAM_SLUG).first() or services.team_create(
        name="Demo team", slug=DEMO_TEAM_SLUG
    )
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Membership.Role.ADMIN})
    upstream = Upstream.objects.filter(slug=DEMO_UPSTREAM_SLUG).first()
    if upstream is None:
        upstream = services.upstream_create(
            team=team,
            name="Anthropic (emulator)",
            slug=DEMO_UPSTREAM_SLUG,
            base_url=emulator_url,
            baseline_version="2023-06-01",
            target_version="2026-10-21",
            replay_key=DEMO_REPLAY_KEY,
        )
    if not upstream.exchanges.exists():
        from migrations_audit.demo_traffic import demo_traffic_record

        demo_traffic_record(upstream=upstream)
    if not upstream.migrations.exists():
        _demo_migration(upstream=upstream, created_by=user)
    if not upstream.runs.exists():
        _demo_runs(upstream=upstream, created_by=user)
    return (
        f"{upstream.exchanges.count()} exchanges recorded, {upstream.runs.count()} replay runs queued or done"
    )


def _demo_runs(*, upstream: Upstream, created_by) -> None:
    """Two replays queued for the worker that `make run` starts: the migration under way on Messages,
    and the legacy one on Text Completions, so replay-confirmed differences appear within seconds."""
    from migrations_audit.replay.runs import run_start

    run_start(
        upstream=upstream,
        versions=["2023-06-01", "2026-10-21"],
        created_by=created_by,
        selection={"endpoint": "POST /v1/messages", "sample": 40},
    )
    run_start(
        upstream=upstream,
        versions=["2023-01-01", "2023-06-01"],
        created_by=created_by,
        selection={"endpoint": "POST /v1/complete", "sample": 20},
    )


def _demo_migration(*, upstream: Upstream, created_by) -> None:
    """The migration under way, its board filled from the recorded traffic by a refresh queued after
    the traffic's request check."""
    from migrations_audit.tracking.services import migration_create, migration_refresh_queue

    migration = migration_create(
        upstream=upstream,
        name="Move to 2026-10-21",
        target_version="2026-10-21",
        from_versions=["2023-01-01", "2023-06-01"],
        deadline=timezone.localdate() + timedelta(days=45),
        created_by=created_by,
    )
    migration_refresh_queue(migration=migration)
