"""Recorded traffic for the demo: what five typical clients sent over two weeks, answered in-process
by the emulator (no network), and recorded through the capture stage like real proxy traffic."""

import json
import random
from datetime import timedelta

from django.utils import timezone

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.emulator import EmulatorOptions, respond
from migrations_audit.models import Upstream
from migrations_audit.sse import parse_sse

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
DOCUMENT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "Refund policy"},
}
CITED_TEXT = {
    "type": "text",
    "text": "As the policy says",
    "citations": [
        {
            "type": "char_location",
            "cited_text": "Refund",
            "document_index": 0,
            "document_title": "Policy",
            "start_char_index": 0,
            "end_char_index": 6,
        }
    ],
}


def _messages_body(prompt: str, *, stream=False, **extra) -> dict:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
        **extra,
    }


def _complete_body(prompt: str, *, stream=False) -> dict:
    return {
        "model": "claude-2.1",
        "prompt": f"{HUMAN} {prompt}{ASSISTANT}",
        "max_tokens_to_sample": 60,
        "stream": stream,
    }


# (client name, SDK headers, version, request builders)
CLIENTS = [
    (
        "checkout-service",
        {"user-agent": "Anthropic/Python 0.125.0"},
        "2023-06-01",
        [
            lambda n: ("/v1/messages", _messages_body(f"Summarise order {n}", temperature=0.2)),
            lambda n: ("/v1/messages", _messages_body(f"Explain refund {n}", stream=True, top_p=0.9)),
        ],
    ),
    (
        "support-bot",
        {"user-agent": "Anthropic/Python 1.17.0"},
        "2023-06-01",
        [
            lambda n: ("/v1/messages", _messages_body(f"Answer ticket {n}")),
            lambda n: ("/v1/messages", _messages_body(f"Draft reply {n}", stream=True)),
        ],
    ),
    (
        "legacy-batch",
        {"anthropic-sdk": "anthropic-python/0.2.10"},
        "2023-01-01",
        [
            lambda n: ("/v1/complete", _complete_body(f"Classify document {n}")),
            lambda n: ("/v1/complete", _complete_body(f"Tag document {n}", stream=True)),
        ],
    ),
    (
        "docs-assistant",
        {"user-agent": "Anthropic/Python 0.125.0"},
        "2023-06-01",
        [
            lambda n: (
                "/v1/messages",
                {
                    **_messages_body(f"Quote the policy {n}"),
                    "messages": [
                        {"role": "user", "content": "What does the policy say?"},
                        {"role": "assistant", "content": [DOCUMENT]},
                        {"role": "user", "content": [CITED_TEXT]},
                    ],
                },
            )
        ],
    ),
    (
        "search-indexer",
        {"user-agent": "Anthropic/Python 1.17.0"},
        "2023-06-01",
        [lambda n: ("/v1/messages", _messages_body(f"Index page {n}"))],
    ),
]


def demo_traffic_record(*, upstream: Upstream, days: int = 14, per_day: int = 3) -> int:
    """Record the demo traffic; returns how many exchanges were stored."""
    rng = random.Random(7)
    now = timezone.now().replace(microsecond=0)
    captured = []
    for name, sdk_headers, version, builders in CLIENTS:
        for day in range(days, 0, -1):
            for n in range(per_day):
                path, body = builders[(day + n) % len(builders)](day * 10 + n)
                headers = {
                    "x-audit-client": name,
                    "anthropic-version": version,
                    "x-api-key": f"sk-ant-demo-{name}",
                    "content-type": "application/json",
                    **sdk_headers,
                }
                # The search indexer upgraded to the 2.x SDK three days ago: it moved to 2026-10-21 and
                # Bearer auth without anyone deciding it (an accidental migration).
                if name == "search-indexer" and day <= 3:
                    headers = {
                        "x-audit-client": name,
                        "anthropic-version": "2026-10-21",
                        "authorization": f"Bearer sk-ant-demo-{name}",
                        "content-type": "application/json",
                        "user-agent": "Anthropic/Python 2.13.0",
                    }
                    if n == 0:
                        body = {**body, "temperature": 0.0}  # passed through extra_body: now a 400
                at = now - timedelta(days=day, minutes=rng.randint(0, 600))
                captured.append(_exchange(path, headers, body, at))
    exchanges_record(upstream=upstream, captured=captured, source="demo")
    return len(captured)


def _exchange(path: str, headers: dict, body: dict, at) -> CapturedExchange:
    raw = json.dumps(body).encode()
    response = respond("POST", path, headers, raw, options=EmulatorOptions(seed=0))
    response_headers = dict(response.headers)
    events = None
    if response.streamed:
        events = []
        elapsed = 180.0
        for event in parse_sse(response.full_body()):
            events.append(event.as_dict(t_ms=elapsed))
            elapsed += 35.0
    return CapturedExchange(
        method="POST",
        path=path,
        request_headers=headers,
        request_body=raw,
        started_at=at,
        status=response.status,
        response_headers=response_headers,
        response_body=response.full_body(),
        streamed=response.streamed,
        response_events=events,
        duration_ms=events[-1]["t_ms"] if events else 240.0,
        first_byte_ms=180.0 if events else 240.0,
    )
