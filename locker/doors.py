"""What door sensors mean: authorised openings, forced doors, jams, doors left open, collections.

The driver reports raw sensor readings; this module compares each with what the store believes
and with the open authorisations, and writes the consequence (door state, events, alarms, an
order collected) in one transaction. It is idempotent: the same reading twice changes nothing,
which is what lets the start-up reconciliation feed it a full read of every board.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from locker.allocation import NoRoom
from locker.clock import Clock
from locker.codes import PickupCodes
from locker.config import LockerConfig
from locker.model import OPEN_DOOR_STATES, CompartmentState, DoorSense, DoorState, OrderState
from locker.orders import activate, allocate_order, blocked_zones
from locker.store import Store, Tx
from locker.unlocking import Door, authorise

log = logging.getLogger("locker.doors")

# an opening this long after a jam is still taken as the late answer to that unlock
LATE_OPEN_GRACE_S = 300.0


class DoorMonitor:
    """Implements locker.ports.HardwareListener for the daemon."""

    def __init__(self, store: Store, config: LockerConfig, clock: Clock, codes: PickupCodes,
                 on_change: Callable[[list[tuple[str, dict[str, object]]]], None] | None = None
                 ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.codes = codes
        # who hears about every committed event: the demo's printer, the ops page's live feed
        self.listeners: list[Callable[[list[tuple[str, dict[str, object]]]], None]] = (
            [on_change] if on_change is not None else [])
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
                    self._interrupt(tx, auth)
            for compartment_id, sense in sorted(readings.items()):
                if sense is not DoorSense.UNKNOWN:
                    self._apply(tx, compartment_id, sense)
            tx.emit("locker.reconciled", "door",
                    doors={k: v.value for k, v in sorted(readings.items())})
        self.publish(tx)

    def check_timeouts(self) -> list[Door]:
        """Unlocked doors never seen open are jammed; doors open too long raise an alarm.

        A door that jams while an order is loaded goes out of service and its bags are given
        other compartments: their doors are authorised here and returned, for the caller to pulse
        once this has committed.
        """
        now = self.clock.now()
        policy = self.config.doors
        jammed = self.store.read().all(
            "SELECT * FROM authorisations WHERE outcome IS NULL AND acked_at IS NOT NULL"
            " AND acked_at <= ?", (now - policy.open_timeout_s,))
        # committed but never acknowledged nor failed (the pulse's own record was lost): after
        # the same wait, settled as interrupted, so a later forced opening is not taken for it
        stranded = self.store.read().all(
            "SELECT * FROM authorisations WHERE outcome IS NULL AND acked_at IS NULL"
            " AND created_at <= ?", (now - policy.open_timeout_s,))
        left_open = self.store.read().all(
            "SELECT c.id FROM compartments c WHERE c.door IN (?, ?) AND c.door_changed_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.kind = 'door_left_open'"
            " AND a.subject = c.id AND a.cleared_at IS NULL)",
            (*OPEN_DOOR_STATES, now - policy.left_open_alarm_s))
        if not jammed and not left_open and not stranded:
            return []
        to_pulse: list[Door] = []
        with self.store.transaction(now) as tx:
            for auth in stranded:
                self._interrupt(tx, auth)
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
                if auth["reason"] == "load":
                    to_pulse += self._reallocate(tx, auth)
            for row in left_open:
                tx.raise_alarm("door_left_open", row["id"],
                               f"compartment {row['id']} has been open for over"
                               f" {policy.left_open_alarm_s:.0f} s")
        self.publish(tx)
        return to_pulse

    @staticmethod
    def _interrupt(tx: Tx, auth: dict[str, Any]) -> None:
        """An authorisation that may or may not have pulsed its lock: never pulse it again."""
        if not tx.execute("UPDATE authorisations SET outcome = 'interrupted' WHERE id = ?"
                          " AND outcome IS NULL", (auth["id"],)):
            return
        tx.execute("UPDATE compartments SET door = ? WHERE id = ? AND door = ?",
                   (DoorState.LOCKED.value, auth["compartment_id"], DoorState.UNLOCKING.value))
        tx.emit("door.unlock_interrupted", "door", compartment_id=auth["compartment_id"],
                order_id=auth["order_id"], authorisation=auth["id"], actor=auth["actor"],
                reason=auth["reason"])

    def _reallocate(self, tx: Tx, auth: dict[str, Any]) -> list[Door]:
        """The jammed compartment goes out of service; its bags go elsewhere, doors authorised."""
        cid, order_id = auth["compartment_id"], auth["order_id"]
        order = tx.one("SELECT state FROM orders WHERE id = ?", (order_id,))
        if order is None or order["state"] != OrderState.ALLOCATED.value:
            return []
        bags = [r["bag_no"] for r in tx.all(
            "SELECT bag_no FROM order_bags WHERE order_id = ? AND compartment_id = ?",
            (order_id, cid))]
        tx.execute("UPDATE order_bags SET compartment_id = NULL WHERE order_id = ?"
                   " AND compartment_id = ?", (order_id, cid))
        tx.execute("DELETE FROM order_compartments WHERE order_id = ? AND compartment_id = ?",
                   (order_id, cid))
        tx.execute("UPDATE compartments SET state = ?, order_id = NULL, service_reason = ?,"
                   " updated_at = ? WHERE id = ?",
                   (CompartmentState.OUT_OF_SERVICE.value, "jammed while loading", tx.now, cid))
        tx.emit("compartment.out_of_service", "door", compartment_id=cid, actor="locker",
                reason="jammed while loading")
        try:
            moved = allocate_order(tx, self.config, order_id, bags)
        except NoRoom as exc:
            tx.emit("order.reallocation_failed", "order", order_id=order_id, error=str(exc))
            tx.raise_alarm("reallocation_failed", order_id,
                           f"order {order_id}: compartment {cid} jammed during loading and"
                           f" {exc}; the courier must take those bags back")
            return []
        tx.emit("order.reallocated", "order", order_id=order_id, jammed=cid, to=moved)
        return [authorise(tx, self.config, new, order_id, auth["actor"], "load")
                for new in moved]

    # -- the rules ---------------------------------------------------------------------------

    def _apply(self, tx: Tx, compartment_id: str, sense: DoorSense) -> None:
        row = tx.one("SELECT door FROM compartments WHERE id = ?", (compartment_id,))
        if row is None:
            log.error("a driver reported unknown compartment %r", compartment_id)
            return
        door = row["door"]
        if sense is DoorSense.OPEN and door not in OPEN_DOOR_STATES:
            self._opened(tx, compartment_id)
        elif sense is DoorSense.CLOSED and door in OPEN_DOOR_STATES:
            self._closed(tx, compartment_id, door)

    def _opened(self, tx: Tx, cid: str) -> None:
        auth = tx.one(
            "SELECT * FROM authorisations WHERE compartment_id = ? AND (outcome IS NULL"
            " OR (outcome IN ('jammed', 'interrupted', 'unconfirmed') AND created_at >= ?))"
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
        tx.execute("UPDATE authorisations SET outcome = 'superseded' WHERE compartment_id = ?"
                   " AND outcome IS NULL", (cid,))
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
            "SELECT oc.order_id, o.state FROM order_compartments oc"
            " JOIN orders o ON o.id = oc.order_id WHERE oc.compartment_id = ?"
            " AND o.state IN (?, ?, ?) AND oc.opened_at IS NOT NULL AND oc.closed_at IS NULL",
            (cid, OrderState.COLLECTING.value, OrderState.ALLOCATED.value,
             OrderState.RECLAIMING.value)):
            order_id = link["order_id"]
            tx.execute("UPDATE order_compartments SET closed_at = ? WHERE order_id = ?"
                       " AND compartment_id = ?", (tx.now, order_id, cid))
            waiting = tx.one("SELECT COUNT(*) AS n FROM order_compartments WHERE order_id = ?"
                             " AND closed_at IS NULL", (order_id,))
            if waiting is not None and waiting["n"] == 0:
                self._every_door_closed(tx, order_id, link["state"])

    def _every_door_closed(self, tx: Tx, order_id: str, state: str) -> None:
        if state == OrderState.COLLECTING.value:
            self._collected(tx, order_id)
        elif state == OrderState.RECLAIMING.value:
            self._free(tx, order_id, OrderState.RECLAIMED, "order.reclaimed")
        else:  # loaded: ready once its zones are within their limits
            zones = {r["zone"] for r in tx.all("SELECT zone FROM order_bags WHERE order_id = ?",
                                               (order_id,))}
            blocked = zones & blocked_zones(tx)
            if blocked:
                tx.emit("order.loaded_zone_out_of_limits", "order", order_id=order_id,
                        zones=sorted(blocked))
                return
            if activate(tx, self.codes, order_id,
                        local_reissue=self.config.central is None) is not None:
                log.info("order %s loaded and ready", order_id)

    def _collected(self, tx: Tx, order_id: str) -> None:
        self._free(tx, order_id, OrderState.COLLECTED, "order.collected")

    def _free(self, tx: Tx, order_id: str, state: OrderState, kind: str) -> None:
        """The order's goods are out: its compartments are free for the next order."""
        tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ?",
                   (state.value, tx.now, order_id))
        tx.execute("UPDATE compartments SET state = ?, order_id = NULL, updated_at = ?"
                   " WHERE order_id = ? AND state IN (?, ?)",
                   (CompartmentState.FREE.value, tx.now, order_id, CompartmentState.LOADED.value,
                    CompartmentState.RESERVED.value))
        last = tx.one("SELECT actor FROM authorisations WHERE order_id = ? ORDER BY id DESC"
                      " LIMIT 1", (order_id,))
        tx.emit(kind, "order", order_id=order_id, actor=last["actor"] if last else None)
        log.info("%s: %s", kind, order_id)

    def _set_door(self, tx: Tx, cid: str, door: DoorState) -> None:
        tx.execute("UPDATE compartments SET door = ?, door_changed_at = ?, updated_at = ?"
                   " WHERE id = ?", (door.value, tx.now, tx.now, cid))

    def publish(self, tx: Tx) -> None:
        if tx.emitted:
            for listener in self.listeners:
                try:  # what is committed stays committed: a failing listener only logs
                    listener(tx.emitted)
                except Exception:
                    log.exception("an event listener failed")
