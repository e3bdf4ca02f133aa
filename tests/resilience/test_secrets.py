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
from migrations_audit.models import Exchange, ReplayRun, ReportDefinition
from migrations_audit.replay.services import run_start
from migrations_audit.reports import services as report_services
from tests.support.sdk import run_sdk

pytestmark = pytest.mark.slow

PROXY_KEY = "sk-ant-proxy-SECRET-aaaa1111"
BEARER_KEY = "sk-ant-bearer-SECRET-bbbb2222"
INGEST_KEY = "sk-ant-ingest-SECRET-cccc3333"
HAR_KEY = "sk-ant-har-SECRET-dddd4444"
BODY_SECRET = "hunter2-SECRET-eeee5555"
SECRETS = [PROXY_KEY, BEARER_KEY, INGEST_KEY, HAR_KEY, BODY_SECRET]


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
c.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=[{{"role": "user", "content": "hi"}}],
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
    response = httpx.post(
        f"{product['web']}/api/v1/upstreams/{upstream.slug}/exchanges",
        content=json.dumps(line),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json()["accepted"] == 1
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
                        "postData": {"text": json.dumps({"prompt": "x", "secret": HAR_KEY})},
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
    while Exchange.objects.count() < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Exchange.objects.count() == 4

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
    urls += [f"/u/{upstream.slug}/traffic/{pk}/" for pk in Exchange.objects.values_list("pk", flat=True)]
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
    everything = "\n".join(seen)
    for secret in SECRETS:
        assert secret not in everything, f"{secret} leaked"
    assert "[masked]" in everything, "the masking itself is visible where a secret was"
