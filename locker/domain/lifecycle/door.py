"""A door's life: authorised, pulsed, seen open, seen closed; jammed, forced, interrupted.

Every authorisation to open a door is written here (who, why, for which order) inside the caller's
transaction, and only once that has committed may the lock be pulsed (locker.domain.unlocking). What
the boards answer and what the sensors see come back here, and the door is the truth: an opening
seen for an authorisation counts, whatever the acknowledgement said. An authorisation that a restart
finds unanswered is never pulsed again; the order it was for finds its way back in
locker.domain.lifecycle.order.settle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from locker.domain.config import LockerConfig
from locker.domain.lifecycle import records
from locker.domain.lifecycle.records import Authorisation
from locker.domain.lifecycle.table import LATE_OPENING, WAITING, AuthState, Kind, move, next_state
from locker.domain.model import OPEN_DOOR_STATES, DoorState, OrderState
from locker.domain.store import Tx

log = logging.getLogger("locker.doors")

# an opening this long after a jam (or a lost acknowledgement, or a restart) is still taken as
# the late answer to that unlock
LATE_OPEN_GRACE_S = 300.0
# the states in which an order's doors are being opened and closed for one purpose
PHASES = (OrderState.ALLOCATED.value, OrderState.COLLECTING.value, OrderState.RECLAIMING.value)
_IN_PHASE = ", ".join(f"'{state}'" for state in PHASES)


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
    row = records.compartment(tx, compartment_id)
    assert row is not None, compartment_id
    already_open = row.door.value in OPEN_DOOR_STATES
    for auth in records.unsettled_authorisations(tx, compartment_id):
        _auth_move(tx, auth, "supersede")
    auth_id = tx.insert("authorisations", {
        "compartment_id": compartment_id, "order_id": order_id, "actor": actor,
        "reason": reason, "created_at": tx.now, "sent_at": tx.now,
    })
    if already_open:
        fresh = records.authorisation(tx, auth_id)
        assert fresh is not None
        _auth_move(tx, fresh, "opened", seen_open_at=tx.now)
        if order_id is not None:
            _link_opened(tx, order_id, compartment_id, reason)
    move(tx, Kind.DOOR, compartment_id, row.door, "unlock")
    tx.emit("door.unlock", "door", compartment_id=compartment_id, order_id=order_id,
            actor=actor, reason=reason, authorisation=auth_id, already_open=already_open)
    return Door(compartment_id, compartment.zone.value, compartment.location, auth_id, order_id)


def acknowledged(tx: Tx, door: Door) -> None:
    """The board acknowledged the pulse (the door may still be seen open before or after)."""
    auth = records.authorisation(tx, door.authorisation)
    if auth is not None:
        _auth_move(tx, auth, "ack", acked_at=tx.now)


def not_acknowledged(tx: Tx, door: Door, error: str, *, never_sent: bool) -> bool:
    """The pulse got no acknowledgement. Refused at once by an offline board, it was never sent;
    otherwise (no answer, a lost port) it may have pulsed the lock, and if the door opens soon
    that opening answers this authorisation. True when the door counts as not opened."""
    auth = records.authorisation(tx, door.authorisation)
    if auth is None:
        return False
    settled = _auth_move(tx, auth, "never_sent" if never_sent else "no_ack")
    if settled not in (AuthState.FAILED, AuthState.UNCONFIRMED):
        return False  # seen open already, or replaced: the door answered
    cid = door.compartment_id
    row = records.compartment(tx, cid)
    if row is not None and row.door is DoorState.UNLOCKING:
        move(tx, Kind.DOOR, cid, row.door, "unlock_failed")
    tx.emit("door.unlock_failed", "door", compartment_id=cid, order_id=door.order_id,
            authorisation=door.authorisation, error=error)
    tx.raise_alarm("unlock_failed", cid, f"compartment {cid} did not unlock: {error}")
    return True


def interrupt(tx: Tx, auth: Authorisation) -> bool:
    """An authorisation that may or may not have pulsed its lock: never pulse it again."""
    current = records.authorisation(tx, auth.id)
    if current is None or current.state not in WAITING:
        return False
    _auth_move(tx, current, "interrupt")
    row = records.compartment(tx, auth.compartment_id)
    if row is not None and row.door is DoorState.UNLOCKING:
        move(tx, Kind.DOOR, auth.compartment_id, row.door, "interrupt")
    tx.emit("door.unlock_interrupted", "door", compartment_id=auth.compartment_id,
            order_id=auth.order_id, authorisation=auth.id, actor=auth.actor, reason=auth.reason)
    return True


def open_timeout(tx: Tx, auth: Authorisation) -> bool:
    """Acknowledged but never seen open: the door is jammed (alarm). False if it moved on."""
    current = records.authorisation(tx, auth.id)
    if current is None or current.state is not AuthState.ACKED:
        return False
    _auth_move(tx, current, "open_timeout")
    cid = auth.compartment_id
    row = records.compartment(tx, cid)
    if row is not None and row.door is DoorState.UNLOCKING:
        move(tx, Kind.DOOR, cid, row.door, "open_timeout")
    tx.emit("door.jammed", "door", compartment_id=cid, order_id=auth.order_id,
            authorisation=auth.id)
    tx.raise_alarm("door_jammed", cid,
                   f"compartment {cid} was unlocked but never opened: check its latch, its door"
                   " and its door switch")
    return True


@dataclass(frozen=True)
class Opening:
    """An opening seen, and the authorisation it answered (in the state it was in)."""

    authorisation: Authorisation
    was: AuthState


def seen_open(tx: Tx, config: LockerConfig, cid: str) -> Opening | None:
    """The sensor says open: an opening that answers an authorisation, or a forced door
    (None)."""
    row = records.compartment(tx, cid)
    if row is None or row.door.value in OPEN_DOOR_STATES:
        return None
    auth = _answered_by_opening(tx, config, cid)
    if auth is None:
        move(tx, Kind.DOOR, cid, row.door, "forced")
        tx.emit("door.forced", "door", compartment_id=cid)
        tx.raise_alarm("door_forced", cid,
                       f"compartment {cid} opened without any authorisation: check the door for"
                       " damage and its contents")
        log.error("compartment %s forced open", cid)
        return None
    was = auth.state
    _auth_move(tx, auth, "opened", seen_open_at=tx.now)
    for other in records.unsettled_authorisations(tx, cid):
        _auth_move(tx, other, "supersede")
    # the lock works: whatever its acknowledgement said or an earlier try did, the door opened
    tx.clear_alarm("door_jammed", cid, f"compartment {cid} opened after all")
    tx.clear_alarm("unlock_failed", cid, f"compartment {cid} opened")
    move(tx, Kind.DOOR, cid, row.door, "opened")
    tx.emit("door.opened", "door", compartment_id=cid, order_id=auth.order_id,
            actor=auth.actor, reason=auth.reason, authorisation=auth.id,
            **({"late": was.value} if was in LATE_OPENING else {}))
    if auth.order_id:
        _link_opened(tx, auth.order_id, cid, auth.reason)
    log.info("compartment %s opened (%s)", cid, auth.reason)
    return Opening(auth, was)


def seen_closed(tx: Tx, cid: str) -> list[str]:
    """The sensor says closed: the door locks again. Returns the orders whose phase this
    closing counts for (loading, pickup or reclaim), for the caller to settle."""
    row = records.compartment(tx, cid)
    if row is None or row.door.value not in OPEN_DOOR_STATES:
        return []
    move(tx, Kind.DOOR, cid, row.door, "closed")
    tx.emit("door.closed", "door", compartment_id=cid)
    tx.clear_alarm("door_left_open", cid, f"compartment {cid} closed")
    if row.door is DoorState.FORCED:
        tx.clear_alarm("door_forced", cid, f"compartment {cid} closed again after being forced")
    log.info("compartment %s closed", cid)
    touched = [r["order_id"] for r in tx.all(
        "SELECT oc.order_id FROM order_compartments oc JOIN orders o ON o.id = oc.order_id"
        " WHERE oc.compartment_id = ? AND oc.opened_at IS NOT NULL AND oc.closed_at IS NULL"
        f" AND oc.released_at IS NULL AND o.state IN ({_IN_PHASE})", (cid,))]
    for order_id in touched:
        tx.execute("UPDATE order_compartments SET closed_at = ? WHERE order_id = ?"
                   " AND compartment_id = ?", (tx.now, order_id, cid))
    return touched


def put_back(tx: Tx, cid: str) -> None:
    """Back in service: a door left jammed is taken as locked again."""
    row = records.compartment(tx, cid)
    if row is not None and row.door is DoorState.JAMMED:
        move(tx, Kind.DOOR, cid, row.door, "put_back")


def shift_timers(tx: Tx, by_s: float) -> None:
    """The wall clock stepped: the doors' running timers (an unlock waiting for its door, a door
    open since) move with it and keep their length."""
    tx.execute("UPDATE authorisations SET created_at = created_at + :by, sent_at = sent_at + :by,"
               " acked_at = acked_at + :by WHERE outcome IS NULL", {"by": by_s})
    tx.execute("UPDATE compartments SET door_changed_at = door_changed_at + ?"
               " WHERE door != 'locked'", (by_s,))


def settled_unopened(auth: Authorisation | None, now: float, open_timeout_s: float) -> bool:
    """This door will not open for this authorisation any more (unless it opens late)."""
    if auth is None:
        return True
    state = auth.state
    if state in WAITING:
        return False
    if state is AuthState.UNCONFIRMED:
        # the lock may have pulsed: give the door the time a jam would get
        return auth.created_at <= now - open_timeout_s
    return state is not AuthState.OPENED


def _answered_by_opening(tx: Tx, config: LockerConfig, cid: str) -> Authorisation | None:
    """The authorisation this opening answers: the door's newest one, if it still waits, or if
    it may be answered late (unconfirmed, jammed, interrupted) within the grace. An opening
    after a settled one (opened, superseded, failed) answers nothing: the door was forced."""
    newest = records.latest_authorisation(tx, cid)
    if newest is None:
        return None
    if newest.state in WAITING:
        return newest
    since = tx.now - config.doors.open_timeout_s - LATE_OPEN_GRACE_S
    if newest.state in LATE_OPENING and newest.created_at >= since:
        return newest
    return None


def _link_opened(tx: Tx, order_id: str, cid: str, reason: str) -> None:
    """An opening counts for the order's phase (loading, pickup, reclaim) when the order is in
    it, whoever opened (ops opening a door for a stuck customer, say); for a ready order only
    when it was the customer's own pickup, seen late. A maintenance opening of a ready order
    collects nothing."""
    order = records.order(tx, order_id)
    if order is None:
        return
    if order.state.value in PHASES or (order.state is OrderState.READY and reason == "pickup"):
        tx.execute("UPDATE order_compartments SET opened_at = ? WHERE order_id = ?"
                   " AND compartment_id = ? AND opened_at IS NULL AND released_at IS NULL",
                   (tx.now, order_id, cid))


def _auth_move(tx: Tx, auth: Authorisation, event: str, **columns: Any) -> AuthState:
    """One step of an authorisation, by the table; its other columns written with it."""
    target = AuthState(next_state(Kind.AUTHORISATION, auth.state, event))
    outcome = None if target in WAITING else target.value
    values = {"outcome": outcome, **columns}
    sets = ", ".join(f"{name} = :{name}" for name in values)
    guard = "outcome IS NULL" if auth.outcome is None else "outcome = :was"
    tx.execute(f"UPDATE authorisations SET {sets} WHERE id = :id AND {guard}",
               {**values, "id": auth.id, "was": auth.outcome})
    return target
