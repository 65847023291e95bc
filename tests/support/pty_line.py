"""A plain pty client and a config writer for the simulator's tests.

The client side is written by hand with os.open/os.read/os.write: it must never import hardware/,
so that these tests check the simulator against the protocol document alone.
"""

from __future__ import annotations

import asyncio
import os
import time
import tty
from collections.abc import Callable
from pathlib import Path

from locker.domain.config import LockerConfig

Board = tuple[int, int, str]  # address, channels, door_closed_when
MakeConfig = Callable[..., LockerConfig]


def write_boards_config(
    directory: Path,
    protocol: str,
    boards: list[Board],
    *,
    baud: int | None = None,
    pulse_ms: int = 100,
) -> Path:
    """A minimal locker config with one compartment B<addr>C<ch> on every channel."""
    lines = [
        "[locker]",
        'id = "sim-test"',
        f'data_dir = "{directory / "var"}"',
        "",
        "[bus]",
        'port = "/dev/null"',
        f'protocol = "{protocol}"',
        f"pulse_ms = {pulse_ms}",
    ]
    if baud is not None:
        lines.append(f"baud = {baud}")
    for address, channels, polarity in boards:
        lines += [
            "",
            "[[bus.boards]]",
            f"address = {address}",
            f"channels = {channels}",
            f'door_closed_when = "{polarity}"',
        ]
    lines += ["", "[layout]", "compartments = ["]
    for address, channels, _ in boards:
        for channel in range(1, channels + 1):
            lines.append(
                f'  {{ id = "B{address}C{channel:02d}", zone = "ambient", size = "M",'
                f" board = {address}, channel = {channel} }},"
            )
    lines.append("]")
    path = directory / f"{protocol}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class PtyClient:
    """The daemon's end of the line, done by hand: os.open, os.write, os.read."""

    def __init__(self, port: str) -> None:
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_now(self) -> bytes:
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""

    async def read(self, count: int, timeout_s: float = 1.0) -> bytes:
        """Exactly `count` bytes, or what came before the timeout."""
        data = b""
        deadline = time.monotonic() + timeout_s
        while len(data) < count and time.monotonic() < deadline:
            chunk = self.read_now()
            if chunk:
                data += chunk
            else:
                await asyncio.sleep(0.0002)
        return data

    async def transact(self, request: bytes, count: int, timeout_s: float = 1.0) -> bytes:
        self.write(request)
        return await self.read(count, timeout_s)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
