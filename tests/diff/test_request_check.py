"""The request compatibility check: which recorded requests 2026-10-21 will reject, without replay."""

import json

import pytest

from migrations_audit.diff.request_check import Violation, request_violations
from migrations_audit.diff.rules import ruleset_load

RULES = ruleset_load("anthropic")


def check(body, *, version="2026-10-21", path="/v1/messages"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request_violations(upstream_rules=RULES, version=version, method="POST", path=path, body=raw)


def base(**extra):
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
        **extra,
    }


def test_a_plain_request_passes():
    assert check(base()) == []


@pytest.mark.parametrize("name", ["temperature", "top_p", "top_k"])
def test_each_sampling_parameter_is_rejected_even_at_its_default(name):
    assert check(base(**{name: 1.0})) == [
        Violation("sampling-parameters-removed", f"/{name}", f"{name}: Extra inputs are not permitted")
    ]


def test_all_three_at_once_are_three_violations():
    fields = [v.field for v in check(base(temperature=0, top_p=0.9, top_k=5))]
    assert fields == ["/temperature", "/top_p", "/top_k"]


def test_document_directly_in_an_assistant_message():
    body = base(
        messages=[
            {"role": "user", "content": [{"type": "document", "source": {}}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "ok"}, {"type": "document", "source": {}}],
            },
        ]
    )
    [violation] = check(body)
    assert (violation.rule_key, violation.field) == ("assistant-document-rejected", "/messages/1/content/1")
    assert violation.message.startswith("messages.1.content.1:")


def test_citations_in_user_text_directly_or_inside_a_search_result():
    body = base(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a", "citations": [{"type": "char_location"}]},
                    {"type": "text", "text": "b", "citations": []},
                    {
                        "type": "search_result",
                        "source": "s",
                        "title": "t",
                        "content": [
                            {"type": "text", "text": "c", "citations": [{"type": "search_result_location"}]},
                        ],
                    },
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "d", "citations": [{}]}]},
        ]
    )
    assert [(v.rule_key, v.field) for v in check(body)] == [
        ("user-text-citations-rejected", "/messages/0/content/0"),
        ("user-text-citations-rejected", "/messages/0/content/2/content/0"),
    ]


def test_token_counting_and_each_request_of_a_batch_are_checked():
    assert [v.field for v in check(base(top_p=1), path="/v1/messages/count_tokens")] == ["/top_p"]
    batch = {
        "requests": [{"custom_id": "a", "params": base()}, {"custom_id": "b", "params": base(temperature=1)}]
    }
    assert [v.field for v in check(batch, path="/v1/messages/batches")] == ["/requests/1/params/temperature"]


def test_other_endpoints_versions_and_bodies_are_not_checked():
    assert check(base(temperature=1), path="/v1/complete") == []
    assert check(base(temperature=1), version="2023-06-01") == []
    assert check(b"not json") == []
    assert check(b"") == []
    assert check(b"[1, 2]") == []


def test_later_versions_keep_the_rules_of_earlier_ones():
    assert [v.field for v in check(base(temperature=1), version="2027-01-01")] == ["/temperature"]
