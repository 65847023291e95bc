"""The ops API over real HTTP, the doors on the simulated boards: a forced door's alarm with its
severity and times, open after the door closed until acknowledged; bad acknowledgements refused
with nothing changed; a silent board's doors reported unknown."""

from __future__ import annotations

from typing import Any

from tests.support.rig import OPS_TOKEN, Rig

OPS = {"X-Ops-Token": OPS_TOKEN}


async def state(rig: Rig) -> dict[str, Any]:
    response = await rig.http.get("/api/ops/state", headers=OPS)
    assert response.status == 200
    return dict(await response.json())


async def ack(rig: Rig, alarm: object, body: object) -> tuple[int, dict[str, Any]]:
    response = await rig.http.post(f"/api/ops/alarms/{alarm}/ack", json=body, headers=OPS)
    return response.status, await response.json()


async def test_a_forced_doors_alarm_waits_for_an_acknowledgement(rig: Rig) -> None:
    rig.boards.force("A2")
    await rig.until(lambda: "alarm.door_forced" in rig.kinds())
    (alarm,) = [a for a in (await state(rig))["alarms"] if a["kind"] == "door_forced"]
    assert (alarm["severity"], alarm["security"], alarm["state"]) == ("page", True, "active")
    assert alarm["raised_at"] > 0 and alarm["cleared_at"] is None
    rig.boards.close("A2")
    await rig.until(lambda: rig.kinds().count("alarm.door_forced") == 2)  # raised, cleared
    (alarm,) = [a for a in (await state(rig))["alarms"] if a["kind"] == "door_forced"]
    assert alarm["state"] == "awaiting_ack" and alarm["cleared_at"] >= alarm["raised_at"]
    before = len(rig.kinds())
    for body, status, error in (({"note": "x"}, 400, "bad_request"),
                                ({"note": 5}, 400, "bad_request"),
                                ({"note": "seen", "extra": 1}, 400, "bad_request"),
                                ({"note": "seen", "by": "b" * 65}, 400, "bad_request")):
        got_status, got = await ack(rig, alarm["id"], body)
        assert (got_status, got["error"]) == (status, error), body
    bad_status, bad = await ack(rig, "nope", {"note": "seen it"})
    assert (bad_status, bad["error"]) == (400, "bad_request")
    missing_status, missing = await ack(rig, 9999, {"note": "seen it"})
    assert (missing_status, missing["error"]) == (409, "no_alarm")
    assert len(rig.kinds()) == before  # nothing changed
    status, answer = await ack(rig, alarm["id"], {"note": "seen on camera", "by": "Sam"})
    assert status == 200 and answer == {"alarm": alarm["id"], "acknowledged": True,
                                        "closed": True}
    assert not [a for a in (await state(rig))["alarms"] if a["kind"] == "door_forced"]
    twice_status, twice = await ack(rig, alarm["id"], {"note": "seen again"})
    assert (twice_status, twice["error"]) == (409, "acknowledged")
    (event,) = [e for e in rig.locker.store.events() if e.kind == "alarm.acknowledged"]
    assert event.payload["actor"] == "ops:Sam" and event.payload["note"] == "seen on camera"


async def test_a_silent_boards_doors_are_unknown(rig: Rig) -> None:
    doors = {c["id"]: c["door"] for c in (await state(rig))["compartments"]}
    assert doors["Z1"] == "locked"
    rig.boards.set_silent(1)  # Z1 and Z2 are on board 1
    await rig.until(lambda: bool(rig.locker.monitor.offline_boards), timeout_s=10)
    now = {c["id"]: (c["door"], c["door_last_seen"]) for c in (await state(rig))["compartments"]}
    assert now["Z1"] == ("unknown", "locked") and now["A1"] == ("locked", "locked")
