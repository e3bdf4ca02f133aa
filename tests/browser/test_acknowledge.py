"""Acknowledging in real Chromium: alice acknowledges a breaking difference on its page through
htmx (the panel swaps in place), then revokes it; the release gate follows."""

import io

import pytest
from django.core.management import call_command

from migrations_audit.models import AcknowledgementEvent
from tests.reports.test_reports import replayed, signature

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium, live_server):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    yield page
    context.close()


def gate() -> int:
    with pytest.raises(SystemExit) as exit_status:
        call_command("compat_report", "--upstream", "anthropic", stdout=io.StringIO(), stderr=io.StringIO())
    return exit_status.value.code


def test_alice_acknowledges_and_revokes_on_the_finding_page(page, alice, upstream_a, screenshot):
    replayed(upstream_a)
    breaking = signature(upstream_a, key="ab" * 32, path="/exception")
    page.goto("/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password")
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"/u/{upstream_a.slug}/differences/{breaking.pk}/")
    panel = page.locator(f"#ack-{breaking.signature}")
    panel.get_by_label("Why it may ship").fill("Nobody reads the exception field")
    panel.get_by_role("button", name="Acknowledge").click()
    panel.get_by_role("button", name="Revoke").wait_for()
    assert "by alice" in panel.inner_text() and page.url.endswith(f"/differences/{breaking.pk}/")
    screenshot("acknowledged")
    assert gate() == 0
    panel.get_by_label("Why revoke it").fill("It is read after all")
    panel.get_by_role("button", name="Revoke").click()
    panel.get_by_role("button", name="Acknowledge").wait_for()
    assert gate() == 1
    assert list(AcknowledgementEvent.objects.values_list("action", "via")) == [
        ("created", "page"),
        ("revoked", "page"),
    ]
