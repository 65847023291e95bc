"""Waiting for something a test cannot await: a check polled until it holds, or a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], Any], timeout_s: float = 10.0, poll_s: float = 0.05) -> None:
    """Poll `check` (a function or a coroutine function) until it returns something true;
    TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not (await check() if asyncio.iscoroutinefunction(check) else check()):
            await asyncio.sleep(poll_s)
