"""Traffic sent by real SDK releases through the real recording proxy (at /proxy/<slug>/, and at
the root path for anthropic 0.2.10), in front of the emulator:
each client's SDK, features, status, impact and accidental migration come from what it recorded."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from migrations_audit.models import Exchange, RequestFinding, Status, StatusChange, Upstream
from migrations_audit.secrets import key_fingerprint
from migrations_audit.tracking import selectors, services
from tests.conftest import child_env
from tests.support.sdk import run_sdk
from tests.support.servers import PROXY_APP, free_port, running, uvicorn_args

pytestmark = pytest.mark.slow

MESSAGES = """
import anthropic, json
client = anthropic.Anthropic(api_key="{key}", base_url="{url}", max_retries=0)
kwargs = {extra}
result = client.messages.create(model="claude-sonnet-4-5", max_tokens=16,
                                messages=[{{"role": "user", "content": "Hello"}}], **kwargs)
if kwargs.get("stream"):
    result = [event.type for event in result]
print(json.dumps({{"ok": True}}))
"""
LEGACY = """
import anthropic, json
client = anthropic.Client("{key}", api_url="{url}")
prompt = anthropic.HUMAN_PROMPT + " Hello" + anthropic.AI_PROMPT
pieces = [data["completion"] for data in client.completion_stream(prompt=prompt, model="claude-v1",
                                                                     max_tokens_to_sample=16)]
print(json.dumps({{"pieces": len(pieces)}}))
"""


@pytest.fixture
def proxy(transactional_db, upstream_a, celery_worker):
    """The proxy listener on the emulator, and a worker for the request check queued as it records."""
    emulator_port, port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    Upstream.objects.filter(pk=upstream_a.pk).update(base_url=emulator_url)
    env = child_env(MIGRATION_AUDIT_DEFAULT_UPSTREAM=upstream_a.slug)
    with (
        running(
            ["-m", "migrations_audit.emulator", "--port", str(emulator_port)],
            ready_url=f"{emulator_url}/v1/models",
        ),
        running(
            uvicorn_args(PROXY_APP, port, "--no-access-log"),
            env=env,
            ready_url=f"http://127.0.0.1:{port}/__audit/healthz",
        ),
    ):
        yield {
            "upstream": upstream_a,
            "prefix": f"http://127.0.0.1:{port}/proxy/{upstream_a.slug}",
            "root": f"http://127.0.0.1:{port}",
        }


def recorded(count: int, *, timeout: float = 30) -> None:
    """The proxy records off the request path: wait until `count` exchanges are stored."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up and Exchange.objects.count() < count:
        time.sleep(0.2)
    assert Exchange.objects.count() >= count


def messages(release, proxy, key, extra="{}"):
    return run_sdk(release, MESSAGES.format(key=key, url=proxy["prefix"], extra=extra))


def test_clients_through_the_proxy_get_status_impact_and_history(proxy):
    upstream = proxy["upstream"]
    run_sdk("0.2.10", LEGACY.format(key="sk-ant-legacy", url=proxy["root"]))
    messages("0.125.0", proxy, "sk-ant-sampler", extra='{"temperature": 0.3}')
    messages("1.17.0", proxy, "sk-ant-plain", extra='{"stream": True}')
    messages("1.17.0", proxy, "sk-ant-app")
    recorded(4)
    # The app ran anthropic 1.x for a while before a routine upgrade to 2.x: date its traffic back.
    Exchange.objects.filter(client__identity=key_fingerprint("sk-ant-app")).update(
        started_at=timezone.now() - timedelta(days=10)
    )
    messages("2", proxy, "sk-ant-app")
    recorded(5)
    # The request check runs on the worker once each recorded batch commits.
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up and not RequestFinding.objects.exists():
        time.sleep(0.2)

    migration = services.migration_create(
        upstream=upstream,
        name="To 2026-10-21",
        target_version="2026-10-21",
        from_versions=["2023-01-01", "2023-06-01"],
        deadline=timezone.localdate() + timedelta(days=90),
    )
    services.migration_refresh(migration=migration)
    states = {state.client.identity: state for state in migration.states.select_related("client")}

    def state_of(key):
        return states[key_fingerprint(key)]

    legacy = state_of("sk-ant-legacy")
    assert legacy.status == Status.NOT_STARTED
    assert legacy.evidence["sdks"] == ["Python 0.2.10"] and "streaming" in legacy.evidence["features"]
    assert legacy.evidence["endpoints"] == ["POST /v1/complete"]
    # Sampling parameters: the capture's request check found them; rejected under the target.
    sampler = state_of("sk-ant-sampler")
    assert sampler.status == Status.AFFECTED
    [impact] = sampler.evidence["impact"]
    assert impact["key"] == "sampling-parameters-removed" and impact["direct"] and impact["exchange_ids"]
    plain = state_of("sk-ant-plain")
    assert plain.status == Status.NOT_STARTED and plain.evidence["impact"] == []
    assert plain.evidence["sdks"] == ["Python 1.17.0"] and "streaming" in plain.evidence["features"]
    # The 2.x upgrade moved the app to the target and to Authorization: Bearer, unplanned.
    app = state_of("sk-ant-app")
    assert app.status == Status.IN_PROGRESS
    accidental = app.evidence["accidental"]
    assert accidental["sdk_before"] == "Python 1.17.0" and accidental["sdk_after"].startswith("Python 2.")
    assert (accidental["key_header_before"], accidental["key_header_after"]) == ("x-api-key", "authorization")
    assert (accidental["error_rate_before"], accidental["error_rate_after"]) == (0.0, 0.0)

    # Eight days on, with nothing but the target since: the app counts as migrated; the history says when.
    later = timezone.now() + timedelta(days=8)
    [change] = services.migration_refresh(migration=migration, now=later)
    assert (change.client.identity, change.from_status, change.to_status) == (
        key_fingerprint("sk-ant-app"),
        Status.IN_PROGRESS,
        Status.MIGRATED,
    )
    assert StatusChange.objects.filter(migration=migration).count() == 5
    board = {column.status: len(column.states) for column in selectors.migration_board(migration=migration)}
    assert board == {"not_started": 2, "affected": 1, "in_progress": 0, "at_risk": 0, "migrated": 1}
