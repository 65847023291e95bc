"""A request acted on late does nothing: a person who gave up must not find a door opening
behind them.

The local app sets `ACTING_DEADLINE` (monotonic time) for each request from the moment it
arrived; a use case calls `check()` right before it commits anything that opens a door or spends
a code, so a request that waited (the daemon frozen, the store busy, a slow network) is refused
with nothing done. Central's commands carry their own expiry and set no deadline.
"""

from __future__ import annotations

from contextvars import ContextVar

from locker.domain.clock import Clock
from locker.domain.errors import Refused

ACTING_DEADLINE: ContextVar[float | None] = ContextVar("acting_deadline", default=None)


class StaleRequest(Refused):
    """The request could not be acted on in time; nothing was done."""


def check(clock: Clock) -> None:
    deadline = ACTING_DEADLINE.get()
    if deadline is None:
        return
    late_s = clock.monotonic() - deadline
    if late_s > 0:
        raise StaleRequest("stale_request", "this request waited too long before the locker"
                           " could act on it, so nothing was done; if you are still here,"
                           " please try again")
