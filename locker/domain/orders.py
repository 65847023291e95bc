"""Orders at the locker itself: the CLI's and the demo's way to add one, and the clock's expiry.

The steps (receive, allocate, activate, expire) are locker.domain.lifecycle.order's; this module
only chains them into the use cases that need them in one transaction: `add_ready_order` (the demo
and the CLI) receives, allocates and activates at once; a courier's loading allocates now and
activates when the doors are closed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from locker.domain.allocation import Bag
from locker.domain.codes import PickupCodes
from locker.domain.config import LockerConfig
from locker.domain.lifecycle.order import (
    ORDER_ID,
    OrderRejected,
    activate,
    draw_code,
    expire_due,
    receive,
)
from locker.domain.lifecycle.order import allocate as allocate_order
from locker.domain.model import ZONES, Size, Zone
from locker.domain.store import Store

__all__ = ["ORDER_ID", "AddedOrder", "OrderRejected", "activate", "add_order_to_load",
           "add_ready_order", "allocate_order", "expire_orders", "parse_bag", "receive"]


@dataclass(frozen=True)
class AddedOrder:
    order_id: str
    code: str  # for the operator who added it, to tell the customer; never stored or logged
    compartments: tuple[tuple[str, str], ...]  # (compartment id, location)
    window_end: float


def parse_bag(text: str) -> Bag:
    """'frozen:M' -> Bag(FROZEN, M); the CLI's way of writing a bag."""
    zone, _, size = text.partition(":")
    try:
        return Bag(Zone(zone.strip().lower()), Size((size or "M").strip().upper()))
    except ValueError:
        raise OrderRejected(
            f"bad bag {text!r}: write zone:size, zone one of {', '.join(ZONES)},"
            " size one of S, M, L"
        ) from None


def add_ready_order(store: Store, config: LockerConfig, codes: PickupCodes, now: float,
                    order_id: str, bags: Sequence[Bag], *, window_hours: float | None = None,
                    accessible: bool = False) -> AddedOrder:
    """Receive, allocate and activate at once: an order loaded by someone off-screen."""
    with store.transaction(now) as tx:
        code, digest = draw_code(tx, codes, order_id)
        receive(tx, config, order_id, bags, code_digest=digest, window_hours=window_hours,
                accessible=accessible)
        compartments = allocate_order(tx, config, order_id)
        window_end = activate(tx, order_id)
    return AddedOrder(
        order_id=order_id, code=code,
        compartments=tuple((cid, config.compartment(cid).location) for cid in compartments),
        window_end=window_end,
    )


def add_order_to_load(store: Store, config: LockerConfig, codes: PickupCodes, now: float,
                      order_id: str, bags: Sequence[Bag], *, window_hours: float | None = None,
                      accessible: bool = False) -> str:
    """An order for a courier to load (a locker without central); returns its code, the only
    time it is known, for whoever tells the customer."""
    with store.transaction(now) as tx:
        code, digest = draw_code(tx, codes, order_id)
        receive(tx, config, order_id, bags, code_digest=digest, window_hours=window_hours,
                accessible=accessible)
    return code


def expire_orders(store: Store, now: float, *, held_since: float | None = None,
                  hold_s: float = 0.0, provisional: bool = False) -> list[str]:
    """Ready orders whose pickup window has ended stop accepting their code (see
    locker.domain.lifecycle.order.expire_due for the windows that are held instead)."""
    due = store.read().one("SELECT 1 AS due FROM orders WHERE state = 'ready' AND window_end <= ?"
                           " AND held_since IS NULL LIMIT 1", (now,))
    if due is None:
        return []
    with store.transaction(now) as tx:
        return expire_due(tx, held_since=held_since, hold_s=hold_s, provisional=provisional)
