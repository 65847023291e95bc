"""Requests that waited do nothing: when each request arrived, and the deadline to act on it.

A customer who typed a code and gave up must not find a door opening behind them 40 s later,
and neither must a courier or a technician. Two clocks say how long a request waited:

- the screen's own: the kiosk and the courier page send `X-Asked-At` (milliseconds since the
  epoch, on the locker's clock, which they learn from /api/kiosk), so time lost on the way in
  counts;
- the daemon's: a watch task ticks every quarter second; a request handled during or just after
  a stall of the loop (the process frozen, the CPU starved) may have waited since it began.

The deadline goes to the use cases through locker.domain.deadline, and each checks it right before
it commits what opens a door or spends a code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from api.common import LOCKER, problem
from locker.domain.deadline import ACTING_DEADLINE

TICK_S = 0.25
STALL_S = 1.0  # a loop this late has been stalled: its requests may have waited since
AFTER_STALL_S = 1.0  # requests handled this soon after a stall may have come in during it


class LoopWatch:
    """Notes when the event loop last ran on time, and its last stall (real time: a stall is a
    real one). A request read from its socket just after a stall may have sat there since the
    stall began: the kernel accepted it while the daemon could not run."""

    def __init__(self) -> None:
        self.last_tick = time.monotonic()
        self.stall: tuple[float, float] | None = None  # (began, ended)

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            if now - self.last_tick > STALL_S:
                self.stall = (self.last_tick, now)
            self.last_tick = now
            await asyncio.sleep(TICK_S)

    def waited_s(self) -> float:
        """How long a request handled now may have waited, as far as the loop knows."""
        now = time.monotonic()
        if now - self.last_tick > STALL_S:
            return now - self.last_tick  # stalled until just now; the watch has not run yet
        if self.stall is not None and now - self.stall[1] < AFTER_STALL_S:
            return now - self.stall[0]
        return 0.0


WATCH = web.AppKey("loop_watch", LoopWatch)


def asked_age_s(request: web.Request) -> float | None:
    """How long ago the screen sent this request, by its X-Asked-At; None without one."""
    header = request.headers.get("X-Asked-At")
    if header is None:
        return None
    try:
        asked_ms = float(header)
    except ValueError:
        return None
    if asked_ms != asked_ms or asked_ms <= 0:  # NaN, or nothing sensible
        return None
    return time.time() - asked_ms / 1000.0


@web.middleware
async def act_in_time(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """Every POST to the API gets a deadline; one already past it is refused, doing nothing."""
    if request.method != "POST" or not request.path.startswith("/api/"):
        return await handler(request)
    locker = request.app[LOCKER]
    stale_s = locker.config.http.stale_request_s
    waited = max(request.app[WATCH].waited_s() if WATCH in request.app else 0.0,
                 asked_age_s(request) or 0.0)
    if waited > stale_s:
        return problem(408, "stale_request", f"this request waited {waited:.0f} s before the"
                       " locker could act on it, so nothing was done; if you are still here,"
                       " please try again")
    # on the locker's own clock, which the use cases read
    token = ACTING_DEADLINE.set(locker.clock.monotonic() + stale_s - waited)
    try:
        return await handler(request)
    finally:
        ACTING_DEADLINE.reset(token)


def add_loop_watch(app: web.Application) -> None:
    watch = LoopWatch()
    app[WATCH] = watch

    async def watching(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(watch.run(), name="loop watch")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(watching)
