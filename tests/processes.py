"""`locker run` as a child process, for the tests that kill it: start it, wait until its HTTP
app answers, kill or stop it, and read its store from outside as a second process would."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from locker.codes import create_keys, create_private_file
from locker.config import LockerConfig, load_config
from locker.daemon import sync_compartments
from locker.staff import create_secret
from locker.store import Store
from tests.integration.conftest import OPS_TOKEN
from tests.integration.test_central_sync import LOG_EVERY_EVENT

ROOT = Path(__file__).resolve().parents[1]


class LockerProcess:
    def __init__(self, config: Path, serial: str, port: int, database: Path,
                 env: dict[str, str] | None = None) -> None:
        self.config_path, self.serial, self.port = config, serial, port
        self.database = database
        self.env = env or {}  # added to the environment (libfaketime's, say)
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{port}"

    async def _spawn(self, stderr: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "locker.cli", "run", "--config", str(self.config_path),
            "--serial-port", self.serial, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr, env={**os.environ, "PYTHONPATH": str(ROOT), **self.env})

    async def refused(self, timeout_s: float = 20.0) -> tuple[int, str]:
        """Start it expecting it to refuse: its exit code and what it said."""
        process = await self._spawn(asyncio.subprocess.PIPE)
        async with asyncio.timeout(timeout_s):
            _, err = await process.communicate()
        return process.returncode if process.returncode is not None else -1, err.decode()

    async def start(self, session: ClientSession, timeout_s: float = 20.0) -> None:
        """Start it and wait for /api/health to say ready (store open, doors reconciled)."""
        self.process = await self._spawn(asyncio.subprocess.DEVNULL)
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    async with session.get(f"{self.url}/api/health") as answer:
                        if answer.status == 200:
                            return
                except OSError:
                    pass
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """A power cut, as far as the daemon can tell."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.database, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


def prepare(path: Path, text: str) -> tuple[LockerConfig, Store]:
    """A locker's config at `path` with its keys, ops token and staff secrets, and the store the
    "order system" writes from another process, with a trigger that logs every event ever
    committed (so a test sees what a killed daemon committed, even what it deleted since)."""
    import time

    path.write_text(text)
    config = load_config(path)
    create_keys(config)
    create_private_file(config.ops_token_file, OPS_TOKEN)
    for member in config.staff.members:
        create_secret(config.staff_secret_file(member.id))
    store = Store(config.database)
    sync_compartments(store, config, time.time())
    for statement in LOG_EVERY_EVENT:
        store.db.execute(statement)
    return config, store
