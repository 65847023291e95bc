"""What couriers and technicians do at the locker: load orders, take back expired ones, open a
compartment for maintenance, take one out of service; and what their screens show of it.

Every door goes through locker.domain.lifecycle.door (authorise in a transaction, commit, then
pulse), with the staff member (or central ops) as the actor, so every opening records who and why.
Nothing is authorised when a door cannot open now (its board is offline). What happens when the
doors close again (an order becomes ready, or is reclaimed) is the reconcile pass's business.

`progress()` says, door by door, how an order's loading or taking back goes, from the store
alone (the authorisations and the order's compartments), so a screen that comes back, or looks
after the order is done, reads the same truth: which door opened, closed, did not unlock or
jammed, and where a jammed compartment's bags went instead. It never writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from locker.domain import deadline
from locker.domain.allocation import NoRoom
from locker.domain.clock import Clock
from locker.domain.config import LockerConfig
from locker.domain.errors import Refused
from locker.domain.lifecycle import compartment as compartment_life
from locker.domain.lifecycle import door as door_life
from locker.domain.lifecycle import order as order_life
from locker.domain.lifecycle import records
from locker.domain.lifecycle import returns as returns_life
from locker.domain.lifecycle.order import RECLAIMABLE, blocked_zones
from locker.domain.lifecycle.table import AuthState
from locker.domain.model import CompartmentState, OrderState, ReturnState
from locker.domain.ports import LockDriver
from locker.domain.store import Store, Tx
from locker.domain.unlocking import Door, pulse

__all__ = ["CourierService", "DoorStep", "DoorsResult", "Progress", "Refused"]

# what a door of an order under a courier's hands is doing, in the order a courier sees them
STEPS = ("waiting", "opening", "open", "closed", "did_not_unlock", "jammed")
# the authorisation's state -> the door's step, while the door has not been seen open
_NOT_OPEN_YET = {
    AuthState.PENDING: "opening", AuthState.ACKED: "opening", AuthState.OPENED: "open",
    AuthState.SUPERSEDED: "waiting", AuthState.FAILED: "did_not_unlock",
    AuthState.UNCONFIRMED: "did_not_unlock", AuthState.INTERRUPTED: "did_not_unlock",
    AuthState.JAMMED: "jammed",
}
REASON_CHARS = (3, 200)  # why a technician opens a compartment or changes its service


@dataclass(frozen=True)
class DoorStep:
    """One door of an order being loaded or taken back."""

    compartment_id: str
    step: str  # one of STEPS
    replaces: str | None = None  # this compartment holds the bags of one that jammed
    moved_to: tuple[str, ...] = ()  # a jammed compartment: where its bags went
    may_open: bool = False  # the courier may ask for this door (again) now
    empty: bool = False  # closed, but its item sensor reads empty: the bag is not in


@dataclass(frozen=True)
class Progress:
    """How an order's loading or taking back goes. `result` is None while it is under way:
    ready, held (loaded, but a zone is out of its limits), reclaimed, interrupted (a door of
    the taking back did not open), to_reclaim (expired or cancelled, goods inside), cancelled
    (nothing inside)."""

    order_id: str
    state: str
    phase: str  # "load" or "reclaim"
    result: str | None
    doors: list[DoorStep]
    unplaced: list[dict[str, str]]  # bags whose compartment jammed and found no other
    held_zones: list[str]  # zones out of their limits, for a held order


def _why(reason: str, what: str) -> str:
    """The reason a technician gave, checked (3-200 characters)."""
    reason = reason.strip()
    low, high = REASON_CHARS
    if not low <= len(reason) <= high:
        raise Refused("reason", f"say why {what} ({low}-{high} characters)")
    return reason


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
        """Orders to load (received or being loaded) and expired orders to take back. An order
        is `under_way` while one of its doors is being opened or stands open (someone is at
        it), or while its taking back runs."""
        read = self.store.read()
        busy = {r["order_id"] for r in read.all(
            "SELECT DISTINCT order_id FROM compartments WHERE order_id IS NOT NULL"
            " AND door IN ('unlocking', 'open')")}
        to_load = []
        for order in records.orders_in(read, OrderState.RECEIVED, OrderState.ALLOCATED):
            to_load.append({"order": order.id, "state": order.state.value,
                            "accessible": order.accessible, "under_way": order.id in busy,
                            "bags": [{"zone": b.zone.value, "size": b.size.value,
                                      "compartment": b.compartment_id}
                                     for b in records.bags(read, order.id)]})
        to_reclaim = [
            # state: expired, cancelled, withheld (bags kept back at pickup) or reclaiming
            {"order": r["id"], "state": r["state"],
             "compartments": (r["compartments"] or "").split(","),
             "under_way": r["state"] == OrderState.RECLAIMING.value
             and r["phase_since"] is not None}
            for r in read.all(
                "SELECT o.id, o.state, o.phase_since, group_concat(oc.compartment_id)"
                " AS compartments FROM orders o"
                " JOIN order_compartments oc ON oc.order_id = o.id AND oc.released_at IS NULL"
                f" WHERE o.state IN ({', '.join('?' * len(RECLAIMABLE))}) GROUP BY o.id"
                " ORDER BY o.window_end", tuple(s.value for s in RECLAIMABLE))
        ]
        # goods nobody expects (left behind, forgotten): a courier opens and empties them
        opening = {r["id"] for r in read.all(
            "SELECT id FROM compartments WHERE door IN ('unlocking', 'open')")}
        goods = [{"compartment": cid, "under_way": cid in opening}
                 for cid in compartment_life.with_unexpected_goods(read)]
        # what customers handed back (locker.returns), oldest first
        due_s = self.config.returns.take_back_within_h * 3600.0
        now = self.clock.now()
        handed_back = [
            {"return": r.id, "order": r.order_id, "compartment": r.compartment_id,
             "zone": r.zone, "what": r.kind, "deposited_at": r.deposited_at,
             "overdue": r.deposited_at is not None and now - r.deposited_at > due_s,
             "under_way": r.state is ReturnState.TAKING_BACK}
            for r in returns_life.to_take_back(read)]
        return {"to_load": to_load, "to_reclaim": to_reclaim, "goods_to_take_back": goods,
                "returns_to_take_back": handed_back}

    def progress(self, order_id: str) -> Progress:
        """Door by door, how the order's loading or taking back goes (Refused: no such order)."""
        read = self.store.read()
        order = order_life.get(read, order_id)
        state = order.state
        if state in (OrderState.EXPIRED, OrderState.CANCELLED, OrderState.WITHHELD,
                     OrderState.RECLAIMING, OrderState.RECLAIMED):
            return self._reclaim_progress(read, order)
        bags = records.bags(read, order_id)
        held = records.links(read, order_id, held_only=state is not OrderState.COLLECTED)
        loading = state in (OrderState.RECEIVED, OrderState.ALLOCATED)
        doors: list[DoorStep] = []
        empty = set(order_life.reads_empty_now(read, order_id)) if loading else set()
        for link in held:
            cid = link.compartment_id
            if not loading:
                step = "closed"  # activate() counts the doors again for the customer
            elif link.closed_at is not None:
                step = "closed"
            elif link.opened_at is not None:
                step = "open"
            else:
                auth = records.latest_authorisation(read, cid, order_id)
                step = "waiting" if auth is None else _NOT_OPEN_YET[auth.state]
            doors.append(DoorStep(cid, step, link.replaces, may_open=(
                state is OrderState.ALLOCATED and (step in ("waiting", "did_not_unlock")
                                                   or cid in empty)), empty=cid in empty))
        linked = {link.compartment_id for link in held}
        for jam in read.all(
                "SELECT DISTINCT compartment_id FROM authorisations WHERE order_id = ?"
                " AND reason = 'load' AND outcome = ? ORDER BY compartment_id",
                (order_id, AuthState.JAMMED.value)):
            cid = jam["compartment_id"]
            if cid not in linked:  # jammed while loading: its bags were given another
                moved = tuple(link.compartment_id for link in held if link.replaces == cid)
                doors.append(DoorStep(cid, "jammed", moved_to=moved))
        doors.sort(key=lambda d: (d.replaces or d.compartment_id, d.replaces is not None))
        unplaced = [{"zone": b.zone.value, "size": b.size.value}
                    for b in bags if b.compartment_id is None and state is OrderState.ALLOCATED
                    and any(d.step == "jammed" for d in doors)]
        result = None if loading else "held" if state is OrderState.LOADED else "ready"
        held_zones = (sorted({b.zone.value for b in bags} & blocked_zones(read))
                      if result == "held" else [])
        return Progress(order_id, state.value, "load", result, doors, unplaced, held_zones)

    def _reclaim_progress(self, read: Tx, order: records.Order) -> Progress:
        """The taking back: every compartment it opened (or must open), door by door."""
        state = order.state
        links = {link.compartment_id: link
                 for link in records.links(read, order.id, held_only=False)}
        asked = {r["compartment_id"] for r in read.all(
            "SELECT DISTINCT compartment_id FROM authorisations WHERE order_id = ?"
            " AND reason = 'reclaim'", (order.id,))}
        held = {cid for cid, link in links.items() if link.released_at is None}
        doors = []
        for cid in sorted(asked | held):
            link = links.get(cid)
            if link is not None and (link.released_at is not None or link.closed_at is not None):
                step = "closed"  # its goods are out
            elif link is not None and link.opened_at is not None:
                step = "open"
            elif state in (OrderState.EXPIRED, OrderState.CANCELLED, OrderState.WITHHELD):
                step = "waiting"
            else:
                auth = records.latest_authorisation(read, cid, order.id, order.phase_since)
                step = ("did_not_unlock" if auth is None or auth.reason != "reclaim"
                        else _NOT_OPEN_YET[auth.state])
            doors.append(DoorStep(cid, step))
        if state is OrderState.RECLAIMED:
            result: str | None = "reclaimed"
        elif state is OrderState.RECLAIMING:
            result = None if order.phase_since is not None else "interrupted"
        else:
            result = "to_reclaim" if held else "cancelled"
        return Progress(order.id, state.value, "reclaim", result, doors, [], [])

    def bank(self) -> list[dict[str, Any]]:
        """Every compartment as a technician needs it: its state, its door, why it is out of
        service, its open alarms, the order it holds."""
        read = self.store.read()
        alarms: dict[str, list[str]] = {}
        for alarm in read.all("SELECT kind, subject FROM alarms WHERE cleared_at IS NULL"
                              " ORDER BY raised_at"):
            alarms.setdefault(alarm["subject"], []).append(alarm["kind"])
        rows = {row.id: row for row in records.compartments(read)}
        bank = []
        for c in self.config.compartments:
            row = rows.get(c.id)
            if row is None:
                continue
            bank.append({"id": c.id, "zone": c.zone.value, "size": c.size.value,
                         "column": c.column, "level": c.level, "state": row.state.value,
                         "door": row.door.value, "order": row.order_id,
                         "service_reason": row.service_reason,
                         "alarms": alarms.get(c.id, []),
                         "may_take_out": row.state is CompartmentState.FREE,
                         "may_put_back": row.state is CompartmentState.OUT_OF_SERVICE})
        return bank

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
                              " blocked: the zone is out of its temperature limits",
                              zones=sorted(blocked))
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
            if compartment_id not in order_life.waiting_doors(tx, order_id) and (
                    not order_life.reopen_for_loading(tx, order_id, compartment_id)):
                raise Refused("not_this_order", f"compartment {compartment_id} is not waiting"
                              f" for order {order_id}")
            order_life.refuse_unreachable([compartment_id], self.driver.reachable)
            door = door_life.authorise(tx, self.config, compartment_id, order_id, actor, "load")
        opened, failed = await pulse(self.store, self.driver, self.clock, [door])
        return DoorsResult(order_id, [compartment_id], opened, failed)

    async def take_back(self, actor: str, compartment_id: str) -> DoorsResult:
        """Open a compartment holding goods nobody expects; its alarm clears once it reads
        empty."""
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            if compartment_id not in compartment_life.with_unexpected_goods(tx):
                raise Refused("nothing_to_take_back", f"compartment {compartment_id} holds no"
                              " goods to take back")
            order_life.refuse_unreachable([compartment_id], self.driver.reachable)
            door = door_life.authorise(tx, self.config, compartment_id, None, actor,
                                       "take_back")
        opened, failed = await pulse(self.store, self.driver, self.clock, [door])
        return DoorsResult(None, [compartment_id], opened, failed)

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
        reason = _why(reason, "the compartment is opened")
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
        """Take an empty compartment out of service, or put one back, saying why."""
        reason = _why(reason, "the compartment goes out of service" if not in_service
                      else "the compartment is back in service")
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            compartment_life.set_in_service(tx, compartment_id, in_service, actor, reason)
