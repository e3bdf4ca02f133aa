"""Changelog rules as data: the Anthropic migrations explained, renames paired, the rest unexplained."""

import json

import pytest

from migrations_audit.diff import BREAKING, NOISE, Change, compare_responses
from migrations_audit.diff.request_check import request_violations
from migrations_audit.diff.rules import RuleSpec, changes_explain, rule_in_range, ruleset_load
from tests.diff.anthropic_samples import (
    complete_2023_01_01,
    complete_2023_06_01,
    invalid_request,
    message_response,
)

RULES = ruleset_load("anthropic")
LEGACY = {"version_from": "2023-01-01", "version_to": "2023-06-01", "endpoint": "POST /v1/complete"}
CURRENT = {"version_from": "2023-06-01", "version_to": "2026-10-21", "endpoint": "POST /v1/messages"}


def explained(changes):
    return {(c.kind, c.path, c.rule_key) for c in changes if c.classification != NOISE}


def test_the_five_legacy_changelog_entries_explain_the_stream_differences():
    a = complete_2023_01_01(stream=True)
    b = complete_2023_06_01(stream=True)
    changes = changes_explain(compare_responses(a, b), rules=RULES, **LEGACY)
    assert {c.rule_key for c in changes if c.classification == BREAKING} == {
        "complete-exception-removed",
        "complete-truncated-removed",
        "stream-named-events",
        "stream-done-removed",
        "stream-incremental-text",
    }
    assert all(c.explained for c in changes if c.classification != NOISE)


def test_the_legacy_entries_explain_the_non_streaming_differences():
    changes = changes_explain(
        compare_responses(complete_2023_01_01(), complete_2023_06_01()), rules=RULES, **LEGACY
    )
    assert explained(changes) == {
        ("field_removed", "/truncated", "complete-truncated-removed"),
        ("field_removed", "/exception", "complete-exception-removed"),
        ("field_added", "/type", "complete-type-and-id-added"),
        ("field_added", "/id", "complete-type-and-id-added"),
    }


@pytest.mark.parametrize(
    ("request_body", "message", "path", "rule"),
    [
        (
            {"temperature": 1.0},
            "temperature: Extra inputs are not permitted",
            "/temperature",
            "sampling-parameters-removed",
        ),
        ({"top_k": 5}, "top_k: Extra inputs are not permitted", "/top_k", "sampling-parameters-removed"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "document"}]},
                ]
            },
            "messages.1.content.0: document blocks are not permitted in assistant messages",
            "/messages/1/content/0",
            "assistant-document-rejected",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "citations": [{}]}]}]},
            "messages.0.content.0.citations: not permitted",
            "/messages/0/content/0/citations",
            "user-text-citations-rejected",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "citations": [{}]}]}]},
            "Citations are not permitted in user messages",
            "/messages/0/content/0",
            "user-text-citations-rejected",
        ),
    ],
)
def test_rejections_explained_by_the_request_rule_at_the_named_field(request_body, message, path, rule):
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 10, **request_body}).encode()
    changes = compare_responses(message_response(), invalid_request(message))
    [change] = changes_explain(changes, rules=RULES, request_body=body, **CURRENT)
    assert (change.kind, change.path, change.rule_key, change.classification) == (
        "outcome_changed",
        path,
        rule,
        BREAKING,
    )


def test_a_rejection_naming_another_field_stays_unexplained():
    body = json.dumps({"model": "m", "max_tokens": 10, "temperature": 0.5}).encode()
    changes = compare_responses(message_response(), invalid_request("max_tokens: must be positive"))
    [change] = changes_explain(changes, rules=RULES, request_body=body, **CURRENT)
    assert (change.path, change.rule_key) == ("/max_tokens", None)


def test_a_difference_no_rule_explains_is_unexplained():
    changes = compare_responses(message_response(), message_response(text="Something else"))
    [change] = changes_explain(changes, rules=RULES, **CURRENT)
    assert (change.kind, change.explained, change.classification) == ("value_changed", False, BREAKING)


def test_rules_apply_to_a_range_of_versions_spanning_them():
    rule = RULES[0]
    assert rule_in_range(rule, "2023-01-01", "2023-06-01")
    assert rule_in_range(rule, "2023-01-01", "2026-10-21")
    assert not rule_in_range(rule, "2023-06-01", "2026-10-21")
    changes = [Change("field_removed", "/exception", None, None)]
    assert changes_explain(changes, rules=RULES, **CURRENT)[0].rule_key is None


RENAME = RuleSpec(
    key="admin-workspace-renamed",
    version_from="2023-06-01",
    version_to="2026-10-21",
    title="workspace_id became workspace",
    classification=BREAKING,
    match={"rename": {"from": "/workspace_id", "to": "/workspace"}},
)


def test_a_rename_rule_pairs_removed_and_added_into_one_rename():
    changes = [
        Change("field_removed", "/workspace_id", "wrkspc_1", None),
        Change("field_added", "/workspace", None, "wrkspc_1"),
        Change("field_added", "/other", None, 1),
    ]
    out = changes_explain(changes, rules=[RENAME], version_from="2023-06-01", version_to="2026-10-21")
    assert [(c.kind, c.path, c.rule_key) for c in out] == [
        ("field_added", "/other", None),
        ("field_renamed", "/workspace_id", "admin-workspace-renamed"),
    ]
    assert out[1].after == {"path": "/workspace", "value": "wrkspc_1"}


def test_noise_stays_noise_when_a_rule_also_matches():
    change = Change("field_removed", "/exception", None, None, classification=NOISE)
    [out] = changes_explain([change], rules=RULES, **LEGACY)
    assert (out.rule_key, out.classification) == ("complete-exception-removed", NOISE)


def test_request_rules_are_data_in_the_shipped_ruleset():
    keys = {rule.key for rule in RULES if rule.match.get("request")}
    assert keys == {
        "sampling-parameters-removed",
        "assistant-document-rejected",
        "user-text-citations-rejected",
    }
    assert (
        request_violations(
            upstream_rules=RULES,
            version="2023-06-01",
            method="POST",
            path="/v1/messages",
            body=b'{"temperature": 1}',
        )
        == []
    )
