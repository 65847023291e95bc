"""Orders entering the locker and leaving it by the clock: add (allocate + ready), expire.

Until central sync and courier loading exist, an order is added ready-to-collect: its bags are
allocated, its compartments marked loaded, its pickup code derived and made active, all in one
transaction with its events.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from locker.allocation import Bag, FreeCompartment, allocate
from locker.codes import PickupCodes
from locker.config import LockerConfig
from locker.errors import LockerError
from locker.model import CompartmentState, OrderState, Size, Zone
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


def _next_sequence(tx: Tx) -> int:
    row = tx.one("SELECT MAX(sequence) AS top FROM orders")
    return 1 if row is None or row["top"] is None else int(row["top"]) + 1


def add_ready_order(store: Store, config: LockerConfig, codes: PickupCodes, now: float,
                    order_id: str, bags: Sequence[Bag], *, window_hours: float | None = None,
                    accessible: bool = False) -> AddedOrder:
    if not ORDER_ID.match(order_id):
        raise OrderRejected(f"order id {order_id!r}: 1-64 letters, digits, '.', '_' or '-'")
    if not bags:
        raise OrderRejected(f"order {order_id}: give at least one bag")
    hours = config.codes.pickup_window_hours if window_hours is None else window_hours
    if not 0 < hours <= 24 * 30:
        raise OrderRejected(f"order {order_id}: pickup window must be 0-720 hours, not {hours}")
    levels = {c.id: c.level for c in config.compartments}
    with store.transaction(now) as tx:
        if tx.one("SELECT id FROM orders WHERE id = ?", (order_id,)):
            raise OrderRejected(f"order {order_id} exists already")
        free = [
            FreeCompartment(r["id"], Zone(r["zone"]), Size(r["size"]), levels.get(r["id"], 1))
            for r in tx.all("SELECT id, zone, size FROM compartments WHERE state = ?"
                            " AND door IN ('locked', 'closed')", (CompartmentState.FREE.value,))
        ]
        placed = allocate(bags, free, accessible)
        sequence = _next_sequence(tx)
        # a code equal to an active order's would open both: skip that sequence number
        while True:
            code = codes.code_for(sequence)
            digest = codes.digest(code)
            clash = tx.one("SELECT id FROM orders WHERE code_digest = ? AND state = ?",
                           (digest, OrderState.READY.value))
            if clash is None:
                break
            tx.emit("security.code_collision", "security", order_id=order_id,
                    sequence=sequence, active_order=clash["id"])
            sequence += 1
        window_end = now + hours * 3600.0
        tx.insert("orders", {
            "id": order_id, "version": 1, "sequence": sequence,
            "state": OrderState.READY.value, "code_digest": digest, "window_start": now,
            "window_end": window_end, "accessible": int(accessible),
            "created_at": now, "updated_at": now,
        })
        for bag, compartment in placed:
            tx.insert("order_compartments", {
                "order_id": order_id, "compartment_id": compartment.id,
                "bag_zone": bag.zone.value, "bag_size": bag.size.value,
            })
            tx.execute("UPDATE compartments SET state = ?, order_id = ?, updated_at = ?"
                       " WHERE id = ?", (CompartmentState.LOADED.value, order_id, now,
                                         compartment.id))
        tx.emit("order.ready", "order", order_id=order_id, sequence=sequence,
                window_end=window_end,
                compartments=sorted(c.id for _, c in placed))
    return AddedOrder(
        order_id=order_id, sequence=sequence, code=code,
        compartments=tuple(sorted((c.id, config.compartment(c.id).location) for _, c in placed)),
        window_end=window_end,
    )


def expire_orders(store: Store, now: float) -> list[str]:
    """Ready orders whose pickup window has ended stop accepting their code."""
    expired = [r["id"] for r in store.read().all(
        "SELECT id FROM orders WHERE state = ? AND window_end <= ?",
        (OrderState.READY.value, now))]
    if not expired:
        return []
    with store.transaction(now) as tx:
        for order_id in expired:
            if tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                          (OrderState.EXPIRED.value, now, order_id, OrderState.READY.value)):
                tx.emit("order.expired", "order", order_id=order_id)
    return expired
