"""An order's life: received, allocated, loaded, ready, collected; expired, reclaimed, cancelled.

Each function is one step over an open transaction, so a use case can chain them and commit once.
`settle()` is the reconcile pass: it looks at an order's doors and authorisations as they are now
(after a door closed, after a restart, every second) and moves the order one step toward ready,
collected or a courier's list. A crash between two steps is then just another pass: an order
left `collecting` whose doors never opened comes back `ready` with the same code, its window
extended by the time lost.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from locker.domain import certificates
from locker.domain.allocation import UNITS, NoRoom
from locker.domain.allocation import Bag as NewBag
from locker.domain.allocation import allocate as place_bags
from locker.domain.codes import PickupCodes
from locker.domain.config import LockerConfig
from locker.domain.errors import LockerError, Refused, Unavailable
from locker.domain.lifecycle import compartment, door, records, returns
from locker.domain.lifecycle.door import Door
from locker.domain.lifecycle.records import Authorisation, Link, Order
from locker.domain.lifecycle.table import Kind, move
from locker.domain.model import CompartmentState, OrderState
from locker.domain.store import Tx

log = logging.getLogger("locker.orders")
ORDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch only
# orders whose goods a courier takes back (a cancelled order keeps compartments only with goods)
RECLAIMABLE = (OrderState.EXPIRED, OrderState.RECLAIMING, OrderState.CANCELLED,
               OrderState.WITHHELD)
# why a loaded order is not ready yet
ZONE_HOLD = "zone_out_of_limits"
HOLD_SPENT = "hold_spent"  # a ready order held to its limit: not held again for the same fault
Reachable = Callable[[str], bool]
PRUNED_SEQUENCE = "sequence.pruned_up_to"


class OrderRejected(LockerError, ValueError):
    """An order that cannot be taken as given; nothing was stored."""


class CodeInUse(OrderRejected):
    """The order's code is another open order's: typing it would open both, so it is refused and
    central draws a new one (a 300-in-10^10 chance, but never left to chance)."""


class CannotCancel(OrderRejected):
    """The order is past cancelling (collected, being collected, gone)."""


def get(tx: Tx, order_id: str) -> Order:
    found = records.order(tx, order_id)
    if found is None:
        raise Refused("no_order", f"no order {order_id}")
    return found


# -- in: received, allocated, loaded, ready -----------------------------------------------------

def receive(tx: Tx, config: LockerConfig, order_id: str, bags: Sequence[NewBag], *,
            code_digest: str, window_hours: float | None = None, accessible: bool = False,
            version: int = 1) -> None:
    """Take an order in, waiting for a courier to load it, with the digest of its code (the code
    opens nothing before the order is ready, and nothing after it is finished)."""
    if not ORDER_ID.fullmatch(order_id):
        raise OrderRejected(f"order id {order_id!r}: 1-64 letters, digits, '.', '_' or '-'")
    if not bags:
        raise OrderRejected(f"order {order_id}: give at least one bag")
    hours = config.codes.pickup_window_hours if window_hours is None else window_hours
    if not 0 < hours <= 24 * 30:
        raise OrderRejected(f"order {order_id}: pickup window must be 0-720 hours, not {hours}")
    if records.order(tx, order_id) is not None:
        raise OrderRejected(f"order {order_id} exists already")
    code_free(tx, order_id, code_digest)
    tx.insert("orders", {
        "id": order_id, "version": version, "sequence": next_sequence(tx),
        "state": OrderState.RECEIVED.value, "code_digest": code_digest, "window_start": None,
        "window_end": None, "window_s": hours * 3600.0,
        "accessible": int(accessible), "created_at": tx.now, "updated_at": tx.now,
    })
    _insert_bags(tx, order_id, bags)
    tx.emit("order.received", "order", order_id=order_id, version=version,
            bags=[f"{b.zone.value}:{b.size.value}" for b in bags])


def code_free(tx: Tx, order_id: str, digest: str) -> None:
    """CodeInUse if another order still holding a code holds this one (finished orders hold
    none: their digests are erased as they finish)."""
    clash = tx.one("SELECT id FROM orders WHERE code_digest = ? AND id != ?", (digest, order_id))
    if clash is not None or returns.code_taken(tx, digest):
        raise CodeInUse(f"order {order_id}: its code is an open order's already; send a new"
                        " version with a new code")


def draw_code(tx: Tx, codes: PickupCodes, order_id: str) -> tuple[str, str]:
    """A fresh code for an order made at the locker, and its digest: drawn again on a clash."""
    while True:
        code = codes.new_code()
        digest = codes.digest(code)
        try:
            code_free(tx, order_id, digest)
        except CodeInUse:
            continue
        return code, digest


def rekey_codes(tx: Tx, rekeyed: Callable[[str], str]) -> int:
    """Every order still holding a code gets its digest under a new key; returns how many."""
    rows = tx.all("SELECT id, code_digest FROM orders WHERE code_digest IS NOT NULL")
    for row in rows:
        tx.execute("UPDATE orders SET code_digest = ? WHERE id = ?",
                   (rekeyed(row["code_digest"]), row["id"]))
    return len(rows) + returns.rekey_codes(tx, rekeyed)


def pruned_up_to(tx: Tx) -> int:
    """The highest sequence of an order already forgotten (0 if none): sequences number the
    locker's orders once and for ever, so none is taken twice."""
    value = tx.meta(PRUNED_SEQUENCE)
    return 0 if value is None else int(value)


def next_sequence(tx: Tx) -> int:
    """Above every sequence in use and every one forgotten."""
    row = tx.one("SELECT MAX(sequence) AS top FROM orders")
    top = 0 if row is None or row["top"] is None else int(row["top"])
    return max(top, pruned_up_to(tx)) + 1


def allocate(tx: Tx, config: LockerConfig, order_id: str,
             bag_numbers: Sequence[int] | None = None,
             reachable: Reachable = lambda cid: True) -> list[str]:
    """Reserve compartments for the order's unplaced bags (or the given ones); NoRoom if not.

    Returns the compartments reserved. Nothing is written before the whole allocation is known.
    Compartments whose lock cannot be reached now are not chosen.
    """
    current = records.order(tx, order_id)
    if current is None:
        raise OrderRejected(f"no order {order_id}")
    rows = records.bags(tx, order_id)
    if bag_numbers is not None:
        rows = [b for b in rows if b.number in bag_numbers]
    else:
        rows = [b for b in rows if b.compartment_id is None]
    bags = [(b.number, NewBag(b.zone, b.size)) for b in rows]
    placed = place_bags([b for _, b in bags], compartment.free(tx, config, reachable),
                        current.accessible)
    numbers = {id(bag): number for number, bag in bags}  # place_bags() hands back these objects
    reserved: dict[str, list[NewBag]] = {}
    for bag, free in placed:
        tx.execute("UPDATE order_bags SET compartment_id = ? WHERE order_id = ? AND bag_no = ?",
                   (free.id, order_id, numbers[id(bag)]))
        reserved.setdefault(free.id, []).append(bag)
    for cid, in_it in reserved.items():
        largest = max(in_it, key=lambda b: UNITS[b.size])
        tx.insert("order_compartments", {"order_id": order_id, "compartment_id": cid,
                                         "bag_zone": largest.zone.value,
                                         "bag_size": largest.size.value})
        compartment.reserve(tx, cid, order_id)
    move(tx, Kind.ORDER, order_id, current.state, "allocate")
    tx.emit("order.allocated", "order", order_id=order_id, compartments=sorted(reserved))
    return sorted(reserved)


def blocked_zones(tx: Tx) -> set[str]:
    """Zones with an open cold-chain excursion alarm: nothing is loaded into them."""
    return {r["subject"] for r in tx.all(
        "SELECT subject FROM alarms WHERE kind = 'zone_excursion' AND cleared_at IS NULL")}


def activate(tx: Tx, order_id: str) -> float:
    """The goods are in: compartments loaded, the order's code made active, the window started.

    Returns the window's end.
    """
    current = get(tx, order_id)
    if current.code_digest is None:  # receive() always gives one; never open with no code
        raise OrderRejected(f"order {order_id} has no code")
    window_end = tx.now + current.window_s
    move(tx, Kind.ORDER, order_id, current.state, "activate")
    tx.execute("UPDATE orders SET window_start = ?, window_end = ?, held_since = NULL,"
               " held_for = NULL, phase_since = NULL WHERE id = ?",
               (tx.now, window_end, order_id))
    # the doors' progress is counted again for the customer
    tx.execute("UPDATE order_compartments SET opened_at = NULL, closed_at = NULL"
               " WHERE order_id = ? AND released_at IS NULL", (order_id,))
    compartment.load(tx, order_id)
    tx.emit("order.ready", "order", order_id=order_id, window_end=window_end,
            compartments=sorted(link.compartment_id for link in records.links(tx, order_id)))
    log.info("order %s loaded and ready", order_id)
    return window_end


def _hold_loaded(tx: Tx, current: Order, why: str) -> None:
    """Loaded but not ready: a zone out of its limits."""
    if current.state is OrderState.ALLOCATED:
        move(tx, Kind.ORDER, current.id, current.state, "hold_loaded")
    tx.execute("UPDATE orders SET held_for = ?, held_since = ? WHERE id = ?",
               (why, tx.now, current.id))
    compartment.load(tx, current.id)


# -- out: the customer's pickup ------------------------------------------------------------------

@dataclass(frozen=True)
class Exposed:
    """A bag whose zone went out of its limits while it was inside (an excursion flagged the
    order), with what its certificate says of it so far."""

    compartment_id: str
    zone: str
    minutes_above: float
    minutes_below: float
    peak_c: float | None


@dataclass(frozen=True)
class CodeAccepted:
    doors: list[Door]  # to pulse, now that the commit is done
    withheld: list[Exposed] = field(default_factory=list)  # kept back ("withhold")
    warned: list[Exposed] = field(default_factory=list)  # opened, the customer told ("warn")


def accept_code(tx: Tx, config: LockerConfig, current: Order, reachable: Reachable
                ) -> CodeAccepted:
    """The customer's code is good: authorise every door the order still holds, at once.

    Refused before anything is written when one of those doors cannot open now (its board is
    offline, the bus is down): a grocery order is collected whole, and the code is not spent.
    A bag whose zone had an excursion while it was inside is, by `[coldchain] on_excursion`,
    kept back (its door stays shut, a courier takes it back; central hears
    `order.bag_withheld`) or opened with a word to the customer (`order.excursion_told`).
    """
    held = [link for link in records.links(tx, current.id) if link.withheld is None]
    exposed = _exposed(tx, config, current.id, held)
    withhold = config.coldchain.on_excursion == "withhold"
    kept = {e.compartment_id for e in exposed} if withhold else set()
    opening = [link for link in held if link.compartment_id not in kept]
    refuse_unreachable([link.compartment_id for link in opening], reachable,
                       customer_help=config.support_phone or "")
    if current.held_since is not None:  # its doors can open again: the hold ends here
        release_hold(tx, current)
    for bag in exposed:
        fields = {"compartment": bag.compartment_id, "zone": bag.zone,
                  "minutes_above": bag.minutes_above, "minutes_below": bag.minutes_below,
                  "peak_c": bag.peak_c}
        if withhold:
            tx.execute("UPDATE order_compartments SET withheld = ? WHERE order_id = ?"
                       " AND compartment_id = ?", (EXCURSION_KEPT, current.id, bag.compartment_id))
            tx.emit("order.bag_withheld", "order", order_id=current.id,
                    compartment_id=bag.compartment_id, reason=EXCURSION_KEPT, **fields)
        else:
            tx.emit("order.excursion_told", "order", order_id=current.id,
                    compartment_id=bag.compartment_id, **fields)
    if not opening:  # every bag kept back: nothing opens, a courier takes them all back
        move(tx, Kind.ORDER, current.id, current.state, "withhold")
        tx.emit("order.withheld", "order", order_id=current.id, compartments=sorted(kept))
        return CodeAccepted([], exposed if withhold else [], [])
    move(tx, Kind.ORDER, current.id, current.state, "accept_code")
    tx.execute("UPDATE orders SET phase_since = ? WHERE id = ?", (tx.now, current.id))
    doors = [door.authorise(tx, config, link.compartment_id, current.id, "customer", "pickup")
             for link in opening]
    tx.emit("order.collecting", "order", order_id=current.id,
            compartments=[d.compartment_id for d in doors])
    return CodeAccepted(doors, exposed if withhold else [], [] if withhold else exposed)


EXCURSION_KEPT = "excursion"  # why a bag is withheld: its zone left its limits while inside


def _exposed(tx: Tx, config: LockerConfig, order_id: str, held: list[Link]) -> list[Exposed]:
    """The order's bags in a zone whose excursion flagged the order while they were inside."""
    flagged = {r["zone"] for r in tx.all(
        "SELECT DISTINCT e.zone FROM order_flags f JOIN excursions e ON e.id = f.excursion_id"
        " WHERE f.order_id = ?", (order_id,))}
    exposed = []
    for link in held:
        if link.zone.value not in flagged:
            continue
        figures = certificates.figures(tx, config, order_id, link.compartment_id, link.zone,
                                       tx.now)
        exposed.append(Exposed(link.compartment_id, link.zone.value, figures["minutes_above"],
                               figures["minutes_below"], max(
                                   (e["peak_c"] for e in figures["excursions"]), default=None)))
    return exposed


def expire_due(tx: Tx, *, held_since: float | None = None, hold_s: float = 0.0,
               provisional: bool = False) -> list[str]:
    """Ready orders whose pickup window has ended stop accepting their code.

    An order whose doors cannot open (held) does not expire: its window is extended once they
    can. While central is unreachable (since `held_since`), a window that ends is held open, for
    at most `hold_s`: the customer may not have been told anything, and the window is extended
    by the outage's length once central answers again. `provisional`: the clock is not trusted,
    so each expiry is decided again once it is (redecide_expiries).
    """
    expired: list[str] = []
    for row in tx.all("SELECT id, window_end FROM orders WHERE state = ? AND window_end <= ?"
                      " AND held_since IS NULL", (OrderState.READY.value, tx.now)):
        end = float(row["window_end"])
        if held_since is not None and end > held_since and tx.now - end <= hold_s:
            continue
        move(tx, Kind.ORDER, row["id"], OrderState.READY, "expire")
        if provisional:
            tx.execute("UPDATE orders SET held_for = ? WHERE id = ?",
                       (CLOCK_UNTRUSTED, row["id"]))
            tx.emit("order.expired", "order", order_id=row["id"], provisional=True)
        else:
            tx.emit("order.expired", "order", order_id=row["id"])
        expired.append(row["id"])
    return expired


def extend_window(tx: Tx, order_id: str, seconds: float, actor: str, reason: str) -> float:
    """More time to collect: a ready order's window grows, an expired one is ready again."""
    current = records.order(tx, order_id)
    if current is None:
        raise OrderRejected(f"no order {order_id}")
    if current.state not in (OrderState.READY, OrderState.EXPIRED):
        raise OrderRejected(f"order {order_id} is {current.state.value}: only a ready or"
                            " expired order's window can be extended")
    window_end = max(float(current.window_end or tx.now), tx.now) + seconds
    move(tx, Kind.ORDER, order_id, current.state, "extend")
    tx.execute("UPDATE orders SET window_end = ? WHERE id = ?", (window_end, order_id))
    tx.emit("order.window_extended", "order", order_id=order_id, window_end=window_end,
            actor=actor, reason=reason)
    return window_end


def extend_for_outage(tx: Tx, since: float, reason: str, *, ended_only: bool) -> list[str]:
    """The locker could not serve customers from `since` until now: ready orders get that time
    back. `ended_only`: only windows that ended during it (central's outage: the customer may
    not have been told); otherwise every window open during it (the store could not write)."""
    outage_s = max(0.0, tx.now - since)
    extended: list[str] = []
    if outage_s <= 0:
        return extended
    # a held window gets its time back when the hold ends, not twice
    sql = ("SELECT id, window_end FROM orders WHERE state = ? AND window_end > ?"
           " AND held_since IS NULL")
    params: tuple[Any, ...] = (OrderState.READY.value, since)
    if ended_only:
        sql += " AND window_end <= ?"
        params += (tx.now,)
    for row in tx.all(sql, params):
        window_end = float(row["window_end"]) + outage_s
        move(tx, Kind.ORDER, row["id"], OrderState.READY, "extend")
        tx.execute("UPDATE orders SET window_end = ? WHERE id = ?", (window_end, row["id"]))
        tx.emit("order.window_extended", "order", order_id=row["id"], window_end=window_end,
                actor="locker", reason=reason)
        extended.append(row["id"])
    return extended


# -- holds: the locker's own faults do not cost the customer time -------------------------------

def ready_blockers(tx: Tx, reachable: Reachable) -> dict[str, str]:
    """Ready orders that cannot be collected now because of the locker, and why."""
    zones_out = blocked_zones(tx)
    why: dict[str, str] = {}
    for row in tx.all(
            "SELECT oc.order_id, oc.compartment_id, oc.bag_zone, c.door FROM orders o"
            " JOIN order_compartments oc ON oc.order_id = o.id AND oc.released_at IS NULL"
            " JOIN compartments c ON c.id = oc.compartment_id WHERE o.state = ?",
            (OrderState.READY.value,)):
        reason = ("door_jammed" if row["door"] == "jammed"
                  else "board_offline" if not reachable(row["compartment_id"])
                  else "zone_excursion" if row["bag_zone"] in zones_out else None)
        if reason is not None:
            why.setdefault(row["order_id"], reason)
    return why


def update_holds(tx: Tx, blocked: Mapping[str, str], max_hold_s: float) -> None:
    """Hold the windows of the ready orders that cannot be collected; give the time back to
    those whose doors can open again. A hold ends after `max_hold_s` even if the fault stays
    (a door jammed for good): the window then runs again, so the order still reaches a
    courier's list; it is not held again until the fault has gone and come back."""
    for current in records.orders_in(tx, OrderState.READY):
        reason = blocked.get(current.id)
        if current.held_for == HOLD_SPENT:
            if reason is None:
                tx.execute("UPDATE orders SET held_for = NULL WHERE id = ?", (current.id,))
            continue
        if reason is not None and current.held_since is None:
            move(tx, Kind.ORDER, current.id, current.state, "hold")
            tx.execute("UPDATE orders SET held_since = ?, held_for = ? WHERE id = ?",
                       (tx.now, reason, current.id))
            tx.emit("order.held", "order", order_id=current.id, reason=reason)
        elif current.held_since is not None and (
                reason is None or tx.now - current.held_since >= max_hold_s):
            release_hold(tx, current, spent=reason is not None)


def release_hold(tx: Tx, current: Order, *, spent: bool = False) -> None:
    """The hold ends: the window gets the time back (at most the hold's limit when `spent`)."""
    assert current.held_since is not None
    held_s = max(0.0, tx.now - current.held_since)
    window_end = float(current.window_end or tx.now) + held_s
    move(tx, Kind.ORDER, current.id, current.state, "release_hold")
    tx.execute("UPDATE orders SET window_end = ?, held_since = NULL, held_for = ? WHERE id = ?",
               (window_end, HOLD_SPENT if spent else None, current.id))
    tx.emit("order.window_extended", "order", order_id=current.id, window_end=window_end,
            actor="locker", reason=f"{current.held_for} for {held_s:.0f} s"
            + ("; the hold's limit is reached, the window runs again" if spent else ""))


def shift_timers(tx: Tx, by_s: float) -> None:
    """The wall clock stepped: holds and phases under way keep their length (their windows, which
    are dates, do not move)."""
    tx.execute("UPDATE orders SET held_since = held_since + ? WHERE held_since IS NOT NULL"
               " AND state = 'ready'", (by_s,))
    tx.execute("UPDATE orders SET phase_since = phase_since + ? WHERE phase_since IS NOT NULL",
               (by_s,))


# -- the clock: expiry decided again --------------------------------------------------------------

CLOCK_UNTRUSTED = "clock_untrusted"  # an expiry decided on a clock not trusted: decided again


def redecide_expiries(tx: Tx, reason: str) -> list[str]:
    """Expiries decided on a clock not trusted, or dated in what is now the future (a bogus
    forward step undone): a window that is still open comes back `ready`; the others stand."""
    back: list[str] = []
    for row in tx.all("SELECT id, window_end, code_digest FROM orders WHERE state = ? AND"
                      " (held_for = ? OR updated_at > ?)",
                      (OrderState.EXPIRED.value, CLOCK_UNTRUSTED, tx.now)):
        clash = tx.one("SELECT id FROM orders WHERE code_digest = ? AND id != ? AND state = ?",
                       (row["code_digest"], row["id"], OrderState.READY.value))
        if clash is None and row["window_end"] is not None and (
                float(row["window_end"]) > tx.now):
            move(tx, Kind.ORDER, row["id"], OrderState.EXPIRED, "clock_corrected")
            tx.emit("order.expiry_undone", "order", order_id=row["id"],
                    window_end=row["window_end"], reason=reason)
            back.append(row["id"])
        tx.execute("UPDATE orders SET held_for = NULL WHERE id = ?", (row["id"],))
    return back


# -- changes from central ------------------------------------------------------------------------

def change(tx: Tx, current: Order, *, version: int, code_digest: str, window_hours: float,
           accessible: bool, bags: Sequence[NewBag]) -> str:
    """A higher version of an order central sent before: what can still change, changes."""
    state = current.state
    if state in (OrderState.COLLECTING, OrderState.COLLECTED, OrderState.WITHHELD,
                 OrderState.RECLAIMING, OrderState.RECLAIMED, OrderState.CANCELLED):
        raise OrderRejected(f"order {current.id} is {state.value}: version {version} comes too"
                            " late to change it")
    old_bags = [(b.zone.value, b.size.value) for b in records.bags(tx, current.id)]
    changed: list[str] = []
    if sorted(old_bags) != sorted((b.zone.value, b.size.value) for b in bags):
        if not may_rebag(tx, current):
            raise OrderRejected(f"order {current.id} is {state.value} with goods inside: its"
                                " bags can no longer change")
        release(tx, current.id)
        tx.execute("DELETE FROM order_bags WHERE order_id = ?", (current.id,))
        _insert_bags(tx, current.id, bags)
        state = OrderState(move(tx, Kind.ORDER, current.id, state,
                                "rebag" if state is OrderState.ALLOCATED else "change"))
        changed.append("bags")
    window_s = window_hours * 3600.0
    if window_s != current.window_s:
        changed.append("window")
        tx.execute("UPDATE orders SET window_s = ? WHERE id = ?", (window_s, current.id))
        if current.window_start is not None and state in (OrderState.READY,
                                                          OrderState.EXPIRED):
            window_end = current.window_start + window_s
            tx.execute("UPDATE orders SET window_end = ? WHERE id = ?",
                       (window_end, current.id))
            if state is OrderState.EXPIRED and window_end > tx.now:
                state = OrderState(move(tx, Kind.ORDER, current.id, state, "extend"))
            elif state is OrderState.READY and window_end <= tx.now:
                state = OrderState(move(tx, Kind.ORDER, current.id, state, "expire"))
                tx.emit("order.expired", "order", order_id=current.id)
    if current.accessible != accessible:
        changed.append("accessible")
        tx.execute("UPDATE orders SET accessible = ? WHERE id = ?", (int(accessible), current.id))
    if code_digest != current.code_digest:  # a new code replaces the old one at once
        code_free(tx, current.id, code_digest)
        changed.append("code")
        tx.execute("UPDATE orders SET code_digest = ? WHERE id = ?", (code_digest, current.id))
    move(tx, Kind.ORDER, current.id, state, "change")
    tx.execute("UPDATE orders SET version = ? WHERE id = ?", (version, current.id))
    tx.emit("order.changed", "order", order_id=current.id, version=version, changed=changed)
    return "changed"


def _insert_bags(tx: Tx, order_id: str, bags: Sequence[NewBag]) -> None:
    for number, bag in enumerate(bags, start=1):
        tx.insert("order_bags", {"order_id": order_id, "bag_no": number,
                                 "zone": bag.zone.value, "size": bag.size.value})


def set_version(tx: Tx, order_id: str, version: int) -> None:
    tx.execute("UPDATE orders SET version = ? WHERE id = ?", (version, order_id))


def may_rebag(tx: Tx, current: Order) -> bool:
    """Bags can change while no door of the order has been opened for loading."""
    if current.state is OrderState.RECEIVED:
        return True
    if current.state is not OrderState.ALLOCATED:
        return False
    opened = tx.one("SELECT COUNT(*) AS n FROM order_compartments WHERE order_id = ?"
                    " AND opened_at IS NOT NULL", (current.id,))
    unlocking = tx.one("SELECT COUNT(*) AS n FROM compartments WHERE order_id = ?"
                       " AND door != 'locked'", (current.id,))
    return bool(opened and unlocking and opened["n"] == 0 and unlocking["n"] == 0)


def release(tx: Tx, order_id: str) -> None:
    """Give an order's reserved (still empty) compartments back."""
    for link in records.links(tx, order_id):
        compartment.give_back(tx, link.compartment_id, "release")
    tx.execute("DELETE FROM order_compartments WHERE order_id = ?", (order_id,))
    tx.execute("UPDATE order_bags SET compartment_id = NULL WHERE order_id = ?", (order_id,))


def cancel(tx: Tx, order_id: str, actor: str, reason: str) -> str:
    """Cancel an order: its code stops working; goods inside wait for a courier to take back.

    During a pickup the cancel waits: if the customer takes the goods, it comes too late; if
    the pickup ends short, it takes effect then instead of the code working again. Returns
    "cancelled" or "cancel_pending".
    """
    current = records.order(tx, order_id)
    if current is None:
        raise CannotCancel(f"no order {order_id}")
    state = current.state
    if state is OrderState.COLLECTING:
        move(tx, Kind.ORDER, order_id, state, "cancel_later")
        tx.execute("UPDATE orders SET cancel_pending = ? WHERE id = ?", (reason, order_id))
        tx.emit("order.cancel_pending", "order", order_id=order_id, actor=actor, reason=reason)
        return "cancel_pending"
    if state is OrderState.RECLAIMING:
        raise CannotCancel(f"order {order_id} is being taken back by a courier already")
    if state in (OrderState.COLLECTED, OrderState.RECLAIMED, OrderState.CANCELLED):
        raise CannotCancel(f"order {order_id} is {state.value} already")
    goods_inside = state is not OrderState.RECEIVED and not (
        state is OrderState.ALLOCATED and may_rebag(tx, current))
    if goods_inside:
        # the courier's reclaim opens every door it still holds
        tx.execute("UPDATE order_compartments SET opened_at = NULL, closed_at = NULL"
                   " WHERE order_id = ? AND released_at IS NULL", (order_id,))
    else:
        release(tx, order_id)
    move(tx, Kind.ORDER, order_id, state, "cancel")
    tx.execute("UPDATE orders SET held_since = NULL, held_for = NULL, cancel_pending = NULL,"
               " phase_since = NULL WHERE id = ?", (order_id,))  # move() erased the code
    returns.cancel_for_order(tx, order_id, reason)
    tx.emit("order.cancelled", "order", order_id=order_id, actor=actor, reason=reason,
            goods_inside=goods_inside)
    return "cancelled"


# -- the courier: loading and taking back ---------------------------------------------------------

def reads_empty(tx: Tx, order_id: str) -> list[str]:
    """The order's loaded compartments (door closed) whose item sensor reads empty; each is
    said once (order.loaded_empty), for the courier's screen to ask for the bag.

    The way back from a sensor stuck at "empty": once the courier, asked, opened the door again
    and shut it, the courier is believed. The loading goes on, and the sensor is an alarm
    (item_sensor_suspect) until it reads occupied."""
    empty = reads_empty_now(tx, order_id)
    waiting = []
    for cid in empty:
        row = tx.one("SELECT empty_at, closed_at FROM order_compartments WHERE order_id = ?"
                     " AND compartment_id = ?", (order_id, cid))
        assert row is not None
        if row["empty_at"] is not None and row["closed_at"] > row["empty_at"]:
            tx.raise_alarm(ITEM_SENSOR_SUSPECT, cid,
                           f"compartment {cid} reads empty after the courier put order"
                           f" {order_id}'s bag in and shut it twice: its item sensor may be"
                           " blocked or broken; the order was made ready on the courier's word")
            continue
        waiting.append(cid)
        if tx.execute("UPDATE order_compartments SET empty_at = ? WHERE order_id = ?"
                      " AND compartment_id = ? AND empty_at IS NULL", (tx.now, order_id, cid)):
            tx.emit("order.loaded_empty", "order", order_id=order_id, compartment_id=cid)
    return waiting


ITEM_SENSOR_SUSPECT = "item_sensor_suspect"


def reads_empty_now(tx: Tx, order_id: str) -> list[str]:
    """Like reads_empty, without writing (for screens)."""
    return [r["compartment_id"] for r in tx.all(
        "SELECT oc.compartment_id FROM order_compartments oc"
        " JOIN compartments c ON c.id = oc.compartment_id"
        " WHERE oc.order_id = ? AND oc.released_at IS NULL AND oc.closed_at IS NOT NULL"
        " AND c.item = 0 ORDER BY oc.compartment_id", (order_id,))]


def reopen_for_loading(tx: Tx, order_id: str, compartment_id: str) -> bool:
    """A loaded compartment that reads empty waits for its door again (the courier puts the
    bag in); False if it is not one."""
    return tx.execute(
        "UPDATE order_compartments SET opened_at = NULL, closed_at = NULL WHERE order_id = ?"
        " AND compartment_id = ? AND released_at IS NULL AND closed_at IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM compartments c WHERE c.id = ? AND c.item = 0)",
        (order_id, compartment_id, compartment_id)) > 0


def waiting_doors(tx: Tx, order_id: str) -> list[str]:
    """The order's compartments whose door has not been opened and closed in this phase."""
    return [link.compartment_id for link in records.links(tx, order_id)
            if link.closed_at is None]


def reclaim(tx: Tx, config: LockerConfig, order_id: str, actor: str,
            reachable: Reachable) -> tuple[list[str], list[Door]]:
    """Open every door of an expired, cancelled or withheld order still holding goods."""
    current = get(tx, order_id)
    if current.state not in RECLAIMABLE:
        raise Refused("not_expired", f"order {order_id} is {current.state.value}; only an"
                      " expired, cancelled or withheld order is taken back")
    compartments = waiting_doors(tx, order_id)
    refuse_unreachable(compartments, reachable)
    move(tx, Kind.ORDER, order_id, current.state, "reclaim")
    tx.execute("UPDATE orders SET phase_since = ? WHERE id = ?", (tx.now, order_id))
    doors = [door.authorise(tx, config, cid, order_id, actor, "reclaim") for cid in compartments]
    tx.emit("order.reclaiming", "order", order_id=order_id, actor=actor)
    return compartments, doors


def refuse_unreachable(compartments: Sequence[str], reachable: Reachable, *,
                       customer_help: str | None = None) -> None:
    """Nothing is authorised when one of these doors cannot open now. `customer_help`: the
    answer is for a customer (whose code still works), with this number to call."""
    unreachable = tuple(cid for cid in compartments if not reachable(cid))
    if not unreachable:
        return
    which = f"compartment{'s' if len(unreachable) > 1 else ''} {', '.join(unreachable)}"
    if customer_help is None:
        message = (f"{which} cannot open right now (its lock board does not answer); nothing"
                   " was opened. Try again in a few minutes")
    else:
        message = (f"{which} cannot open right now; nothing was opened and your code still"
                   " works. Please try again in a few minutes"
                   + (f" or call {customer_help}" if customer_help else ""))
    raise Unavailable("temporarily_unavailable", message, unreachable)


def reallocate_after_jam(tx: Tx, config: LockerConfig, auth: Authorisation,
                         reachable: Reachable) -> list[Door]:
    """A door jammed while its order was being loaded: that compartment goes out of service and
    its bags are given other compartments, whose doors are authorised here (the caller pulses
    them once this has committed)."""
    cid, order_id = auth.compartment_id, auth.order_id
    current = records.order(tx, order_id) if order_id else None
    if current is None or order_id is None or current.state is not OrderState.ALLOCATED:
        return []
    bags = [b.number for b in records.bags(tx, order_id) if b.compartment_id == cid]
    tx.execute("UPDATE order_bags SET compartment_id = NULL WHERE order_id = ?"
               " AND compartment_id = ?", (order_id, cid))
    tx.execute("DELETE FROM order_compartments WHERE order_id = ? AND compartment_id = ?",
               (order_id, cid))
    compartment.jammed_while_loading(tx, cid)
    try:
        moved = allocate(tx, config, order_id, bags, reachable)
    except NoRoom as exc:
        tx.emit("order.reallocation_failed", "order", order_id=order_id, error=str(exc))
        tx.raise_alarm("reallocation_failed", order_id,
                       f"order {order_id}: compartment {cid} jammed during loading and {exc};"
                       " the courier must take those bags back, or load them once room is free")
        return []
    for new in moved:
        tx.execute("UPDATE order_compartments SET replaces = ? WHERE order_id = ?"
                   " AND compartment_id = ?", (cid, order_id, new))
    tx.emit("order.reallocated", "order", order_id=order_id, jammed=cid, to=moved)
    return [door.authorise(tx, config, new, order_id, auth.actor, "load") for new in moved]


def relink_after_late_opening(tx: Tx, auth: Authorisation) -> None:
    """A door that jammed while loading (its compartment out of service, its bags given another)
    opened late for the courier after all: what went in must come out with the order. The
    compartment is the order's again, beside the one its bags were moved to; the customer's
    code opens both, and the empty one is freed at the pickup."""
    cid, order_id = auth.compartment_id, auth.order_id
    current = records.order(tx, order_id) if order_id else None
    if current is None or current.state is not OrderState.ALLOCATED or any(
            link.compartment_id == cid for link in records.links(tx, current.id)):
        return
    row = compartment.get(tx, cid)
    if row.state is not CompartmentState.OUT_OF_SERVICE:
        return
    compartment.relink(tx, cid, current.id)
    tx.insert("order_compartments", {"order_id": current.id, "compartment_id": cid,
                                     "bag_zone": row.zone.value, "bag_size": row.size.value,
                                     "opened_at": tx.now})
    tx.emit("order.relinked", "order", order_id=current.id, compartment=cid,
            reason="its door opened late, after its bags were moved")


# -- the reconcile pass ---------------------------------------------------------------------------

def settle(tx: Tx, config: LockerConfig, order_id: str) -> str | None:
    """Move the order one step toward ready, collected or a courier's list, from what its doors
    and authorisations say now. Idempotent; returns the event taken, if any."""
    current = records.order(tx, order_id)
    if current is None:
        return None
    if current.state is OrderState.ALLOCATED:
        return _settle_loading(tx, config, current)
    if current.state is OrderState.LOADED and current.held_for == ZONE_HOLD:
        zones = {b.zone.value for b in records.bags(tx, order_id)}
        if not zones & blocked_zones(tx):
            activate(tx, order_id)
            return "activate"
        return None
    if current.state is OrderState.READY:
        if any(link.opened_at is not None for link in records.links(tx, order_id)):
            move(tx, Kind.ORDER, order_id, current.state, "late_opening")
            tx.execute("UPDATE orders SET phase_since = ? WHERE id = ?", (tx.now, order_id))
            tx.emit("order.collecting", "order", order_id=order_id, late=True,
                    compartments=waiting_doors(tx, order_id))
            return "late_opening"
        return None
    if current.state in (OrderState.COLLECTING, OrderState.RECLAIMING):
        return _settle_phase(tx, config, current)
    return None


def _settle_loading(tx: Tx, config: LockerConfig, current: Order
                    ) -> str | None:
    held = records.links(tx, current.id)
    if not held or any(link.closed_at is None for link in held):
        return None  # the courier is not done
    if any(b.compartment_id is None for b in records.bags(tx, current.id)):
        return None  # some bags still have no compartment: they wait in the courier's list
    if reads_empty(tx, current.id):
        return None  # the courier puts the bag in (or the sensor is wrong: ops can tell)
    zones = {b.zone.value for b in records.bags(tx, current.id)}
    blocked = zones & blocked_zones(tx)
    if blocked:
        tx.emit("order.loaded_zone_out_of_limits", "order", order_id=current.id,
                zones=sorted(blocked))
        _hold_loaded(tx, current, ZONE_HOLD)
        return "hold_loaded"
    activate(tx, current.id)
    return "activate"


def _settle_phase(tx: Tx, config: LockerConfig, current: Order) -> str | None:
    """A pickup or a reclaim: done when every door opened and closed; back to where a person
    can try again when the doors still waiting will not open any more."""
    pickup = current.state is OrderState.COLLECTING
    inside = records.links(tx, current.id)
    # a pickup waits only for the doors it opened: the bags kept back stay for a courier
    held = [link for link in inside if not (pickup and link.withheld)]
    if held and all(link.closed_at is not None for link in held):
        kept = [link.compartment_id for link in inside if link not in held]
        _release_links(tx, current.id, held)
        move(tx, Kind.ORDER, current.id, current.state, "collect_rest" if kept else "all_closed")
        tx.execute("UPDATE orders SET phase_since = NULL WHERE id = ?", (current.id,))
        kind = "order.collected" if pickup else "order.reclaimed"
        if current.cancel_pending is not None:
            tx.emit("order.cancel_too_late", "order", order_id=current.id,
                    reason=current.cancel_pending)
            tx.execute("UPDATE orders SET cancel_pending = NULL WHERE id = ?", (current.id,))
        last = tx.one("SELECT actor FROM authorisations WHERE order_id = ? ORDER BY id DESC"
                      " LIMIT 1", (current.id,))
        extra: dict[str, Any] = {}
        if pickup:  # what the bags lived through, from their loading to this moment
            extra["certificate"] = certificates.issue(tx, config, current.id).wire()
            if kept:
                extra["withheld"] = kept
        tx.emit(kind, "order", order_id=current.id, actor=last["actor"] if last else None,
                **extra)
        log.info("%s: %s", kind, current.id)
        return "all_closed"
    since = current.phase_since
    if since is None:
        return None  # no phase under way (a reclaim that already ended unfinished)
    timeout_s = config.doors.open_timeout_s
    missed: list[Link] = []
    for link in held:
        if link.closed_at is not None:
            continue
        if link.opened_at is not None:
            return None  # open now: wait for it to close
        auth = records.latest_authorisation(tx, link.compartment_id, current.id, since)
        if not door.settled_unopened(auth, tx.now, timeout_s):
            return None  # it may still open
        missed.append(link)
    done = [link for link in held if link.closed_at is not None]
    _release_links(tx, current.id, done)
    lost_s = max(0.0, tx.now - since)
    remaining = [link.compartment_id for link in missed]
    if not pickup:
        move(tx, Kind.ORDER, current.id, current.state, "interrupt")
        tx.execute("UPDATE orders SET phase_since = NULL WHERE id = ?", (current.id,))
        tx.emit("order.reclaim_interrupted", "order", order_id=current.id,
                taken_back=[link.compartment_id for link in done], remaining=remaining)
        return "interrupt"
    if current.cancel_pending is not None:  # central cancelled it meanwhile: it is, now
        tx.execute("UPDATE order_compartments SET opened_at = NULL, closed_at = NULL"
                   " WHERE order_id = ? AND released_at IS NULL", (current.id,))
        move(tx, Kind.ORDER, current.id, current.state, "cancel")
        tx.execute("UPDATE orders SET code_digest = NULL, phase_since = NULL, held_since = NULL,"
                   " held_for = NULL, cancel_pending = NULL WHERE id = ?", (current.id,))
        returns.cancel_for_order(tx, current.id, current.cancel_pending)
        tx.emit("order.cancelled", "order", order_id=current.id, actor="central",
                reason=current.cancel_pending, goods_inside=True,
                collected=[link.compartment_id for link in done])
        return "cancel"
    event = "part_collect" if done else "interrupt"
    move(tx, Kind.ORDER, current.id, current.state, event)
    window_end = float(current.window_end or tx.now) + lost_s
    tx.execute("UPDATE orders SET window_end = ?, phase_since = NULL WHERE id = ?",
               (window_end, current.id))
    if done:
        tx.emit("order.partly_collected", "order", order_id=current.id,
                collected=[link.compartment_id for link in done], remaining=remaining,
                window_end=window_end)
    else:
        tx.emit("order.pickup_interrupted", "order", order_id=current.id,
                compartments=remaining, window_end=window_end)
    log.warning("order %s: %s; its code opens %s again", current.id,
                "partly collected" if done else "pickup interrupted", ", ".join(remaining))
    return event


def _release_links(tx: Tx, order_id: str, links: Sequence[Link]) -> None:
    """These compartments' goods are out: they are free for the next order."""
    for link in links:
        compartment.give_back(tx, link.compartment_id, "empty")
        tx.execute("UPDATE order_compartments SET released_at = ? WHERE order_id = ?"
                   " AND compartment_id = ?", (tx.now, order_id, link.compartment_id))


# -- forgetting ---------------------------------------------------------------------------------

FINISHED = (OrderState.COLLECTED.value, OrderState.RECLAIMED.value, OrderState.CANCELLED.value)


def forget_finished(tx: Tx, cutoff: float) -> dict[str, int]:
    """Delete orders finished before `cutoff` (nothing left inside), with their bags, links,
    flags, and settled authorisations; remember the highest sequence forgotten. Returns the
    rows gone per table."""
    gone: dict[str, int] = {}
    finished = tx.all(
        "SELECT id, sequence FROM orders o WHERE state IN (?, ?, ?) AND updated_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM compartments c WHERE c.order_id = o.id)",
        (*FINISHED, cutoff))
    ids = [r["id"] for r in finished]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for table in ("order_flags", "certificates", "order_bags", "order_compartments",
                      "orders"):
            column = "id" if table == "orders" else "order_id"
            gone[table] = gone.get(table, 0) + tx.execute(
                f"DELETE FROM {table} WHERE {column} IN ({marks})", tuple(chunk))
    gone["authorisations"] = tx.execute(
        "DELETE FROM authorisations WHERE outcome IS NOT NULL AND created_at < ?", (cutoff,))
    if finished:
        top = max(int(r["sequence"]) for r in finished)
        tx.set_meta(PRUNED_SEQUENCE, str(max(top, pruned_up_to(tx))))
    return gone


def under_way(tx: Tx, *, loading: bool = False) -> list[str]:
    """Orders that settle() may move on without a door event: pickups and reclaims under way,
    orders loaded into a zone out of its limits; with `loading`, orders being loaded too (after
    a restart, whose door events may have been missed)."""
    states = [OrderState.COLLECTING.value]
    if loading:
        states.append(OrderState.ALLOCATED.value)
    marks = ", ".join("?" * len(states))
    return [r["id"] for r in tx.all(
        f"SELECT id FROM orders WHERE state IN ({marks})"
        " OR (state = ? AND phase_since IS NOT NULL) OR (state = ? AND held_for = ?)",
        (*states, OrderState.RECLAIMING.value, OrderState.LOADED.value, ZONE_HOLD))]
