"""Pages, htmx partials and the API: alice (team A admin) changes, bob (viewer) reads, charlie
(team B) sees nothing of team A, whatever id he tries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from migrations_audit import services as core_services
from migrations_audit.models import Status, StatusChange
from migrations_audit.tracking import services

from .factories import sdk_traffic

TARGET = "2026-10-21"


@pytest.fixture
def migration(upstream_a):
    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-one", days_ago=[5, 3, 1])
    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-two", days_ago=[9, 6])
    sdk_traffic(upstream=upstream_a, release="2", key="sk-ant-two", days_ago=[2, 1, 0], status=400)
    migration = services.migration_create(
        upstream=upstream_a,
        name="To 2026-10-21",
        target_version=TARGET,
        from_versions=["2023-06-01"],
        deadline=timezone.localdate() + timedelta(days=60),
    )
    services.migration_refresh(migration=migration)
    return migration


@pytest.fixture
def other_migration(upstream_b):
    sdk_traffic(upstream=upstream_b, release="1.17.0", key="sk-ant-charlie", days_ago=[1])
    migration = services.migration_create(
        upstream=upstream_b,
        name="Team B's migration",
        target_version=TARGET,
        from_versions=["2023-06-01"],
        deadline=timezone.localdate() + timedelta(days=30),
    )
    services.migration_refresh(migration=migration)
    return migration


def urls_for(migration):
    slug = migration.upstream.slug
    client = migration.states.order_by("client_id").first().client
    return {
        "clients": reverse("migrations_audit:clients", args=[slug]),
        "client": reverse("migrations_audit:client", args=[slug, client.pk]),
        "migrations": reverse("migrations_audit:migrations", args=[slug]),
        "migration": reverse("migrations_audit:migration", args=[slug, migration.pk]),
        "migration_client": reverse(
            "migrations_audit:migration_client", args=[slug, migration.pk, client.pk]
        ),
        "override": reverse(
            "migrations_audit:migration_client_override", args=[slug, migration.pk, client.pk]
        ),
        "note": reverse("migrations_audit:migration_client_note", args=[slug, migration.pk, client.pk]),
        "claim": reverse("migrations_audit:client_claim", args=[slug, client.pk]),
        "refresh": reverse("migrations_audit:migration_refresh", args=[slug, migration.pk]),
        "close": reverse("migrations_audit:migration_close", args=[slug, migration.pk]),
        "api": reverse("migrations_audit:api_migration", args=[migration.pk]),
    }, client


READ_PAGES = ("clients", "client", "migrations", "migration", "migration_client")


def test_alice_reads_every_page_with_its_evidence(client, alice, migration):
    urls, first_client = urls_for(migration)
    client.force_login(alice)
    for name in READ_PAGES:
        response = client.get(urls[name])
        assert response.status_code == 200, name
    board = client.get(urls["migration"]).content.decode()
    assert "Not started" in board and "In progress" in board and "<svg" in board
    assert "Refresh from traffic" in board
    detail = client.get(urls["migration_client"]).content.decode()
    assert "Override the status" in detail and "Note and owner" in detail
    profile = client.get(urls["client"]).content.decode()
    assert "Versions over time" in profile and "Python 1.17.0" in profile
    # The client that moved to 2.x with a Bearer key is flagged, with the exchanges that show it.
    two = migration.states.exclude(client=first_client).get().client
    page = client.get(
        reverse("migrations_audit:client", args=[migration.upstream.slug, two.pk])
    ).content.decode()
    assert "Accidental migration" in page and "authorization" in page
    assert (
        reverse("migrations_audit:exchange", args=[migration.upstream.slug, two.exchanges.first().pk]) in page
    )


def test_pages_never_show_a_key(client, alice, migration):
    urls, _ = urls_for(migration)
    client.force_login(alice)
    for name in READ_PAGES:
        html = client.get(urls[name]).content.decode()
        assert "sk-ant-one" not in html and "sk-ant-two" not in html, name


def test_bob_the_viewer_reads_but_changes_nothing(client, bob, migration):
    urls, target = urls_for(migration)
    client.force_login(bob)
    for name in READ_PAGES:
        assert client.get(urls[name]).status_code == 200, name
    assert "Override the status" not in client.get(urls["migration_client"]).content.decode()
    assert "Claim" not in client.get(urls["clients"]).content.decode()
    assert "New migration" not in client.get(urls["migrations"]).content.decode()
    htmx = {"HTTP_HX_REQUEST": "true"}
    attempts = {
        "override": {"status": Status.MIGRATED, "reason": "trust me"},
        "note": {"note": "bob was here"},
        "claim": {},
        "refresh": {},
        "close": {},
        "migrations": {
            "name": "Bob's",
            "target_version": TARGET,
            "from_versions": ["2023-06-01"],
            "deadline": "2030-01-01",
            "quiet_period_days": 7,
            "at_risk_window_days": 14,
        },
    }
    for name, data in attempts.items():
        assert client.post(urls[name], data).status_code == 403, name
        assert client.post(urls[name], data, **htmx).status_code == 403, name
    state = migration.states.get(client=target)
    assert state.override_status == "" and state.note == ""
    target.refresh_from_db()
    assert target.team is None
    assert migration.upstream.migrations.count() == 1
    migration.refresh_from_db()
    assert migration.is_active


def test_charlie_of_team_b_gets_404_for_everything_of_team_a(client, charlie, migration, other_migration):
    urls, target = urls_for(migration)
    client.force_login(charlie)
    for name in READ_PAGES:
        assert client.get(urls[name]).status_code == 404, name
    for name in ("override", "note", "claim", "refresh", "close", "migrations"):
        assert client.post(urls[name], {"status": "", "reason": "x"}).status_code == 404, name
        assert client.post(urls[name], {}, HTTP_HX_REQUEST="true").status_code == 404, name
    assert client.get(urls["api"]).status_code == 404
    # Nor by guessing ids under his own upstream's slug.
    slug_b = other_migration.upstream.slug
    guesses = [
        reverse("migrations_audit:migration", args=[slug_b, migration.pk]),
        reverse("migrations_audit:client", args=[slug_b, target.pk]),
        reverse("migrations_audit:migration_client", args=[slug_b, other_migration.pk, target.pk]),
        reverse("migrations_audit:migration_client", args=[slug_b, migration.pk, target.pk]),
    ]
    for url in guesses:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("migrations_audit:client_claim", args=[slug_b, target.pk])).status_code == 404
    target.refresh_from_db()
    assert target.team is None
    # His own migration is his.
    assert client.get(reverse("migrations_audit:api_migration", args=[other_migration.pk])).status_code == 200


def test_alice_overrides_with_htmx_and_without_js(client, alice, migration):
    urls, target = urls_for(migration)
    client.force_login(alice)
    # Without a reason: the partial shows the error, nothing changes.
    response = client.post(
        urls["override"], {"status": Status.MIGRATED, "reason": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "Say why" in response.content.decode() and "<html" not in response.content.decode()
    assert migration.states.get(client=target).override_status == ""
    # Without JavaScript an invalid form comes back as the whole page with the error.
    response = client.post(urls["override"], {"status": Status.MIGRATED, "reason": ""})
    assert response.status_code == 400 and "Say why" in response.content.decode()

    response = client.post(
        urls["override"], {"status": Status.MIGRATED, "reason": "Moved to Bedrock"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "Saved" in response.content.decode()
    state = migration.states.get(client=target)
    assert (state.status, state.override_reason, state.override_by) == (
        Status.MIGRATED,
        "Moved to Bedrock",
        alice,
    )
    board = client.get(urls["migration"]).content.decode()
    assert "Override" in board and "Moved to Bedrock" in board
    change = StatusChange.objects.filter(migration=migration, client=target, is_override=True).get()
    assert change.by == alice and change.to_status == Status.MIGRATED

    # Clearing it without JS: post, redirect, derived status again.
    response = client.post(urls["override"], {"status": "", "reason": ""})
    assert response.status_code == 302
    assert migration.states.get(client=target).status == migration.states.get(client=target).derived_status
    assert StatusChange.objects.filter(migration=migration, client=target, is_override=True).count() == 2


def test_alice_sets_note_and_owner_but_only_a_team_member_can_own(client, alice, bob, charlie, migration):
    urls, target = urls_for(migration)
    client.force_login(alice)
    response = client.post(
        urls["note"], {"note": "Waiting on the SDK bump", "owner": bob.pk}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "Saved" in response.content.decode()
    state = migration.states.get(client=target)
    assert (state.note, state.owner) == ("Waiting on the SDK bump", bob)
    response = client.post(urls["note"], {"note": "x", "owner": charlie.pk})
    assert response.status_code == 400
    assert migration.states.get(client=target).owner == bob


def test_alice_claims_an_unowned_client(client, alice, migration):
    urls, target = urls_for(migration)
    client.force_login(alice)
    unowned = client.get(urls["clients"] + "?owner=unowned").content.decode()
    assert target.display_name in unowned and "Claim" in unowned
    response = client.post(urls["claim"], {}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Team A" in response.content.decode()
    target.refresh_from_db()
    assert target.team == migration.upstream.team
    assert target.display_name not in client.get(urls["clients"] + "?owner=unowned").content.decode()
    # A second claim does not steal it; without JS it redirects with a message.
    response = client.post(urls["claim"], {}, follow=True)
    assert "already has an owner" in response.content.decode()


def test_alice_creates_a_migration_and_refreshes_it(
    client, alice, upstream_a, migration, tasks_eager, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    url = reverse("migrations_audit:migrations", args=[upstream_a.slug])
    bad = client.post(url, {"name": "Oops", "target_version": TARGET, "from_versions": [TARGET]})
    assert bad.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):  # the queued refresh runs on commit
        response = client.post(
            url,
            {
                "name": "Second wave",
                "target_version": TARGET,
                "from_versions": ["2023-06-01"],
                "deadline": (timezone.localdate() + timedelta(days=10)).isoformat(),
                "quiet_period_days": 7,
                "at_risk_window_days": 14,
            },
        )
    created = upstream_a.migrations.get(name="Second wave")
    assert response.status_code == 302 and response["Location"].endswith(f"/migrations/{created.pk}/")
    # Created, then refreshed by the task: the deadline is 10 days away, so nobody unmigrated is safe.
    assert {state.status for state in created.states.all()} == {Status.AT_RISK}
    # Refreshing queues the task rather than running it in the request; the page says so.
    with django_capture_on_commit_callbacks() as hooks:
        response = client.post(
            reverse("migrations_audit:migration_refresh", args=[upstream_a.slug, created.pk])
        )
    assert response.status_code == 302
    assert "a refresh is queued" in client.get(response["Location"]).content.decode()
    assert len(hooks) == 1
    hooks[0]()  # the commit: the tracking_refresh_migration task runs
    page = client.get(response["Location"]).content.decode()
    assert "a refresh is queued" not in page
    created.refresh_from_db()
    assert created.refreshed_at >= created.refresh_queued_at
    # Closed, it is no longer refreshed; reopened, it is again.
    close = reverse("migrations_audit:migration_close", args=[upstream_a.slug, created.pk])
    assert client.post(close, {"closed": "1"}).status_code == 302
    created.refresh_from_db()
    assert not created.is_active
    assert "Reopen migration" in client.get(response["Location"]).content.decode()
    client.post(close, {"closed": "0"})
    created.refresh_from_db()
    assert created.is_active


def test_api_board_for_session_and_team_token(client, alice, bob, charlie, migration, other_migration):
    api = reverse("migrations_audit:api_migration", args=[migration.pk])
    assert client.get(api).status_code == 401
    assert client.get(api, HTTP_AUTHORIZATION="Bearer ma_wrong").status_code == 401
    client.force_login(bob)
    body = client.get(api).json()
    assert body["target_version"] == TARGET and len(body["clients"]) == 2
    assert {c["status"] for c in body["clients"]} <= set(Status.values)
    one = body["clients"][0]
    assert {"status", "override", "evidence", "reason", "owner"} <= set(one)
    assert "sk-ant" not in client.get(api).content.decode()
    client.logout()
    _, token_a = core_services.api_token_create(team=migration.upstream.team, name="ci")
    _, token_b = core_services.api_token_create(team=other_migration.upstream.team, name="ci")
    assert client.get(api, HTTP_AUTHORIZATION=f"Bearer {token_a}").status_code == 200
    assert client.get(api, HTTP_AUTHORIZATION=f"Bearer {token_b}").status_code == 404
    other_api = reverse("migrations_audit:api_migration", args=[other_migration.pk])
    assert client.get(other_api, HTTP_AUTHORIZATION=f"Bearer {token_a}").status_code == 404
    client.force_login(charlie)
    assert client.get(api).status_code == 404


def test_board_polls_as_an_htmx_partial(client, bob, migration):
    urls, _ = urls_for(migration)
    client.force_login(bob)
    response = client.get(urls["migration"] + "?partial=board", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert 'id="board"' in html and 'hx-trigger="every 60s"' in html


def test_admin_lists_tracking_rows_and_keeps_history_read_only(client, migration):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "root-password")
    client.force_login(root)
    for model in ("migration", "migrationclientstate", "statuschange"):
        assert client.get(reverse(f"admin:migrations_audit_{model}_changelist")).status_code == 200, model
    change = migration.status_changes.first()
    page = client.get(
        reverse("admin:migrations_audit_statuschange_change", args=[change.pk])
    ).content.decode()
    assert "sk-ant" not in page and 'name="cause"' not in page


def test_what_a_client_might_be_affected_by_is_shown_apart_and_never_counted(client, alice, migration):
    """A breaking difference that only other clients' replays show: the clients that read the same
    responses might be affected. Shown apart with the reason; their status does not move."""
    from migrations_audit.models import DifferenceSignature

    upstream = migration.upstream
    signature = DifferenceSignature.objects.create(
        upstream=upstream,
        signature="s" * 64,
        version_from="2023-06-01",
        version_to=TARGET,
        endpoint="POST /v1/messages",
        kind="field_removed",
        path="/stop_sequence",
        classification="breaking",
        count=2,
        exchanges=2,
    )
    services.migration_refresh(migration=migration)
    urls, first_client = urls_for(migration)
    state = migration.states.get(client=first_client)
    assert state.status == Status.NOT_STARTED and state.evidence["impact"] == []
    [might] = state.evidence["might"]
    assert not might["direct"] and "replays of other clients' exchanges show it" in might["why"]
    client.force_login(alice)
    clients_page = client.get(urls["clients"]).content.decode()
    assert "Might be affected: 1" in clients_page and "Affected: 1 breaking" not in clients_page
    page = client.get(urls["client"]).content.decode()
    assert "Might be affected" in page and "not counted" in page and "Not affected" in page
    assert "1 breaking" not in client.get(urls["migration"]).content.decode()

    # A replay of the client's own exchange shows it: now it is affected, and no longer "might".
    signature.clients.add(first_client)
    services.migration_refresh(migration=migration)
    state.refresh_from_db()
    assert state.status == Status.AFFECTED and state.evidence["might"] == []
    assert [card["title"] for card in state.evidence["impact"]] == ["field_removed at /stop_sequence"]
    assert "Affected: 1 breaking" in client.get(urls["clients"]).content.decode()
    assert "1 breaking" in client.get(urls["migration"]).content.decode()
