"""What couriers and technicians do at the locker: load orders, take back expired ones, open a
compartment for maintenance, take one out of service.

Every door goes through locker.lifecycle.door (authorise in a transaction, commit, then pulse),
with the staff member (or central ops) as the actor, so every opening records who and why.
Nothing is authorised when a door cannot open now (its board is offline). What happens when the
doors close again (an order becomes ready, or is reclaimed) is the reconcile pass's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from locker import deadline
from locker.allocation import NoRoom
from locker.clock import Clock
from locker.config import LockerConfig
from locker.errors import Refused
from locker.lifecycle import compartment as compartment_life
from locker.lifecycle import door as door_life
from locker.lifecycle import order as order_life
from locker.lifecycle import records
from locker.lifecycle.order import RECLAIMABLE, blocked_zones
from locker.model import OrderState
from locker.ports import LockDriver
from locker.store import Store
from locker.unlocking import Door, pulse

__all__ = ["CourierService", "DoorsResult", "Refused"]


@dataclass
class DoorsResult:
    order_id: str | None
    compartments: list[str] = field(default_factory=list)
    opened: list[Door] = field(default_factory=list)
    failed: list[Door] = field(default_factory=list)


class CourierService:
    def __init__(self, store: Store, config: LockerConfig, driver: LockDriver,
                 clock: Clock) -> None:
        self.store, self.config, self.driver, self.clock = store, config, driver, clock

    def orders(self) -> dict[str, list[dict[str, Any]]]:
        """Orders to load (received or being loaded) and expired orders to take back."""
        read = self.store.read()
        to_load = []
        for order in records.orders_in(read, OrderState.RECEIVED, OrderState.ALLOCATED):
            to_load.append({"order": order.id, "state": order.state.value,
                            "accessible": order.accessible,
                            "bags": [{"zone": b.zone.value, "size": b.size.value,
                                      "compartment": b.compartment_id}
                                     for b in records.bags(read, order.id)]})
        to_reclaim = [
            {"order": r["id"], "compartments": (r["compartments"] or "").split(",")}
            for r in read.all(
                "SELECT o.id, group_concat(oc.compartment_id) AS compartments FROM orders o"
                " JOIN order_compartments oc ON oc.order_id = o.id AND oc.released_at IS NULL"
                " WHERE o.state IN (?, ?, ?) GROUP BY o.id ORDER BY o.window_end",
                tuple(s.value for s in RECLAIMABLE))
        ]
        return {"to_load": to_load, "to_reclaim": to_reclaim}

    async def load(self, actor: str, order_id: str, together: bool = True) -> DoorsResult:
        """Allocate the order's bags and open the doors (all now, or one by one later)."""
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            order = order_life.get(tx, order_id)
            if order.state not in (OrderState.RECEIVED, OrderState.ALLOCATED):
                raise Refused("not_to_load", f"order {order_id} is {order.state.value}, not"
                              " waiting to be loaded")
            bags = records.bags(tx, order_id)
            blocked = {b.zone.value for b in bags} & blocked_zones(tx)
            if blocked:
                raise Refused("zone_blocked", f"loading into {', '.join(sorted(blocked))} is"
                              " blocked: the zone is out of its temperature limits")
            if any(b.compartment_id is None for b in bags):
                try:
                    order_life.allocate(tx, self.config, order_id,
                                        reachable=self.driver.reachable)
                except NoRoom as exc:
                    raise Refused("no_room", str(exc), missing=[
                        {"zone": b.zone.value, "size": b.size.value} for b in exc.missing
                    ]) from None
            compartments = order_life.waiting_doors(tx, order_id)
            doors: list[Door] = []
            if together:
                order_life.refuse_unreachable(compartments, self.driver.reachable)
                doors = [door_life.authorise(tx, self.config, cid, order_id, actor, "load")
                         for cid in compartments]
        result = DoorsResult(order_id, compartments)
        if doors:
            result.opened, result.failed = await pulse(self.store, self.driver, self.clock,
                                                       doors)
        return result

    async def open_for_loading(self, actor: str, order_id: str,
                               compartment_id: str) -> DoorsResult:
        """One door of an order being loaded, when the courier goes one by one."""
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            order = order_life.get(tx, order_id)
            if order.state is not OrderState.ALLOCATED:
                raise Refused("not_loading", f"order {order_id} is not being loaded")
            if compartment_id not in order_life.waiting_doors(tx, order_id):
                raise Refused("not_this_order", f"compartment {compartment_id} is not waiting"
                              f" for order {order_id}")
            order_life.refuse_unreachable([compartment_id], self.driver.reachable)
            door = door_life.authorise(tx, self.config, compartment_id, order_id, actor, "load")
        opened, failed = await pulse(self.store, self.driver, self.clock, [door])
        return DoorsResult(order_id, [compartment_id], opened, failed)

    async def reclaim(self, actor: str, order_id: str) -> DoorsResult:
        """Open every door of an expired order; the compartments are freed once closed."""
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            compartments, doors = order_life.reclaim(tx, self.config, order_id, actor,
                                                     self.driver.reachable)
        opened, failed = await pulse(self.store, self.driver, self.clock, doors)
        return DoorsResult(order_id, compartments, opened, failed)

    async def open_compartment(self, actor: str, compartment_id: str,
                               reason: str) -> DoorsResult:
        """A technician opens one compartment, saying why."""
        reason = reason.strip()
        if not 3 <= len(reason) <= 200:
            raise Refused("reason", "say why the compartment is opened (3-200 characters)")
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            row = compartment_life.get(tx, compartment_id)
            order_life.refuse_unreachable([compartment_id], self.driver.reachable)
            door = door_life.authorise(tx, self.config, compartment_id, row.order_id, actor,
                                       f"maintenance: {reason}")
        opened, failed = await pulse(self.store, self.driver, self.clock, [door])
        return DoorsResult(row.order_id, [compartment_id], opened, failed)

    def set_in_service(self, actor: str, compartment_id: str, in_service: bool,
                       reason: str) -> None:
        """Take an empty compartment out of service, or put one back."""
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            compartment_life.set_in_service(tx, compartment_id, in_service, actor, reason)
