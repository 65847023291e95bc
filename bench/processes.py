"""What the benchmarks that run the locker as in the field share besides the processes
themselves (simulator/processes.py, shared with the tests): the filesystem the store is on, /proc
figures, polling, and a TCP proxy that counts the bytes between the locker and central.

Imported as `bench.processes` by bench/sync.py and bench/pi_budget.py, which put the repository
root on sys.path first (bench/ has no __init__.py: a namespace package). Not a benchmark itself:
`./dev bench` runs it too, and it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def mount_of(path: Path) -> str:
    """The filesystem a path lives on, from /proc/mounts (its type matters for fsync)."""
    best = ("", "?", "?")
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, point, kind = line.split()[:3]
            if str(path).startswith(point) and len(point) >= len(best[0]):
                best = (point, kind, device)
    return f"{best[1]} ({best[2]} on {best[0]})"


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
