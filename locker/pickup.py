"""A customer types a pickup code: check the throttle, find the order, authorise, then unlock.

The order of operations is the safety argument: the authorisation (order state, one row per
door, the events) is committed first, and only then are the locks pulsed. A crash in between
leaves an authorisation that is never pulsed twice (see DoorMonitor.reconcile). A wrong code
spends a throttle token, in a transaction of its own, before the answer goes back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field

from locker.clock import Clock
from locker.codes import PickupCodes
from locker.config import LockerConfig
from locker.doors import DoorMonitor
from locker.errors import HardwareError, LockerError
from locker.model import DoorState, OrderState
from locker.ports import LockDriver
from locker.store import Store, Tx
from locker.throttle import (
    GLOBAL_SCOPE,
    Bucket,
    Limits,
    after_failure,
    fresh,
    limits_for,
    wait_s,
)

log = logging.getLogger("locker.pickup")
SCREEN_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class PickupRefused(LockerError):
    """The code opens nothing; `reason` is for the screen, `retry_after_s` for the keypad."""

    def __init__(self, reason: str, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class Throttled(PickupRefused):
    """Too many wrong codes: wait before the next try."""


@dataclass(frozen=True)
class OpenedDoor:
    compartment_id: str
    zone: str
    location: str


@dataclass
class PickupResult:
    order_id: str
    opened: list[OpenedDoor] = field(default_factory=list)
    failed: list[OpenedDoor] = field(default_factory=list)


class PickupService:
    def __init__(self, store: Store, config: LockerConfig, codes: PickupCodes,
                 driver: LockDriver, clock: Clock, monitor: DoorMonitor) -> None:
        self.store, self.config, self.codes = store, config, codes
        self.driver, self.clock, self.monitor = driver, clock, monitor

    async def collect(self, typed: str, screen: str = "front") -> PickupResult:
        if not SCREEN_ID.match(screen):
            raise PickupRefused("bad_screen", "screen: 1-32 lower-case letters, digits, - or _")
        code = self.codes.normalise(typed)  # BadCodeFormat: costs no token
        now = self.clock.now()
        wait = self._wait(now, screen)
        if wait > 0:
            raise Throttled("throttled", f"too many wrong codes; try again in {wait:.0f} s",
                            retry_after_s=wait)
        digest = self.codes.digest(code)
        with self.store.transaction(now) as tx:
            order = tx.one(
                "SELECT * FROM orders WHERE code_digest = ?"
                " ORDER BY state = 'ready' DESC, window_end DESC LIMIT 1", (digest,))
            refusal = self._refusal(order, now)
            if refusal is None and order is not None:
                doors = self._authorise(tx, order["id"], now)
        if refusal is not None:
            self._refused(now, screen, refusal)
            raise refusal
        assert order is not None
        self.monitor.publish(tx)
        return await self._unlock(order["id"], doors)

    def _wait(self, now: float, screen: str) -> float:
        read = self.store.read()
        return max(wait_s(*self._bucket(read, scope, now), now)
                   for scope in (f"screen:{screen}", GLOBAL_SCOPE))

    def _bucket(self, tx: Tx, scope: str, now: float) -> tuple[Bucket, Limits]:
        """A scope's bucket as stored (a fresh one if it never failed) and its limits."""
        limits = limits_for(scope, self.config.throttle)
        row = tx.one("SELECT * FROM throttle WHERE scope = ?", (scope,))
        bucket = fresh(limits, now) if row is None else Bucket(
            row["tokens"], row["updated_at"], row["lockouts"], row["locked_until"])
        return bucket, limits

    def _refusal(self, order: dict[str, object] | None, now: float) -> PickupRefused | None:
        if order is None:
            return PickupRefused("wrong_code", "this code is not valid")
        state = order["state"]
        if state in (OrderState.COLLECTING.value, OrderState.COLLECTED.value):
            return PickupRefused("used", "this code has already been used")
        window_end = order["window_end"]
        if state == OrderState.EXPIRED.value or (
            state == OrderState.READY.value and isinstance(window_end, float) and window_end <= now
        ):
            return PickupRefused("expired", "this code's pickup window has ended;"
                                 f" call {self.config.support_phone}")
        if state != OrderState.READY.value:
            return PickupRefused("not_ready", "this order is not ready for pickup")
        return None

    def _authorise(self, tx: Tx, order_id: str, now: float) -> list[OpenedDoor]:
        tx.execute("UPDATE orders SET state = ?, updated_at = ? WHERE id = ?",
                   (OrderState.COLLECTING.value, now, order_id))
        doors: list[OpenedDoor] = []
        for link in tx.all("SELECT compartment_id FROM order_compartments WHERE order_id = ?"
                           " ORDER BY compartment_id", (order_id,)):
            cid = link["compartment_id"]
            compartment = self.config.compartment(cid)
            auth_id = tx.insert("authorisations", {
                "compartment_id": cid, "order_id": order_id, "actor": "customer",
                "reason": "pickup", "created_at": now, "sent_at": now,
            })
            tx.execute("UPDATE compartments SET door = ?, door_changed_at = ? WHERE id = ?",
                       (DoorState.UNLOCKING.value, now, cid))
            tx.emit("door.unlock", "door", compartment_id=cid, order_id=order_id,
                    actor="customer", reason="pickup", authorisation=auth_id)
            doors.append(OpenedDoor(cid, compartment.zone.value, compartment.location))
        tx.emit("order.collecting", "order", order_id=order_id,
                compartments=[d.compartment_id for d in doors])
        return doors

    def _refused(self, now: float, screen: str, refusal: PickupRefused) -> None:
        """Count a wrong code against the screen and the locker; alarm on a burst."""
        counts = refusal.reason == "wrong_code"
        policy = self.config.throttle
        with self.store.transaction(now) as tx:
            tx.emit("security.code_refused", "security", screen=screen, reason=refusal.reason)
            if not counts:
                return
            for scope in (f"screen:{screen}", GLOBAL_SCOPE):
                bucket, limits = self._bucket(tx, scope, now)
                after = after_failure(bucket, limits, policy, now)
                tx.execute(
                    "INSERT OR REPLACE INTO throttle (scope, tokens, updated_at, lockouts,"
                    " locked_until) VALUES (?, ?, ?, ?, ?)",
                    (scope, after.tokens, after.updated_at, after.lockouts, after.locked_until))
            tx.execute("INSERT INTO code_failures (at, screen) VALUES (?, ?)", (now, screen))
            tx.execute("DELETE FROM code_failures WHERE at < ?", (now - policy.alarm_window_s,))
            recent = tx.one("SELECT COUNT(*) AS n FROM code_failures")
            if recent is not None and recent["n"] >= policy.alarm_failures:
                tx.raise_alarm("code_guessing", "locker",
                               f"{recent['n']} wrong pickup codes in the last"
                               f" {policy.alarm_window_s:.0f} s: someone may be guessing codes")
        refusal.retry_after_s = self._wait(now, screen)
        self.monitor.publish(tx)

    async def _unlock(self, order_id: str, doors: list[OpenedDoor]) -> PickupResult:
        """Pulse every door of the order together; record which the boards acknowledged."""
        outcomes = await asyncio.gather(
            *(self.driver.unlock(d.compartment_id) for d in doors), return_exceptions=True)
        result = PickupResult(order_id)
        now = self.clock.now()
        with self.store.transaction(now) as tx:
            for door, outcome in zip(doors, outcomes, strict=True):
                auth = tx.one("SELECT id FROM authorisations WHERE compartment_id = ? AND"
                              " order_id = ? ORDER BY id DESC LIMIT 1",
                              (door.compartment_id, order_id))
                auth_id = auth["id"] if auth else None
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, HardwareError):
                        log.exception("unlock of %s failed unexpectedly", door.compartment_id,
                                      exc_info=outcome)
                    result.failed.append(door)
                    tx.execute("UPDATE authorisations SET outcome = 'failed' WHERE id = ?"
                               " AND outcome IS NULL",
                               (auth_id,))
                    tx.execute("UPDATE compartments SET door = ? WHERE id = ? AND door = ?",
                               (DoorState.LOCKED.value, door.compartment_id,
                                DoorState.UNLOCKING.value))
                    tx.emit("door.unlock_failed", "door", compartment_id=door.compartment_id,
                            order_id=order_id, authorisation=auth_id, error=str(outcome))
                    tx.raise_alarm("unlock_failed", door.compartment_id,
                                   f"compartment {door.compartment_id} did not unlock for a"
                                   f" pickup: {outcome}")
                else:
                    result.opened.append(door)
                    tx.execute("UPDATE authorisations SET acked_at = ? WHERE id = ?",
                               (now, auth_id))
        self.monitor.publish(tx)
        return result
