"""Issue 20 end to end: a real SDK client through the proxy, a real worker replaying its traffic
under "2023-06-01 + claude-sonnet-4-5" and "2026-10-21 + claude-sonnet-5". Each model rule the
recorded requests hit is found and explained, cost and latency are reported per variant (and per
client in the report), and no breaking difference is left unexplained."""

import pytest

from migrations_audit.models import DifferenceSignature, Exchange, ReplayRun
from migrations_audit.replay.costs import run_costs
from migrations_audit.replay.runs import run_start
from migrations_audit.reports.build import report_payload
from migrations_audit.reports.render import report_html
from tests.integration.test_end_to_end import sdk, wait_for

pytestmark = pytest.mark.slow

BASE = "2023-06-01@claude-sonnet-4-5"
TARGET = "2026-10-21@claude-sonnet-5"

CHECKOUT = """
import json, anthropic
client = anthropic.Anthropic(api_key=KEY, base_url=URL, max_retries=0)
messages = [{"role": "user", "content": "Summarise the order"}]
client.messages.create(model="claude-sonnet-4-5", max_tokens=2048, messages=messages,
                       thinking={"type": "enabled", "budget_tokens": 1024})
client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages, temperature=0.2)
client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages)
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=messages) as stream:
    stream.get_final_message()
print(json.dumps({"ok": True}))
"""


def test_a_move_of_version_and_model_is_replayed_explained_and_priced(product):
    upstream = product["upstream"]
    sdk("0.125.0", product["prefix"], CHECKOUT)
    wait_for(lambda: Exchange.objects.filter(upstream=upstream).count() >= 4, what="4 recorded exchanges")
    assert set(Exchange.objects.filter(upstream=upstream).values_list("status", flat=True)) == {200}

    run = run_start(upstream=upstream, versions=[BASE, TARGET], noise_sample_rate=0)
    wait_for(
        lambda: ReplayRun.objects.get(pk=run.pk).status not in ("pending", "running"),
        timeout=180,
        what="the run to finish",
    )
    run.refresh_from_db()
    assert run.status == ReplayRun.Status.COMPLETED, run.error

    breaking = list(
        DifferenceSignature.objects.filter(
            upstream=upstream,
            version_from=BASE,
            version_to=TARGET,
            classification="breaking",
            exchanges__gt=0,
        ).select_related("rule", "model_rule")
    )
    # The model rule the requests hit (Sonnet 5 rejects thinking.budget_tokens), and the version's
    # own rule (2026-10-21 rejects temperature), each found by replay and explained.
    explained = {(s.kind, s.path): s.explained_by.ref for s in breaking if s.explained_by}
    assert (
        explained[("outcome_changed", "/thinking/budget_tokens")] == "model:sonnet-5-thinking-budget-tokens"
    )
    assert explained[("outcome_changed", "/temperature")] == "sampling-parameters-removed"
    unexplained = [f"{s.kind} {s.path} {s.endpoint}" for s in breaking if s.explained_by is None]
    assert unexplained == []
    # The answers of the two models differ in text, ids and token counts: noise, not breaking.
    noise = set(
        DifferenceSignature.objects.filter(
            upstream=upstream, version_from=BASE, version_to=TARGET, classification="noise"
        ).values_list("path", flat=True)
    )
    assert "/model" in noise or any(path.startswith("stream:") for path in noise)

    # Cost and latency per variant.
    costs = run_costs(run=run)
    by_label = {variant["label"]: variant for variant in costs["variants"]}
    assert set(by_label) == {BASE, TARGET}
    for variant in by_label.values():
        assert variant["requests"] >= 2 and variant["tokens"] > 0
        assert variant["cost"] is not None and variant["p95_ms"] is not None

    # And the report states it per client, from the recorded month's volume.
    payload = report_payload(upstream=upstream, version_from=BASE, version_to=TARGET)
    [client] = payload["economics"]["clients"]
    assert client["exchanges_30_days"] == 4
    assert client["p95_change_ms"] is not None and client["monthly_cost_change_pct"] is not None
    assert client["sentence"].startswith(f"Moving to {TARGET} changes ")
    assert "estimated monthly cost by" in client["sentence"] and "p95 latency by" in client["sentence"]
    html = report_html(payload, title="SDK 2 + Sonnet 5")
    assert "Cost and latency of the move" in html
    assert payload["summary"]["unexplained"] == 0
