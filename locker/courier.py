"""What couriers and technicians do at the locker: load orders, take back expired ones, open a
compartment for maintenance, take one out of service.

Every door goes through locker.unlocking (authorise in a transaction, commit, then pulse), with
the staff member (or central ops) as the actor, so every opening records who and why. What
happens when the doors close again (an order becomes ready, or is reclaimed) is the door
monitor's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from locker.allocation import NoRoom
from locker.clock import Clock
from locker.config import LockerConfig
from locker.doors import DoorMonitor
from locker.errors import LockerError, UnknownCompartment
from locker.model import CompartmentState, DoorState, OrderState
from locker.orders import allocate_order, blocked_zones
from locker.ports import LockDriver
from locker.store import Store, Tx
from locker.unlocking import Door, authorise, pulse

# orders whose goods a courier takes back (a cancelled order keeps compartments only with goods)
RECLAIMABLE = (OrderState.EXPIRED.value, OrderState.RECLAIMING.value, OrderState.CANCELLED.value)


class Refused(LockerError):
    """The action does not apply now; `reason` for the screen, the message for the person."""

    def __init__(self, reason: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail


@dataclass
class DoorsResult:
    order_id: str | None
    compartments: list[str] = field(default_factory=list)
    opened: list[Door] = field(default_factory=list)
    failed: list[Door] = field(default_factory=list)


class CourierService:
    def __init__(self, store: Store, config: LockerConfig, driver: LockDriver, clock: Clock,
                 monitor: DoorMonitor) -> None:
        self.store, self.config, self.driver = store, config, driver
        self.clock, self.monitor = clock, monitor

    def orders(self) -> dict[str, list[dict[str, Any]]]:
        """Orders to load (received or being loaded) and expired orders to take back."""
        read = self.store.read()
        to_load = []
        for order in read.all("SELECT id, state, accessible FROM orders WHERE state IN (?, ?)"
                              " ORDER BY created_at", (OrderState.RECEIVED.value,
                                                       OrderState.ALLOCATED.value)):
            bags = read.all("SELECT zone, size, compartment_id FROM order_bags WHERE order_id = ?"
                            " ORDER BY bag_no", (order["id"],))
            to_load.append({"order": order["id"], "state": order["state"],
                            "accessible": bool(order["accessible"]),
                            "bags": [{"zone": b["zone"], "size": b["size"],
                                      "compartment": b["compartment_id"]} for b in bags]})
        to_reclaim = [
            {"order": r["id"], "compartments": (r["compartments"] or "").split(",")}
            for r in read.all(
                "SELECT o.id, group_concat(oc.compartment_id) AS compartments FROM orders o"
                " JOIN order_compartments oc ON oc.order_id = o.id WHERE o.state IN (?, ?, ?)"
                " GROUP BY o.id ORDER BY o.window_end",
                RECLAIMABLE)
        ]
        return {"to_load": to_load, "to_reclaim": to_reclaim}

    async def load(self, actor: str, order_id: str, together: bool = True) -> DoorsResult:
        """Allocate the order's bags and open the doors (all now, or one by one later)."""
        with self.store.transaction(self.clock.now()) as tx:
            order = self._order(tx, order_id)
            if order["state"] not in (OrderState.RECEIVED.value, OrderState.ALLOCATED.value):
                raise Refused("not_to_load", f"order {order_id} is {order['state']}, not waiting"
                              " to be loaded")
            zones = {r["zone"] for r in tx.all("SELECT zone FROM order_bags WHERE order_id = ?",
                                               (order_id,))}
            blocked = zones & blocked_zones(tx)
            if blocked:
                raise Refused("zone_blocked", f"loading into {', '.join(sorted(blocked))} is"
                              " blocked: the zone is out of its temperature limits")
            if order["state"] == OrderState.RECEIVED.value:
                try:
                    allocate_order(tx, self.config, order_id)
                except NoRoom as exc:
                    raise Refused("no_room", str(exc), missing=[
                        {"zone": b.zone.value, "size": b.size.value} for b in exc.missing
                    ]) from None
            compartments = self._waiting_doors(tx, order_id)
            doors = [authorise(tx, self.config, cid, order_id, actor, "load")
                     for cid in compartments] if together else []
        self.monitor.publish(tx)
        result = DoorsResult(order_id, compartments)
        if doors:
            result.opened, result.failed = await pulse(self.store, self.driver, self.clock,
                                                       doors, self.monitor.publish)
        return result

    async def open_for_loading(self, actor: str, order_id: str,
                               compartment_id: str) -> DoorsResult:
        """One door of an order being loaded, when the courier goes one by one."""
        with self.store.transaction(self.clock.now()) as tx:
            order = self._order(tx, order_id)
            if order["state"] != OrderState.ALLOCATED.value:
                raise Refused("not_loading", f"order {order_id} is not being loaded")
            if compartment_id not in self._waiting_doors(tx, order_id):
                raise Refused("not_this_order", f"compartment {compartment_id} is not waiting"
                              f" for order {order_id}")
            door = authorise(tx, self.config, compartment_id, order_id, actor, "load")
        self.monitor.publish(tx)
        opened, failed = await pulse(self.store, self.driver, self.clock, [door],
                                     self.monitor.publish)
        return DoorsResult(order_id, [compartment_id], opened, failed)

    async def reclaim(self, actor: str, order_id: str) -> DoorsResult:
        """Open every door of an expired order; the compartments are freed once closed."""
        with self.store.transaction(self.clock.now()) as tx:
            order = self._order(tx, order_id)
            if order["state"] not in RECLAIMABLE:
                raise Refused("not_expired", f"order {order_id} is {order['state']}; only an"
                              " expired or cancelled order is taken back")
            tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ?",
                       (OrderState.RECLAIMING.value, tx.now, order_id))
            compartments = self._waiting_doors(tx, order_id)
            doors = [authorise(tx, self.config, cid, order_id, actor, "reclaim")
                     for cid in compartments]
            tx.emit("order.reclaiming", "order", order_id=order_id, actor=actor)
        self.monitor.publish(tx)
        opened, failed = await pulse(self.store, self.driver, self.clock, doors,
                                     self.monitor.publish)
        return DoorsResult(order_id, compartments, opened, failed)

    async def open_compartment(self, actor: str, compartment_id: str,
                               reason: str) -> DoorsResult:
        """A technician opens one compartment, saying why."""
        reason = reason.strip()
        if not 3 <= len(reason) <= 200:
            raise Refused("reason", "say why the compartment is opened (3-200 characters)")
        with self.store.transaction(self.clock.now()) as tx:
            row = self._compartment(tx, compartment_id)
            door = authorise(tx, self.config, compartment_id, row["order_id"], actor,
                             f"maintenance: {reason}")
        self.monitor.publish(tx)
        opened, failed = await pulse(self.store, self.driver, self.clock, [door],
                                     self.monitor.publish)
        return DoorsResult(row["order_id"], [compartment_id], opened, failed)

    def set_in_service(self, actor: str, compartment_id: str, in_service: bool,
                       reason: str) -> None:
        """Take an empty compartment out of service, or put one back."""
        with self.store.transaction(self.clock.now()) as tx:
            row = self._compartment(tx, compartment_id)
            if in_service:
                if row["state"] != CompartmentState.OUT_OF_SERVICE.value:
                    raise Refused("in_service", f"compartment {compartment_id} is in service")
                door = DoorState.LOCKED.value if row["door"] == DoorState.JAMMED.value else (
                    row["door"])
                tx.execute("UPDATE compartments SET state = ?, door = ?, service_reason = NULL,"
                           " updated_at = ? WHERE id = ?",
                           (CompartmentState.FREE.value, door, tx.now, compartment_id))
                tx.clear_alarm("door_jammed", compartment_id,
                               f"compartment {compartment_id} back in service")
            else:
                if row["state"] != CompartmentState.FREE.value:
                    raise Refused("not_empty", f"compartment {compartment_id} is {row['state']}"
                                  f" (order {row['order_id']}); empty it first")
                tx.execute("UPDATE compartments SET state = ?, service_reason = ?, updated_at = ?"
                           " WHERE id = ?", (CompartmentState.OUT_OF_SERVICE.value, reason,
                                             tx.now, compartment_id))
            tx.emit("compartment.in_service" if in_service else "compartment.out_of_service",
                    "door", compartment_id=compartment_id, actor=actor, reason=reason)
        self.monitor.publish(tx)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _order(tx: Tx, order_id: str) -> dict[str, Any]:
        order = tx.one("SELECT * FROM orders WHERE id = ?", (order_id,))
        if order is None:
            raise Refused("no_order", f"no order {order_id}")
        return order

    @staticmethod
    def _compartment(tx: Tx, compartment_id: str) -> dict[str, Any]:
        row = tx.one("SELECT * FROM compartments WHERE id = ?", (compartment_id,))
        if row is None:
            raise UnknownCompartment(f"no compartment {compartment_id}")
        return row

    @staticmethod
    def _waiting_doors(tx: Tx, order_id: str) -> list[str]:
        """The order's compartments whose door has not been opened and closed in this phase."""
        return [r["compartment_id"] for r in tx.all(
            "SELECT compartment_id FROM order_compartments WHERE order_id = ?"
            " AND closed_at IS NULL ORDER BY compartment_id", (order_id,))]
