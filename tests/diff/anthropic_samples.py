"""Responses of the Anthropic API in the byte formats of reference/anthropic-versions.md.

Each builder takes the call's volatile parts (ids, timestamps) as arguments, so that two calls of
the same version differ only where the real API differs."""

import json

from migrations_audit.diff import ResponseSnapshot
from migrations_audit.sse import parse_sse

WORDS = [" Hello", " my", " name", " is", " Claude"]


def _events(raw: bytes) -> list[dict]:
    return [event.as_dict() for event in parse_sse(raw)]


def complete_2023_01_01(*, log_id="9d1d0f2c3b4a5e6f7a8b9c0d1e2f3a4b", stream=False, words=WORDS):
    headers = {"content-type": "application/json", "request-id": f"req_{log_id[:12]}", "date": "Tue"}
    if not stream:
        body = {
            "completion": "".join(words),
            "stop": "\n\nHuman:",
            "stop_reason": "stop_sequence",
            "truncated": False,
            "exception": None,
            "log_id": log_id,
            "model": "claude-instant-v1",
        }
        return ResponseSnapshot(status=200, headers=headers, body=json.dumps(body).encode())
    chunks = []
    for n in range(1, len(words) + 1):
        last = n == len(words)
        event = {
            "completion": "".join(words[:n]),
            "stop_reason": "stop_sequence" if last else None,
            "truncated": False,
            "exception": None,
            "log_id": log_id,
            "model": "claude-instant-v1",
        }
        chunks.append(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
        if n == 2:
            chunks.append(b"event: ping\r\ndata: 2023-04-28 21:18:31.866238\r\n\r\n")
    chunks.append(b"data: [DONE]\r\n\r\n")
    raw = b"".join(chunks)
    headers["content-type"] = "text/event-stream"
    return ResponseSnapshot(status=200, headers=headers, body=raw, streamed=True, events=_events(raw))


def complete_2023_06_01(*, completion_id="compl_01AbCdEfGhIjKlMnOp", stream=False, words=WORDS):
    headers = {"content-type": "application/json", "request-id": f"req_{completion_id[-12:]}", "date": "Wed"}
    if not stream:
        body = {
            "type": "completion",
            "id": completion_id,
            "completion": "".join(words),
            "stop": "\n\nHuman:",
            "stop_reason": "stop_sequence",
            "log_id": completion_id[-8:] * 4,
            "model": "claude-instant-v1",
        }
        return ResponseSnapshot(status=200, headers=headers, body=json.dumps(body).encode())
    chunks = []
    for n, word in enumerate([*words, ""], start=1):
        last = n == len(words) + 1
        event = {
            "type": "completion",
            "id": completion_id,
            "completion": word,
            "stop_reason": "stop_sequence" if last else None,
            "log_id": completion_id[-8:] * 4,
            "model": "claude-instant-v1",
        }
        chunks.append(b"event: completion\r\ndata: " + json.dumps(event).encode() + b"\r\n\r\n")
        if n == 2:
            chunks.append(b'event: ping\r\ndata: {"type": "ping"}\r\n\r\n')
    raw = b"".join(chunks)
    headers["content-type"] = "text/event-stream"
    return ResponseSnapshot(status=200, headers=headers, body=raw, streamed=True, events=_events(raw))


def message_response(*, message_id="msg_01XyZaBcDeFgHiJk", text="Hello there", stream=False, pieces=None):
    headers = {"content-type": "application/json", "request-id": f"req_{message_id[-10:]}"}
    if not stream:
        body = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 5},
        }
        return ResponseSnapshot(status=200, headers=headers, body=json.dumps(body).encode())
    pieces = pieces or ["Hello", " there"]
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"id": message_id, "type": "message", "role": "assistant", "content": []},
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        ),
    ]
    for piece in pieces:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append(("content_block_delta", delta))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    raw = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
    headers["content-type"] = "text/event-stream"
    return ResponseSnapshot(status=200, headers=headers, body=raw, streamed=True, events=_events(raw))


def invalid_request(message: str, *, request_id="req_011Abc"):
    body = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": request_id,
    }
    return ResponseSnapshot(
        status=400,
        headers={"content-type": "application/json", "request-id": request_id},
        body=json.dumps(body).encode(),
    )
