"""A report states what a move does to each client's cost and latency, from the recorded month's
volume (issue 20, item 3): "moving to SDK 2 + Sonnet 5 changes checkout-service's estimated
monthly cost by +12% and its p95 latency by -80 ms"."""

import jsonschema
import pytest

from migrations_audit.models import Client, ReplayResult, ReplayRun
from migrations_audit.replay.variants import Variant
from migrations_audit.reports.build import report_payload
from migrations_audit.reports.economics import economics_sentence, p95
from migrations_audit.reports.render import report_html
from tests.reports.test_reports import SCHEMA
from tests.tracking.factories import sdk_traffic

BASE = "2023-06-01@claude-sonnet-4-5"
TARGET = "2026-10-21@claude-sonnet-5"


def replayed(run, exchange, label, *, model, input_tokens, output_tokens, duration_ms):
    return ReplayResult.objects.create(
        run=run,
        exchange=exchange,
        version=label,
        state=ReplayResult.Status.DONE,
        status=200,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        duration_ms=duration_ms,
        first_byte_ms=duration_ms / 2,
    )


@pytest.fixture
def run(upstream_a):
    """checkout-service: 40 requests in the last 30 days (and 5 older), 4 replayed under each
    variant; the target answers with more output tokens and faster."""
    checkout = sdk_traffic(
        upstream=upstream_a, release="0.125.0", key="sk-ant-checkout", days_ago=[1, 5, 12, 20], per_day=10
    )
    sdk_traffic(upstream=upstream_a, release="0.125.0", key="sk-ant-checkout", days_ago=[40], per_day=5)
    Client.objects.filter(pk=checkout[0].client_id).update(label="checkout-service")
    run = ReplayRun.objects.create(
        upstream=upstream_a,
        status=ReplayRun.Status.COMPLETED,
        versions=[BASE, TARGET],
        variants={
            label: Variant(
                label=label, version=label.split("@")[0], model_map={"*": label.split("@")[1]}
            ).as_dict()
            for label in (BASE, TARGET)
        },
    )
    for n, exchange in enumerate(checkout[:4]):
        replayed(
            run,
            exchange,
            BASE,
            model="claude-sonnet-4-5",
            input_tokens=1000,
            output_tokens=200,
            duration_ms=900 + n * 100,
        )
        replayed(
            run,
            exchange,
            TARGET,
            model="claude-sonnet-5",
            input_tokens=1000,
            output_tokens=240,
            duration_ms=820 + n * 100,
        )
    return run


@pytest.mark.django_db
def test_the_report_states_each_clients_monthly_cost_and_p95_latency_change(upstream_a, run):
    payload = report_payload(upstream=upstream_a, version_from=BASE, version_to=TARGET)
    jsonschema.validate(payload, SCHEMA)
    economics = payload["economics"]
    assert (economics["run"], economics["from"], economics["to"], economics["days"]) == (
        run.pk,
        BASE,
        TARGET,
        30,
    )
    [checkout] = economics["clients"]
    assert checkout["client"] == "checkout-service"
    assert checkout["exchanges_30_days"] == 40  # the 5 older requests are not this month's
    # Per request: 1000 * $3 + 200 * $15 per million = $0.006, then 1000 * $3 + 240 * $15 = $0.0066.
    assert checkout["cost_per_request_usd"] == {"from": 0.006, "to": 0.0066}
    assert checkout["monthly_cost_change_pct"] == 10.0
    assert checkout["monthly_cost_change_usd"] == pytest.approx(0.024)
    assert checkout["p95_ms"] == {"from": 1100.0, "to": 1020.0}
    assert checkout["p95_change_ms"] == -80.0
    sentence = (
        f"Moving to {TARGET} changes checkout-service's estimated monthly cost by +10% (+0.02 USD over 40 "
        "exchanges in the last 30 days) and its p95 latency by -80 ms."
    )
    assert checkout["sentence"] == sentence
    assert sentence.replace("'", "&#x27;") in report_html(payload, title="Move to Sonnet 5")


@pytest.mark.django_db
def test_no_economics_for_plain_versions_or_a_run_without_usage(upstream_a, run):
    assert (
        report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")["economics"]
        is None
    )
    ReplayResult.objects.filter(run=run).update(input_tokens=None)
    payload = report_payload(upstream=upstream_a, version_from=BASE, version_to=TARGET)
    assert payload["economics"] is None
    jsonschema.validate(payload, SCHEMA)


def test_the_sentence_says_what_it_cannot_price_and_p95_is_the_nearest_rank():
    entry = {
        "client": "batch-job",
        "exchanges_30_days": 3,
        "monthly_cost_change_pct": None,
        "monthly_cost_change_usd": None,
        "p95_change_ms": 12.5,
        "unpriced": ["claude-next"],
    }
    assert economics_sentence(entry, to="SDK 2 + Next") == (
        "Moving to SDK 2 + Next changes batch-job's p95 latency by +12.5 ms (not priced: claude-next)."
    )
    assert p95([]) is None
    assert p95([float(n) for n in range(1, 101)]) == 95.0
