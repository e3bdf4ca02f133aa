"""The data model on whichever database DATABASE_URL names (SQLite here, PostgreSQL in CI)."""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.utils import timezone

from migrations_audit import services
from migrations_audit.models import ApiVersion, Exchange, ReplayResult, ReplayRun
from migrations_audit.secrets import api_key_from_headers, key_fingerprint, mask_body, mask_headers


def test_migrations_are_complete(db):
    call_command("makemigrations", "migrations_audit", "--check", "--dry-run", verbosity=0)


def test_sqlite_runs_in_wal_mode(db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def test_upstream_gets_anthropic_versions(upstream_a):
    assert list(ApiVersion.objects.filter(upstream=upstream_a).values_list("name", flat=True)) == [
        "2023-01-01",
        "2023-06-01",
        "2026-10-21",
    ]
    assert "POST /v1/messages" in upstream_a.replayable_endpoints
    assert services.upstream_replay_key(upstream=upstream_a) == "sk-ant-replay-secret"
    assert "sk-ant-replay-secret" not in upstream_a.replay_key_encrypted


def test_replay_result_is_unique_per_run_exchange_version_attempt(upstream_a):
    exchange = Exchange.objects.create(
        upstream=upstream_a,
        started_at=timezone.now(),
        method="POST",
        path="/v1/messages",
        endpoint="POST /v1/messages",
        content_hash="a" * 64,
    )
    run = ReplayRun.objects.create(upstream=upstream_a, versions=["2023-06-01", "2026-10-21"])
    ReplayResult.objects.create(run=run, exchange=exchange, version="2026-10-21", attempt=1)
    with pytest.raises(IntegrityError):
        ReplayResult.objects.create(run=run, exchange=exchange, version="2026-10-21", attempt=1)


def test_key_headers_are_fingerprinted_and_secrets_masked(settings):
    headers = mask_headers(
        {"X-Api-Key": "sk-ant-1", "Cookie": "session=1", "Content-Type": "application/json"}
    )
    assert headers == {
        "x-api-key": key_fingerprint("sk-ant-1"),
        "cookie": "[masked]",
        "content-type": "application/json",
    }
    bearer = mask_headers({"Authorization": "Bearer sk-ant-1"})
    assert bearer["authorization"] == key_fingerprint("sk-ant-1"), "same key, same client either way"
    assert api_key_from_headers({"x-api-key": "a", "authorization": "Bearer b"}) == "a"
    assert b"hunter2" not in mask_body(b'{"model": "m", "metadata": {"password": "hunter2"}}')
    assert mask_body(b"not json") == b"not json"


def test_api_tokens_are_stored_hashed(team_a):
    row, token = services.api_token_create(team=team_a, name="ci")
    assert token not in (row.token_hash, row.prefix)
    assert services.api_token_authenticate(token=token) == row
    assert services.api_token_authenticate(token=token + "x") is None
