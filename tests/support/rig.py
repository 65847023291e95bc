"""The daemon with its real board driver, talking through a real pseudo-terminal to the
simulated boards (in this process, so a test can read their history and inject faults), and its
HTTP app on a test client: what the `make_rig` and `rig` fixtures (tests/conftest.py) give."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pyotp
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from hardware.boards import BoardLockDriver
from locker.domain.codes import create_keys, create_private_file
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.orders import AddedOrder, add_ready_order, parse_bag
from locker.domain.staff import create_secret, load_secret
from simulator.boards import SimulatedBoards
from tests.support.configs import config_text
from tests.support.waiting import until

OPS_TOKEN = "test-ops-token-0123456789abcdef"


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
        await until(check, timeout_s, poll_s=0.02)


async def running_rig(folder: Path, protocol: str = "kerong", auto_close_s: float | None = 0.6,
                      edit: Callable[[str], str] = lambda t: t,
                      before_start: Callable[[SimulatedBoards], None] = lambda b: None
                      ) -> AsyncIterator[Rig]:
    """A rig on the small test locker's config (for `protocol`, changed by `edit`) in `folder`.

    The simulated person closes a door after the lock's pulse (500 ms) is over, as people do:
    the driver drops a second unlock that lands inside the first one's pulse."""
    path = folder / f"{protocol}.toml"
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
