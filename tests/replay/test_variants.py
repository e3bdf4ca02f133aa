"""Replay variants: a target is a version plus request rewrites (model map, headers, key style),
spelled VERSION[@MODEL] or named; each answer's usage and timing are kept, and a run shows cost and
latency per variant and per client."""

import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.urls import reverse

from migrations_audit import services
from migrations_audit.models import Exchange, ReplayResult, ReplayRun, ReplayVariant
from migrations_audit.replay.costs import cost_usd, prices
from migrations_audit.replay.executor import replay_request
from migrations_audit.replay.forms import ReplayVariantForm
from migrations_audit.replay.runs import ReplayError, run_start
from migrations_audit.replay.variants import run_variant, variant_parse
from migrations_audit.secrets import MASK
from tests.conftest import child_env
from tests.replay.test_replay import FAST, finish, on_emulator, record
from tests.support.servers import PROJECT_ROOT

SONNET_5 = "2026-10-21@claude-sonnet-5"


def saved(upstream, **fields):
    form = ReplayVariantForm(
        {
            "name": "SDK 2 + Sonnet 5",
            "version": "2026-10-21",
            "model_map": "claude-sonnet-4-5 -> claude-sonnet-5",
            "set_headers": "anthropic-beta: tools-2026-01-01",
            "drop_headers": "x-stainless-lang",
            "key_style": "bearer",
            **fields,
        },
        upstream=upstream,
    )
    assert form.is_valid(), form.errors
    return form.save()


def test_a_variant_is_spelled_version_at_model_or_by_name(db, upstream_a):
    record(upstream_a, 2, headers={"x-stainless-lang": "python"})
    plain = variant_parse("2023-06-01", upstream=upstream_a)
    assert plain.version == "2023-06-01" and not plain.rewrites
    spelled = variant_parse(SONNET_5, upstream=upstream_a)
    assert spelled.version == "2026-10-21" and spelled.model_map == {"*": "claude-sonnet-5"}
    with pytest.raises(ValueError, match="has no version 2099-01-01@claude-sonnet-5"):
        variant_parse("2099-01-01@claude-sonnet-5", upstream=upstream_a)

    variant = saved(upstream_a)
    run = run_start(
        upstream=upstream_a, versions=["SDK 2 + Sonnet 5", "2023-06-01", SONNET_5], noise_sample_rate=0
    )
    assert run.versions == ["2023-06-01", "SDK 2 + Sonnet 5", SONNET_5], "in the upstream's order of versions"
    assert set(ReplayResult.objects.filter(run=run).values_list("version", flat=True)) == set(run.versions)

    exchange = Exchange.objects.filter(upstream=upstream_a).first()
    _, headers, body = replay_request(
        exchange=exchange, upstream=upstream_a, version=run_variant(run, variant.name)
    )
    sent = json.loads(body)
    assert sent["model"] == "claude-sonnet-5" and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["authorization"] == "Bearer sk-ant-replay-secret" and "x-api-key" not in headers
    assert headers["anthropic-beta"] == "tools-2026-01-01" and "x-stainless-lang" not in headers
    # A plain version sends the recorded bytes with only the version changed.
    _, headers, body = replay_request(exchange=exchange, upstream=upstream_a, version="2023-06-01")
    assert body == bytes(exchange.request_body) and headers["x-api-key"] == "sk-ant-replay-secret"

    with pytest.raises(ReplayError, match="no variant of that name"):
        run_start(upstream=upstream_a, versions=["SDK 3"])


def test_a_saved_variant_never_carries_a_key_and_names_a_known_version(db, upstream_a):
    cases = [
        ({"set_headers": "x-api-key: sk-ant-smuggled"}, "carries a secret"),
        ({"set_headers": "authorization: Bearer x"}, "carries a secret"),
        ({"version": "2099-01-01"}, "has no version 2099-01-01"),
        ({"model_map": "claude-sonnet-4-5 claude-sonnet-5"}, "is not `model -> model`"),
        ({"name": "a@b"}, "no comma or @"),
        ({"name": "2023-06-01"}, "is a version of"),
    ]
    for fields, message in cases:
        form = ReplayVariantForm(
            {"name": "v", "version": "2026-10-21", **fields, "key_style": ""}, upstream=upstream_a
        )
        assert not form.is_valid() and message in json.dumps(form.errors), (fields, form.errors)


def test_prices_are_data_with_their_date_and_source():
    table = prices()
    assert table["date"] and table["source"] and table["currency"] == "USD"
    assert cost_usd("claude-sonnet-4-5", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}) == 18.0
    assert cost_usd("gpt-4", {"input_tokens": 10}) is None


@pytest.fixture
def worker(worker_factory):
    return worker_factory(env=FAST)


def test_variants_replayed_by_a_worker_show_what_they_sent_and_their_cost_and_latency(
    worker, emulator, upstream_a, client, alice, team_a
):
    upstream = on_emulator(upstream_a, emulator, rate_limit_concurrency=8, rate_limit_rps=100)
    record(upstream, 2)
    record(upstream, 2, stream=True)
    variant = saved(upstream, set_headers="", drop_headers="")
    _, token = services.api_token_create(team=team_a, name="ci")
    made = client.__class__().post(
        "/api/v1/runs",
        json.dumps(
            {"upstream": upstream.slug, "variants": ["2023-06-01", variant.name], "noise_sample_rate": 0}
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert made.status_code == 201, made.content
    run = finish(ReplayRun.objects.get(pk=made.json()["id"]))
    assert run.status == ReplayRun.Status.COMPLETED, run.error
    assert run.versions == ["2023-06-01", variant.name]

    results = ReplayResult.objects.filter(run=run)
    assert set(results.values_list("state", flat=True)) == {"done"}
    for result in results:
        expected = "claude-sonnet-5" if result.version == variant.name else "claude-sonnet-4-5"
        assert result.model == expected
        assert result.input_tokens and result.output_tokens is not None
        assert result.first_byte_ms is not None and result.first_byte_ms <= result.duration_ms
    answered = results.filter(version=variant.name, streamed=False).first()
    assert json.loads(bytes(answered.response_body))["model"] == "claude-sonnet-5", "the emulator got the map"

    client.force_login(alice)
    page = client.get(reverse("migrations_audit:run", args=[upstream.slug, run.pk])).content.decode()
    assert "Cost and latency per variant" in page and variant.name in page
    assert prices()["date"] in page and "p50 solid, p95 hatched" in page and "$" in page
    assert "Per client" in page

    exchange = results.first().exchange
    page = client.get(
        reverse("migrations_audit:exchange", args=[upstream.slug, exchange.pk]) + f"?run={run.pk}"
    ).content.decode()
    assert "What each variant sent" in page and "claude-sonnet-5" in page
    assert f"Bearer {MASK}" in page and "sk-ant-replay-secret" not in page

    # compat_report compares the variants as it compares versions.
    report = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "compat_report",
            "--upstream",
            upstream.slug,
            "--versions",
            f"2023-06-01,{variant.name}",
        ],
        cwd=PROJECT_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode in (0, 1), report.stderr
    payload = json.loads(report.stdout)
    assert payload["summary"]["exchanges_compared"] == 4


def test_the_replay_command_takes_variants(db, upstream_a, capsys):
    record(upstream_a, 1)
    call_command(
        "replay", "--upstream", upstream_a.slug, "--variants", f"2023-06-01,{SONNET_5}", "--noise", "0"
    )
    run = ReplayRun.objects.get()
    assert run.versions == ["2023-06-01", SONNET_5]
    assert run.variants[SONNET_5]["model_map"] == {"*": "claude-sonnet-5"}
    assert ReplayVariant.objects.count() == 0


def test_an_upstreams_target_may_be_a_variant(client, alice, team_a):
    form = {
        "team": team_a.pk,
        "name": "Anthropic 2",
        "slug": "anthropic-2",
        "base_url": "http://127.0.0.1:9",
        "version_header": "anthropic-version",
        "baseline_version": "2023-06-01",
        "target_version": SONNET_5,
        "rate_limit_rps": 5,
        "rate_limit_concurrency": 2,
        "record_one_in": 1,
        "replay_key_header": "x-api-key",
        "versions_text": "2023-06-01\n2026-10-21",
        "endpoints_text": "POST /v1/messages",
        "volatile_text": "date",
        "replay_key": "sk-ant-replay-secret",
    }
    client.force_login(alice)
    assert client.post("/settings/upstreams/new/", form).status_code == 302
    bad = client.post(
        "/settings/upstreams/anthropic-2/", {**form, "target_version": "2099-01-01@claude-sonnet-5"}
    )
    assert "target_version" in bad.context["form"].errors
