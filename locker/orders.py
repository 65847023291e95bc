"""An order's way through the locker: received, allocated, ready, and expired by the clock.

Each step is a function over an open transaction, so a use case can chain them and still commit
once: `add_ready_order` (the demo and the CLI) receives, allocates and activates in one go; a
courier's loading allocates now and activates when the doors are closed again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from locker.allocation import UNITS, Bag, FreeCompartment, allocate
from locker.codes import PickupCodes
from locker.config import LockerConfig
from locker.errors import LockerError
from locker.model import CompartmentState, DoorState, OrderState, Size, Zone
from locker.retention import pruned_up_to
from locker.store import Store, Tx

ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class OrderRejected(LockerError, ValueError):
    """An order that cannot be taken as given; nothing was stored."""


@dataclass(frozen=True)
class AddedOrder:
    order_id: str
    sequence: int
    code: str  # for the operator who added it (central's job later); never stored or logged
    compartments: tuple[tuple[str, str], ...]  # (compartment id, location)
    window_end: float


def parse_bag(text: str) -> Bag:
    """'frozen:M' -> Bag(FROZEN, M); the CLI's way of writing a bag."""
    zone, _, size = text.partition(":")
    try:
        return Bag(Zone(zone.strip().lower()), Size((size or "M").strip().upper()))
    except ValueError:
        raise OrderRejected(
            f"bad bag {text!r}: write zone:size, zone one of ambient, fresh, frozen,"
            " size one of S, M, L"
        ) from None


def receive(tx: Tx, config: LockerConfig, order_id: str, bags: Sequence[Bag], *,
            window_hours: float | None = None, accessible: bool = False,
            sequence: int | None = None, version: int = 1) -> None:
    """Take an order in, waiting for a courier to load it.

    Central gives the sequence (the HOTP counter it derives the customer's code from); an order
    added at the locker itself takes the next free one.
    """
    if not ORDER_ID.match(order_id):
        raise OrderRejected(f"order id {order_id!r}: 1-64 letters, digits, '.', '_' or '-'")
    if not bags:
        raise OrderRejected(f"order {order_id}: give at least one bag")
    hours = config.codes.pickup_window_hours if window_hours is None else window_hours
    if not 0 < hours <= 24 * 30:
        raise OrderRejected(f"order {order_id}: pickup window must be 0-720 hours, not {hours}")
    if tx.one("SELECT id FROM orders WHERE id = ?", (order_id,)):
        raise OrderRejected(f"order {order_id} exists already")
    tx.insert("orders", {
        "id": order_id, "version": version,
        "sequence": _next_sequence(tx) if sequence is None else sequence,
        "state": OrderState.RECEIVED.value, "code_digest": None, "window_start": None,
        "window_end": None, "window_s": hours * 3600.0,
        "accessible": int(accessible), "created_at": tx.now, "updated_at": tx.now,
    })
    for number, bag in enumerate(bags, start=1):
        tx.insert("order_bags", {"order_id": order_id, "bag_no": number,
                                 "zone": bag.zone.value, "size": bag.size.value})
    tx.emit("order.received", "order", order_id=order_id,
            bags=[f"{b.zone.value}:{b.size.value}" for b in bags])


def free_compartments(tx: Tx, config: LockerConfig) -> list[FreeCompartment]:
    """Free, in-service compartments whose door is shut."""
    levels = {c.id: c.level for c in config.compartments}
    return [
        FreeCompartment(r["id"], Zone(r["zone"]), Size(r["size"]), levels.get(r["id"], 1))
        for r in tx.all("SELECT id, zone, size FROM compartments WHERE state = ? AND door = ?",
                        (CompartmentState.FREE.value, DoorState.LOCKED.value))
    ]


def allocate_order(tx: Tx, config: LockerConfig, order_id: str,
                   bag_numbers: Sequence[int] | None = None) -> list[str]:
    """Reserve compartments for the order's unplaced bags (or the given ones); NoRoom if not.

    Returns the compartments reserved. Nothing is written before the whole allocation is known.
    """
    order = tx.one("SELECT * FROM orders WHERE id = ?", (order_id,))
    if order is None:
        raise OrderRejected(f"no order {order_id}")
    rows = tx.all("SELECT * FROM order_bags WHERE order_id = ? ORDER BY bag_no", (order_id,))
    if bag_numbers is not None:
        rows = [r for r in rows if r["bag_no"] in bag_numbers]
    else:
        rows = [r for r in rows if r["compartment_id"] is None]
    bags = [(r["bag_no"], Bag(Zone(r["zone"]), Size(r["size"]))) for r in rows]
    placed = allocate([b for _, b in bags], free_compartments(tx, config),
                      bool(order["accessible"]))
    numbers = {id(bag): number for number, bag in bags}  # allocate() hands back these objects
    reserved: dict[str, list[Bag]] = {}
    for bag, compartment in placed:
        tx.execute("UPDATE order_bags SET compartment_id = ? WHERE order_id = ? AND bag_no = ?",
                   (compartment.id, order_id, numbers[id(bag)]))
        reserved.setdefault(compartment.id, []).append(bag)
    for cid, in_it in reserved.items():
        largest = max(in_it, key=lambda b: UNITS[b.size])
        tx.insert("order_compartments", {"order_id": order_id, "compartment_id": cid,
                                         "bag_zone": largest.zone.value,
                                         "bag_size": largest.size.value})
        tx.execute("UPDATE compartments SET state = ?, order_id = ?, updated_at = ? WHERE id = ?",
                   (CompartmentState.RESERVED.value, order_id, tx.now, cid))
    if order["state"] == OrderState.RECEIVED.value:
        tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ?",
                   (OrderState.ALLOCATED.value, tx.now, order_id))
    tx.emit("order.allocated", "order", order_id=order_id, compartments=sorted(reserved))
    return sorted(reserved)


def activate(tx: Tx, codes: PickupCodes, order_id: str, *,
             local_reissue: bool = True) -> tuple[int, str, float] | None:
    """The goods are in: compartments loaded, a pickup code made active, the window started.

    Returns (sequence, code, window end). A code equal to an active order's would open both, so
    it is never activated: it is reported, and either a fresh local sequence is taken (orders
    added at the locker) or the order waits, loaded, for central's new version with a new
    sequence (returns None), since central must know the code it tells the customer.
    """
    order = tx.one("SELECT * FROM orders WHERE id = ?", (order_id,))
    assert order is not None
    sequence = int(order["sequence"])
    while True:
        code = codes.code_for(sequence)
        digest = codes.digest(code)
        clash = tx.one("SELECT id FROM orders WHERE code_digest = ? AND state = ?",
                       (digest, OrderState.READY.value))
        if clash is None:
            break
        tx.emit("security.code_collision", "security", order_id=order_id, sequence=sequence,
                active_order=clash["id"])
        if not local_reissue:
            tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ?",
                       (OrderState.LOADED.value, tx.now, order_id))
            tx.execute("UPDATE compartments SET state = ?, updated_at = ? WHERE order_id = ?",
                       (CompartmentState.LOADED.value, tx.now, order_id))
            return None
        sequence = _next_sequence(tx)
        tx.execute("UPDATE orders SET sequence = ? WHERE id = ?", (sequence, order_id))
    window_end = tx.now + float(order["window_s"])
    tx.execute("UPDATE orders SET state = ?, sequence = ?, code_digest = ?, window_start = ?,"
               " window_end = ?, updated_at = ? WHERE id = ?",
               (OrderState.READY.value, sequence, digest, tx.now, window_end, tx.now, order_id))
    # the doors' progress is counted again for the customer
    tx.execute("UPDATE order_compartments SET opened_at = NULL, closed_at = NULL"
               " WHERE order_id = ?", (order_id,))
    compartments = [r["compartment_id"] for r in tx.all(
        "SELECT compartment_id FROM order_compartments WHERE order_id = ?", (order_id,))]
    tx.execute("UPDATE compartments SET state = ?, updated_at = ? WHERE order_id = ?",
               (CompartmentState.LOADED.value, tx.now, order_id))
    tx.emit("order.ready", "order", order_id=order_id, sequence=sequence, window_end=window_end,
            compartments=sorted(compartments))
    return sequence, code, window_end


def blocked_zones(tx: Tx) -> set[str]:
    """Zones with an open cold-chain excursion alarm: nothing is loaded into them."""
    return {r["subject"] for r in tx.all(
        "SELECT subject FROM alarms WHERE kind = 'zone_excursion' AND cleared_at IS NULL")}


def _next_sequence(tx: Tx) -> int:
    """Above every sequence in use and every one forgotten: a code never comes back."""
    row = tx.one("SELECT MAX(sequence) AS top FROM orders")
    top = 0 if row is None or row["top"] is None else int(row["top"])
    return max(top, pruned_up_to(tx)) + 1


def add_ready_order(store: Store, config: LockerConfig, codes: PickupCodes, now: float,
                    order_id: str, bags: Sequence[Bag], *, window_hours: float | None = None,
                    accessible: bool = False) -> AddedOrder:
    """Receive, allocate and activate at once: an order loaded by someone off-screen."""
    with store.transaction(now) as tx:
        receive(tx, config, order_id, bags, window_hours=window_hours, accessible=accessible)
        compartments = allocate_order(tx, config, order_id)
        activated = activate(tx, codes, order_id)
        assert activated is not None  # a local order takes a fresh sequence on a collision
        sequence, code, window_end = activated
    return AddedOrder(
        order_id=order_id, sequence=sequence, code=code,
        compartments=tuple((cid, config.compartment(cid).location) for cid in compartments),
        window_end=window_end,
    )


def add_order_to_load(store: Store, config: LockerConfig, now: float, order_id: str,
                      bags: Sequence[Bag], *, window_hours: float | None = None,
                      accessible: bool = False) -> None:
    """An order for a courier to load (until central sync brings them)."""
    with store.transaction(now) as tx:
        receive(tx, config, order_id, bags, window_hours=window_hours, accessible=accessible)


def expire_orders(store: Store, now: float, *, held_since: float | None = None,
                  hold_s: float = 0.0,
                  publish: Callable[[Tx], None] = lambda tx: None) -> list[str]:
    """Ready orders whose pickup window has ended stop accepting their code.

    While central is unreachable (since `held_since`), a window that ends is held open, for at
    most `hold_s`: the customer may not have been told anything, and the window is extended by
    the outage's length once central answers again.
    """
    expired = [r["id"] for r in store.read().all(
        "SELECT id, window_end FROM orders WHERE state = ? AND window_end <= ?",
        (OrderState.READY.value, now))
        if held_since is None or r["window_end"] <= held_since or now - r["window_end"] > hold_s]
    if not expired:
        return []
    with store.transaction(now) as tx:
        for order_id in expired:
            if tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ?"
                          " AND state = ?",
                          (OrderState.EXPIRED.value, now, order_id, OrderState.READY.value)):
                tx.emit("order.expired", "order", order_id=order_id)
    publish(tx)
    return expired
