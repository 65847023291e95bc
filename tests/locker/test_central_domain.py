"""Central's feed, commands and the outbox, through the domain on a stand-in driver.

The HTTP side is tested in tests/integration/test_central_sync.py against the reference central;
here every rule is checked one by one: idempotent orders, changes and cancellations, what a forged,
stale, replayed or misaddressed command gets, the remote-open limit, the outbox bound, and windows
held and extended across an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey

from locker.domain.clock import SimClock
from locker.domain.codes import box_public_key, seal
from locker.domain.daemon import Locker
from locker.domain.feed import BadPayload, FeedItem, parse_feed, parse_order
from locker.domain.model import Zone
from locker.domain.sync import acknowledge, enforce_bound, outage_since, reachable, unreachable
from locker.domain.sync import cursor as stored_cursor
from tests.support.central import central_config, feed, load, order, signed
from tests.support.codes import code_no
from tests.support.doubles import FakeDriver


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[Locker, FakeDriver, SimClock]]:
    config = central_config(tmp_path)
    clock = SimClock(start=1_800_000_000.0)
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver, clock)
    await locker.start()
    yield locker, driver, clock
    await locker.stop()


def state_of(locker: Locker, order_id: str) -> str | None:
    row = locker.store.read().one("SELECT state FROM orders WHERE id = ?", (order_id,))
    return None if row is None else str(row["state"])


def kinds(locker: Locker) -> list[str]:
    return [e.kind for e in locker.store.events()]


# -- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, why", [
    ([], "must be an object"),
    ({"cursor": 1}, "missing field 'items'"),
    ({"cursor": 1, "items": [], "surprise": True}, "unknown field 'surprise'"),
    ({"cursor": "1", "items": []}, "must be an integer"),
    ({"cursor": 1, "items": {}}, "must be an array"),
    ({"cursor": 3, "items": [{"cursor": 9}]}, "beyond the answer's cursor"),
    ({"cursor": 0, "items": []}, "goes back before"),
])
def test_a_feed_answer_with_a_wrong_frame_is_refused_whole(body: Any, why: str) -> None:
    with pytest.raises(BadPayload, match=why):
        parse_feed(body, after=2)


@pytest.mark.parametrize("change, why", [
    ({"version": 0}, "version"),
    ({"code": 12345678901}, "code: must be base64 of the sealed code"),
    ({"code": None}, "code: an active order carries its code"),
    ({"sequence": 1}, "unknown field 'sequence'"),
    ({"state": "lost"}, "state"),
    ({"window_hours": 0}, "window_hours"),
    ({"window_hours": float("nan")}, "finite"),
    ({"bags": []}, "bags"),
    ({"bags": [{"zone": "frozen", "size": "XL"}]}, "size S, M or L"),
    ({"bags": [{"zone": "frozen", "size": "M", "weight": 3}]}, "unknown field 'weight'"),
    ({"id": "../etc"}, "letters, digits"),
    ({"accessible": "yes"}, "true or false"),
    ({"price": 12}, "unknown field 'price'"),
])
def test_a_bad_order_is_refused_with_the_field_named(change: dict[str, Any], why: str) -> None:
    with pytest.raises(BadPayload, match=why):
        parse_order({**order(), **change})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20))
def test_any_json_is_either_a_feed_or_a_bad_payload(body: Any) -> None:
    try:
        cursor, items = parse_feed(body, after=0)
    except BadPayload:
        return
    assert all(isinstance(i, FeedItem) for i in items) and cursor >= 0


# -- orders --------------------------------------------------------------------------------------

async def test_an_order_is_applied_once_by_id_and_version(rig) -> None:
    locker, driver, _ = rig
    assert await feed(locker, {"type": "order", "order": order()}) == {"received": 1}
    assert await feed(locker, {"type": "order", "order": order()}) == {"unchanged": 1}
    assert state_of(locker, "A-1") == "received"
    assert kinds(locker).count("order.received") == 1
    await load(locker, driver, "A-1")
    assert state_of(locker, "A-1") == "ready"
    # the code is central's: the one it sealed for this locker
    result = await locker.pickup.collect(code_no(1))
    assert result.order_id == "A-1"


async def test_a_new_version_replaces_the_bags_until_goods_are_in(rig) -> None:
    locker, driver, _ = rig
    await feed(locker, {"type": "order", "order": order()})
    await locker.courier.load("courier:courier-1", "A-1", together=False)  # allocated, no door
    changed = order(version=2, bags=[{"zone": "fresh", "size": "S"}])
    assert await feed(locker, {"type": "order", "order": changed}) == {"changed": 1}
    bags = locker.store.read().all("SELECT zone, size, compartment_id FROM order_bags")
    assert bags == [{"zone": "fresh", "size": "S", "compartment_id": None}]
    assert not locker.store.read().all("SELECT id FROM compartments WHERE state != 'free'")
    await load(locker, driver, "A-1")
    again = order(version=3, bags=[{"zone": "ambient", "size": "L"}])
    assert await feed(locker, {"type": "order", "order": again}) == {"rejected": 1}
    assert state_of(locker, "A-1") == "ready"
    rejected = [e for e in locker.store.events() if e.kind == "order.rejected"]
    assert "no longer change" in rejected[-1].payload["message"]


async def test_orders_the_locker_cannot_take_are_reported_and_change_nothing(rig) -> None:
    locker, _, _ = rig
    await feed(locker, {"type": "order", "order": order("A-1", code=5)})
    before = locker.store.read().all("SELECT * FROM orders")
    other_locker = seal(box_public_key(PrivateKey.generate()), code_no(8))
    outcomes = await feed(
        locker,
        {"type": "order", "order": order("A-2", code=6, bags=[{"zone": "fresh", "size": "L"}])},
        {"type": "order", "order": order("A-3", code=5)},
        {"type": "parcel", "parcel": {}},
        {"type": "order", "order": {**order("A-5"), "code": other_locker}},
        {"type": "order", "order": order("A-4", code=7)},
    )
    assert outcomes == {"rejected": 4, "received": 1}
    messages = [e.payload.get("message", "") for e in locker.store.events()
                if e.kind in ("order.rejected", "central.item_rejected",
                              "security.code_collision")]
    assert "no fresh compartment of size L" in messages[0]
    assert "its code is an open order's already" in messages[1]
    assert "must be 'order' or 'command'" in messages[2]
    assert "cannot be opened with this locker's box key" in messages[3]
    assert locker.store.read().all("SELECT * FROM orders WHERE id != 'A-4'") == before
    assert stored_cursor(locker.store) == 6  # stepped over, never stuck


async def test_a_cancelled_order_frees_empty_compartments_and_waits_for_goods_to_go(rig) -> None:
    locker, driver, _ = rig
    await feed(locker, {"type": "order", "order": order("A-1", code=1)},
               {"type": "order", "order": order("A-2", code=2,
                                                bags=[{"zone": "fresh", "size": "S"}])})
    await load(locker, driver, "A-2")
    code = code_no(2)
    await feed(locker, {"type": "order", "order": order("A-1", 2, 1, state="cancelled")},
               {"type": "order", "order": order("A-2", 2, 2, state="cancelled",
                                                bags=[{"zone": "fresh", "size": "S"}])})
    assert state_of(locker, "A-1") == state_of(locker, "A-2") == "cancelled"
    with pytest.raises(Exception, match="not valid"):
        await locker.pickup.collect(code)
    listed = locker.courier.orders()["to_reclaim"]
    assert [o["order"] for o in listed] == ["A-2"]
    result = await locker.courier.reclaim("courier:courier-1", "A-2")
    for door in result.opened:
        driver.open(door.compartment_id)
        driver.close(door.compartment_id)
    assert state_of(locker, "A-2") == "reclaimed"
    assert not locker.store.read().all("SELECT id FROM compartments WHERE state != 'free'")


async def test_a_code_already_open_is_refused_and_central_sends_a_new_one(rig) -> None:
    locker, driver, _ = rig
    await feed(locker, {"type": "order", "order": order("A-1", code=9)})
    await load(locker, driver, "A-1")
    # central drew, by a one-in-33-million chance, a code an open order holds
    fresh = [{"zone": "fresh", "size": "S"}]
    assert await feed(locker, {"type": "order", "order": order("A-2", code=9, bags=fresh)}
                      ) == {"rejected": 1}
    collision = [e for e in locker.store.events() if e.kind == "security.code_collision"]
    assert collision[-1].order_id == "A-2" and collision[-1].payload["version"] == 1
    assert state_of(locker, "A-2") is None
    await feed(locker, {"type": "order", "order": order("A-2", 2, 10, bags=fresh)})
    await load(locker, driver, "A-2")
    assert (await locker.pickup.collect(code_no(10))).order_id == "A-2"
    assert (await locker.pickup.collect(code_no(9))).order_id == "A-1"


async def test_a_new_version_with_a_new_code_replaces_the_old_one_at_once(rig) -> None:
    locker, driver, _ = rig
    await feed(locker, {"type": "order", "order": order("A-1", code=3)})
    await load(locker, driver, "A-1")
    assert await feed(locker, {"type": "order", "order": order("A-1", 2, 4)}) == {"changed": 1}
    with pytest.raises(Exception, match="not valid"):
        await locker.pickup.collect(code_no(3))
    assert (await locker.pickup.collect(code_no(4))).order_id == "A-1"


# -- commands ------------------------------------------------------------------------------------

async def test_a_signed_command_opens_one_compartment_with_its_reason(rig) -> None:
    locker, driver, clock = rig
    item = signed("open_compartment", {"compartment": "F1", "reason": "ticket 4411"},
                  now=clock.now())
    assert await feed(locker, item) == {"done": 1}
    assert driver.unlocked == ["F1"]
    auth = locker.store.read().one("SELECT actor, reason FROM authorisations")
    assert auth == {"actor": "central", "reason": "maintenance: ticket 4411"}


@pytest.mark.parametrize("tamper, reason", [
    ({"key": Ed25519PrivateKey.generate()}, "bad_signature"),
    ({"locker_id": "another-locker"}, "wrong_locker"),
    ({"ttl": -1}, "expired"),
    ({"issued": 1_800_000_000.0 + 600}, "not_yet_valid"),
    ({"ttl": 3 * 86400}, "malformed"),
])
async def test_forged_stale_and_misaddressed_commands_are_refused_and_reported(
        rig, tamper: dict[str, Any], reason: str) -> None:
    locker, driver, clock = rig
    item = signed("open_compartment", {"compartment": "F1", "reason": "let me in"},
                  now=clock.now(), **tamper)
    assert await feed(locker, item) == {reason: 1}
    assert driver.unlocked == []
    refused = [e for e in locker.store.events() if e.kind == "command.refused"]
    assert refused and refused[0].payload["reason"] == reason
    assert not locker.store.read().all("SELECT * FROM authorisations")


async def test_a_tampered_body_fails_its_signature(rig) -> None:
    locker, driver, clock = rig
    item = signed("open_compartment", {"compartment": "F1", "reason": "ok"}, now=clock.now())
    item["command"]["body"] = item["command"]["body"].replace("F1", "Z2")
    assert await feed(locker, item) == {"bad_signature": 1}
    assert driver.unlocked == []


async def test_a_replayed_command_is_refused(rig) -> None:
    locker, driver, clock = rig
    item = signed("open_compartment", {"compartment": "F1", "reason": "ticket 1"},
                  now=clock.now())
    assert await feed(locker, item) == {"done": 1}
    assert await feed(locker, item) == {"replayed": 1}
    assert driver.unlocked == ["F1"]
    assert "alarm.command_forged" in kinds(locker)


async def test_a_burst_of_remote_openings_is_refused_and_alarmed(rig) -> None:
    locker, driver, clock = rig
    items = [signed("open_compartment", {"compartment": cid, "reason": "burst"},
                    now=clock.now(), nonce=f"{cid}-nonce-0123456789") for cid in
             ("A1", "A2", "F1", "F2", "Z1")]
    assert await feed(locker, *items) == {"done": 2, "rate_limited": 3}
    assert driver.unlocked == ["A1", "A2"]
    assert kinds(locker).count("alarm.remote_open_burst") == 1
    await clock.advance(3600)  # one more an hour
    later = signed("open_compartment", {"compartment": "Z2", "reason": "after an hour"},
                   now=clock.now(), nonce="later-nonce-0123456789")
    assert await feed(locker, later) == {"done": 1}


async def test_commands_change_service_windows_orders_and_setpoints(rig) -> None:
    locker, driver, clock = rig
    await feed(locker, {"type": "order", "order": order("A-1", code=1, hours=1)})
    await load(locker, driver, "A-1")
    end = locker.store.read().one("SELECT window_end FROM orders")["window_end"]
    n = iter(range(100))

    def cmd(action: str, args: dict[str, Any]) -> dict[str, Any]:
        return signed(action, args, now=clock.now(), nonce=f"nonce-{next(n):04d}-abcdefghij")

    assert await feed(locker, cmd("extend_window", {"order": "A-1", "hours": 2})) == {"done": 1}
    assert locker.store.read().one("SELECT window_end FROM orders")["window_end"] == end + 7200
    assert await feed(locker, cmd("set_in_service", {"compartment": "F2", "in_service": False,
                                                     "reason": "broken hinge"})) == {"done": 1}
    row = locker.store.read().one("SELECT state FROM compartments WHERE id = 'F2'")
    assert row == {"state": "out_of_service"}
    # no zone of this stand-in locker is regulated: a setpoint is refused and reported
    assert await feed(locker, cmd("set_setpoint", {"zone": "fresh", "celsius": 3})) == {
        "failed": 1}
    assert await feed(locker, cmd("cancel_order", {"order": "A-1", "reason": "refund"})) == {
        "done": 1}
    assert state_of(locker, "A-1") == "cancelled"
    assert await feed(locker, cmd("cancel_order", {"order": "A-1", "reason": "again"})) == {
        "failed": 1}
    assert await feed(locker, cmd("open_every_door", {})) == {"unknown_action": 1}


# -- outbox and outages --------------------------------------------------------------------------

async def test_only_events_central_acknowledged_and_we_sent_are_deleted(rig) -> None:
    locker, _, clock = rig
    events = locker.store.events()
    assert len(events) >= 2
    sent = {e.id: e.seq for e in events[:2]}
    assert acknowledge(locker.store, clock.now(), sent, [*sent, events[-1].id, "made-up"]) == 2
    assert [e.id for e in locker.store.events()] == [e.id for e in events[2:]]


async def test_the_outbox_bound_drops_old_telemetry_and_never_an_order_event(rig) -> None:
    locker, _, clock = rig
    with locker.store.transaction(clock.now()) as tx:
        for n in range(80):
            tx.emit("telemetry.sample", "telemetry", n=n)
            tx.emit("order.received", "order", order_id=f"o{n}")
    dropped = enforce_bound(locker.store, clock.now(), 100)
    events = locker.store.events(limit=10_000)
    assert dropped > 0 and len(events) == 100 + 1  # down to the bound, plus its own report
    left = [e for e in events if e.kind == "telemetry.sample"]
    assert [e.payload["n"] for e in left] == list(range(80 - len(left), 80))  # oldest went
    assert sum(e.kind == "order.received" for e in events) == 80
    with locker.store.transaction(clock.now()) as tx:
        for _ in range(200):
            tx.emit("door.opened", "door", compartment_id="A1")
    enforce_bound(locker.store, clock.now(), 100)
    kinds_left = [e.kind for e in locker.store.events(limit=10_000)]
    assert kinds_left.count("door.opened") == 200 and kinds_left.count("order.received") == 80


async def test_windows_that_end_offline_are_held_then_extended_by_the_outage(rig) -> None:
    locker, driver, clock = rig
    config = locker.config
    await feed(locker, {"type": "order", "order": order("A-1", code=1, hours=1)},
               {"type": "order", "order": order("A-2", code=2, hours=5,
                                                bags=[{"zone": "fresh", "size": "S"}])})
    await load(locker, driver, "A-1")
    await load(locker, driver, "A-2")
    end = {r["id"]: r["window_end"] for r in locker.store.read().all(
        "SELECT id, window_end FROM orders")}
    last_answer = clock.now()
    await clock.advance(600)
    unreachable(locker.store, config, clock.now(), last_answer)
    assert outage_since(locker.store) == last_answer
    await clock.advance(2 * 3600)  # A-1 window ended during the outage
    assert state_of(locker, "A-1") == "ready"
    unreachable(locker.store, config, clock.now(), last_answer)
    assert "alarm.central_unreachable" in kinds(locker)
    outage = clock.now() - last_answer
    ended = reachable(locker.store, clock.now())
    assert ended is not None
    assert [f["order_id"] for k, f in ended.emitted if k == "order.window_extended"] == ["A-1"]
    now_end = {r["id"]: r["window_end"] for r in locker.store.read().all(
        "SELECT id, window_end FROM orders")}
    assert now_end == {"A-1": end["A-1"] + outage, "A-2": end["A-2"]}
    assert outage_since(locker.store) is None
    cleared = [e for e in locker.store.events() if e.kind == "alarm.central_unreachable"]
    assert [e.payload["state"] for e in cleared] == ["raised", "cleared"]


async def settle(clock: SimClock) -> None:
    """Let the zone loop start and take its first reading."""
    for _ in range(10):
        await asyncio.sleep(0)
    await clock.advance(1)


class StillProbe:
    """A fresh zone that reads 3 °C; enough for the zone loop to run."""

    async def read_celsius(self) -> float:
        return 3.0


class Relay:
    def __init__(self) -> None:
        self.on = False

    def switch(self, on: bool) -> None:
        self.on = on


async def test_a_signed_setpoint_reaches_the_zone_controller_and_outlives_a_restart(
        tmp_path: Path) -> None:
    config = central_config(tmp_path)
    clock = SimClock()
    zones = {Zone.FRESH: (StillProbe(), Relay())}
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), clock, zones=zones)
    await locker.start()
    await settle(clock)
    assert locker.zone_controllers[Zone.FRESH].control.setpoint_c == 2.5  # the config's
    outcomes = await feed(locker, signed("set_setpoint", {"zone": "fresh", "celsius": 3.5},
                                         now=clock.now()),
                          signed("set_setpoint", {"zone": "fresh", "celsius": 9},
                                 now=clock.now(), nonce="another-nonce-0123456789"))
    assert outcomes == {"done": 1, "failed": 1}  # 9 °C lies outside the fresh zone's limits
    assert locker.zone_controllers[Zone.FRESH].control.setpoint_c == 3.5
    change = locker.store.read().all("SELECT celsius, actor FROM setpoint_changes")
    assert change[-1] == {"celsius": 3.5, "actor": "central"}
    await locker.stop()
    again = Locker(config, FakeDriver([c.id for c in config.compartments]), clock, zones=zones)
    await again.start()
    await settle(clock)
    assert again.zone_controllers[Zone.FRESH].control.setpoint_c == 3.5
    await again.stop()
