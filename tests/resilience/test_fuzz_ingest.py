"""Arbitrary NDJSON lines and HAR files: a clear answer for each, never a crash, nothing half-stored."""

import io
import json
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migrations_audit.capture.ingest import (
    IngestError,
    captured_from_har_entry,
    captured_from_line,
    har_import,
)
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
        captured_from_line(raw)
    except IngestError as error:
        assert str(error)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_har_entry_is_imported_skipped_or_rejected_with_a_reason(entry):
    try:
        captured_from_har_entry(entry, upstream_slug="anthropic", base_path="")
    except IngestError as error:
        assert str(error)


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
