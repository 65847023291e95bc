"""One source of time for the whole daemon, so a test can run a day in seconds.

`now()` is wall-clock time (epoch seconds, what events and pickup windows use); `monotonic()` is for
measuring durations; `sleep()` waits. The real clock wraps time and asyncio; the simulated clock
only moves when told to (or when every sleeper is waiting on it, see `SimClock.run_until`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """Wall time from `time.time`, durations from `time.monotonic`, sleeps from asyncio."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimClock:
    """A clock that moves only when `advance()` is called; sleepers wake in deadline order.

    `step()` moves the wall clock alone, as NTP or a person setting the date does: durations
    (monotonic time, the sleepers) do not move.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._mono = 0.0
        self._offset = start  # wall = offset + monotonic
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        return self._offset + self._mono

    def monotonic(self) -> float:
        return self._mono

    def step(self, seconds: float) -> None:
        """The wall clock jumps by `seconds` (either way); monotonic time does not."""
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + max(0.0, seconds), next(self._counter),
                                        future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline, in order."""
        for _ in range(3):  # tasks just created reach their first sleep
            await asyncio.sleep(0)
        target = self._mono + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._mono = max(self._mono, deadline)
            if not future.done():
                future.set_result(None)
            # let the woken task run (and perhaps sleep again) before the next deadline
            for _ in range(3):
                await asyncio.sleep(0)
        self._mono = target
