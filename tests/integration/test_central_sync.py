"""The locker and the reference central over real HTTP on loopback, with the simulated boards on
a real pseudo-terminal: orders in, events out, outages, forged commands, central misbehaving.

"Nothing lost, nothing twice" is checked against the locker's own SQLite file: a trigger there
logs the id of every event the outbox ever held, and central's store must end up with exactly
those ids.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from locker.domain import certificates
from locker.domain.codes import seal
from locker.domain.haccp import load_record_key, record
from tests.support.codes import code_no
from tests.support.configs import config_text
from tests.support.rig import OPS_TOKEN, Rig
from tests.support.sync import (
    Central,
    all_delivered,
    arrived,
    courier_loads,
    enrolled_rig,
    kinds,
    payloads,
)
from tests.support.waiting import until


async def test_an_order_flows_in_is_collected_and_every_event_flows_out(
        synced: Rig, central: Central) -> None:
    rig = synced
    order = await central.order("A-1001", "frozen:M", "ambient:S")
    await arrived(rig, "A-1001")
    await courier_loads(rig, "A-1001")
    status, body = await rig.pickup(order["code"])  # the code central told the customer
    assert status == 200, body
    await rig.until(lambda: rig.order_state("A-1001") == "collected", 10)
    received = await all_delivered(rig, central)
    delivered = [e["kind"] for e in received]
    for kind in ("order.received", "order.allocated", "order.ready", "order.collecting",
                 "order.collected", "door.opened", "door.closed"):
        assert kind in delivered
    assert not any(str(order["code"]) in json.dumps(e) for e in received)  # never in clear
    status, lockers = await central.call("GET", "/admin/lockers")
    beat = lockers["lockers"][0]
    assert beat["silent"] is False and beat["heartbeat"]["ready"] is True
    # the ops page still shows what happened, though the outbox is empty now
    answer = await rig.http.get("/api/ops/state", headers={"X-Ops-Token": OPS_TOKEN})
    state = await answer.json()
    assert state["central"]["reachable"] is True and state["central"]["outbox"] == 0
    assert "order.collected" in [e["kind"] for e in state["events"]]


async def test_a_collected_orders_certificate_reaches_central_signed(
        synced: Rig, central: Central) -> None:
    """The certificate travels inside order.collected; central checks it against the record
    key the locker gave at provisioning and serves it; a day's signed head is checked too."""
    rig = synced
    order = await central.order("C-2001", "fresh:M")
    await arrived(rig, "C-2001")
    await courier_loads(rig, "C-2001")
    key = load_record_key(rig.config.record_key_file)
    with rig.locker.store.transaction(rig.locker.clock.now()) as tx:
        record(tx, key, rig.config.locker_id, "fresh", 3.2, True, False, 0)
    status, body = await rig.pickup(order["code"])
    assert status == 200, body
    await rig.until(lambda: rig.order_state("C-2001") == "collected", 10)
    await all_delivered(rig, central)
    status, held = await central.call(
        "GET", "/admin/lockers/test-locker/orders/C-2001/certificate")
    assert status == 200, held
    assert held["verified"] is True and held["why"] is None
    (part,) = held["certificate"]["compartments"]
    assert part["zone"] == "fresh" and part["readings"] == 1 and part["max_c"] == 3.2
    assert part["door_openings"] == 2  # the courier's and the customer's
    assert held["text"] == certificates.kept(rig.locker.store.read(), "C-2001").body
    status, missing = await central.call(
        "GET", "/admin/lockers/test-locker/orders/nope/certificate")
    assert status == 404 and missing["error"] == "not_found"
    # a day's head, signed when the next day's first reading is recorded, arrives checked
    with rig.locker.store.transaction(rig.locker.clock.now() + 86400) as tx:
        record(tx, key, rig.config.locker_id, "fresh", 3.1, True, False, 0)
    await all_delivered(rig, central)
    status, heads = await central.call("GET", "/admin/lockers/test-locker/haccp/heads")
    assert status == 200 and [h["verified"] for h in heads["heads"]] == [True]


async def test_central_down_for_a_while_work_goes_on_and_everything_arrives_once(
        synced: Rig, central: Central) -> None:
    rig = synced
    first = await central.order("A-1", "fresh:M", hours=72)
    await central.order("A-2", "frozen:M", hours=72)
    await arrived(rig, "A-2")
    await courier_loads(rig, "A-1")
    await central.stop()
    # offline: a courier loads, a customer collects, codes verify locally
    await courier_loads(rig, "A-2")
    status, _ = await rig.pickup(first["code"])
    assert status == 200
    await rig.until(lambda: rig.order_state("A-1") == "collected", 10)
    await until(lambda: "alarm.central_unreachable" in kinds(rig), 10)
    assert rig.locker.store.events(limit=1)  # waiting for central
    await asyncio.sleep(1.0)
    await central.start()
    received = await all_delivered(rig, central)
    delivered = [e["kind"] for e in received]
    assert delivered.count("order.collected") == 1 and delivered.count("order.ready") == 2
    alarms = [e["payload"]["state"] for e in received if e["kind"] == "alarm.central_unreachable"]
    assert alarms == ["raised", "cleared"]


async def test_commands_through_central_are_obeyed_once_and_forgeries_refused(
        synced: Rig, central: Central) -> None:
    rig = synced
    await central.command("open_compartment", {"compartment": "F1", "reason": "ticket 7"})
    await until(lambda: "command.done" in kinds(rig))
    assert rig.boards.doors.times("F1", "door", "open")
    done = await central.command("set_in_service", {"compartment": "F2", "in_service": False,
                                                    "reason": "hinge"})
    forged = [
        central.command("open_compartment", {"compartment": "Z1", "reason": "x" * 3},
                        locker_id="other-locker"),
        central.command("open_compartment", {"compartment": "Z1", "reason": "old"},
                        expires_at=1.0, issued_at=0.5),
        central.command("set_in_service", {"compartment": "F2", "in_service": True,
                                           "reason": "replay"}, nonce=done["nonce"]),
    ]
    for made in forged:
        await made
    body = json.dumps({"locker_id": "test-locker", "nonce": "f" * 32, "issued_at": 0,
                       "expires_at": 4e9, "action": "open_compartment",
                       "args": {"compartment": "Z1", "reason": "forged"}})
    status, _ = await central.call("POST", "/admin/lockers/test-locker/raw", {"item": {
        "type": "command", "command": {"body": body,
                                       "signature": base64.b64encode(b"\0" * 64).decode()}}})
    assert status == 201
    await until(lambda: kinds(rig).count("command.refused") == 4)
    reasons = sorted(p["reason"] for p in payloads(rig, "command.refused"))
    assert reasons == ["bad_signature", "expired", "replayed", "wrong_locker"]
    assert not rig.boards.doors.times("Z1", "door", "open")
    row = rig.locker.store.read().one("SELECT state FROM compartments WHERE id = 'F2'")
    assert row == {"state": "out_of_service"}
    # a burst of openings: two allowed, the rest refused and alarmed
    for cid in ("A1", "A2", "Z2"):
        await central.command("open_compartment", {"compartment": cid, "reason": "burst"})
    await until(lambda: "alarm.remote_open_burst" in kinds(rig))
    await all_delivered(rig, central)
    assert not rig.boards.doors.times("Z2", "door", "open")


@pytest.mark.parametrize("mode", ["error", "garbage", "oversized", "wrong_types",
                                  "unknown_fields", "slow"])
async def test_central_misbehaving_changes_nothing_and_the_loop_recovers(
        synced: Rig, central: Central, mode: str) -> None:
    rig = synced
    await central.order("A-1", "fresh:S")
    await arrived(rig, "A-1")
    await until(lambda: not rig.locker.store.events(limit=1))
    await central.fault(mode, delay_s=5.0)
    await asyncio.sleep(2.5)  # the long poll in flight ends; the next one meets the fault
    before = rig.locker.store.read().all("SELECT * FROM orders")
    await central.order("A-2", "fresh:S")  # waiting behind the fault
    await asyncio.sleep(2.5)
    assert rig.locker.store.read().all("SELECT * FROM orders") == before
    alarm = "alarm.central_protocol" if mode in ("garbage", "oversized", "wrong_types",
                                                 "unknown_fields") else (
        "alarm.central_unreachable")
    await until(lambda: alarm in kinds(rig), 10)
    assert rig.locker.store.read().all("SELECT * FROM orders") == before
    await central.fault("none")
    await arrived(rig, "A-2")
    received = await all_delivered(rig, central)
    states = [e["payload"]["state"] for e in received if e["kind"] == alarm]
    # raised while the fault lasts (perhaps twice, around the long poll that was in flight)
    assert states[0] == "raised" and states[-1] == "cleared"
    assert all(a != b for a, b in itertools.pairwise(states))


async def test_orders_the_locker_cannot_take_are_reported_to_central(
        synced: Rig, central: Central) -> None:
    rig = synced
    status, _ = await central.call("POST", "/admin/lockers/test-locker/raw", {"item": {
        "type": "order", "order": {"id": "B-1", "version": 1,
                                   "code": seal(rig.locker.codes.box_public, code_no(900)),
                                   "state": "active", "window_hours": 24, "accessible": False,
                                   "bags": [{"zone": "fresh", "size": "L"}]}}})
    assert status == 201
    await central.call("POST", "/admin/lockers/test-locker/raw", {"item": {
        "type": "order", "order": {"id": "B-2", "version": 1,
                                   "code": seal(rig.locker.codes.box_public, code_no(901)),
                                   "state": "active", "window_hours": 24, "accessible": False,
                                   "bags": [{"zone": "fresh", "size": "S"}], "price": 3}}})
    await central.order("B-3", "fresh:S")
    await arrived(rig, "B-3")
    received = await all_delivered(rig, central)
    rejected = [e for e in received if e["kind"] in ("order.rejected", "central.item_rejected")]
    assert "no fresh compartment of size L" in rejected[0]["payload"]["message"]
    assert "unknown field 'price'" in rejected[1]["payload"]["message"]
    assert [r["id"] for r in rig.locker.store.read().all("SELECT id FROM orders")] == ["B-3"]


async def test_a_cancelled_order_stops_its_code(synced: Rig, central: Central) -> None:
    rig = synced
    order = await central.order("C-1", "ambient:M")
    await arrived(rig, "C-1")
    await courier_loads(rig, "C-1")
    status, _ = await central.call("POST", "/admin/lockers/test-locker/orders/C-1/cancel")
    assert status == 200
    await rig.until(lambda: rig.order_state("C-1") == "cancelled", 10)
    status, body = await rig.pickup(order["code"])
    assert status == 403 and body["error"] == "wrong_code"


def read_db(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# -- a customer who needs the lower compartments (order.assistance_used) -----------------------


def two_levels(text: str) -> str:
    """A1 (M) up on level 3, A2 (L) below on level 2: a plain M bag takes the smaller A1, an
    accessible one the lower A2."""
    return re.sub(r'(\{ id = "A1",[^}]*?) \}', r"\1, level = 3 }", text)


@pytest.fixture
async def synced_two_levels(tmp_path: Path, central: Central,
                            make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    async for rig in enrolled_rig(tmp_path, central, make_rig, two_levels(config_text("kerong"))):
        yield rig


def compartment_of(rig: Rig, order_id: str) -> str:
    row = rig.locker.store.read().one(
        "SELECT compartment_id FROM order_compartments WHERE order_id = ?", (order_id,))
    assert row is not None
    return str(row["compartment_id"])


async def test_assistance_at_a_pickup_puts_the_customers_next_order_low(
        synced_two_levels: Rig, central: Central) -> None:
    rig = synced_two_levels
    status, first = await central.call("POST", "/admin/lockers/test-locker/orders", {
        "id": "C-1", "window_hours": 72, "customer": "cust-7",
        "bags": [{"zone": "ambient", "size": "M"}]})
    assert status == 201 and first["accessible"] is False, first
    await arrived(rig, "C-1")
    await courier_loads(rig, "C-1")
    assert compartment_of(rig, "C-1") == "A1"  # a plain order: the upper compartment
    response = await rig.http.post("/api/pickup", json={
        "code": first["code"], "screen": "front", "assistance": True})
    assert response.status == 200, await response.text()
    await rig.until(lambda: rig.order_state("C-1") == "collected", 10)
    assert payloads(rig, "order.assistance_used") == [{"screen": "front", "accessible": False}]
    await all_delivered(rig, central)
    status, customer = await central.call("GET", "/admin/customers/cust-7")
    assert status == 200 and customer["assisted"] is True, customer

    status, second = await central.call("POST", "/admin/lockers/test-locker/orders", {
        "id": "C-2", "window_hours": 72, "customer": "cust-7",
        "bags": [{"zone": "ambient", "size": "M"}]})
    assert status == 201 and second["accessible"] is True, second  # the customer's preference
    await arrived(rig, "C-2")
    await courier_loads(rig, "C-2")
    assert compartment_of(rig, "C-2") == "A2"  # the lower row
    # another customer, and an order that says otherwise, are not touched
    status, other = await central.call("POST", "/admin/lockers/test-locker/orders", {
        "id": "C-3", "window_hours": 72, "customer": "cust-8",
        "bags": [{"zone": "fresh", "size": "M"}]})
    assert other["accessible"] is False
    status, told = await central.call("POST", "/admin/lockers/test-locker/orders", {
        "id": "C-4", "window_hours": 72, "customer": "cust-7", "accessible": False,
        "bags": [{"zone": "fresh", "size": "M"}]})
    assert told["accessible"] is False


async def test_a_pickup_without_assistance_says_nothing_and_a_bad_flag_changes_nothing(
        synced_two_levels: Rig, central: Central) -> None:
    rig = synced_two_levels
    order = await central.order("C-5", "fresh:M")
    await arrived(rig, "C-5")
    await courier_loads(rig, "C-5")
    response = await rig.http.post("/api/pickup", json={"code": order["code"],
                                                        "assistance": "yes"})
    assert response.status == 400
    assert rig.order_state("C-5") == "ready"  # the code was not judged
    status, _ = await rig.pickup(order["code"])
    assert status == 200
    await rig.until(lambda: rig.order_state("C-5") == "collected", 10)
    await until(lambda: "order.collected" in kinds(rig))
    assert "order.assistance_used" not in kinds(rig)
    status, _ = await central.call("POST", "/admin/lockers/test-locker/orders", {
        "id": "C-6", "window_hours": 72, "customer": 7, "bags": [{"zone": "fresh", "size": "M"}]})
    assert status == 400
