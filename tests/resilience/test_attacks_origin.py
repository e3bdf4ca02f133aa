"""Attacks on the proxy's origin and on its HTTP listeners, replayed against real processes.

The proxy used to share the dashboard's origin (port 8000, /proxy/<slug>/): an upstream's page could
script the dashboard with a colleague's session, the browser's cookies went upstream and an
upstream's Set-Cookie replaced the dashboard's. Now the proxy has a port of its own, drops cookies
both ways and sandboxes what it returns. Also: oversized headers are refused before anything is
forwarded or stored, paths are forwarded exactly as received and never climb above the upstream's
base path, and clients too slow with their headers or body are cut off.

Each listener runs as the Procfile runs it; the upstream is a local server that echoes what it got.
"""

import http.client
import json
import socket
import time

import httpx
import pytest
from django.urls import reverse

from migrations_audit.models import Exchange, Upstream
from migrations_audit.secrets import MASK
from tests.conftest import child_env
from tests.support.servers import DASHBOARD_APP, PROXY_APP, echo_server, free_port, running, uvicorn_args

pytestmark = pytest.mark.slow

SLOW_CLIENT_SECONDS = 1  # the listeners' header and body timeouts in these tests
HEADERS = {"x-api-key": "sk-ant-origin-test", "anthropic-version": "2023-06-01"}
SESSION_COOKIE = "sessionid=dashboard-session-0123456789; csrftoken=dashboard-csrf-0123456789"
UPSTREAM_COOKIE = "sessionid=planted-by-the-upstream; Path=/; HttpOnly"


@pytest.fixture
def echo():
    with echo_server(set_cookie=UPSTREAM_COOKIE) as server:
        yield server


@pytest.fixture
def listeners(transactional_db, upstream_a, echo):
    """The dashboard and the proxy as `make run` starts them, the default upstream `anthropic` being
    the echo server under the base path /base."""
    Upstream.objects.filter(pk=upstream_a.pk).update(base_url=f"{echo.url}/base")
    web_port, proxy_port = free_port(), free_port()
    env = child_env(
        MIGRATION_AUDIT_DEFAULT_UPSTREAM=upstream_a.slug,
        MIGRATION_AUDIT_PROXY_URL=f"http://127.0.0.1:{proxy_port}",
        MIGRATION_AUDIT_HEADER_TIMEOUT=SLOW_CLIENT_SECONDS,
        MIGRATION_AUDIT_BODY_TIMEOUT=SLOW_CLIENT_SECONDS,
    )
    with (
        running(
            uvicorn_args(DASHBOARD_APP, web_port, "--no-access-log"),
            env=env,
            ready_url=f"http://127.0.0.1:{web_port}/healthz",
        ),
        running(
            uvicorn_args(PROXY_APP, proxy_port, "--no-access-log"),
            env=env,
            ready_url=f"http://127.0.0.1:{proxy_port}/__audit/healthz",
        ),
    ):
        yield {
            "web": f"http://127.0.0.1:{web_port}",
            "proxy": f"http://127.0.0.1:{proxy_port}",
            "prefix": f"http://127.0.0.1:{proxy_port}/proxy/{upstream_a.slug}",
            "upstream": upstream_a,
        }


def recorded(count: int, *, timeout: float = 30) -> list[Exchange]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(Exchange.objects.order_by("id"))
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{Exchange.objects.count()} exchanges recorded, expected {count}")


def only_this_recorded(listeners, echo) -> Exchange:
    """Send one good call through the proxy; once it is stored, it must be the only exchange: what
    was refused before it was neither forwarded nor stored."""
    forwarded_before = len(echo.requests)
    response = httpx.post(f"{listeners['prefix']}/v1/messages", headers=HEADERS, json={"good": True})
    assert response.status_code == 200, response.text
    assert len(echo.requests) == forwarded_before + 1
    [exchange] = recorded(1)
    assert json.loads(bytes(exchange.request_body)) == {"good": True}
    return exchange


def received_headers(request: dict) -> dict[str, str]:
    return dict(request["headers"])


def raw_exchange(port: int, request: bytes, *, timeout: float = 10) -> bytes:
    """Send `request` as is and read the answer until the server closes; b"" if it hung up on it."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        try:
            connection.sendall(request)
            while chunk := connection.recv(65536):
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up on it, which is a refusal too
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


# (a) The dashboard's origin never proxies.


def test_the_dashboard_port_does_not_proxy(listeners, echo):
    for method in ("GET", "POST"):
        for path in ("/proxy/anthropic/v1/messages", "/proxy/anthropic/landing", "/__audit/healthz"):
            response = httpx.request(method, listeners["web"] + path, headers=HEADERS, content=b"{}")
            assert response.status_code == 404, (method, path, response.status_code)
            assert response.headers["content-type"].startswith("text/html"), "Django's 404, not a proxied one"
    assert echo.connections == 0, "the upstream was never contacted from the dashboard's origin"
    assert only_this_recorded(listeners, echo).path == "/v1/messages"


def test_pages_point_clients_at_the_proxy_origin(client, alice, upstream_a, settings):
    settings.MIGRATION_AUDIT_PROXY_URL = "http://proxy.example:8001"
    client.force_login(alice)
    for name, args in (("overview", [upstream_a.slug]), ("traffic", [upstream_a.slug]), ("settings", [])):
        page = client.get(reverse(f"migrations_audit:{name}", args=args)).content.decode()
        assert "http://proxy.example:8001/proxy/anthropic" in page, name
        assert "testserver/proxy/" not in page, name
    overview = client.get(reverse("migrations_audit:overview", args=[upstream_a.slug])).content.decode()
    assert "<code>http://proxy.example:8001</code>" in overview, (
        "the root-path listener of the default upstream"
    )


# (b) Cookies never cross the proxy, and are stored masked.


def test_cookies_cross_the_proxy_in_neither_direction(listeners, echo):
    browser = {**HEADERS, "cookie": SESSION_COOKIE, "accept": "text/html"}
    for base in (listeners["prefix"], listeners["proxy"]):  # /proxy/<slug>/ and the root path
        response = httpx.post(f"{base}/v1/messages", headers=browser, json={"hello": "upstream"})
        assert response.status_code == 200
        forwarded = echo.requests[-1]
        assert "cookie" not in received_headers(forwarded), "the browser's cookies reached the upstream"
        assert received_headers(forwarded)["x-api-key"] == HEADERS["x-api-key"], "the API key still goes"
        assert "set-cookie" not in response.headers, "the upstream's cookie reached the client"
    for exchange in recorded(2):
        assert exchange.request_headers["cookie"] == MASK
        assert exchange.response_headers["set-cookie"] == MASK
        stored = (
            json.dumps([exchange.request_headers, exchange.response_headers])
            + bytes(exchange.response_body).decode()
        )
        assert "dashboard-session" not in stored and "planted-by-the-upstream" not in stored


# (c) Whatever the proxy returns cannot run as a page.


def test_every_proxy_answer_is_sandboxed(listeners, echo):
    answers = {
        "forwarded": httpx.post(f"{listeners['prefix']}/v1/messages", headers=HEADERS, json={}),
        "root mode": httpx.get(f"{listeners['proxy']}/landing"),
        "unknown upstream": httpx.get(f"{listeners['proxy']}/proxy/nope/landing"),
        "path refused": httpx.get(f"{listeners['prefix']}/v1/%2e%2e/%2e%2e/admin"),
        "too many headers": httpx.get(
            f"{listeners['prefix']}/v1/models", headers={f"x-filler-{n}": "v" for n in range(300)}
        ),
        "health": httpx.get(f"{listeners['proxy']}/__audit/healthz"),
    }
    assert [answers[name].status_code for name in answers] == [200, 200, 404, 400, 431, 200]
    for name, response in answers.items():
        assert response.headers["content-security-policy"] == "sandbox", name
        assert response.headers["x-content-type-options"] == "nosniff", name


# (d) Oversized headers are refused before anything is forwarded or stored.


def test_a_20_mb_header_is_refused_and_never_forwarded_or_stored(listeners, echo):
    for url in (listeners["prefix"], listeners["web"] + "/api/v1/upstreams/anthropic"):
        port = port_of(url)
        path = url.split(f":{port}", 1)[1]
        request = (
            f"POST {path}/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ".encode()
            + b"a" * (20 * 1024 * 1024)
            + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        answer = raw_exchange(port, request)
        assert echo.connections == 0, "nothing reached the upstream"
        assert not answer or status_of(answer) == 431, answer[:300]
    only_this_recorded(listeners, echo)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-big": "a" * (17 * 1024)}, "A request header is larger than 16384 bytes"),
        ({f"x-filler-{n}": "a" * 2000 for n in range(34)}, "headers are larger than 65536 bytes"),
    ],
    ids=["one-header", "header-block"],
)
def test_oversized_headers_get_431_and_are_never_forwarded_or_stored(listeners, echo, headers, message):
    response = httpx.post(f"{listeners['prefix']}/v1/messages", headers={**HEADERS, **headers}, json={})
    assert response.status_code == 431
    assert response.json()["error"]["type"] == "request_too_large"
    assert message in response.json()["error"]["message"]
    assert echo.connections == 0, "nothing reached the upstream"
    only_this_recorded(listeners, echo)


# (e) The path is forwarded exactly as received, and never above the upstream's base path.


def send_path(url: str, target: str) -> tuple[int, bytes]:
    """Send `target` verbatim (no client-side normalisation) and return the status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=10)
    try:
        connection.request("GET", target, headers=HEADERS)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_path_reaches_the_upstream_as_received(listeners, echo):
    sent = {
        "/proxy/anthropic/v1/a%3Fb?c=d": "/base/v1/a%3Fb?c=d",
        "/proxy/anthropic/v1/a%23b?c=%23": "/base/v1/a%23b?c=%23",
        "/proxy/anthropic/v1/a%2Fb%20c": "/base/v1/a%2Fb%20c",
        "/v1/a%3Fb?c=d": "/base/v1/a%3Fb?c=d",  # root mode
    }
    for target, forwarded in sent.items():
        status, body = send_path(listeners["proxy"], target)
        assert status == 200, (target, body)
        assert echo.requests[-1]["target"] == forwarded
    assert len(echo.requests) == len(sent)
    stored = [(exchange.path, exchange.query) for exchange in recorded(len(sent))]
    assert sorted(stored) == sorted(
        forwarded.removeprefix("/base").partition("?")[::2] for forwarded in sent.values()
    ), "recorded as forwarded"


def test_a_path_cannot_climb_above_the_upstream_base_path(listeners, echo):
    for target in (
        "/proxy/anthropic/../admin",
        "/proxy/anthropic/v1/../../admin",
        "/proxy/anthropic/v1/%2e%2e/%2E%2E/admin",
        "/proxy/anthropic/v1/..%2F..%2Fadmin",
        "/../admin",  # root mode
        "/v1/./../../admin",
    ):
        status, body = send_path(listeners["proxy"], target)
        assert status == 400, (target, body)
    assert echo.connections == 0, "nothing reached the upstream"
    only_this_recorded(listeners, echo)


# (f) Slow clients are cut off.


def dribble(port: int, first: bytes, more: bytes, *, give_up_after: float = 30) -> bytes:
    """Send `first`, then `more` every little while, until the server answers and hangs up; returns
    what it answered. Fails if the server is still waiting for the rest at `give_up_after`."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.settimeout(0.2)  # the attacker's pace: a little more whenever the server is quiet
        if first:
            connection.sendall(first)
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                try:
                    connection.sendall(more)
                except (BrokenPipeError, ConnectionResetError):
                    return answer
                continue
            except ConnectionResetError:
                return answer
            if not chunk:
                return answer
            answer += chunk
    raise AssertionError(f"the server still held the connection after {give_up_after} s: {answer[:200]!r}")


@pytest.mark.parametrize("listener", ["web", "proxy"])
def test_a_slow_client_is_cut_off(listeners, echo, listener):
    port = port_of(listeners[listener])
    path = "/proxy/anthropic/v1/messages" if listener == "proxy" else "/api/v1/upstreams/anthropic/exchanges"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    for phase, first, more in (
        ("connects and sends nothing", b"", b""),
        ("dribbles its headers", head.encode(), b"X-Slow: 1\r\n"),
        ("dribbles its body", f"{head}Content-Length: 100000\r\n\r\n{{".encode(), b" "),
    ):
        answer = dribble(port, first, more)
        if answer:
            assert status_of(answer) == 408, (phase, answer[:300])
            assert b"nosniff" in answer, phase
    assert echo.connections == 0, "nothing reached the upstream"
    only_this_recorded(listeners, echo)


def test_a_slow_but_steady_upload_is_not_cut_off(listeners, echo):
    """Each byte received buys time: a body arriving well above 16 KB/s may take longer than the
    body timeout (a large file over a slow link), where a dribbled one may not."""
    chunk, chunks = b" " * (16 * 1024), 3 * SLOW_CLIENT_SECONDS * 10  # three times the timeout
    body = b"{}" + chunk * chunks
    port = port_of(listeners["proxy"])
    head = (
        f"POST /proxy/anthropic/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{{}}"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head.encode())
        for _ in range(chunks):
            time.sleep(0.1)  # the client's pace: 160 KB/s, ten times the rate that keeps a body going
            connection.sendall(chunk)
        answer = b""
        while data := connection.recv(65536):
            answer += data
    assert time.monotonic() - started > SLOW_CLIENT_SECONDS, "the upload outlasted the body timeout"
    assert status_of(answer) == 200, answer[:300]
    assert len(echo.requests) == 1 and len(echo.requests[0]["body"]) == len(body)
