"""Ways back through awkward orderings of real events, each found by reading the lifecycle as an
adversary would: a door open before its unlock was refused, a jam for good, two outages at
once, central cancelling mid-pickup, a door forced after a late answer was possible, a stuck
door opened late while loading."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from locker.domain import sync
from locker.domain.allocation import Bag
from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig
from locker.domain.daemon import Locker
from locker.domain.errors import BoardOffline
from locker.domain.feed import CentralOrder, apply_order
from locker.domain.model import Size, Zone
from locker.domain.orders import AddedOrder, add_order_to_load, add_ready_order, parse_bag
from locker.domain.pickup import PickupRefused, PickupResult
from tests.support.doubles import FakeDriver


def add(locker: Locker, order_id: str, *bags: str, hours: float | None = None) -> AddedOrder:
    return add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(),
                           order_id, [parse_bag(b) for b in bags], window_hours=hours)


async def in_time(clock: SimClock, work: Any) -> Any:
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.sleep(0)
        await clock.advance(0.05)
    return task.result()


def row(locker: Locker, order_id: str) -> dict[str, Any]:
    found = locker.store.read().one("SELECT * FROM orders WHERE id = ?", (order_id,))
    assert found is not None
    return found


async def test_a_door_seen_open_before_its_unlock_was_refused_still_counts(rig) -> None:
    locker, driver, clock = rig
    added = add(locker, "o1", "fresh:S", "ambient:S")
    first = added.compartments[0][0]
    unlock = driver.unlock

    async def open_then_refused(cid: str) -> None:
        if cid == first:  # the poll saw it open, then the board went offline with it queued
            await asyncio.sleep(0)
            driver.open(cid)
            raise BoardOffline("the board went offline while the unlock waited")
        await unlock(cid)

    driver.unlock = open_then_refused  # type: ignore[method-assign]
    result: PickupResult = await in_time(clock, locker.pickup.collect(added.code))
    assert len(result.opened) == 2 and result.failed == []  # the door is the truth


async def test_a_door_jammed_for_good_holds_the_window_its_limit_then_goes_to_a_courier(
        config: LockerConfig) -> None:
    clock = SimClock()
    config = dataclasses.replace(config, codes=dataclasses.replace(config.codes,
                                                                  max_hold_hours=0.5))
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), clock)
    await locker.start()
    try:
        added = add(locker, "o1", "fresh:S", hours=1)
        await locker.pickup.collect(added.code)  # unlocked, never opened: jammed
        await clock.advance(5)
        assert row(locker, "o1")["held_for"] == "door_jammed"
        await clock.advance(1800 + 5)
        assert row(locker, "o1")["state"] == "ready"  # the held time given back, it runs again
        await clock.advance(3600 + 5)
        assert row(locker, "o1")["state"] == "expired"
        assert [o["order"] for o in locker.courier.orders()["to_reclaim"]] == ["o1"]
    finally:
        await locker.stop()


async def test_one_outage_of_central_and_a_board_together_is_given_back_once(rig) -> None:
    locker, driver, clock = rig
    added = add(locker, "o1", "fresh:S", hours=1)
    before = row(locker, "o1")["window_end"]
    start = clock.now()
    with locker.store.transaction(start) as tx:  # the shop's network goes
        tx.set_meta(sync.OUTAGE_SINCE, repr(start))
    driver.offline.add(added.compartments[0][0])  # and the board's power, at the same moment
    await clock.advance(2 * 3600)
    sync.reachable(locker.store, clock.now())
    driver.offline.clear()
    await clock.advance(2)
    gained = row(locker, "o1")["window_end"] - before
    assert 2 * 3600 <= gained <= 2 * 3600 + 10


async def test_central_cancelling_during_a_pickup_that_ends_short_cancels_it(rig) -> None:
    locker, _driver, clock = rig
    added = add(locker, "o1", "fresh:S", "ambient:S")
    await locker.pickup.collect(added.code)  # the doors unlock; nobody opens them (yet)
    cancel = CentralOrder("o1", 2, None, True, 48.0, False,
                          (Bag(Zone.FRESH, Size.S), Bag(Zone.AMBIENT, Size.S)))
    with locker.store.transaction(clock.now()) as tx:
        assert apply_order(tx, locker.config, locker.codes, cancel) == "cancel_pending"
    await clock.advance(5)  # the pickup ends short
    assert row(locker, "o1")["state"] == "cancelled" and row(locker, "o1")["version"] == 2
    with pytest.raises(PickupRefused):
        await locker.pickup.collect(added.code)
    assert [o["order"] for o in locker.courier.orders()["to_reclaim"]] == ["o1"]


async def test_central_cancelling_a_pickup_that_completes_comes_too_late(rig) -> None:
    locker, driver, clock = rig
    added = add(locker, "o1", "fresh:S")
    result = await locker.pickup.collect(added.code)
    cancel = CentralOrder("o1", 2, None, True, 48.0, False,
                          (Bag(Zone.FRESH, Size.S),))
    with locker.store.transaction(clock.now()) as tx:
        apply_order(tx, locker.config, locker.codes, cancel)
    for door in result.opened:
        driver.open(door.compartment_id)
        driver.close(door.compartment_id)
    assert row(locker, "o1")["state"] == "collected"
    assert "order.cancel_too_late" in [e.kind for e in locker.store.events()]


async def test_a_door_forced_after_its_pickup_is_not_taken_for_an_old_unlock(rig) -> None:
    locker, driver, clock = rig
    added = add(locker, "o1", "fresh:S")
    cid = added.compartments[0][0]
    driver.lose_answers = True
    await in_time(clock, locker.pickup.collect(added.code))  # unconfirmed, nobody opens
    driver.lose_answers = False
    await clock.advance(5)  # back to ready
    await locker.pickup.collect(added.code)
    driver.open(cid)
    driver.close(cid)
    assert row(locker, "o1")["state"] == "collected"
    add(locker, "o2", "fresh:S")
    await clock.advance(60)
    driver.open(cid)  # pried open: the unconfirmed unlock of a minute ago must not answer it
    assert "door.forced" in [e.kind for e in locker.store.events()]


async def test_a_stuck_door_opened_late_while_loading_keeps_its_goods_with_the_order(
        rig) -> None:
    locker, driver, clock = rig
    code = add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "o1",
                             [parse_bag("frozen:S")])
    loaded = await in_time(clock, locker.courier.load("courier:courier-1", "o1"))
    stuck = loaded.compartments[0]
    await clock.advance(3)  # jammed: out of service, the bag given another compartment
    [moved] = [r["compartment_id"] for r in locker.store.read().all(
        "SELECT compartment_id FROM order_compartments WHERE order_id = 'o1'")]
    driver.open(stuck)  # the courier got it open after all, and put the bag in
    driver.close(stuck)
    driver.open(moved)
    driver.close(moved)
    assert row(locker, "o1")["state"] == "ready"
    held = {r["id"]: r["state"] for r in locker.store.read().all(
        "SELECT id, state FROM compartments WHERE order_id = 'o1'")}
    assert held == {stuck: "loaded", moved: "loaded"}  # the customer's code opens both
    result = await locker.pickup.collect(code)
    assert sorted(d.compartment_id for d in result.opened) == sorted([stuck, moved])

