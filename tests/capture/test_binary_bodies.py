"""Multipart and binary bodies through the proxy and the ingest API: stored byte for byte, shown as
size, type and a hex preview on the exchange page (never raw bytes), and not replayed unless their
endpoint is marked replayable."""

import base64
import json
import os

import httpx
import pytest
from django.urls import reverse

from migrations_audit import services
from migrations_audit.models import Exchange, Upstream
from migrations_audit.replay.preparing import exchanges_select
from migrations_audit.replay.runs import ReplayError, run_start
from tests.integration.test_end_to_end import wait_for

KEY = "sk-ant-binary-bodies-0123456789"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "files-api-2025-04-14"}
# Bytes that are not text: a PNG signature, NULs and invalid UTF-8.
PAYLOAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) + os.urandom(4096) + b"\xff\xfe\x00"


def sent(client: httpx.Client, method: str, path: str, **kwargs) -> tuple[bytes, httpx.Response]:
    """Send a request; returns the exact body bytes sent and the response."""
    request = client.build_request(method, path, headers=HEADERS, **kwargs)
    body = request.read()
    return body, client.send(request)


@pytest.fixture
def traffic(product):
    """A multipart upload, the download of its bytes and a message with a base64 image, all
    through the proxy, recorded."""
    with httpx.Client(base_url=product["prefix"], timeout=30) as client:
        upload_body, upload = sent(
            client, "POST", "/v1/files", files={"file": ("scan.png", PAYLOAD, "image/png")}
        )
        assert upload.status_code == 200, upload.text
        file_id = upload.json()["id"]
        _, download = sent(client, "GET", f"/v1/files/{file_id}/content")
        assert download.status_code == 200
        assert download.content == PAYLOAD
        image = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PAYLOAD).decode()}
        message = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": [{"type": "image", "source": image}]}],
        }
        message_body, answer = sent(client, "POST", "/v1/messages", json=message)
        assert answer.status_code == 200, answer.text
    upstream = product["upstream"]
    wait_for(lambda: Exchange.objects.filter(upstream=upstream).count() >= 3, what="3 recorded exchanges")
    exchanges = {
        e.method + " " + e.path.split("/")[-1]: e for e in Exchange.objects.filter(upstream=upstream)
    }
    return {
        "upload": (exchanges["POST files"], upload_body),
        "download": exchanges["GET content"],
        "message": (exchanges["POST messages"], message_body),
        "file_id": file_id,
    }


def test_the_proxy_records_multipart_and_binary_bodies_byte_for_byte(traffic):
    upload, upload_body = traffic["upload"]
    assert bytes(upload.request_body) == upload_body
    assert PAYLOAD in upload_body
    assert bytes(traffic["download"].response_body) == PAYLOAD
    message, message_body = traffic["message"]
    assert bytes(message.request_body) == message_body


def test_the_ingest_api_stores_them_byte_for_byte(traffic, client, team_a):
    imported = services.upstream_create(
        team=team_a, name="Imported", slug="imported", base_url="http://127.0.0.1:9"
    )
    token = services.api_token_create(team=team_a, name="ci")[1]
    lines = []
    for exchange in (traffic["upload"][0], traffic["download"], traffic["message"][0]):
        lines.append(
            {
                "method": exchange.method,
                "path": exchange.path,
                "request_headers": {
                    k: v for k, v in exchange.request_headers.items() if k.lower() != "x-api-key"
                },
                "request_body": base64.b64encode(bytes(exchange.request_body)).decode(),
                "request_body_encoding": "base64",
                "status": exchange.status,
                "response_headers": exchange.response_headers,
                "response_body": base64.b64encode(bytes(exchange.response_body)).decode(),
                "response_body_encoding": "base64",
            }
        )
    body = "\n".join(json.dumps(line) for line in lines).encode()
    answer = client.post(
        reverse("migrations_audit:api_ingest", args=[imported.slug]),
        data=body,
        content_type="application/x-ndjson",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    ).json()
    assert answer["accepted"] == 3, answer
    stored = {e.method + " " + e.path.split("/")[-1]: e for e in Exchange.objects.filter(upstream=imported)}
    assert bytes(stored["POST files"].request_body) == traffic["upload"][1]
    assert bytes(stored["GET content"].response_body) == PAYLOAD
    assert bytes(stored["POST messages"].request_body) == traffic["message"][1]


def test_the_exchange_page_shows_size_type_and_a_preview(traffic, client, alice):
    client.force_login(alice)
    upstream = traffic["download"].upstream
    page = client.get(reverse("migrations_audit:exchange", args=[upstream.slug, traffic["upload"][0].pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Multipart body" in text and "scan.png" in text and "image/png" in text
    assert f"{len(PAYLOAD)} bytes" in text
    assert "89 50 4e 47" in text  # the PNG signature, in hex
    assert "\ufffd" not in text  # no bytes decoded as text
    page = client.get(reverse("migrations_audit:exchange", args=[upstream.slug, traffic["download"].pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "Binary body" in text and f"({len(PAYLOAD)} bytes)" in text and "image/png" in text
    assert "\ufffd" not in text


def test_uploads_and_downloads_are_not_replayed_unless_marked_replayable(traffic):
    upstream = Upstream.objects.get(pk=traffic["download"].upstream_id)
    chosen = {e.pk for e in exchanges_select(upstream=upstream, selection={})}
    assert chosen == {traffic["message"][0].pk}
    with pytest.raises(ReplayError, match="replayable"):
        run_start(upstream=upstream, versions=["2023-06-01"], selection={"endpoint": "POST /v1/files"})
    upstream.replayable_endpoints = [*upstream.replayable_endpoints, traffic["upload"][0].endpoint]
    upstream.save(update_fields=["replayable_endpoints"])
    chosen = {e.pk for e in exchanges_select(upstream=upstream, selection={})}
    assert traffic["upload"][0].pk in chosen
