"""Killed while offline: the daemon as a real process (`locker run`), the lock boards in another
process, central stopped. Events made during the outage wait in the outbox; SIGKILL loses none
of them, and once central is back every one arrives exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest
from aiohttp import ClientSession, ClientTimeout

from locker.demo import central_order, enrol
from locker.domain.config import load_config
from locker.domain.staff import create_secret, load_secret
from simulator.central import start_central
from simulator.control import spawn
from simulator.processes import Daemon, free_port
from tests.support.configs import config_text
from tests.support.sync import SYNC, prepare_log


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession(timeout=ClientTimeout(total=10)) as s:
        yield s


async def test_sigkill_while_offline_loses_no_waiting_event(tmp_path: Path,
                                                            session: ClientSession) -> None:
    central = await start_central(tmp_path / "central", admin_token="admin-" + "k" * 24)
    port = central.port
    path = tmp_path / "locker.toml"
    path.write_text(config_text("kerong") + SYNC.format(url=central.api_url)
                    + f"\n[http]\nport = {free_port()}\n")
    config = load_config(path)
    await enrol(session, central, config)
    create_secret(config.staff_secret_file("courier-1"))
    prepare_log(config.database)
    boards = await spawn(path, auto_close_s=0.6)
    daemon = Daemon(path, boards.port, config.http.port, database=config.database)
    try:
        await daemon.start(session)
        first = await central_order(session, central, config.locker_id, "K-1", ("fresh:M",))
        await central_order(session, central, config.locker_id, "K-2", ("frozen:M",))
        await daemon.until_state("K-2", "received")
        await central.stop()

        # offline: a courier loads both, a customer collects one
        code = pyotp.TOTP(load_secret(config.staff_secret_file("courier-1"))).now()
        async with session.post(f"{daemon.url}/api/staff/login", json={
                "staff": "courier-1", "code": code, "screen": "front"}) as answer:
            assert answer.status == 200, await answer.text()
            auth = {"Authorization": f"Bearer {(await answer.json())['token']}"}
        for order_id in ("K-1", "K-2"):
            async with session.post(f"{daemon.url}/api/courier/orders/{order_id}/load",
                                    json={"together": True}, headers=auth) as answer:
                assert answer.status == 200, await answer.text()
            await daemon.until_state(order_id, "ready")
        async with session.post(f"{daemon.url}/api/pickup",
                                json={"code": first["code"], "screen": "front"}) as answer:
            assert answer.status == 200, await answer.text()
        await daemon.until_state("K-1", "collected")

        waiting = {row[0] for row in daemon.query("SELECT id FROM outbox")}
        assert len(waiting) > 10
        await daemon.kill()
        assert waiting <= {row[0] for row in daemon.query("SELECT id FROM outbox")}

        await daemon.start(session)  # central still down: it starts, and the events still wait
        assert waiting <= {row[0] for row in daemon.query("SELECT id FROM outbox")}
        central = await start_central(tmp_path / "central", port=port,
                                      admin_token=central.admin_token)
        async with asyncio.timeout(20):
            while daemon.query("SELECT COUNT(*) FROM outbox")[0][0]:
                await asyncio.sleep(0.1)
        async with session.get(f"{central.url}/admin/lockers/{config.locker_id}/events",
                               headers={"X-Admin-Token": central.admin_token}) as answer:
            received = [e["id"] for e in (await answer.json())["events"]]
        made = [row[0] for row in daemon.query("SELECT id FROM test_emitted ORDER BY n")]
        assert len(received) == len(set(received))
        assert sorted(received) == sorted(made)  # none lost, none twice
        assert waiting <= set(received)
    finally:
        await daemon.stop()
        await boards.stop()
        await central.stop()
