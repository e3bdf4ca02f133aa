"""The emulator as an ASGI application (no framework: it must never be the bottleneck).

Adds to `core.respond` what only a server can do: latency, dropped connections, server-wide fault
rates, and /_emulator/stats so tests can see what reached the upstream and when.
"""

import asyncio
import json
import logging
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from .compression import CODINGS, Encoder, coding_for
from .core import FAULTS, ApiError, EmulatorOptions, error_response, respond

logger = logging.getLogger(__name__)
MAX_DELAY_MS = 600_000.0


class DroppedConnection(Exception):
    """Raised inside the ASGI app to make the server cut the connection, as a failing upstream does."""


@dataclass
class ServerOptions:
    core: EmulatorOptions = field(default_factory=EmulatorOptions)
    first_token_delay_ms: float = 0.0
    event_delay_ms: float = 0.0
    fault_rates: dict[str, float] = field(default_factory=dict)
    # Codings to compress answers with, in order of preference, when the request accepts one.
    compress: tuple[str, ...] = ()
    # Compress event streams too (each event flushed); by default only JSON answers are.
    compress_streams: bool = False


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.started = time.time()
        self.by_path: Counter = Counter()
        self.by_status: Counter = Counter()
        self.recent: deque = deque(maxlen=20_000)
        self.fault_counts: Counter = Counter()
        self.open_streams = 0
        self.max_open_streams = 0

    def stream_opened(self):
        self.open_streams += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)

    def stream_closed(self):
        self.open_streams -= 1

    def record(self, path: str, version: str | None, status: int, at: float, key_header: str | None):
        self.by_path[path] += 1
        self.by_status[str(status)] += 1
        self.recent.append(
            {"t": at, "path": path, "version": version, "status": status, "key_header": key_header}
        )

    def as_dict(self) -> dict:
        return {
            "since": self.started,
            "requests": sum(self.by_path.values()),
            "by_path": dict(self.by_path),
            "by_status": dict(self.by_status),
            "open_streams": self.open_streams,
            "max_open_streams": self.max_open_streams,
            "recent": list(self.recent),
        }


async def _send_whole(response, send) -> None:
    """A response that is not streamed, or its first half when a dropped connection is emulated."""
    if response.drop_after is not None:
        await send(
            {
                "type": "http.response.body",
                "body": response.body[: len(response.body) // 2],
                "more_body": True,
            }
        )
        raise DroppedConnection("emulated connection drop")
    await send({"type": "http.response.body", "body": response.body})


class EmulatorApp:
    def __init__(self, options: ServerOptions | None = None):
        self.options = options or ServerOptions()
        self.stats = Stats()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith("/_emulator/"):
            await self._control(scope, path, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        body, too_large = await _read_body(receive, self.options.core.max_body_bytes)
        arrived = time.time()
        try:
            fault = self._fault_for(headers)
            query = scope.get("query_string", b"").decode("latin-1")
            response = respond(
                scope["method"],
                f"{path}?{query}" if query else path,
                headers,
                body,
                options=self._core_options(headers),
                fault=fault,
                body_too_large=too_large,
            )
        except ApiError as error:
            fault, response = None, error_response(error)
        except Exception:
            # A bug of ours still answers in the API's shape, so a client sees an api_error, not a
            # bare "Internal Server Error" without a request-id.
            logger.exception("emulator failed on %s %s", scope["method"], path)
            fault, response = None, error_response(ApiError(500, "api_error", "Internal server error"))
        self.stats.record(
            path, headers.get("anthropic-version"), response.status, arrived, _key_header(headers)
        )
        first_delay = _header_float(
            headers, "x-emulator-first-token-delay-ms", self.options.first_token_delay_ms
        )
        event_delay = _header_float(headers, "x-emulator-event-delay-ms", self.options.event_delay_ms)
        if fault == "drop" and not response.streamed:
            response.drop_after = 0
        encoder = self._encoder(headers, response)
        if encoder is not None and not response.streamed:
            response.body = encoder.whole(response.body)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": _encoded_headers(response),
            }
        )
        if first_delay:
            await asyncio.sleep(first_delay / 1000)
        if response.streamed:
            await self._send_events(response, event_delay, receive, send, encoder)
        else:
            await _send_whole(response, send)

    async def _send_events(self, response, event_delay: float, receive, send, encoder) -> None:
        # A slow stream stops when its client leaves, as the real API stops generating; without a
        # delay the stream is over before a watcher would notice, so none is started.
        left = asyncio.ensure_future(_disconnected(receive)) if event_delay else None
        self.stats.stream_opened()
        try:
            for index, event in enumerate(response.events):
                if response.drop_after is not None and index >= response.drop_after:
                    raise DroppedConnection("emulated connection drop mid-stream")
                if index and event_delay:
                    await asyncio.sleep(event_delay / 1000)
                    if left.done():
                        return
                if encoder is not None:
                    event = encoder.piece(event)
                await send({"type": "http.response.body", "body": event, "more_body": True})
            end = encoder.finish() if encoder is not None else b""
            await send({"type": "http.response.body", "body": end})
        finally:
            self.stats.stream_closed()
            if left is not None:
                left.cancel()

    def _encoder(self, headers, response) -> Encoder | None:
        """An encoder when compression is on (option or header) and the client accepts a coding of
        it; its Content-Encoding is then added to the answer's headers."""
        asked = tuple(
            coding
            for coding in (c.strip().lower() for c in headers.get("x-emulator-compress", "").split(","))
            if coding in CODINGS
        )
        preferred = asked or self.options.compress
        streams = self.options.compress_streams or _truthy(headers.get("x-emulator-compress-streams"))
        if not preferred or (response.streamed and not streams):
            return None
        content_type = dict(response.headers).get("content-type", "")
        if not response.streamed and "json" not in content_type:
            return None
        coding = coding_for(preferred, headers.get("accept-encoding", ""))
        if coding is None:
            return None
        response.headers = [
            *response.headers,
            ("content-encoding", coding),
            ("vary", "accept-encoding"),
        ]
        return Encoder(coding)

    def _core_options(self, headers) -> EmulatorOptions:
        """The server's options, with what the per-request headers switch on."""
        switched = {
            option: True
            for option, header in (
                ("vary", "x-emulator-vary"),
                ("pad_stream_json", "x-emulator-pad-stream-json"),
            )
            if headers.get(header, "").lower() in ("1", "true", "yes")
        }
        if switched:
            return EmulatorOptions(**{**self.options.core.__dict__, **switched})
        return self.options.core

    def _fault_for(self, headers) -> str | None:
        """The header's fault (optionally only the first N times per x-emulator-fault-key), else a rate."""
        fault = headers.get("x-emulator-fault", "").strip().lower()
        if fault in FAULTS:
            times = headers.get("x-emulator-fault-times")
            if times is None:
                return fault
            try:
                times = int(times)
            except ValueError:
                raise ApiError(
                    400, "invalid_request_error", "x-emulator-fault-times: Input should be a valid integer"
                ) from None
            key = (headers.get("x-emulator-fault-key", ""), fault)
            self.stats.fault_counts[key] += 1
            return fault if self.stats.fault_counts[key] <= times else None
        for name, rate in self.options.fault_rates.items():
            if rate and random.random() < rate:
                return name
        return None

    async def _control(self, scope, path, send):
        if path == "/_emulator/stats":
            payload = self.stats.as_dict()
        elif path == "/_emulator/reset" and scope["method"] == "POST":
            self.stats.reset()
            payload = {"reset": True}
        else:
            payload = {"error": "unknown control path"}
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if "error" not in payload else 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), size > limit


def _encoded_headers(response) -> list[tuple[bytes, bytes]]:
    headers = [(name.encode(), value.encode()) for name, value in response.headers]
    if not response.streamed:
        # As the real API: a JSON answer has a length (and uvicorn then needs no chunked encoding).
        headers.append((b"content-length", str(len(response.body)).encode()))
    return headers


def _key_header(headers) -> str | None:
    """Which header carried the key (x-api-key wins, as in the API), so tests see what a client sent."""
    if headers.get("x-api-key", "").strip():
        return "x-api-key"
    return "authorization" if headers.get("authorization", "").strip() else None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _header_float(headers, name, default: float) -> float:
    """A delay header in ms; one that is not a finite number is ignored, and it is capped at 10 min."""
    try:
        value = float(headers[name]) if name in headers else default
    except ValueError:
        return default
    return min(max(value, 0.0), MAX_DELAY_MS) if math.isfinite(value) else default
