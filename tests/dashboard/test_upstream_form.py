"""The upstream settings page creates and updates through the services: one way to do either."""

from django.urls import reverse

from migrations_audit import crypto
from migrations_audit.diff.rules import ruleset_load
from migrations_audit.models import ChangelogRule, Upstream


def form_data(team, **changes):
    data = {
        "team": team.pk,
        "name": "Claude",
        "slug": "claude",
        "base_url": "http://127.0.0.1:9/",
        "version_header": "Anthropic-Version",
        "baseline_version": "2023-06-01",
        "target_version": "2026-10-21",
        "versions_text": "2023-06-01 2023-06-01\n2026-10-21 2026-10-21",
        "endpoints_text": "POST /v1/messages",
        "volatile_text": "Request-Id\nanthropic-ratelimit-*",
        "rate_limit_rps": 5,
        "rate_limit_concurrency": 4,
        "max_tokens_clamp": 64,
        "record_one_in": 1,
        "replay_key": "sk-ant-form-secret",
        "replay_key_header": "x-api-key",
    }
    data.update(changes)
    return data


def test_alice_creates_then_edits_an_upstream_through_the_services(client, alice, team_a):
    client.force_login(alice)
    response = client.post(reverse("migrations_audit:upstream_new"), form_data(team_a))
    assert response.status_code == 302, response.content.decode()[:2000]
    upstream = Upstream.objects.get(slug="claude")
    assert (upstream.base_url, upstream.version_header) == ("http://127.0.0.1:9", "anthropic-version")
    assert upstream.volatile_headers == ["request-id", "anthropic-ratelimit-*"]
    assert crypto.decrypt(upstream.replay_key_encrypted) == "sk-ant-form-secret"
    assert ChangelogRule.objects.filter(upstream=upstream).count() == len(ruleset_load("anthropic"))
    ChangelogRule.objects.filter(upstream=upstream).first().delete()  # an admin removed a rule

    edit = reverse("migrations_audit:upstream_edit", args=["claude"])
    changes = {"name": "Claude API", "versions_text": "2026-10-21", "baseline_version": "", "replay_key": ""}
    assert client.post(edit, form_data(team_a, **changes)).status_code == 302
    upstream.refresh_from_db()
    assert upstream.name == "Claude API"
    assert list(upstream.versions.values_list("name", flat=True)) == ["2026-10-21"]
    assert crypto.decrypt(upstream.replay_key_encrypted) == "sk-ant-form-secret", "empty keeps the key"
    rules = ChangelogRule.objects.filter(upstream=upstream).count()
    assert rules == len(ruleset_load("anthropic")) - 1, "rules are installed on creation only"

    cleared = {**changes, "clear_replay_key": "on"}
    assert client.post(edit, form_data(team_a, **cleared)).status_code == 302
    upstream.refresh_from_db()
    assert upstream.replay_key_encrypted == ""


def test_bob_cannot_edit_an_upstream(client, bob, upstream_a):
    client.force_login(bob)
    edit = reverse("migrations_audit:upstream_edit", args=[upstream_a.slug])
    assert client.post(edit, form_data(upstream_a.team, slug=upstream_a.slug)).status_code == 403
