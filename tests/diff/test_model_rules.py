"""Model rules as data (reference: anthropic-models.md, "Request parameters that newer models reject"):
which requests each model rejects, the request check at capture time under the upstream's target
model, and the explanation of an outcome_changed that replay finds.

Team A moves checkout-service from claude-sonnet-4-5 to claude-sonnet-5; checkout-service still asks
for extended thinking with a token budget."""

import hashlib
import importlib
import json

import pytest
from django.utils import timezone

from migrations_audit.capture.services import traffic_days_add
from migrations_audit.diff.compare import compare_responses
from migrations_audit.diff.rules import changes_explain, fields_related
from migrations_audit.diff.selectors import request_findings_summary, signatures_for_upstream
from migrations_audit.diff.services import (
    exchanges_diff_record,
    model_rules_install,
    request_findings_record,
    snapshot_from_result,
)
from migrations_audit.emulator import EmulatorOptions, respond
from migrations_audit.model_rules import model_ruleset_load, model_violations, rule_ref, shape_ruleset_load
from migrations_audit.models import (
    Client,
    Difference,
    Exchange,
    ModelRule,
    ReplayResult,
    ReplayRun,
    RequestFinding,
    Upstream,
)
from migrations_audit.reports.build import report_payload
from migrations_audit.tracking.verdicts import client_verdicts

SPECS = {spec.key: spec for spec in model_ruleset_load("anthropic")}
SHAPES = {spec.key for spec in shape_ruleset_load("anthropic")}  # explain shapes across models
BUDGET = {"type": "enabled", "budget_tokens": 2048}
HI = [{"role": "user", "content": "Hi"}]
PREFILL = [*HI, {"role": "assistant", "content": "{"}]


def body(model: str, **extra) -> bytes:
    return json.dumps({"model": model, "max_tokens": 4096, "messages": HI, **extra}).encode()


def faults(raw: bytes, *, model: str = "", path: str = "/v1/messages") -> list[tuple[str, str]]:
    violations = model_violations(rules=SPECS.values(), method="POST", path=path, body=raw, model=model)
    return [(v.rule_key, v.field) for v in violations]


# --- Matching: each rule of the reference ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # temperature on Opus 4.8 (and its dated snapshots), not on Opus 4.7
        (body("claude-opus-4-8", temperature=0.2), [("opus-4-8-temperature", "/temperature")]),
        (body("claude-opus-4-8-20260528", temperature=0), [("opus-4-8-temperature", "/temperature")]),
        (body("claude-opus-4-7", temperature=0.2), []),
        # thinking.budget_tokens on Sonnet 5, Opus 4.7, Opus 4.8, Fable 5
        (
            body("claude-sonnet-5", thinking=BUDGET),
            [("sonnet-5-thinking-budget-tokens", "/thinking/budget_tokens")],
        ),
        (
            body("claude-opus-4-7", thinking=BUDGET),
            [("opus-4-7-thinking-budget-tokens", "/thinking/budget_tokens")],
        ),
        (
            body("claude-opus-4-8", thinking=BUDGET),
            [("opus-4-8-thinking-budget-tokens", "/thinking/budget_tokens")],
        ),
        (
            body("claude-fable-5", thinking=BUDGET),
            [("fable-5-thinking-budget-tokens", "/thinking/budget_tokens")],
        ),
        # ... but adaptive thinking passes, and Sonnet 4.5, Opus 4.6 or Sonnet 5.5 keep the budget
        (body("claude-sonnet-5", thinking={"type": "adaptive"}), []),
        (body("claude-sonnet-4-5", thinking=BUDGET), []),
        (body("claude-opus-4-6", thinking=BUDGET), []),
        (body("claude-sonnet-5-5", thinking=BUDGET), []),
        # assistant prefill on the 4.6 models, not when the user has the last word
        (body("claude-opus-4-6", messages=PREFILL), [("opus-4-6-assistant-prefill", "/messages/1")]),
        (body("claude-sonnet-4-6", messages=PREFILL), [("sonnet-4-6-assistant-prefill", "/messages/1")]),
        (body("claude-sonnet-4-6", messages=[*PREFILL, *HI]), []),
        (body("claude-sonnet-4-5", messages=PREFILL), []),
        # disabled thinking on Fable 5 (which always thinks); not on Fable 5.1, another model
        (
            body("claude-fable-5", thinking={"type": "disabled"}),
            [("fable-5-thinking-disabled", "/thinking/type")],
        ),
        (body("claude-fable-5", thinking={"type": "adaptive"}), []),
        (body("claude-fable-5-1", thinking={"type": "disabled"}), []),
        # Opus 4.8 with both: each fault, in the rules file's order
        (
            body("claude-opus-4-8", temperature=1, thinking=BUDGET),
            [
                ("opus-4-8-temperature", "/temperature"),
                ("opus-4-8-thinking-budget-tokens", "/thinking/budget_tokens"),
            ],
        ),
    ],
)
def test_each_model_rule_of_the_reference_matches_what_it_says(raw, expected):
    assert faults(raw) == expected


def test_the_target_model_replaces_the_model_the_request_names():
    raw = body("claude-sonnet-4-5", thinking=BUDGET)
    assert faults(raw) == []
    assert faults(raw, model="claude-sonnet-5") == [
        ("sonnet-5-thinking-budget-tokens", "/thinking/budget_tokens")
    ]
    [violation] = model_violations(
        rules=SPECS.values(), method="POST", path="/v1/messages", body=raw, model="claude-sonnet-5"
    )
    assert (violation.model, violation.message) == (
        "claude-sonnet-5",
        SPECS[violation.rule_key].error_message,
    )


def test_token_counting_and_each_request_of_a_batch_are_checked():
    raw = body("claude-opus-4-8", temperature=0.5)
    assert faults(raw, path="/v1/messages/count_tokens") == [("opus-4-8-temperature", "/temperature")]
    batch = json.dumps(
        {
            "requests": [
                {"custom_id": "a", "params": json.loads(body("claude-sonnet-4-5", temperature=0.5))},
                {"custom_id": "b", "params": json.loads(body("claude-opus-4-8", temperature=0.5))},
            ]
        }
    ).encode()
    assert faults(batch, path="/v1/messages/batches") == [
        ("opus-4-8-temperature", "/requests/1/params/temperature")
    ]
    # Not an endpoint that names a model: nothing to check.
    assert faults(raw, path="/v1/complete") == []
    assert faults(b"{not json") == []


# --- Explanation of an outcome_changed ------------------------------------------------------------


def emulated(raw: bytes, version: str = "2026-10-21"):
    headers = {"anthropic-version": version, "x-api-key": "sk-ant-test", "content-type": "application/json"}
    return respond("POST", "/v1/messages", headers, raw, options=EmulatorOptions(seed=0))


class _Answer:
    """An emulator answer as a ReplayResult-like snapshot source."""

    def __init__(self, answer):
        self.status, self.response_headers = answer.status, dict(answer.headers)
        self.response_body, self.streamed, self.response_events, self.error = (
            answer.full_body(),
            False,
            [],
            "",
        )


@pytest.mark.parametrize("key", list(SPECS))
def test_an_outcome_changed_is_explained_by_the_model_rule_of_the_model_sent(key):
    """Accepted before, rejected by the model now (the emulator's own answer): the model rule of the
    model the rejected side was sent with explains it, at the field it finds at fault."""
    spec = SPECS[key]
    model = {
        "claude-opus-4-8*": "claude-opus-4-8",
        "claude-opus-4-7*": "claude-opus-4-7",
        "claude-opus-4-6*": "claude-opus-4-6",
        "claude-sonnet-4-6*": "claude-sonnet-4-6",
    }.get(spec.model_pattern, spec.model_pattern)
    extra = {
        "opus-4-8-temperature": {"temperature": 0.3},
        "fable-5-thinking-disabled": {"thinking": {"type": "disabled"}},
    }.get(key, {"messages": PREFILL} if "prefill" in key else {"thinking": BUDGET})
    raw = body("claude-sonnet-4-5", **extra)
    accepted = snapshot_from_result(_Answer(emulated(raw, "2023-06-01")))
    rejected = snapshot_from_result(_Answer(emulated(body(model, **extra), "2023-06-01")))
    assert (accepted.status, rejected.status) == (200, spec.error_status)
    changes = [c for c in compare_responses(accepted, rejected) if c.kind == "outcome_changed"]
    [change] = changes_explain(
        changes,
        rules=[],
        version_from="2023-06-01",
        version_to="2023-06-01",
        endpoint="POST /v1/messages",
        request_body=raw,
        model_rules=list(SPECS.values()),
        model=model,
    )
    [violation] = model_violations(rules=[spec], method="POST", path="/v1/messages", body=raw, model=model)
    # At the field the error names: the rule's field, or a part of it (thinking.type.disabled).
    assert (change.rule_key, change.classification) == (rule_ref(key), "breaking")
    assert fields_related(change.path, violation.field), change.path


def test_an_error_about_another_field_is_not_explained_by_a_model_rule():
    raw = body("claude-opus-4-8", temperature=0.3, max_tokens=4096)
    accepted = snapshot_from_result(_Answer(emulated(body("claude-opus-4-7"), "2023-06-01")))
    other = snapshot_from_result(_Answer(emulated(body("claude-opus-4-8", max_tokens=0), "2023-06-01")))
    changes = [c for c in compare_responses(accepted, other) if c.kind == "outcome_changed"]
    [change] = changes_explain(
        changes,
        rules=[],
        version_from="2023-06-01",
        version_to="2026-10-21",
        endpoint="POST /v1/messages",
        request_body=raw,
        model_rules=list(SPECS.values()),
    )
    assert (change.path, change.rule_key) == ("/max_tokens", None)


# --- On real rows: installed rules, the capture-time check, replay, pages and reports --------------


@pytest.fixture
def upstream(upstream_a):
    """Team A's Anthropic upstream (model rules installed when it was created), moving to Sonnet 5."""
    Upstream.objects.filter(pk=upstream_a.pk).update(target_model="claude-sonnet-5")
    upstream_a.refresh_from_db()
    return upstream_a


def record(upstream, raw: bytes, *, who: Client, version: str = "2023-06-01") -> Exchange:
    answer = emulated(raw, version)
    exchange = Exchange.objects.create(
        upstream=upstream,
        client=who,
        started_at=timezone.now(),
        method="POST",
        path="/v1/messages",
        endpoint="POST /v1/messages",
        api_version=version,
        request_body=raw,
        status=answer.status,
        response_headers=dict(answer.headers),
        response_body=answer.full_body(),
        content_hash=hashlib.sha256(raw + version.encode()).hexdigest(),
    )
    traffic_days_add(upstream=upstream, exchanges=[exchange])
    request_findings_record(exchanges=[exchange])  # as capture does once it stored a batch
    return exchange


@pytest.mark.django_db
def test_model_rules_are_installed_for_anthropic_upstreams_and_keep_admin_edits(upstream):
    assert set(upstream.model_rules.values_list("key", flat=True)) == set(SPECS) | SHAPES
    rule = ModelRule.objects.get(upstream=upstream, key="opus-4-8-temperature")
    assert (rule.error_status, rule.error_type, rule.error_message) == (
        400,
        "invalid_request_error",
        "`temperature` is deprecated for this model.",
    )
    rule.title = "Edited in the admin"
    rule.save()
    assert model_rules_install(upstream=upstream) == 0
    assert ModelRule.objects.get(pk=rule.pk).title == "Edited in the admin"
    assert model_rules_install(upstream=upstream, overwrite=True) == len(SPECS) + len(SHAPES)


@pytest.mark.django_db
def test_the_request_check_flags_what_the_target_model_rejects(upstream, client, alice):
    """47 requests of checkout-service would be rejected by claude-sonnet-5: thinking.budget_tokens."""
    checkout = Client.objects.create(upstream=upstream, kind="declared", identity="checkout-service")
    search = Client.objects.create(upstream=upstream, kind="declared", identity="search")
    for n in range(47):
        record(
            upstream, body("claude-sonnet-4-5", thinking=BUDGET, metadata={"user_id": f"u{n}"}), who=checkout
        )
    record(upstream, body("claude-sonnet-4-5", thinking={"type": "adaptive"}), who=search)
    # Sent already as the target (version and model): its own answer says how it fares.
    record(upstream, body("claude-sonnet-5", thinking=BUDGET), who=search, version="2026-10-21")

    findings = RequestFinding.objects.filter(upstream=upstream)
    assert findings.count() == 47
    assert {(f.model_rule.key, f.model, f.field, f.version, f.rule_id) for f in findings} == {
        ("sonnet-5-thinking-budget-tokens", "claude-sonnet-5", "/thinking/budget_tokens", "2026-10-21", None)
    }
    summary = request_findings_summary(upstream=upstream, version="2026-10-21")
    [row] = summary.rules
    assert (row.rule.title, row.exchanges, row.clients) == (
        "Claude Sonnet 5 rejects `thinking.budget_tokens`",
        47,
        1,
    )
    assert [(c.client, c.exchanges_rejected) for c in summary.clients] == [(checkout, 47)]

    # Request-check evidence of the verdict: checkout-service is affected, search is not.
    verdicts = client_verdicts(upstream=upstream, target_version="2026-10-21", version_from="2023-06-01")
    assert set(verdicts) == {checkout.pk}
    [card] = verdicts[checkout.pk].affected
    assert (card["key"], card["sources"], card["count"]) == (
        "model:sonnet-5-thinking-budget-tokens",
        ["request"],
        47,
    )
    assert card["why"] == (
        "its recorded requests would be rejected by claude-sonnet-5 under 2026-10-21"
        " (/thinking/budget_tokens)"
    )

    # The report lists it among the request rules, per client, with its own signature.
    payload = report_payload(upstream=upstream, version_from="2023-06-01", version_to="2026-10-21")
    [rule] = payload["request_rules"]
    assert (rule["rule"], rule["exchanges"], [c["client"] for c in rule["by_client"]]) == (
        "model:sonnet-5-thinking-budget-tokens",
        47,
        ["checkout-service"],
    )
    assert payload["summary"]["exchanges_rejected"] == 47

    # The overview shows it as it shows a changelog rule: title, where it holds, why.
    client.force_login(alice)
    page = client.get(f"/u/{upstream.slug}/").content.decode()
    assert "Would your traffic survive 2026-10-21 and claude-sonnet-5?" in page
    assert "Claude Sonnet 5 rejects <code>thinking.budget_tokens</code>" in page
    assert "model claude-sonnet-5" in page
    assert "Extended thinking with a token budget is gone on Sonnet 5" in page

    # Recording the batch again stores nothing twice.
    request_findings_record(exchanges=list(Exchange.objects.filter(client=checkout)))
    assert RequestFinding.objects.filter(upstream=upstream).count() == 47


@pytest.mark.django_db
def test_without_a_target_model_each_request_is_checked_for_its_own_model(upstream_a):
    who = Client.objects.create(upstream=upstream_a, kind="declared", identity="agent")
    record(upstream_a, body("claude-opus-4-6", messages=PREFILL), who=who)
    record(upstream_a, body("claude-opus-4-5", messages=PREFILL), who=who)
    [finding] = RequestFinding.objects.all()
    assert (finding.model_rule.key, finding.model, finding.field) == (
        "opus-4-6-assistant-prefill",
        "claude-opus-4-6",
        "/messages/1",
    )


def replay_run(upstream, exchange: Exchange, *, target_raw: bytes) -> ReplayRun:
    """A run that replayed the exchange under both versions; the target side answered as the
    emulator answers `target_raw` (the same request, as it would be sent)."""
    run = ReplayRun.objects.create(upstream=upstream, versions=["2023-06-01", "2026-10-21"])
    for version, raw in (("2023-06-01", bytes(exchange.request_body)), ("2026-10-21", target_raw)):
        answer = emulated(raw, version)
        ReplayResult.objects.create(
            run=run,
            exchange=exchange,
            version=version,
            attempt=1,
            state=ReplayResult.Status.DONE,
            status=answer.status,
            response_headers=dict(answer.headers),
            response_body=answer.full_body(),
            finished_at=timezone.now(),
        )
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    return run


@pytest.mark.django_db
def test_replay_explains_the_rejection_by_the_model_rule_and_confirms_the_finding(upstream_a, client, alice):
    """Recorded accepted (before Sonnet 5's rule); replayed, rejected by it: the difference is
    explained by the model rule, the finding confirmed, and the pages say so."""
    who = Client.objects.create(upstream=upstream_a, kind="declared", identity="checkout-service")
    raw = body("claude-sonnet-5", thinking=BUDGET)
    exchange = record(upstream_a, body("claude-sonnet-4-5", thinking=BUDGET), who=who)
    Exchange.objects.filter(pk=exchange.pk).update(request_body=raw)  # the request as it named Sonnet 5
    exchange.refresh_from_db()
    request_findings_record(exchanges=[exchange])
    rule = ModelRule.objects.get(upstream=upstream_a, key="sonnet-5-thinking-budget-tokens")
    assert RequestFinding.objects.get(exchange=exchange).model_rule == rule

    # The baseline side accepted (as recorded before the rule); the target side rejected.
    run = ReplayRun.objects.create(upstream=upstream_a, versions=["2023-06-01", "2026-10-21"])
    for version, raw_sent in (
        ("2023-06-01", body("claude-sonnet-4-5", thinking=BUDGET)),
        ("2026-10-21", raw),
    ):
        answer = emulated(raw_sent, version)
        ReplayResult.objects.create(
            run=run,
            exchange=exchange,
            version=version,
            attempt=1,
            state=ReplayResult.Status.DONE,
            status=answer.status,
            response_headers=dict(answer.headers),
            response_body=answer.full_body(),
            finished_at=timezone.now(),
        )
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])

    outcome = Difference.objects.get(exchange=exchange, kind="outcome_changed")
    assert (outcome.model_rule, outcome.rule, outcome.path, outcome.explained) == (
        rule,
        None,
        "/thinking/budget_tokens",
        True,
    )
    [signature] = [s for s in signatures_for_upstream(upstream=upstream_a) if s.kind == "outcome_changed"]
    assert (signature.model_rule, signature.unexplained, signature.explained_by) == (rule, 0, rule)
    assert RequestFinding.objects.get(exchange=exchange).confirmed is True

    payload = report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")
    [difference] = [d for d in payload["differences"] if d["kind"] == "outcome_changed"]
    assert (difference["rule"], difference["explained"]) == ("model:sonnet-5-thinking-budget-tokens", True)

    client.force_login(alice)
    differences = client.get(f"/u/{upstream_a.slug}/differences/").content.decode()
    assert "Claude Sonnet 5 rejects <code>thinking.budget_tokens</code>" in differences
    assert "model claude-sonnet-5" in differences
    examples = client.get(f"/u/{upstream_a.slug}/differences/{signature.pk}/").content.decode()
    assert "Extended thinking with a token budget is gone on Sonnet 5" in examples


@pytest.mark.django_db
def test_a_replay_with_another_model_than_the_target_settles_no_model_finding(upstream):
    """Replays send the recorded model: a finding about the target model is neither confirmed nor
    contradicted by them."""
    who = Client.objects.create(upstream=upstream, kind="declared", identity="checkout-service")
    exchange = record(upstream, body("claude-sonnet-4-5", thinking=BUDGET), who=who)
    replay_run(upstream, exchange, target_raw=bytes(exchange.request_body))
    assert RequestFinding.objects.get(exchange=exchange).confirmed is None


@pytest.mark.django_db
def test_a_new_anthropic_upstream_gets_the_model_rules_and_its_target_model_is_a_setting(
    client, alice, bob, team_a
):
    form = {
        "team": team_a.pk,
        "name": "Anthropic EU",
        "slug": "anthropic-eu",
        "base_url": "http://127.0.0.1:9",
        "version_header": "anthropic-version",
        "baseline_version": "2023-06-01",
        "target_version": "2026-10-21",
        "target_model": "claude-sonnet-5",
        "rate_limit_rps": 5,
        "rate_limit_concurrency": 2,
        "record_one_in": 1,
        "replay_key_header": "x-api-key",
        "versions_text": "2023-06-01\n2026-10-21",
        "endpoints_text": "POST /v1/messages",
        "volatile_text": "",
    }
    client.force_login(bob)  # a viewer of team A
    assert client.post("/settings/upstreams/new/", form).status_code == 403
    assert not Upstream.objects.filter(slug="anthropic-eu").exists()
    client.force_login(alice)
    assert client.post("/settings/upstreams/new/", form).status_code == 302
    upstream = Upstream.objects.get(slug="anthropic-eu")
    assert upstream.target_model == "claude-sonnet-5"
    assert set(upstream.model_rules.values_list("key", flat=True)) == set(SPECS) | SHAPES


@pytest.mark.django_db
def test_model_rules_are_edited_in_the_admin(client, upstream_a, alice, bob):
    rule = ModelRule.objects.get(upstream=upstream_a, key="fable-5-thinking-disabled")
    client.force_login(bob)  # not staff
    assert client.get("/admin/migrations_audit/modelrule/").status_code == 302
    type(alice).objects.filter(pk=alice.pk).update(is_staff=True, is_superuser=True)
    client.force_login(alice)
    listing = client.get("/admin/migrations_audit/modelrule/").content.decode()
    assert "fable-5-thinking-disabled" in listing and "claude-fable-5" in listing
    page = client.get(f"/admin/migrations_audit/modelrule/{rule.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: "" if form.initial.get(name) is None else form.initial[name] for name in form.fields}
    data.update(
        upstream=upstream_a.pk,
        match=json.dumps(rule.match),
        error_message="thinking.type: thinking cannot be disabled on this model.",
    )
    assert client.post(f"/admin/migrations_audit/modelrule/{rule.pk}/change/", data).status_code == 302
    rule.refresh_from_db()
    assert rule.error_message == "thinking.type: thinking cannot be disabled on this model."


@pytest.mark.django_db
def test_the_migration_installs_the_model_rules_of_anthropic_upstreams_that_exist(upstream_a, upstream_b):
    from django.apps import apps

    install = importlib.import_module("migrations_audit.migrations.0008_model_rules").install_model_rules
    ModelRule.objects.all().delete()
    Upstream.objects.filter(pk=upstream_b.pk).update(version_header="stripe-version")
    install(apps, None)
    install(apps, None)  # idempotent
    assert set(upstream_a.model_rules.values_list("key", flat=True)) == set(SPECS)
    assert not upstream_b.model_rules.exists()
