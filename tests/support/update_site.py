"""A locker as it runs on a Pi, for the end-to-end update tests: the daemon a process started
from slots/current/bin/python, the boot guard before each start, and a supervisor loop standing
in for systemd (Restart=on-failure, RestartForceExitStatus=75); the lock boards in another
process on a pseudo-terminal; the reference central in this process, serving the repository."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import ClientError, ClientSession, ClientTimeout

from locker.demo import central_order, enrol
from locker.domain.config import LockerConfig, load_config
from locker.domain.staff import create_secret, load_secret
from locker.release import publish
from locker.slots import install, switch
from simulator.central import RunningCentral, start_central
from simulator.control import spawn
from simulator.processes import free_port
from tests.support.configs import config_text
from tests.support.paths import ROOT
from tests.support.sync import SYNC
from tests.support.updates import ADMIN, N

GUARD = ROOT / "deploy" / "locker-boot"
RESTART_S = 0.3  # RestartSec=, shortened
UPDATE = """
[update]
slots_dir = "slots"
trusted_root = "repo/metadata/1.root.json"
health_deadline_s = {deadline}
customer_quiet_s = 0.5
retry_s = 0.5
"""


def clean_env() -> dict[str, str]:
    """What systemd gives the daemon: no PYTHONPATH pointing into this checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@dataclass
class Run:
    started: float
    exit_code: int | None = None
    ended: float | None = None


@dataclass
class Supervisor:
    """systemd, shortened: guard, then current/bin/python -m locker.cli run; again on exit
    unless the exit was clean (0) or we are stopping."""

    folder: Path
    config: Path
    serial: str
    runs: list[Run] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    stopping: bool = False
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        log = open(self.folder / "daemon.log", "ab")  # noqa: SIM115 (kept open for the loop)
        try:
            while not self.stopping:
                guard = await asyncio.create_subprocess_exec(
                    sys.executable, str(GUARD), "--config", str(self.config), stdout=log,
                    stderr=log, cwd=self.folder, env=clean_env())
                await guard.wait()
                self.process = await asyncio.create_subprocess_exec(
                    str(self.folder / "slots" / "current" / "bin" / "python"), "-P", "-m",
                    "locker.cli", "run", "--config", str(self.config), "--serial-port",
                    self.serial, stdout=log, stderr=log, cwd=self.folder, env=clean_env())
                run = Run(time.monotonic())
                self.runs.append(run)
                run.exit_code = await self.process.wait()
                run.ended = time.monotonic()
                if self.stopping or run.exit_code == 0:
                    return
                await asyncio.sleep(RESTART_S)
        finally:
            log.close()

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        self.stopping = True
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 20)

    def exit_codes(self) -> list[int | None]:
        return [run.exit_code for run in self.runs]


@dataclass
class Site:
    """Everything around one locker: central and its repository, the boards, the files."""

    folder: Path
    config: LockerConfig
    path: Path
    central: RunningCentral
    session: ClientSession
    serial: str
    port: int
    wheels: dict[str, Path]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> dict[str, str]:
        return {"X-Admin-Token": self.central.admin_token}

    @property
    def slots(self) -> Path:
        return self.folder / "slots"

    def publish(self, version: str) -> None:
        publish(self.folder / "repo", self.folder / "keys", self.wheels[version], version)

    async def announce(self, version: str) -> float:
        async with self.session.post(
                f"{self.central.url}/admin/lockers/{self.config.locker_id}/commands",
                headers=self.admin,
                json={"action": "update", "args": {"version": version}}) as answer:
            assert answer.status == 201, await answer.text()
        return time.monotonic()

    async def events(self) -> list[dict[str, Any]]:
        async with self.session.get(
                f"{self.central.url}/admin/lockers/{self.config.locker_id}/events",
                headers=self.admin) as answer:
            return list((await answer.json())["events"])

    async def event(self, kind: str, timeout_s: float = 30.0, **payload: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                for event in await self.events():
                    if event["kind"] == kind and all(event["payload"].get(k) == v
                                                     for k, v in payload.items()):
                        return event
                await asyncio.sleep(0.1)

    async def health(self) -> dict[str, Any] | None:
        """The daemon's /api/health when it answers 200 (in service), else None."""
        try:
            async with self.session.get(f"{self.url}/api/health",
                                        timeout=ClientTimeout(total=1)) as answer:
                return dict(await answer.json()) if answer.status == 200 else None
        except (ClientError, OSError, TimeoutError):
            return None

    async def in_service(self, version: str, timeout_s: float = 30.0) -> float:
        async with asyncio.timeout(timeout_s):
            while True:
                health = await self.health()
                if health is not None and health["version"] == version:
                    return time.monotonic()
                await asyncio.sleep(0.05)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.config.database, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    async def until_state(self, order_id: str, state: str, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while self.query("SELECT state FROM orders WHERE id = ?", (order_id,)) != [(state,)]:
                await asyncio.sleep(0.05)

    async def orders_ready(self, **bags: str) -> dict[str, str]:
        """Orders placed at central (order id: one bag) and loaded by a courier (one session);
        their pickup codes."""
        codes = {}
        order_ids = list(bags)
        for order_id, bag in bags.items():
            placed = await central_order(self.session, self.central, self.config.locker_id,
                                         order_id, (bag,))
            codes[order_id] = str(placed["code"])
        for order_id in order_ids:
            await self.until_state(order_id, "received")
        secret = load_secret(self.config.staff_secret_file("courier-1"))
        async with self.session.post(f"{self.url}/api/staff/login", json={
                "staff": "courier-1", "code": pyotp.TOTP(secret).now(),
                "screen": "front"}) as answer:
            assert answer.status == 200, await answer.text()
            auth = {"Authorization": f"Bearer {(await answer.json())['token']}"}
        for order_id in order_ids:
            async with self.session.post(f"{self.url}/api/courier/orders/{order_id}/load",
                                         json={"together": True}, headers=auth) as answer:
                assert answer.status == 200, await answer.text()
            await self.until_state(order_id, "ready")
        async with self.session.post(f"{self.url}/api/staff/logout", headers=auth) as answer:
            assert answer.status == 200
        return codes

    async def pickup(self, order_id: str, code: str) -> None:
        async with self.session.post(f"{self.url}/api/pickup",
                                     json={"code": code, "screen": "front"}) as answer:
            assert answer.status == 200, await answer.text()
        await self.until_state(order_id, "collected")


@contextlib.asynccontextmanager
async def site(folder: Path, wheels: dict[str, Path], *, deadline_s: float) -> AsyncIterator[Site]:
    """Central serving a repository that holds N, a locker enrolled with it and installed in
    slot a (version N, by the release tool's wheel and the slot installer), the boards."""
    repo = folder / "repo"
    publish(repo, folder / "keys", wheels[N], N)
    central = await start_central(folder / "central", admin_token=ADMIN, updates_dir=repo)
    port = free_port()
    path = folder / "locker.toml"
    path.write_text(config_text("kerong") + SYNC.format(url=central.api_url)
                    + f"\n[http]\nport = {port}\n" + UPDATE.format(deadline=deadline_s))
    config = load_config(path)
    install(folder / "slots", "a", wheels[N], N)
    switch(folder / "slots", "a")
    boards = await spawn(path, auto_close_s=0.6)
    try:
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            await enrol(session, central, config)
            create_secret(config.staff_secret_file("courier-1"))
            yield Site(folder, config, path, central, session, boards.port, port, wheels)
    finally:
        await boards.stop()
        await central.stop()
