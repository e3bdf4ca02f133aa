"""The one SSE parser, edge case by edge case (WHATWG rules plus what a recorder needs)."""

import pytest

from migrations_audit.sse import SseEvent, SseParser, parse_sse


def events(raw: bytes):
    return [(e.event, e.data) for e in parse_sse(raw)]


@pytest.mark.parametrize("end", [b"\r\n", b"\n", b"\r"])
def test_each_line_end_is_accepted(end):
    raw = b"event: completion" + end + b"data: {}" + end + end + b"data: [DONE]" + end + end
    assert events(raw) == [("completion", "{}"), (None, "[DONE]")]


def test_line_ends_may_be_mixed_in_one_stream():
    assert events(b"data: a\r\n\r\ndata: b\n\ndata: c\r\r") == [(None, "a"), (None, "b"), (None, "c")]


def test_comments_are_ignored_and_dispatch_nothing():
    assert events(b": keep-alive\n\n:another\ndata: x\n\n") == [(None, "x")]


def test_multi_line_data_joins_with_newlines():
    assert events(b"data: first\ndata: second\ndata:third\n\n") == [(None, "first\nsecond\nthird")]


def test_missing_final_blank_line_still_dispatches_the_last_event():
    assert events(b"event: message_stop\ndata: {}") == [("message_stop", "{}")]
    assert events(b"data: a\n\ndata: b\n") == [(None, "a"), (None, "b")]


def test_only_one_space_after_the_colon_is_removed():
    assert events(b"data:  two spaces\n\n") == [(None, " two spaces")]


def test_id_and_retry_fields():
    [event] = parse_sse(b"id: 7\nretry: 1500\ndata: x\n\n")
    assert event == SseEvent(event=None, data="x", id="7", retry=1500)


def test_a_leading_byte_order_mark_is_ignored():
    assert events(b"\xef\xbb\xbfdata: x\n\n") == [(None, "x")]


def test_chunks_split_anywhere_give_the_same_events():
    raw = (
        'event: completion\r\ndata: {"completion": " h\u00e9llo \u2603"}\r\n\r\ndata: [DONE]\r\n\r\n'.encode()
    )
    whole = parse_sse(raw)
    for size in range(1, 9):
        parser = SseParser()
        got = []
        for i in range(0, len(raw), size):
            got += parser.feed(raw[i : i + size])
        got += parser.close()
        assert got == whole, size


def test_crlf_split_between_chunks_is_one_line_end():
    parser = SseParser()
    got = parser.feed(b"data: a\r") + parser.feed(b"\ndata: b\r") + parser.feed(b"\n\r\n") + parser.close()
    assert [(e.event, e.data) for e in got] == [(None, "a\nb")]


def test_an_empty_chunk_keeps_a_pending_cr():
    # Bug found while writing this test: an empty chunk used to drop the pending CR, so the LF
    # that followed counted as a blank line and cut the event in two.
    parser = SseParser()
    got = parser.feed(b"data: a\r") + parser.feed(b"") + parser.feed(b"\ndata: b\r\n\r\n") + parser.close()
    assert [(e.event, e.data) for e in got] == [(None, "a\nb")]


def test_bad_utf8_is_replaced_not_fatal():
    assert events(b"data: caf\xe9 \xff\n\n") == [(None, "caf\ufffd \ufffd")]


def test_bad_utf8_at_the_very_end_is_replaced():
    parser = SseParser()
    got = parser.feed(b"data: x\xe2\x98") + parser.close()
    assert [e.data for e in got] == ["x\ufffd"]


def test_a_named_event_without_data_is_kept_for_the_diff():
    assert events(b"event: ping\n\n") == [("ping", "")]


def test_stored_form():
    [event] = parse_sse(b"event: ping\nid: 3\ndata: {}\n\n")
    assert event.as_dict(t_ms=1.23456) == {"event": "ping", "data": "{}", "id": "3", "t_ms": 1.235}
