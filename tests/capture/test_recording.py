"""Turning what a client sent into a stored exchange: masked, identified, hashed."""

from datetime import UTC, datetime

from migrations_audit.capture.recording import CapturedExchange, client_identity, content_hash, exchange_build
from migrations_audit.secrets import key_fingerprint


def captured(**overrides) -> CapturedExchange:
    values = {
        "method": "POST",
        "path": "/v1/messages",
        "request_headers": {
            "X-Api-Key": "sk-ant-secret-1",
            "anthropic-version": "2023-06-01",
            "user-agent": "Anthropic/Python 0.125.0",
            "Connection": "keep-alive",
        },
        "request_body": b'{"model": "m", "max_tokens": 5, "metadata": {"password": "hunter2"}}',
        "started_at": datetime(2026, 11, 1, tzinfo=UTC),
        "status": 200,
        "response_headers": {"content-type": "text/event-stream", "set-cookie": "a=b"},
        "response_body": b"event: ping\ndata: {}\n\n",
    }
    return CapturedExchange(**{**values, **overrides})


def test_the_key_is_stored_only_as_its_fingerprint(upstream_a):
    exchange, identity = exchange_build(upstream=upstream_a, captured=captured(), source="proxy")
    assert exchange.request_headers["x-api-key"] == key_fingerprint("sk-ant-secret-1")
    assert identity.identity == key_fingerprint("sk-ant-secret-1")
    assert b"hunter2" not in exchange.request_body
    assert exchange.response_headers["set-cookie"] == "[masked]"
    assert "connection" not in exchange.request_headers


def test_version_sdk_endpoint_and_stream_are_derived(upstream_a):
    exchange, _ = exchange_build(upstream=upstream_a, captured=captured(), source="proxy")
    assert exchange.api_version == "2023-06-01"
    assert exchange.sdk == "Python 0.125.0"
    assert exchange.endpoint == "POST /v1/messages"
    assert exchange.streamed is True
    assert exchange.response_events == [{"event": "ping", "data": "{}"}]


def test_client_identity():
    assert client_identity({"X-Audit-Client": "billing"}).identity == "billing"
    bearer = client_identity({"Authorization": "Bearer sk-ant-2"})
    assert bearer.identity == client_identity({"x-api-key": "sk-ant-2"}).identity
    assert client_identity({}).kind == "anonymous"


def test_declared_client_header_is_not_stored(upstream_a):
    headers = {"x-audit-client": "billing", "anthropic-version": "2023-06-01"}
    exchange, identity = exchange_build(
        upstream=upstream_a, captured=captured(request_headers=headers), source="proxy"
    )
    assert identity.identity == "billing"
    assert "x-audit-client" not in exchange.request_headers


def test_content_hash_depends_on_method_path_body_and_version():
    base = content_hash(method="POST", path="/v1/messages", body=b"{}", version="2023-06-01")
    assert base == content_hash(method="post", path="/v1/messages", body=b"{}", version="2023-06-01")
    assert base != content_hash(method="POST", path="/v1/messages", body=b"{}", version="2026-10-21")
    assert base != content_hash(method="POST", path="/v1/complete", body=b"{}", version="2023-06-01")
