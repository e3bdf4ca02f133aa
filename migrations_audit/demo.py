"""The demo a newcomer sees after `make run`: the Anthropic upstream on the built-in emulator."""

from django.contrib.auth import get_user_model

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
    return f"{upstream.exchanges.count()} exchanges recorded"
