"""Stopping the daemon's background loops: cancel them all first, then wait for each, so that one
slow to stop does not keep the others running meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel every task and wait for it; what a loop raised on its way out is not ours to keep."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
