"""The request check at capture time, over real HTTP: checkout-service sends extended thinking with a
token budget to claude-sonnet-4-5 through the recording proxy (a real process, in front of the
emulator process); the upstream moves to claude-sonnet-5, whose model rule rejects that. The
findings appear as the proxy records, and the emulator, asked the same request with the target
model, answers exactly the error the model rule states."""

import time

import httpx
import pytest

from migrations_audit.diff.selectors import request_findings_summary
from migrations_audit.models import ModelRule, RequestFinding, Upstream
from tests.capture.test_proxy import proxy, recorded  # noqa: F401 - the proxy fixture

pytestmark = [pytest.mark.slow]

KEY = "sk-ant-model-rules-test-0123456789"
REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 4096,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "messages": [{"role": "user", "content": "Check out my cart"}],
}


def findings_of(count: int, *, timeout: float = 30) -> list[RequestFinding]:
    """The findings the proxy process stored, once `count` have arrived (it checks off the request path)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(RequestFinding.objects.select_related("model_rule", "client").order_by("exchange_id"))
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{RequestFinding.objects.count()} findings stored, expected {count}")


def test_requests_recorded_by_the_proxy_are_checked_under_the_target_model(
    proxy,  # noqa: F811
    emulator,
    celery_worker,  # the request check is a task, queued once each recorded batch commits
):
    upstream = proxy["upstream"]
    Upstream.objects.filter(pk=upstream.pk).update(target_model="claude-sonnet-5")
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "x-audit-client": "checkout-service"}
    with httpx.Client(timeout=30) as http:
        for n in range(5):
            body = {**REQUEST, "metadata": {"user_id": f"user-{n}"}}
            answer = http.post(f"{proxy['prefix']}/v1/messages", json=body, headers=headers)
            assert answer.status_code == 200, answer.text  # Sonnet 4.5 keeps the budget
        recorded(5)
        findings = findings_of(5)
        rule_key, model, field = (
            "sonnet-5-thinking-budget-tokens",
            "claude-sonnet-5",
            "/thinking/budget_tokens",
        )
        assert {(f.client.identity, f.model_rule.key, f.model, f.field) for f in findings} == {
            ("checkout-service", rule_key, model, field)
        }
        summary = request_findings_summary(upstream=upstream, version="2026-10-21")
        [row] = summary.rules
        assert (row.rule.key, row.exchanges, row.clients) == ("sonnet-5-thinking-budget-tokens", 5, 1)

        # What the request check predicts is what the API (here the emulator) answers for Sonnet 5.
        rule = ModelRule.objects.get(upstream=upstream, key="sonnet-5-thinking-budget-tokens")
        direct = http.post(
            f"{emulator}/v1/messages",
            json={**REQUEST, "model": "claude-sonnet-5"},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        assert direct.status_code == rule.error_status
        assert direct.json()["error"] == {"type": rule.error_type, "message": rule.error_message}
        assert findings[0].message == rule.error_message
