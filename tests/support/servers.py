"""Start real processes (servers, workers) for integration tests and stop them afterwards."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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
