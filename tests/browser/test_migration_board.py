"""The migration board in real Chromium: the board, the burn-down, the per-client evidence, an
override and a claim through htmx, with screenshots in tests/browser/screenshots/."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from migrations_audit.models import Status
from migrations_audit.tracking import services
from tests.tracking.factories import sdk_traffic

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parent / "screenshots"
TARGET = "2026-10-21"


@pytest.fixture
def browser(chromium):
    """The session's one Chromium (tests/browser/conftest.py): two Playwright instances can't coexist."""
    return chromium


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    yield page
    context.close()


def login(page, username, password):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def shot(page, name):
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def migration(upstream_a):
    """Clients in most columns: still old, hit by a breaking change, mixed, done (the test puts one
    at risk by an override)."""
    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-billing", days_ago=list(range(28, -1, -3)))
    sdk_traffic(
        upstream=upstream_a,
        release="0.125.0",
        key="sk-ant-search",
        days_ago=list(range(25, -1, -4)),
        body={
            "model": "m",
            "max_tokens": 8,
            "temperature": 0.3,
            "messages": [{"role": "user", "content": "q"}],
        },
    )
    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-chat", days_ago=[27, 20, 14, 9, 6])
    sdk_traffic(upstream=upstream_a, release="2", key="sk-ant-chat", days_ago=[4, 3, 2, 1, 0], status=400)
    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-batch", days_ago=[29, 26, 22])
    sdk_traffic(
        upstream=upstream_a, release="2", key="sk-ant-batch", days_ago=list(range(21, -1, -1)), per_day=3
    )
    sdk_traffic(upstream=upstream_a, release="js", key="sk-ant-web", days_ago=[12, 5, 2])
    migration = services.migration_create(
        upstream=upstream_a,
        name="Move to 2026-10-21",
        target_version=TARGET,
        from_versions=["2023-06-01"],
        deadline=timezone.localdate() + timedelta(days=45),
    )
    services.migration_refresh(migration=migration)
    return migration


def test_migration_board_override_and_claim(page, alice, migration):
    login(page, "alice", "alice-password")
    slug = migration.upstream.slug
    page.goto(f"/u/{slug}/migrations/{migration.pk}/")
    board = page.locator("#board")
    for label in ("Not started", "Affected", "In progress", "At risk", "Migrated"):
        assert board.get_by_role("heading", name=label).count() == 1, label
    assert page.locator("svg[role=img] polyline.line-clients").count() == 1
    assert page.locator("svg[role=img] polyline.line-share").count() == 1
    shot(page, "migration-board")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "migration-board-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The per-client detail: evidence with links to the exchanges, then an override through htmx.
    affected = migration.states.get(derived_status=Status.AFFECTED)
    page.goto(f"/u/{slug}/migrations/{migration.pk}/clients/{affected.client_id}/")
    assert page.get_by_text("seen on its own exchanges").count() == 1
    assert page.locator(
        f"a[href='/u/{slug}/traffic/{affected.evidence['impact'][0]['exchange_ids'][0]}/']"
    ).count()
    page.get_by_label("Status:", exact=True).select_option(Status.AT_RISK.value)
    page.get_by_label("Reason:", exact=True).fill("Search team is on leave until after the deadline")
    with page.expect_response(lambda r: "/override/" in r.url):
        page.get_by_role("button", name="Save override").click()
    page.locator("#override [role=status]").wait_for()
    assert "Saved" in page.locator("#override").inner_text()
    # The status heading and the history were swapped out of band by the same response.
    assert page.locator("#summary h1 .track-status").inner_text() == "At risk"
    assert "Search team is on leave" in page.locator("#history").inner_text()
    # htmx swapped the form only: still the same document, no reload.
    assert page.evaluate("document.readyState") == "complete"
    shot(page, "migration-client-override")

    page.goto(f"/u/{slug}/migrations/{migration.pk}/")
    at_risk = page.locator(".status-col-at_risk")
    assert "Search team is on leave" in at_risk.inner_text()
    shot(page, "migration-board-after-override")

    # Claim an unowned client from the Clients page, through htmx.
    page.goto(f"/u/{slug}/clients/?owner=unowned")
    first_row = page.locator("tbody tr").first
    first_row.get_by_role("button", name="Claim").click()
    first_row.get_by_text("Team A").wait_for()
    shot(page, "clients-after-claim")

    # The profile of the client that upgraded to anthropic 2.x: the accidental migration callout.
    chat = migration.states.get(derived_status=Status.IN_PROGRESS).client
    page.goto(f"/u/{slug}/clients/{chat.pk}/")
    assert page.get_by_role("heading", name="Accidental migration").count() == 1
    shot(page, "client-profile")


def test_board_works_with_javascript_off(browser, live_server, alice, migration):
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    page = context.new_page()
    login(page, "alice", "alice-password")
    slug = migration.upstream.slug
    state = migration.states.filter(derived_status=Status.NOT_STARTED).order_by("client_id").first()
    page.goto(f"/u/{slug}/migrations/{migration.pk}/clients/{state.client_id}/")
    page.get_by_label("Owner:", exact=True).select_option(label="alice")
    page.get_by_label("Note:", exact=True).fill("Billing moves in sprint 42")
    page.get_by_role("button", name="Save note").click()
    page.wait_for_load_state()
    assert "Saved." in page.content()
    assert "Billing moves in sprint 42" in page.content()
    shot(page, "migration-client-no-js")
    context.close()


def test_create_a_migration_from_the_form(page, alice, upstream_a, tasks_eager):
    # The board is refreshed by a task queued as the migration is created: run at once here.
    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-form", days_ago=[3, 1])
    login(page, "alice", "alice-password")
    page.goto(f"/u/{upstream_a.slug}/migrations/")
    page.get_by_label("Name:", exact=True).fill("Q1 move to 2026-10-21")
    page.get_by_label("Deadline:", exact=True).fill((timezone.localdate() + timedelta(days=120)).isoformat())
    shot(page, "migrations-new")
    page.get_by_role("button", name="Create migration").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Q1 move to 2026-10-21").count() == 1
    assert page.locator(".status-col-not_started .board-card").count() == 1


def test_the_demo_board(page, db, tasks_eager):
    # The demo queues its request check and board refresh as tasks: run at once here.
    from migrations_audit.demo import DEMO_PASSWORD, DEMO_USERNAME, demo_seed
    from migrations_audit.models import Migration

    demo_seed()
    migration = Migration.objects.get()
    login(page, DEMO_USERNAME, DEMO_PASSWORD)
    page.goto(f"/u/{migration.upstream.slug}/migrations/{migration.pk}/")
    assert page.locator(".status-col-affected .board-card").count() >= 1
    shot(page, "demo-board")
    page.goto(f"/u/{migration.upstream.slug}/clients/")
    shot(page, "demo-clients")
