"""What masking keeps out of storage, case by case: query strings, bodies that parse and bodies that do
not, duplicated JSON keys, key headers, key-shaped strings anywhere; and what a replay sends again."""

import gzip
import json
import zlib
from datetime import UTC, datetime

import brotli
import pytest
import zstandard

from migrations_audit.capture.recording import CapturedExchange, client_identity, exchange_build
from migrations_audit.content_encoding import body_decode
from migrations_audit.models import Exchange
from migrations_audit.replay.executor import replay_request
from migrations_audit.secrets import MASK, TOO_DEEP_BODY, key_fingerprint, mask_body, mask_headers

ANTHROPIC = "sk-ant-api03-SECRETanthropic0123456789"
# One of each known format, as it could appear in a prompt, a log line or a config dump.
KEY_SHAPES = {
    "anthropic": ANTHROPIC,
    "openai": "sk-proj-SECRETopenai0123456789abcdef",
    "aws": "AKIAIOSFODNN7SECRET1",
    "aws temporary": "ASIAIOSFODNN7SECRET2",
    "github": "ghp_SECRETgithub0123456789abcdefghij",
    "github fine-grained": "github_pat_11SECRET0123456789abcdefghij",
    "gitlab": "glpat-SECRETgitlab0123456789",
    "slack bot": "xoxb-1234567890-SECRETslack",
    "slack user": "xoxp-1234567890-SECRETslack",
    "google": "AIzaSyA-SECRETgoogle0123456789abcdefghi",
    "stripe secret": "sk_live_SECRETstripe0123456789",
    "stripe restricted": "rk_live_SECRETstripe0123456789",
    "stripe test": "sk_test_SECRETstripe0123456789",
    "hugging face": "hf_SECREThuggingface0123456789abcdefgh",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUNSRVQifQ.SECRETsignature0123",
}


def captured(**overrides) -> CapturedExchange:
    values = {
        "method": "POST",
        "path": "/v1/messages",
        "request_headers": {"anthropic-version": "2023-06-01", "content-type": "application/json"},
        "request_body": b'{"model": "m", "max_tokens": 5}',
        "started_at": datetime(2026, 11, 1, tzinfo=UTC),
        "status": 200,
        "response_headers": {"content-type": "application/json"},
        "response_body": b'{"id": "msg_1"}',
    }
    return CapturedExchange(**{**values, **overrides})


def stored(upstream, **overrides) -> Exchange:
    exchange, _ = exchange_build(upstream=upstream, captured=captured(**overrides), source="ingest")
    return exchange


def as_text(exchange: Exchange) -> str:
    return " ".join(
        [
            exchange.path,
            exchange.query,
            json.dumps(exchange.request_headers),
            bytes(exchange.request_body).decode("utf-8", "replace"),
            json.dumps(exchange.response_headers),
            bytes(exchange.response_body).decode("utf-8", "replace"),
            json.dumps(exchange.response_events),
            exchange.error,
        ]
    )


# --- Query strings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        (f"key={ANTHROPIC}&beta=true", "beta=true"),
        ("api_key=plain-secret-value&beta=true", "beta=true"),
        ("access_token=plain-secret-value&x=1", "x=1"),
        ("client_secret=plain-secret-value&x=1", "x=1"),
        ("Api-Key=plain-secret-value&x=1", "x=1"),
        ("api%5Fkey=plain-secret-value&x=1", "x=1"),  # the name percent-encoded
        (f"note=my+key+is+{ANTHROPIC}&x=1", "x=1"),  # a key-shaped value under an innocent name
    ],
)
def test_secret_query_parameters_are_masked(upstream_a, query, kept):
    exchange = stored(upstream_a, query=query)
    assert "plain-secret-value" not in exchange.query and "SECRET" not in exchange.query
    assert MASK in exchange.query and kept in exchange.query


def test_a_query_without_secrets_is_kept_as_it_was(upstream_a):
    query = "beta=true&limit=20&after_id=msg_01&q=task-management%20risk-assessment"
    assert stored(upstream_a, query=query).query == query


# --- Bodies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # A duplicated key: json.loads keeps the last value, the raw text holds both.
        b'{"model": "m", "api_key": "SECRET-dup", "api_key": ""}',
        b'{"model": "m", "api_key": "SECRET-dup", "api_key": null}',
        b'{"model": "m", "metadata": {"token": "SECRET-dup", "token": ""}}',
        # JSON that does not parse: cut off, a stray comma, a cut-off value.
        b'{"model": "m", "password": "SECRET-invalid", ',
        b'{"model": "m", "password": "SECRET-invalid",}',
        b'{"model": "m", "api_key": "SECRET-invalid',
        b'{"model": "m", "api_key": 123456789, oops}',
        # A UTF-8 byte order mark before the JSON.
        b'\xef\xbb\xbf{"model": "m", "api_key": "SECRET-bom"}',
        # Fields named as OAuth and cloud credentials are.
        b'{"grant_type": "client_credentials", "client_secret": "SECRET-client"}',
        b'{"refresh_token": "SECRET-refresh", "private_key": "SECRET-private"}',
        # A list of secrets.
        b'{"password": ["SECRET-one", "SECRET-two"]}',
        # A key escaped in JSON, which a scan of the raw text cannot see.
        b'{"messages": [{"role": "user", "content": "sk\\u002dant-api03-SECRETescaped"}]}',
    ],
)
def test_secret_fields_are_masked_in_any_json_body(upstream_a, body):
    exchange = stored(upstream_a, request_body=body)
    assert b"SECRET" not in bytes(exchange.request_body)


@pytest.mark.parametrize("depth", [50, 500, 1200])
def test_deeply_nested_json_is_masked_without_recursion(upstream_a, depth):
    """Masked field by field within MIGRATION_AUDIT_MAX_JSON_DEPTH (100); deeper, past a recursive
    walk's comfort or the JSON parser's stack, replaced whole: never raised, never kept in clear."""
    body = b'{"a": ' * depth + b'{"api_key": "SECRET-deep"}' + b"}" * depth
    stored_body = bytes(stored(upstream_a, request_body=body).request_body)
    assert b"SECRET" not in stored_body
    if depth == 50:
        assert stored_body.count(b'{"a": ') == depth and b'"api_key": "[masked]"' in stored_body
    else:
        assert stored_body == TOO_DEEP_BODY


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", ""])
def test_form_fields_are_masked_with_or_without_their_content_type(upstream_a, content_type):
    body = b"grant_type=client_credentials&client_id=app&client_secret=SECRET-form&password=SECRET-pw"
    headers = {"content-type": content_type} if content_type else {}
    exchange = stored(upstream_a, request_headers=headers, request_body=body)
    assert bytes(exchange.request_body) == (
        b"grant_type=client_credentials&client_id=app&client_secret=[masked]&password=[masked]"
    )


@pytest.mark.parametrize("name", sorted(KEY_SHAPES))
def test_key_shaped_strings_are_masked_wherever_they_appear(upstream_a, name):
    key = KEY_SHAPES[name]
    exchange = stored(
        upstream_a,
        path=f"/v1/keys/{key}",
        request_headers={"anthropic-version": "2023-06-01", "x-debug": f"sent with {key}"},
        request_body=json.dumps(
            {"messages": [{"role": "user", "content": f"my key is {key}, ok?"}]}
        ).encode(),
        response_body=f"plain text that is not JSON: {key}\n".encode(),
        error=f"upstream said: bad key {key}",
    )
    assert "SECRET" not in as_text(exchange), name
    assert f"my key is {MASK}, ok?" in bytes(exchange.request_body).decode()


def test_bearer_tokens_are_masked_in_text(upstream_a):
    body = b"curl -H 'Authorization: Bearer SECRETbearer0123456789abcdef' https://api.example.com"
    exchange = stored(upstream_a, request_headers={}, request_body=body)
    assert bytes(exchange.request_body) == b"curl -H 'Authorization: Bearer [masked]' https://api.example.com"


def test_streamed_answers_are_masked_in_their_body_and_events(upstream_a):
    stream = (
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
        b'"delta": {"type": "text_delta", "text": "your key: ' + ANTHROPIC.encode() + b'"}}\n\n'
    )
    exchange = stored(
        upstream_a, response_headers={"content-type": "text/event-stream"}, response_body=stream
    )
    assert exchange.streamed and exchange.response_events
    assert "SECRET" not in as_text(exchange)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
def test_a_compressed_answer_is_masked_in_what_it_says(upstream_a, coding):
    """Pages and the diff show a compressed body decoded: its key is masked, and it stays compressed."""
    compress = {
        "gzip": gzip.compress,
        "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "deflate": zlib.compress,
    }[coding]
    headers = {"content-type": "application/json", "content-encoding": coding}
    echoed = json.dumps({"content": [{"type": "text", "text": f"you sent {ANTHROPIC}"}]}).encode()
    exchange = stored(upstream_a, response_headers=headers, response_body=compress(echoed))
    decoded = body_decode(bytes(exchange.response_body), exchange.response_headers)
    assert decoded.encoding == coding and not decoded.error
    assert b"SECRET" not in decoded.body and f"you sent {MASK}".encode() in decoded.body
    plain = compress(b'{"content": []}')
    assert bytes(stored(upstream_a, response_headers=headers, response_body=plain).response_body) == plain


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "task-management '
        b'system for risk-assessment; the bearer of the news"}]}',
        b'{"tools": [{"name": "kv", "input_schema": {"properties": {"key": {"type": "string"}}}}]}',
        b"event: ping\ndata: {}\n\n",
        b"\x1f\x8b\x08\x00binary=body",
    ],
)
def test_what_holds_no_secret_is_stored_byte_for_byte(body):
    assert mask_body(body) == body


# --- Headers and client identity ---------------------------------------------------------------------


def test_every_key_header_is_stored_as_its_fingerprint(upstream_a):
    headers = {
        "anthropic-api-key": "sk-ant-SECRET-anthropic-header",
        "x-goog-api-key": "AIza-SECRET-google-header",
        "api-key": "SECRET-azure-header",
    }
    masked = mask_headers(headers)
    assert masked == {name: key_fingerprint(value) for name, value in headers.items()}
    identity = client_identity({"anthropic-api-key": "sk-ant-SECRET-anthropic-header"})
    assert identity.identity == key_fingerprint("sk-ant-SECRET-anthropic-header")


def test_secret_headers_and_keys_in_header_values_are_masked():
    masked = mask_headers(
        {
            "X-Amz-Security-Token": "SECRET-aws-session",
            "x-custom-api-key": "SECRET-custom",
            "client-secret": "SECRET-client",
            "referer": "https://app.example.com/page?access_token=SECRET-referer&tab=2",
            "user-agent": f"my-tool/1.0 (key {ANTHROPIC})",
            "anthropic-version": "2023-06-01",
        }
    )
    assert "SECRET" not in json.dumps(masked)
    assert masked["referer"] == f"https://app.example.com/page?access_token={MASK}&tab=2"
    assert masked["anthropic-version"] == "2023-06-01"


# --- What a replay sends ---------------------------------------------------------------------------


def test_a_replay_sends_no_recorded_secret_only_the_replay_credential(upstream_a):
    exchange = stored(
        upstream_a,
        query=f"key={ANTHROPIC}&beta=true",
        request_headers={
            "anthropic-version": "2023-06-01",
            "anthropic-api-key": "sk-ant-SECRET-anthropic-header",
            "x-goog-api-key": "AIza-SECRET-google-header",
            "content-type": "application/json",
        },
        request_body=b'{"model": "m", "max_tokens": 5, "api_key": "SECRET-body"}',
    )
    exchange.client = None
    exchange.save()
    url, headers, body = replay_request(exchange=exchange, upstream=upstream_a, version="2026-10-21")
    sent = url + json.dumps(headers) + body.decode()
    assert url.endswith("/v1/messages?beta=true"), url
    assert "SECRET" not in sent and MASK not in url and MASK not in json.dumps(headers)
    assert headers["x-api-key"] == "sk-ant-replay-secret"
    assert not {"anthropic-api-key", "x-goog-api-key"} & set(headers)


def test_a_row_recorded_before_masking_sends_no_key_again(upstream_a):
    """A query string, a header or a body stored in clear by an older version is masked as it is sent."""
    exchange = stored(upstream_a)
    exchange.client = None
    exchange.save()
    Exchange.objects.filter(pk=exchange.pk).update(
        query=f"key={ANTHROPIC}&api_key=SECRET-old&beta=true",
        request_headers={
            "anthropic-version": "2023-06-01",
            "anthropic-api-key": "SECRET-old-header",
            "x-debug": f"key {ANTHROPIC}",
        },
        request_body=b'{"model": "m", "client_secret": "SECRET-old-body"}',
    )
    exchange.refresh_from_db()
    url, headers, body = replay_request(exchange=exchange, upstream=upstream_a, version="2026-10-21")
    assert url.endswith("/v1/messages?beta=true"), url
    assert "SECRET" not in url + json.dumps(headers) + body.decode()
