"""Returns through the domain, on a stand-in driver: the offer after a pickup, a compartment of
the right zone that no waiting order needs, the deposit when its door closes, the courier's
taking back, and the ways back when a door does not open, nothing goes in, or the offer ends."""

from __future__ import annotations

from typing import Any

import pytest

from locker.domain.clock import SimClock
from locker.domain.daemon import Locker
from locker.domain.lifecycle import order as order_life
from locker.domain.lifecycle import returns as returns_life
from locker.domain.orders import add_order_to_load, add_ready_order, parse_bag
from locker.domain.pickup import PickupRefused
from locker.domain.returns import ReturnRefused
from locker.domain.timekeeping import shift_running
from tests.support.codes import code_no
from tests.support.doubles import FakeDriver

Rig = tuple[Locker, FakeDriver, SimClock]


def events(locker: Locker, kind: str) -> list[dict[str, Any]]:
    return [{"compartment_id": e.compartment_id, "order_id": e.order_id, **e.payload}
            for e in locker.store.events() if e.kind == kind]


def compartment(locker: Locker, cid: str) -> dict[str, Any]:
    row = locker.store.read().one("SELECT state, return_id, order_id FROM compartments"
                                  " WHERE id = ?", (cid,))
    assert row is not None
    return dict(row)


def return_state(locker: Locker, return_id: str) -> str:
    found = returns_life.get(locker.store.read(), return_id)
    assert found is not None
    return found.state.value


async def picked_up(locker: Locker, driver: FakeDriver, clock: SimClock,
                    order_id: str = "o1") -> str:
    """An order collected at the screen; the return offer the screen got with it."""
    added = add_ready_order(locker.store, locker.config, locker.codes, clock.now(), order_id,
                            [parse_bag("fresh:S")])
    result = await locker.pickup.collect(added.code)
    assert result.return_offer is not None
    for door in result.opened:
        driver.open(door.compartment_id)
        driver.close(door.compartment_id)
    return result.return_offer.id


async def test_a_pickup_offers_a_return_and_the_courier_takes_it_back(rig: Rig) -> None:
    locker, driver, clock = rig
    added = add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o1",
                            [parse_bag("fresh:S")])
    result = await locker.pickup.collect(added.code)
    offer = result.return_offer
    assert offer is not None and not offer.by_code
    assert offer.kinds == ["crates", "ambient_item", "fresh_item", "frozen_item"]
    assert offer.expires_in_s == locker.config.returns.offer_s
    handed = await locker.returns.deposit(offer.id, "crates")
    assert handed.compartment_id == "A1"  # the smallest ambient compartment that takes crates
    assert [d.compartment_id for d in handed.opened] == ["A1"]
    assert compartment(locker, "A1") == {"state": "reserved", "return_id": offer.id,
                                         "order_id": None}
    with pytest.raises(ReturnRefused) as twice:  # one compartment at a time
        await locker.returns.deposit(offer.id, "crates")
    assert twice.value.reason == "return_opening"
    driver.open("A1")
    assert return_state(locker, offer.id) == "opening"
    driver.close("A1")
    assert return_state(locker, offer.id) == "deposited"
    assert compartment(locker, "A1")["state"] == "loaded"
    [deposited] = events(locker, "order.return_deposited")
    assert deposited == {"compartment_id": "A1", "order_id": "o1", "compartment": "A1",
                         "zone": "ambient", "what": "crates", "return_id": offer.id,
                         "source": "pickup"}
    [listed] = locker.courier.orders()["returns_to_take_back"]
    assert listed["compartment"] == "A1" and listed["what"] == "crates"
    assert not listed["overdue"] and not listed["under_way"]
    with pytest.raises(ReturnRefused) as again:
        await locker.returns.deposit(offer.id, "crates")
    assert again.value.reason == "return_used"

    taken = await locker.returns.take_back("courier-1", offer.id)
    assert [d.compartment_id for d in taken.opened] == ["A1"]
    unlock = events(locker, "door.unlock")[-1]
    assert unlock["reason"] == "return_take_back" and unlock["actor"] == "courier-1"
    driver.open("A1")
    driver.close("A1")
    assert return_state(locker, offer.id) == "taken"
    assert compartment(locker, "A1") == {"state": "free", "return_id": None, "order_id": None}
    assert locker.courier.orders()["returns_to_take_back"] == []
    assert events(locker, "return.taken_back")[0]["actor"] == "courier-1"


async def test_a_return_never_takes_a_compartment_a_waiting_order_needs(rig: Rig) -> None:
    locker, driver, clock = rig
    offer = await picked_up(locker, driver, clock)
    # an order waiting for its courier needs both ambient compartments (M and L)
    add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "o2",
                      [parse_bag("ambient:M"), parse_bag("ambient:L")])
    with pytest.raises(ReturnRefused) as refused:
        await locker.returns.deposit(offer, "crates")
    assert refused.value.reason == "return_no_room"
    assert compartment(locker, "A1")["state"] == "free"
    assert return_state(locker, offer) == "offered"  # nothing spent: a frozen item still fits
    handed = await locker.returns.deposit(offer, "frozen_item")
    assert handed.compartment_id == "Z1"


async def test_a_door_that_does_not_open_frees_its_compartment_and_the_offer_stands(
        rig: Rig) -> None:
    locker, driver, clock = rig
    offer = await picked_up(locker, driver, clock)
    handed = await locker.returns.deposit(offer, "ambient_item")
    assert handed.compartment_id == "A1" and handed.opened  # unlocked, but it stays shut
    await clock.advance(locker.config.doors.open_timeout_s + 1)
    locker.monitor.check_timeouts()  # jammed
    assert return_state(locker, offer) == "offered"
    assert compartment(locker, "A1")["state"] == "free"
    assert len(events(locker, "return.not_opened")) == 1
    again = await locker.returns.deposit(offer, "ambient_item")  # the customer tries again
    assert again.compartment_id == "A2"  # not the jammed one


async def test_a_door_shut_on_nothing_keeps_the_offer(rig: Rig) -> None:
    locker, driver, clock = rig
    offer = await picked_up(locker, driver, clock)
    handed = await locker.returns.deposit(offer, "fresh_item")
    cid = handed.compartment_id
    driver.take(cid)
    driver.open(cid)
    driver.close(cid)  # the item sensor saw nothing go in
    assert return_state(locker, offer) == "offered"
    assert compartment(locker, cid)["state"] == "free"
    assert len(events(locker, "return.nothing_inside")) == 1
    await locker.returns.deposit(offer, "fresh_item")
    driver.open(cid)
    driver.put(cid)
    driver.close(cid)
    assert return_state(locker, offer) == "deposited"
    assert not locker.courier.orders()["goods_to_take_back"]  # a return, not forgotten goods


async def test_an_offer_lapses_and_keeps_its_time_over_a_clock_step(rig: Rig) -> None:
    locker, driver, clock = rig
    offer = await picked_up(locker, driver, clock)
    with locker.store.transaction(clock.now()) as tx:
        shift_running(tx, 3600.0)  # the wall clock stepped an hour forward
    await clock.advance(3600.0 + locker.config.returns.offer_s - 5)
    locker.returns.housekeep()
    assert return_state(locker, offer) == "offered"
    await clock.advance(10)
    locker.returns.housekeep()
    assert return_state(locker, offer) == "lapsed"
    with pytest.raises(ReturnRefused) as late:
        await locker.returns.deposit(offer, "crates")
    assert late.value.reason == "return_lapsed"
    with pytest.raises(ReturnRefused) as unknown:
        await locker.returns.deposit("x" * 22, "crates")
    assert unknown.value.reason == "return_unknown"
    with pytest.raises(ReturnRefused) as kind:
        await locker.returns.deposit(offer, "a piano")
    assert kind.value.reason == "return_kind"


def give_return_code(locker: Locker, clock: SimClock, order_id: str, code: str,
                     kind: str | None = None) -> str:
    with locker.store.transaction(clock.now()) as tx:
        return returns_life.offer(tx, order_id, source="code", kind=kind,
                                  code_digest=locker.codes.digest(code),
                                  expires_at=clock.now() + 86400)


async def test_a_return_code_opens_an_offer_once_and_is_no_guess(rig: Rig) -> None:
    locker, driver, clock = rig
    code = code_no(424242)
    give_return_code(locker, clock, "o9", code, kind="fresh_item")
    result = await locker.pickup.collect(code)
    assert result.order_id == "o9" and not result.opened
    offer = result.return_offer
    assert offer is not None and offer.by_code and offer.kind == "fresh_item"
    assert offer.kinds == ["fresh_item"]
    with pytest.raises(ReturnRefused):
        await locker.returns.deposit(offer.id, "crates")  # the code is for a fresh item
    handed = await locker.returns.deposit(offer.id, "fresh_item")
    driver.open(handed.compartment_id)
    driver.close(handed.compartment_id)
    with pytest.raises(PickupRefused) as used:
        await locker.pickup.collect(code)
    assert used.value.reason == "return_used"
    guesses = locker.store.read().one("SELECT COUNT(*) AS n FROM code_failures")
    assert guesses is not None and guesses["n"] == 0  # a spent code is not a guess


async def test_a_cancelled_order_takes_its_return_code_with_it(rig: Rig) -> None:
    locker, _driver, clock = rig
    add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "o1",
                      [parse_bag("fresh:S")])
    code = code_no(777)
    offer = give_return_code(locker, clock, "o1", code)
    with locker.store.transaction(clock.now()) as tx:
        order_life.cancel(tx, "o1", "central", "the customer cancelled")
    assert return_state(locker, offer) == "cancelled"
    with pytest.raises(PickupRefused) as gone:
        await locker.pickup.collect(code)
    assert gone.value.reason == "wrong_code"  # its digest is forgotten


async def test_rotating_the_code_keys_keeps_a_return_code_working(rig: Rig) -> None:
    locker, _driver, clock = rig
    code = code_no(31337)
    give_return_code(locker, clock, "o3", code)
    with locker.store.transaction(clock.now()) as tx:
        count = returns_life.rekey_codes(tx, lambda digest: "x" + digest[1:])
    assert count == 1
    row = locker.store.read().one("SELECT code_digest FROM returns")
    assert row is not None and row["code_digest"].startswith("x")


async def test_a_restart_between_the_commit_and_the_door_gives_the_compartment_back(
        rig: Rig) -> None:
    """A power cut after a return's door was authorised: at the start the unanswered unlock is
    never pulsed again, the compartment is free and the customer's offer stands."""
    locker, driver, clock = rig
    offer = await picked_up(locker, driver, clock)
    zone = locker.config.compartment("A1").zone
    with locker.store.transaction(clock.now()) as tx:  # committed, then the power went
        current = returns_life.get(tx, offer)
        assert current is not None
        returns_life.open_for_deposit(tx, locker.config, current, "crates", zone, "A1",
                                      "customer:front")
    await locker.stop()
    again = Locker(locker.config, driver, clock)
    await again.start()
    try:
        assert return_state(again, offer) == "offered"
        assert compartment(again, "A1")["state"] == "free"
        assert "door.unlock_interrupted" in [e.kind for e in again.store.events()]
        handed = await again.returns.deposit(offer, "crates")
        assert handed.opened
    finally:
        await again.stop()
