"""Returns end to end: the reference central issues an order with a return code over real HTTP,
the locker takes it from its feed, the customer collects through the local API and hands back
crates, then types the return code and hands back a fridge item; the simulated boards on the pty
open and close the doors; central hears each deposit and forgets the spent return code; a
courier takes a return back through the local API."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from tests.support.rig import Rig
from tests.support.sync import Central, all_delivered, arrived, courier_loads, payloads

pytestmark = pytest.mark.asyncio


async def hand_back(rig: Rig, offer: str, kind: str) -> tuple[int, dict[str, Any]]:
    response = await rig.http.post("/api/returns", json={"offer": offer, "kind": kind,
                                                         "screen": "front"})
    return response.status, await response.json()


def feed_items(hub: Central) -> list[dict[str, Any]]:
    database = sqlite3.connect(hub.folder / "central.db")
    try:
        return [json.loads(row[0]) for row in database.execute("SELECT item FROM feed")]
    finally:
        database.close()


async def test_a_customer_hands_back_after_a_pickup_and_with_a_return_code(
        synced: Rig, central: Central) -> None:
    rig = synced
    status, order = await central.call("POST", "/admin/lockers/test-locker/orders", {
        "id": "R-1", "window_hours": 24, "bags": [{"zone": "fresh", "size": "S"}],
        "return_code": True, "return_kind": "fresh_item"})
    assert status == 201, order
    assert order["return_code"] != order["code"]
    await arrived(rig, "R-1")
    assert payloads(rig, "order.return_code_taken") == [
        {"version": 1, "what": "fresh_item"}]
    await courier_loads(rig, "R-1")

    # the pickup offers a return: crates go in the smallest free ambient compartment
    status, body = await rig.pickup(order["code"])
    assert status == 200, body
    offer = body["return_offer"]
    assert offer["by_code"] is False and "crates" in offer["kinds"]
    await rig.until(lambda: rig.order_state("R-1") == "collected", 10)
    status, refused = await hand_back(rig, offer["offer"], "a piano")
    assert (status, refused["error"]) == (409, "return_kind")
    response = await rig.http.post("/api/returns", json={"kind": "crates"})
    assert response.status == 400
    status, crates = await hand_back(rig, offer["offer"], "crates")
    assert status == 200, crates
    assert [d["compartment"] for d in crates["opened"]] == [crates["compartment"]]
    await rig.until(lambda: bool(payloads(rig, "order.return_deposited")), 10)
    [deposited] = payloads(rig, "order.return_deposited")
    assert (deposited["compartment"], deposited["zone"], deposited["what"]) == (
        crates["compartment"], "ambient", "crates")

    # the return code central gave opens an offer for what it is for, once
    status, body = await rig.pickup(order["return_code"])
    assert status == 200, body
    assert body["opened"] == [] and body["return_offer"]["by_code"] is True
    assert body["return_offer"]["kind"] == "fresh_item"
    status, fridge = await hand_back(rig, body["return_offer"]["offer"], "fresh_item")
    assert status == 200, fridge
    fresh = {c.id for c in rig.config.compartments if c.zone.value == "fresh"}
    assert fridge["compartment"] in fresh
    await rig.until(lambda: len(payloads(rig, "order.return_deposited")) == 2, 10)
    status, again = await rig.pickup(order["return_code"])
    assert (status, again["error"]) == (409, "return_used")

    received = await all_delivered(rig, central)
    assert [e["payload"]["source"] for e in received
            if e["kind"] == "order.return_deposited"] == ["pickup", "code"]
    status, view = await central.call("GET", "/admin/lockers/test-locker/orders/R-1")
    assert status == 200
    assert [(r["what"], r["zone"]) for r in view["returns"]] == [
        ("crates", "ambient"), ("fresh_item", "fresh")]
    # a spent return code is kept at central no longer, sealed or not
    assert not any("return_code" in item.get("order", {}) for item in feed_items(central))

    # a courier sees both returns and a technician (staff too; the courier's code of this
    # half-minute was spent loading) takes the fridge item back
    auth = await rig.login("tech-1")
    listing = await (await rig.http.get("/api/courier/orders", headers=auth)).json()
    assert [(r["compartment"], r["what"]) for r in listing["returns_to_take_back"]] == [
        (crates["compartment"], "crates"), (fridge["compartment"], "fresh_item")]
    response = await rig.http.post(f"/api/courier/returns/{fridge['return']}/take_back",
                                   headers=auth)
    assert response.status == 200, await response.text()
    await rig.until(lambda: bool(payloads(rig, "return.taken_back")), 10)
    listing = await (await rig.http.get("/api/courier/orders", headers=auth)).json()
    assert [r["what"] for r in listing["returns_to_take_back"]] == ["crates"]
    response = await rig.http.post(f"/api/courier/returns/{fridge['return']}/take_back",
                                   headers=auth)
    assert response.status == 409 and (await response.json())["error"] == "no_return"
