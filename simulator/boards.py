"""Simulated RS485 lock boards on a pseudo-terminal, speaking the protocol of the config.

`SimulatedBoards(config)` opens a pty pair; the daemon opens `.port` as its serial port. Every
board declared in config.bus answers its frames (built by simulator.protocols from the protocol
document) and drives the latches and doors of simulator.doors; an address nobody declared never
answers, like a real bus. With pace=True a reply leaves only after the request's and the reply's
byte times at the configured baud (10 bits a byte) plus the board's turnaround, and the line is
one shared half-duplex resource, so bus occupancy is realistic. Every frame in and out is recorded
with a perf_counter_ns timestamp (the unlock-latency benchmark reads the time the complete unlock
frame arrived). Faults are injected here: a silent board, noise, corrupted replies, a lock fault,
jammed, forced, closed and opened doors.

It must NEVER import anything from hardware/: it is the independent reading of the protocol that
our codec is tested against. `python -m simulator.boards` runs it as its own process (see
simulator.control), so the hardware keeps its state when the daemon is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from locker.domain.config import BoardConfig, LockerConfig
from simulator.doors import Doors, Person
from simulator.protocols import Request, Scanner, UnlockResult, corrupt, model_for

Direction = Literal["rx", "tx", "junk", "noise"]


@dataclass(frozen=True)
class FrameRecord:
    """One thing on the line, seen from the boards' side.

    rx: a complete valid request (t_ns = perf_counter_ns when its last byte was read from the
    pty); tx: a reply written toward the daemon (t_ns = when written); junk: bytes from the
    daemon's side that were not part of a frame (dropped during resync); noise: injected bytes
    written toward the daemon. wire_end_ns is where the paced line model puts the frame's last
    byte (equal to t_ns without pacing or for junk/noise).
    """

    t_ns: int
    direction: Direction
    data: bytes
    board: int | None = None
    channel: int | None = None
    command: str | None = None
    note: str = ""
    wire_end_ns: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "t_ns": self.t_ns,
            "direction": self.direction,
            "data": self.data.hex(" "),
            "board": self.board,
            "channel": self.channel,
            "command": self.command,
            "note": self.note,
            "wire_end_ns": self.wire_end_ns,
        }


class SimBoard:
    """One board on the bus: its address, channels, sensor polarity and whether it answers."""

    def __init__(self, config: BoardConfig, doors: Doors) -> None:
        self.config = config
        self.address = config.address
        self.channels = config.channels
        self.doors = doors
        self.silent = False

    def _lock_id(self, channel: int) -> str | None:
        lock = self.doors.at(self.address, channel)
        return None if lock is None else lock.id

    def unlock(self, channel: int) -> UnlockResult:
        lock_id = self._lock_id(channel)
        if lock_id is None:
            return UnlockResult.FAULT
        return self.doors.unlock(lock_id)

    def door_closed(self, channel: int) -> bool:
        lock_id = self._lock_id(channel)
        return lock_id is not None and self.doors.is_closed(lock_id)

    def closed_bit(self, channel: int) -> int:
        if not 1 <= channel <= self.channels:
            return 0
        closed = self.door_closed(channel)
        bit_set_means_closed = self.config.door_closed_when == "bit_set"
        return 1 if closed == bit_set_means_closed else 0

    def item_bit(self, channel: int) -> int:
        """The infrared "item present" bit: 1 when goods are inside, 0 without a sensor."""
        if not self.config.item_sensor or not 1 <= channel <= self.channels:
            return 0
        lock = self.doors.at(self.address, channel)
        return 1 if lock is not None and lock.goods else 0

    def set_pulse_ms(self, ms: int) -> None:
        for channel in range(1, self.channels + 1):
            lock_id = self._lock_id(channel)
            if lock_id is not None:
                self.doors.set_pulse_ms(lock_id, ms)

    def unlock_all(self) -> None:
        for channel in range(1, self.channels + 1):
            self.unlock(channel)


class SimulatedBoards:
    """The lock boards of a config on a pseudo-terminal; see the module docstring."""

    def __init__(
        self,
        config: LockerConfig,
        *,
        auto_close_s: float | None = None,
        pace: bool = True,
        link: str | None = None,
        turnaround_s: float = 0.001,
        frame_gap_s: float | None = 0.05,
        spring: bool = True,
        seed: int = 0,
        max_frames: int = 50_000,
    ) -> None:
        if config.bus is None:
            raise ValueError(f"{config.path}: no [bus] table: nothing to simulate")
        self.config = config
        self.bus = config.bus
        self.protocol = model_for(self.bus.protocol)
        self.doors = Doors.from_config(config, spring=spring)
        sensing = {b.address for b in self.bus.boards if b.item_sensor}
        self.person = Person(self.doors, auto_close_s, frozenset(
            lock.id for lock in self.doors.locks.values() if lock.board in sensing))
        self.boards = {b.address: SimBoard(b, self.doors) for b in self.bus.boards}
        self.pace = pace
        self.link = link
        self.turnaround_ns = int(turnaround_s * 1e9)
        self.frame_gap_ns = None if frame_gap_s is None else int(frame_gap_s * 1e9)
        self.byte_ns = int(10 * 1e9 / self.bus.baud)  # 8N1: start + 8 data + stop bits
        # the newest max_frames records (a demo polls for hours); frames_total counts them all
        self.frames: deque[FrameRecord] = deque(maxlen=max_frames)
        self.frames_total = 0
        self.frame_listeners: list[Callable[[FrameRecord], None]] = []
        self.port = ""
        self._master: int | None = None
        self._slave: int | None = None
        self._scanner = Scanner(self.protocol)
        self._last_rx_ns = 0
        self._line_free_ns = 0
        self._corrupt_next = 0
        self._lose_after_unlock: list[int] = []  # for each unlock to come: replies it loses
        self._losing: dict[int, int] = {}  # board -> how many of its next replies are lost
        self._pending: set[asyncio.TimerHandle] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._random = random.Random(seed)

    # ---- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pty pair and start answering. The slave end stays open here too, so the
        daemon can close and reopen the port (be killed and restarted) without losing the line."""
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.link:
            link = Path(self.link)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(self.port)
        self._loop.add_reader(master, self._readable)

    async def stop(self) -> None:
        if self._loop is not None and self._master is not None:
            self._loop.remove_reader(self._master)
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        self.doors.cancel_timers()
        self.person.stop()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.link:
            link = Path(self.link)
            if link.is_symlink() and os.readlink(link) == self.port:
                link.unlink()

    async def __aenter__(self) -> SimulatedBoards:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- fault injection and people ----------------------------------------------------------

    def set_silent(self, address: int, silent: bool = True) -> None:
        """A board that stops answering (power lost, cable cut): it neither acts nor replies."""
        self._board(address).silent = silent

    def answer(self, address: int) -> None:
        """The board comes back."""
        self.set_silent(address, False)

    def inject_noise(self, noise: int | bytes) -> bytes:
        """Write noise toward the daemon now: `noise` random bytes, or exactly these bytes."""
        data = (
            bytes(self._random.randrange(256) for _ in range(noise))
            if isinstance(noise, int)
            else bytes(noise)
        )
        self._write(data, "noise")
        return data

    def corrupt_next_replies(self, count: int = 1) -> None:
        """Spoil the last byte (checksum; trailer for W) of the next `count` replies."""
        self._corrupt_next += count

    def lose_unlock_replies(self, count: int = 1, replies: int = 1) -> None:
        """The next `count` unlocks pulse their lock, but the board's next `replies` answers
        (the unlock's own reply, or in K the status reads that confirm it, retries included)
        never arrive."""
        self._lose_after_unlock += [replies] * count

    def lock_fault(self, lock_id: str, fault: bool = True) -> None:
        self.doors.lock_fault(lock_id, fault)

    def jam(self, lock_id: str) -> None:
        self.doors.jam(lock_id, True)

    def unjam(self, lock_id: str) -> None:
        self.doors.jam(lock_id, False)

    def force(self, lock_id: str) -> None:
        self.doors.force(lock_id)

    def close(self, lock_id: str) -> None:
        self.doors.close(lock_id)

    def open(self, lock_id: str) -> None:
        """A person pulls the door (works only while its latch is released)."""
        self.doors.open(lock_id)

    def put(self, lock_id: str) -> None:
        """A person puts goods in (the door must be open)."""
        self.doors.put(lock_id)

    def take(self, lock_id: str) -> None:
        """A person takes the goods out (the door must be open)."""
        self.doors.take(lock_id)

    # ---- reading the records -------------------------------------------------------------------

    def received(self, command: str | None = None) -> list[FrameRecord]:
        return [
            f
            for f in self.frames
            if f.direction == "rx" and (command is None or f.command == command)
        ]

    def sent(self) -> list[FrameRecord]:
        return [f for f in self.frames if f.direction == "tx"]

    def state(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "protocol": self.bus.protocol,
            "baud": self.bus.baud,
            "boards": {
                str(a): {
                    "silent": b.silent,
                    "channels": b.channels,
                    "door_closed_when": b.config.door_closed_when,
                    "item_sensor": b.config.item_sensor,
                }
                for a, b in self.boards.items()
            },
            "compartments": self.doors.state(),
        }

    # ---- the line ----------------------------------------------------------------------------

    def _board(self, address: int) -> SimBoard:
        try:
            return self.boards[address]
        except KeyError:
            raise KeyError(
                f"board {address} is not declared in the config's [[bus.boards]]"
            ) from None

    def frames_since(self, seq: int) -> list[FrameRecord]:
        """Records from sequence number `seq` on (0 = the first ever; older ones may be gone)."""
        first_kept = self.frames_total - len(self.frames)
        return list(itertools.islice(self.frames, max(0, seq - first_kept), None))

    def _record(self, record: FrameRecord) -> None:
        self.frames.append(record)
        self.frames_total += 1
        for listener in list(self.frame_listeners):
            listener(record)

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no slave is open: nothing to read
        if not data:
            return
        now = time.perf_counter_ns()
        if (
            self.frame_gap_ns is not None
            and self._scanner.buffer
            and now - self._last_rx_ns > self.frame_gap_ns
        ):
            stale = self._scanner.discard()
            self._record(FrameRecord(now, "junk", stale, note="stale partial frame"))
        self._last_rx_ns = now
        for item in self._scanner.feed(data):
            if isinstance(item, bytes):
                self._line_free_ns = max(now, self._line_free_ns) + len(item) * self.byte_ns
                self._record(FrameRecord(now, "junk", item, note="resync"))
            else:
                self._request(item, now)

    def _request(self, request: Request, now: int) -> None:
        wire_end = now
        if self.pace:
            wire_end = max(now, self._line_free_ns) + len(request.raw) * self.byte_ns
            self._line_free_ns = wire_end
        board = self.boards.get(request.board)
        note = ""
        if board is None:
            note = "no such board"
        elif board.silent:
            note = "board silent"
        self._record(
            FrameRecord(
                now,
                "rx",
                request.raw,
                request.board,
                request.channel,
                request.command,
                note,
                wire_end,
            )
        )
        if board is None or board.silent:
            return
        reply = self.protocol.answer(request, board)
        if request.command == "unlock" and self._lose_after_unlock:
            self._losing[request.board] = self._lose_after_unlock.pop(0)
        if reply is None:
            return
        if self._losing.get(request.board, 0) > 0:
            self._losing[request.board] -= 1
            self._record(FrameRecord(time.perf_counter_ns(), "junk", reply, request.board,
                                     request.channel, request.command, "reply lost"))
            return
        note = ""
        if self._corrupt_next > 0:
            self._corrupt_next -= 1
            reply, note = corrupt(reply), "corrupted"
        meta = (request.board, request.channel, request.command, note)
        if not self.pace:
            self._write(reply, "tx", meta, now)
            return
        reply_end = wire_end + self.turnaround_ns + len(reply) * self.byte_ns
        self._line_free_ns = reply_end
        assert self._loop is not None
        delay = max(0.0, (reply_end - time.perf_counter_ns()) / 1e9)
        handle: asyncio.TimerHandle | None = None

        def send() -> None:
            if handle is not None:
                self._pending.discard(handle)
            self._write(reply, "tx", meta, reply_end)

        handle = self._loop.call_later(delay, send)
        self._pending.add(handle)

    def _write(
        self,
        data: bytes,
        direction: Direction,
        meta: tuple[int | None, int | None, str | None, str] = (None, None, None, ""),
        wire_end: int | None = None,
    ) -> None:
        board, channel, command, note = meta
        if self._master is None:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._master, view)
                view = view[written:]
        except (BlockingIOError, OSError):
            note = (note + "; " if note else "") + "dropped: nobody reads the port"
        now = time.perf_counter_ns()
        self._record(
            FrameRecord(
                now,
                direction,
                data,
                board,
                channel,
                command,
                note,
                wire_end if wire_end is not None else now,
            )
        )


def main() -> None:
    from simulator.control import main as control_main

    control_main()


if __name__ == "__main__":
    main()
