"""The recording reverse proxy, as a lean ASGI application.

Django's request stack is not on this path: a request is forwarded as soon as its body is read, the
response streams back chunk by chunk as the upstream sends it, and the finished exchange goes to a
queue that a background writer drains into the database. The client never waits for the database.
"""

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import aiohttp
import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils.crypto import salted_hmac
from yarl import URL

from dashboard.server import SECURITY_HEADERS, error_body
from migrations_audit.models import Upstream
from migrations_audit.secrets import MASK
from migrations_audit.sse import SseParser
from migrations_audit.upstream_guard import (
    NOT_ALLOWED,
    GuardedConnector,
    UpstreamNotAllowed,
    connection_error_text,
)

from .recording import CLIENT_HEADER, HOP_BY_HOP, CapturedExchange, is_event_stream
from .services import DATABASE_OUTAGE_ERRORS, exchanges_record, recorder_totals_record

logger = logging.getLogger(__name__)
UPSTREAM_CACHE_SECONDS = 5.0
# While the database is away, an upstream's cached settings are used and read again this often.
ROUTE_RETRY_SECONDS = 1.0
MAX_CACHED_ROUTES = 1000
BATCH_WINDOW_SECONDS = 0.2
# How long the recorder keeps retrying a batch while the database is away (about two minutes).
RETRY_DELAYS = (1, 2, 4, 8, 15, 30, 30, 30)
# Answered by the proxy itself (liveness and recorder counts).
HEALTH_PATH = "/__audit/healthz"
PREFIX = "/proxy/"
# The browser's cookies for the proxy's host are not the upstream's business, and an upstream's
# cookies are not the client's: neither crosses the proxy (both are recorded as masked).
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {CLIENT_HEADER, "via", "cookie"}
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {"set-cookie"}
# Bytes of a received path kept as they are; any other byte (none a valid URL holds) is escaped.
PATH_SAFE = "/%!$&'()*+,;=:@~"


@dataclass
class UpstreamRoute:
    """What the proxy needs of an upstream, cached so a request costs no query."""

    pk: int
    slug: str
    base_url: str
    recording_paused: bool
    record_one_in: int


@dataclass
class UpstreamTally:
    """What a recorder did with one upstream's exchanges since its process started."""

    recorded: int = 0
    dropped: int = 0
    failed: int = 0


class Recorder:
    """Takes finished exchanges off the request path and writes them in batches from a thread.

    Every exchange ends up recorded, dropped (queue full) or failed (the database stayed away past the
    retries, or the exchange itself could not be stored), counted per upstream; the totals are stored
    every `report_seconds` once the database answers, so the dashboard can say what is missing. Only
    the database being away is waited out: an exchange that fails for any other reason fails alone,
    at once, and the others of its batch are stored."""

    def __init__(self, *, name: str = "proxy", max_pending: int | None = None, batch_size: int = 200):
        self.queue: asyncio.Queue | None = None
        self.max_pending = max_pending or settings.MIGRATION_AUDIT_RECORDER_MAX_PENDING
        self.batch_size = batch_size
        self.report_seconds = settings.MIGRATION_AUDIT_RECORDER_REPORT_SECONDS
        self.tallies: dict[int, UpstreamTally] = defaultdict(UpstreamTally)
        # Two listeners may share a process (dashboard.asgi builds both), hence the random part.
        self.identity = f"{socket.gethostname()} pid {os.getpid()} {name} {uuid.uuid4().hex[:6]}"
        self.started_at = datetime.now(UTC)
        self._stored_totals: dict | None = None
        self._writing = 0  # taken off the queue, not yet written or given up on
        self._tasks: list[asyncio.Task] = []  # held: the event loop keeps only weak references

    def submit(self, upstream_pk: int, captured: CapturedExchange) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._drain()), loop.create_task(self._report_every())]
        if self.queue.qsize() >= self.max_pending:
            # Never hold client traffic hostage to a slow database: count what could not be kept.
            self.tallies[upstream_pk].dropped += 1
            dropped = self.tallies[upstream_pk].dropped
            logger.warning("recording queue full: exchange dropped (%d for this upstream so far)", dropped)
            return
        self.queue.put_nowait((upstream_pk, captured))

    async def _drain(self) -> None:
        while True:
            batch = [await self.queue.get()]
            self._writing = 1
            # Let a batch gather: one write of many exchanges costs far less than many writes of one.
            await asyncio.sleep(BATCH_WINDOW_SECONDS)
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self._writing = len(batch)
            await self._write(batch)
            for _ in batch:
                self.queue.task_done()

    async def _write(self, batch) -> None:
        unwritten: dict[int, list[CapturedExchange]] = {}
        for upstream_pk, captured in batch:
            unwritten.setdefault(upstream_pk, []).append(captured)
        for attempt, delay in enumerate(RETRY_DELAYS, start=1):
            # One transaction per upstream: a retry writes only what is not written yet, never twice.
            for upstream_pk in list(unwritten):
                try:
                    await sync_to_async(_store, thread_sensitive=False)({upstream_pk: unwritten[upstream_pk]})
                except DATABASE_OUTAGE_ERRORS:
                    # The database may be restarting: keep the exchanges and try again for a while.
                    logger.exception(
                        "recording %d exchanges failed (attempt %d)", len(unwritten[upstream_pk]), attempt
                    )
                except Exception:
                    left = await self._write_one_by_one(upstream_pk, unwritten.pop(upstream_pk))
                    if left:  # the database went away meanwhile
                        unwritten[upstream_pk] = left
                else:
                    written = len(unwritten.pop(upstream_pk))
                    self.tallies[upstream_pk].recorded += written
                    self._writing -= written
            if not unwritten:
                return
            await asyncio.sleep(delay)
        for upstream_pk, exchanges in unwritten.items():
            logger.error("gave up recording %d exchanges: the database stayed unavailable", len(exchanges))
            self.tallies[upstream_pk].failed += len(exchanges)
            self._writing -= len(exchanges)

    async def _write_one_by_one(self, upstream_pk: int, exchanges: list[CapturedExchange]):
        """Store each exchange alone, counting the ones that fail as failed; the ones left unwritten
        when the database goes away meanwhile are returned, to be retried with the batch."""
        for index, captured in enumerate(exchanges):
            try:
                await sync_to_async(_store, thread_sensitive=False)({upstream_pk: [captured]})
            except DATABASE_OUTAGE_ERRORS:
                return exchanges[index:]
            except Exception as error:
                # The type only: the message of an error about this exchange may quote its content.
                logger.error("an exchange could not be recorded: %s", type(error).__name__)
                self.tallies[upstream_pk].failed += 1
            else:
                self.tallies[upstream_pk].recorded += 1
            self._writing -= 1
        return []

    async def _report_every(self) -> None:
        while True:
            await asyncio.sleep(self.report_seconds)
            await self.report()

    async def report(self) -> None:
        """Store the totals per upstream if they changed; while the database is away they wait for
        the next report, which carries them (they are totals, not increments)."""
        totals = {pk: asdict(tally) for pk, tally in self.tallies.items()}
        if not totals or totals == self._stored_totals:
            return
        try:
            await sync_to_async(_store_totals, thread_sensitive=False)(self.identity, self.started_at, totals)
        except Exception:
            logger.warning("storing the recorder totals failed; the next report carries them", exc_info=True)
            return
        self._stored_totals = totals

    def counts(self) -> dict:
        # Every exchange submitted is counted once: recorded, pending (queued or being written),
        # dropped or failed.
        pending = (self.queue.qsize() if self.queue is not None else 0) + self._writing
        tallies = self.tallies.values()
        return {
            "recorded": sum(tally.recorded for tally in tallies),
            "pending": pending,
            "dropped": sum(tally.dropped for tally in tallies),
            "failed": sum(tally.failed for tally in tallies),
        }

    async def flush(self) -> None:
        if self.queue is not None:
            await self.queue.join()


def _store(by_upstream: dict[int, list[CapturedExchange]]) -> None:
    from django.db import close_old_connections

    close_old_connections()
    for upstream in Upstream.objects.filter(pk__in=by_upstream):
        exchanges_record(upstream=upstream, captured=by_upstream[upstream.pk], source="proxy")


def _store_totals(identity: str, started_at: datetime, totals: dict[int, dict[str, int]]) -> None:
    from django.db import close_old_connections

    close_old_connections()
    recorder_totals_record(recorder=identity, started_at=started_at, totals=totals)


class ProxyApp:
    """Serves /proxy/<slug>/<path> for any upstream, and every other path for the default upstream
    (root mode, for clients that can change only the host and port), on an origin of its own."""

    def __init__(self, *, default_slug: str = ""):
        self.default_slug = default_slug
        self.recorder = Recorder(name=f"listener (default {default_slug or 'none'})")
        self._routes: dict[str, tuple[float, UpstreamRoute | None]] = {}
        self._client: aiohttp.ClientSession | None = None
        self._counter = 0
        self.via = proxy_via()

    @property
    def client(self) -> aiohttp.ClientSession:
        # aiohttp rather than httpx here: at a hundred concurrent connections httpx's pool became the
        # bottleneck of the proxy (bench/proxy.py). Bytes are forwarded as they come, not decompressed.
        if self._client is None:
            # Connects only where MIGRATION_AUDIT_UPSTREAM_HOSTS allows (see upstream_guard).
            self._client = aiohttp.ClientSession(
                connector=GuardedConnector(limit=2000, limit_per_host=0, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=settings.MIGRATION_AUDIT_UPSTREAM_CONNECT_TIMEOUT,
                    sock_read=settings.MIGRATION_AUDIT_PROXY_TIMEOUT,
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._client

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == HEALTH_PATH:
            await _send_json(send, 200, {"status": "ok", **self.recorder.counts()})
            return
        if _went_through(scope, self.via):
            # An upstream that points back at this proxy: answered at once, not forwarded again.
            await _send_error(
                send, 508, "api_error", "Loop detected: the request already went through this proxy."
            )
            return
        slug, path = self._destination(_received_path(scope))
        if not slug:
            await _send_error(send, 404, "not_found_error", f"Send requests to {PREFIX}<upstream>/.")
            return
        try:
            route = await self._route(slug)
        except RouteUnavailable:
            await _send_error(
                send, 503, "api_error", "The proxy cannot read its settings: the database is unavailable."
            )
            return
        if route is None:
            await _send_error(send, 404, "not_found_error", f"No upstream named {slug!r} is configured.")
            return
        await self._forward(route, path, scope, receive, send)

    def _destination(self, received: str) -> tuple[str, str]:
        """The upstream's slug and the path to forward, as received (percent-encoding kept)."""
        if received.startswith(PREFIX):
            slug, _, path = received.removeprefix(PREFIX).partition("/")
            return slug, "/" + path
        return self.default_slug, received

    async def _route(self, slug: str) -> UpstreamRoute | None:
        cached = self._routes.get(slug)
        now = time.monotonic()
        if cached and cached[0] > now:
            return cached[1]
        try:
            route = await sync_to_async(_load_route, thread_sensitive=False)(slug)
        except Exception as error:
            if cached is None:
                raise RouteUnavailable from error
            # The database is away: keep proxying with the settings last read, and look again soon.
            logger.warning("reading upstream %r failed; using its cached settings", slug, exc_info=True)
            self._routes[slug] = (now + ROUTE_RETRY_SECONDS, cached[1])
            return cached[1]
        if len(self._routes) >= MAX_CACHED_ROUTES and slug not in self._routes:
            # Any slug may be asked for: forget the unknown ones rather than grow without bound.
            self._routes = {key: entry for key, entry in self._routes.items() if entry[1] is not None}
            if len(self._routes) >= MAX_CACHED_ROUTES:
                self._routes.clear()
        self._routes[slug] = (now + UPSTREAM_CACHE_SECONDS, route)
        return route

    async def _forward(self, route: UpstreamRoute, path: str, scope, receive, send):
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        body = await _request_body(scope, receive, send)
        if body is None:
            return  # refused, or the client went away before sending its request
        query = scope.get("query_string", b"").decode("latin-1")
        url = upstream_url(route.base_url, path, query)
        if url is None:
            await _send_error(send, 400, "invalid_request_error", "The path does not stay on the upstream.")
            return
        request_headers = _decode_headers(scope["headers"])
        captured = CapturedExchange(
            method=scope["method"],
            path=path,
            query=query,
            request_headers=_cookies_masked(request_headers),
            request_body=body,
            started_at=started_at,
        )
        opened = await self._open_upstream(
            route, captured, url, self._forwarded_headers(request_headers), send, started
        )
        if opened is None:
            return
        response, first_chunk = opened
        if first_chunk:
            captured.first_byte_ms = (time.perf_counter() - started) * 1000
        await self._relay(route, captured, response, first_chunk, receive, send, started)

    def _forwarded_headers(self, request_headers: dict[str, str]) -> list[tuple[str, str]]:
        forwarded = [
            (name, value) for name, value in request_headers.items() if name not in DROPPED_REQUEST_HEADERS
        ]
        forwarded.append(
            ("via", f"{request_headers['via']}, {self.via}" if "via" in request_headers else self.via)
        )
        return forwarded

    async def _open_upstream(
        self, route, captured: CapturedExchange, url: str, headers, send, started: float
    ):
        """(response, first chunk) from the upstream, or None once the client got a 504 or 502 for it."""
        response = None
        try:
            response = await self.client.request(
                captured.method,
                URL(url, encoded=True),
                headers=headers,
                data=captured.request_body,
                allow_redirects=False,
            )
            # The status is passed on only once the body starts: an upstream that sends its headers
            # and then stalls or hangs up still gets the client a 504 or 502, not a truncated 200.
            first_chunk = await response.content.readany()
            _stream_idle_timeout(response)
        except TimeoutError as error:
            if response is not None:
                response.close()
            captured.error = f"upstream timed out: {connection_error_text(error)}"
            await _send_error(send, 504, "api_error", "The upstream API did not answer in time.")
            self._record(route, captured, started, status=504)
            return None
        except aiohttp.ClientError as error:
            if response is not None:
                response.close()
            captured.error = f"upstream unreachable: {connection_error_text(error)}"
            refused = isinstance(error, UpstreamNotAllowed)
            message = f"The {NOT_ALLOWED}." if refused else "The upstream API could not be reached."
            await _send_error(send, 502, "api_error", message)
            self._record(route, captured, started, status=502)
            return None
        return response, first_chunk

    async def _relay(
        self, route, captured: CapturedExchange, response, first_chunk: bytes, receive, send, started
    ):
        """Pass the upstream's response on to the client as it comes, keeping a copy to record."""
        captured.status = response.status
        captured.response_headers = _cookies_masked(
            {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in response.raw_headers}
        )
        streamed = is_event_stream(captured.response_headers)
        await send(
            {"type": "http.response.start", "status": response.status, "headers": _relayed_headers(response)}
        )
        kept = _Kept(limit=settings.MIGRATION_AUDIT_RECORD_MAX_BYTES, streamed=streamed)
        disconnected = asyncio.ensure_future(_wait_disconnect(receive)) if streamed else None
        try:
            async for chunk in _chunks(first_chunk, response.content):
                if captured.first_byte_ms is None:
                    captured.first_byte_ms = (time.perf_counter() - started) * 1000
                kept.add(chunk, at=(time.perf_counter() - started) * 1000)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if disconnected is not None and disconnected.done():
                    captured.error = "client disconnected mid-stream; upstream request cancelled"
                    break
            await send({"type": "http.response.body", "body": b""})
        except (aiohttp.ClientError, TimeoutError) as error:
            # The upstream cut the stream: end the client's stream the same way, and keep what came.
            captured.error = f"upstream connection lost mid-response: {connection_error_text(error)}"
            raise UpstreamDropped(captured.error) from None
        finally:
            response.close()
            if disconnected is not None:
                disconnected.cancel()
            kept.close(captured, at=(time.perf_counter() - started) * 1000)
            self._record(route, captured, started, status=captured.status)

    def _record(self, route: UpstreamRoute, captured: CapturedExchange, started: float, *, status) -> None:
        if route.recording_paused:
            return
        self._counter += 1
        if route.record_one_in > 1 and self._counter % route.record_one_in:
            return
        captured.status = status
        captured.duration_ms = (time.perf_counter() - started) * 1000
        self.recorder.submit(route.pk, captured)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.recorder.flush()
                await self.recorder.report()
                if self._client is not None:
                    await self._client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def proxy_via() -> str:
    """This install's Via entry (the same in every proxy process): a request that carries it
    already went through the proxy."""
    token = salted_hmac("migrations_audit.proxy.via", "loop", secret=settings.SECRET_KEY).hexdigest()[:16]
    return f"1.1 migration-audit-{token}"


def _went_through(scope, via: str) -> bool:
    pseudonym = via.split(" ", 1)[1].encode()
    return any(name.lower() == b"via" and pseudonym in value for name, value in scope["headers"])


def _stream_idle_timeout(response: aiohttp.ClientResponse) -> None:
    """Once an event stream's first chunk came (within the read timeout), its next chunks may be
    further apart than the reads of a non-streaming answer."""
    protocol = response.connection.protocol if response.connection is not None else None
    if protocol is not None and is_event_stream({"content-type": response.content_type}):
        protocol.read_timeout = settings.MIGRATION_AUDIT_PROXY_STREAM_IDLE_TIMEOUT
        protocol.start_timeout()  # counts from now, with the longer timeout


class _Kept:
    """What is recorded of a response as it streams to the client: its first `limit` bytes (and, for
    an event stream, the events parsed from them), so that memory stays bounded whatever the size."""

    def __init__(self, *, limit: int, streamed: bool):
        self.limit = limit
        self.size = 0
        self.chunks: list[bytes] = []
        self.truncated = False
        self.parser = SseParser() if streamed else None
        self.events: list[dict] = []

    def add(self, chunk: bytes, *, at: float) -> None:
        if self.truncated:
            return
        room = self.limit - self.size
        if len(chunk) > room:
            chunk, self.truncated = chunk[:room], True
        self.size += len(chunk)
        self.chunks.append(chunk)
        if self.parser is not None:
            self.events.extend(event.as_dict(t_ms=at) for event in self.parser.feed(chunk))

    def close(self, captured: CapturedExchange, *, at: float) -> None:
        captured.response_body = b"".join(self.chunks)
        self.chunks = []
        captured.truncated = self.truncated
        if self.parser is not None:
            if not self.truncated:  # an event cut at the limit is not an event the upstream sent
                self.events.extend(event.as_dict(t_ms=at) for event in self.parser.close())
            captured.response_events = self.events
            captured.streamed = True


class UpstreamDropped(Exception):
    pass


class RouteUnavailable(Exception):
    """An upstream's settings could not be read, and none were cached."""


def upstream_url(base_url: str, path: str, query: str) -> str | None:
    """The upstream URL for a proxied path as received (percent-encoded), or None if the result could
    leave the upstream's host or the path of its base URL (the proxy forwards only to configured
    upstreams: no open proxy, no SSRF). A `.` or `..` segment, even percent-encoded, is refused:
    an upstream that resolves it would serve a path above the base URL's."""
    decoded = unquote(path)
    if not path.startswith("/") or path.startswith("//") or "\\" in decoded:
        return None
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return None
    url = base_url + path + (f"?{query}" if query else "")
    try:
        target, base = httpx.URL(url), httpx.URL(base_url)
    except httpx.InvalidURL:
        return None
    if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
        return None
    return url


def _load_route(slug: str) -> UpstreamRoute | None:
    from django.db import close_old_connections

    close_old_connections()
    upstream = (
        Upstream.objects.filter(slug=slug)
        .only("pk", "slug", "base_url", "recording_paused", "record_one_in")
        .first()
    )
    if upstream is None:
        return None
    return UpstreamRoute(
        pk=upstream.pk,
        slug=upstream.slug,
        base_url=upstream.base_url.rstrip("/"),
        recording_paused=upstream.recording_paused,
        record_one_in=max(upstream.record_one_in, 1),
    )


class RequestRefused(Exception):
    """A request larger than the proxy accepts; `status` is the answer (413 or 431)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _check_headers(raw) -> None:
    """Refuse too many headers, one too large, or a header block too large (431)."""
    if len(raw) > settings.MIGRATION_AUDIT_MAX_HEADERS:
        raise RequestRefused(
            431, f"The request has more than {settings.MIGRATION_AUDIT_MAX_HEADERS} headers."
        )
    sizes = [len(name) + len(value) for name, value in raw]
    if max(sizes, default=0) > settings.MIGRATION_AUDIT_MAX_HEADER_BYTES:
        raise RequestRefused(
            431, f"A request header is larger than {settings.MIGRATION_AUDIT_MAX_HEADER_BYTES} bytes."
        )
    if sum(sizes) > settings.MIGRATION_AUDIT_MAX_HEADER_BLOCK_BYTES:
        raise RequestRefused(
            431,
            f"The request's headers are larger than {settings.MIGRATION_AUDIT_MAX_HEADER_BLOCK_BYTES} bytes.",
        )


def _received_path(scope) -> str:
    """The path as the client sent it: percent-encoding kept, so `%3F` is not a query nor `%2F` a
    slash for the upstream."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return quote(raw, safe=PATH_SAFE)


def _cookies_masked(headers: dict[str, str]) -> dict[str, str]:
    """Headers as recorded: the cookies, dropped on the way, stored masked whatever the settings."""
    return {name: MASK if name in ("cookie", "set-cookie") else value for name, value in headers.items()}


async def _request_body(scope, receive, send) -> bytes | None:
    """The request's body, or None once it was refused (the client got the error) or the client left."""
    try:
        # Refused before anything is read, forwarded or stored: no API client sends such headers.
        _check_headers(scope["headers"])
        return await _read_body(receive, limit=settings.MIGRATION_AUDIT_MAX_BODY_BYTES)
    except RequestRefused as refusal:
        await _send_error(send, refusal.status, "request_too_large", str(refusal))
        return None


def _relayed_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    headers = [
        (name, value)
        for name, value in response.raw_headers
        if name.decode("latin-1").lower() not in DROPPED_RESPONSE_HEADERS
    ]
    headers.extend(SECURITY_HEADERS)
    return headers


async def _read_body(receive, *, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, "The request body is larger than this proxy accepts.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _chunks(first: bytes, content: aiohttp.StreamReader):
    if first:
        yield first
    async for chunk in content.iter_any():
        yield chunk


async def _wait_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _decode_headers(raw) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def _send_error(send, status: int, error_type: str, message: str) -> None:
    await _send_body(send, status, error_body(error_type, message))


async def _send_json(send, status: int, payload: dict) -> None:
    await _send_body(send, status, json.dumps(payload).encode())


async def _send_body(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
