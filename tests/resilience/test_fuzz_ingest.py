"""Arbitrary NDJSON lines and HAR files: a clear answer for each, never a crash, nothing half-stored;
what is stored reads back as it was sent (modulo masking), and a split upload stores what it would whole."""

import io
import json
import string
from datetime import UTC, datetime
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migrations_audit.capture.har import har_import
from migrations_audit.capture.ingest import (
    IngestError,
    captured_from_har_entry,
    captured_from_line,
    ndjson_ingest,
    ndjson_lines,
)
from migrations_audit.capture.recording import CapturedExchange, content_hash
from migrations_audit.models import Exchange
from migrations_audit.secrets import mask_body, mask_json_fields

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
line_like = st.fixed_dictionaries(
    {},
    optional={
        "method": json_values,
        "path": json_values,
        "status": json_values,
        "streamed": json_values,
        "request_headers": json_values,
        "request_body": json_values,
        "started_at": json_values,
        "duration_ms": json_values,
        "response_body": json_values,
        "request_body_encoding": json_values,
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), line_like.map(lambda d: json.dumps(d).encode())))
def test_any_ndjson_line_is_accepted_or_rejected_with_a_reason(raw):
    try:
        captured = captured_from_line(raw)
    except IngestError as error:
        assert str(error)
    else:
        line = json.loads(raw)
        assert isinstance(captured, CapturedExchange)
        assert (captured.method, captured.path) == (line["method"].upper(), line["path"])
        assert captured.started_at.tzinfo is not None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_har_entry_is_imported_skipped_or_rejected_with_a_reason(entry):
    try:
        captured = captured_from_har_entry(entry, upstream_slug="anthropic", base_path="")
    except IngestError as error:
        assert str(error)
    else:
        assert captured is None or captured.method == entry["request"]["method"].upper()


# Lines of any bytes but a newline, some longer than the limit they are read with.
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    final_newline=st.booleans(),
    limit=st.integers(min_value=1, max_value=50),
)
def test_ndjson_lines_are_read_whole_or_refused_whole(lines, final_newline, limit):
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    pieces = _split_on_newline(data)
    expected = [piece if len(piece.removesuffix(b"\n")) <= limit else None for piece in pieces]
    assert list(ndjson_lines(io.BytesIO(data), max_line_bytes=limit)) == expected
    if None not in expected:
        assert b"".join(ndjson_lines(io.BytesIO(data), max_line_bytes=limit)) == data


def _split_on_newline(data: bytes) -> list[bytes]:
    pieces = [piece + b"\n" for piece in data.split(b"\n")]
    pieces[-1] = pieces[-1][:-1]
    return [piece for piece in pieces if piece]


# Exchanges as a client would send them: any method, path, query, headers (no secret or hop-by-hop
# name), JSON or text bodies, status, time and duration. No NUL: PostgreSQL's JSON refuses it.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
safe_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=12,
)
good_lines = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["get", "POST", "Put", "DELETE"]),
        "path": text.map(lambda path: "/v1/" + path.replace("\n", "")),
        "query": text,
        "request_headers": st.dictionaries(
            st.sampled_from(["anthropic-version", "content-type", "x-custom", "user-agent"]), text, max_size=4
        ),
        "request_body": safe_json,
        "status": st.none() | st.integers(100, 599),
        "response_body": safe_json,
        "started_at": st.datetimes(
            min_value=datetime(1970, 1, 2),
            max_value=datetime(2200, 1, 1),
            timezones=st.just(UTC),
        ),
        "duration_ms": st.none() | st.floats(0, 1e6),
    }
)


def _body(value) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else json.dumps(value, ensure_ascii=False).encode()


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(good_lines, min_size=1, max_size=6))
def test_what_is_stored_reads_back_as_it_was_sent(upstream_a, lines):
    Exchange.objects.all().delete()
    raw = [json.dumps({**line, "started_at": line["started_at"].isoformat()}).encode() for line in lines]
    summary = ndjson_ingest(upstream=upstream_a, lines=raw)
    assert summary.rejected == 0, summary.rejections
    stored = list(Exchange.objects.order_by("pk"))
    assert summary.accepted == len(stored) and summary.accepted + summary.duplicates == len(lines)
    by_hash = {exchange.content_hash: exchange for exchange in stored}
    seen = set()
    for line in lines:
        request_body = mask_body(_body(line["request_body"]))
        version = line["request_headers"].get(upstream_a.version_header, "")
        key = content_hash(method=line["method"], path=line["path"], body=request_body, version=version)
        if key in seen:
            continue  # a duplicate of an earlier line: counted, not stored
        seen.add(key)
        exchange = by_hash[key]
        assert (exchange.method, exchange.path, exchange.query) == (
            line["method"].upper(),
            line["path"],
            line["query"],
        )
        assert exchange.request_headers == line["request_headers"]
        assert bytes(exchange.request_body) == request_body
        assert bytes(exchange.response_body) == mask_body(_body(line["response_body"]))
        assert (exchange.status, exchange.duration_ms) == (line["status"], line["duration_ms"])
        assert exchange.started_at == line["started_at"]
    assert len(seen) == len(stored)


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    lines=st.lists(
        st.one_of(
            good_lines.map(lambda line: {**line, "started_at": line["started_at"].isoformat()}), safe_json
        ),
        min_size=1,
        max_size=8,
    ),
    cut=st.integers(min_value=0, max_value=8),
)
def test_an_upload_split_in_two_stores_what_it_would_whole(upstream_a, lines, cut):
    raw = [json.dumps(line).encode() for line in lines]

    def stored():
        rows = Exchange.objects.order_by("pk").values_list("method", "path", "request_body", "status")
        return sorted((method, path, bytes(body), status) for method, path, body, status in rows)

    Exchange.objects.all().delete()
    whole = ndjson_ingest(upstream=upstream_a, lines=raw)
    stored_whole = stored()
    Exchange.objects.all().delete()
    first, second = (
        ndjson_ingest(upstream=upstream_a, lines=raw[:cut]),
        ndjson_ingest(upstream=upstream_a, lines=raw[cut:]),
    )
    assert stored() == stored_whole
    assert (first.accepted + second.accepted, first.duplicates + second.duplicates) == (
        whole.accepted,
        whole.duplicates,
    )
    assert first.rejected + second.rejected == whole.rejected
    assert [r["line"] for r in first.rejections] + [r["line"] + cut for r in second.rejections] == [
        r["line"] for r in whole.rejections
    ]


@pytest.mark.django_db
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_a_broken_har_file_stores_nothing(upstream_a, data):
    before = Exchange.objects.count()
    try:
        har_import(upstream=upstream_a, stream=io.BytesIO(data))
    except IngestError as error:
        assert "nothing was imported" in str(error)
        assert Exchange.objects.count() == before


# Keys near the secret field names: other cases, the Kelvin sign (lowers to "k"), longer names.
secret_like_keys = st.sampled_from(["token", "TOKEN", "Api_Key", "to\u212aen", "max_tokens", "PassWord", "x"])
bodies_with_secrets = st.recursive(
    st.none() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(secret_like_keys | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=bodies_with_secrets.filter(lambda value: isinstance(value, dict | list)),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    encoding=st.sampled_from(["utf-8", "utf-16-le", "utf-32-le"]),
)
@example(document={"to\u212aen": "x"}, ensure_ascii=False, indent=None, encoding="utf-8")
@example(document=[{"Api_Key": "x"}], ensure_ascii=True, indent=2, encoding="utf-8")
def test_masking_decodes_only_the_bodies_that_need_it_and_misses_no_secret(
    document, ensure_ascii, indent, encoding
):
    body = json.dumps(document, ensure_ascii=ensure_ascii, indent=indent).encode(encoding)
    with mock.patch("migrations_audit.secrets._may_name_a_secret_field", return_value=True):
        always_decoded = mask_body(body)
    assert mask_body(body) == always_decoded
    if mask_json_fields(document) != document:
        assert json.loads(always_decoded) == mask_json_fields(document)


url_text = st.text(alphabet=string.ascii_letters + string.digits + "-_./%", max_size=20)
har_entries_sent = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["get", "POST"]),
        "path": url_text.map(lambda path: "/v1/" + path),
        "query": st.text(alphabet=string.ascii_letters + string.digits + "=&%", max_size=20),
        "headers": st.dictionaries(
            st.sampled_from(["anthropic-version", "x-custom", "user-agent"]), text, max_size=3
        ),
        "post": text,
        "status": st.integers(100, 599),
        "content": text,
        "started_at": st.datetimes(
            min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        ),
        "time": st.floats(0, 1e6),
    }
)


def _har_of(sent: dict) -> dict:
    query = f"?{sent['query']}" if sent["query"] else ""
    return {
        "startedDateTime": sent["started_at"].isoformat(),
        "time": sent["time"],
        "request": {
            "method": sent["method"],
            "url": f"https://api.example.com{sent['path']}{query}",
            "headers": [{"name": name, "value": value} for name, value in sent["headers"].items()],
            "postData": {"mimeType": "application/json", "text": sent["post"]},
        },
        "response": {
            "status": sent["status"],
            "headers": [],
            "content": {"mimeType": "application/json", "text": sent["content"]},
        },
    }


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(entries=st.lists(har_entries_sent, min_size=1, max_size=5))
def test_what_a_har_import_stores_reads_back_as_it_was_sent(upstream_a, entries):
    Exchange.objects.all().delete()
    data = json.dumps({"log": {"version": "1.2", "entries": [_har_of(sent) for sent in entries]}}).encode()
    summary = har_import(upstream=upstream_a, stream=io.BytesIO(data))
    assert summary.rejected == 0 and summary.skipped == 0, summary.rejections
    by_hash = {exchange.content_hash: exchange for exchange in Exchange.objects.all()}
    seen = set()
    for sent in entries:
        request_body = mask_body(sent["post"].encode())
        version = sent["headers"].get(upstream_a.version_header, "")
        key = content_hash(method=sent["method"], path=sent["path"], body=request_body, version=version)
        if key in seen:
            continue
        seen.add(key)
        exchange = by_hash[key]
        assert (exchange.method, exchange.path, exchange.query) == (
            sent["method"].upper(),
            sent["path"],
            sent["query"],
        )
        assert exchange.request_headers == sent["headers"]
        assert bytes(exchange.request_body) == request_body
        assert bytes(exchange.response_body) == mask_body(sent["content"].encode())
        assert (exchange.status, exchange.duration_ms, exchange.started_at) == (
            sent["status"],
            sent["time"],
            sent["started_at"],
        )
    assert len(seen) == len(by_hash) == summary.accepted
