"""Sends a worker's batch of replay requests concurrently, each at its reserved start time.

One event loop, in a thread of its own, and one pooled aiohttp session per worker process, kept
between batches: a batch of fifty requests costs fifty requests, not fifty connection set-ups, and
the worker records one batch while the next is on the wire. aiohttp rather than httpx for
the same reason as the proxy: its per-request cost is a fraction of httpx's.
"""

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
from django.conf import settings
from django.utils import timezone

from migrations_audit.sse import SseParser, stream_malformation
from migrations_audit.upstream_guard import GuardedConnector, UpstreamNotAllowed, connection_error_text


@dataclass
class ReplayRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    # Seconds after the batch starts before this request may go (the rate limit's reserved slot).
    start_after: float = 0.0


@dataclass
class Outcome:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    streamed: bool = False
    events: list[dict] | None = None
    error: str = ""
    # An error that trying again cannot change (the address is not allowed): not retried.
    final: bool = False
    retry_after: float | None = None
    started_at: datetime = field(default_factory=timezone.now)
    duration_ms: float = 0.0
    # When the answer's first bytes came (its first event, for a stream): the latency a user feels.
    first_byte_ms: float | None = None


class Sender:
    def __init__(self):
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None

    def submit(self, requests: list[ReplayRequest]) -> concurrent.futures.Future:
        """Start sending; the future's result is the outcomes, in the order of the requests. The
        requests go out from the sender's own thread while the caller records the previous batch."""
        if self._pid != os.getpid():
            # A forked worker child must not reuse its parent's loop, thread and sockets.
            self._pid, self._loop, self._session = os.getpid(), asyncio.new_event_loop(), None
            threading.Thread(target=self._loop.run_forever, name="replay-sender", daemon=True).start()
            atexit.register(self._close)
        return asyncio.run_coroutine_threadsafe(self._send_all(requests), self._loop)

    def _close(self) -> None:
        """Close the pooled connections as the process exits (its loop's thread is still running)."""
        if self._pid == os.getpid() and self._session is not None:
            done = asyncio.run_coroutine_threadsafe(self._session.close(), self._loop)
            with contextlib.suppress(Exception):
                done.result(timeout=2)

    async def _send_all(self, requests: list[ReplayRequest]) -> list[Outcome]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Connects only where MIGRATION_AUDIT_UPSTREAM_HOSTS allows (see upstream_guard).
                connector=GuardedConnector(limit=200, limit_per_host=0, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(
                    total=settings.REPLAY_TIMEOUT_SECONDS,
                    sock_connect=settings.MIGRATION_AUDIT_UPSTREAM_CONNECT_TIMEOUT,
                ),
                # The raw bytes, as capture keeps them: a gzip answer stays gzip.
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        began = time.monotonic()
        return list(await asyncio.gather(*(self._send(request, began) for request in requests)))

    async def _send(self, request: ReplayRequest, began: float) -> Outcome:
        delay = began + request.start_after - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        outcome = Outcome()
        started = time.perf_counter()
        chunks: list[bytes] = []
        try:
            # A redirect is an answer to compare, as the proxy recorded it: never followed.
            async with self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body or None,
                allow_redirects=False,
            ) as response:
                outcome.status = response.status
                outcome.headers = {name.lower(): value for name, value in response.headers.items()}
                outcome.streamed = outcome.headers.get("content-type", "").startswith("text/event-stream")
                outcome.retry_after = _retry_after(outcome.headers.get("retry-after"))
                parser = SseParser() if outcome.streamed else None
                events: list[dict] = []
                async for chunk in response.content.iter_any():
                    if not chunks:
                        outcome.first_byte_ms = (time.perf_counter() - started) * 1000
                    chunks.append(chunk)
                    if parser is not None:
                        at = (time.perf_counter() - started) * 1000
                        events.extend(event.as_dict(t_ms=at) for event in parser.feed(chunk))
                if parser is not None:
                    at = (time.perf_counter() - started) * 1000
                    events.extend(event.as_dict(t_ms=at) for event in parser.close())
                    outcome.events = events
                    outcome.error = stream_malformation(events)
        except (aiohttp.ClientError, TimeoutError) as error:
            outcome.error = connection_error_text(error)
            outcome.final = isinstance(error, UpstreamNotAllowed)
        outcome.body = b"".join(chunks)
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
