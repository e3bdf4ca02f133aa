"""The database goes away for a few seconds while a real proxy process records real client traffic.

Clients keep getting their answers (recording is off the request path, and the proxy keeps the
upstream settings it read last). When the database is back, what was recorded meanwhile is written;
what the recorder could not keep is counted, stored and shown on the upstream's pages. Nothing is
lost silently: every answered call is either a stored exchange or in a count a user can see.

On PostgreSQL the proxy reaches the database through a forwarder that the test cuts (connections
reset, new ones refused) and restores. SQLite has no server to take away, so there the test holds
the database's write lock for the same time instead: the recorder cannot write, the clients must
not notice.
"""

import sqlite3
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime

import httpx
import pytest
from django.db import connection
from django.db.models import Sum

from migrations_audit.models import Exchange, RecorderTotals, Upstream
from tests.conftest import child_env, database_url_for_subprocess
from tests.support.servers import PROXY_APP, TcpForwarder, free_port, running, uvicorn_args
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow]

# Longer than the proxy caches an upstream's settings (5 s), so it must do without the database.
OUTAGE_SECONDS = 6
HEADERS = {"x-api-key": "sk-ant-outage-test", "anthropic-version": "2023-06-01"}


class PostgresOutage:
    def __init__(self, forwarder: TcpForwarder):
        self.forwarder = forwarder
        settings = connection.settings_dict
        self.database_url = database_url_for_subprocess().replace(
            f"@{settings.get('HOST') or '127.0.0.1'}:{settings.get('PORT') or 5432}/",
            f"@127.0.0.1:{forwarder.port}/",
        )
        assert str(forwarder.port) in self.database_url

    def begin(self):
        self.forwarder.cut()

    def end(self):
        self.forwarder.restore()


class SqliteLock:
    def __init__(self):
        self.database_url = database_url_for_subprocess()
        self.holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=30)

    def begin(self):
        self.holder.execute("BEGIN EXCLUSIVE")

    def end(self):
        self.holder.execute("COMMIT")


@pytest.fixture
def outage(transactional_db):
    if connection.vendor == "postgresql":
        settings = connection.settings_dict
        with TcpForwarder((settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or 5432))) as fwd:
            yield PostgresOutage(fwd)
    else:
        lock = SqliteLock()
        yield lock
        lock.holder.close()


@pytest.fixture
def start_proxy(outage, upstream_a, emulator, tmp_path):
    """Start the recording proxy (at /proxy/<slug>/), reaching the database the way
    `outage` can take away, with a recorder that stores its totals every second."""
    Upstream.objects.filter(pk=upstream_a.pk).update(base_url=emulator)
    with ExitStack() as processes:

        def start(**settings) -> str:
            port = free_port()
            env = child_env(
                DATABASE_URL=outage.database_url, MIGRATION_AUDIT_RECORDER_REPORT_SECONDS=1, **settings
            )
            processes.enter_context(
                running(
                    uvicorn_args(PROXY_APP, port),
                    env=env,
                    log=processes.enter_context(open(tmp_path / f"proxy-{port}.log", "w")),
                    ready_url=f"http://127.0.0.1:{port}/__audit/healthz",
                )
            )
            return f"http://127.0.0.1:{port}"

        yield start


class Traffic:
    """Clients in threads sending calls (one in three streamed) over real HTTP until stopped; every
    answer is kept as (sent at, outcome), the outcome being "ok" or what went wrong."""

    def __init__(self, base_url: str, *, clients: int = 4):
        self.base_url = base_url
        self.answers: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(clients)]

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self._stop.is_set():
                n += 1
                stream = n % 3 == 0
                body = {
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": f"call {n}"}],
                    "stream": stream,
                }
                sent_at = time.time()
                try:
                    response = http.post("/v1/messages", json=body, headers=HEADERS)
                    complete = (
                        b"message_stop" in response.content
                        if stream
                        else b'"type":"message"' in (response.content.replace(b" ", b""))
                    )
                    ok = response.status_code == 200 and complete
                    outcome = "ok" if ok else f"{response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as error:
                    outcome = f"{type(error).__name__}: {error}"
                self.answers.append((sent_at, outcome))
                time.sleep(0.02)  # the clients' pace: steady traffic, not a flood of the shared CPU

    def failures(self) -> list[str]:
        return [outcome for _, outcome in self.answers if outcome != "ok"]

    def sent_between(self, start: float, end: float) -> int:
        return sum(1 for sent_at, _ in self.answers if start <= sent_at < end)


def through_an_outage(outage, base_url: str, *, seconds: float) -> tuple[Traffic, float, float]:
    with Traffic(f"{base_url}/proxy/anthropic") as traffic:
        # Settings cached, a few batches written: the proxy is in its steady state.
        wait_until(
            lambda: Exchange.objects.count() >= 10, timeout=60, interval=0.1, message="calls recorded before"
        )
        began = time.time()
        outage.begin()
        time.sleep(seconds)  # the scenario itself: the database is away this long
        outage.end()
        ended = time.time()
        wait_until(
            lambda: traffic.sent_between(ended, float("inf")) >= 10,
            timeout=60,
            interval=0.1,
            message="calls answered after the outage",
        )
    return traffic, began, ended


def recorder_totals() -> dict:
    totals = RecorderTotals.objects.aggregate(
        recorded=Sum("recorded", default=0),
        dropped=Sum("dropped", default=0),
        failed=Sum("failed", default=0),
    )
    return {**totals, "stored": Exchange.objects.count()}


def settled(sent: int, *, timeout: float = 60) -> dict:
    """The stored counts once every answered call is accounted for: stored, or counted as lost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        totals = recorder_totals()
        if (
            totals["stored"] + totals["dropped"] + totals["failed"] >= sent
            and totals["recorded"] == totals["stored"]
        ):
            return totals
        time.sleep(0.5)
    raise AssertionError(f"{sent} calls answered, but after {timeout}s: {recorder_totals()}")


def test_an_outage_is_invisible_to_clients_and_what_it_recorded_is_written_after(
    outage, start_proxy, alice, client
):
    base_url = start_proxy()
    traffic, began, ended = through_an_outage(outage, base_url, seconds=OUTAGE_SECONDS)

    assert traffic.failures() == [], "every call is answered while the database is away"
    during = traffic.sent_between(began + 0.5, ended - 0.5)
    assert during > 20, "clients kept sending during the outage"

    totals = settled(len(traffic.answers))
    assert totals == {
        "stored": len(traffic.answers),
        "recorded": len(traffic.answers),
        "dropped": 0,
        "failed": 0,
    }
    # Proxy and clients share the clock: a call sent well inside the outage started inside it.
    stored_from_outage = Exchange.objects.filter(started_at__range=(to_datetime(began), to_datetime(ended)))
    assert stored_from_outage.count() >= during, "the outage's exchanges were written once it was over"
    health = httpx.get(f"{base_url}/__audit/healthz").json()
    assert (health["recorded"], health["dropped"], health["failed"]) == (len(traffic.answers), 0, 0)

    client.force_login(alice)
    page = client.get("/u/anthropic/").content.decode()
    assert "not recorded" not in page


def test_what_the_recorder_could_not_keep_is_counted_and_shown_on_the_dashboard(
    outage, start_proxy, alice, bob, client
):
    base_url = start_proxy(MIGRATION_AUDIT_RECORDER_MAX_PENDING=5)
    traffic, _, _ = through_an_outage(outage, base_url, seconds=4)

    assert traffic.failures() == [], "a full recording queue never costs a client its answer"
    totals = settled(len(traffic.answers))
    assert totals["dropped"] > 0
    assert totals["stored"] + totals["dropped"] + totals["failed"] == len(traffic.answers), (
        "none lost silently"
    )
    health = httpx.get(f"{base_url}/__audit/healthz").json()
    assert health["dropped"] == totals["dropped"]

    lost = totals["dropped"] + totals["failed"]
    for user in (alice, bob):  # the team's admin and its viewer
        client.force_login(user)
        for url in ("/u/anthropic/", "/u/anthropic/traffic/"):
            page = client.get(url).content.decode()
            assert f"{lost:,} exchanges answered but not recorded" in page, url
            assert f"{totals['dropped']:,} dropped because the recording queue was full" in page, url


def to_datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
