"""A new user's first audit, in real Chromium against the real product: create an upstream on the
emulator, send SDK traffic through the proxy, replay it, watch the progress, read the differences
and an exchange side by side. Each step leaves a screenshot in tests/browser/screenshots/."""

import re

import pytest

from migrations_audit.models import Exchange, ReplayRun
from tests.support.sdk import run_sdk

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAFFIC = """
import json, anthropic
client = anthropic.Anthropic(api_key="sk-ant-browser-story-key", base_url=URL, max_retries=0)
messages = [{"role": "user", "content": "Plan my week"}]
for _ in range(6):
    client.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=40, messages=messages,
                           temperature=0.3)
with client.messages.stream(model="claude-3-5-sonnet-20241022", max_tokens=40, messages=messages) as s:
    s.get_final_text()
print(json.dumps({"ok": True}))
"""


def test_first_audit_from_login_to_side_by_side(page, screenshot, stack, alice, team_a):
    web = stack["web"]
    page.goto(f"{web}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password")
    page.click("main button[type=submit]")
    screenshot("01-home")
    assert "No upstream yet" in page.content()

    page.goto(f"{web}/settings/upstreams/new/")
    page.fill("#id_name", "Anthropic")
    page.fill("#id_slug", "anthropic")
    page.fill("#id_base_url", stack["emulator"])
    page.select_option("#id_baseline_version", "2023-06-01")
    page.select_option("#id_target_version", "2026-10-21")
    page.fill("#id_rate_limit_rps", "8")
    page.fill("#id_replay_key", "sk-ant-replay-story")
    screenshot("02-new-upstream")
    page.click("main button[type=submit]")
    screenshot("02b-after-save")
    assert page.url.endswith("/u/anthropic/"), page.locator(".error").all_text_contents()
    assert page.get_by_text("No traffic recorded yet").is_visible()
    proxy_hint = page.locator("code", has_text="/proxy/anthropic").first.text_content()
    screenshot("03-empty-overview")

    assert run_sdk("0.125.0", f"URL = {proxy_hint.split(chr(34))[1]!r}\n" + TRAFFIC) == {"ok": True}
    page.wait_for_function("() => true")
    for _ in range(50):
        if Exchange.objects.count() >= 7:
            break
        page.wait_for_timeout(200)
    page.reload()
    headline = page.locator(".headline")
    assert "Would your traffic survive 2026-10-21?" in headline.text_content()
    assert "temperature" in headline.text_content()
    screenshot("04-overview-with-findings")

    page.goto(f"{web}/u/anthropic/runs/new/")
    page.fill("#id_sample", "7")
    page.click("main button[type=submit]")
    assert re.search(r"/u/anthropic/runs/\d+/$", page.url)
    run_url = page.url
    seen = set()
    for _ in range(120):
        heading = page.locator("#progress h2").text_content()
        seen.add(heading)
        if "Completed" in heading:
            break
        page.wait_for_timeout(250)
    assert page.url == run_url, "progress updates in place, without navigating"
    assert any("Completed" in text for text in seen) and len(seen) >= 2, seen
    screenshot("05-run-completed")
    assert ReplayRun.objects.get().status == "completed"

    page.goto(f"{web}/u/anthropic/differences/")
    table = page.locator("table").first.text_content()
    assert "outcome_changed" in table and "are rejected" in table
    screenshot("06-differences")
    page.get_by_role("link", name="Examples").first.click()
    page.locator("#examples a").first.click()
    assert page.get_by_text("Replayed under 2026-10-21").is_visible()
    assert page.locator(".side-by-side .column").count() == 3
    assert page.locator("tr td .badge.breaking").first.is_visible()
    screenshot("07-exchange-side-by-side")

    streamed = Exchange.objects.get(streamed=True)
    page.goto(f"{web}/u/anthropic/traffic/{streamed.pk}/")
    assert page.get_by_text("Stream timeline").is_visible()
    assert page.locator(".timeline tbody tr").count() > 5
    assert "incremental" in page.locator(".side-by-side").text_content()
    screenshot("08-stream-timeline")
