"""Item sensors end to end: Kerong boards with infrared item bits, simulated on the pty, goods
put in and taken out through the simulator's control API, the courier through the local API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from locker.domain.orders import add_order_to_load, parse_bag
from simulator.control import create_app as create_control_app
from tests.support.configs import with_item_sensors
from tests.support.rig import Rig

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def sensing(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    async for rig in make_rig("kerong", auto_close_s=None, edit=with_item_sensors):
        yield rig


def items(rig: Rig) -> dict[str, int | None]:
    return {r["id"]: r["item"] for r in rig.locker.store.read().all(
        "SELECT id, item FROM compartments")}


def alarm_open(rig: Rig, kind: str, subject: str) -> bool:
    return rig.locker.store.read().one(
        "SELECT id FROM alarms WHERE kind = ? AND subject = ? AND cleared_at IS NULL",
        (kind, subject)) is not None


async def test_goods_are_sensed_through_a_loading_a_pickup_and_a_taking_back(
        sensing: Rig) -> None:
    rig = sensing
    control = TestClient(TestServer(create_control_app(rig.boards)))
    await control.start_server()

    async def shut(cid: str) -> None:
        """A person pushes the door shut once the latch's pulse is over (as people do)."""
        await rig.until(lambda: rig.boards.doors.lock(cid).latch_engaged)
        assert (await control.post(f"/compartments/{cid}/close")).status == 200

    try:
        auth = await rig.login()
        code = add_order_to_load(rig.locker.store, rig.config, rig.locker.codes,
                                 rig.locker.clock.now(), "o1", [parse_bag("fresh:M")])
        await rig.until(lambda: items(rig) == {c.id: 0 for c in rig.config.compartments})

        # the courier shuts the door on nothing: flagged, the order is not ready
        body = await (await rig.http.post("/api/courier/orders/o1/load", json={},
                                          headers=auth)).json()
        [cid] = body["compartments"]
        await rig.until(lambda: bool(rig.boards.doors.times(cid, "door", "open")))
        put = await control.post(f"/compartments/{cid}/put")
        assert put.status == 200  # the door is open: goods can go in...
        await control.post(f"/compartments/{cid}/take")  # ...and the courier takes them out
        await shut(cid)
        await rig.until(lambda: "order.loaded_empty" in rig.kinds())
        progress = await (await rig.http.get("/api/courier/orders/o1", headers=auth)).json()
        assert progress["state"] == "allocated"
        assert [(d["compartment"], d["empty"], d["may_open"]) for d in progress["doors"]] == [
            (cid, True, True)]
        refused = await control.post(f"/compartments/{cid}/put")
        assert refused.status == 409  # not through a shut door

        # reopened, the bag goes in, the door shuts: ready as usual
        response = await rig.http.post("/api/courier/orders/o1/open",
                                       json={"compartment": cid}, headers=auth)
        assert response.status == 200, await response.text()
        await rig.until(lambda: len(rig.boards.doors.times(cid, "door", "open")) == 2)
        assert (await control.post(f"/compartments/{cid}/put")).status == 200
        await shut(cid)
        await rig.until(lambda: rig.order_state("o1") == "ready")
        assert rig.kinds().count("order.loaded_empty") == 1

        # the customer opens, leaves the bag, shuts the door
        assert (await rig.pickup(code))[0] == 200
        await rig.until(lambda: len(rig.boards.doors.times(cid, "door", "open")) == 3)
        await shut(cid)
        await rig.until(lambda: rig.order_state("o1") == "collected")
        await rig.until(lambda: "compartment.goods_left" in rig.kinds())
        left = [e for e in rig.locker.store.events() if e.kind == "compartment.goods_left"]
        assert [(e.compartment_id, e.order_id) for e in left] == [(cid, "o1")]
        assert alarm_open(rig, "goods_unexpected", cid)
        listing = await (await rig.http.get("/api/courier/orders", headers=auth)).json()
        assert listing["goods_to_take_back"] == [{"compartment": cid, "under_way": False}]

        # the courier takes it back: the alarm clears once it reads empty
        response = await rig.http.post(f"/api/courier/compartments/{cid}/take_back",
                                       headers=auth)
        assert response.status == 200, await response.text()
        await rig.until(lambda: len(rig.boards.doors.times(cid, "door", "open")) == 4)
        unlock = [e for e in rig.locker.store.events() if e.kind == "door.unlock"][-1]
        assert unlock.payload["reason"] == "take_back"
        assert unlock.payload["actor"] == "courier:courier-1"
        await control.post(f"/compartments/{cid}/take")
        await shut(cid)
        await rig.until(lambda: not alarm_open(rig, "goods_unexpected", cid))
        listing = await (await rig.http.get("/api/courier/orders", headers=auth)).json()
        assert listing["goods_to_take_back"] == []
        again = await rig.http.post(f"/api/courier/compartments/{cid}/take_back", headers=auth)
        assert again.status == 409
        assert (await again.json())["error"] == "nothing_to_take_back"
    finally:
        await control.close()
