"""Streams compared semantically: framing, event types, [DONE], per-event fields, text mode."""

import json

import pytest

from migrations_audit.diff.streams import (
    CUMULATIVE,
    INCREMENTAL,
    UNDETERMINED,
    stream_diff,
    stream_profile,
    text_mode,
)
from migrations_audit.sse import parse_sse
from tests.diff.anthropic_samples import complete_2023_01_01, complete_2023_06_01, message_response


def stored(raw: bytes):
    return [e.as_dict() for e in parse_sse(raw)]


def named(*events):
    return [{"event": name, "data": json.dumps(data)} for name, data in events]


def kinds(a, b):
    return {(c.kind, c.path) for c in stream_diff(a, b)}


def test_text_mode_of_pieces():
    assert text_mode([" Hello", " Hello my", " Hello my name"]) == CUMULATIVE
    assert text_mode([" Hello", " my", " name", ""]) == INCREMENTAL
    assert text_mode(["", " Hello", "", " Hello my"]) == CUMULATIVE
    assert text_mode(["ha", "ha", "ha"]) == INCREMENTAL


def test_one_event_stream_has_no_text_mode():
    assert text_mode([" Hello"]) == UNDETERMINED
    profile = stream_profile(named(("completion", {"completion": " Hello", "stop_reason": "stop_sequence"})))
    assert profile.text_mode == {"completion": UNDETERMINED}
    assert profile.text == " Hello"


def test_cumulative_and_incremental_streams_reassemble_to_the_same_text():
    legacy = stream_profile(complete_2023_01_01(stream=True).events)
    current = stream_profile(complete_2023_06_01(stream=True).events)
    assert legacy.text_mode == {"message": CUMULATIVE}
    assert current.text_mode == {"completion": INCREMENTAL}
    assert legacy.text == current.text == " Hello my name is Claude"


def test_messages_stream_text_is_read_from_text_deltas():
    profile = stream_profile(message_response(stream=True, pieces=["Hel", "lo", " there"]).events)
    assert profile.text_mode == {"content_block_delta": INCREMENTAL}
    assert profile.text == "Hello there"
    assert profile.framing == "named"


def test_stream_with_an_error_event():
    events = named(
        ("completion", {"type": "completion", "completion": " Hello", "stop_reason": None}),
        ("completion", {"type": "completion", "completion": " my", "stop_reason": None}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    profile = stream_profile(events)
    assert profile.error == {"type": "overloaded_error", "message": "Overloaded"}
    assert profile.text_mode == {"completion": INCREMENTAL}
    assert profile.text == " Hello my"
    complete = named(*[(e["event"], json.loads(e["data"])) for e in events[:2]])
    changes = stream_diff(complete, events)
    assert [(c.kind, c.path) for c in changes] == [("outcome_changed", "stream:error")]


def test_stream_error_after_one_event_leaves_text_mode_undetermined():
    events = named(
        ("completion", {"type": "completion", "completion": " Hello"}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    assert stream_profile(events).text_mode == {"completion": UNDETERMINED}


def test_framing_done_marker_text_mode_and_fields_of_the_legacy_migration():
    legacy = complete_2023_01_01(stream=True).events
    current = complete_2023_06_01(stream=True).events
    assert kinds(legacy, current) >= {
        ("stream_framing_changed", "stream:framing"),
        ("done_marker_removed", "stream:[DONE]"),
        ("text_mode_changed", "stream:completion/completion"),
        ("field_removed", "stream:completion/exception"),
        ("field_removed", "stream:completion/truncated"),
        ("field_added", "stream:completion/type"),
    }
    # Back the other way round, every change mirrors.
    assert kinds(current, legacy) >= {
        ("stream_framing_changed", "stream:framing"),
        ("done_marker_added", "stream:[DONE]"),
        ("field_added", "stream:completion/exception"),
        ("field_removed", "stream:completion/type"),
    }


def test_same_stream_cut_differently_is_the_same():
    a = message_response(stream=True, pieces=["Hello", " there"]).events
    b = message_response(stream=True, pieces=["Hel", "lo", " the", "re"]).events
    assert stream_diff(a, b) == []


def test_reassembled_text_changed():
    a = message_response(stream=True, pieces=["Hello", " there"]).events
    b = message_response(stream=True, pieces=["Good", "bye"]).events
    [change] = stream_diff(a, b)
    assert (change.kind, change.path, change.before, change.after) == (
        "reassembled_text_changed",
        "stream:text",
        "Hello there",
        "Goodbye",
    )


def test_event_type_added_and_removed():
    a = named(("message_start", {"type": "message_start"}), ("message_stop", {"type": "message_stop"}))
    b = named(("message_start", {"type": "message_start"}), ("thinking_delta", {"type": "thinking_delta"}))
    assert kinds(a, b) == {
        ("event_type_removed", "stream:message_stop"),
        ("event_type_added", "stream:thinking_delta"),
    }


def test_value_changes_of_the_last_event_of_a_type_are_reported():
    a = named(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}))
    b = named(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}}))
    assert kinds(a, b) == {("value_changed", "stream:message_delta/delta/stop_reason")}


@pytest.mark.parametrize("end", [b"\r\n", b"\n", b"\r"])
def test_line_ends_do_not_matter(end):
    raw = complete_2023_06_01(stream=True).body
    assert stream_diff(stored(raw), stored(raw.replace(b"\r\n", end))) == []


def test_json_padded_before_its_final_brace_is_the_same_event():
    a = [{"event": "completion", "data": '{"completion": "x", "stop_reason": null}'}]
    b = [{"event": "completion", "data": '{"completion": "x", "stop_reason": null    }'}]
    assert stream_diff(a, b) == []
