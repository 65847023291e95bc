"""What door sensors mean: authorised openings, forced doors, jams, doors left open, collections.

The driver reports raw sensor readings; this module compares each with what the store believes
and with the open authorisations, and writes the consequence (door state, events, alarms, an
order collected) in one transaction. It is idempotent: the same reading twice changes nothing,
which is what lets the start-up reconciliation feed it a full read of every board.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from locker.clock import Clock
from locker.config import LockerConfig
from locker.model import CompartmentState, DoorSense, DoorState, OrderState
from locker.store import Store, Tx

log = logging.getLogger("locker.doors")

OPEN_STATES = (DoorState.OPEN.value, DoorState.FORCED.value)
# an opening this long after a jam is still taken as the late answer to that unlock
LATE_OPEN_GRACE_S = 300.0


class DoorMonitor:
    """Implements locker.ports.HardwareListener for the daemon."""

    def __init__(self, store: Store, config: LockerConfig, clock: Clock,
                 on_change: Callable[[list[tuple[str, dict[str, object]]]], None] | None = None
                 ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.on_change = on_change  # e.g. the ops page's live feed; gets the emitted events
        self.offline_boards: set[str] = set()

    # -- HardwareListener -------------------------------------------------------------------

    def door_sensed(self, compartment_id: str, sense: DoorSense) -> None:
        if sense is DoorSense.UNKNOWN:
            return  # keep the last known state; the board-offline alarm says why
        with self.store.transaction(self.clock.now()) as tx:
            self._apply(tx, compartment_id, sense)
        self.publish(tx)

    def board_offline(self, board: str, reason: str) -> None:
        self.offline_boards.add(board)
        log.error("%s offline: %s", board, reason)
        with self.store.transaction(self.clock.now()) as tx:
            tx.raise_alarm("board_offline", board,
                           f"{board} stopped answering ({reason}); check its power, its address"
                           " switches and the RS485 cable. Its doors cannot open meanwhile.")
        self.publish(tx)

    def board_online(self, board: str) -> None:
        self.offline_boards.discard(board)
        log.warning("%s answers again", board)
        with self.store.transaction(self.clock.now()) as tx:
            tx.clear_alarm("board_offline", board, f"{board} answers again")
        self.publish(tx)

    # -- start-up and periodic checks ------------------------------------------------------

    def reconcile(self, readings: Mapping[str, DoorSense]) -> None:
        """After a restart: settle interrupted unlocks, then take every door as the boards say."""
        now = self.clock.now()
        with self.store.transaction(now) as tx:
            for auth in tx.all("SELECT * FROM authorisations WHERE outcome IS NULL"
                               " AND acked_at IS NULL"):
                # authorised, perhaps pulsed, never acknowledged: never pulse it again
                seen_open = readings.get(auth["compartment_id"]) is DoorSense.OPEN
                if not seen_open:
                    tx.execute("UPDATE authorisations SET outcome = 'interrupted' WHERE id = ?",
                               (auth["id"],))
                    tx.execute("UPDATE compartments SET door = ? WHERE id = ? AND door = ?",
                               (DoorState.LOCKED.value, auth["compartment_id"],
                                DoorState.UNLOCKING.value))
                    tx.emit("door.unlock_interrupted", "door",
                            compartment_id=auth["compartment_id"], order_id=auth["order_id"],
                            authorisation=auth["id"], actor=auth["actor"], reason=auth["reason"])
            for compartment_id, sense in sorted(readings.items()):
                if sense is not DoorSense.UNKNOWN:
                    self._apply(tx, compartment_id, sense)
            tx.emit("locker.reconciled", "door",
                    doors={k: v.value for k, v in sorted(readings.items())})
        self.publish(tx)

    def check_timeouts(self) -> None:
        """Unlocked doors never seen open are jammed; doors open too long raise an alarm."""
        now = self.clock.now()
        policy = self.config.doors
        jammed = self.store.read().all(
            "SELECT * FROM authorisations WHERE outcome IS NULL AND acked_at IS NOT NULL"
            " AND acked_at <= ?", (now - policy.open_timeout_s,))
        left_open = self.store.read().all(
            "SELECT c.id FROM compartments c WHERE c.door IN (?, ?) AND c.door_changed_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.kind = 'door_left_open'"
            " AND a.subject = c.id AND a.cleared_at IS NULL)",
            (*OPEN_STATES, now - policy.left_open_alarm_s))
        if not jammed and not left_open:
            return
        with self.store.transaction(now) as tx:
            for auth in jammed:
                if not tx.execute("UPDATE authorisations SET outcome = 'jammed' WHERE id = ?"
                                  " AND outcome IS NULL", (auth["id"],)):
                    continue
                cid = auth["compartment_id"]
                self._set_door(tx, cid, DoorState.JAMMED)
                tx.emit("door.jammed", "door", compartment_id=cid, order_id=auth["order_id"],
                        authorisation=auth["id"])
                tx.raise_alarm("door_jammed", cid,
                               f"compartment {cid} was unlocked but never opened: check its"
                               " latch, its door and its door switch")
            for row in left_open:
                tx.raise_alarm("door_left_open", row["id"],
                               f"compartment {row['id']} has been open for over"
                               f" {policy.left_open_alarm_s:.0f} s")
        self.publish(tx)

    # -- the rules ---------------------------------------------------------------------------

    def _apply(self, tx: Tx, compartment_id: str, sense: DoorSense) -> None:
        row = tx.one("SELECT door FROM compartments WHERE id = ?", (compartment_id,))
        if row is None:
            log.error("a driver reported unknown compartment %r", compartment_id)
            return
        door = row["door"]
        if sense is DoorSense.OPEN and door not in OPEN_STATES:
            self._opened(tx, compartment_id)
        elif sense is DoorSense.CLOSED and door in OPEN_STATES:
            self._closed(tx, compartment_id, door)

    def _opened(self, tx: Tx, cid: str) -> None:
        auth = tx.one(
            "SELECT * FROM authorisations WHERE compartment_id = ? AND (outcome IS NULL"
            " OR (outcome IN ('jammed', 'interrupted') AND created_at >= ?))"
            " ORDER BY id DESC LIMIT 1",
            (cid, tx.now - self.config.doors.open_timeout_s - LATE_OPEN_GRACE_S))
        if auth is None:
            self._set_door(tx, cid, DoorState.FORCED)
            tx.emit("door.forced", "door", compartment_id=cid)
            tx.raise_alarm("door_forced", cid,
                           f"compartment {cid} opened without any authorisation: check the door"
                           " for damage and its contents")
            log.error("compartment %s forced open", cid)
            return
        tx.execute("UPDATE authorisations SET outcome = 'opened', seen_open_at = ? WHERE id = ?",
                   (tx.now, auth["id"]))
        if auth["outcome"] == "jammed":
            tx.clear_alarm("door_jammed", cid, f"compartment {cid} opened after all")
        self._set_door(tx, cid, DoorState.OPEN)
        tx.emit("door.opened", "door", compartment_id=cid, order_id=auth["order_id"],
                actor=auth["actor"], reason=auth["reason"], authorisation=auth["id"])
        if auth["order_id"]:
            tx.execute("UPDATE order_compartments SET opened_at = ? WHERE order_id = ?"
                       " AND compartment_id = ? AND opened_at IS NULL",
                       (tx.now, auth["order_id"], cid))
        log.info("compartment %s opened (%s)", cid, auth["reason"])

    def _closed(self, tx: Tx, cid: str, was: str) -> None:
        self._set_door(tx, cid, DoorState.LOCKED)
        tx.emit("door.closed", "door", compartment_id=cid)
        tx.clear_alarm("door_left_open", cid, f"compartment {cid} closed")
        if was == DoorState.FORCED.value:
            tx.clear_alarm("door_forced", cid, f"compartment {cid} closed again after being forced")
        log.info("compartment %s closed", cid)
        for link in tx.all(
            "SELECT oc.order_id FROM order_compartments oc JOIN orders o ON o.id = oc.order_id"
            " WHERE oc.compartment_id = ? AND o.state = ? AND oc.opened_at IS NOT NULL"
            " AND oc.closed_at IS NULL", (cid, OrderState.COLLECTING.value)):
            order_id = link["order_id"]
            tx.execute("UPDATE order_compartments SET closed_at = ? WHERE order_id = ?"
                       " AND compartment_id = ?", (tx.now, order_id, cid))
            waiting = tx.one("SELECT COUNT(*) AS n FROM order_compartments WHERE order_id = ?"
                             " AND closed_at IS NULL", (order_id,))
            if waiting is not None and waiting["n"] == 0:
                self._collected(tx, order_id)

    def _collected(self, tx: Tx, order_id: str) -> None:
        tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ?",
                   (OrderState.COLLECTED.value, tx.now, order_id))
        tx.execute("UPDATE compartments SET state = ?, order_id = NULL, updated_at = ?"
                   " WHERE order_id = ? AND state = ?",
                   (CompartmentState.FREE.value, tx.now, order_id, CompartmentState.LOADED.value))
        tx.emit("order.collected", "order", order_id=order_id)
        log.info("order %s collected", order_id)

    def _set_door(self, tx: Tx, cid: str, door: DoorState) -> None:
        tx.execute("UPDATE compartments SET door = ?, door_changed_at = ?, updated_at = ?"
                   " WHERE id = ?", (door.value, tx.now, tx.now, cid))

    def publish(self, tx: Tx) -> None:
        if self.on_change is not None and tx.emitted:
            self.on_change(tx.emitted)
