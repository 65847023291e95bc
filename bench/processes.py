"""What the benchmarks that run the locker as in the field share: the reference central and the
daemon as child processes, the store read from outside, /proc figures, a free port, polling, and
a TCP proxy that counts the bytes between the locker and central.

Imported as `bench.processes` by bench/sync.py and bench/pi_budget.py, which put the repository
root on sys.path first (bench/ has no __init__.py: a namespace package). Not a benchmark itself:
`./dev bench` runs it too, and it does nothing.
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

from locker.codes import box_public_key, create_keys, create_private_file, load_box_key
from locker.config import LockerConfig
from locker.haccp import public_pem, record_key
from locker.staff import load_secret
from simulator.pki import Pki

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mount_of(path: Path) -> str:
    """The filesystem a path lives on, from /proc/mounts (its type matters for fsync)."""
    best = ("", "?", "?")
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, point, kind = line.split()[:3]
            if str(path).startswith(point) and len(point) >= len(best[0]):
                best = (point, kind, device)
    return f"{best[1]} ({best[2]} on {best[0]})"


def read_only(database: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One query on a SQLite file another process writes (WAL: readers never block it)."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


async def until(check: Any, timeout_s: float, what: str, poll_s: float = 0.02) -> float:
    """Poll `check()` every `poll_s` until it is true; returns the monotonic time it was first
    seen true."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(poll_s)
    return time.monotonic()


# ---- /proc --------------------------------------------------------------------------------------

def proc_fields(pid: int | str, name: str, sep: str = ":") -> dict[str, str]:
    """/proc/<pid>/<name> (status, io, ...) as its `key: value` lines; pid "self" for this one."""
    text = Path(f"/proc/{pid}/{name}").read_text()
    return {k.strip(): v.strip() for k, v in (line.split(sep, 1) for line in text.splitlines())}


def write_bytes(pid: int | str) -> int:
    """What the process has sent towards the block device so far (/proc/<pid>/io)."""
    return int(proc_fields(pid, "io")["write_bytes"])


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system)."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


# ---- the processes ------------------------------------------------------------------------------

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
        """Provision the locker at central (as api/demo.py's enrol): its code keys made here, the
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
    disk), the last lines kept and the bytes counted. `env` is added to the environment."""

    def __init__(self, config: Path, serial: str, port: int, *, options: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, start_timeout_s: float = 20,
                 stop_timeout_s: float = 10) -> None:
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

    async def start(self, session: ClientSession) -> float:
        """Start it; returns the seconds until it answered /api/health."""
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, env=self.env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read_log())
        started = time.monotonic()
        async with asyncio.timeout(self.start_timeout_s):
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

    def cpu_s(self) -> float:
        """The daemon's CPU time so far (user + system)."""
        return cpu_seconds(self.pid)

    def write_bytes(self) -> int:
        """The daemon's /proc/<pid>/io write_bytes so far."""
        return write_bytes(self.pid)

    async def stop(self) -> None:
        if self.process is not None:
            await terminate(self.process, self.stop_timeout_s)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)


# ---- bytes on the wire --------------------------------------------------------------------------

@dataclass
class Chunk:
    """One read the proxy forwarded: when, which connection, which way, how many bytes."""

    at: float
    connection: int
    up: bool  # locker -> central
    size: int


class CountingProxy:
    """A TCP proxy on loopback in front of central that counts every byte it forwards.

    The locker is pointed at it, so TLS records, handshakes, HTTP headers and keep-alive reuse
    are all in the count: TCP payload, what a 4G plan bills less the IP and TCP headers
    (about 40 bytes a segment, not seen from here). Every read is logged as a `Chunk`.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.chunks: list[Chunk] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()

    def total(self, since: float = 0.0, *, up: bool | None = None) -> int:
        return sum(c.size for c in self.chunks
                   if c.at >= since and (up is None or c.up == up))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:  # central is down: the locker sees a refused connection, as it would
            writer.close()
            return
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pump(reader, up_writer, connection, True),
                             self._pump(up_reader, writer, connection, False))

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    connection: int, up: bool) -> None:
        try:
            while data := await source.read(65536):
                self.chunks.append(Chunk(time.monotonic(), connection, up, len(data)))
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            sink.close()
