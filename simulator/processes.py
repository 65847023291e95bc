"""The daemon (`locker run`) and the reference central (`python -m simulator.central`) as child
processes of this checkout: start one and wait until it answers, stop it (SIGTERM, then SIGKILL),
kill it as a power cut would, and read its SQLite store from outside as a second process would.

One wrapper for both users: the benchmarks (bench/sync.py, bench/pi_budget.py) and the tests that
kill, restart or refuse a daemon (tests/integration, tests/reliability). It lives in simulator/,
next to simulator.control's `spawn` (the simulated boards as a child process), because it is the
one place both can import: bench/ must not import the tests, and tests/ should not depend on the
benchmarks. The daemon itself never imports it. A failure to start raises SystemExit with the
daemon's last words, which a benchmark prints and a test reports as its failure.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import ClientSession

from locker.domain.codes import box_public_key, create_keys, create_private_file, load_box_key
from locker.domain.config import LockerConfig
from locker.domain.haccp import public_pem, record_key
from locker.domain.staff import load_secret
from simulator.pki import Pki

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_only(database: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One query on a SQLite file another process writes (WAL: readers never block it)."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


async def terminate(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class Central:
    """`python -m simulator.central` in a child process; stop() and start() keep its folder and
    its admin token."""

    data: Path
    port: int
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: asyncio.subprocess.Process | None = None
    tls: Pki | None = None  # serve https with this certificate

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        tls = [] if self.tls is None else [
            "--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        return [sys.executable, "-m", "simulator.central", "--data", str(self.data),
                "--port", str(self.port), "--admin-token", self.admin_token, *tls]

    async def start(self) -> float:
        """Start it; returns the monotonic time at which it said it listens."""
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, env=ENV, stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        async with asyncio.timeout(15):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise SystemExit("central did not start")
                if line.startswith("CENTRAL "):
                    return time.monotonic()

    async def stop(self) -> None:
        if self.process is not None:
            await terminate(self.process, 10)
        self.process = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return read_only(self.data / "central.db", sql, params)

    async def admin(self, session: ClientSession, method: str, path: str,
                    body: Any = None) -> Any:
        async with session.request(method, f"{self.url}/admin{path}", json=body,
                                   headers={"X-Admin-Token": self.admin_token}) as answer:
            data = await answer.json()
            if answer.status not in (200, 201):
                raise SystemExit(f"central refused {method} {path}: {data}")
        return data

    async def enrol(self, session: ClientSession, config: LockerConfig) -> None:
        """Provision the locker at central (as locker/demo.py's enrol): its code keys made here, the
        box key given to central, its token and central's command key in the files its config
        names."""
        assert config.central is not None
        create_keys(config)
        box_key = box_public_key(load_box_key(config.box_key_file))
        issued = await self.admin(session, "POST", "/lockers",
                                  {"id": config.locker_id, "box_key": box_key,
                                   "record_key": public_pem(record_key(config))})
        create_private_file(config.central.token_file, issued["token"])
        config.central.command_key_file.write_text(issued["command_public_key"])


class Daemon:
    """`locker [OPTIONS] run` in a child process; its log read from a pipe (so not written to
    disk), the last lines kept and the bytes counted. `env` is added to the environment
    (libfaketime's, say); `database`, the store its config names, for `query`."""

    def __init__(self, config: Path, serial: str, port: int, *, database: Path | None = None,
                 options: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 start_timeout_s: float = 20, stop_timeout_s: float = 10) -> None:
        self.database = database
        self.argv = [sys.executable, "-m", "locker.cli", *options, "run", "--config",
                     str(config), "--serial-port", serial]
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**ENV, **(env or {})}
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: asyncio.subprocess.Process | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        self.log_bytes = 0
        self._reader: asyncio.Task[None] | None = None

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, env=self.env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)

    async def refused(self, timeout_s: float = 20.0) -> tuple[int, str]:
        """Start it expecting it to refuse to run: its exit code and what it said."""
        process = await self._spawn()
        async with asyncio.timeout(timeout_s):
            _, err = await process.communicate()
        return process.returncode if process.returncode is not None else -1, err.decode()

    async def start(self, session: ClientSession, timeout_s: float | None = None) -> float:
        """Start it and wait for /api/health to say ready (store open, doors reconciled);
        returns the seconds that took."""
        self.process = await self._spawn()
        self._reader = asyncio.create_task(self._read_log())
        started = time.monotonic()
        async with asyncio.timeout(self.start_timeout_s if timeout_s is None else timeout_s):
            while True:
                if self.process.returncode is not None:
                    await asyncio.sleep(0.2)  # the rest of its last words
                    raise SystemExit("the daemon stopped:\n" + "\n".join(list(self.log)[-25:]))
                with contextlib.suppress(OSError):
                    async with session.get(f"{self.url}/api/health") as answer:
                        if answer.status == 200:
                            return time.monotonic() - started
                await asyncio.sleep(0.05)

    async def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log_bytes += len(line)
            self.log.append(line.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def login(self, session: ClientSession, config: LockerConfig,
                    staff: str) -> dict[str, str]:
        """Log a staff member in with a TOTP code of theirs; the headers that carry the session."""
        totp = pyotp.TOTP(load_secret(config.staff_secret_file(staff))).now()
        async with session.post(f"{self.url}/api/staff/login", json={
                "staff": staff, "code": totp, "screen": "bench"}) as answer:
            if answer.status != 200:
                raise SystemExit(f"courier login refused: {await answer.text()}")
            return {"Authorization": f"Bearer {(await answer.json())['token']}"}

    async def kill(self) -> None:
        """A power cut, as far as the daemon can tell."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM (then SIGKILL after `stop_timeout_s`), and the rest of its log read."""
        if self.process is not None:
            await terminate(self.process, self.stop_timeout_s)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement on its store, from outside, as another process (the order system, say)
        would run it, whether the daemon runs or not."""
        assert self.database is not None, "Daemon(..., database=) to query its store"
        db = sqlite3.connect(self.database, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def state(self, order_id: str) -> str | None:
        """An order's state in its store; None before the order arrived."""
        rows = self.query("SELECT state FROM orders WHERE id = ?", (order_id,))
        return str(rows[0][0]) if rows else None

    async def until_state(self, order_id: str, state: str, timeout_s: float = 15) -> None:
        async with asyncio.timeout(timeout_s):
            while self.state(order_id) != state:
                await asyncio.sleep(0.05)
