"""A tiny upstream API on loopback that answers every request the same way and keeps what it got, for
tests that check what a replay sends and how its answer is stored."""

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    target: str  # path and query string, as sent
    headers: dict[str, str]
    body: bytes


@dataclass
class FixedUpstream:
    url: str
    received: list[Received] = field(default_factory=list)


@contextmanager
def fixed_upstream(*, headers: list[tuple[str, str]], body: bytes, status: int = 200):
    """Serve `status`, `headers` and `body` to every request until the block ends."""
    upstream = FixedUpstream(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            upstream.received.append(
                Received(
                    method=self.command,
                    target=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    upstream.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
