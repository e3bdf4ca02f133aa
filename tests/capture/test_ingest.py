"""The NDJSON ingest API: counts, per-line rejections, duplicates, tokens, and other teams."""

import json

import pytest

from migrations_audit import services
from migrations_audit.models import Exchange, RequestFinding, TrafficDay

URL = "/api/v1/upstreams/{slug}/exchanges"


def line(**overrides) -> bytes:
    values = {
        "method": "POST",
        "path": "/v1/messages",
        "started_at": "2026-11-20T10:00:00Z",
        "request_headers": {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-ingest-secret"},
        "request_body": {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [], "temperature": 0.5},
        "status": 200,
        "response_headers": {"content-type": "application/json"},
        "response_body": {"type": "message", "content": []},
        "duration_ms": 120,
    }
    values.update(overrides)
    return json.dumps(values).encode()


@pytest.fixture
def token(team_a):
    return services.api_token_create(team=team_a, name="ci")[1]


def post(client, slug, body: bytes, token: str | None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(URL.format(slug=slug), body, content_type="application/x-ndjson", **headers)


def test_good_bad_and_duplicate_lines(client, upstream_a, token):
    body = b"\n".join(
        [
            line(),
            b"{not json",
            line(method=None),
            line(status=999),
            line(path="/v1/complete", request_body={"prompt": "x"}),
            line(),  # the first line again: a duplicate
            b"",
            line(started_at="yesterday"),
        ]
    )
    response = post(client, upstream_a.slug, body, token)
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 1, 4)
    assert [r["line"] for r in result["rejections"]] == [2, 3, 4, 8]
    assert "not valid JSON" in result["rejections"][0]["reason"]
    assert "method is required" in result["rejections"][1]["reason"]
    assert Exchange.objects.filter(upstream=upstream_a, source="ingest").count() == 2
    again = post(client, upstream_a.slug, line(), token).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)


def test_ingested_requests_are_checked_against_the_target_version_after_the_commit(
    client, upstream_a, token, tasks_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as hooks:
        post(client, upstream_a.slug, line(), token)
    assert Exchange.objects.count() == 1
    assert not RequestFinding.objects.exists(), "capture does not run the diff stage's check itself"
    assert len(hooks) == 1, "the request check is queued once the batch commits"
    hooks[0]()  # the commit: the request_check task runs (eagerly here, on a worker in production)
    finding = RequestFinding.objects.get()
    assert finding.field == "/temperature"
    hooks[0]()  # delivered again (acks_late): nothing doubles
    assert RequestFinding.objects.count() == 1


def test_the_same_line_sent_again_is_stored_once_even_when_its_content_hash_check_misses(
    client, upstream_a, token, monkeypatch
):
    """The capture key (the line's hash) stops a retried upload even where the content-hash check
    would not (a proxy batch has none): the unique constraint holds it."""
    monkeypatch.setattr("migrations_audit.capture.services.content_hashes_stored", lambda **_: set())
    first = post(client, upstream_a.slug, line(), token).json()
    again = post(client, upstream_a.slug, line(), token).json()
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (1, 0, 1)
    assert Exchange.objects.count() == 1
    assert TrafficDay.objects.get().count == 1, "the rollup counts it once"


def test_no_secret_is_stored(client, upstream_a, token):
    post(client, upstream_a.slug, line(), token)
    exchange = Exchange.objects.get()
    stored = json.dumps(exchange.request_headers) + bytes(exchange.request_body).decode()
    assert "sk-ant-ingest-secret" not in stored


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Send a team ingest token"),
        ("Bearer wrong", "unknown or revoked"),
        ("Basic abc", "must be 'Bearer"),
    ],
)
def test_missing_or_wrong_token(client, upstream_a, authorization, message):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.post(
        URL.format(slug=upstream_a.slug), line(), content_type="application/x-ndjson", **headers
    )
    assert response.status_code == 401
    assert message in response.json()["error"]
    assert not Exchange.objects.exists()


def test_unknown_slug_and_other_teams_upstream_are_not_found(client, upstream_a, upstream_b, token):
    assert post(client, "nope", line(), token).status_code == 404
    assert post(client, upstream_b.slug, line(), token).status_code == 404
    assert not Exchange.objects.exists()


def test_revoked_token_is_refused(client, alice, upstream_a, token):
    client.force_login(alice)
    token_row = upstream_a.team.api_tokens.get()
    client.post(f"/settings/teams/{upstream_a.team.slug}/tokens/{token_row.pk}/revoke/")
    client.logout()
    assert post(client, upstream_a.slug, line(), token).status_code == 401


def test_tokens_are_created_once_and_viewers_cannot(client, alice, bob, team_a):
    client.force_login(alice)
    response = client.post(f"/settings/teams/{team_a.slug}/tokens/", {"name": "exporter"})
    token = response.context["token"]
    assert token.startswith("ma_")
    settings_page = client.get("/settings/").content.decode()
    assert token not in settings_page
    client.force_login(bob)
    assert client.post(f"/settings/teams/{team_a.slug}/tokens/", {"name": "x"}).status_code == 403


def test_a_new_token_comes_with_a_command_to_copy_for_each_upstream(client, alice, upstream_a):
    client.force_login(alice)
    response = client.post(f"/settings/teams/{upstream_a.team.slug}/tokens/", {"name": "exporter"})
    page = response.content.decode()
    assert f"/api/v1/upstreams/{upstream_a.slug}/exchanges" in page
    assert f"Authorization: Bearer {response.context['token']}" in page
    assert "&lt;slug&gt;" not in page


def test_garbage_collection_is_paused_only_while_a_batch_is_stored(upstream_a):
    import gc

    from migrations_audit.capture.ingest import ndjson_ingest

    seen = []
    lines = (seen.append(gc.isenabled()) or line(path=f"/v1/p{n}") for n in range(3))
    assert ndjson_ingest(upstream=upstream_a, lines=lines).accepted == 3
    assert seen == [False, False, False] and gc.isenabled()
    gc.disable()
    try:
        ndjson_ingest(upstream=upstream_a, lines=[line(path="/v1/other")])
        assert not gc.isenabled(), "a pause someone else made is left as it was"
    finally:
        gc.enable()
