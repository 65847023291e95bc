"""Couriers and technicians through the local API, against the simulated boards on the pty."""

from __future__ import annotations

import pyotp
import pytest

from locker.domain.orders import add_order_to_load, parse_bag
from locker.domain.staff import load_secret
from tests.support.rig import Rig

pytestmark = pytest.mark.asyncio


def totp(rig: Rig, staff_id: str, offset_steps: int = 0) -> str:
    secret = load_secret(rig.config.staff_secret_file(staff_id))
    return pyotp.TOTP(secret).at(rig.locker.clock.now() + 30 * offset_steps)


async def login(rig: Rig, staff_id: str = "courier-1", offset_steps: int = 0) -> dict[str, str]:
    response = await rig.http.post("/api/staff/login", json={
        "staff": staff_id, "code": totp(rig, staff_id, offset_steps), "screen": "front"})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


CODES: dict[tuple[int, str], str] = {}  # (locker, order) -> the code told when it was added


def to_load(rig: Rig, order_id: str, *bags: str, hours: float | None = None) -> None:
    CODES[id(rig.locker), order_id] = add_order_to_load(
        rig.locker.store, rig.config, rig.locker.codes, rig.locker.clock.now(), order_id,
        [parse_bag(b) for b in bags], window_hours=hours)


def code_of(rig: Rig, order_id: str) -> str:
    return CODES[id(rig.locker), order_id]


async def test_a_courier_loads_a_mixed_order_and_the_customer_collects_it(rig: Rig) -> None:
    auth = await login(rig)
    to_load(rig, "o1", "ambient:M", "fresh:S", "frozen:M")
    listing = await (await rig.http.get("/api/courier/orders", headers=auth)).json()
    assert [o["order"] for o in listing["to_load"]] == ["o1"]
    response = await rig.http.post("/api/courier/orders/o1/load", json={"together": True},
                                   headers=auth)
    assert response.status == 200, await response.text()
    body = await response.json()
    zones = {rig.config.compartment(c).zone.value for c in body["compartments"]}
    assert zones == {"ambient", "fresh", "frozen"} and len(body["opened"]) == 3
    for cid in body["compartments"]:  # the simulated doors really opened
        assert rig.boards.doors.times(cid, "door", "open")
    assert rig.order_state("o1") == "allocated"  # not ready while doors are open
    await rig.until(lambda: rig.order_state("o1") == "ready")
    unlocks = [e for e in rig.locker.store.events() if e.kind == "door.unlock"]
    assert {e.payload["actor"] for e in unlocks} == {"courier:courier-1"}
    assert (await rig.pickup(code_of(rig, "o1")))[0] == 200
    await rig.until(lambda: rig.order_state("o1") == "collected")


async def test_loading_one_door_at_a_time(rig: Rig) -> None:
    auth = await login(rig)
    to_load(rig, "o1", "ambient:M", "frozen:M")
    body = await (await rig.http.post("/api/courier/orders/o1/load", json={"together": False},
                                      headers=auth)).json()
    assert body["opened"] == [] and len(body["compartments"]) == 2
    first, second = body["compartments"]
    response = await rig.http.post("/api/courier/orders/o1/open", json={"compartment": first},
                                   headers=auth)
    assert response.status == 200
    await rig.until(lambda: bool(rig.boards.doors.times(first, "door", "closed")))
    assert rig.order_state("o1") == "allocated"
    await rig.http.post("/api/courier/orders/o1/open", json={"compartment": second},
                        headers=auth)
    await rig.until(lambda: rig.order_state("o1") == "ready")


async def test_an_order_that_does_not_fit_says_what_is_missing_and_reserves_nothing(
        rig: Rig) -> None:
    auth = await login(rig)
    to_load(rig, "big", "frozen:L", "frozen:L", "frozen:L", "ambient:S")
    response = await rig.http.post("/api/courier/orders/big/load", json={}, headers=auth)
    assert response.status == 409
    body = await response.json()
    assert body["error"] == "no_room" and {"zone": "frozen", "size": "L"} in body["missing"]
    assert rig.locker.store.read().all(
        "SELECT id FROM compartments WHERE state != 'free'") == []
    assert not rig.boards.received(command="unlock")
    assert rig.order_state("big") == "received"


async def test_a_door_that_jams_while_loading_is_replaced(rig: Rig) -> None:
    auth = await login(rig)
    to_load(rig, "o1", "ambient:S")
    free_before = {r["id"] for r in rig.locker.store.read().all(
        "SELECT id FROM compartments WHERE zone = 'ambient'")}
    # jam the compartment the allocator will choose: the smallest ambient one that fits
    rig.boards.jam("A1")
    body = await (await rig.http.post("/api/courier/orders/o1/load", json={},
                                      headers=auth)).json()
    assert body["compartments"] == ["A1"]
    await rig.until(lambda: "order.reallocated" in rig.kinds(), timeout_s=6)
    row = rig.locker.store.read().one("SELECT state, service_reason FROM compartments"
                                      " WHERE id = 'A1'")
    assert row == {"state": "out_of_service", "service_reason": "jammed while loading"}
    assert "alarm.door_jammed" in rig.kinds()
    await rig.until(lambda: rig.order_state("o1") == "ready", timeout_s=6)
    [(moved,)] = [(r["compartment_id"],) for r in rig.locker.store.read().all(
        "SELECT compartment_id FROM order_compartments WHERE order_id = 'o1'")]
    assert moved in free_before - {"A1"}
    assert rig.boards.doors.times(moved, "door", "open")
    # the courier's screen is told which compartment took the jammed one's bags, even after
    progress = await (await rig.http.get("/api/courier/orders/o1", headers=auth)).json()
    assert progress["result"] == "ready" and progress["phase"] == "load"
    assert [(d["compartment"], d["step"], d["moved_to"], d["replaces"])
            for d in progress["doors"]] == [("A1", "jammed", [moved], None),
                                            (moved, "closed", [], "A1")]


async def test_a_courier_takes_back_an_expired_order(rig: Rig) -> None:
    auth = await login(rig)
    to_load(rig, "o1", "fresh:S", hours=0.001)  # 3.6 s to collect
    await rig.http.post("/api/courier/orders/o1/load", json={}, headers=auth)
    await rig.until(lambda: rig.order_state("o1") == "ready")
    await rig.until(lambda: rig.order_state("o1") == "expired", timeout_s=8)
    listing = await (await rig.http.get("/api/courier/orders", headers=auth)).json()
    assert [o["order"] for o in listing["to_reclaim"]] == ["o1"]
    response = await rig.http.post("/api/courier/orders/o1/reclaim", headers=auth)
    assert response.status == 200 and len((await response.json())["opened"]) == 1
    await rig.until(lambda: rig.order_state("o1") == "reclaimed")
    assert rig.locker.store.read().all("SELECT id FROM compartments WHERE state != 'free'") == []
    reclaimed = [e for e in rig.locker.store.events() if e.kind == "order.reclaimed"]
    assert reclaimed[0].payload["actor"] == "courier:courier-1"


async def test_wrong_and_replayed_codes_are_refused_and_throttled(rig: Rig) -> None:
    code = totp(rig, "courier-1")
    ok = await rig.http.post("/api/staff/login", json={"staff": "courier-1", "code": code})
    assert ok.status == 200
    replay = await rig.http.post("/api/staff/login", json={"staff": "courier-1", "code": code})
    assert (replay.status, (await replay.json())["error"]) == (403, "replayed")
    wrong = await rig.http.post("/api/staff/login", json={"staff": "courier-1",
                                                           "code": "000000"})
    assert wrong.status == 403
    statuses = [(await rig.http.post("/api/staff/login", json={
        "staff": "nobody", "code": "123456"})).status for _ in range(3)]
    assert statuses[-1] == 429  # two free wrong codes, then a 10 s delay (first_delay_s)
    later = totp(rig, "courier-1", offset_steps=1)
    blocked = await rig.http.post("/api/staff/login", json={"staff": "courier-1",
                                                             "code": later})
    assert blocked.status == 429  # even a good code waits


async def test_a_courier_may_not_do_a_technicians_work(rig: Rig) -> None:
    auth = await login(rig)
    response = await rig.http.post("/api/technician/compartments/A1/open",
                                   json={"reason": "cleaning"}, headers=auth)
    assert (response.status, (await response.json())["error"]) == (403, "role")
    assert not rig.boards.received(command="unlock")
    no_session = await rig.http.get("/api/courier/orders")
    assert no_session.status == 401


async def test_a_technician_opens_a_compartment_and_takes_one_out_of_service(rig: Rig) -> None:
    auth = await login(rig, "tech-1")
    response = await rig.http.post("/api/technician/compartments/Z2/open",
                                   json={"reason": "cleaning the shelf"}, headers=auth)
    assert response.status == 200 and len((await response.json())["opened"]) == 1
    opened = [e for e in rig.locker.store.events() if e.kind == "door.opened"]
    assert opened[0].payload["actor"] == "technician:tech-1"
    assert opened[0].payload["reason"] == "maintenance: cleaning the shelf"
    response = await rig.http.post("/api/technician/compartments/Z1/service",
                                   json={"in_service": False, "reason": "broken hinge"},
                                   headers=auth)
    assert response.status == 200
    to_load(rig, "o1", "frozen:M")
    await rig.until(lambda: "door.closed" in rig.kinds())  # Z2 shut again after the cleaning
    courier = await login(rig, "courier-1", offset_steps=-1)
    body = await (await rig.http.post("/api/courier/orders/o1/load", json={},
                                      headers=courier)).json()
    assert body.get("compartments") == ["Z2"], body  # Z1 is out of service
    # putting it back says why too; without a reason nothing changes
    unsaid = await rig.http.post("/api/technician/compartments/Z1/service",
                                 json={"in_service": True, "reason": "  "}, headers=auth)
    assert (unsaid.status, (await unsaid.json())["error"]) == (409, "reason")
    assert rig.locker.store.read().one("SELECT state FROM compartments WHERE id = 'Z1'") == {
        "state": "out_of_service"}
    back = await rig.http.post("/api/technician/compartments/Z1/service",
                               json={"in_service": True, "reason": "hinge replaced"},
                               headers=auth)
    assert back.status == 200
    bank = await (await rig.http.get("/api/technician/compartments", headers=auth)).json()
    z1 = next(c for c in bank["compartments"] if c["id"] == "Z1")
    assert (z1["state"], z1["may_take_out"], z1["level"]) == ("free", True, 1)
    refused = await rig.http.get("/api/technician/compartments", headers=courier)
    assert (refused.status, (await refused.json())["error"]) == (403, "role")


async def test_what_a_screen_reads_by_itself_does_not_keep_a_session_alive(rig: Rig) -> None:
    auth = await login(rig)
    session = rig.locker.staff.sessions[auth["Authorization"].removeprefix("Bearer ")]
    session.last_seen -= 50  # 50 s idle of the rig's 60
    for path in ("/api/courier/orders", "/api/staff/session"):
        assert (await rig.http.get(path, headers=auth)).status == 200
    left = (await (await rig.http.get("/api/staff/session", headers=auth)).json())["ends_in_s"]
    assert 0 < left <= 10
    touched = await (await rig.http.post("/api/staff/session", headers=auth)).json()
    assert touched["ends_in_s"] > 55 and touched["role"] == "courier"
    session.last_seen -= 61
    ended = await rig.http.get("/api/staff/session", headers=auth)
    assert (ended.status, (await ended.json())["error"]) == (401, "session_ended")
