"""An upstream that is too slow or hangs up: the client gets the API's error shape, never a hang or a
truncated 200, and the exchange is recorded with what went wrong. A real proxy process in front of
the emulator (or of a server that resets every connection), over real HTTP.

The upstream that cannot be reached at all (502) is in tests/capture/test_proxy.py."""

import time

import httpx
import pytest

from migrations_audit.models import Exchange, Upstream
from tests.conftest import child_env
from tests.support.servers import PROXY_APP, free_port, resetting_server, running, uvicorn_args

pytestmark = [pytest.mark.slow]

PROXY_TIMEOUT_SECONDS = 1
HEADERS = {"x-api-key": "sk-ant-faults-test", "anthropic-version": "2023-06-01"}
MESSAGE = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def proxy(transactional_db, upstream_a, emulator):
    """The recording proxy as a real process, giving up on an upstream silent for 1 s."""
    Upstream.objects.filter(pk=upstream_a.pk).update(base_url=emulator)
    port = free_port()
    env = child_env(MIGRATION_AUDIT_PROXY_TIMEOUT=PROXY_TIMEOUT_SECONDS)
    with running(
        uvicorn_args(PROXY_APP, port),
        env=env,
        ready_url=f"http://127.0.0.1:{port}/__audit/healthz",
    ):
        yield {"prefix": f"http://127.0.0.1:{port}/proxy/{upstream_a.slug}", "upstream": upstream_a}


def recorded_one(*, timeout: float = 15) -> Exchange:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exchange = Exchange.objects.first()
        if exchange is not None:
            return exchange
        time.sleep(0.2)
    raise AssertionError("the exchange was not recorded")


def assert_api_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "api_error" and payload["error"]["message"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_upstream_slower_than_the_timeout_gets_the_client_a_504_and_is_recorded(proxy, stream):
    # The emulator sends its status line at once, then waits 4 s before the body: the proxy must not
    # pass the 200 on before the body starts, or the client would get a truncated 200.
    headers = {**HEADERS, "x-emulator-first-token-delay-ms": "4000"}
    started = time.monotonic()
    response = httpx.post(
        proxy["prefix"] + "/v1/messages", json={**MESSAGE, "stream": stream}, headers=headers, timeout=30
    )
    waited = time.monotonic() - started

    assert_api_error(response, 504)
    assert waited < 3, "answered at the proxy's timeout, not when the upstream finally answers"
    exchange = recorded_one()
    assert exchange.status == 504
    assert "upstream timed out" in exchange.error
    assert exchange.path == "/v1/messages" and exchange.api_version == "2023-06-01"


def test_an_upstream_that_resets_the_connection_gets_the_client_a_502_and_is_recorded(proxy):
    with resetting_server() as upstream_url:
        Upstream.objects.filter(pk=proxy["upstream"].pk).update(base_url=upstream_url)
        response = httpx.post(proxy["prefix"] + "/v1/messages", json=MESSAGE, headers=HEADERS, timeout=30)

    assert_api_error(response, 502)
    exchange = recorded_one()
    assert exchange.status == 502
    assert "upstream unreachable" in exchange.error
    assert exchange.request_body, "what the client sent is kept, for a replay"


def test_the_proxy_still_answers_after_upstream_faults(proxy):
    """Timeouts and resets leave no broken state behind: the next call goes through."""
    slow = {**HEADERS, "x-emulator-first-token-delay-ms": "2000"}
    for _ in range(3):
        assert httpx.post(proxy["prefix"] + "/v1/messages", json=MESSAGE, headers=slow).status_code == 504
    response = httpx.post(proxy["prefix"] + "/v1/messages", json=MESSAGE, headers=HEADERS, timeout=30)
    assert response.status_code == 200 and response.json()["type"] == "message"
