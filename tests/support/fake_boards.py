"""A tiny stand-in for lock boards on a real pseudo-terminal, for the bus and driver unit tests.

It parses requests with its own few lines per protocol (written from docs/protocols.md, never
importing hardware.codecs) and answers them; knobs make a board silent, slow, or answer with
garbage around the reply. It is a test helper only: the real simulator lives in simulator/.
"""

from __future__ import annotations

import asyncio
import os
import time
import tty
from dataclasses import dataclass, field
from functools import reduce


@dataclass
class FakeBoard:
    address: int
    channels: int = 16
    closed: set[int] = field(default_factory=set)  # channels whose door is closed
    items: set[int] = field(default_factory=set)  # K: channels whose infrared bit says "inside"
    silent: bool = False  # answers nothing (power off)
    drop_next: int = 0  # answers nothing to the next N requests
    delay_s: float = 0.0  # answers this late
    garbage: bytes = b""  # sent just before each reply
    unlock_status: int | None = None  # W/G: force this status byte in the unlock reply
    answers_unlock: bool = False  # K: answer 0x31 with a status frame (no source shows this)
    unlocks: list[int] = field(default_factory=list)


def _sum(data: bytes) -> int:
    return sum(data) & 0xFF


def _xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


class FakeBus:
    """Owns the master side of a pty; `port` is the slave path to give the driver."""

    def __init__(self, protocol: str, boards: list[FakeBoard], bit_closed: int = 1) -> None:
        self.protocol = protocol
        self.boards = {b.address: b for b in boards}
        self.bit_closed = bit_closed  # the bit value the boards send for a closed door
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.buffer = bytearray()
        self.received: list[tuple[int, bytes]] = []  # (perf_counter_ns, request frame)
        self._loop = asyncio.get_running_loop()
        os.set_blocking(self.master, False)
        self._loop.add_reader(self.master, self._readable)
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        self._loop.remove_reader(self.master)
        for task in self._tasks:
            task.cancel()
        os.close(self.master)
        os.close(self.slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def frames_of(self, kind: int) -> list[bytes]:
        """Received requests whose command byte (position 2) is `kind`."""
        return [f for _, f in self.received if f[2] == kind]

    # --- parsing, one tiny parser per protocol ------------------------------------------------

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 1024)
        except (BlockingIOError, OSError):
            return
        self.buffer += data
        while True:
            frame = self._take()
            if frame is None:
                break
            self.received.append((time.perf_counter_ns(), frame))
            self._answer(frame)

    def _take(self) -> bytes | None:
        size = {"kerong": 5, "generic": 5, "winnsen": 6}[self.protocol]
        heads = {"kerong": (0x02,), "generic": (0x8A, 0x80), "winnsen": (0x90,)}[self.protocol]
        while self.buffer and self.buffer[0] not in heads:
            del self.buffer[0]
        if len(self.buffer) < size:
            return None
        if self.protocol == "kerong" and self.buffer[2] == 0x37:  # set pulse: 7 bytes
            size = 7
            if len(self.buffer) < size:
                return None
        frame = bytes(self.buffer[:size])
        del self.buffer[:size]
        return frame

    def _bits(self, board: FakeBoard) -> int:
        bits = 0
        for ch in range(1, board.channels + 1):
            closed = ch in board.closed
            if closed == (self.bit_closed == 1):
                bits |= 1 << (ch - 1)
        return bits

    def _answer(self, frame: bytes) -> None:
        if self.protocol == "kerong":
            board_address, cmd = frame[1] >> 4, frame[2]
        elif self.protocol == "generic":
            board_address, cmd = frame[1], frame[0]
        else:
            board_address, cmd = frame[3], frame[2]
        board = self.boards.get(board_address)
        if board is None or board.silent:
            return
        reply = self._reply(board, frame, cmd)
        if reply is None:
            return
        if board.drop_next:
            board.drop_next -= 1
            return
        task = asyncio.ensure_future(self._later(board, board.garbage + reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _later(self, board: FakeBoard, data: bytes) -> None:
        if board.delay_s:
            await asyncio.sleep(board.delay_s)
        self.send(data)

    def _reply(self, board: FakeBoard, frame: bytes, cmd: int) -> bytes | None:
        if self.protocol == "kerong":
            if cmd == 0x31:
                board.unlocks.append((frame[1] & 0x0F) + 1)
                if not board.answers_unlock:
                    return None  # K boards do not answer an unlock in either source
            if cmd in (0x30, 0x31):
                bits = self._bits(board)
                ir = sum(1 << (ch - 1) for ch in board.items)
                body = bytes([0x02, board.address << 4, 0x35, bits & 0xFF, bits >> 8,
                              ir & 0xFF, ir >> 8, 0x03])
                return body + bytes([_sum(body)])
            return None
        if self.protocol == "generic":
            if cmd == 0x8A:
                board.unlocks.append(frame[2])
                status = 0x11 if board.unlock_status is None else board.unlock_status
                body = bytes([0x8A, board.address, frame[2], status])
                return body + bytes([_xor(body)])
            bits = self._bits(board)
            count = max(1, -(-board.channels // 8))
            groups = bytes((bits >> (8 * i)) & 0xFF for i in reversed(range(count)))
            body = bytes([0x80, board.address]) + groups + bytes([0x33])
            return body + bytes([_xor(body)])
        lock = frame[4]
        if cmd == 0x05:
            board.unlocks.append(lock)
            status = 0x01 if board.unlock_status is None else board.unlock_status
            return bytes([0x90, 0x07, 0x85, board.address, lock, status, 0x03])
        if cmd == 0x12:
            is_open = lock not in board.closed
            return bytes([0x90, 0x07, 0x92, board.address, 0x01 if is_open else 0x00, lock, 0x03])
        return None
