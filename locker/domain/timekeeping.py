"""The wall clock, watched: a step is an event, and nothing expires for good on a clock that
cannot be trusted.

A Raspberry Pi has no real-time clock: it boots on a stale time until NTP answers, and anyone
with a shell can set the date. Durations therefore run on the monotonic clock, dates on the wall
clock, and the two are compared every second: when the wall clock moves more than the monotonic
one did, that is a step (`clock.stepped {by_s}`). A step moves the start of every running
duration in the store with it (lockouts, door timers, holds, outages), so a lockout of 120 s stays
120 s; it never moves a date (a pickup window ends when it ends).

Trust: the clock is not trusted while the system says it is not synchronised, nor, after a
forward step that no synchronisation vouches for, for `clock.trust_after_step_s`. Meanwhile:

- after a forward step, no window expires at all (a bogus step must not cost a customer
  anything);
- while merely unsynchronised, windows do expire (an offline locker must still let its couriers
  take back old goods), but provisionally (`held_for = "clock_untrusted"`): once the clock is
  trusted, or after any backward step, each is decided again, and one whose window is still
  open comes back `ready`.

A backward step also re-bases the staff TOTP replay marks, so that a courier's current code works
(the replay window stays one code).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from locker.domain.clock import Clock
from locker.domain.config import ClockPolicy
from locker.domain.lifecycle import door as door_life
from locker.domain.lifecycle import order as order_life
from locker.domain.lifecycle import returns as returns_life
from locker.domain.lifecycle.order import redecide_expiries
from locker.domain.ports import ClockStatus
from locker.domain.staff import STEP_S
from locker.domain.store import Store, Tx

log = logging.getLogger("locker.clock")
STEP_TOLERANCE_S = 2.0  # the wall clock and the monotonic one may part by this much in a pass
LAST_WALL = "clock.last_wall"  # the wall time last seen, so a restart sees a step taken meanwhile
LAST_WALL_EVERY_S = 3600.0



@dataclass(frozen=True)
class Trust:
    trusted: bool
    expiry: str  # "normal", "provisional" (unsynchronised) or "suspended" (after a step)
    why: str = ""


class TimeKeeper:
    """Watches the wall clock against the monotonic one; says how far it is trusted."""

    def __init__(self, store: Store, clock: Clock, policy: ClockPolicy,
                 status: ClockStatus | None = None) -> None:
        self.store, self.clock, self.policy, self.status = store, clock, policy, status
        self._wall, self._mono = clock.now(), clock.monotonic()
        self._suspect_until: float | None = None  # monotonic end of the distrust after a step
        self._unsynced_since: float | None = None
        self._trusted_before = True
        self._last_wall_saved = -LAST_WALL_EVERY_S
        self.synchronised: bool | None = None

    # -- what the rest asks --------------------------------------------------------------------

    def trust(self) -> Trust:
        if self._suspect_until is not None:
            return Trust(False, "suspended", "the wall clock stepped forward")
        if self.synchronised is False:
            return Trust(False, "provisional", "the system clock is not synchronised")
        return Trust(True, "normal")

    def expiry_suspended(self) -> bool:
        return self._suspect_until is not None

    # -- at start and every second ------------------------------------------------------------

    def start(self) -> None:
        """A step taken while the daemon was down: the clock is behind the last time seen."""
        self._read_status()
        last = self.store.meta(LAST_WALL)
        now = self.clock.now()
        if last is not None and now < float(last) - STEP_TOLERANCE_S:
            self._stepped(now - float(last), "while the locker was stopped")
        self._save_last_wall(now)

    def check(self) -> None:
        """One pass: a step since the last pass, the synchronisation, the trust."""
        wall, mono = self.clock.now(), self.clock.monotonic()
        drift = (wall - self._wall) - (mono - self._mono)
        self._wall, self._mono = wall, mono
        self._read_status()
        if abs(drift) > STEP_TOLERANCE_S:
            self._stepped(drift, "")
        if self._suspect_until is not None and (
                self.synchronised is True or mono >= self._suspect_until):
            log.warning("the wall clock is trusted again (%s)", "synchronised"
                        if self.synchronised else "no step back came")
            self._suspect_until = None
        self._alarm(mono)
        trusted = self.trust().trusted
        if trusted and not self._trusted_before:
            with self.store.transaction(wall) as tx:
                redecide_expiries(tx, "the clock is trusted again")
        self._trusted_before = trusted
        if wall - self._last_wall_saved >= LAST_WALL_EVERY_S:
            self._save_last_wall(wall)

    def stop(self) -> None:
        self._save_last_wall(self.clock.now())

    # -- inside ---------------------------------------------------------------------------------

    def _read_status(self) -> None:
        self.synchronised = None if self.status is None else self.status.synchronised()

    def _stepped(self, by_s: float, when: str) -> None:
        now = self.clock.now()
        log.warning("the wall clock stepped by %+.0f s%s", by_s, f" {when}" if when else "")
        with self.store.transaction(now) as tx:
            tx.emit("clock.stepped", "security", by_s=round(by_s, 3),
                    synchronised=self.synchronised, **({"when": when} if when else {}))
            shift_running(tx, by_s)
            if by_s < 0:
                rebase_staff_codes(tx, now)
                redecide_expiries(tx, f"the clock stepped back {-by_s:.0f} s")
        if by_s > 0 and self.synchronised is not True:
            # nothing vouches for the new time: it may be a wrong one
            self._suspect_until = self.clock.monotonic() + self.policy.trust_after_step_s
        elif by_s < 0:
            self._suspect_until = None  # the correction of an earlier step, or a boot

    def _alarm(self, mono: float) -> None:
        if self.synchronised is False:
            if self._unsynced_since is None:
                self._unsynced_since = mono
            if mono - self._unsynced_since < self.policy.unsynchronised_alarm_s:
                return
            if self.store.read().one("SELECT 1 AS open FROM alarms WHERE kind ="
                                     " 'clock_unsynchronised' AND cleared_at IS NULL"):
                return
            with self.store.transaction(self.clock.now()) as tx:
                tx.raise_alarm("clock_unsynchronised", "clock",
                               f"the system clock has not been synchronised for"
                               f" {mono - self._unsynced_since:.0f} s: pickup windows expire"
                               " only provisionally. Check the network and NTP"
                               " (timedatectl timesync-status)")
            return
        self._unsynced_since = None
        if self.synchronised and self.store.read().one(
                "SELECT 1 AS open FROM alarms WHERE kind = 'clock_unsynchronised'"
                " AND cleared_at IS NULL"):
            with self.store.transaction(self.clock.now()) as tx:
                tx.clear_alarm("clock_unsynchronised", "clock", "the system clock is"
                               " synchronised")

    def _save_last_wall(self, wall: float) -> None:
        self._last_wall_saved = wall
        try:
            with self.store.transaction(wall, durable=False) as tx:
                tx.set_meta(LAST_WALL, repr(wall))
        except Exception:  # a full disk: the next pass tries again
            log.debug("could not record the wall time", exc_info=True)


def shift_running(tx: Tx, by_s: float) -> None:
    """Move the start of every running duration by the step, so it keeps its length: door
    timers and holds (the lifecycle's), throttle buckets and delays, the burst count, central's
    outage."""
    door_life.shift_timers(tx, by_s)
    order_life.shift_timers(tx, by_s)
    returns_life.shift_timers(tx, by_s)
    tx.execute("UPDATE throttle SET updated_at = updated_at + :by,"
               " locked_until = locked_until + :by", {"by": by_s})
    tx.execute("UPDATE slowdown SET updated_at = updated_at + :by, next_at = next_at + :by",
               {"by": by_s})
    tx.execute("UPDATE code_failures SET at = at + ?", (by_s,))
    since = tx.meta("central.outage_since")
    if since is not None:
        tx.set_meta("central.outage_since", repr(float(since) + by_s))


def rebase_staff_codes(tx: Tx, now: float) -> None:
    """After a step back, a staff member's current code must work: the replay mark goes back to
    just before the current time step (older codes are still refused)."""
    current = int(now // STEP_S)
    tx.execute("UPDATE staff_codes SET last_step = ? WHERE last_step >= ?",
               (current - 1, current))
