"""Waiting on a condition with a deadline, never a fixed sleep: a slow machine waits longer, a fast
one goes on at once, and a condition that never comes fails the test with what was awaited."""

import asyncio
import time


def wait_until(predicate, *, timeout: float = 30, message: str = "condition", interval: float = 0.05):
    """Call `predicate` until it returns something truthy, and return that; fail after `timeout`
    seconds with `message`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {message}")
        time.sleep(interval)


async def async_wait_until(
    predicate, *, timeout: float = 10, message: str = "condition", interval: float = 0.01
):
    """`wait_until` inside an event loop: the loop keeps running while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {message}")
        await asyncio.sleep(interval)
