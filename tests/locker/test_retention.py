"""Finished orders are forgotten after 30 days, and the card keeps nothing of their codes."""

from __future__ import annotations

import pytest

from locker.domain.daemon import STANDALONE_OUTBOX_EVENTS, Locker
from locker.domain.orders import add_ready_order, parse_bag
from locker.domain.pickup import PickupRefused
from locker.domain.retention import prune
from locker.domain.store import CATEGORIES
from locker.domain.sync import enforce_bound
from tests.support.doubles import FakeDriver


async def collect(locker: Locker, driver: FakeDriver, order_id: str) -> str:
    added = add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(),
                            order_id, [parse_bag("fresh:M")])
    result = await locker.pickup.collect(added.code)
    for door in result.opened:
        driver.open(door.compartment_id)
        driver.close(door.compartment_id)
    return added.code


def count(locker: Locker, table: str) -> int:
    row = locker.store.read().one(f"SELECT COUNT(*) AS n FROM {table}")
    assert row is not None
    return int(row["n"])


async def test_finished_orders_go_after_thirty_days_with_what_hangs_on_them(rig) -> None:
    locker, driver, clock = rig
    code = await collect(locker, driver, "old")
    assert locker.store.read().one("SELECT code_digest FROM orders")["code_digest"] is None
    with pytest.raises(PickupRefused, match="already been used"):  # 16 bits of it are kept a while
        await locker.pickup.collect(code)
    assert prune(locker.store, clock.now()) == {}  # too young
    with locker.store.transaction(clock.now()) as tx:
        tx.raise_alarm("door_left_open", "F1", "left open")
        tx.clear_alarm("door_left_open", "F1", "closed")
        # a security alarm waits for its acknowledgement, however old
        tx.raise_alarm("door_forced", "F2", "forced")
        tx.clear_alarm("door_forced", "F2", "closed")
    now = clock.now() + 31 * 86400
    gone = prune(locker.store, now)
    assert gone["orders"] == 1 and gone["order_bags"] == 1 and gone["authorisations"] == 1
    assert gone["alarms"] == 1
    kept = locker.store.read().all("SELECT kind FROM alarms")
    assert [r["kind"] for r in kept] == ["door_forced"]
    assert count(locker, "orders") == count(locker, "authorisations") == 0
    with pytest.raises(PickupRefused, match="not valid"):  # forgotten: nothing of it is left
        await locker.pickup.collect(code)


async def test_an_order_with_goods_inside_is_never_forgotten(rig) -> None:
    locker, _, clock = rig
    add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "kept",
                    [parse_bag("fresh:M")])
    with locker.store.transaction(clock.now()) as tx:
        tx.execute("UPDATE orders SET state = 'cancelled' WHERE id = 'kept'")
    prune(locker.store, clock.now() + 400 * 86400)
    assert count(locker, "orders") == 1


async def test_a_standalone_outbox_is_a_rolling_journal(rig) -> None:
    locker, _, clock = rig
    with locker.store.transaction(clock.now()) as tx:
        for n in range(STANDALONE_OUTBOX_EVENTS // 1000 + 150):
            tx.emit("order.received", "order", order_id=f"o{n}")
    enforce_bound(locker.store, clock.now(), STANDALONE_OUTBOX_EVENTS // 1000, CATEGORIES)
    assert count(locker, "outbox") == STANDALONE_OUTBOX_EVENTS // 1000 + 1  # and the report
