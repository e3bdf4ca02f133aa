"""The recording proxy with real SDK releases, over real HTTP, in front of the emulator.

What each SDK gets through the proxy equals what it gets from the emulator directly, and the stored
exchanges hold no key.
"""

import json
import time

import httpx
import pytest

from migrations_audit.models import Exchange, Upstream
from tests.conftest import child_env
from tests.support.sdk import run_sdk
from tests.support.servers import PROXY_APP, free_port, running, uvicorn_args
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow]

SECRET_KEY = "sk-ant-proxy-test-secret-0123456789"


@pytest.fixture
def proxy(transactional_db, upstream_a, emulator):
    """The recording proxy as a real process: the upstream at /proxy/<slug>/ and, as the default
    upstream, at the root path."""
    Upstream.objects.filter(pk=upstream_a.pk).update(base_url=emulator)
    port = free_port()
    env = child_env(MIGRATION_AUDIT_DEFAULT_UPSTREAM=upstream_a.slug, MIGRATION_AUDIT_PROXY_TIMEOUT=5)
    with running(
        uvicorn_args(PROXY_APP, port, "--no-access-log"),
        env=env,
        ready_url=f"http://127.0.0.1:{port}/__audit/healthz",
    ):
        yield {
            "prefix": f"http://127.0.0.1:{port}/proxy/{upstream_a.slug}",
            "root": f"http://127.0.0.1:{port}",
            "upstream": upstream_a,
        }


def recorded(count: int, *, timeout: float = 30) -> list[Exchange]:
    """The exchanges the proxy process wrote, once `count` have arrived (it records off the request path)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(Exchange.objects.order_by("id"))
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{Exchange.objects.count()} exchanges recorded, expected {count}")


def assert_no_secret_stored(exchanges):
    for exchange in exchanges:
        stored = (
            json.dumps(
                [
                    exchange.request_headers,
                    exchange.response_headers,
                    exchange.response_events,
                    exchange.error,
                    exchange.user_agent,
                ]
            )
            + bytes(exchange.request_body).decode(errors="replace")
            + bytes(exchange.response_body).decode(errors="replace")
        )
        assert SECRET_KEY not in stored


# Each script prints a JSON object of what the SDK handed to its caller, minus ids that vary per call.
LEGACY_SCRIPT = """
import json, sys, anthropic
client = anthropic.Client(sys.argv[1], api_url=sys.argv[2])
prompt = anthropic.HUMAN_PROMPT + " Tell me a story" + anthropic.AI_PROMPT
kwargs = dict(prompt=prompt, model="claude-v1", max_tokens_to_sample=40,
              stop_sequences=[anthropic.HUMAN_PROMPT])
full = client.completion(**kwargs)
stream = [data["completion"] for data in client.completion_stream(**kwargs)]
print(json.dumps({"completion": full["completion"], "stop_reason": full["stop_reason"], "stream": stream}))
"""

MODERN_SCRIPTS = {
    "0.125.0": """
import json, sys, anthropic
client = anthropic.Anthropic(api_key=sys.argv[1], base_url=sys.argv[2], max_retries=0)
messages = [{"role": "user", "content": "Tell me a story"}]
m = client.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=40, messages=messages,
                           temperature=0.7)
with client.messages.stream(model="claude-3-5-sonnet-20241022", max_tokens=40, messages=messages) as s:
    streamed = s.get_final_text()
c = client.completions.create(model="claude-2.1", max_tokens_to_sample=30,
                              prompt=anthropic.HUMAN_PROMPT + " hi" + anthropic.AI_PROMPT)
pieces = [e.completion for e in client.completions.create(model="claude-2.1", max_tokens_to_sample=30,
          prompt=anthropic.HUMAN_PROMPT + " hi" + anthropic.AI_PROMPT, stream=True)]
print(json.dumps({"text": m.content[0].text, "usage": m.usage.output_tokens, "streamed": streamed,
                  "completion": c.completion, "pieces": pieces}))
""",
    "1.17.0": """
import json, sys, anthropic
client = anthropic.Anthropic(api_key=sys.argv[1], base_url=sys.argv[2], max_retries=0)
messages = [{"role": "user", "content": "Tell me a story"}]
m = client.messages.create(model="claude-sonnet-4-5", max_tokens=40, messages=messages)
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=40, messages=messages) as s:
    events = [event.type for event in s]
    final = s.get_final_message()
print(json.dumps({"text": m.content[0].text, "stop": m.stop_reason, "events": events,
                  "streamed": final.content[0].text}))
""",
    "2": """
import json, sys, warnings, anthropic
warnings.simplefilter("ignore")
client = anthropic.Anthropic(api_key=sys.argv[1], base_url=sys.argv[2], max_retries=0)
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object",
          "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
m = client.messages.create(model="claude-sonnet-4-5", max_tokens=60, messages=messages)
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=60, messages=messages, tools=tools) as s:
    final = s.get_final_message()
count = client.messages.count_tokens(model="claude-sonnet-4-5", messages=messages)
print(json.dumps({"text": m.content[0].text, "blocks": [b.type for b in final.content],
                  "tool_input": final.content[-1].input, "tokens": count.input_tokens}))
""",
}


def test_sdk_0_2_10_through_the_root_path_listener(proxy, emulator):
    direct = run_sdk("0.2.10", f"import sys; sys.argv = ['', {SECRET_KEY!r}, {emulator!r}]\n" + LEGACY_SCRIPT)
    proxied = run_sdk(
        "0.2.10", f"import sys; sys.argv = ['', {SECRET_KEY!r}, {proxy['root']!r}]\n" + LEGACY_SCRIPT
    )
    assert proxied == direct
    assert len(direct["stream"]) > 2 and direct["stream"][-1].startswith(direct["stream"][0]), "cumulative"
    exchanges = recorded(2)
    assert {(e.api_version, e.streamed, e.sdk) for e in exchanges} == {
        ("2023-01-01", False, "Python 0.2.10"),
        ("2023-01-01", True, "Python 0.2.10"),
    }
    streamed = next(e for e in exchanges if e.streamed)
    assert bytes(streamed.response_body).endswith(b"data: [DONE]\r\n\r\n"), "raw SSE kept as received"
    assert all("t_ms" in event for event in streamed.response_events)
    assert_no_secret_stored(exchanges)


@pytest.mark.parametrize(
    ("release", "calls", "version"),
    [("0.125.0", 4, "2023-06-01"), ("1.17.0", 2, "2023-06-01"), ("2", 3, "2026-10-21")],
)
def test_modern_sdks_through_the_prefix_proxy(proxy, emulator, release, calls, version):
    script = MODERN_SCRIPTS[release]
    direct = run_sdk(release, f"import sys; sys.argv = ['', {SECRET_KEY!r}, {emulator!r}]\n" + script)
    proxied = run_sdk(release, f"import sys; sys.argv = ['', {SECRET_KEY!r}, {proxy['prefix']!r}]\n" + script)
    assert proxied == direct
    exchanges = recorded(calls)
    assert {e.api_version for e in exchanges} == {version}
    assert any(e.streamed for e in exchanges)
    assert len({e.client_id for e in exchanges}) == 1, "one key, one client"
    assert_no_secret_stored(exchanges)


def test_the_first_event_is_forwarded_before_the_upstream_sends_its_last(proxy):
    body = {
        "model": "claude-2.1",
        "prompt": "\n\nHuman: hi\n\nAssistant:",
        "max_tokens_to_sample": 20,
        "stream": True,
    }
    headers = {"x-api-key": SECRET_KEY, "anthropic-version": "2023-06-01", "x-emulator-event-delay-ms": "150"}
    arrivals = []
    with httpx.stream(
        "POST", proxy["prefix"] + "/v1/complete", json=body, headers=headers, timeout=30
    ) as response:
        for _ in response.iter_raw():
            arrivals.append(time.monotonic())
    # The emulator waits 150 ms between events: a buffering proxy would deliver them all at once.
    assert len(arrivals) > 5
    assert arrivals[-1] - arrivals[0] > 0.5 * 0.150 * (len(arrivals) - 1)


def test_upstream_down_gives_502_in_the_api_error_shape(proxy):
    Upstream.objects.filter(pk=proxy["upstream"].pk).update(base_url=f"http://127.0.0.1:{free_port()}")

    def answered_by_the_new_address():
        response = httpx.post(proxy["prefix"] + "/v1/messages", json={}, headers={"x-api-key": SECRET_KEY})
        return response if response.status_code == 502 else None

    # The proxy caches an upstream's settings for 5 s: until then it still forwards to the old address.
    response = wait_until(
        answered_by_the_new_address, timeout=30, interval=0.5, message="the proxy to read the new base URL"
    )
    assert response.json()["error"]["type"] == "api_error"
    exchange = wait_until(
        lambda: Exchange.objects.filter(status=502).first(), message="the 502 exchange to be recorded"
    )
    assert "unreachable" in exchange.error


def test_unknown_upstream_is_404(proxy):
    response = httpx.post(proxy["prefix"].rsplit("/", 1)[0] + "/nope/v1/messages", json={})
    assert response.status_code == 404
    assert "No upstream named 'nope'" in response.json()["error"]["message"]


def test_a_stream_dropped_by_the_upstream_is_dropped_for_the_client_and_recorded(proxy):
    body = {
        "model": "claude-2.1",
        "prompt": "\n\nHuman: hi\n\nAssistant:",
        "max_tokens_to_sample": 20,
        "stream": True,
    }
    headers = {"x-api-key": SECRET_KEY, "anthropic-version": "2023-06-01", "x-emulator-fault": "drop"}
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", proxy["prefix"] + "/v1/complete", json=body, headers=headers) as response,
    ):
        for chunk in response.iter_raw():
            received += chunk
    exchange = recorded(1)[0]
    assert "connection lost" in exchange.error
    assert bytes(exchange.response_body) == received
    assert exchange.response_events, "what came before the drop is kept"


def test_a_client_that_disconnects_mid_stream_is_recorded_as_such(proxy):
    body = {
        "model": "claude-2.1",
        "prompt": "\n\nHuman: hi\n\nAssistant:",
        "max_tokens_to_sample": 30,
        "stream": True,
    }
    headers = {"x-api-key": SECRET_KEY, "anthropic-version": "2023-06-01", "x-emulator-event-delay-ms": "200"}
    with httpx.stream("POST", proxy["prefix"] + "/v1/complete", json=body, headers=headers) as response:
        next(response.iter_raw())
    exchange = recorded(1)[0]
    assert "client disconnected" in exchange.error


def test_a_body_over_the_limit_is_refused_without_reaching_the_upstream(proxy):
    response = httpx.post(
        proxy["prefix"] + "/v1/messages",
        content=b"x" * (33 * 1024 * 1024),
        headers={"x-api-key": SECRET_KEY},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


def recorded_up_to_now(proxy, other) -> None:
    """Send one call through an upstream that records everything (`other`: nothing listens at its
    address, so it is answered 502 and recorded) and wait until it is stored. The recorder writes
    in order, so by then every call before it that was to be recorded is stored too."""
    response = httpx.post(f"{proxy['root']}/proxy/{other.slug}/v1/complete", json={})
    assert response.status_code == 502
    wait_until(
        lambda: Exchange.objects.filter(upstream=other).exists(), message="the later call to be recorded"
    )


def test_recording_can_be_sampled_or_paused_per_upstream(proxy, upstream_b):
    Upstream.objects.filter(pk=proxy["upstream"].pk).update(record_one_in=3)
    body = {"model": "claude-2.1", "prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 5}
    headers = {"x-api-key": SECRET_KEY, "anthropic-version": "2023-06-01"}
    for _ in range(6):
        assert httpx.post(proxy["prefix"] + "/v1/complete", json=body, headers=headers).status_code == 200
    recorded_up_to_now(proxy, upstream_b)
    assert Exchange.objects.filter(upstream=proxy["upstream"]).count() == 2, "one in three recorded"


def test_a_paused_upstream_is_proxied_but_not_recorded(proxy, upstream_b):
    Upstream.objects.filter(pk=proxy["upstream"].pk).update(recording_paused=True)
    body = {"model": "claude-2.1", "prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 5}
    headers = {"x-api-key": SECRET_KEY, "anthropic-version": "2023-06-01"}
    assert httpx.post(proxy["prefix"] + "/v1/complete", json=body, headers=headers).status_code == 200
    recorded_up_to_now(proxy, upstream_b)
    assert not Exchange.objects.filter(upstream=proxy["upstream"]).exists()


RECORD_LIMIT = 64 * 1024


@pytest.fixture
def big_upstream():
    """A local upstream (127.0.0.1) answering a 1 MB JSON body or a 1 MB event stream, in pieces (or
    a small body at /small)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    text = "".join(chr(ord("a") + index % 26) for index in range(1024 * 1024))
    message = json.dumps({"type": "message", "content": [{"type": "text", "text": text}]}).encode()
    events = (
        b"".join(
            b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"text": "%s"}}\n\n'
            % (text[index : index + 1000].encode())
            for index in range(0, len(text), 1000)
        )
        + b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            streamed = self.path.endswith("/stream")
            body = events if streamed else b'{"ok": true}' if self.path.endswith("/small") else message
            self.send_response(200)
            self.send_header("content-type", "text/event-stream" if streamed else "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            for start in range(0, len(body), 16 * 1024):
                self.wfile.write(body[start : start + 16 * 1024])
                self.wfile.flush()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "message": message, "events": events}
    finally:
        server.shutdown()
        server.server_close()


def test_a_response_over_the_recording_limit_streams_whole_and_is_stored_truncated(
    transactional_db, upstream_a, big_upstream
):
    Upstream.objects.filter(pk=upstream_a.pk).update(base_url=big_upstream["url"])
    port = free_port()
    env = child_env(MIGRATION_AUDIT_RECORD_MAX_BYTES=RECORD_LIMIT)
    with running(
        uvicorn_args(PROXY_APP, port, "--no-access-log"),
        env=env,
        ready_url=f"http://127.0.0.1:{port}/__audit/healthz",
    ):
        prefix = f"http://127.0.0.1:{port}/proxy/{upstream_a.slug}"
        headers = {"x-api-key": SECRET_KEY, "anthropic-version": "2023-06-01"}
        plain = httpx.post(prefix + "/v1/messages", json={"m": 1}, headers=headers, timeout=30)
        with httpx.stream(
            "POST", prefix + "/v1/messages/stream", json={"m": 2}, headers=headers, timeout=30
        ) as response:
            streamed = b"".join(response.iter_raw())
        small = httpx.post(prefix + "/v1/small", json={"m": 3}, headers=headers, timeout=30)
        assert plain.status_code == 200 and plain.content == big_upstream["message"]
        assert streamed == big_upstream["events"]
        assert small.status_code == 200
        exchanges = recorded(3)
    plain_row, stream_row, small_row = exchanges
    assert plain_row.truncated and stream_row.truncated and not small_row.truncated
    assert bytes(small_row.response_body) == b'{"ok": true}'
    assert bytes(plain_row.response_body) == big_upstream["message"][:RECORD_LIMIT]
    assert bytes(stream_row.response_body) == big_upstream["events"][:RECORD_LIMIT]
    # The events parsed from the recorded start only, and the cut not taken for a malformed stream.
    assert 0 < len(stream_row.response_events) <= RECORD_LIMIT // 1000
    assert stream_row.error == "" and plain_row.error == ""
    assert_no_secret_stored(exchanges)
