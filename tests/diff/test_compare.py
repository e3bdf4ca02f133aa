"""compare_responses: status, headers, outcome, bodies and streams, classified, with noise."""

import json

from migrations_audit.diff import ADDITIVE, BREAKING, NOISE, NoiseModel, ResponseSnapshot, compare_responses
from migrations_audit.diff.compare import error_field
from tests.diff.anthropic_samples import (
    complete_2023_01_01,
    complete_2023_06_01,
    invalid_request,
    message_response,
)


def snap(status=200, body=None, **headers):
    return ResponseSnapshot(status=status, headers=headers, body=json.dumps(body or {}).encode())


def summary(changes):
    return [(c.kind, c.path, c.classification) for c in changes]


def test_identical_responses_have_no_differences():
    response = message_response()
    assert compare_responses(response, response) == []


def test_status_changed_within_the_same_outcome():
    assert summary(compare_responses(snap(200), snap(201))) == [("status_changed", "status", BREAKING)]
    assert summary(compare_responses(snap(404), snap(400))) == [("status_changed", "status", BREAKING)]


def test_headers_added_removed_changed_and_volatile_ones_ignored():
    a = snap(**{"Content-Type": "application/json", "x-old": "1", "Date": "Mon", "request-id": "req_1"})
    b = snap(**{"content-type": "application/json; charset=utf-8", "x-new": "1", "date": "Tue"})
    assert summary(compare_responses(a, b)) == [
        ("header_changed", "header:content-type", BREAKING),
        ("header_removed", "header:x-old", BREAKING),
        ("header_added", "header:x-new", ADDITIVE),
    ]


def test_upstream_volatile_headers_are_never_differences():
    noise = NoiseModel.for_upstream(volatile_headers=["X-Trace"])
    assert compare_responses(snap(**{"x-trace": "1"}), snap(**{"x-trace": "2"}), noise=noise) == []
    assert compare_responses(snap(**{"anthropic-ratelimit-requests-remaining": "9"}), snap()) == []


def test_outcome_changed_located_at_the_field_the_error_names():
    accepted = message_response()
    rejected = invalid_request("temperature: Extra inputs are not permitted")
    [change] = compare_responses(accepted, rejected)
    assert (change.kind, change.path, change.classification) == ("outcome_changed", "/temperature", BREAKING)
    assert change.before == {"status": 200}
    assert change.after == {
        "status": 400,
        "error_type": "invalid_request_error",
        "message": "temperature: Extra inputs are not permitted",
    }


def test_outcome_changed_without_a_named_field_and_without_a_response():
    [change] = compare_responses(message_response(), invalid_request("Something is wrong"))
    assert change.path == "outcome"
    [change] = compare_responses(message_response(), ResponseSnapshot(status=None, error="timed out"))
    assert change.after == {"status": None, "error": "timed out"}


def test_error_field_shapes():
    assert error_field("temperature: Extra inputs are not permitted") == "/temperature"
    assert error_field("messages.1.content.0: document not allowed") == "/messages/1/content/0"
    assert error_field("messages[1].content[0].type: bad") == "/messages/1/content/0/type"
    assert error_field("`top_k` is not supported") == "/top_k"
    assert error_field("Overloaded") is None


def test_streamed_changed():
    changes = compare_responses(message_response(), message_response(stream=True))
    assert [(c.kind, c.path, c.before, c.after) for c in changes] == [
        ("header_changed", "header:content-type", "application/json", "text/event-stream"),
        ("streamed_changed", "stream", False, True),
    ]


def test_body_that_is_not_json_is_compared_as_text():
    a = ResponseSnapshot(status=200, body=b"ok")
    b = ResponseSnapshot(status=200, body=b"fine")
    assert summary(compare_responses(a, b)) == [("value_changed", "", BREAKING)]


def test_varying_ids_and_log_ids_are_noise_by_pattern():
    a = message_response(message_id="msg_01AAAAAAAAAAAAAAAA")
    b = message_response(message_id="msg_01BBBBBBBBBBBBBBBB")
    assert summary(compare_responses(a, b)) == [("value_changed", "/id", NOISE)]
    a = complete_2023_01_01(log_id="a" * 32)
    b = complete_2023_01_01(log_id="b" * 32)
    assert summary(compare_responses(a, b)) == [("value_changed", "/log_id", NOISE)]


def test_what_the_noise_sample_saw_vary_is_noise_with_its_rate():
    a = message_response(text="Hello there")
    a_again = message_response(text="Hi there")
    b = message_response(text="Greetings")
    noise = NoiseModel()
    noise.learn([compare_responses(a, a_again), []])
    [change] = compare_responses(a, b, noise=noise)
    assert (change.path, change.classification, change.noise_rate) == ("/content/0/text", NOISE, 0.5)


def test_generated_stream_text_that_varies_between_calls_is_noise():
    a = message_response(stream=True, pieces=["Hello"])
    a_again = message_response(stream=True, pieces=["Hi"])
    noise = NoiseModel()
    noise.learn([compare_responses(a, a_again)])
    [change] = compare_responses(a, message_response(stream=True, pieces=["Hey", "!"]), noise=noise)
    assert (change.kind, change.classification) == ("reassembled_text_changed", NOISE)


def test_stream_body_without_stored_events_is_parsed():
    stream = complete_2023_06_01(stream=True)
    bare = ResponseSnapshot(status=200, headers=stream.headers, body=stream.body, streamed=True)
    assert compare_responses(stream, bare) == []


def test_the_legacy_migration_non_streaming():
    changes = compare_responses(complete_2023_01_01(), complete_2023_06_01())
    assert summary(changes) == [
        ("field_removed", "/truncated", BREAKING),
        ("field_removed", "/exception", BREAKING),
        ("value_changed", "/log_id", NOISE),
        ("field_added", "/type", ADDITIVE),
        ("field_added", "/id", ADDITIVE),
    ]


def test_serving_infrastructure_headers_are_noise_for_a_new_upstream(upstream_a):
    # A recording made through a CDN has no `Server` header; a replay served by uvicorn has one.
    noise = NoiseModel.for_upstream(volatile_headers=upstream_a.volatile_headers)
    recorded = snap(**{"cf-ray": "8a1", "via": "1.1 google"})
    replayed = snap(**{"server": "uvicorn", "x-envoy-upstream-service-time": "12"})
    assert compare_responses(recorded, replayed, noise=noise) == []
    # A team that cares about one of them removes it from its upstream's list.
    mine = NoiseModel.for_upstream(volatile_headers=[h for h in upstream_a.volatile_headers if h != "server"])
    assert summary(compare_responses(recorded, replayed, noise=mine)) == [
        ("header_added", "header:server", ADDITIVE)
    ]


def test_generated_text_ids_and_token_counts_are_noise_only_against_a_recording():
    recorded = message_response(text="Hello there")
    body = json.loads(message_response(text="Another answer entirely").body)
    body["usage"]["output_tokens"] = 12
    replayed = snap(body=body, **{"content-type": "application/json"})
    between_replays = summary(compare_responses(recorded, replayed))
    assert ("value_changed", "/content/0/text", BREAKING) in between_replays

    against_recording = NoiseModel(against_recording=True)
    changes = summary(compare_responses(recorded, replayed, noise=against_recording))
    assert {classification for _, _, classification in changes} == {NOISE}
    assert {path for _, path, _ in changes} >= {"/content/0/text", "/usage/output_tokens"}


def test_a_change_of_type_or_shape_is_never_noise_against_a_recording():
    against_recording = NoiseModel(against_recording=True)
    recorded = snap(body={"usage": {"output_tokens": 7}, "content": [{"type": "text", "text": "a"}]})
    replayed = snap(body={"usage": {"output_tokens": "7"}, "content": [{"type": "text", "text": ["a"]}]})
    changes = summary(compare_responses(recorded, replayed, noise=against_recording))
    assert changes and all(classification != NOISE for _, _, classification in changes)
