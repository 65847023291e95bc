"""The physical world behind the lock boards: each compartment's latch, door, goods, and people.

An unlock pulses the latch for the board's pulse time; a spring-loaded door pops open unless it
is jammed (the board still acknowledged: the latch did pulse); a forced door opens with the latch
engaged; a door closes when a person closes it and the latch catches it again. Every change is
recorded with a `time.monotonic_ns` timestamp, like gpiozero's mock pins keep a state history,
so tests assert "door A01 opened at t and closed at t2", not "a method was called". Goods are
put in and taken out by a person through an open door (an item sensor, where the board has one,
reads them).

It knows nothing of frames or protocols, and must NEVER import anything from hardware/.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from locker.domain.config import BoardWiring, LockerConfig
from simulator.protocols import UnlockResult

What = Literal["unlock", "latch", "door", "jam", "fault", "pulse", "goods"]
Cause = Literal["board", "person", "auto", "force", "injected", "pulse_end"]


@dataclass(frozen=True)
class Change:
    """One recorded change: at t_ns (time.monotonic_ns), `what` of `compartment` became `state`.

    what/state pairs: unlock -> ok|fault|cooldown (a command reached the latch driver);
    latch -> released|engaged; door -> open|closed; jam -> on|off; fault -> on|off;
    pulse -> the new pulse length in ms; goods -> in|out.
    """

    t_ns: int
    compartment: str
    what: What
    state: str
    cause: Cause

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Lock:
    """One compartment's hardware: a latch on a board channel and a door with a sensor."""

    id: str
    board: int
    channel: int
    pulse_ms: int
    latch_released_until_ns: int | None = None  # None: engaged
    door_open: bool = False
    jammed: bool = False
    lock_fault: bool = False
    forced: bool = False  # the current opening happened with the latch engaged
    goods: bool = False  # something is inside

    @property
    def latch_engaged(self) -> bool:
        return self.latch_released_until_ns is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "board": self.board,
            "channel": self.channel,
            "latch": "engaged" if self.latch_engaged else "released",
            "door": "open" if self.door_open else "closed",
            "jammed": self.jammed,
            "lock_fault": self.lock_fault,
            "forced": self.forced,
            "pulse_ms": self.pulse_ms,
            "goods": self.goods,
        }


class DoorRefused(Exception):
    """A person cannot do that to this door now (pulling a latched door, say)."""


Listener = Callable[[Change], None]


class Doors:
    """Every latch and door of the locker, with their timestamped history.

    Latch pulses end by themselves: a timer records the re-engagement when an event loop runs,
    and every read also settles pulses that are due (back-dated to their exact end), so the
    history stays in time order even without a loop.
    """

    def __init__(
        self,
        locks: Iterable[tuple[str, int, int]],
        *,
        pulse_ms: int = 500,
        spring: bool = True,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.locks: dict[str, Lock] = {}
        self._by_channel: dict[tuple[int, int], Lock] = {}
        for lock_id, board, channel in locks:
            lock = Lock(lock_id, board, channel, pulse_ms)
            self.locks[lock_id] = lock
            self._by_channel[(board, channel)] = lock
        self.spring = spring
        self.now_ns = now_ns
        self.history: list[Change] = []
        self.listeners: list[Listener] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._released: set[str] = set()  # latches in their pulse, so settling stays cheap

    @classmethod
    def from_config(cls, config: LockerConfig, *, spring: bool = True) -> Doors:
        """One lock per channel of every declared board; unassigned channels get "b<B>c<C>"."""
        if config.bus is None:
            raise ValueError(f"{config.path}: no [bus] table: nothing for simulated boards")
        named = {
            (c.wiring.board, c.wiring.channel): c.id
            for c in config.compartments
            if isinstance(c.wiring, BoardWiring)
        }
        locks = [
            (
                named.get((board.address, channel), f"b{board.address}c{channel}"),
                board.address,
                channel,
            )
            for board in config.bus.boards
            for channel in range(1, board.channels + 1)
        ]
        return cls(locks, pulse_ms=config.bus.pulse_ms, spring=spring)

    # ---- reading ---------------------------------------------------------------------------

    def lock(self, lock_id: str) -> Lock:
        self._settle()
        try:
            return self.locks[lock_id]
        except KeyError:
            raise KeyError(f"no compartment {lock_id!r} in the simulated locker") from None

    def at(self, board: int, channel: int) -> Lock | None:
        self._settle()
        return self._by_channel.get((board, channel))

    def is_closed(self, lock_id: str) -> bool:
        return not self.lock(lock_id).door_open

    def state(self) -> dict[str, dict[str, Any]]:
        self._settle()
        return {lock_id: lock.as_dict() for lock_id, lock in self.locks.items()}

    def history_of(self, lock_id: str, what: What | None = None) -> list[Change]:
        self._settle()
        return [
            c for c in self.history if c.compartment == lock_id and (what is None or c.what == what)
        ]

    def times(self, lock_id: str, what: What, state: str) -> list[int]:
        """Every t_ns at which `what` of this compartment became `state`."""
        return [c.t_ns for c in self.history_of(lock_id, what) if c.state == state]

    # ---- the board's latch driver ----------------------------------------------------------

    def unlock(self, lock_id: str) -> UnlockResult:
        """Pulse the latch; a closed, free, spring-loaded door pops open."""
        lock = self.lock(lock_id)
        now = self.now_ns()
        if lock.lock_fault:
            self._record(now, lock, "unlock", "fault", "board")
            return UnlockResult.FAULT
        if not lock.latch_engaged:
            self._record(now, lock, "unlock", "cooldown", "board")
            return UnlockResult.COOLDOWN
        self._record(now, lock, "unlock", "ok", "board")
        lock.latch_released_until_ns = now + lock.pulse_ms * 1_000_000
        self._released.add(lock.id)
        self._record(now, lock, "latch", "released", "board")
        self._arm_pulse_end(lock)
        if self.spring and not lock.door_open and not lock.jammed:
            lock.door_open, lock.forced = True, False
            self._record(now, lock, "door", "open", "board")
        return UnlockResult.OK

    def set_pulse_ms(self, lock_id: str, ms: int) -> None:
        lock = self.lock(lock_id)
        lock.pulse_ms = ms
        self._record(self.now_ns(), lock, "pulse", str(ms), "board")

    # ---- people and faults -----------------------------------------------------------------

    def open(self, lock_id: str, cause: Cause = "person") -> None:
        """A person pulls the door: it opens only while the latch is released and not jammed."""
        lock = self.lock(lock_id)
        if lock.door_open:
            return
        if lock.latch_engaged:
            raise DoorRefused(f"{lock_id}: the latch is engaged; pulling does not open it")
        if lock.jammed:
            raise DoorRefused(f"{lock_id}: the door is jammed")
        lock.door_open, lock.forced = True, False
        self._record(self.now_ns(), lock, "door", "open", cause)

    def close(self, lock_id: str, cause: Cause = "person") -> None:
        """A person pushes the door shut; the spring latch catches it (once its pulse is over)."""
        lock = self.lock(lock_id)
        if not lock.door_open:
            return
        lock.door_open, lock.forced = False, False
        self._record(self.now_ns(), lock, "door", "closed", cause)

    def put(self, lock_id: str, cause: Cause = "person") -> None:
        """A person puts goods in, through the open door."""
        self.set_goods(lock_id, True, cause)

    def take(self, lock_id: str, cause: Cause = "person") -> None:
        """A person takes the goods out, through the open door."""
        self.set_goods(lock_id, False, cause)

    def set_goods(self, lock_id: str, inside: bool, cause: Cause = "person") -> None:
        lock = self.lock(lock_id)
        if lock.goods == inside:
            return
        if not lock.door_open:
            raise DoorRefused(f"{lock_id}: the door is shut; goods go in and out through an"
                              " open door")
        lock.goods = inside
        self._record(self.now_ns(), lock, "goods", "in" if inside else "out", cause)

    def force(self, lock_id: str) -> None:
        """Someone breaks the door open: it opens with the latch still engaged."""
        lock = self.lock(lock_id)
        if lock.door_open:
            return
        lock.door_open, lock.forced = True, True
        self._record(self.now_ns(), lock, "door", "open", "force")

    def jam(self, lock_id: str, jammed: bool = True) -> None:
        """A jammed door stays shut when its latch pulses (a bag caught, a bent frame)."""
        lock = self.lock(lock_id)
        if lock.jammed != jammed:
            lock.jammed = jammed
            self._record(self.now_ns(), lock, "jam", "on" if jammed else "off", "injected")

    def lock_fault(self, lock_id: str, fault: bool = True) -> None:
        """A latch that does not respond: the board reports the failure where it can."""
        lock = self.lock(lock_id)
        if lock.lock_fault != fault:
            lock.lock_fault = fault
            self._record(self.now_ns(), lock, "fault", "on" if fault else "off", "injected")

    def cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ---- inside ----------------------------------------------------------------------------

    def _record(self, t_ns: int, lock: Lock, what: What, state: str, cause: Cause) -> None:
        change = Change(t_ns, lock.id, what, state, cause)
        self.history.append(change)
        for listener in list(self.listeners):
            listener(change)

    def _settle(self) -> None:
        if not self._released:
            return
        now = self.now_ns()
        due = [
            self.locks[lock_id]
            for lock_id in self._released
            if (self.locks[lock_id].latch_released_until_ns or 0) <= now
        ]
        due.sort(key=lambda lock: lock.latch_released_until_ns or 0)
        for lock in due:
            end = lock.latch_released_until_ns
            assert end is not None
            lock.latch_released_until_ns = None
            self._released.discard(lock.id)
            self._record(end, lock, "latch", "engaged", "pulse_end")

    def _arm_pulse_end(self, lock: Lock) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # settled on the next read instead
        old = self._timers.pop(lock.id, None)
        if old is not None:
            old.cancel()
        delay = lock.pulse_ms / 1000
        self._timers[lock.id] = loop.call_later(delay, self._pulse_timer, lock.id)

    def _pulse_timer(self, lock_id: str) -> None:
        self._timers.pop(lock_id, None)
        self._settle()
        lock = self.locks[lock_id]
        if lock.latch_released_until_ns is not None:  # the loop woke a hair early
            remaining = (lock.latch_released_until_ns - self.now_ns()) / 1e9
            loop = asyncio.get_running_loop()
            self._timers[lock_id] = loop.call_later(
                max(remaining, 0.0005), self._pulse_timer, lock_id
            )


@dataclass
class Person:
    """The people in front of the locker: optionally close every opened door after a while.

    auto_close_s=None leaves doors open until a test or the control API closes them. Forced doors
    are closed too (the vandal or the technician pushes it back). In the compartments of
    `moves_goods` (those an item sensor watches) the person also does what people at a door do
    before closing it: puts goods into an empty one (a courier loading), takes them out of a full
    one (a customer's pickup, a courier taking back).
    """

    doors: Doors
    auto_close_s: float | None = None
    moves_goods: frozenset[str] = frozenset()
    _pending: dict[str, asyncio.TimerHandle] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.doors.listeners.append(self._seen)

    def _seen(self, change: Change) -> None:
        if change.what != "door":
            return
        pending = self._pending.pop(change.compartment, None)
        if pending is not None:
            pending.cancel()
        if change.state != "open" or self.auto_close_s is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending[change.compartment] = loop.call_later(
            self.auto_close_s, self._close, change.compartment
        )

    def _close(self, lock_id: str) -> None:
        self._pending.pop(lock_id, None)
        if lock_id in self.moves_goods:
            lock = self.doors.lock(lock_id)
            self.doors.set_goods(lock_id, not lock.goods, "auto")
        self.doors.close(lock_id, cause="auto")

    async def script(self, steps: Iterable[tuple[float, str, str]]) -> None:
        """Run (delay_s, action, compartment) steps in order; action is a Doors method name:
        open, close, force, jam. A refused step (DoorRefused) is recorded by its absence."""
        actions: dict[str, Callable[[str], None]] = {
            "open": self.doors.open,
            "close": self.doors.close,
            "force": self.doors.force,
            "jam": self.doors.jam,
        }
        for delay, action, lock_id in steps:
            await asyncio.sleep(delay)
            with contextlib.suppress(DoorRefused):
                actions[action](lock_id)

    def stop(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
