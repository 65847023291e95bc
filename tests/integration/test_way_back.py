"""Every fault has a way back, through the real pty: a board silent before the code and revived
after, a dead board at start, a lost acknowledgement, the locker's own faults holding a window,
and requests that waited (a busy store, an old screen request, a frozen daemon) doing nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout

from locker.domain.codes import create_keys, create_private_file, load_codes
from locker.domain.config import load_config
from locker.domain.daemon import sync_compartments
from locker.domain.orders import add_ready_order, parse_bag
from locker.domain.store import Store
from simulator.control import spawn
from simulator.processes import Daemon, free_port
from tests.support.configs import SMALL_CONFIG
from tests.support.rig import OPS_TOKEN, Rig


def window_end(rig: Rig, order_id: str) -> float:
    row = rig.locker.store.read().one("SELECT window_end FROM orders WHERE id = ?", (order_id,))
    assert row is not None
    return float(row["window_end"])


async def test_an_order_across_two_boards_opens_whole_or_not_at_all(rig: Rig) -> None:
    order = rig.add("o1", "ambient:M", "frozen:M")  # board 0 and board 1
    rig.boards.set_silent(1)
    await rig.until(lambda: "alarm.board_offline" in rig.kinds())
    status, body = await rig.pickup(order.code)
    assert status == 503 and body["error"] == "temporarily_unavailable"
    assert "your code still works" in str(body["message"])
    assert rig.boards.received(command="unlock") == []  # not even the reachable door
    assert rig.order_state("o1") == "ready"
    assert rig.locker.store.read().all("SELECT * FROM authorisations") == []
    rig.boards.answer(1)
    await rig.until(lambda: not rig.locker.monitor.offline_boards)
    status, body = await rig.pickup(order.code)
    assert status == 200 and len(body["opened"]) == 2 and body["failed"] == []
    await rig.until(lambda: rig.order_state("o1") == "collected")


async def test_a_board_dead_at_start_is_not_ready_and_opens_nothing_until_it_answers(
        make_rig: Callable[..., AsyncIterator[Rig]]) -> None:
    async for rig in make_rig(before_start=lambda boards: boards.set_silent(1)):
        health = await rig.http.get("/api/health")
        body = await health.json()
        assert health.status == 503 and body["ready"] is False and body["started"] is True
        assert body["boards_offline"] == ["board 1"]  # said at once, not after a few polls
        assert "alarm.board_offline" in rig.kinds()
        frozen = rig.add("o1", "frozen:M")
        status, answer = await rig.pickup(frozen.code)
        assert status == 503 and answer["error"] == "temporarily_unavailable"
        assert rig.boards.received(command="unlock") == []
        rig.boards.answer(1)
        await rig.until(lambda r=rig: not r.locker.monitor.offline_boards)
        assert (await rig.http.get("/api/health")).status == 200
        status, answer = await rig.pickup(frozen.code)
        assert status == 200 and answer["failed"] == []


async def test_a_lost_acknowledgement_is_answered_by_the_door(rig: Rig) -> None:
    order = rig.add("o1", "fresh:M")
    rig.boards.lose_unlock_replies(1, replies=3)  # K: the status reads after the pulse, retries too
    status, body = await rig.pickup(order.code)
    assert status == 200 and len(body["opened"]) == 1 and body["failed"] == []
    assert len(rig.boards.received(command="unlock")) == 1
    await rig.until(lambda: rig.order_state("o1") == "collected")
    assert "alarm.unlock_failed" not in rig.kinds()


async def test_a_board_offline_holds_the_window_and_gives_the_time_back(rig: Rig) -> None:
    order = rig.add("o1", "frozen:M")
    before = window_end(rig, "o1")
    rig.boards.set_silent(1)
    await rig.until(lambda: "order.held" in rig.kinds())
    await asyncio.sleep(2.0)
    rig.boards.answer(1)
    await rig.until(lambda: "order.window_extended" in rig.kinds())
    assert window_end(rig, "o1") >= before + 2.0
    [extended] = [e for e in rig.locker.store.events() if e.kind == "order.window_extended"]
    assert extended.payload["actor"] == "locker" and "board_offline" in extended.payload["reason"]
    status, _ = await rig.pickup(order.code)
    assert status == 200


async def test_a_request_that_waited_for_a_busy_store_does_nothing(
        make_rig: Callable[..., AsyncIterator[Rig]]) -> None:
    async for rig in make_rig(edit=lambda t: t + "\n[http]\nstale_request_s = 1\n"):
        order = rig.add("o1", "ambient:M")
        other = sqlite3.connect(rig.config.database, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # the CLI, say, holding the write lock
        releaser = threading.Timer(2.0, other.commit)
        releaser.start()
        try:
            status, body = await rig.pickup(order.code)
        finally:
            releaser.join()
            other.close()
        assert status == 408 and body["error"] == "stale_request"
        assert rig.boards.received(command="unlock") == [] and rig.order_state("o1") == "ready"
        await asyncio.sleep(1.2)  # the customer reads the answer (a request at once after the
        # store held the daemon up may have waited during it, and is refused too)
        status, body = await rig.pickup(order.code)  # typed again: it works
        assert status == 200 and body["failed"] == []


async def test_a_request_the_screen_sent_long_ago_does_nothing(rig: Rig) -> None:
    order = rig.add("o1", "ambient:M")
    asked = (time.time() - 30) * 1000  # the kiosk asked 30 s ago (a slow network)
    response = await rig.http.post("/api/pickup", json={"code": order.code},
                                   headers={"X-Asked-At": f"{asked:.0f}"})
    body = await response.json()
    assert response.status == 408 and body["error"] == "stale_request"
    assert rig.boards.received(command="unlock") == [] and rig.order_state("o1") == "ready"
    fresh = await rig.http.post("/api/pickup", json={"code": order.code},
                                headers={"X-Asked-At": f"{time.time() * 1000:.0f}"})
    assert fresh.status == 200


async def test_a_pickup_sent_to_a_frozen_daemon_does_nothing_when_it_wakes(
        tmp_path: Path) -> None:
    """SIGSTOP the daemon, type a code (the kiosk gives up), SIGCONT: no door opens behind the
    customer, and the code still works."""
    http_port = free_port()
    path = tmp_path / "locker.toml"
    path.write_text(SMALL_CONFIG + f"\n[http]\nport = {http_port}\nstale_request_s = 2\n")
    config = load_config(path)
    create_keys(config)
    create_private_file(config.ops_token_file, OPS_TOKEN)
    store = Store(config.database)
    sync_compartments(store, config, time.time())
    boards = await spawn(path, auto_close_s=0.6)
    daemon = Daemon(path, boards.port, http_port, database=config.database)
    try:
        async with ClientSession() as session:
            await daemon.start(session)
            codes = load_codes(config)
            added = add_ready_order(store, config, codes, time.time(), "o1",
                                    [parse_bag("ambient:M")])
            assert daemon.process is not None
            os.kill(daemon.process.pid, signal.SIGSTOP)
            try:
                async with session.post(f"{daemon.url}/api/pickup", json={"code": added.code},
                                        timeout=ClientTimeout(total=1.0)):
                    raise AssertionError("a frozen daemon answered")
            except TimeoutError:
                pass  # the kiosk gave up; the request sits in the daemon's socket
            await asyncio.sleep(4.0)
            os.kill(daemon.process.pid, signal.SIGCONT)
            await asyncio.sleep(1.5)
            history = await boards.client.history()
            assert [d for d in history["doors"] if d["what"] == "unlock"] == []
            assert daemon.query("SELECT state FROM orders WHERE id = 'o1'") == [("ready",)]
            assert daemon.query("SELECT COUNT(*) FROM authorisations") == [(0,)]
            async with session.post(f"{daemon.url}/api/pickup",
                                    json={"code": added.code}) as answer:
                assert answer.status == 200  # the customer who tries again gets the goods
            await daemon.stop()
    finally:
        if daemon.process is not None and daemon.process.returncode is None:
            os.kill(daemon.process.pid, signal.SIGCONT)
            daemon.process.kill()
        await boards.stop()
        store.close()
