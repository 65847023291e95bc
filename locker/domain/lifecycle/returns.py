"""A return's life: offered, a compartment opened for it, deposited, taken back by a courier.

A customer may hand back what they refuse (a substitution, a damaged item) or the reusable crates:
the screen offers it after a pickup, or central's return code opens the same offer. The offer
holds nothing; a compartment is reserved only when the customer says what they hand back, and
only one that no order waiting to be loaded needs. The door is opened the one way every door is
(authorise, commit, pulse). Its opening and closing come back here from the door monitor: a
door closed after it opened is a deposit (unless an item sensor reads it empty); a door that
never opened gives the compartment back and the offer stands, so the customer can try again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from locker.domain.allocation import Bag, FreeCompartment, NoRoom, allocate
from locker.domain.config import LockerConfig
from locker.domain.lifecycle import compartment as compartment_life
from locker.domain.lifecycle import door as door_life
from locker.domain.lifecycle import records
from locker.domain.lifecycle.door import Door
from locker.domain.lifecycle.table import Kind, move
from locker.domain.model import CompartmentState, DoorState, OrderState, ReturnState, Size, Zone
from locker.domain.store import Tx

Reachable = Callable[[str], bool]
# the reasons of the authorisations that open a return's door: the customer's, the courier's
DEPOSIT, TAKE_BACK = "return", "return_take_back"
UNDER_WAY = (ReturnState.OPENING.value, ReturnState.TAKING_BACK.value)
FINISHED = (ReturnState.TAKEN.value, ReturnState.LAPSED.value, ReturnState.CANCELLED.value)


@dataclass(frozen=True)
class Return:
    id: str
    order_id: str
    state: ReturnState
    source: str  # "pickup" (offered on the screen after it) or "code" (central's return code)
    kind: str | None  # what is handed back; fixed in advance by central's code, or chosen
    zone: str | None
    compartment_id: str | None
    authorisation: int | None  # the door's authorisation of the current step
    screen: str | None
    expires_at: float
    opened_at: float | None  # its door was seen open in the current step
    deposited_at: float | None
    created_at: float

    @classmethod
    def of(cls, row: dict[str, Any]) -> Return:
        return cls(row["id"], row["order_id"], ReturnState(row["state"]), row["source"],
                   row["kind"], row["zone"], row["compartment_id"], row["authorisation"],
                   row["screen"], row["expires_at"], row["opened_at"], row["deposited_at"],
                   row["created_at"])


def get(tx: Tx, return_id: str) -> Return | None:
    row = tx.one("SELECT * FROM returns WHERE id = ?", (return_id,))
    return None if row is None else Return.of(row)


def by_code(tx: Tx, digest: str) -> Return | None:
    row = tx.one("SELECT * FROM returns WHERE code_digest = ? ORDER BY created_at DESC LIMIT 1",
                 (digest,))
    return None if row is None else Return.of(row)


def code_taken(tx: Tx, digest: str) -> bool:
    """A return code of another order has this digest: one code must never open two things."""
    return tx.one("SELECT 1 AS taken FROM returns WHERE code_digest = ? LIMIT 1",
                  (digest,)) is not None


def rekey_codes(tx: Tx, rekeyed: Callable[[str], str]) -> int:
    """Every return code still open gets its digest under a new key (`locker rotate-keys`)."""
    rows = tx.all("SELECT id, code_digest FROM returns WHERE code_digest IS NOT NULL")
    for row in rows:
        tx.execute("UPDATE returns SET code_digest = ? WHERE id = ?",
                   (rekeyed(row["code_digest"]), row["id"]))
    return len(rows)


def offer(tx: Tx, order_id: str, *, source: str, expires_at: float, screen: str | None = None,
          code_digest: str | None = None, kind: str | None = None) -> str:
    """A customer may hand something back until `expires_at`; returns the offer's id, which is
    the screen's proof of it (128 random bits: it cannot be guessed, and opens nothing by
    itself). A newer offer of the same pickup replaces the older."""
    if source == "pickup":
        for old in tx.all("SELECT id FROM returns WHERE order_id = ? AND source = 'pickup'"
                          " AND state = ?", (order_id, ReturnState.OFFERED.value)):
            move(tx, Kind.RETURN, old["id"], ReturnState.OFFERED, "lapse")
    return_id = secrets.token_urlsafe(16)
    tx.insert("returns", {
        "id": return_id, "order_id": order_id, "state": ReturnState.OFFERED.value,
        "source": source, "code_digest": code_digest, "kind": kind, "screen": screen,
        "expires_at": expires_at, "created_at": tx.now, "updated_at": tx.now})
    return return_id


def waiting_bags(tx: Tx) -> list[Bag]:
    """The bags of orders waiting to be loaded that have no compartment yet."""
    return [Bag(b.zone, b.size)
            for order in records.orders_in(tx, OrderState.RECEIVED, OrderState.ALLOCATED)
            for b in records.bags(tx, order.id) if b.compartment_id is None]


def _missing(bags: list[Bag], free: list[FreeCompartment]) -> int:
    try:
        allocate(bags, free)
    except NoRoom as exc:
        return len(exc.missing)
    return 0


def room(tx: Tx, config: LockerConfig,
         reachable: Reachable) -> tuple[list[FreeCompartment], list[Bag]]:
    """What a return's compartment is chosen from: the free compartments, and the bags of the
    orders waiting to be loaded that have no compartment yet (read once for every kind)."""
    return compartment_life.free(tx, config, reachable), waiting_bags(tx)


def choose(tx: Tx, config: LockerConfig, zone: Zone, size: Size,
           reachable: Reachable) -> str | None:
    """The compartment a return of this zone and size goes in (see choose_among)."""
    free, bags = room(tx, config, reachable)
    return choose_among(free, bags, zone, size)


def choose_among(free: list[FreeCompartment], bags: list[Bag], zone: Zone,
                 size: Size) -> str | None:
    """The smallest free compartment of the zone that leaves room for every order waiting to
    be loaded (no more of their bags go without a place than already would). None if there is
    none."""
    candidates = sorted((c for c in free if c.zone == zone and size.fits_in(c.size)),
                        key=lambda c: (c.size.rank, c.level, c.id))
    if not candidates:
        return None
    if not bags:
        return candidates[0].id
    before = _missing(bags, free)
    for candidate in candidates:
        if _missing(bags, [c for c in free if c.id != candidate.id]) <= before:
            return candidate.id
    return None


def open_for_deposit(tx: Tx, config: LockerConfig, current: Return, kind: str, zone: Zone,
                     compartment_id: str, actor: str) -> Door:
    """Reserve the compartment for this return and authorise its door (the caller pulses it
    once this has committed)."""
    compartment_life.reserve_for_return(tx, compartment_id, current.id)
    door = door_life.authorise(tx, config, compartment_id, None, actor, DEPOSIT)
    move(tx, Kind.RETURN, current.id, current.state, "open")
    tx.execute("UPDATE returns SET kind = ?, zone = ?, compartment_id = ?, authorisation = ?,"
               " opened_at = NULL WHERE id = ?",
               (kind, zone.value, compartment_id, door.authorisation, current.id))
    tx.emit("return.opening", "order", order_id=current.order_id, compartment_id=compartment_id,
            return_id=current.id, zone=zone.value, what=kind, source=current.source)
    return door


def open_for_courier(tx: Tx, config: LockerConfig, current: Return, actor: str) -> Door:
    """A courier takes a deposited return back: its door is authorised for them."""
    assert current.compartment_id is not None
    door = door_life.authorise(tx, config, current.compartment_id, None, actor, TAKE_BACK)
    move(tx, Kind.RETURN, current.id, current.state, "take_back")
    tx.execute("UPDATE returns SET authorisation = ?, opened_at = NULL WHERE id = ?",
               (door.authorisation, current.id))
    return door


def seen_open(tx: Tx, auth: records.Authorisation) -> None:
    """A door opened for a return's authorisation (called for every answered opening)."""
    if auth.reason in (DEPOSIT, TAKE_BACK):
        tx.execute("UPDATE returns SET opened_at = ? WHERE authorisation = ? AND opened_at IS"
                   f" NULL AND state IN ({', '.join('?' * len(UNDER_WAY))})",
                   (tx.now, auth.id, *UNDER_WAY))


def touched_by(tx: Tx, compartment_id: str) -> list[str]:
    """The returns whose step a closing of this door may end."""
    return [r["id"] for r in tx.all(
        f"SELECT id FROM returns WHERE compartment_id = ? AND state IN"
        f" ({', '.join('?' * len(UNDER_WAY))})", (compartment_id, *UNDER_WAY))]


def under_way(tx: Tx) -> list[str]:
    """Returns a door is being opened or closed for: settle() may move them on by itself."""
    return [r["id"] for r in tx.all(
        f"SELECT id FROM returns WHERE state IN ({', '.join('?' * len(UNDER_WAY))})",
        UNDER_WAY)]


def settle(tx: Tx, config: LockerConfig, return_id: str) -> str | None:
    """Move the return on from what its door says now: opened and closed again (deposited or
    taken back), or never opened (back to offered, or to the courier's list). Idempotent;
    returns the event taken, if any."""
    current = get(tx, return_id)
    if current is None or current.state.value not in UNDER_WAY:
        return None
    assert current.compartment_id is not None
    row = compartment_life.get(tx, current.compartment_id)
    deposit = current.state is ReturnState.OPENING
    if current.opened_at is not None:
        if row.door is not DoorState.LOCKED:
            return None  # open: the customer or the courier is at it
        if deposit:
            return _deposited(tx, current, empty=row.item is False)
        compartment_life.give_back(tx, current.compartment_id, "empty")
        move(tx, Kind.RETURN, current.id, current.state, "all_closed")
        tx.execute("UPDATE returns SET code_digest = NULL WHERE id = ?", (current.id,))
        last = records.authorisation(tx, current.authorisation or 0)
        tx.emit("return.taken_back", "order", order_id=current.order_id,
                compartment_id=current.compartment_id, return_id=current.id,
                actor=last.actor if last else None)
        return "all_closed"
    auth = records.authorisation(tx, current.authorisation or 0)
    if not door_life.settled_unopened(auth, tx.now, config.doors.open_timeout_s):
        return None  # it may still open
    if deposit:
        compartment_life.give_back(tx, current.compartment_id, "release")
        move(tx, Kind.RETURN, current.id, current.state, "not_opened")
        tx.execute("UPDATE returns SET compartment_id = NULL, authorisation = NULL"
                   " WHERE id = ?", (current.id,))
        tx.emit("return.not_opened", "order", order_id=current.order_id,
                compartment_id=current.compartment_id, return_id=current.id)
        return "not_opened"
    move(tx, Kind.RETURN, current.id, current.state, "interrupt")
    tx.emit("return.take_back_interrupted", "order", order_id=current.order_id,
            compartment_id=current.compartment_id, return_id=current.id)
    return "interrupt"


def _deposited(tx: Tx, current: Return, *, empty: bool) -> str:
    assert current.compartment_id is not None
    cid = current.compartment_id
    if empty:  # the item sensor saw nothing go in: the compartment is free, the offer stands
        compartment_life.give_back(tx, cid, "release")
        move(tx, Kind.RETURN, current.id, current.state, "nothing_inside")
        tx.execute("UPDATE returns SET compartment_id = NULL, authorisation = NULL,"
                   " opened_at = NULL WHERE id = ?", (current.id,))
        tx.emit("return.nothing_inside", "order", order_id=current.order_id,
                compartment_id=cid, return_id=current.id)
        return "nothing_inside"
    compartment_life.load_return(tx, cid)
    move(tx, Kind.RETURN, current.id, current.state, "deposit")
    tx.execute("UPDATE returns SET deposited_at = ? WHERE id = ?", (tx.now, current.id))
    tx.emit("order.return_deposited", "order", order_id=current.order_id, compartment=cid,
            compartment_id=cid, zone=current.zone, what=current.kind, return_id=current.id,
            source=current.source)
    return "deposit"


def lapse_due(tx: Tx, now: float) -> list[str]:
    """Offers whose time is over lapse; central hears of a return code that went unused."""
    lapsed = []
    for row in tx.all("SELECT * FROM returns WHERE state = ? AND expires_at <= ?",
                      (ReturnState.OFFERED.value, now)):
        current = Return.of(row)
        move(tx, Kind.RETURN, current.id, current.state, "lapse")
        tx.execute("UPDATE returns SET code_digest = NULL WHERE id = ?", (current.id,))
        if current.source == "code":
            tx.emit("return.lapsed", "order", order_id=current.order_id, return_id=current.id)
        lapsed.append(current.id)
    return lapsed


def cancel_for_order(tx: Tx, order_id: str, reason: str, *, source: str | None = None) -> None:
    """Central cancelled the order, or replaced its return code: its offers end (those of
    one `source` only, if given)."""
    for row in tx.all("SELECT id FROM returns WHERE order_id = ? AND state = ?"
                      " AND source = coalesce(?, source)",
                      (order_id, ReturnState.OFFERED.value, source)):
        move(tx, Kind.RETURN, row["id"], ReturnState.OFFERED, "cancel")
        tx.execute("UPDATE returns SET code_digest = NULL WHERE id = ?", (row["id"],))
        tx.emit("return.cancelled", "order", order_id=order_id, return_id=row["id"],
                reason=reason)


def to_take_back(tx: Tx) -> list[Return]:
    """Deposited returns (and those being taken back), oldest first: the couriers' list."""
    return [Return.of(r) for r in tx.all(
        "SELECT * FROM returns WHERE state IN (?, ?) ORDER BY deposited_at, id",
        (ReturnState.DEPOSITED.value, ReturnState.TAKING_BACK.value))]


def shift_timers(tx: Tx, by_s: float) -> None:
    """The wall clock stepped: an offer keeps the time it had left."""
    tx.execute("UPDATE returns SET expires_at = expires_at + ? WHERE state = ?",
               (by_s, ReturnState.OFFERED.value))


def forget_finished(tx: Tx, cutoff: float) -> int:
    """Returns finished before `cutoff` (nothing of them left inside)."""
    marks = ", ".join("?" * len(FINISHED))
    return tx.execute(f"DELETE FROM returns WHERE state IN ({marks}) AND updated_at < ?",
                      (*FINISHED, cutoff))


def holding(tx: Tx) -> dict[str, str]:
    """compartment -> the return it holds, for the screens."""
    return {r["id"]: r["return_id"] for r in tx.all(
        "SELECT id, return_id FROM compartments WHERE return_id IS NOT NULL AND state != ?",
        (CompartmentState.FREE.value,))}
