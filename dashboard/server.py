"""Guards of both HTTP listeners (dashboard and proxy) against slow and oversized requests.

uvicorn times out only idle keep-alive connections and lets httptools buffer a header of any size,
so a client that dribbled its headers held a connection forever and a 20 MB header was read whole.
`HttpProtocol` (`uvicorn --http dashboard.server:HttpProtocol`, as the Procfile runs it) is uvicorn's
httptools protocol plus a deadline and a size cap on each request's header block; `body_deadline`
wraps an ASGI application with a deadline on reading each request's body. Both answer in the API's
error shape and close the connection.

This module is imported by uvicorn before the application: it reads Django's settings lazily and
imports no model.
"""

import asyncio
import json

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Room for the request line (method, path and query) on top of the header block.
REQUEST_LINE_BYTES = 16 * 1024
# What the servers themselves answer must not run as a page either (the proxy adds the same headers).
SECURITY_HEADERS = ((b"content-security-policy", b"sandbox"), (b"x-content-type-options", b"nosniff"))
REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
# Each byte of a body received buys the client this much more time: an upload that keeps coming at
# 16 KB/s or more is never cut off (a large HAR file over a slow link), one dribbled byte by byte is.
BODY_SECONDS_PER_BYTE = 1 / (16 * 1024)


def error_body(error_type: str, message: str) -> bytes:
    """An error in the shape the Anthropic API gives it."""
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()


class HttpProtocol(HttpToolsProtocol):
    """httptools' protocol, with a deadline and a size cap on each request's header block."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = settings.MIGRATION_AUDIT_HEADER_TIMEOUT
        self.header_limit = settings.MIGRATION_AUDIT_MAX_HEADER_BLOCK_BYTES + REQUEST_LINE_BYTES
        self.reading_headers = True
        self.header_bytes = 0
        self.header_clock: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_header_clock()  # a client that connects and sends nothing is on the clock too

    def connection_lost(self, exc) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.reading_headers and self.header_clock is None:
            self._start_header_clock()
        super().data_received(data)
        # Counted once parsed, so that a chunk holding the end of the headers and some body is not.
        if self.reading_headers and not self.transport.is_closing():
            self.header_bytes += len(data)
            if self.header_bytes > self.header_limit:
                self._refuse(
                    431, "request_too_large", "The request's headers are larger than this server accepts."
                )

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        self.header_bytes = 0
        self._stop_header_clock()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_headers = True  # the next request's headers go on the clock at their first byte

    def _start_header_clock(self) -> None:
        self._stop_header_clock()
        self.header_clock = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self.header_clock is not None:
            self.header_clock.cancel()
            self.header_clock = None

    def _headers_too_slow(self) -> None:
        self.header_clock = None
        self._refuse(408, "invalid_request_error", "The request's headers did not arrive in time.")

    def _refuse(self, status: int, error_type: str, message: str) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # never inside another answer
            body = error_body(error_type, message)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ]
            head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            self.transport.write(f"HTTP/1.1 {status} {REASONS[status]}\r\n".encode() + head + b"\r\n" + body)
        self.transport.close()


def body_deadline(app, *, seconds: float):
    """`app`, with `seconds` to read each request's body from when its headers arrived, plus the time
    each received byte buys: past that the client is answered 408 and disconnected, and the
    application is told the client went away."""

    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + seconds
        body_read = started = timed_out = False

        async def timed_receive():
            nonlocal body_read, timed_out, deadline
            if body_read:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                if not started and not timed_out:
                    timed_out = True
                    await _send_timeout(send)
                return {"type": "http.disconnect"}
            body_read = message["type"] != "http.request" or not message.get("more_body", False)
            deadline += len(message.get("body", b"")) * BODY_SECONDS_PER_BYTE
            return message

        async def guarded_send(message):
            nonlocal started
            if timed_out:
                return  # the client was answered 408 and is being disconnected
            started = started or message["type"] == "http.response.start"
            await send(message)

        await app(scope, timed_receive, guarded_send)

    return guarded


async def _send_timeout(send) -> None:
    body = error_body("invalid_request_error", "The request's body did not arrive in time.")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})
