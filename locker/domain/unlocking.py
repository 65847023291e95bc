"""Authorise, commit, then pulse: the one way any door of this locker is opened.

locker.domain.lifecycle.door.authorise() writes the authorisation (who, why, for which order) inside
the caller's transaction. Only after that transaction has committed may the caller `pulse()` the
doors: pulse() sends every unlock at once and records, in a transaction of its own, what the
boards answered. An unlock that went unanswered may still have pulsed its lock: the answer waits
briefly for the door itself, since an opening seen is the only proof there is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from locker.domain.clock import Clock
from locker.domain.errors import BoardOffline, HardwareError
from locker.domain.lifecycle import door as door_life
from locker.domain.lifecycle import records
from locker.domain.lifecycle.door import Door
from locker.domain.lifecycle.table import AuthState
from locker.domain.ports import LockDriver
from locker.domain.store import Store

log = logging.getLogger("locker.unlocking")
SENSOR_WAIT_S = 1.5  # how long an unanswered unlock waits for its door before it counts as failed
SENSOR_POLL_S = 0.05

__all__ = ["Door", "pulse"]


async def pulse(store: Store, driver: LockDriver, clock: Clock, doors: Sequence[Door]
                ) -> tuple[list[Door], list[Door]]:
    """Unlock every door together (their authorisations are committed); (opened, failed)."""
    outcomes = await asyncio.gather(*(driver.unlock(d.compartment_id) for d in doors),
                                    return_exceptions=True)
    unanswered: list[tuple[Door, BaseException]] = []
    with store.transaction(clock.now()) as tx:
        for door, outcome in zip(doors, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                door_life.acknowledged(tx, door)
                continue
            if not isinstance(outcome, HardwareError):
                log.error("unlock of %s failed unexpectedly", door.compartment_id,
                          exc_info=outcome)
            if isinstance(outcome, BoardOffline):  # refused at once: the lock was not pulsed
                door_life.not_acknowledged(tx, door, str(outcome), never_sent=True)
            else:
                unanswered.append((door, outcome))
    if unanswered:
        await _wait_for_doors(store, clock, [door for door, _ in unanswered])
        with store.transaction(clock.now()) as tx:
            for door, outcome in unanswered:
                door_life.not_acknowledged(tx, door, str(outcome), never_sent=False)
    opened: list[Door] = []
    failed: list[Door] = []
    read = store.read()
    for door in doors:
        auth = records.authorisation(read, door.authorisation)
        state = auth.state if auth is not None else AuthState.FAILED
        (opened if state in (AuthState.ACKED, AuthState.OPENED) else failed).append(door)
    return opened, failed


async def _wait_for_doors(store: Store, clock: Clock, doors: Sequence[Door]) -> None:
    """Until each of these doors is seen open, or SENSOR_WAIT_S has passed."""
    deadline = clock.monotonic() + SENSOR_WAIT_S
    while clock.monotonic() < deadline:
        read = store.read()
        if all((auth := records.authorisation(read, d.authorisation)) is not None
               and auth.state is AuthState.OPENED for d in doors):
            return
        await clock.sleep(SENSOR_POLL_S)
