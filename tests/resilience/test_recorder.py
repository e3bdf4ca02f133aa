"""The proxy's recorder when the database is away: client traffic never waits for it, what was
recorded meanwhile is written when it is back, and what could not be kept is counted, not lost silently."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from django.db import OperationalError

from migrations_audit.capture import proxy
from migrations_audit.capture.recording import CapturedExchange
from tests.support.waiting import async_wait_until


def captured(n: int) -> CapturedExchange:
    return CapturedExchange(
        method="POST",
        path=f"/v1/messages/{n}",
        request_headers={},
        request_body=b"{}",
        started_at=datetime(2026, 11, 1, tzinfo=UTC),
        status=200,
    )


def run(coroutine):
    """asyncio.run in a thread of its own: a browser test earlier in the process may have left
    Playwright's event loop running in this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture
def store(monkeypatch):
    """A store that fails while `down` is set, like a database restarting."""
    state = {"down": True, "written": [], "refused": 0}

    def fake_store(by_upstream):
        if state["down"]:
            state["refused"] += 1
            raise OperationalError("database unavailable")
        for items in by_upstream.values():
            state["written"].extend(items)

    monkeypatch.setattr(proxy, "_store", fake_store)
    monkeypatch.setattr(proxy, "RETRY_DELAYS", (0.05, 0.05, 0.05, 0.05, 0.05, 0.05))
    return state


def test_exchanges_recorded_while_the_database_is_down_are_written_when_it_is_back(store):
    async def scenario():
        recorder = proxy.Recorder()
        for n in range(10):
            recorder.submit(1, captured(n))  # returns at once: the client never waits
        await async_wait_until(
            lambda: store["refused"] >= 1, message="a write refused while the database is down"
        )
        assert store["written"] == []
        assert recorder.counts()["pending"] == 10, "queued or being written: none unaccounted for"
        store["down"] = False
        await asyncio.wait_for(recorder.flush(), timeout=5)
        return recorder.counts()

    counts = run(scenario())
    assert len(store["written"]) == 10
    assert counts["recorded"] == 10 and counts["failed"] == 0


def test_what_cannot_be_kept_is_counted(store):
    async def scenario():
        recorder = proxy.Recorder(max_pending=3)
        for n in range(5):
            recorder.submit(1, captured(n))
        await asyncio.wait_for(recorder.flush(), timeout=5)  # the database never comes back
        return recorder.counts()

    counts = run(scenario())
    assert counts["dropped"] >= 1, "a full queue drops and counts"
    assert counts["failed"] + counts["dropped"] == 5
    assert counts["recorded"] == 0


def test_totals_are_kept_per_upstream_and_stored_once_the_database_answers(store, monkeypatch):
    stored = []

    def fake_store_totals(identity, started_at, totals):
        if store["down"]:
            raise OperationalError("database unavailable")
        stored.append(totals)

    monkeypatch.setattr(proxy, "_store_totals", fake_store_totals)

    async def scenario():
        recorder = proxy.Recorder(max_pending=4)
        for n in range(6):
            recorder.submit(1 if n % 2 else 2, captured(n))  # upstream 2 gets the first, 3rd, 5th
        await recorder.report()  # the database is away: nothing stored, nothing forgotten
        assert stored == []
        store["down"] = False
        await asyncio.wait_for(recorder.flush(), timeout=5)
        await recorder.report()
        await recorder.report()  # unchanged totals are not written again
        return recorder.counts()

    counts = run(scenario())
    assert stored == [
        {1: {"recorded": 2, "dropped": 1, "failed": 0}, 2: {"recorded": 2, "dropped": 1, "failed": 0}}
    ]
    assert counts == {"recorded": 4, "pending": 0, "dropped": 2, "failed": 0}


def test_database_errors_are_still_waited_out(monkeypatch):
    state = {"down": True, "written": 0}

    def store(by_upstream):
        if state["down"]:
            state["down"] = False  # back for the next try
            raise OperationalError("database is locked")
        state["written"] += sum(len(items) for items in by_upstream.values())

    monkeypatch.setattr(proxy, "_store", store)
    monkeypatch.setattr(proxy, "RETRY_DELAYS", (0.05, 0.05))

    async def scenario():
        recorder = proxy.Recorder()
        recorder.submit(1, captured(1))
        await asyncio.wait_for(recorder.flush(), timeout=10)
        return recorder.counts()

    assert run(scenario())["recorded"] == 1 and state["written"] == 1


def test_a_batch_retried_after_its_commit_is_stored_once(transactional_db, upstream_a, monkeypatch):
    """The batch commits, then the reply is lost (the connection drops after COMMIT): the recorder
    tries the batch again, and the capture keys make that try store nothing."""
    from migrations_audit.models import Exchange, TrafficDay

    real_store, tries = proxy._store, []

    def commit_then_lose_the_reply(by_upstream):
        real_store(by_upstream)
        tries.append(sum(len(items) for items in by_upstream.values()))
        if len(tries) == 1:
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(proxy, "_store", commit_then_lose_the_reply)
    monkeypatch.setattr(proxy, "RETRY_DELAYS", (0.05, 0.05, 0.05))

    async def scenario():
        recorder = proxy.Recorder()
        for n in range(5):
            recorder.submit(upstream_a.pk, captured(n))
        await asyncio.wait_for(recorder.flush(), timeout=30)
        return recorder.counts()

    counts = run(scenario())
    assert tries == [5, 5], "the whole batch was tried again"
    assert Exchange.objects.filter(upstream=upstream_a).count() == 5
    assert sum(TrafficDay.objects.filter(upstream=upstream_a).values_list("count", flat=True)) == 5
    assert counts["recorded"] == 5 and counts["failed"] == 0
