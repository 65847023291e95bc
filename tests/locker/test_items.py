"""Item sensors through the domain, on a stand-in driver that reports goods in and out: what an
occupied compartment may not be given, a loading that reads empty, goods left behind, and that
nothing changes for a compartment without a sensor."""

from __future__ import annotations

from typing import Any

import pytest

from locker.domain.allocation import NoRoom
from locker.domain.clock import SimClock
from locker.domain.daemon import Locker
from locker.domain.errors import Refused
from locker.domain.lifecycle import compartment as compartment_life
from locker.domain.orders import add_order_to_load, add_ready_order, parse_bag
from tests.support.doubles import FakeDriver

Rig = tuple[Locker, FakeDriver, SimClock]


def kinds(locker: Locker) -> list[str]:
    return [e.kind for e in locker.store.events()]


def events(locker: Locker, kind: str) -> list[dict[str, Any]]:
    return [{"compartment_id": e.compartment_id, "order_id": e.order_id, **e.payload}
            for e in locker.store.events() if e.kind == kind]


def open_alarms(locker: Locker, kind: str) -> list[str]:
    return [r["subject"] for r in locker.store.read().all(
        "SELECT subject FROM alarms WHERE kind = ? AND cleared_at IS NULL ORDER BY subject",
        (kind,))]


def state(locker: Locker, order_id: str) -> str:
    row = locker.store.read().one("SELECT state FROM orders WHERE id = ?", (order_id,))
    assert row is not None
    return str(row["state"])


def item(locker: Locker, compartment_id: str) -> int | None:
    row = locker.store.read().one("SELECT item FROM compartments WHERE id = ?",
                                  (compartment_id,))
    assert row is not None
    return row["item"]


def bags(*texts: str) -> list[Any]:
    return [parse_bag(t) for t in texts]


async def test_a_reading_is_kept_only_when_it_changes(rig: Rig) -> None:
    locker, driver, _ = rig
    assert item(locker, "F1") is None  # no sensor has spoken: nothing known
    driver.take("F1")
    version = locker.store.version()
    driver.take("F1")  # the same reading again writes nothing
    assert locker.store.version() == version
    assert item(locker, "F1") == 0
    driver.put("F1")
    assert item(locker, "F1") == 1


async def test_an_occupied_compartment_is_never_allocated(rig: Rig) -> None:
    locker, driver, clock = rig
    driver.put("F2")  # a forgotten bag in the small fresh compartment
    driver.take("F1")
    added = add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o1",
                            bags("fresh:S"))
    assert [cid for cid, _ in added.compartments] == ["F1"]  # the bigger one, not F2
    with pytest.raises(NoRoom):  # F1 is taken, F2 holds goods: no room for another
        add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o2",
                        bags("fresh:S"))
    driver.take("F2")
    add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o2",
                    bags("fresh:S"))


async def test_a_loading_that_reads_empty_waits_for_the_bag(rig: Rig) -> None:
    locker, driver, clock = rig
    for c in locker.config.compartments:
        driver.take(c.id)
    add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "o1",
                      bags("fresh:M"))
    result = await locker.courier.load("courier-1", "o1")
    cid = result.compartments[0]
    driver.open(cid)
    driver.close(cid)  # the courier shut the door on nothing
    locker.monitor.reconcile()
    assert state(locker, "o1") == "allocated"
    assert events(locker, "order.loaded_empty") == [{"compartment_id": cid, "order_id": "o1"}]
    progress = locker.courier.progress("o1")
    assert [(d.compartment_id, d.step, d.empty, d.may_open) for d in progress.doors] == [
        (cid, "closed", True, True)]
    locker.monitor.reconcile()  # said once, however often it is looked at
    assert len(events(locker, "order.loaded_empty")) == 1
    await locker.courier.open_for_loading("courier-1", "o1", cid)  # again, for the bag
    assert locker.courier.progress("o1").doors[0].step == "opening"
    driver.open(cid)
    driver.put(cid)
    assert state(locker, "o1") == "allocated"  # the door still stands open
    driver.close(cid)
    assert state(locker, "o1") == "ready"
    assert len(events(locker, "order.loaded_empty")) == 1


async def test_a_sensor_stuck_at_empty_is_believed_less_than_the_courier(rig: Rig) -> None:
    """The way back from a broken sensor: asked once, the courier opens and shuts the door
    again; still empty, the order is made ready on the courier's word and the sensor is an
    alarm until it reads goods again."""
    locker, driver, clock = rig
    for c in locker.config.compartments:
        driver.take(c.id)
    add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "o1",
                      bags("fresh:M"))
    cid = (await locker.courier.load("courier-1", "o1")).compartments[0]
    driver.open(cid)
    driver.close(cid)
    assert state(locker, "o1") == "allocated" and open_alarms(locker, "item_sensor_suspect") == []
    await clock.advance(1)
    await locker.courier.open_for_loading("courier-1", "o1", cid)
    driver.open(cid)
    driver.close(cid)  # the bag is in; the sensor still says empty
    assert state(locker, "o1") == "ready"
    assert open_alarms(locker, "item_sensor_suspect") == [cid]
    assert len(events(locker, "order.loaded_empty")) == 1
    driver.put(cid)  # the sensor reads again (cleaned, replaced)
    assert open_alarms(locker, "item_sensor_suspect") == []


async def test_open_for_loading_refuses_a_closed_compartment_that_holds_its_bag(
        rig: Rig) -> None:
    locker, driver, clock = rig
    add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "o1",
                      bags("fresh:M", "ambient:M"))
    result = await locker.courier.load("courier-1", "o1")
    first, _second = result.compartments
    driver.put(first)
    driver.open(first)
    driver.close(first)
    with pytest.raises(Refused) as refused:
        await locker.courier.open_for_loading("courier-1", "o1", first)
    assert refused.value.reason == "not_this_order"


async def test_goods_left_after_a_pickup_raise_the_event_and_the_alarm_until_taken_back(
        rig: Rig) -> None:
    locker, driver, clock = rig
    added = add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o1",
                            bags("fresh:M"))
    cid = added.compartments[0][0]
    driver.put(cid)  # the bag is in
    assert open_alarms(locker, "goods_unexpected") == []  # it is the order's
    await locker.pickup.collect(added.code)
    driver.open(cid)
    driver.close(cid)  # the customer went without the bag
    assert state(locker, "o1") == "collected"
    assert events(locker, "compartment.goods_left") == [{"compartment_id": cid,
                                                         "order_id": "o1"}]
    assert open_alarms(locker, "goods_unexpected") == [cid]
    assert locker.courier.orders()["goods_to_take_back"] == [
        {"compartment": cid, "under_way": False}]
    assert cid not in [f.id for f in compartment_life.free(locker.store.read(), locker.config)]
    result = await locker.courier.take_back("courier-1", cid)
    assert [d.compartment_id for d in result.opened] == [cid]
    unlock = [e for e in events(locker, "door.unlock") if e["compartment_id"] == cid][-1]
    assert unlock["reason"] == "take_back" and unlock["actor"] == "courier-1"
    driver.open(cid)
    driver.take(cid)
    driver.close(cid)
    assert open_alarms(locker, "goods_unexpected") == []
    assert locker.courier.orders()["goods_to_take_back"] == []
    assert len(events(locker, "compartment.goods_left")) == 1


async def test_a_forgotten_bag_long_after_is_an_alarm_without_goods_left(rig: Rig) -> None:
    locker, driver, clock = rig
    added = add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o1",
                            bags("fresh:M"))
    cid = added.compartments[0][0]
    driver.put(cid)
    await locker.pickup.collect(added.code)
    driver.open(cid)
    driver.take(cid)
    driver.close(cid)
    assert open_alarms(locker, "goods_unexpected") == []
    await clock.advance(3600)
    driver.put(cid)  # a bag that appeared later (a technician's, say)
    assert open_alarms(locker, "goods_unexpected") == [cid]
    assert "compartment.goods_left" not in kinds(locker)
    with pytest.raises(Refused):
        await locker.courier.take_back("courier-1", "F2")  # nothing to take back there


async def test_without_a_sensor_nothing_changes(rig: Rig) -> None:
    locker, driver, clock = rig
    add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "o1",
                      bags("fresh:M"))
    result = await locker.courier.load("courier-1", "o1")
    cid = result.compartments[0]
    driver.open(cid)
    driver.close(cid)
    assert state(locker, "o1") == "ready"
    assert item(locker, cid) is None
    assert "order.loaded_empty" not in kinds(locker)
    assert locker.courier.orders()["goods_to_take_back"] == []
