"""Arbitrary input never crashes the SSE parser or the diff engine, and what they answer holds
(hypothesis): a body compared with itself has no change, two different ones have one."""

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migrations_audit.diff import ResponseSnapshot, compare_responses
from migrations_audit.sse import SseParser, parse_sse

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)
sse_like = st.lists(
    st.sampled_from(
        [b"data: ", b"event: ", b"id: ", b"retry: ", b":", b"\r\n", b"\n", b"\r", b"[DONE]", b"\xff", b"{"]
    )
    | st.binary(max_size=16),
    max_size=60,
).map(b"".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=sse_like, cut=st.integers(min_value=0, max_value=200))
def test_sse_parser_takes_any_bytes_split_anywhere(data, cut):
    whole = parse_sse(data)
    parser = SseParser()
    pieces = parser.feed(data[:cut]) + parser.feed(data[cut:]) + parser.close()
    assert pieces == whole
    for event in whole:
        assert isinstance(event.data, str)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=json_values,
    b=json_values,
    status_a=st.sampled_from([200, 400, 500]),
    status_b=st.sampled_from([200, 400]),
)
def test_compare_takes_any_json_bodies(a, b, status_a, status_b):
    left = ResponseSnapshot(status=status_a, body=json.dumps(a).encode())
    right = ResponseSnapshot(status=status_b, body=json.dumps(b).encode())
    changes = compare_responses(left, right)
    assert compare_responses(left, left) == [] and compare_responses(right, right) == []
    if status_a == status_b and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
        assert changes == [], "the same document, its keys in another order"
    if status_a != status_b or a != b:
        assert changes, "a different status or document is a change"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(a=st.binary(max_size=300), b=sse_like)
def test_compare_takes_any_bytes_and_broken_streams(a, b):
    streams = [
        ResponseSnapshot(status=200, body=body, streamed=True, events=[e.as_dict() for e in parse_sse(body)])
        for body in (a, b)
    ]
    compare_responses(*streams)
    assert compare_responses(streams[0], streams[0]) == []
    plain = ResponseSnapshot(status=200, body=a)
    compare_responses(plain, ResponseSnapshot(status=200, body=b))
    assert compare_responses(plain, plain) == []


def test_deep_json_nesting_is_bounded():
    deep = b"[" * 50_000 + b"]" * 50_000
    assert compare_responses(
        ResponseSnapshot(status=200, body=deep), ResponseSnapshot(status=200, body=b"[]")
    )
    assert (
        compare_responses(ResponseSnapshot(status=200, body=deep), ResponseSnapshot(status=200, body=deep))
        == []
    )


def test_json_that_parses_but_nests_past_the_stack_is_compared_as_text():
    """1,200 levels: json.loads decodes it, a recursive walk would not get through it."""

    def deep(leaf: str) -> str:
        return "[" * 1200 + leaf + "]" * 1200

    plain = [ResponseSnapshot(status=200, body=deep(leaf).encode()) for leaf in ("1", "2")]
    assert compare_responses(*plain)
    streams = [
        ResponseSnapshot(
            status=200, body=f"event: completion\ndata: {deep(leaf)}\n\n".encode(), streamed=True
        )
        for leaf in ("1", "2")
    ]
    assert compare_responses(*streams)
    assert compare_responses(streams[0], streams[0]) == []


def test_deep_json_nesting_in_requests_and_streams_is_bounded():
    from migrations_audit.diff.request_check import request_violations
    from migrations_audit.diff.rules import ruleset_load

    deep = "[" * 50_000 + "]" * 50_000
    assert (
        request_violations(
            upstream_rules=ruleset_load("anthropic"),
            version="2026-10-21",
            method="POST",
            path="/v1/messages",
            body=deep.encode(),
        )
        == []
    )
    stream = f"event: completion\ndata: {deep}\n\n".encode()
    compare_responses(
        ResponseSnapshot(status=200, body=stream, streamed=True),
        ResponseSnapshot(status=200, body=b"", streamed=True),
    )


# Bodies made of the names and values the shipped request rules look for, some with \u escapes.
rule_words = st.sampled_from(
    [
        *["temperature", "top_p", "messages", "role", "user", "assistant", "content", "type", "text"],
        *["document", "citations", "search_result", "requests", "params"],
    ]
)
request_like = st.recursive(
    st.none() | st.integers() | rule_words,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(rule_words, children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=request_like,
    escape_at=st.integers(min_value=0, max_value=400),
    path=st.sampled_from(["/v1/messages", "/v1/messages/batches"]),
)
@example(document={"requests": 1, "temperature": None}, escape_at=0, path="/v1/messages/batches")
def test_the_request_check_takes_any_request_shaped_body(document, escape_at, path):
    from migrations_audit.diff.request_check import Violation, request_violations
    from migrations_audit.diff.rules import ruleset_load

    text = json.dumps(document)
    letters = [i for i, char in enumerate(text) if char.isalpha()]
    if letters and escape_at % 2:  # write one letter as a \u escape
        i = letters[escape_at % len(letters)]
        text = f"{text[:i]}\\u{ord(text[i]):04x}{text[i + 1 :]}"
    violations = request_violations(
        upstream_rules=ruleset_load("anthropic"),
        version="2026-10-21",
        method="POST",
        path=path,
        body=text.encode(),
    )
    assert all(isinstance(violation, Violation) for violation in violations)
