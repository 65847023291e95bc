"""GPIO lock driver: one relay per lock and one reed switch per door, wired straight to the Pi.

For a small locker without RS485 lock boards. `GpioLockDriver` implements
`locker.domain.ports.LockDriver` through gpiozero (`OutputDevice` drives a lock's relay,
`DigitalInputDevice` with the pull-up reads a door's reed switch) with an injectable pin factory, so
tests run on gpiozero's `MockFactory` and assert on pin histories. `DigitalInputDevice` is `Button`
without the hold machinery: a `Button` starts a "held" thread per door, and closing it joins that
thread, which blocks the event loop for up to `hold_time` (1 s) per closed door (a closed door is a
held button) at every stop.

What it must never do:
- leave a relay on. Every relay declares its safe value, off (Klipper's rule): off when claimed at
  start, off in a `finally` after each pulse (also when the caller is cancelled), forced off by a
  watchdog thread once it has been on for `max_on_s` (even if the event loop is stuck), off at stop;
- block the event loop: a pulse waits with `asyncio.sleep`, doors are sampled, never waited on;
- skip an unlock because the door already reads open: a broken reed cable reads open
  (Open-Locker issue #302), so the pulse is always sent;
- pulse a lock twice at once: a repeated unlock while that lock is being pulsed is dropped;
- touch a compartment wired to a lock board, or know about orders, codes or who may open what.

Door sensing is polled (every `POLL_INTERVAL_S`) by one asyncio task, with our own debounce: a
change is reported only once the input has been stable for `debounce_ms`. The level is polled
rather than handled in gpiozero's `when_activated`/`when_deactivated` callbacks marshalled into the
loop, because:
- debouncing needs a timer anyway ("stable for debounce_ms" is a property of time, not of an edge);
- callbacks arrive on the pin factory's own thread on a Pi but synchronously in the caller's thread
  with `MockPin`; polling runs the same code, on the event loop, in both, with no thread hop;
- a missed edge (lost interrupt, a change during start) cannot leave a door wrong for ever: the
  next sample reads the level;
- gpiozero's `bounce_time` is ignored by `MockPin`, so only our own debounce is testable;
- the cost is nothing: a handful of pin reads every 10 ms; the added latency (at most one poll
  interval on top of the debounce) is far below what a person at a door notices.
Sampling alone would miss a bounce shorter than a poll interval and so could report a change up to
one interval before the input has really been stable. So the callbacks are used for one thing
only: each edge stamps "last edge at" on its door (a single attribute write, safe from any
thread, nothing scheduled on the loop); "stable" means neither a sample nor an edge has shown a
change for `debounce_ms`. Where a pin factory gives no edges, the sampling still works alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gpiozero import BadPinFactory, DigitalInputDevice, Factory, OutputDevice

from locker.domain.config import CompartmentConfig, GpioConfig, GpioWiring
from locker.domain.errors import ConfigError, HardwareError, UnknownCompartment
from locker.domain.model import DoorSense
from locker.domain.ports import HardwareListener

log = logging.getLogger("hardware.gpio")

BANK = "gpio"  # the "board" named in board_offline / board_online for the Pi's own pins
POLL_INTERVAL_S = 0.01
MAX_PULSE_MS = 5000  # the longest pulse the config allows (gpio.pulse_ms)
MAX_ON_GRACE_S = 0.2  # a relay on longer than pulse + this is forced off by the watchdog

_D = TypeVar("_D", OutputDevice, DigitalInputDevice)


@dataclass
class _Door:
    """One GPIO compartment: its pins, its devices once claimed, its pulse and debounce state."""

    compartment_id: str
    wiring: GpioWiring
    relay: OutputDevice | None = None
    reed: DigitalInputDevice | None = None
    pulsing: bool = False
    pulse_number: int = 0  # which pulse the watchdog timer belongs to
    reported: DoorSense = DoorSense.UNKNOWN  # what the listener was last told (or the first read)
    candidate: DoorSense = DoorSense.UNKNOWN  # what the input reads now
    candidate_since: float = 0.0  # since when it has read that
    last_edge: float = float("-inf")  # when an edge was last seen (written by the pin's thread)
    item: DigitalInputDevice | None = None  # its item sensor (item_pin), if it has one
    item_reported: bool | None = None  # occupied, as the listener was last told
    item_candidate: bool | None = None
    item_since: float = 0.0


class GpioLockDriver:
    """Locks on relays and doors on reed switches, on the Pi's GPIO pins (a LockDriver).

    Only the compartments wired with `GpioWiring` belong to it; others are unknown to it. Pins are
    claimed at `start()` and released at `stop()`. `unlock()` returns once the pulse is over.
    """

    def __init__(
        self,
        gpio: GpioConfig,
        compartments: Sequence[CompartmentConfig],
        *,
        pin_factory: Factory | None = None,
        clock_monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < gpio.pulse_ms <= MAX_PULSE_MS:
            raise ConfigError(
                f"gpio.pulse_ms: must be between 1 and {MAX_PULSE_MS} ms, not {gpio.pulse_ms}"
            )
        if gpio.debounce_ms < 0:
            raise ConfigError(f"gpio.debounce_ms: must not be negative, not {gpio.debounce_ms}")
        self._gpio = gpio
        self._factory = pin_factory
        self._clock = clock_monotonic
        self._doors: dict[str, _Door] = {
            c.id: _Door(c.id, c.wiring) for c in compartments if isinstance(c.wiring, GpioWiring)
        }
        self._listener: HardwareListener | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._offline = False
        # relays are switched from the loop and from watchdog threads: one lock for both
        self._relay_lock = threading.Lock()

    @property
    def pulse_s(self) -> float:
        return self._gpio.pulse_ms / 1000

    @property
    def debounce_s(self) -> float:
        return self._gpio.debounce_ms / 1000

    @property
    def max_on_s(self) -> float:
        """The longest a relay may stay on; past it the watchdog switches it off."""
        return self.pulse_s + MAX_ON_GRACE_S

    @property
    def compartment_ids(self) -> tuple[str, ...]:
        return tuple(self._doors)

    # -- LockDriver ----------------------------------------------------------------------------

    async def start(self, listener: HardwareListener) -> None:
        """Claim every pin (relays off), take the first full read of the doors, start polling."""
        if self._poll_task is not None:
            raise HardwareError("the GPIO driver is already started")
        try:
            for door in self._doors.values():
                self._claim(door)
        except BaseException:
            self._release_all()
            raise
        now = self._clock()
        for door in self._doors.values():
            sense = self._read_or_unknown(door)
            door.reported = door.candidate = sense
            door.candidate_since = now
        self._listener = listener
        self._offline = False
        for door in self._doors.values():
            self._sample_item(door, now, first=True)
        self._poll_task = asyncio.create_task(self._poll(), name="gpio door poll")
        log.info("GPIO driver started: %d compartment(s)", len(self._doors))

    async def stop(self) -> None:
        """Stop polling, switch every relay off and release every pin."""
        task, self._poll_task = self._poll_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # our own cancellation still propagates
        self._release_all()
        self._listener = None
        log.info("GPIO driver stopped: relays off, pins released")

    async def unlock(self, compartment_id: str) -> None:
        """Pulse the compartment's lock relay for exactly pulse_ms; return when it is off again.

        Sent even when the door already reads open. A call while that lock is being pulsed is
        dropped (returns at once). Raises UnknownCompartment, or HardwareError if not started or
        the relay cannot be switched.
        """
        door = self._door(compartment_id)
        if door.pulsing:
            log.info(
                "compartment %s: lock already being pulsed; repeated unlock dropped", compartment_id
            )
            return
        door.pulsing = True
        try:
            timer = self._relay_on(door)
            try:
                await asyncio.sleep(self.pulse_s)
            finally:
                timer.cancel()
                switched_off = self._relay_off(door)
        finally:
            door.pulsing = False
        if not switched_off:
            raise HardwareError(
                f"compartment {compartment_id}: could not switch off the lock relay on"
                f" GPIO{door.wiring.lock_pin}; cut the lock's power and check the wiring"
            )

    async def read_doors(self) -> Mapping[str, DoorSense]:
        """A fresh (not debounced) read of every door; UNKNOWN where a pin cannot be read."""
        return {cid: self._read_or_unknown(door) for cid, door in self._doors.items()}

    def reachable(self, compartment_id: str) -> bool:
        """The Pi's own pins: reachable once claimed (a relay does not stop answering)."""
        return self._poll_task is not None and compartment_id in self._doors

    # -- pins ----------------------------------------------------------------------------------

    def _door(self, compartment_id: str) -> _Door:
        try:
            return self._doors[compartment_id]
        except KeyError:
            known = ", ".join(self._doors) or "none"
            raise UnknownCompartment(
                f"compartment {compartment_id!r} is not wired to GPIO in this locker's config"
                f" (GPIO compartments: {known})"
            ) from None

    def _claim(self, door: _Door) -> None:
        wiring, active_high = door.wiring, self._gpio.relay_active_high
        door.relay = self._claim_pin(
            door,
            wiring.lock_pin,
            "lock relay",
            lambda: OutputDevice(
                wiring.lock_pin,
                active_high=active_high,
                initial_value=False,  # the safe value: off
                pin_factory=self._factory,
            ),
        )
        # reed to ground with the pull-up: magnet present (door closed) reads LOW = active.
        # bounce_time=None: the debounce is ours (see the module docstring).
        door.reed = self._claim_pin(
            door,
            wiring.door_pin,
            "door reed switch",
            lambda: DigitalInputDevice(
                wiring.door_pin,
                pull_up=True,
                bounce_time=None,
                pin_factory=self._factory,
            ),
        )

        def edge() -> None:  # on the pin factory's thread: stamp the time, nothing more
            door.last_edge = self._clock()

        door.reed.when_activated = edge
        door.reed.when_deactivated = edge
        item_pin = wiring.item_pin
        if item_pin is not None:
            # an item sensor's switch to ground with the pull-up: something inside reads LOW
            door.item = self._claim_pin(
                door, item_pin, "item sensor",
                lambda: DigitalInputDevice(item_pin, pull_up=True, bounce_time=None,
                                           pin_factory=self._factory),
            )

    @staticmethod
    def _claim_pin(door: _Door, pin: int, what: str, make: Callable[[], _D]) -> _D:
        try:
            return make()
        except Exception as exc:  # gpiozero's errors, or the pin library's own (lgpio, ...)
            hint = "check the pin number in the config and that nothing else uses the pin"
            if isinstance(exc, BadPinFactory):
                hint = "no GPIO here; off a Raspberry Pi, run with GPIOZERO_PIN_FACTORY=mock"
            raise HardwareError(
                f"compartment {door.compartment_id}: cannot claim GPIO{pin} for its {what}"
                f" ({type(exc).__name__}: {exc}); {hint}"
            ) from exc

    def _release_all(self) -> None:
        """Relays off, then every device closed (pins released). Never raises."""
        with self._relay_lock:
            for door in self._doors.values():
                door.pulse_number += 1  # any pending watchdog now belongs to no pulse
                relay, door.relay = door.relay, None
                reed, door.reed = door.reed, None
                item, door.item = door.item, None
                if relay is not None:
                    self._switch_off(relay, door)
                    self._close(relay, door, door.wiring.lock_pin)
                if reed is not None:
                    self._close(reed, door, door.wiring.door_pin)
                if item is not None and door.wiring.item_pin is not None:
                    self._close(item, door, door.wiring.item_pin)

    @staticmethod
    def _close(device: OutputDevice | DigitalInputDevice, door: _Door, pin: int) -> None:
        try:
            device.close()
        except Exception:
            log.warning(
                "compartment %s: cannot release GPIO%d", door.compartment_id, pin, exc_info=True
            )

    def _relay_on(self, door: _Door) -> threading.Timer:
        """Switch the relay on and arm its watchdog; the caller must call _relay_off."""
        with self._relay_lock:
            relay = door.relay
            if relay is None:
                raise HardwareError(
                    f"compartment {door.compartment_id}: the GPIO driver is not started"
                )
            door.pulse_number += 1
            timer = threading.Timer(self.max_on_s, self._watchdog, (door, door.pulse_number))
            timer.daemon = True
            try:
                relay.on()
            except Exception as exc:
                raise HardwareError(
                    f"compartment {door.compartment_id}: cannot switch on the lock relay on"
                    f" GPIO{door.wiring.lock_pin} ({type(exc).__name__}: {exc})"
                ) from exc
            timer.start()
            return timer

    def _relay_off(self, door: _Door) -> bool:
        """Switch the relay off; False if that failed (logged). Released pins count as off."""
        with self._relay_lock:
            relay = door.relay
            if relay is None:
                return True  # stop() already switched it off and released it
            return self._switch_off(relay, door)

    @staticmethod
    def _switch_off(relay: OutputDevice, door: _Door) -> bool:
        """Relay off; False (and a critical log line) if the pin would not switch."""
        try:
            relay.off()
        except Exception:
            log.critical(
                "compartment %s: cannot switch off the lock relay on GPIO%d",
                door.compartment_id,
                door.wiring.lock_pin,
                exc_info=True,
            )
            return False
        return True

    def _watchdog(self, door: _Door, pulse_number: int) -> None:
        """Runs in a timer thread: the pulse outlived max_on_s, so force the relay off."""
        with self._relay_lock:
            relay = door.relay
            if relay is None or door.pulse_number != pulse_number:
                return
            try:
                was_on = bool(relay.value)
                relay.off()
            except Exception:
                log.critical(
                    "compartment %s: watchdog cannot switch off the lock relay on GPIO%d",
                    door.compartment_id,
                    door.wiring.lock_pin,
                    exc_info=True,
                )
                return
        if was_on:
            log.error(
                "compartment %s: lock relay on GPIO%d still on after %.2f s; forced off"
                " (was the event loop blocked?)",
                door.compartment_id,
                door.wiring.lock_pin,
                self.max_on_s,
            )

    # -- doors ---------------------------------------------------------------------------------

    def _read(self, door: _Door) -> DoorSense:
        reed = door.reed
        if reed is None:
            raise HardwareError(
                f"compartment {door.compartment_id}: the GPIO driver is not started"
            )
        try:
            closed = reed.is_active
        except Exception as exc:
            raise HardwareError(
                f"compartment {door.compartment_id}: cannot read the door reed switch on"
                f" GPIO{door.wiring.door_pin} ({type(exc).__name__}: {exc})"
            ) from exc
        return DoorSense.CLOSED if closed else DoorSense.OPEN

    def _read_or_unknown(self, door: _Door) -> DoorSense:
        try:
            return self._read(door)
        except HardwareError:
            return DoorSense.UNKNOWN

    async def _poll(self) -> None:
        while True:
            try:
                self._sample()
            except Exception:  # a bug here must not stop the door watch
                log.exception("GPIO door poll failed; polling goes on")
            await asyncio.sleep(POLL_INTERVAL_S)

    def _sample(self) -> None:
        """Read every door once; report debounced changes, and the bank going offline or back."""
        listener = self._listener
        if listener is None:
            return
        now = self._clock()
        failures: list[str] = []
        changes: list[tuple[str, DoorSense]] = []
        for door in self._doors.values():
            try:
                sense = self._read(door)
            except HardwareError as exc:
                failures.append(str(exc))
                continue
            if sense != door.candidate:
                door.candidate, door.candidate_since = sense, now
            stable_since = max(door.candidate_since, door.last_edge)
            if door.candidate != door.reported and now - stable_since >= self.debounce_s:
                door.reported = door.candidate
                changes.append((door.compartment_id, door.reported))
        if failures and not self._offline:
            self._offline = True
            log.error("GPIO doors cannot be read: %s", "; ".join(failures))
            listener.board_offline(BANK, "; ".join(failures))
        elif not failures and self._offline:
            self._offline = False
            log.info("GPIO doors can be read again")
            listener.board_online(BANK)
        for door in self._doors.values():
            self._sample_item(door, now)
        for compartment_id, sense in changes:
            try:
                listener.door_sensed(compartment_id, sense)
            except Exception:  # one listener bug must not swallow the other doors' changes
                log.exception("listener failed on door %s %s", compartment_id, sense.value)

    def _sample_item(self, door: _Door, now: float, first: bool = False) -> None:
        """Read a compartment's item sensor; its first reading is reported at once, a change
        once stable for debounce_ms (a bag put in bounces like a door)."""
        item, listener = door.item, self._listener
        if item is None or listener is None:
            return
        try:
            occupied = bool(item.is_active)
        except Exception:
            log.warning("compartment %s: cannot read its item sensor", door.compartment_id,
                        exc_info=True)
            return
        if occupied != door.item_candidate:
            door.item_candidate, door.item_since = occupied, now
        if occupied == door.item_reported or not (first or now - door.item_since
                                                  >= self.debounce_s):
            return
        try:
            listener.item_sensed(door.compartment_id, occupied)
        except Exception:  # not remembered: the next sample reports it again
            log.exception("listener failed on item %s", door.compartment_id)
            return
        door.item_reported = occupied
