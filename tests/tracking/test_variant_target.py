"""Tracking follows variants (issue 20, item 5): a migration's target may be a variant, a version
and a model, and a client counts as migrated when its traffic shows both."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from migrations_audit.models import Migration, ReplayVariant, Status
from migrations_audit.tracking import services

from .factories import sdk_traffic

TARGET = "2026-10-21@claude-sonnet-5"


def body(model):
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def migration_to(upstream, target, **options):
    return services.migration_create(
        upstream=upstream,
        name="SDK 2 + Sonnet 5",
        target_version=target,
        from_versions=["2023-06-01"],
        deadline=timezone.localdate() + timedelta(days=60),
        **options,
    )


@pytest.fixture
def fleet(upstream_a):
    """Three clients: one on SDK 2 and Sonnet 5 for 10 days, one on SDK 2 still with Sonnet 4.5,
    one that moved its model only lately (in its quiet period)."""
    both = sdk_traffic(
        upstream=upstream_a,
        release="2",
        key="sk-ant-both",
        days_ago=[12, 10, 5, 1],
        body=body("claude-sonnet-5"),
    )
    sdk_traffic(upstream=upstream_a, release="0.125.0", key="sk-ant-both", days_ago=[20])
    version_only = sdk_traffic(
        upstream=upstream_a,
        release="2",
        key="sk-ant-version",
        days_ago=[12, 1],
        body=body("claude-sonnet-4-5"),
    )
    late = sdk_traffic(
        upstream=upstream_a, release="2", key="sk-ant-late", days_ago=[12, 8], body=body("claude-sonnet-4-5")
    )
    sdk_traffic(
        upstream=upstream_a, release="2", key="sk-ant-late", days_ago=[2, 1], body=body("claude-sonnet-5")
    )
    return {"both": both[0].client, "version_only": version_only[0].client, "late": late[0].client}


@pytest.mark.django_db
def test_a_client_is_migrated_only_when_its_traffic_shows_the_target_version_and_model(upstream_a, fleet):
    migration = migration_to(upstream_a, TARGET)
    assert (migration.target_version, migration.target_model, migration.target_label) == (
        "2026-10-21",
        "claude-sonnet-5",
        TARGET,
    )
    services.migration_refresh(migration=migration)
    states = {state.client_id: state for state in migration.states.all()}
    both, version_only, late = (states[fleet[name].pk] for name in ("both", "version_only", "late"))
    assert both.status == Status.MIGRATED
    assert TARGET in both.reason
    # On the target version, but still with the old model: not migrated (the version alone was).
    assert version_only.status == Status.NOT_STARTED
    assert "2026-10-21@claude-sonnet-4-5" in version_only.reason
    assert set(version_only.evidence["versions"]) == {"2026-10-21@claude-sonnet-4-5"}
    # Moved its model 2 days ago: on its way, in the quiet period.
    assert late.status == Status.IN_PROGRESS
    assert "quiet period" in late.reason

    # The same traffic against the version alone: all three are on it.
    plain = migration_to(upstream_a, "2026-10-21")
    services.migration_refresh(migration=plain)
    assert {state.status for state in plain.states.all()} == {Status.MIGRATED}


@pytest.mark.django_db
def test_a_saved_variant_or_an_explicit_model_names_the_target(upstream_a):
    ReplayVariant.objects.create(
        upstream=upstream_a, name="SDK 2 + Sonnet 5", version="2026-10-21", model_map="* -> claude-sonnet-5"
    )
    saved = migration_to(upstream_a, "SDK 2 + Sonnet 5")
    assert (saved.target_version, saved.target_model) == ("2026-10-21", "claude-sonnet-5")
    explicit = migration_to(upstream_a, "2026-10-21", target_model="claude-opus-4-8")
    assert explicit.target_label == "2026-10-21@claude-opus-4-8"


@pytest.mark.django_db
def test_the_migrations_page_creates_a_variant_target(client, alice, upstream_a, fleet):
    client.force_login(alice)
    url = reverse("migrations_audit:migrations", args=[upstream_a.slug])
    response = client.post(
        url,
        {
            "name": "Sonnet 5",
            "target_version": "2026-10-21",
            "target_model": "claude-sonnet-5",
            "from_versions": ["2023-06-01"],
            "deadline": (timezone.localdate() + timedelta(days=60)).isoformat(),
            "quiet_period_days": 7,
            "at_risk_window_days": 14,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    migration = Migration.objects.get(name="Sonnet 5")
    assert migration.target_label == TARGET
    assert TARGET in client.get(url).content.decode()
