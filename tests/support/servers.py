"""Start real processes (servers, workers) for integration tests and stop them afterwards."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The two listeners, each on an origin of its own: the dashboard and API, and the recording proxy.
DASHBOARD_APP = "dashboard.asgi:application"
PROXY_APP = "dashboard.asgi:proxy_application"


def uvicorn_args(app: str, port: int, *extra: str) -> list[str]:
    """The Procfile's uvicorn command line for `app` on `port`, as `running` takes it."""
    return [
        *("-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
        *("--http", "dashboard.server:HttpProtocol", "--timeout-keep-alive", "5"),
        *extra,
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, *, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError as error:
            last_error = error
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last_error}")


@contextmanager
def running(
    args: list[str], *, env: dict | None = None, ready_url: str | None = None, timeout: float = 30, log=None
):
    """Run `args` (a Python module command line) from the project root until the block ends; `log`,
    an open file, receives its output."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
    )
    try:
        if ready_url:
            wait_for_http(ready_url, timeout=timeout, process=process)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen, *, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class TcpForwarder:
    """A local port that forwards every connection to `target`, for taking a server away from a
    process without stopping the server: `cut()` resets the open connections and refuses new ones,
    as a database host that went down would; `restore()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> "TcpForwarder":
        self.restore()
        return self

    def __exit__(self, *exc) -> None:
        self.cut()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            _shut(self._listener)  # wakes the accepting thread; the port now refuses connections
            self._listener = None
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            # SO_LINGER 0: close with a reset, not a polite FIN, like a host that vanished.
            with suppress(OSError):  # unless its pump closed it meanwhile
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            _shut(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.difference_update((source, sink))
            _shut(source)
            _shut(sink)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def resetting_server():
    """An HTTP address whose server reads each request and then resets the connection without a
    byte of answer, as a crashing upstream or a middlebox would. Yields its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with suppress(OSError):
                conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        _shut(listener)


@dataclass
class EchoServer:
    """What `echo_server` received: each request as it came on the wire, and the connections made."""

    url: str
    requests: list[dict] = field(default_factory=list)
    connections: int = 0


@contextmanager
def echo_server(*, set_cookie: str = ""):
    """An HTTP upstream that answers every request with what it received, as JSON: the method, the
    target exactly as sent (path and query), the headers and the body; with a `Set-Cookie` header if
    `set_cookie` is given. Yields an EchoServer whose lists fill as requests arrive."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            echo.connections += 1
            super().setup()

        def answer(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            received = {
                "method": self.command,
                "target": self.path,
                "headers": [[name.lower(), value] for name, value in self.headers.items()],
                "body": body.decode("latin-1"),
            }
            echo.requests.append(received)
            payload = json.dumps(received).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            if set_cookie:
                self.send_header("set-cookie", set_cookie)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = answer

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    echo = EchoServer(url=f"http://127.0.0.1:{server.server_address[1]}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield echo
    finally:
        server.shutdown()
        server.server_close()
