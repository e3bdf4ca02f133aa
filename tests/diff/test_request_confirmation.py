"""Each shipped request rule's findings follow their replays: a request the rule flags, replayed under
the target version, is confirmed by a rejection and contradicted by an acceptance, whether the rule
is the only one it breaks or the API names another of its faults first (the docs-assistant of the
demo sends a document in an assistant turn and cited user text: the API reports the document)."""

import json

import pytest
from django.utils import timezone

from migrations_audit.diff.rules import ruleset_load
from migrations_audit.diff.selectors import request_findings_summary
from migrations_audit.diff.services import (
    changelog_rules_install,
    exchanges_diff_record,
    request_findings_record,
)
from migrations_audit.emulator import EmulatorOptions, respond
from migrations_audit.models import Client, Exchange, ReplayResult, ReplayRun, RequestFinding

pytestmark = pytest.mark.django_db

BASELINE, TARGET = "2023-06-01", "2026-10-21"
REQUEST_RULES = [spec for spec in ruleset_load("anthropic") if spec.match.get("request")]
BASE = {"model": "claude-sonnet-4-5", "max_tokens": 32}


def breaking(check: dict) -> dict:
    """A request that breaks exactly this request rule, built from the rule's own data."""
    body = {**BASE, "messages": [{"role": "user", "content": "What does the policy say?"}]}
    for name in check.get("forbid_fields", ()):
        body[name] = 1  # valid for temperature, top_p and top_k alike
    block = check.get("forbid_block")
    if block:
        item = {"type": block["type"]}
        if block["type"] == "text":
            item["text"] = "As the policy says"
        if block["type"] == "document":
            item["source"] = {"type": "text", "media_type": "text/plain", "data": "Refund policy"}
        if block.get("nonempty"):
            item[block["nonempty"]] = [{"type": "char_location", "cited_text": "Refund", "document_index": 0}]
        if block["role"] == "user":
            body["messages"] = [{"role": "user", "content": [item]}]
        else:
            body["messages"] += [
                {"role": block["role"], "content": [item]},
                {"role": "user", "content": "And?"},
            ]
    return body


def breaking_every_rule() -> dict:
    """One request that breaks every shipped request rule: the API names only the first fault."""
    body = dict(BASE)
    messages = []
    for spec in REQUEST_RULES:
        one = breaking(spec.match["request"])
        body.update({key: value for key, value in one.items() if key != "messages"})
        messages += [m for m in one["messages"] if m["content"] != "What does the policy say?"]
    body["messages"] = [{"role": "user", "content": "What does the policy say?"}, *messages]
    if body["messages"][-1]["role"] != "user":
        body["messages"].append({"role": "user", "content": "And?"})
    return body


def emulated(body: dict, version: str):
    """The built-in emulator's answer to this request under `version`."""
    headers = {"anthropic-version": version, "x-api-key": "sk-ant-test", "content-type": "application/json"}
    return respond(
        "POST", "/v1/messages", headers, json.dumps(body).encode(), options=EmulatorOptions(seed=0)
    )


@pytest.fixture
def upstream(upstream_a):
    changelog_rules_install(upstream=upstream_a)
    return upstream_a


def recorded(upstream, body: dict) -> Exchange:
    raw = json.dumps(body).encode()
    answer = emulated(body, BASELINE)
    assert answer.status == 200, answer.full_body()
    exchange = Exchange.objects.create(
        upstream=upstream,
        client=Client.objects.get_or_create(upstream=upstream, identity="docs-assistant", kind="declared")[0],
        started_at=timezone.now(),
        method="POST",
        path="/v1/messages",
        endpoint="POST /v1/messages",
        api_version=BASELINE,
        request_body=raw,
        status=answer.status,
        response_headers=dict(answer.headers),
        response_body=answer.full_body(),
        content_hash=str(hash(raw)),
    )
    request_findings_record(exchanges=[exchange])
    return exchange


def replay(upstream, exchange: Exchange, answer) -> None:
    """A run that replayed the exchange under the target, with `answer` stored as its result."""
    run = ReplayRun.objects.create(upstream=upstream, versions=[BASELINE, TARGET])
    for version, response in (
        (BASELINE, emulated(json.loads(exchange.request_body), BASELINE)),
        (TARGET, answer),
    ):
        ReplayResult.objects.create(
            run=run,
            exchange=exchange,
            version=version,
            attempt=1,
            state=ReplayResult.Status.DONE,
            status=response.status,
            response_headers=dict(response.headers),
            response_body=response.full_body(),
            finished_at=timezone.now(),
        )
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])


def settled(exchange: Exchange, key: str) -> set:
    """How the rule's findings on the exchange stand (one per field it flags)."""
    return set(
        RequestFinding.objects.filter(exchange=exchange, rule__key=key).values_list("confirmed", flat=True)
    )


def confirmation(upstream, key: str) -> tuple[int, int]:
    [row] = [
        r for r in request_findings_summary(upstream=upstream, version=TARGET).rules if r.rule.key == key
    ]
    return row.confirmed, row.contradicted


@pytest.mark.parametrize("spec", REQUEST_RULES, ids=[spec.key for spec in REQUEST_RULES])
@pytest.mark.parametrize("alone", [True, False], ids=["alone", "with-every-rule"])
def test_a_request_rule_is_confirmed_by_the_targets_rejection(upstream, spec, alone):
    body = breaking(spec.match["request"]) if alone else breaking_every_rule()
    exchange = recorded(upstream, body)
    assert settled(exchange, spec.key) == {None}, "not replayed yet"
    answer = emulated(body, TARGET)
    assert answer.status == 400
    replay(upstream, exchange, answer)
    assert settled(exchange, spec.key) == {True}
    assert confirmation(upstream, spec.key) == (1, 0)


@pytest.mark.parametrize("spec", REQUEST_RULES, ids=[spec.key for spec in REQUEST_RULES])
def test_a_request_rule_is_contradicted_when_the_target_accepts(upstream, spec):
    body = breaking(spec.match["request"])
    exchange = recorded(upstream, body)
    # A stored result: the target answered as the baseline does (the rule did not hold there).
    replay(upstream, exchange, emulated(body, BASELINE))
    assert settled(exchange, spec.key) == {False}
    assert confirmation(upstream, spec.key) == (0, 1)


def test_a_rejection_for_an_unrelated_field_settles_nothing(upstream):
    spec = REQUEST_RULES[0]
    exchange = recorded(upstream, breaking(spec.match["request"]))
    unrelated = emulated({"model": "claude-sonnet-4-5", "messages": []}, TARGET)  # max_tokens missing
    assert unrelated.status == 400
    replay(upstream, exchange, unrelated)
    assert settled(exchange, spec.key) == {None}
