"""Real SDK releases send requests over loopback; what they send is stored as capture stores it,
and each client's SDK, features, status and accidental migration come out of those rows.

The recorder below only answers well enough for each SDK to finish its call and keeps the raw
request (headers exactly as the SDK sent them). When the recording proxy is on main, the same
scenario also runs through /proxy/<slug>/ (test_proxy_traffic.py, skipped until it lands).
"""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from migrations_audit.models import Client, Exchange, Status
from migrations_audit.secrets import key_fingerprint
from migrations_audit.tracking import selectors, services
from tests.support.sdk import run_sdk

from .factories import exchange_store

pytestmark = pytest.mark.slow

MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}
MESSAGE_STREAM = [
    ("message_start", {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    ),
    ("message_stop", {"type": "message_stop"}),
]
COMPLETION = {
    "completion": " Hello",
    "stop": None,
    "stop_reason": "max_tokens",
    "truncated": False,
    "exception": None,
    "log_id": "0" * 32,
    "model": "claude-instant-1",
}


class Recorder(BaseHTTPRequestHandler):
    """Answers like the API would, and keeps every request it got."""

    requests: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        request = json.loads(body or b"{}")
        if request.get("stream") and self.path.endswith("/v1/complete"):
            # The 2023-01-01 legacy stream: data-only, cumulative, ended by [DONE].
            payload = (
                f"data: {json.dumps({**COMPLETION, 'stop_reason': None})}\r\n\r\n"
                f"data: {json.dumps(COMPLETION)}\r\n\r\ndata: [DONE]\r\n\r\n"
            ).encode()
            self._send(200, payload, "text/event-stream")
        elif request.get("stream"):
            payload = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in MESSAGE_STREAM)
            self._send(200, payload.encode(), "text/event-stream")
        elif self.path.endswith("/v1/complete"):
            self._send(200, json.dumps(COMPLETION).encode(), "application/json")
        else:
            self._send(200, json.dumps(MESSAGE).encode(), "application/json")

    def _send(self, status, payload, content_type):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.requests
    server.shutdown()
    server.server_close()


LEGACY = """
import anthropic, json
client = anthropic.Client("{key}", api_url="{url}")
prompt = "\\n\\nHuman: hi\\n\\nAssistant:"
pieces = list(client.completion_stream(prompt=prompt, model="claude-instant-1", max_tokens_to_sample=8))
print(json.dumps({{"events": len(pieces)}}))
"""
MESSAGES = """
import anthropic, json
client = anthropic.Anthropic(api_key="{key}", base_url="{url}", max_retries=0)
kwargs = {extra}
message = client.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                                 messages=[{{"role": "user", "content": "hi"}}], **kwargs)
print(json.dumps({{"id": message.id if hasattr(message, "id") else "stream"}}))
"""


def sdk_call(release, url, key, *, extra="{}", script=MESSAGES):
    return run_sdk(release, script.format(key=key, url=url, extra=extra))


def store(upstream, requests, *, days_ago: float = 0):
    """What capture would write for each request the recorder kept."""
    started_at = timezone.now() - timedelta(days=days_ago)
    for request in requests:
        exchange_store(
            upstream=upstream,
            headers=request["headers"],
            body=json.loads(request["body"]),
            path=request["path"],
            started_at=started_at,
        )
    requests.clear()


def test_real_sdks_make_each_client_and_its_status(upstream_a, recorder):
    url, requests = recorder
    # Legacy: anthropic 0.2.10 streams Text Completions under 2023-01-01, key in X-API-Key.
    sdk_call("0.2.10", url, "sk-ant-legacy", script=LEGACY)
    store(upstream_a, requests, days_ago=3)
    # anthropic 0.125.0 with temperature: rejected under the target (a request finding at capture).
    sdk_call("0.125.0", url, "sk-ant-sampler", extra='{"temperature": 0.2}')
    store(upstream_a, requests, days_ago=2)
    # anthropic 1.17.0 streaming Messages, then the same key upgraded to 2.x (Bearer, 2026-10-21).
    sdk_call("1.17.0", url, "sk-ant-app", extra='{"stream": True}')
    store(upstream_a, requests, days_ago=12)
    sdk_call("2", url, "sk-ant-app")
    store(upstream_a, requests, days_ago=9)

    exchanges = {e.client.identity: e for e in Exchange.objects.select_related("client")}
    assert len(exchanges) == 3 and Client.objects.count() == 3
    for exchange in Exchange.objects.all():
        # Keys never stored: only fingerprints, in the header that carried them.
        assert "sk-ant" not in json.dumps(exchange.request_headers)
    legacy = Exchange.objects.get(api_version="2023-01-01")
    assert legacy.sdk == "Python 0.2.10" and legacy.streamed and legacy.endpoint == "POST /v1/complete"
    upgraded = Exchange.objects.get(api_version="2026-10-21")
    assert upgraded.sdk.startswith("Python 2.") and "authorization" in upgraded.request_headers
    assert "x-api-key" not in upgraded.request_headers

    migration = services.migration_create(
        upstream=upstream_a,
        name="To 2026-10-21",
        target_version="2026-10-21",
        from_versions=["2023-01-01", "2023-06-01"],
        deadline=timezone.localdate() + timedelta(days=90),
    )
    services.migration_refresh(migration=migration)
    states = {state.client.identity: state for state in migration.states.select_related("client")}

    def state_of(key):
        return states[key_fingerprint(key)]

    assert state_of("sk-ant-legacy").status == Status.NOT_STARTED
    sampler = state_of("sk-ant-sampler")
    assert sampler.status == Status.AFFECTED
    assert [entry["key"] for entry in sampler.evidence["impact"]] == ["sampling-parameters-removed"]
    assert sampler.evidence["sdks"] == ["Python 0.125.0"]
    assert "temperature" in sampler.evidence["features"]
    assert sampler.evidence["accidental"] is None
    app = state_of("sk-ant-app")
    assert app.status == Status.MIGRATED  # only the target for 9 days > the 7-day quiet period
    accidental = app.evidence["accidental"]
    assert (accidental["sdk_before"], accidental["version_before"]) == ("Python 1.17.0", "2023-06-01")
    assert (
        accidental["key_header_before"] == "x-api-key" and accidental["key_header_after"] == "authorization"
    )
    assert "streaming" in app.evidence["features"]
    profile = selectors.client_profile(client=app.client)
    assert [era.key_header for era in profile["eras"]] == ["x-api-key", "authorization"]
