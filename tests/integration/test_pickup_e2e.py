"""A customer collects an order: HTTP -> daemon -> real driver -> pseudo-terminal -> simulated
boards -> doors spring open -> the simulated customer closes them -> order collected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from hardware.boards import BoardLockDriver
from locker.domain.daemon import Locker
from locker.domain.orders import add_ready_order, parse_bag
from simulator.boards import SimulatedBoards
from tests.support.codes import code_no
from tests.support.rig import Rig


@pytest.mark.parametrize("protocol", ["kerong", "generic", "winnsen"])
async def test_a_customer_collects_a_three_zone_order(
        make_rig: Callable[..., AsyncIterator[Rig]], protocol: str) -> None:
    async for rig in make_rig(protocol):
        order = rig.add("o1", "ambient:M", "fresh:S", "frozen:M")
        status, body = await rig.pickup(order.code)
        assert status == 200, body
        opened = sorted(d["compartment"] for d in body["opened"])  # type: ignore[attr-defined]
        assert opened == sorted(cid for cid, _ in order.compartments)
        # the simulated doors really opened, each after an unlock frame on the wire
        for cid in opened:
            assert rig.boards.doors.times(cid, "door", "open"), f"{cid} never opened"
        await rig.until(lambda r=rig: r.order_state("o1") == "collected")
        kinds = rig.kinds()
        assert kinds.count("door.opened") == 3 and kinds.count("door.closed") == 3
        assert "door.forced" not in kinds and "door.jammed" not in kinds
        # nothing else opened
        others = {c.id for c in rig.config.compartments} - set(opened)
        assert not any(rig.boards.doors.times(cid, "door", "open") for cid in others)


async def test_all_doors_of_an_order_are_unlocked_together(rig: Rig) -> None:
    order = rig.add("o1", "ambient:M", "fresh:S", "frozen:M")
    await rig.pickup(order.code)
    releases = [rig.boards.doors.times(cid, "latch", "released")[0]
                for cid, _ in order.compartments]
    # three unlock transactions back to back on a 19200 baud line: well within 100 ms
    assert max(releases) - min(releases) < 100_000_000


async def test_wrong_expired_and_reused_codes_open_nothing(rig: Rig) -> None:
    order = rig.add("o1", "fresh:S")
    short = rig.add("o2", "ambient:M", hours=0.0001)
    wrong = code_no((int(order.code[:10]) + 1) % 10**10)
    assert (await rig.pickup(wrong))[0] == 403
    await rig.until(lambda: rig.order_state("o2") == "expired")
    status, body = await rig.pickup(short.code)
    assert (status, body["error"]) == (403, "expired")
    assert not rig.boards.received(command="unlock")
    assert (await rig.pickup(order.code))[0] == 200
    status, body = await rig.pickup(order.code)
    assert (status, body["error"]) == (403, "used")
    assert len(rig.boards.received(command="unlock")) == 1


async def test_wrong_codes_are_throttled(rig: Rig) -> None:
    order = rig.add("o1", "fresh:S")
    statuses = [(await rig.pickup("99999999992"))[0] for _ in range(4)]
    assert statuses == [403, 403, 403, 429]
    status, body = await rig.pickup(order.code)
    assert status == 429 and body["retry_after_s"] > 0
    assert not rig.boards.received(command="unlock")


async def test_a_board_that_stops_answering_is_offline_and_the_others_keep_working(
        rig: Rig) -> None:
    rig.boards.set_silent(1)
    await rig.until(lambda: "alarm.board_offline" in rig.kinds())
    # board 0 still serves a pickup while board 1 is silent
    order = rig.add("o1", "ambient:M")
    status, body = await rig.pickup(order.code)
    assert status == 200 and body["failed"] == []
    await rig.until(lambda: rig.order_state("o1") == "collected")
    # an order on board 1 is refused before anything is spent: no pulse, the code still works
    frozen = rig.add("o2", "frozen:M")
    status, body = await rig.pickup(frozen.code)
    assert status == 503 and body["error"] == "temporarily_unavailable"
    assert body["compartments"] == [cid for cid, _ in frozen.compartments]
    assert rig.order_state("o2") == "ready"
    assert [f.board for f in rig.boards.received(command="unlock")] == [0]  # o1 only
    rig.boards.answer(1)
    await rig.until(lambda: any(e.kind == "alarm.board_offline" and e.payload["state"] ==
                                "cleared" for e in rig.locker.store.events()))
    assert rig.kinds().count("alarm.board_offline") == 2  # one raised, one cleared: no flood
    status, body = await rig.pickup(frozen.code)  # the same code, now that board 1 is back
    assert status == 200 and body["failed"] == []
    await rig.until(lambda: rig.order_state("o2") == "collected")


async def test_a_jammed_door_raises_an_alarm_and_the_code_works_again(rig: Rig) -> None:
    order = rig.add("o1", "frozen:M")
    [(cid, _)] = order.compartments
    rig.boards.jam(cid)
    status, _body = await rig.pickup(order.code)
    assert status == 200  # the board acknowledged the pulse ...
    assert rig.boards.doors.times(cid, "latch", "released")
    assert not rig.boards.doors.times(cid, "door", "open")  # ... but the door stayed shut
    await rig.until(lambda: "alarm.door_jammed" in rig.kinds(), timeout_s=6)
    await rig.until(lambda: rig.order_state("o1") == "ready")  # nothing came out
    assert "order.pickup_interrupted" in rig.kinds()
    rig.boards.unjam(cid)
    status, _body = await rig.pickup(order.code)
    assert status == 200
    await rig.until(lambda: rig.order_state("o1") == "collected")
    cleared = [e for e in rig.locker.store.events() if e.kind == "alarm.door_jammed"]
    assert [e.payload["state"] for e in cleared] == ["raised", "cleared"]


async def test_a_forced_door_raises_an_alarm(rig: Rig) -> None:
    rig.boards.force("A2")
    await rig.until(lambda: "alarm.door_forced" in rig.kinds())
    events = [e for e in rig.locker.store.events() if e.kind == "door.forced"]
    assert [e.compartment_id for e in events] == ["A2"]


async def test_garbage_on_the_serial_line_costs_nothing(rig: Rig) -> None:
    order = rig.add("o1", "ambient:M", "frozen:M")
    for _ in range(5):
        rig.boards.inject_noise(40)
    rig.boards.corrupt_next_replies(2)
    status, body = await rig.pickup(order.code)
    assert status == 200 and body["failed"] == []
    await rig.until(lambda: rig.order_state("o1") == "collected")
    assert "door.forced" not in rig.kinds()
    assert "alarm.board_offline" not in rig.kinds()


async def test_bad_input_at_the_api_changes_nothing_on_the_wire(rig: Rig) -> None:
    rig.add("o1", "ambient:M")
    response = await rig.http.post("/api/pickup", data=b'{"code": ',
                                   headers={"Content-Type": "application/json"})
    assert response.status == 400
    response = await rig.http.post("/api/pickup", data=b"x" * 100_000,
                                   headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert not rig.boards.received(command="unlock")


async def test_a_restart_mid_collection_reconciles_with_the_boards(
        make_rig: Callable[..., AsyncIterator[Rig]]) -> None:
    async for rig in make_rig("kerong", auto_close_s=None):
        order = rig.add("o1", "ambient:M", "fresh:S")
        assert (await rig.pickup(order.code))[0] == 200
        await rig.until(lambda r=rig: r.kinds().count("door.opened") == 2)
        await rig.http.close()  # the daemon stops; the boards (and the doors) stay as they are
        for cid, _ in order.compartments:
            rig.boards.close(cid)  # the customer closes the doors while it is down
        rig.boards.force("Z2")  # and somebody forces a door
        unlocks_before = len(rig.boards.received(command="unlock"))
        again = Locker(rig.config, BoardLockDriver(rig.config.bus, rig.config.compartments))
        await again.start()
        try:
            row = again.store.read().one("SELECT state FROM orders WHERE id = 'o1'")
            assert row is not None and row["state"] == "collected"
            forced = [e.compartment_id for e in again.store.events() if e.kind == "door.forced"]
            assert forced == ["Z2"]
            assert len(rig.boards.received(command="unlock")) == unlocks_before  # nothing re-sent
        finally:
            await again.stop()


async def test_an_unplugged_adapter_is_an_alarm_and_the_port_comes_back(tmp_path, config_path
                                                                       ) -> None:
    """The serial port itself disappears (USB adapter pulled) and returns at the same path."""
    import dataclasses

    from locker.domain.config import load_config

    link = str(tmp_path / "ttyLOCKER")
    base = load_config(config_path)
    boards = SimulatedBoards(base, auto_close_s=0.6, link=link)
    await boards.start()
    assert base.bus is not None
    config = dataclasses.replace(base, bus=dataclasses.replace(base.bus, port=link))
    locker = Locker(config, BoardLockDriver(config.bus, config.compartments))  # type: ignore[arg-type]
    await locker.start()
    try:
        await boards.stop()  # the adapter is gone
        kinds = lambda: [e.kind for e in locker.store.events()]  # noqa: E731
        async with asyncio.timeout(5):
            while kinds().count("alarm.board_offline") < 2:
                await asyncio.sleep(0.05)
        boards = SimulatedBoards(base, auto_close_s=0.6, link=link)  # plugged back in
        await boards.start()
        async with asyncio.timeout(8):
            while sum(1 for e in locker.store.events() if e.kind == "alarm.board_offline"
                      and e.payload["state"] == "cleared") < 2:
                await asyncio.sleep(0.05)
        order = add_ready_order(locker.store, config, locker.codes, locker.clock.now(), "o1",
                                [parse_bag("frozen:M")])
        result = await locker.pickup.collect(order.code)
        assert result.failed == [] and len(result.opened) == 1
    finally:
        await locker.stop()
        await boards.stop()


@pytest.mark.parametrize("protocol", ["generic", "winnsen"])
async def test_an_unlock_whose_answer_is_lost_is_never_sent_twice(
        make_rig: Callable[..., AsyncIterator[Rig]], protocol: str) -> None:
    async for rig in make_rig(protocol):
        order = rig.add("o1", "frozen:M")
        def garble_the_unlock_answer(record: object, boards: SimulatedBoards = rig.boards) -> None:
            if getattr(record, "direction", "") == "rx" and getattr(record, "command", "") == (
                    "unlock"):
                boards.corrupt_next_replies(1)  # the board pulses, its answer is garbled

        rig.boards.frame_listeners.append(garble_the_unlock_answer)
        status, body = await rig.pickup(order.code)
        # the door did open for that pulse: the answer waited for it, and it counts as opened
        assert status == 200 and body["failed"] == [] and len(body["opened"]) == 1
        assert len(rig.boards.received(command="unlock")) == 1  # one pulse, never a second
        await rig.until(lambda r=rig: r.order_state("o1") == "collected")
        assert "door.forced" not in rig.kinds() and "alarm.unlock_failed" not in rig.kinds()


async def test_a_door_change_the_store_could_not_take_is_reported_again(rig: Rig) -> None:
    monitor = rig.locker.monitor
    seen = monitor.door_sensed
    failures = []

    def fails_once(compartment_id: str, sense: object) -> None:
        if not failures:
            failures.append(compartment_id)
            raise OSError("disk full")
        seen(compartment_id, sense)  # type: ignore[arg-type]

    monitor.door_sensed = fails_once  # type: ignore[method-assign]
    rig.boards.force("A2")
    await rig.until(lambda: "door.forced" in rig.kinds())
    assert failures == ["A2"]
