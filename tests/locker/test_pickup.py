"""Pickup through the domain, on a stand-in driver: codes, throttling, doors, alarms, restarts."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

import pytest

from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig
from locker.domain.daemon import Locker
from locker.domain.errors import StoreError, Unavailable
from locker.domain.lifecycle import records
from locker.domain.lifecycle.order import accept_code
from locker.domain.model import DoorSense
from locker.domain.orders import OrderRejected, add_ready_order, parse_bag
from locker.domain.pickup import PickupRefused, PickupResult, Throttled
from tests.support.codes import code_no
from tests.support.doubles import FakeDriver


def add(locker: Locker, order_id: str, *bags: str, hours: float | None = None) -> str:
    added = add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(),
                            order_id, [parse_bag(b) for b in bags], window_hours=hours)
    return added.code


def kinds(locker: Locker) -> list[str]:
    return [e.kind for e in locker.store.events()]


def order_state(locker: Locker, order_id: str) -> str:
    return str(order_row(locker, order_id)["state"])


def order_row(locker: Locker, order_id: str) -> dict[str, Any]:
    row = locker.store.read().one("SELECT * FROM orders WHERE id = ?", (order_id,))
    assert row is not None
    return row


def authorise_only(locker: Locker, order_id: str) -> None:
    """What collect() commits before it pulses anything."""
    with locker.store.transaction(locker.clock.now()) as tx:
        order = records.order(tx, order_id)
        assert order is not None
        accept_code(tx, locker.config, order, locker.driver.reachable)


async def collect_in_time(locker: Locker, clock: SimClock, code: str) -> PickupResult:
    """collect(), with the simulated clock moving while it waits for a door."""
    task = asyncio.create_task(locker.pickup.collect(code))
    while not task.done():
        await clock.advance(0.05)
        await asyncio.sleep(0)
    return task.result()


async def test_a_good_code_opens_every_zone_at_once_and_collects_on_close(rig) -> None:
    locker, driver, _ = rig
    code = add(locker, "o1", "ambient:M", "fresh:M", "frozen:S")
    result = await locker.pickup.collect(code)
    opened = sorted(d.compartment_id for d in result.opened)
    assert sorted(driver.unlocked) == opened and len(opened) == 3
    assert {d.zone for d in result.opened} == {"ambient", "fresh", "frozen"}
    for cid in opened[:-1]:
        driver.open(cid)
        driver.close(cid)
    assert order_state(locker, "o1") == "collecting"  # one door still to open and close
    driver.open(opened[-1])
    assert order_state(locker, "o1") == "collecting"
    driver.close(opened[-1])
    assert order_state(locker, "o1") == "collected"
    free = locker.store.read().all("SELECT id FROM compartments WHERE state = 'free'")
    assert len(free) == len(locker.config.compartments)
    assert kinds(locker).count("door.opened") == 3 and "order.collected" in kinds(locker)


async def test_a_door_is_pulsed_only_after_its_authorisation_is_committed(rig) -> None:
    locker, driver, _ = rig
    code = add(locker, "o1", "fresh:S")
    seen: list[int] = []
    unlock = driver.unlock

    async def check_then_unlock(compartment_id: str) -> None:
        # another connection sees only committed data
        other = sqlite3.connect(locker.config.database)
        seen.append(other.execute("SELECT COUNT(*) FROM authorisations WHERE compartment_id = ?",
                                  (compartment_id,)).fetchone()[0])
        other.close()
        await unlock(compartment_id)

    driver.unlock = check_then_unlock  # type: ignore[method-assign]
    await locker.pickup.collect(code)
    assert seen == [1]


async def test_codes_never_appear_in_events_or_logs(rig, caplog: pytest.LogCaptureFixture) -> None:
    locker, _driver, _ = rig
    caplog.set_level(logging.DEBUG)
    code = add(locker, "o1", "ambient:S")
    with pytest.raises(PickupRefused):
        await locker.pickup.collect("00000000000" if code != "00000000000" else "11111111113")
    await locker.pickup.collect(code)
    dump = locker.store.db.execute("SELECT group_concat(payload) FROM outbox").fetchone()[0]
    assert code not in dump
    assert code not in caplog.text
    assert code not in str(locker.store.read().all("SELECT * FROM orders"))


async def test_a_wrong_code_opens_nothing(rig) -> None:
    locker, driver, _ = rig
    code = add(locker, "o1", "ambient:S")
    wrong = code_no((int(code[:10]) + 1) % 10**10)
    with pytest.raises(PickupRefused) as refused:
        await locker.pickup.collect(wrong)
    assert refused.value.reason == "wrong_code"
    assert driver.unlocked == [] and order_state(locker, "o1") == "ready"


async def test_a_used_code_is_refused(rig) -> None:
    locker, driver, _ = rig
    code = add(locker, "o1", "ambient:S")
    await locker.pickup.collect(code)
    with pytest.raises(PickupRefused) as refused:
        await locker.pickup.collect(code)
    assert refused.value.reason == "used"
    assert len(driver.unlocked) == 1


async def test_an_expired_code_is_refused(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "ambient:S", hours=1)
    await clock.advance(3601)
    with pytest.raises(PickupRefused) as refused:
        await locker.pickup.collect(code)
    assert refused.value.reason == "expired" and driver.unlocked == []
    assert order_state(locker, "o1") == "expired"  # housekeeping saw the window end


async def judged(locker: Locker, clock: SimClock, code: str, screen: str = "front"
                 ) -> PickupRefused:
    """Type a wrong code, waiting (as the screen does) until the locker judges it."""
    while True:
        try:
            await locker.pickup.collect(code, screen=screen)
        except Throttled as exc:
            await clock.advance(exc.retry_after_s)
        except PickupRefused as exc:
            return exc
        else:
            raise AssertionError("a wrong code opened something")


async def test_wrong_codes_slow_the_locker_down_and_the_wait_survives_a_restart(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "ambient:S")
    wrong = code_no((int(code[:10]) + 1) % 10**10)
    for _ in range(3):  # free_wrong_codes = 2: the third one sets a delay
        with pytest.raises(PickupRefused):
            await locker.pickup.collect(wrong, screen="front")
    with pytest.raises(Throttled) as throttled:
        await locker.pickup.collect(code, screen="front")  # even the right code waits
    assert 0 < throttled.value.retry_after_s <= 10  # first_delay_s
    assert "kept and will be tried in 10 s" in str(throttled.value)
    with pytest.raises(Throttled):  # a screen named anew gets nothing
        await locker.pickup.collect(code, screen="side")
    assert driver.unlocked == []
    await clock.advance(throttled.value.retry_after_s)
    await locker.pickup.collect(code, screen="side")  # once the wait is over, it opens
    assert len(driver.unlocked) == 1

    refused = await judged(locker, clock, wrong)
    await locker.stop()
    again = Locker(locker.config, FakeDriver(list(driver.doors)), clock)
    await again.start()
    try:
        with pytest.raises(Throttled) as after:
            await again.pickup.collect(wrong, screen="front")
        assert 0 < after.value.retry_after_s <= refused.retry_after_s
    finally:
        await again.stop()


async def test_the_delay_grows_with_each_wrong_code_up_to_the_cap(rig) -> None:
    locker, _, clock = rig
    add(locker, "o1", "ambient:S")
    delays = [(await judged(locker, clock, "99999999992")).retry_after_s for _ in range(8)]
    assert delays[:2] == [0, 0] and delays[2] == pytest.approx(10)  # 2 free, then 10 s
    assert delays == sorted(delays) and delays[-1] == locker.config.throttle.max_delay_s == 30


async def test_a_burst_of_wrong_codes_raises_an_alarm(rig) -> None:
    locker, _, clock = rig
    add(locker, "o1", "ambient:S")
    for screen in ["s1", "s2", "s3", "s4", "s5"]:  # alarm_failures = 5, spread over screens
        await judged(locker, clock, "99999999992", screen)
    assert "alarm.code_guessing" in kinds(locker)
    alarm = [e for e in locker.store.events() if e.kind == "alarm.code_guessing"]
    assert len(alarm) == 1 and "99999999992" not in str(alarm[0].payload)


async def test_a_forced_door_raises_an_alarm(rig) -> None:
    locker, driver, _ = rig
    driver.open("Z1")
    assert "door.forced" in kinds(locker) and "alarm.door_forced" in kinds(locker)
    driver.close("Z1")
    assert kinds(locker)[-1] == "alarm.door_forced"  # cleared once closed again


async def test_an_unlocked_door_never_seen_open_is_jammed_and_the_code_works_again(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "frozen:M")
    window_end = order_row(locker, "o1")["window_end"]
    [door] = (await locker.pickup.collect(code)).opened
    await clock.advance(3)  # open_timeout_s = 2
    locker.monitor.check_timeouts()
    assert "door.jammed" in kinds(locker) and "alarm.door_jammed" in kinds(locker)
    # nothing came out: the order is back, its window extended by the time lost
    assert order_state(locker, "o1") == "ready"
    assert "order.pickup_interrupted" in kinds(locker)
    assert order_row(locker, "o1")["window_end"] >= window_end + 2  # the open timeout
    again = await locker.pickup.collect(code)  # a new authorisation, the same code
    assert [d.compartment_id for d in again.opened] == [door.compartment_id]
    assert driver.unlocked == [door.compartment_id, door.compartment_id]
    driver.open(door.compartment_id)
    assert "alarm.door_jammed" in kinds(locker)[-3:]  # cleared: it opened after all
    driver.close(door.compartment_id)
    assert order_state(locker, "o1") == "collected"


async def test_a_multi_door_order_with_one_jam_is_partly_collected_then_finished(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "ambient:S", "frozen:M")
    doors = {d.zone: d.compartment_id for d in (await locker.pickup.collect(code)).opened}
    driver.open(doors["ambient"])
    driver.close(doors["ambient"])
    assert order_state(locker, "o1") == "collecting"  # the frozen door may still open
    await clock.advance(3)
    locker.monitor.check_timeouts()
    assert order_state(locker, "o1") == "ready"
    assert "order.partly_collected" in kinds(locker)
    free = {r["id"] for r in locker.store.read().all(
        "SELECT id FROM compartments WHERE state = 'free'")}
    assert doors["ambient"] in free and doors["frozen"] not in free
    await clock.advance(60)
    again = await locker.pickup.collect(code)  # opens only what is still inside
    assert [d.compartment_id for d in again.opened] == [doors["frozen"]]
    driver.open(doors["frozen"])
    driver.close(doors["frozen"])
    assert order_state(locker, "o1") == "collected"
    # the certificate covers both bags, each until its own door closed
    (event,) = [e for e in locker.store.events() if e.kind == "order.collected"]
    parts = {p["zone"]: p for p in json.loads(
        event.payload["certificate"]["certificate"])["compartments"]}
    assert set(parts) == {"ambient", "frozen"}
    assert parts["ambient"]["to"] < parts["frozen"]["to"]


async def test_a_door_left_open_raises_an_alarm_once(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "fresh:S")
    [door] = (await locker.pickup.collect(code)).opened
    driver.open(door.compartment_id)
    await clock.advance(11)
    locker.monitor.check_timeouts()
    locker.monitor.check_timeouts()
    assert kinds(locker).count("alarm.door_left_open") == 1
    driver.close(door.compartment_id)
    assert order_state(locker, "o1") == "collected"


async def test_a_board_offline_refuses_before_anything_is_spent(rig) -> None:
    locker, driver, _ = rig
    code = add(locker, "o1", "ambient:S", "frozen:M")
    frozen = locker.store.read().one(
        "SELECT compartment_id FROM order_compartments WHERE bag_zone = 'frozen'")
    assert frozen is not None
    driver.offline.add(frozen["compartment_id"])
    with pytest.raises(Unavailable) as refused:
        await locker.pickup.collect(code)
    assert refused.value.compartments == (frozen["compartment_id"],)
    assert "your code still works" in str(refused.value)
    # a grocery order is collected whole: nothing opened, nothing committed, no token spent
    assert driver.unlocked == [] and order_state(locker, "o1") == "ready"
    assert locker.store.read().all("SELECT * FROM authorisations") == []
    assert locker.store.read().all("SELECT * FROM slowdown") == []
    assert "order.pickup_unavailable" in kinds(locker)
    driver.offline.clear()  # the board answers again: the same code opens both doors
    result = await locker.pickup.collect(code)
    assert len(result.opened) == 2 and result.failed == []


async def test_a_lost_acknowledgement_waits_for_the_door_and_counts_it_opened(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "fresh:S")
    driver.lose_answers = driver.springs = True
    result = await collect_in_time(locker, clock, code)
    assert len(result.opened) == 1 and result.failed == []  # the door is the truth
    assert "door.unlock_failed" not in kinds(locker)
    assert "alarm.unlock_failed" not in kinds(locker)


async def test_an_interrupted_unlock_is_never_pulsed_again_after_restart(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "ambient:S")
    window_end = order_row(locker, "o1")["window_end"]
    # commit the authorisation as collect() does, then "lose power" before the pulse
    authorise_only(locker, "o1")
    await locker.stop()
    await clock.advance(600)  # ten minutes without power
    fresh_driver = FakeDriver(list(driver.doors))
    again = Locker(locker.config, fresh_driver, clock)
    await again.start()
    try:
        assert fresh_driver.unlocked == []
        assert "door.unlock_interrupted" in kinds(again)
        assert "order.pickup_interrupted" in kinds(again)
        assert order_state(again, "o1") == "ready"
        assert order_row(again, "o1")["window_end"] >= window_end + 600
        result = await again.pickup.collect(code)  # the same code, a new authorisation
        assert fresh_driver.unlocked == [d.compartment_id for d in result.opened]
        assert len(again.store.read().all("SELECT * FROM authorisations")) == 2
    finally:
        await again.stop()


async def test_reconcile_takes_a_door_found_open_at_start_as_forced(config: LockerConfig) -> None:
    clock = SimClock()
    driver = FakeDriver([c.id for c in config.compartments])
    driver.doors["A2"] = DoorSense.OPEN
    locker = Locker(config, driver, clock)
    await locker.start()
    try:
        assert "door.forced" in kinds(locker)
    finally:
        await locker.stop()


async def test_an_order_that_does_not_fit_reserves_nothing(rig) -> None:
    locker, _, _ = rig
    with pytest.raises(Exception, match="frozen L"):
        add(locker, "big", "frozen:L", "frozen:L", "ambient:S")
    assert locker.store.read().all("SELECT * FROM orders") == []
    assert len(locker.store.read().all("SELECT * FROM compartments WHERE state = 'free'")) == 6
    with pytest.raises(OrderRejected, match="bad bag"):
        parse_bag("chilled:M")


async def test_a_second_authorisation_supersedes_the_first_and_nothing_jams(rig) -> None:
    locker, driver, clock = rig
    await locker.courier.open_compartment("technician:t", "A1", "first look")
    await locker.courier.open_compartment("technician:t", "A1", "second look")  # double tap
    driver.open("A1")
    driver.close("A1")
    await clock.advance(3)  # past open_timeout_s
    locker.monitor.check_timeouts()
    assert "door.jammed" not in kinds(locker) and "door.forced" not in kinds(locker)
    outcomes = [r["outcome"] for r in locker.store.read().all(
        "SELECT outcome FROM authorisations ORDER BY id")]
    assert outcomes == ["superseded", "opened"]


async def test_a_pickup_of_a_door_already_open_completes_when_it_closes(rig) -> None:
    locker, driver, _ = rig
    code = add(locker, "o1", "frozen:M")
    [cid] = [r["compartment_id"] for r in locker.store.read().all(
        "SELECT compartment_id FROM order_compartments WHERE order_id = 'o1'")]
    driver.open(cid)  # forced before the customer arrives
    result = await locker.pickup.collect(code)
    assert [d.compartment_id for d in result.opened] == [cid]
    assert driver.unlocked == [cid]  # the unlock is still sent
    driver.close(cid)
    assert order_state(locker, "o1") == "collected"


async def test_an_unconfirmed_unlock_that_opens_the_door_is_not_a_forced_door(rig) -> None:
    locker, driver, clock = rig
    code = add(locker, "o1", "fresh:S")
    driver.lose_answers = True
    result = await collect_in_time(locker, clock, code)
    [door] = result.failed  # not seen open within the wait
    assert "alarm.unlock_failed" in kinds(locker)
    driver.open(door.compartment_id)  # later: the lock did pulse
    assert kinds(locker).count("alarm.unlock_failed") == 2  # raised, then cleared by the door
    driver.close(door.compartment_id)
    assert "door.forced" not in kinds(locker)
    assert order_state(locker, "o1") == "collected"


async def test_a_stranded_authorisation_is_settled_and_does_not_hide_a_forced_door(rig) -> None:
    locker, driver, clock = rig
    add(locker, "o1", "ambient:S")
    authorise_only(locker, "o1")  # committed, then the pulse record lost
    await clock.advance(3 + 300 + 1)  # past open_timeout_s and the late-opening grace
    locker.monitor.check_timeouts()
    assert "door.unlock_interrupted" in kinds(locker)
    [cid] = [r["compartment_id"] for r in locker.store.read().all(
        "SELECT compartment_id FROM order_compartments WHERE order_id = 'o1'")]
    driver.open(cid)
    assert "door.forced" in kinds(locker)


async def test_housekeeping_survives_a_failure(rig) -> None:
    locker, _, clock = rig
    add(locker, "o1", "ambient:S", hours=0.001)
    calls = 0
    check = locker.monitor.check_timeouts

    def fails_once() -> list[object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return check()  # type: ignore[return-value]

    locker.monitor.check_timeouts = fails_once  # type: ignore[method-assign]
    await clock.advance(10)
    assert calls > 1 and order_state(locker, "o1") == "expired"


async def test_a_store_that_could_not_write_gives_every_ready_window_the_time_back(rig) -> None:
    locker, _driver, clock = rig
    code = add(locker, "o1", "ambient:S")
    before = order_row(locker, "o1")["window_end"]
    # the card remounted read-only after an error, as a worn SD card does
    locker.store.db.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreError):
        await locker.pickup.collect(code)
    assert locker.store.unwritable_since is not None
    await clock.advance(120)
    locker.store.db.execute("PRAGMA query_only = OFF")  # writable again
    await clock.advance(2)
    assert locker.store.unwritable_since is None
    assert order_row(locker, "o1")["window_end"] >= before + 120
    [extended] = [e for e in locker.store.events() if e.kind == "order.window_extended"]
    assert "the store could not write" in extended.payload["reason"]
    assert (await locker.pickup.collect(code)).opened


async def test_a_zone_out_of_its_limits_holds_the_window_of_the_orders_inside(rig) -> None:
    locker, _driver, clock = rig
    add(locker, "o1", "frozen:S")
    add(locker, "o2", "ambient:S")
    before = order_row(locker, "o1")["window_end"]
    with locker.store.transaction(clock.now()) as tx:
        tx.raise_alarm("zone_excursion", "frozen", "the frozen zone is at -9 °C")
    await clock.advance(2)
    assert [e.order_id for e in locker.store.events() if e.kind == "order.held"] == ["o1"]
    await clock.advance(600)
    with locker.store.transaction(clock.now()) as tx:
        tx.clear_alarm("zone_excursion", "frozen", "back in limits")
    await clock.advance(2)
    assert order_row(locker, "o1")["window_end"] >= before + 600
    assert order_row(locker, "o1")["held_since"] is None
    assert order_row(locker, "o2")["held_since"] is None
