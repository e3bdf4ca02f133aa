"""Known keys and tokens sent through every entry point never reach the database, the logs, the
pages, the reports or the exports."""

import io
import json
import time

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from migrations_audit import services
from migrations_audit.capture.har import har_import
from migrations_audit.models import Exchange, ReplayResult, ReplayRun, ReportDefinition
from migrations_audit.replay.runs import run_start
from migrations_audit.reports import services as report_services
from tests.support.sdk import run_sdk
from tests.support.upstream import fixed_upstream

pytestmark = pytest.mark.slow

PROXY_KEY = "sk-ant-proxy-SECRET-aaaa1111"
BEARER_KEY = "sk-ant-bearer-SECRET-bbbb2222"
INGEST_KEY = "sk-ant-ingest-SECRET-cccc3333"
HAR_KEY = "sk-ant-har-SECRET-dddd4444"
BODY_SECRET = "hunter2-SECRET-eeee5555"
# Issue 16: what was once stored in clear.
QUERY_KEY = "sk-ant-query-SECRET-ffff6666"  # ?key=... through the proxy
DUPLICATE_KEY = "dup-SECRET-gggg7777"  # {"api_key": "...", "api_key": ""}
INVALID_JSON_SECRET = "invalid-SECRET-hhhh8888"  # a body that does not parse
BOM_KEY = "bom-SECRET-iiii9999"  # JSON after a UTF-8 byte order mark
FORM_SECRET = "form-SECRET-jjjj0000"  # client_secret=... form-encoded
ANTHROPIC_HEADER_KEY = "sk-ant-header-SECRET-kkkk1111"  # anthropic-api-key
GOOGLE_HEADER_KEY = "AIzaSECRETgoogleheader0123456789abcdef"  # x-goog-api-key
AZURE_HEADER_KEY = "azure-SECRET-llll2222"  # api-key
CLIENT_SECRET = "client-SECRET-mmmm3333"  # a JSON field named client_secret
FREE_TEXT_KEY = "sk-ant-freetext-SECRET-nnnn4444"  # a key-shaped string in a prompt
FREE_TEXT_AWS = "AKIASECRETFREETEXT99"
REPLAY_QUERY_KEY = "sk-ant-replayquery-SECRET-oooo5555"  # recorded in a query string, then replayed
REPLAY_COOKIE = "replaycookie-SECRET-pppp6666"  # set-cookie of a replayed answer
REPLAY_ECHOED_KEY = "sk-ant-echoed-SECRET-qqqq7777"  # a key in a replayed answer's body
SECRETS = [
    PROXY_KEY,
    BEARER_KEY,
    INGEST_KEY,
    HAR_KEY,
    BODY_SECRET,
    QUERY_KEY,
    DUPLICATE_KEY,
    INVALID_JSON_SECRET,
    BOM_KEY,
    FORM_SECRET,
    ANTHROPIC_HEADER_KEY,
    GOOGLE_HEADER_KEY,
    AZURE_HEADER_KEY,
    CLIENT_SECRET,
    FREE_TEXT_KEY,
    FREE_TEXT_AWS,
    REPLAY_QUERY_KEY,
    REPLAY_COOKIE,
    REPLAY_ECHOED_KEY,
]


def every_stored_value() -> str:
    """Every row of every table, as text."""
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                dump.append(
                    " ".join(
                        bytes(v).decode("utf-8", "replace") if isinstance(v, (bytes, memoryview)) else str(v)
                        for v in row
                    )
                )
    return "\n".join(dump)


def test_no_secret_anywhere(product, alice, tmp_path, capsys):
    upstream = product["upstream"]
    # 1. The proxy, with the key as x-api-key (SDK 1.x) and as Authorization: Bearer (SDK 2.x).
    run_sdk(
        "1.17.0",
        f"""
import json, anthropic
c = anthropic.Anthropic(api_key={PROXY_KEY!r}, base_url={product["prefix"]!r}, max_retries=0)
prompt = "my keys are {FREE_TEXT_KEY} and {FREE_TEXT_AWS}, keep them"
c.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=[{{"role": "user", "content": prompt}}],
                  metadata={{"user_id": "u1"}}, extra_body={{"password": {BODY_SECRET!r}}})
print(json.dumps({{"ok": True}}))
""",
    )
    run_sdk(
        "2",
        f"""
import json, anthropic
c = anthropic.Anthropic(api_key={BEARER_KEY!r}, base_url={product["prefix"]!r}, max_retries=0)
hello = [{{"role": "user", "content": "hi"}}]
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=20, messages=hello) as s:
    s.get_final_text()
print(json.dumps({{"ok": True}}))
""",
    )
    # A key in the query string, the other key headers, bodies that are not plain JSON.
    version = {"anthropic-version": "2023-06-01", "x-api-key": PROXY_KEY}
    json_type = {**version, "content-type": "application/json"}
    hello = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    for path, headers, body in [
        (f"/v1/messages?key={QUERY_KEY}&beta=true", json_type, json.dumps(hello).encode()),
        ("/v1/messages", json_type, b"\xef\xbb\xbf" + json.dumps({**hello, "api_key": BOM_KEY}).encode()),
        (
            "/v1/messages",
            {**version, "content-type": "application/x-www-form-urlencoded"},
            f"grant_type=client_credentials&client_secret={FORM_SECRET}".encode(),
        ),
        (
            "/v1/messages",
            {
                **json_type,
                "anthropic-api-key": ANTHROPIC_HEADER_KEY,
                "x-goog-api-key": GOOGLE_HEADER_KEY,
                "api-key": AZURE_HEADER_KEY,
            },
            json.dumps(hello).encode(),
        ),
    ]:
        httpx.post(product["prefix"] + path, headers=headers, content=body, timeout=30)
    # 2. The ingest API.
    _, token = services.api_token_create(team=upstream.team, name="exporter")
    line = {
        "method": "POST",
        "path": "/v1/messages",
        "request_headers": {
            "x-api-key": INGEST_KEY,
            "anthropic-version": "2023-06-01",
            "authorization": f"Bearer {INGEST_KEY}",
        },
        "request_body": {"model": "m", "api_key": INGEST_KEY},
        "status": 200,
    }
    more_lines = [
        {**line, "request_body": f'{{"model": "m", "api_key": "{DUPLICATE_KEY}", "api_key": ""}}'},
        {**line, "request_body": f'{{"model": "m", "password": "{INVALID_JSON_SECRET}", '},
    ]
    response = httpx.post(
        f"{product['web']}/api/v1/upstreams/{upstream.slug}/exchanges",
        content="\n".join(json.dumps(item) for item in [line, *more_lines]),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json()["accepted"] == 3
    # 3. HAR import.
    har = {
        "log": {
            "entries": [
                {
                    "startedDateTime": "2026-11-20T10:00:00Z",
                    "request": {
                        "method": "POST",
                        "url": "https://api.anthropic.com/v1/complete",
                        "headers": [
                            {"name": "X-Api-Key", "value": HAR_KEY},
                            {"name": "anthropic-version", "value": "2023-01-01"},
                            {"name": "Cookie", "value": f"session={HAR_KEY}"},
                        ],
                        "postData": {
                            "text": json.dumps(
                                {"prompt": "x", "secret": HAR_KEY, "client_secret": CLIENT_SECRET}
                            )
                        },
                    },
                    "response": {
                        "status": 200,
                        "headers": [{"name": "Set-Cookie", "value": f"k={HAR_KEY}"}],
                        "content": {"text": "{}"},
                    },
                }
            ]
        }
    }
    har_import(upstream=upstream, stream=io.BytesIO(json.dumps(har).encode()))
    deadline = time.monotonic() + 30
    while Exchange.objects.count() < 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Exchange.objects.count() == 10

    # 4. A replay against an upstream that sets a cookie and echoes a key: its answer is stored
    # masked, and the key of the recorded query string is not sent again.
    echo = json.dumps({"type": "message", "content": [{"type": "text", "text": f"key: {REPLAY_ECHOED_KEY}"}]})
    with fixed_upstream(
        headers=[("content-type", "application/json"), ("set-cookie", f"session={REPLAY_COOKIE}")],
        body=echo.encode(),
    ) as fake:
        other = services.upstream_create(
            team=upstream.team,
            name="Cookies",
            slug="cookies",
            base_url=fake.url,
            replay_key="sk-ant-replay-2",
        )
        replayed_line = {**line, "query": f"key={REPLAY_QUERY_KEY}&beta=true", "request_body": {"model": "m"}}
        response = httpx.post(
            f"{product['web']}/api/v1/upstreams/{other.slug}/exchanges",
            content=json.dumps(replayed_line),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.json()["accepted"] == 1
        other_run = run_start(upstream=other, versions=["2023-06-01"], selection={}, noise_sample_rate=0)
        deadline = time.monotonic() + 60
        while ReplayRun.objects.get(pk=other_run.pk).is_active:
            assert time.monotonic() < deadline, "the replay did not finish"
            time.sleep(0.3)
    assert ReplayResult.objects.get(run=other_run).response_headers["set-cookie"] == "[masked]"
    sent = "\n".join(
        f"{item.target} {json.dumps(item.headers)} {item.body.decode()}" for item in fake.received
    )
    assert fake.received and "beta=true" in sent
    assert all(got.headers["x-api-key"] == "sk-ant-replay-2" for got in fake.received)

    # A replay, a report and its exports, so every stage has had the data.
    run = run_start(upstream=upstream, versions=["2023-06-01", "2026-10-21"], selection={})
    deadline = time.monotonic() + 60
    while ReplayRun.objects.get(pk=run.pk).is_active and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not ReplayRun.objects.get(pk=run.pk).is_active, "the run never finished: nothing was scanned"
    definition = report_services.definition_save(
        definition=ReportDefinition(
            team=upstream.team,
            upstream=upstream,
            name="r",
            version_from="2023-06-01",
            version_to="2026-10-21",
            interval_seconds=3600,
        )
    )
    snapshot = report_services.snapshot_create(definition=definition)

    seen = [every_stored_value()]
    browser = Client()
    browser.force_login(alice)
    urls = [
        f"/u/{upstream.slug}/",
        f"/u/{upstream.slug}/traffic/",
        f"/u/{upstream.slug}/differences/",
        f"/u/{upstream.slug}/clients/",
        f"/u/{upstream.slug}/runs/{run.pk}/",
        "/settings/",
        "/reports/",
        f"/reports/snapshots/{snapshot.pk}/",
    ]
    urls.append(f"/u/{other.slug}/runs/{other_run.pk}/")
    urls += [f"/u/{slug}/traffic/{pk}/" for pk, slug in Exchange.objects.values_list("pk", "upstream__slug")]
    urls += [f"/reports/snapshots/{snapshot.pk}.{fmt}" for fmt in ("json", "csv", "html")]
    for url in urls:
        response = browser.get(url)
        assert response.status_code == 200, url
        seen.append(response.content.decode())
    for fmt in ("json", "csv", "html"):
        with pytest.raises(SystemExit):
            call_command("compat_report", "--upstream", upstream.slug, "--format", fmt)
    seen.append(capsys.readouterr().out)
    seen += [path.read_text() for path in product["logs"]]
    seen.append(sent)  # what the replay sent upstream: only the replay credential
    everything = "\n".join(seen)
    leaked = [secret for secret in SECRETS if secret in everything]
    assert not leaked, f"leaked: {leaked}"
    assert "[masked]" in everything, "the masking itself is visible where a secret was"
