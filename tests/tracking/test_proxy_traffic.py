"""Traffic through the real recording proxy (`/proxy/<slug>/` of the web process, in front of the
emulator), sent by real SDK releases, makes each client's status, impact and accidental migration.

Needs the capture and emulator stages: skipped until both are on this branch.
"""

import importlib.util
import time
from datetime import timedelta

import pytest
from django.urls import Resolver404, resolve
from django.utils import timezone

from migrations_audit import services as core_services
from migrations_audit.models import Exchange, Status
from migrations_audit.secrets import key_fingerprint
from migrations_audit.tracking import services
from tests.conftest import child_env
from tests.support.sdk import run_sdk
from tests.support.servers import free_port, running

pytestmark = pytest.mark.slow


def _proxy_available() -> bool:
    if importlib.util.find_spec("migrations_audit.emulator") is None:
        return False
    try:
        resolve("/proxy/anthropic/v1/messages")
    except Resolver404:
        return False
    return True


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


@pytest.fixture
def proxy(transactional_db, team_a):
    if not _proxy_available():
        pytest.skip("the recording proxy and the emulator are not on this branch yet")
    emulator_port, web_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    upstream = core_services.upstream_create(
        team=team_a,
        name="Anthropic",
        slug="anthropic",
        base_url=emulator_url,
        baseline_version="2023-06-01",
        target_version="2026-10-21",
    )
    emulator = ["-m", "migrations_audit.emulator", "--host", "127.0.0.1", "--port", str(emulator_port)]
    web = ["-m", "uvicorn", "dashboard.asgi:application", "--host", "127.0.0.1", "--port", str(web_port)]
    with (
        running(emulator, env=child_env(), ready_url=emulator_url + "/"),
        running(web, env=child_env(), ready_url=f"http://127.0.0.1:{web_port}/healthz"),
    ):
        yield upstream, f"http://127.0.0.1:{web_port}/proxy/{upstream.slug}"


def wait_for_exchanges(count: int, *, timeout: float = 60) -> None:
    """Capture may store after answering: wait until every exchange is there."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up and Exchange.objects.count() < count:
        time.sleep(0.2)
    assert Exchange.objects.count() >= count


def test_clients_through_the_proxy_get_their_status(proxy):
    upstream, url = proxy
    run_sdk("0.125.0", MESSAGES.format(key="sk-ant-sampler", url=url, extra='{"temperature": 0.3}'))
    run_sdk("1.17.0", MESSAGES.format(key="sk-ant-plain", url=url, extra='{"stream": True}'))
    run_sdk("1.17.0", MESSAGES.format(key="sk-ant-app", url=url, extra="{}"))
    run_sdk("2", MESSAGES.format(key="sk-ant-app", url=url, extra="{}"))
    wait_for_exchanges(4)
    # The upgrade happened after a while of 1.x traffic: move the 1.x request back in time.
    app_client = upstream.clients.get(identity=key_fingerprint("sk-ant-app"))
    Exchange.objects.filter(client=app_client, api_version="2023-06-01").update(
        started_at=timezone.now() - timedelta(days=3)
    )

    migration = services.migration_create(
        upstream=upstream,
        name="To 2026-10-21",
        target_version="2026-10-21",
        deadline=timezone.localdate() + timedelta(days=90),
    )
    services.migration_refresh(migration=migration)
    states = {state.client.identity: state for state in migration.states.select_related("client")}
    sampler = states[key_fingerprint("sk-ant-sampler")]
    assert sampler.status == Status.AFFECTED
    assert "sampling-parameters-removed" in [entry["key"] for entry in sampler.evidence["impact"]]
    plain = states[key_fingerprint("sk-ant-plain")]
    assert plain.status == Status.NOT_STARTED and "streaming" in plain.evidence["features"]
    app = states[key_fingerprint("sk-ant-app")]
    assert app.status == Status.IN_PROGRESS
    accidental = app.evidence["accidental"]
    assert accidental["sdk_before"] == "Python 1.17.0" and accidental["sdk_after"].startswith("Python 2.")
    assert (accidental["key_header_before"], accidental["key_header_after"]) == ("x-api-key", "authorization")
