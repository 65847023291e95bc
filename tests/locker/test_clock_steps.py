"""The wall clock stepped, on the simulated clock (SimClock.step moves the wall clock alone):
steps are events, nothing expires for good on an untrusted clock, throttle waits and TOTP marks keep
their sense, and an old command is not revived by a clock set back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest

from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig
from locker.domain.daemon import Locker
from locker.domain.orders import add_ready_order, parse_bag
from locker.domain.pickup import Throttled
from locker.domain.staff import LoginRefused, create_secret, load_secret
from tests.support.central import central_config, feed, signed
from tests.support.doubles import FakeDriver

DAY = 86400.0


class Status:
    """A ClockStatus the test sets."""

    def __init__(self, synchronised: bool | None) -> None:
        self.value = synchronised

    def synchronised(self) -> bool | None:
        return self.value


async def start(config: LockerConfig, status: Status, clock: SimClock | None = None
                ) -> tuple[Locker, FakeDriver, SimClock]:
    clock = clock or SimClock()
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver, clock, clock_status=status)
    await locker.start()
    return locker, driver, clock


@pytest.fixture
async def rig(config: LockerConfig) -> AsyncIterator[tuple[Locker, FakeDriver, SimClock, Status]]:
    for member in config.staff.members:
        create_secret(config.staff_secret_file(member.id))
    status = Status(True)
    locker, driver, clock = await start(config, status)
    yield locker, driver, clock, status
    await locker.stop()


def add(locker: Locker, order_id: str, hours: float = 72) -> str:
    return add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(),
                           order_id, [parse_bag("ambient:S")], window_hours=hours).code


def state(locker: Locker, order_id: str) -> str:
    row = locker.store.read().one("SELECT state FROM orders WHERE id = ?", (order_id,))
    assert row is not None
    return str(row["state"])


def events(locker: Locker, kind: str) -> list[dict[str, object]]:
    return [{**e.payload, **({"order_id": e.order_id} if e.order_id else {})}
            for e in locker.store.events() if e.kind == kind]


async def test_a_bogus_step_forward_expires_nothing_and_its_correction_changes_nothing(
        rig) -> None:
    locker, driver, clock, status = rig
    code = add(locker, "o1")
    status.value = False  # a date set by hand: the kernel marks the clock unsynchronised
    clock.step(4 * DAY)
    await clock.advance(3)
    assert [round(float(e["by_s"])) for e in events(locker, "clock.stepped")] == [4 * 86400]
    assert state(locker, "o1") == "ready"  # its 72 h window "ended", but nothing expires
    clock.step(-4 * DAY)  # corrected
    await clock.advance(3)
    assert state(locker, "o1") == "ready" and len(events(locker, "clock.stepped")) == 2
    result = await locker.pickup.collect(code)
    assert [d.compartment_id for d in result.opened] == driver.unlocked != []


async def test_a_customer_during_a_bogus_step_still_gets_the_goods(rig) -> None:
    locker, driver, clock, status = rig
    code = add(locker, "o1", hours=1)
    status.value = False
    clock.step(2 * DAY)
    await clock.advance(2)
    result = await locker.pickup.collect(code)
    assert [d.compartment_id for d in result.opened] == driver.unlocked


async def test_a_step_forward_on_a_synchronised_clock_is_the_truth(rig) -> None:
    locker, _driver, clock, _status = rig
    add(locker, "o1", hours=1)
    clock.step(2 * 3600)  # NTP caught up after a boot on a stale time
    await clock.advance(2)
    assert state(locker, "o1") == "expired"
    assert events(locker, "order.expired") == [{"order_id": "o1"}]


async def test_an_expiry_on_an_unsynchronised_clock_is_decided_again(rig) -> None:
    locker, _driver, clock, status = rig
    add(locker, "o1", hours=1)
    status.value = False
    await clock.advance(3601)  # the window ends by this clock: provisionally
    assert state(locker, "o1") == "expired"
    assert events(locker, "order.expired")[0]["provisional"] is True
    clock.step(-1800)  # NTP: the clock was half an hour fast
    await clock.advance(2)
    assert state(locker, "o1") == "ready"
    assert events(locker, "order.expiry_undone")[0]["order_id"] == "o1"


async def test_an_expiry_confirmed_once_the_clock_is_trusted(rig) -> None:
    locker, _driver, clock, status = rig
    add(locker, "o1", hours=1)
    status.value = False
    await clock.advance(3601)
    status.value = True  # synchronised: the window really ended
    await clock.advance(2)
    assert state(locker, "o1") == "expired" and not events(locker, "order.expiry_undone")
    row = locker.store.read().one("SELECT held_for FROM orders WHERE id = 'o1'")
    assert row == {"held_for": None}


async def test_a_step_back_never_turns_a_wait_into_hours(rig) -> None:
    locker, _driver, clock, _status = rig
    add(locker, "o1")
    for _ in range(3):  # free_wrong_codes = 2: the third wrong code sets a wait
        with pytest.raises(Exception):  # noqa: B017 (wrong codes, then the wait)
            await locker.pickup.collect("00000000000")
    with pytest.raises(Throttled) as locked:
        await locker.pickup.collect("00000000000")
    before = locked.value.retry_after_s  # first_delay_s
    assert 0 < before <= 10
    clock.step(-3600)
    await clock.advance(2)
    with pytest.raises(Throttled) as after:
        await locker.pickup.collect("00000000000")
    assert after.value.retry_after_s <= before


async def test_a_wait_stays_short_even_when_the_step_was_not_seen(rig) -> None:
    locker, _driver, clock, _status = rig
    for _ in range(3):
        with pytest.raises(Exception):  # noqa: B017
            await locker.pickup.collect("00000000000")
    await locker.stop()  # the clock is set back while the daemon is down
    clock.step(-3600)
    again, _, _ = await start(locker.config, Status(True), clock)
    try:
        with pytest.raises(Throttled) as after:
            await again.pickup.collect("00000000000")
        assert after.value.retry_after_s <= 10  # not the hour the clock went back
        assert [e["when"] for e in events(again, "clock.stepped")] == [
            "while the locker was stopped"]
    finally:
        await again.stop()


async def test_a_couriers_current_code_works_after_a_step_back(rig) -> None:
    locker, _driver, clock, status = rig
    secret = load_secret(locker.config.staff_secret_file("courier-1"))
    status.value = False
    clock.step(4 * DAY)  # a wrong date: the courier logs in on it
    await clock.advance(2)
    locker.staff.login("courier-1", pyotp.TOTP(secret).at(clock.now()), "front")
    clock.step(-4 * DAY)
    await clock.advance(31)  # the next code
    session = locker.staff.login("courier-1", pyotp.TOTP(secret).at(clock.now()), "front")
    assert session.member.id == "courier-1"
    with pytest.raises(LoginRefused) as replay:  # still one code, once
        locker.staff.login("courier-1", pyotp.TOTP(secret).at(clock.now()), "front")
    assert replay.value.reason == "replayed"


async def test_an_unsynchronised_clock_raises_an_alarm_after_a_while(rig) -> None:
    locker, _driver, clock, status = rig
    status.value = False
    await clock.advance(locker.config.clock.unsynchronised_alarm_s - 5)
    assert not events(locker, "alarm.clock_unsynchronised")
    await clock.advance(10)
    assert [e["state"] for e in events(locker, "alarm.clock_unsynchronised")] == ["raised"]
    status.value = True
    await clock.advance(2)
    assert [e["state"] for e in events(locker, "alarm.clock_unsynchronised")] == [
        "raised", "cleared"]


async def test_a_command_is_not_revived_by_a_clock_set_back(tmp_path: Path) -> None:
    config = central_config(tmp_path)
    locker, driver, clock = await start(config, Status(True))
    try:
        old = signed("open_compartment", {"compartment": "F1", "reason": "ticket 1"},
                     now=clock.now(), nonce="a" * 32)
        assert await feed(locker, old) == {"done": 1}
        await clock.advance(3600)  # it expired, and its nonce was forgotten
        newer = signed("open_compartment", {"compartment": "A1", "reason": "ticket 2"},
                       now=clock.now(), nonce="b" * 32)
        assert await feed(locker, newer) == {"done": 1}
        clock.step(-3600)  # the clock set back: the old command looks valid again
        await clock.advance(2)
        assert await feed(locker, old) == {"stale": 1}
        assert driver.unlocked == ["F1", "A1"]
    finally:
        await locker.stop()
