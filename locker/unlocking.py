"""Authorise, commit, then pulse: the one way any door of this locker is opened.

`authorise()` writes an authorisation row (who, why, for which order), the door state
`unlocking` and the event, inside the caller's transaction. Only after that transaction has
committed may the caller `pulse()` the doors: pulse() sends every unlock at once and records, in a
transaction of its own, which the boards acknowledged and which failed (with an alarm).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from locker.clock import Clock
from locker.config import LockerConfig
from locker.errors import BoardOffline, HardwareError
from locker.model import OPEN_DOOR_STATES, DoorState
from locker.ports import LockDriver
from locker.store import Store, Tx

log = logging.getLogger("locker.unlocking")


@dataclass(frozen=True)
class Door:
    """One authorised door, as the screens show it."""

    compartment_id: str
    zone: str
    location: str
    authorisation: int
    order_id: str | None


def authorise(tx: Tx, config: LockerConfig, compartment_id: str, order_id: str | None,
              actor: str, reason: str) -> Door:
    """Record why this door is about to open. An earlier authorisation still waiting for this
    door is superseded (one opening answers one authorisation); a door already open is taken as
    opened for this one at once (the unlock is still sent: a broken cable can fake "open")."""
    compartment = config.compartment(compartment_id)
    row = tx.one("SELECT door FROM compartments WHERE id = ?", (compartment_id,))
    already_open = row is not None and row["door"] in OPEN_DOOR_STATES
    tx.execute("UPDATE authorisations SET outcome = 'superseded' WHERE compartment_id = ?"
               " AND outcome IS NULL", (compartment_id,))
    auth_id = tx.insert("authorisations", {
        "compartment_id": compartment_id, "order_id": order_id, "actor": actor,
        "reason": reason, "created_at": tx.now, "sent_at": tx.now,
        "seen_open_at": tx.now if already_open else None,
        "outcome": "opened" if already_open else None,
    })
    if already_open:
        tx.execute("UPDATE compartments SET door = ? WHERE id = ?",
                   (DoorState.OPEN.value, compartment_id))
        if order_id is not None:
            tx.execute("UPDATE order_compartments SET opened_at = ? WHERE order_id = ?"
                       " AND compartment_id = ? AND opened_at IS NULL",
                       (tx.now, order_id, compartment_id))
    else:
        tx.execute("UPDATE compartments SET door = ?, door_changed_at = ? WHERE id = ?",
                   (DoorState.UNLOCKING.value, tx.now, compartment_id))
    tx.emit("door.unlock", "door", compartment_id=compartment_id, order_id=order_id,
            actor=actor, reason=reason, authorisation=auth_id, already_open=already_open)
    return Door(compartment_id, compartment.zone.value, compartment.location, auth_id, order_id)


async def pulse(store: Store, driver: LockDriver, clock: Clock, doors: Sequence[Door],
                publish: Callable[[Tx], None]) -> tuple[list[Door], list[Door]]:
    """Unlock every door together (their authorisations are committed); (opened, failed)."""
    outcomes = await asyncio.gather(*(driver.unlock(d.compartment_id) for d in doors),
                                    return_exceptions=True)
    opened: list[Door] = []
    failed: list[Door] = []
    with store.transaction(clock.now()) as tx:
        for door, outcome in zip(doors, outcomes, strict=True):
            cid = door.compartment_id
            if not isinstance(outcome, BaseException):
                opened.append(door)
                tx.execute("UPDATE authorisations SET acked_at = ? WHERE id = ?",
                           (tx.now, door.authorisation))
                continue
            if not isinstance(outcome, HardwareError):
                log.error("unlock of %s failed unexpectedly", cid, exc_info=outcome)
            failed.append(door)
            # refused at once by an offline board: never sent. Anything else (no answer, a lost
            # port, a refusal after the frame went out) may have pulsed the lock: if the door
            # opens soon, that opening answers this authorisation.
            never_sent = isinstance(outcome, BoardOffline)
            tx.execute("UPDATE authorisations SET outcome = ? WHERE id = ? AND outcome IS NULL",
                       ("failed" if never_sent else "unconfirmed", door.authorisation))
            tx.execute("UPDATE compartments SET door = ? WHERE id = ? AND door = ?",
                       (DoorState.LOCKED.value, cid, DoorState.UNLOCKING.value))
            tx.emit("door.unlock_failed", "door", compartment_id=cid, order_id=door.order_id,
                    authorisation=door.authorisation, error=str(outcome))
            tx.raise_alarm("unlock_failed", cid, f"compartment {cid} did not unlock: {outcome}")
    publish(tx)
    return opened, failed
