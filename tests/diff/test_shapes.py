"""Across models, text that differs is not a breaking difference, but a changed shape is
(issue 20, item 4): two answers to one request, sent to claude-sonnet-4-5 and claude-sonnet-5."""

import json

from migrations_audit.diff.compare import ResponseSnapshot, compare_responses
from migrations_audit.diff.noise import NoiseModel
from migrations_audit.diff.rules import changes_explain
from migrations_audit.diff.shapes import answer_of, schema_problem
from migrations_audit.model_rules import model_ruleset_load, rule_ref, shape_ruleset_load

SPECS = model_ruleset_load("anthropic") + shape_ruleset_load("anthropic")
TITLES = {rule_ref(spec.key): spec.title for spec in SPECS}
ACROSS = NoiseModel(across_models=True)
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}


def answer(
    content, *, stop_reason="end_turn", model="claude-sonnet-4-5", msg_id="msg_01AbCdEfGhIjKlMn", tokens=12
):
    body = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": tokens},
    }
    return ResponseSnapshot(
        status=200, headers={"content-type": "application/json"}, body=json.dumps(body).encode()
    )


def text(words):
    return {"type": "text", "text": words}


def compare(before, after, request=None):
    body = json.dumps(request or {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": []}).encode()
    changes = compare_responses(before, after, noise=ACROSS, request_body=body)
    return changes_explain(
        changes,
        rules=[],
        version_from="2023-06-01",
        version_to="2026-10-21",
        endpoint="POST /v1/messages",
        request_body=body,
        model_rules=SPECS,
        model="claude-sonnet-5",
    )


def breaking(changes):
    return [c for c in changes if c.classification == "breaking"]


def test_differing_text_ids_and_token_counts_across_models_are_noise():
    before = answer([text("Paris is the capital of France.")])
    after = answer(
        [text("The capital of France is Paris, a city of two million.")],
        model="claude-sonnet-5",
        msg_id="msg_01ZyXwVuTsRqPoNm",
        tokens=31,
    )
    changes = compare(before, after)
    assert changes  # the text, id, model and token counts differ...
    assert {c.classification for c in changes} == {"noise"}  # ...and none of it breaks


def test_the_same_differences_between_two_calls_of_one_model_still_break_when_not_generated():
    """Without across_models, a changed model name or stop reason is still a breaking difference."""
    before = answer([text("a")])
    after = answer([text("a")], stop_reason="refusal", model="claude-sonnet-5")
    changes = compare_responses(before, after)
    assert {c.path for c in breaking(changes)} >= {"/stop_reason", "/model"}


def test_a_missing_content_block_type_is_breaking_and_explained():
    before = answer([{"type": "thinking", "thinking": "Let me see.", "signature": "sig"}, text("42")])
    after = answer([text("Forty-two.")], model="claude-sonnet-5")
    [change] = breaking(compare(before, after))
    assert (change.kind, change.before) == ("content_block_type_removed", "thinking")
    assert change.rule_key == rule_ref("shape-block-type-missing")
    assert TITLES[change.rule_key] == "The new model's answer lacks a content block type the old model's had"


def test_a_new_stop_reason_is_breaking_and_explained():
    before = answer([text("Here is how.")])
    after = answer([text("I can't help with that.")], stop_reason="refusal", model="claude-sonnet-5")
    [change] = breaking(compare(before, after))
    assert (change.kind, change.before, change.after) == ("stop_reason_changed", "end_turn", "refusal")
    assert change.rule_key == rule_ref("shape-stop-reason-new")
    assert "refusal" in next(s.explanation for s in SPECS if s.key == "shape-stop-reason-new")


def test_a_tool_call_where_there_was_none_is_breaking_and_explained():
    before = answer([text("It is sunny in Paris.")])
    tool = {"type": "tool_use", "id": "toolu_01AbCdEfGhIj", "name": "get_weather", "input": {"city": "Paris"}}
    after = answer([text("Let me check."), tool], stop_reason="tool_use", model="claude-sonnet-5")
    changes = breaking(compare(before, after))
    assert {c.kind for c in changes} == {"tool_call_added", "stop_reason_changed"}
    added = next(c for c in changes if c.kind == "tool_call_added")
    assert added.after == "tool_use"
    assert added.rule_key == rule_ref("shape-tool-call-added")
    assert all(c.explained for c in changes)


def test_a_json_answer_that_no_longer_parses_under_the_schema_is_breaking_and_explained():
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Plan a trip"}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    before = answer([text('{"city": "Lyon", "days": 3}')])
    after = answer([text('{"city": "Lyon", "days": "three"}')], model="claude-sonnet-5")
    [change] = breaking(compare(before, after, request))
    assert change.kind == "structured_output_invalid"
    assert change.after == "/days is not of type integer"
    assert change.rule_key == rule_ref("shape-structured-output-invalid")

    # Another valid answer with other values is only noise; without a schema, no such check.
    valid = answer([text('{"city": "Nice", "days": 5}')], model="claude-sonnet-5")
    assert breaking(compare(before, valid, request)) == []
    assert breaking(compare(before, after)) == []


def test_schema_problems_are_named():
    def problem(words):
        return schema_problem({"content": [text(words)]}, SCHEMA)

    assert problem("not json") == "the answer is not JSON"
    assert problem('{"city": "Lyon"}') == "/days is required"
    assert problem('{"city": "Lyon", "days": 2, "extra": 1}') == "/extra is not allowed"
    assert problem('{"city": "Lyon", "days": 2}') is None


def test_a_streamed_answer_shape_is_read_from_its_events():
    events = [
        {
            "event": "message_start",
            "data": json.dumps({"type": "message_start", "message": {"id": "msg_1", "content": []}}),
        },
        {
            "event": "content_block_start",
            "data": json.dumps(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            ),
        },
        {
            "event": "content_block_delta",
            "data": json.dumps(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
            ),
        },
        {
            "event": "message_delta",
            "data": json.dumps({"type": "message_delta", "delta": {"stop_reason": "refusal"}}),
        },
    ]
    snapshot = ResponseSnapshot(status=200, streamed=True, events=events)
    assert answer_of(snapshot) == {
        "id": "msg_1",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "refusal",
    }


def test_shape_rules_never_reject_a_request():
    from migrations_audit.model_rules import model_violations

    body = json.dumps(
        {"model": "claude-sonnet-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    )
    assert model_violations(rules=SPECS, method="POST", path="/v1/messages", body=body.encode()) == []
