"""The daemon with its real board driver, talking through a real pseudo-terminal to the
simulated boards (in this process, so a test can read their history and inject faults)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from hardware.boards import BoardLockDriver
from locker.codes import create_keys, create_private_file
from locker.config import LockerConfig, load_config
from locker.daemon import Locker
from locker.orders import AddedOrder, add_ready_order, parse_bag
from locker.staff import create_secret, load_secret
from simulator.boards import SimulatedBoards
from tests.conftest import SMALL_CONFIG

OPS_TOKEN = "test-ops-token-0123456789abcdef"
BUS = {
    "kerong": ('protocol = "kerong"\nbaud = 19200', ("address = 0", "address = 1")),
    "generic": ('protocol = "generic"\nbaud = 9600', ("address = 1", "address = 2")),
    "winnsen": ('protocol = "winnsen"\nbaud = 9600', ("address = 0", "address = 1")),
}


def config_text(protocol: str) -> str:
    line, (first, second) = BUS[protocol]
    text = SMALL_CONFIG.replace('protocol = "kerong"\nbaud = 19200', line)
    text = text.replace("address = 0", first, 1).replace("address = 1", second, 1)
    if protocol == "generic":  # generic boards are numbered from 1
        text = text.replace("board = 1,", "board = 2,").replace("board = 0,", "board = 1,")
    return text


@dataclass
class Rig:
    config: LockerConfig
    boards: SimulatedBoards
    locker: Locker
    driver: BoardLockDriver
    http: TestClient

    def add(self, order_id: str, *bags: str, hours: float | None = None) -> AddedOrder:
        return add_ready_order(self.locker.store, self.config, self.locker.codes,
                               self.locker.clock.now(), order_id, [parse_bag(b) for b in bags],
                               window_hours=hours)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.locker.store.events()]

    def order_state(self, order_id: str) -> str:
        row = self.locker.store.read().one("SELECT state FROM orders WHERE id = ?", (order_id,))
        assert row is not None
        return str(row["state"])

    async def pickup(self, code: str, screen: str = "front") -> tuple[int, dict[str, object]]:
        response = await self.http.post("/api/pickup", json={"code": code, "screen": screen})
        return response.status, await response.json()

    async def login(self, staff_id: str = "courier-1") -> dict[str, str]:
        """A staff session on the front screen: the headers its calls carry."""
        secret = load_secret(self.config.staff_secret_file(staff_id))
        code = pyotp.TOTP(secret).at(self.locker.clock.now())
        response = await self.http.post("/api/staff/login", json={
            "staff": staff_id, "code": code, "screen": "front"})
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}

    async def until(self, check: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not check():
                await asyncio.sleep(0.02)


@pytest.fixture
def make_rig(tmp_path: Path) -> Callable[..., AsyncIterator[Rig]]:
    # the simulated person closes a door after the lock's pulse (500 ms) is over, as people do:
    # the driver drops a second unlock that lands inside the first one's pulse
    async def make(protocol: str = "kerong", auto_close_s: float | None = 0.6,
                   edit: Callable[[str], str] = lambda t: t,
                   before_start: Callable[[SimulatedBoards], None] = lambda b: None
                   ) -> AsyncIterator[Rig]:
        path = tmp_path / f"{protocol}.toml"
        path.write_text(edit(config_text(protocol)))
        base = load_config(path)
        create_keys(base)
        for member in base.staff.members:
            create_secret(base.staff_secret_file(member.id))
        create_private_file(base.ops_token_file, OPS_TOKEN)
        boards = SimulatedBoards(base, auto_close_s=auto_close_s)
        await boards.start()
        before_start(boards)
        config = dataclasses.replace(
            base, bus=dataclasses.replace(base.bus, port=boards.port))  # type: ignore[arg-type]
        assert config.bus is not None
        driver = BoardLockDriver(config.bus, config.compartments)
        locker = Locker(config, driver)
        http = TestClient(TestServer(create_app(locker)))
        await http.start_server()
        try:
            yield Rig(config, boards, locker, driver, http)
        finally:
            await http.close()
            await boards.stop()

    return make


@pytest.fixture
async def rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    async for r in make_rig("kerong"):
        yield r
