"""What door sensors mean, and the reconcile pass that brings every order back from a fault.

The driver reports raw sensor readings; the monitor hands each to locker.domain.lifecycle.door (an
authorised opening, a forced door, a closing) and settles the order it touched, in one
transaction. It is idempotent: the same reading twice changes nothing, which is what lets the
start-up reconciliation feed it a full read of every board. Every second `check_timeouts()`
judges the doors that never opened (jammed, or stranded by a lost record), and `reconcile()`
looks again at every order under way and at every ready order whose doors cannot open now.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

from locker.domain.clock import Clock
from locker.domain.config import LockerConfig
from locker.domain.errors import StoreError
from locker.domain.lifecycle import compartment as compartment_life
from locker.domain.lifecycle import door as door_life
from locker.domain.lifecycle import order as order_life
from locker.domain.lifecycle import records
from locker.domain.lifecycle import returns as returns_life
from locker.domain.lifecycle.door import Door
from locker.domain.lifecycle.table import AuthState
from locker.domain.model import OPEN_DOOR_STATES, DoorSense, DoorState
from locker.domain.ports import LockDriver
from locker.domain.store import Store, Tx

log = logging.getLogger("locker.doors")
T = TypeVar("T")
HOLD_RECHECK_S = 60.0  # the holds are looked at again this often even when nothing changed
FACTS_MAX = 1000  # door changes kept while the store cannot write (hours of a busy locker)


@dataclass(frozen=True)
class DoorFact:
    """A door change the store could not take yet (a full disk): kept, then written in order."""

    compartment_id: str
    sense: DoorSense
    at: float


class DoorMonitor:
    """Implements locker.domain.ports.HardwareListener for the daemon."""

    def __init__(self, store: Store, config: LockerConfig, clock: Clock,
                 driver: LockDriver) -> None:
        self.store, self.config, self.clock = store, config, clock
        self.driver = driver
        self.offline_boards: set[str] = set()
        self.waiting: deque[DoorFact] = deque(maxlen=FACTS_MAX)
        self.facts_dropped = 0
        self._holds_seen: tuple[object, ...] | None = None
        self._holds_at = -HOLD_RECHECK_S
        # what the per-second passes read from the store, kept while the store is unchanged
        # (Store.version): an idle locker then asks one PRAGMA a second instead of six queries
        self._cached: dict[str, tuple[tuple[int, int], object]] = {}

    # -- HardwareListener -------------------------------------------------------------------

    def door_sensed(self, compartment_id: str, sense: DoorSense) -> None:
        if sense is DoorSense.UNKNOWN:
            return  # keep the last known state; the board-offline alarm says why
        fact = DoorFact(compartment_id, sense, self.clock.now())
        if self.waiting:  # facts wait in the order they came
            self._wait(fact)
            return
        try:
            with self.store.transaction(fact.at) as tx:
                self._apply(tx, compartment_id, sense)
        except StoreError as exc:
            log.warning("door %s %s kept until the store writes again: %s", compartment_id,
                        sense.value, exc)
            self._wait(fact)

    def item_sensed(self, compartment_id: str, occupied: bool) -> None:
        """Goods went in or out. Raises StoreError if the store cannot write it: the driver then
        reports the reading again at its next poll."""
        with self.store.transaction(self.clock.now()) as tx:
            if records.compartment(tx, compartment_id) is None:
                log.error("a driver reported unknown compartment %r", compartment_id)
                return
            if not compartment_life.sense_item(tx, compartment_id, occupied):
                return
            row = compartment_life.get(tx, compartment_id)
            if row.order_id is not None:  # a loading waiting for its goods, say
                order_life.settle(tx, self.config, row.order_id)
            compartment_life.check_goods(tx, self.config, compartment_id)

    def flush_waiting(self) -> None:
        """The store writes again: what the doors did meanwhile is recorded, in order, each at
        the time it happened. Stops at the first fact that still cannot be written."""
        while self.waiting:
            fact = self.waiting[0]
            try:
                with self.store.transaction(fact.at) as tx:
                    self._apply(tx, fact.compartment_id, fact.sense)
            except StoreError:
                return
            self.waiting.popleft()
        if self.facts_dropped:
            with self.store.transaction(self.clock.now()) as tx:
                tx.emit("door.facts_dropped", "door", count=self.facts_dropped,
                        reason="the store could not write for too long")
            self.facts_dropped = 0

    def _wait(self, fact: DoorFact) -> None:
        if len(self.waiting) == FACTS_MAX:
            self.facts_dropped += 1  # the oldest goes: the door's latest state matters most
        self.waiting.append(fact)

    def board_offline(self, board: str, reason: str) -> None:
        self.offline_boards.add(board)
        log.error("%s offline: %s", board, reason)
        with self.store.transaction(self.clock.now()) as tx:
            tx.raise_alarm("board_offline", board,
                           f"{board} stopped answering ({reason}); check its power, its address"
                           " switches and the RS485 cable. Its doors cannot open meanwhile.")

    def board_online(self, board: str) -> None:
        self.offline_boards.discard(board)
        log.warning("%s answers again", board)
        with self.store.transaction(self.clock.now()) as tx:
            tx.clear_alarm("board_offline", board, f"{board} answers again")

    # -- start-up and periodic passes ------------------------------------------------------

    def reconcile_at_start(self, readings: Mapping[str, DoorSense]) -> None:
        """After a restart: settle the unlocks a power cut interrupted, take every door as the
        boards say, and bring back every order those left half way."""
        with self.store.transaction(self.clock.now()) as tx:
            for auth in records.unsettled_authorisations(tx):
                # authorised, perhaps pulsed, never seen open, and nobody watched the door
                # meanwhile: never pulse it again (its order comes back in _settle_all)
                if readings.get(auth.compartment_id) is not DoorSense.OPEN:
                    door_life.interrupt(tx, auth)
            for compartment_id, sense in sorted(readings.items()):
                if sense is not DoorSense.UNKNOWN:
                    self._apply(tx, compartment_id, sense)
            tx.emit("locker.reconciled", "door",
                    doors={k: v.value for k, v in sorted(readings.items())})
            self._settle_all(tx)

    def check_timeouts(self) -> list[Door]:
        """Unlocked doors never seen open are jammed; doors open too long raise an alarm.

        A door that jams while an order is loaded goes out of service and its bags are given
        other compartments: their doors are authorised here and returned, for the caller to pulse
        once this has committed.
        """
        now = self.clock.now()
        policy = self.config.doors
        read = self.store.read()
        unsettled = self._unchanged("unsettled", lambda: records.unsettled_authorisations(read))
        waiting = [a for a in unsettled
                   if (a.acked_at if a.acked_at is not None else a.created_at)
                   <= now - policy.open_timeout_s]
        open_doors = self._unchanged("open_doors", lambda: read.all(
            "SELECT c.id, c.door_changed_at FROM compartments c WHERE c.door IN (?, ?)"
            " AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.kind = 'door_left_open'"
            " AND a.subject = c.id AND a.cleared_at IS NULL)", OPEN_DOOR_STATES))
        left_open = [row for row in open_doors
                     if row["door_changed_at"] <= now - policy.left_open_alarm_s]
        if not waiting and not left_open:
            return []
        to_pulse: list[Door] = []
        with self.store.transaction(now) as tx:
            for auth in waiting:
                if auth.state is AuthState.PENDING:
                    # committed but never acknowledged nor failed (the pulse's own record was
                    # lost): settled as interrupted, so a later forced opening is not taken for it
                    door_life.interrupt(tx, auth)
                elif door_life.open_timeout(tx, auth) and auth.reason == "load":
                    to_pulse += order_life.reallocate_after_jam(tx, self.config, auth,
                                                                self.driver.reachable)
                if auth.order_id:
                    order_life.settle(tx, self.config, auth.order_id)
                for return_id in returns_life.touched_by(tx, auth.compartment_id):
                    returns_life.settle(tx, self.config, return_id)
            for row in left_open:
                tx.raise_alarm("door_left_open", row["id"],
                               f"compartment {row['id']} has been open for over"
                               f" {policy.left_open_alarm_s:.0f} s")
        return to_pulse

    def reconcile(self) -> None:
        """Every order under way settled again; ready orders whose doors cannot open now have
        their window held, and get the time back once they can."""
        read = self.store.read()
        under_way = self._unchanged("under_way", lambda: order_life.under_way(read))
        if under_way:
            with self.store.transaction(self.clock.now()) as tx:
                moved = [order_life.settle(tx, self.config, order_id)
                         for order_id in under_way]
            if any(moved):
                self._holds_seen = None
        returning = self._unchanged("returns", lambda: returns_life.under_way(read))
        if returning:
            with self.store.transaction(self.clock.now()) as tx:
                for return_id in returning:
                    returns_life.settle(tx, self.config, return_id)
        facts = self._hold_facts(read)
        now = self.clock.monotonic()
        if facts == self._holds_seen and now - self._holds_at < HOLD_RECHECK_S:
            return
        with self.store.transaction(self.clock.now()) as tx:
            order_life.update_holds(tx, order_life.ready_blockers(tx, self.driver.reachable),
                                    self.config.codes.max_hold_hours * 3600.0)
        self._holds_seen, self._holds_at = facts, now

    # -- the rules ---------------------------------------------------------------------------

    def _apply(self, tx: Tx, compartment_id: str, sense: DoorSense) -> None:
        if records.compartment(tx, compartment_id) is None:
            log.error("a driver reported unknown compartment %r", compartment_id)
            return
        if sense is DoorSense.OPEN:
            opening = door_life.seen_open(tx, self.config, compartment_id)
            auth = opening.authorisation if opening else None
            touched = [auth.order_id] if auth is not None and auth.order_id else []
            if opening is not None:
                returns_life.seen_open(tx, opening.authorisation)
            if opening is not None and opening.was is AuthState.JAMMED and (
                    opening.authorisation.reason == "load"):
                # the courier got the door open after all, its bags perhaps moved elsewhere
                order_life.relink_after_late_opening(tx, opening.authorisation)
        else:
            was_open = records.compartment(tx, compartment_id)
            touched = door_life.seen_closed(tx, compartment_id)
            if was_open is not None and was_open.door is DoorState.OPEN:
                compartment_life.door_works_again(tx, compartment_id)
        for touched_id in touched:
            order_life.settle(tx, self.config, touched_id)
        if sense is DoorSense.CLOSED:
            for return_id in returns_life.touched_by(tx, compartment_id):
                returns_life.settle(tx, self.config, return_id)
        if sense is DoorSense.CLOSED:  # goods left behind show once the door is shut
            compartment_life.check_goods(tx, self.config, compartment_id)

    def _settle_all(self, tx: Tx) -> None:
        for order_id in order_life.under_way(tx, loading=True):
            order_life.settle(tx, self.config, order_id)
        for return_id in returns_life.under_way(tx):
            returns_life.settle(tx, self.config, return_id)

    def _hold_facts(self, read: Tx) -> tuple[object, ...]:
        """What decides the holds, cheaply: a change in any of it means a full look. The
        driver is asked every time (a board may go offline without a store change), but only
        about the doors of ready orders: no other door's reachability can hold a window."""
        stored = self._unchanged("hold_facts", lambda: self._stored_hold_facts(read))
        reachable = self.driver.reachable
        unreachable = tuple(cid for cid in stored[2] if not reachable(cid))
        return unreachable, stored

    @staticmethod
    def _stored_hold_facts(read: Tx) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        jammed = tuple(r["id"] for r in read.all(
            "SELECT id FROM compartments WHERE door = 'jammed' ORDER BY id"))
        zones = tuple(sorted(order_life.blocked_zones(read)))
        ready_doors = tuple(r["compartment_id"] for r in read.all(
            "SELECT DISTINCT oc.compartment_id FROM orders o JOIN order_compartments oc"
            " ON oc.order_id = o.id AND oc.released_at IS NULL WHERE o.state = 'ready'"
            " ORDER BY oc.compartment_id"))
        return jammed, zones, ready_doors

    def _unchanged(self, key: str, query: Callable[[], T]) -> T:
        """`query()`, or what it answered last time if the store has not changed since."""
        version = self.store.version()
        cached = self._cached.get(key)
        if cached is not None and cached[0] == version:
            return cast(T, cached[1])
        value = query()
        self._cached[key] = (version, value)
        return value
