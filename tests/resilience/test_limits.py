"""Bad input at the proxy, against real processes: too many headers, a header block too big to parse,
and bytes that are not UTF-8. Each gets a clear answer, nothing half-stored, and the proxy goes on."""

import socket
from urllib.parse import urlsplit

import httpx
import pytest
from django.urls import reverse

from tests.capture.test_proxy import proxy, recorded  # noqa: F401 - the proxy fixture, real processes

pytestmark = pytest.mark.slow
HEADERS = {
    "anthropic-version": "2023-06-01",
    "x-api-key": "sk-ant-limits",
    "content-type": "application/json",
}
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def emulator_requests(emulator) -> int:
    return httpx.get(f"{emulator}/_emulator/stats").json()["requests"]


def still_serving(proxy):  # noqa: F811
    response = httpx.post(f"{proxy['prefix']}/v1/messages", headers=HEADERS, json=BODY, timeout=10)
    assert response.status_code == 200, response.text


def test_too_many_headers_are_refused_before_anything_is_forwarded_or_stored(proxy, emulator):  # noqa: F811
    before = emulator_requests(emulator)
    many = {**HEADERS, **{f"x-filler-{n}": "v" for n in range(300)}}
    response = httpx.post(f"{proxy['prefix']}/v1/messages", headers=many, json=BODY, timeout=10)
    assert response.status_code == 431
    assert response.json()["error"]["type"] == "request_too_large"
    assert "more than 200 headers" in response.json()["error"]["message"]
    assert emulator_requests(emulator) == before, "nothing reached the upstream"
    still_serving(proxy)
    assert len(recorded(1)) == 1, "only the good request was recorded"


def test_a_header_block_too_big_to_parse_is_refused_and_the_proxy_goes_on(proxy, emulator):  # noqa: F811
    address = urlsplit(proxy["prefix"])
    filler = "".join(f"X-Filler-{n}: {'v' * 40}\r\n" for n in range(20_000))  # about 1 MB of headers
    request = (
        f"POST {address.path}/v1/messages HTTP/1.1\r\nHost: {address.netloc}\r\n{filler}"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        try:
            connection.sendall(request)
            answer = connection.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            answer = b""  # the server hung up on it, which is a refusal too
    assert not answer or answer.split(b" ")[1] in (b"400", b"413", b"431"), answer[:200]
    still_serving(proxy)


def test_a_body_that_is_not_utf8_is_forwarded_as_is_recorded_byte_for_byte_and_shown(
    proxy,  # noqa: F811
    emulator,
    alice,
    client,
):
    body = b'{"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "'
    body += b'\xff\xfe\x80"}]}'
    response = httpx.post(f"{proxy['prefix']}/v1/messages", headers=HEADERS, content=body, timeout=10)
    assert response.status_code == 400, "the upstream's own answer to bytes it cannot read"
    [exchange] = recorded(1)
    assert bytes(exchange.request_body) == body and exchange.status == 400
    client.force_login(alice)
    page = client.get(reverse("migrations_audit:exchange", args=[proxy["upstream"].slug, exchange.pk]))
    assert page.status_code == 200
    assert "\ufffd" in page.content.decode(), "the undecodable bytes are shown as replacement characters"
