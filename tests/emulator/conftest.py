"""A real emulator process per module, and helpers to talk to it over loopback HTTP."""

from contextlib import contextmanager

import httpx
import pytest

from tests.support.servers import free_port, running

KEY = "sk-ant-emulator-tests"


@contextmanager
def emulator_running(*options: str):
    """Start `python -m migrations_audit.emulator` with `options`; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        ["-m", "migrations_audit.emulator", "--port", str(port), *options], ready_url=f"{url}/_emulator/stats"
    ):
        yield url


@pytest.fixture(scope="module")
def emulator():
    with emulator_running() as url:
        yield url


@pytest.fixture
def http(emulator):
    with httpx.Client(base_url=emulator, timeout=30) as client:
        yield client


def api_headers(version: str, **extra: str) -> dict[str, str]:
    return {"x-api-key": KEY, "anthropic-version": version, "content-type": "application/json", **extra}


def stats(url: str) -> dict:
    return httpx.get(f"{url}/_emulator/stats", timeout=10).json()


def reset(url: str) -> None:
    httpx.post(f"{url}/_emulator/reset", timeout=10).raise_for_status()


COMPLETE = {
    "model": "claude-2.1",
    "prompt": "\n\nHuman: Tell me about foxes.\n\nAssistant:",
    "max_tokens_to_sample": 300,
}
MESSAGE = {
    "model": "claude-haiku-4-5",
    "max_tokens": 300,
    "messages": [{"role": "user", "content": "Tell me about foxes."}],
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather at a place",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["location"],
    },
}
