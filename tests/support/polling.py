"""Waiting in tests for something a background thread, task or process does."""

import asyncio
import time


async def wait_until(condition, timeout: float = 10.0):
    """Poll ``condition`` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def wait_for(condition, timeout: float, what: str = "condition not met", interval: float = 0.1):
    """Poll ``condition()`` (in the test's own thread) until it returns something truthy; return
    that, or fail saying ``what`` once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(interval)
