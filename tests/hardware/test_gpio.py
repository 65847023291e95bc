"""GpioLockDriver on gpiozero's MockFactory: asserts on the pins' timestamped state histories.

A MockPin's `states` is a list of (timestamp, state) where each timestamp is the time since the
previous change, so `states[i + 1].timestamp` is how long `states[i]` lasted. A fresh MockFactory
per test keeps pins apart (pins are not freed on close with the mock factory, gpiozero #1087).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from gpiozero import DigitalInputDevice, OutputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from hardware.gpio import MAX_ON_GRACE_S, POLL_INTERVAL_S, GpioLockDriver
from locker.domain.config import BoardWiring, CompartmentConfig, GpioConfig, GpioWiring
from locker.domain.errors import HardwareError, UnknownCompartment
from locker.domain.model import DoorSense, Size, Zone

PULSE_MS = 100
DEBOUNCE_MS = 50
PULSE_S = PULSE_MS / 1000
DEBOUNCE_S = DEBOUNCE_MS / 1000
EARLY = 0.005  # how much earlier than asked asyncio may wake (clock granularity)
LATE = 0.08  # how much later a busy test machine may wake

A1 = CompartmentConfig("A1", Zone.AMBIENT, Size.S, GpioWiring(lock_pin=17, door_pin=27))
A2 = CompartmentConfig("A2", Zone.FRESH, Size.M, GpioWiring(lock_pin=22, door_pin=23))
B1 = CompartmentConfig("B1", Zone.FROZEN, Size.L, BoardWiring(board=0, channel=1))


class Recorder:
    """A HardwareListener that writes down what it is told, and when."""

    def __init__(self) -> None:
        self.doors: list[tuple[str, DoorSense]] = []
        self.door_times: list[float] = []
        self.bank: list[tuple[str, str]] = []
        self.items: list[tuple[str, bool]] = []

    def item_sensed(self, compartment_id: str, occupied: bool) -> None:
        self.items.append((compartment_id, occupied))

    def door_sensed(self, compartment_id: str, sense: DoorSense) -> None:
        self.doors.append((compartment_id, sense))
        self.door_times.append(time.monotonic())

    def board_offline(self, board: str, reason: str) -> None:
        self.bank.append(("offline", board))

    def board_online(self, board: str) -> None:
        self.bank.append(("online", board))


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.reset()


@pytest.fixture
def listener() -> Recorder:
    return Recorder()


def make_driver(factory: MockFactory, *, active_high: bool = True) -> GpioLockDriver:
    config = GpioConfig(pulse_ms=PULSE_MS, debounce_ms=DEBOUNCE_MS, relay_active_high=active_high)
    return GpioLockDriver(config, [A1, A2, B1], pin_factory=factory)


@pytest.fixture
async def driver(factory: MockFactory, listener: Recorder) -> AsyncIterator[GpioLockDriver]:
    lock_driver = make_driver(factory)
    await lock_driver.start(listener)
    yield lock_driver
    await lock_driver.stop()


def pin(factory: MockFactory, number: int) -> MockPin:
    found: MockPin = factory.pin(number)
    return found


def on_periods(mock_pin: MockPin, active: bool = True) -> list[float]:
    """How long the pin stayed at its active level, for every time it went there and left."""
    states = mock_pin.states
    return [states[i + 1].timestamp for i in range(1, len(states) - 1) if states[i].state == active]


async def wait_until(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.002)


async def settle() -> None:
    """Long enough for any change to pass the debounce and be sampled."""
    await asyncio.sleep(DEBOUNCE_S + 4 * POLL_INTERVAL_S)


# -- relays ------------------------------------------------------------------------------------


@pytest.mark.parametrize("active_high", [True, False])
async def test_relays_are_off_at_start_and_at_stop(
    factory: MockFactory, listener: Recorder, active_high: bool
) -> None:
    off = not active_high  # the pin level that leaves the relay off
    lock_driver = make_driver(factory, active_high=active_high)
    await lock_driver.start(listener)
    for number in (17, 22):
        relay = pin(factory, number)
        assert relay.function == "output"
        assert relay.state == off
        # the first entry is the unclaimed MockPin (floating, low); from the claim on, only "off"
        assert [s.state for s in relay.states[1:]] in ([], [off])

    await lock_driver.stop()
    for number in (17, 22):
        relay = pin(factory, number)
        assert relay.function == "input"  # released
        assert all(s.state == off for s in relay.states[1:])
    # released for real: the pins can be claimed again
    OutputDevice(17, pin_factory=factory).close()
    DigitalInputDevice(27, pin_factory=factory).close()


@pytest.mark.parametrize("active_high", [True, False])
async def test_unlock_pulses_the_relay_for_pulse_ms(
    factory: MockFactory, listener: Recorder, active_high: bool
) -> None:
    lock_driver = make_driver(factory, active_high=active_high)
    await lock_driver.start(listener)
    # the door already reads open (a broken cable looks the same): the pulse is sent anyway
    assert (await lock_driver.read_doors())["A1"] is DoorSense.OPEN
    relay = pin(factory, 17)
    relay.clear_states()

    started = time.monotonic()
    await lock_driver.unlock("A1")
    elapsed = time.monotonic() - started

    assert [s.state for s in relay.states] == [not active_high, active_high, not active_high]
    (on_for,) = on_periods(relay, active=active_high)
    assert PULSE_S - EARLY <= on_for <= PULSE_S + LATE
    assert relay.state == (not active_high)
    assert PULSE_S - EARLY <= elapsed <= PULSE_S + LATE  # unlock returns once the pulse is over
    assert len(pin(factory, 22).states) <= 2  # the other lock was never touched
    await lock_driver.stop()


async def test_repeated_unlock_during_a_pulse_is_dropped(
    factory: MockFactory, driver: GpioLockDriver
) -> None:
    relay = pin(factory, 17)
    first = asyncio.create_task(driver.unlock("A1"))
    await wait_until(lambda: relay.state is True)

    started = time.monotonic()
    await driver.unlock("A1")  # dropped: returns at once, no second pulse
    assert time.monotonic() - started < PULSE_S / 2
    await first

    assert len(on_periods(relay)) == 1
    assert relay.state is False
    # once the pulse is over, the lock can be pulsed again
    await driver.unlock("A1")
    assert len(on_periods(relay)) == 2


async def test_two_locks_can_be_pulsed_together(
    factory: MockFactory, driver: GpioLockDriver
) -> None:
    await asyncio.gather(driver.unlock("A1"), driver.unlock("A2"))
    assert len(on_periods(pin(factory, 17))) == 1
    assert len(on_periods(pin(factory, 22))) == 1


async def test_cancelled_unlock_leaves_the_relay_off(
    factory: MockFactory, driver: GpioLockDriver
) -> None:
    relay = pin(factory, 17)
    task = asyncio.create_task(driver.unlock("A1"))
    await wait_until(lambda: relay.state is True)
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert relay.state is False
    (on_for,) = on_periods(relay)
    assert on_for < PULSE_S
    await driver.unlock("A1")  # not stuck as "being pulsed"
    assert len(on_periods(relay)) == 2


async def test_watchdog_switches_the_relay_off_when_the_loop_is_stuck(
    factory: MockFactory, driver: GpioLockDriver
) -> None:
    relay = pin(factory, 17)
    task = asyncio.create_task(driver.unlock("A1"))
    await wait_until(lambda: relay.state is True)
    time.sleep(driver.max_on_s + 0.2)  # blocks the event loop: the pulse cannot end by itself
    assert relay.state is False
    await task

    (on_for,) = on_periods(relay)
    assert driver.max_on_s - EARLY <= on_for <= driver.max_on_s + LATE
    assert driver.max_on_s == pytest.approx(PULSE_S + MAX_ON_GRACE_S)


async def test_stop_during_a_pulse_switches_the_relay_off(
    factory: MockFactory, driver: GpioLockDriver
) -> None:
    relay = pin(factory, 17)
    task = asyncio.create_task(driver.unlock("A1"))
    await wait_until(lambda: relay.state is True)
    await driver.stop()
    assert relay.state is False
    await task  # its own "off" finds the relay already off and released
    assert relay.state is False


# -- doors -------------------------------------------------------------------------------------


async def test_first_read_is_not_reported_then_open_and_close_are(
    factory: MockFactory, driver: GpioLockDriver, listener: Recorder
) -> None:
    await settle()
    assert listener.doors == []  # doors read open (no magnet) at start: that is no change

    reed = pin(factory, 27)
    reed.drive_low()  # magnet present: door closed
    await settle()
    assert listener.doors == [("A1", DoorSense.CLOSED)]

    reed.drive_high()  # magnet gone: door open
    await settle()
    assert listener.doors == [("A1", DoorSense.CLOSED), ("A1", DoorSense.OPEN)]


@pytest.mark.parametrize("bounce_s", [0.002, 0.007, 0.015])  # shorter and longer than a poll
async def test_bouncing_reed_switch_reports_one_change_after_debounce(
    factory: MockFactory, driver: GpioLockDriver, listener: Recorder, bounce_s: float
) -> None:
    reed = pin(factory, 27)
    reed.drive_low()
    await settle()
    listener.doors.clear()
    listener.door_times.clear()

    reed.clear_states()
    for _ in range(5):  # the door opens with a bounce: high, low, ..., ending high
        reed.drive_high()
        await asyncio.sleep(bounce_s)
        reed.drive_low()
        await asyncio.sleep(bounce_s)
    reed.drive_high()
    last_edge = time.monotonic()
    await settle()

    assert len(reed.states) == 12  # the bounce did happen at the pin
    assert listener.doors == [("A1", DoorSense.OPEN)]
    assert listener.door_times[0] - last_edge >= DEBOUNCE_S - 0.001


async def test_a_glitch_shorter_than_debounce_is_not_reported(
    factory: MockFactory, driver: GpioLockDriver, listener: Recorder
) -> None:
    reed = pin(factory, 23)
    reed.drive_low()
    await asyncio.sleep(DEBOUNCE_S / 2)
    reed.drive_high()
    await settle()
    assert listener.doors == []


async def test_read_doors_reads_every_gpio_door_now(
    factory: MockFactory, driver: GpioLockDriver, listener: Recorder
) -> None:
    assert await driver.read_doors() == {"A1": DoorSense.OPEN, "A2": DoorSense.OPEN}
    pin(factory, 23).drive_low()
    # a fresh read, not the debounced state
    assert await driver.read_doors() == {"A1": DoorSense.OPEN, "A2": DoorSense.CLOSED}


async def test_a_door_that_cannot_be_read_takes_the_bank_offline_and_back(
    factory: MockFactory, driver: GpioLockDriver, listener: Recorder
) -> None:
    reed = pin(factory, 27)

    def broken() -> bool:
        raise OSError("input/output error")

    reed._get_state = broken
    await wait_until(lambda: listener.bank == [("offline", "gpio")])
    assert (await driver.read_doors())["A1"] is DoorSense.UNKNOWN

    del reed._get_state  # the instance attribute; the class's method reads again
    await wait_until(lambda: listener.bank == [("offline", "gpio"), ("online", "gpio")])
    assert (await driver.read_doors())["A1"] is DoorSense.OPEN
    assert listener.doors == []


# -- errors ------------------------------------------------------------------------------------


async def test_unknown_compartment(driver: GpioLockDriver) -> None:
    with pytest.raises(UnknownCompartment, match=r"'Z9' is not wired to GPIO.*A1, A2"):
        await driver.unlock("Z9")
    with pytest.raises(UnknownCompartment, match="'B1'"):  # wired to a board, not ours
        await driver.unlock("B1")


async def test_a_pin_in_use_is_a_hardware_error_naming_pin_and_compartment(
    factory: MockFactory, listener: Recorder
) -> None:
    squatter = DigitalInputDevice(23, pin_factory=factory)  # A2's door pin, taken by someone else
    lock_driver = make_driver(factory)
    with pytest.raises(HardwareError, match=r"compartment A2: cannot claim GPIO23 for its door"):
        await lock_driver.start(listener)
    squatter.close()
    # what was claimed before the failure was released, relays off
    assert pin(factory, 17).function == "input"
    assert all(s.state is False for s in pin(factory, 17).states)
    OutputDevice(17, pin_factory=factory).close()


async def test_an_invalid_pin_is_a_hardware_error(factory: MockFactory, listener: Recorder) -> None:
    bad = CompartmentConfig("C1", Zone.AMBIENT, Size.S, GpioWiring(lock_pin=99, door_pin=5))
    lock_driver = GpioLockDriver(GpioConfig(), [bad], pin_factory=factory)
    with pytest.raises(HardwareError, match="compartment C1: cannot claim GPIO99 for its lock"):
        await lock_driver.start(listener)


async def test_unlock_before_start_is_a_hardware_error(factory: MockFactory) -> None:
    lock_driver = make_driver(factory)
    with pytest.raises(HardwareError, match="not started"):
        await lock_driver.unlock("A1")
    assert await lock_driver.read_doors() == {"A1": DoorSense.UNKNOWN, "A2": DoorSense.UNKNOWN}


# -- item sensors ------------------------------------------------------------------------------


async def test_an_item_pin_reports_its_first_reading_then_debounced_changes(
    factory: MockFactory, listener: Recorder
) -> None:
    with_item = CompartmentConfig("C1", Zone.AMBIENT, Size.M,
                                  GpioWiring(lock_pin=5, door_pin=6, item_pin=13),
                                  item_sensor=True)
    config = GpioConfig(pulse_ms=PULSE_MS, debounce_ms=DEBOUNCE_MS)
    lock_driver = GpioLockDriver(config, [with_item, A1], pin_factory=factory)
    await lock_driver.start(listener)
    try:
        sensor = pin(factory, 13)
        assert sensor.function == "input"
        assert listener.items == [("C1", False)]  # pulled up, nothing inside; A1 has no sensor
        sensor.drive_low()  # a bag breaks the beam
        sensor.drive_high()
        sensor.drive_low()  # bounces, then stays
        await wait_until(lambda: len(listener.items) == 2)
        await settle()
        assert listener.items == [("C1", False), ("C1", True)]
        sensor.drive_high()
        await wait_until(lambda: len(listener.items) == 3)
        assert listener.items[-1] == ("C1", False)
    finally:
        await lock_driver.stop()
    DigitalInputDevice(13, pin_factory=factory).close()  # released
