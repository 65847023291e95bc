"""The board side of the three lock-board protocols (K kerong, W winnsen, G generic).

Written from /work/shared/lockboard-protocol.md alone: it finds request frames in a byte stream
(resyncing on garbage by dropping one byte and scanning again) and builds the replies a real
board would send. Pure functions and small classes: no asyncio, no port, no doors.

It must NEVER import anything from hardware/: the simulator is the independent second reading
of the protocol document, so a bug in our codec cannot hide behind the same bug here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from locker.domain import lockboards
from locker.domain.lockboards import ProtocolSpec


class UnlockResult(enum.Enum):
    """What the board's latch driver did with one unlock command."""

    OK = "ok"  # the latch pulsed (whether or not the door then moved)
    FAULT = "fault"  # an injected lock fault: the latch did not move
    COOLDOWN = "cooldown"  # the same latch is still in its pulse: command dropped


class BoardSide(Protocol):
    """What a protocol needs from one simulated board to answer a request."""

    address: int
    channels: int

    def unlock(self, channel: int) -> UnlockResult: ...

    def door_closed(self, channel: int) -> bool: ...

    def closed_bit(self, channel: int) -> int:
        """The sensor bit for a channel with the board's polarity applied (0 if not fitted)."""
        ...

    def item_bit(self, channel: int) -> int:
        """K's infrared bit: 1 when goods are inside (0 where no item sensor is fitted)."""
        ...

    def set_pulse_ms(self, ms: int) -> None: ...

    def unlock_all(self) -> None: ...


Command = Literal["unlock", "status", "set_pulse", "unlock_all", "query_all_boards", "other"]


@dataclass(frozen=True)
class Request:
    """One complete, valid request frame as the board understood it."""

    protocol: str  # the name of its ProtocolSpec
    command: Command
    board: int
    channel: int | None  # 1-based, as on the board's label; None when the command has none
    raw: bytes
    value: int | None = None  # e.g. the pulse time in ms of a set-pulse command


class Scan(enum.Enum):
    FRAME = "frame"
    NEED_MORE = "need_more"
    JUNK = "junk"  # the first byte cannot start a valid frame: drop it and rescan


@dataclass(frozen=True)
class Take:
    """The outcome of looking at the head of the buffer."""

    scan: Scan
    length: int = 0
    request: Request | None = None


NEED_MORE = Take(Scan.NEED_MORE)
JUNK = Take(Scan.JUNK, 1)


def kerong_sum(data: bytes) -> int:
    return sum(data) & 0xFF


def xor_all(data: bytes) -> int:
    out = 0
    for byte in data:
        out ^= byte
    return out


# --------------------------------------------------------------------------------------------
# Protocol K: Kerong KR-CU16/CU12.  `02 ADDR CMD 03 SUM`, ADDR = board << 4 | (lock - 1).

# what the document says about these boards, read again here (the codec declares its own; the
# two readings must agree, or whichever registers second fails)
K_SPEC = ProtocolSpec(
    name="kerong", lowest_address=0, highest_address=15, channels=16,
    bauds=(9600, 19200, 38400, 57600, 115200), default_baud=19200,
    ack_is_status_read=True, item_bits=True, pulse_time_settable=True,
)

K_STX, K_ETX = 0x02, 0x03
K_STATUS, K_UNLOCK, K_QUERY_ALL, K_UNLOCK_ALL, K_SET_PULSE, K_STATUS_REPLY = (
    0x30,
    0x31,
    0x32,
    0x33,
    0x37,
    0x35,
)
# The document gives 0x37's range (0-60000 ms in 10 ms units, so a 2-byte value) but not its
# layout. Our reading, unverified: `02 ADDR 37 HI LO 03 SUM` (big endian). A plain 5-byte 0x37 is
# accepted and ignored like any other command we do not model.
K_SET_PULSE_LEN = 7

# Neither public client in the sources reads a reply to 0x31 (lkaas-kerong and kerong-lib both
# fire and forget, docs/protocols.md), so the simulated board stays silent after an unlock. Set
# True to model firmware that answers an unlock with its status frame (0x35, 9 bytes); the
# driver must cope with both.
K_UNLOCK_REPLIES_WITH_STATUS = False
# No source documents a reply to 0x37; we send none.
K_SET_PULSE_REPLIES = False


def kerong_take(buf: bytes) -> Take:
    if not buf:
        return NEED_MORE
    if buf[0] != K_STX:
        return JUNK
    lengths = [5, K_SET_PULSE_LEN] if len(buf) > 2 and buf[2] == K_SET_PULSE else [5]
    waiting = False
    for n in lengths:
        if len(buf) < n:
            waiting = True
            continue
        frame = bytes(buf[:n])
        if frame[n - 2] == K_ETX and frame[n - 1] == kerong_sum(frame[: n - 1]):
            return Take(Scan.FRAME, n, _kerong_request(frame))
    # a short buffer whose ETX position is already wrong cannot become a 5-byte frame
    if len(buf) >= 4 and buf[3] != K_ETX and buf[2] != K_SET_PULSE:
        return JUNK
    return NEED_MORE if waiting else JUNK


def _kerong_request(frame: bytes) -> Request:
    addr, cmd = frame[1], frame[2]
    board, lock = addr >> 4, addr & 0x0F
    command: Command
    value = None
    channel: int | None = None
    if cmd == K_UNLOCK:
        command, channel = "unlock", lock + 1
    elif cmd == K_STATUS:
        command = "status"
    elif cmd == K_UNLOCK_ALL:
        command = "unlock_all"
    elif cmd == K_QUERY_ALL:
        command = "query_all_boards"
    elif cmd == K_SET_PULSE and len(frame) == K_SET_PULSE_LEN:
        command, value = "set_pulse", ((frame[3] << 8) | frame[4]) * 10
    else:
        command = "other"
    return Request("kerong", command, board, channel, frame, value)


def kerong_frame(addr: int, cmd: int) -> bytes:
    """A 5-byte request frame (for tests and the control API)."""
    body = bytes([K_STX, addr & 0xFF, cmd, K_ETX])
    return body + bytes([kerong_sum(body)])


def kerong_status_reply(addr: int, d1: int, d2: int, d3: int = 0, d4: int = 0) -> bytes:
    body = bytes([K_STX, addr & 0xFF, K_STATUS_REPLY, d1, d2, d3, d4, K_ETX])
    return body + bytes([kerong_sum(body)])


def kerong_status_of(board: BoardSide, addr: int) -> bytes:
    d1 = sum(board.closed_bit(ch) << (ch - 1) for ch in range(1, 9))
    d2 = sum(board.closed_bit(ch) << (ch - 9) for ch in range(9, 17))
    # D3/D4: the infrared item-present bits, same order (0 on a board without the sensors)
    d3 = sum(board.item_bit(ch) << (ch - 1) for ch in range(1, 9))
    d4 = sum(board.item_bit(ch) << (ch - 9) for ch in range(9, 17))
    return kerong_status_reply(addr, d1, d2, d3, d4)


def kerong_answer(request: Request, board: BoardSide) -> bytes | None:
    addr = request.raw[1]  # the reply echoes the request's ADDR byte
    if request.command == "status":
        return kerong_status_of(board, addr)
    if request.command == "unlock":
        assert request.channel is not None
        if request.channel <= board.channels:
            board.unlock(request.channel)
        return kerong_status_of(board, addr) if K_UNLOCK_REPLIES_WITH_STATUS else None
    if request.command == "unlock_all":
        board.unlock_all()  # the board obeys; the daemon must never send it
        return kerong_status_of(board, addr) if K_UNLOCK_REPLIES_WITH_STATUS else None
    if request.command == "set_pulse":
        assert request.value is not None
        board.set_pulse_ms(request.value)
        return kerong_status_of(board, addr) if K_SET_PULSE_REPLIES else None
    return None  # query-all-boards and unknown commands: accepted, not modelled, no reply


# --------------------------------------------------------------------------------------------
# Protocol W: Winnsen STM32 boards.  `90 06 FUNC STATION LOCK 03`, no checksum.

W_SPEC = ProtocolSpec(
    name="winnsen", lowest_address=0, highest_address=255, channels=16,
    bauds=(9600,), default_baud=9600, per_lock_status=True,
)

W_HEAD, W_REQ_LEN, W_REPLY_LEN, W_ETX = 0x90, 0x06, 0x07, 0x03
W_UNLOCK, W_STATUS = 0x05, 0x12
W_UNLOCK_REPLY, W_STATUS_REPLY = 0x85, 0x92
W_OK, W_FAIL, W_COOLDOWN = 0x01, 0x00, 0x02
W_OPEN, W_CLOSED = 0x01, 0x00


def _winnsen_field_ok(index: int, byte: int) -> bool:
    if index == 0:
        return byte == W_HEAD
    if index == 1:
        return byte == W_REQ_LEN
    if index == 2:
        return byte in (W_UNLOCK, W_STATUS)
    if index == 4:
        return 1 <= byte <= 16
    if index == 5:
        return byte == W_ETX
    return True  # STATION: any DIP address


def winnsen_take(buf: bytes) -> Take:
    """No checksum, so every field is checked; anything that does not fit is noise."""
    if not buf:
        return NEED_MORE
    for index, byte in enumerate(buf[:6]):
        if not _winnsen_field_ok(index, byte):
            return JUNK
    if len(buf) < 6:
        return NEED_MORE
    frame = bytes(buf[:6])
    command: Command = "unlock" if frame[2] == W_UNLOCK else "status"
    return Take(Scan.FRAME, 6, Request("winnsen", command, frame[3], frame[4], frame))


def winnsen_frame(func: int, station: int, lock: int) -> bytes:
    return bytes([W_HEAD, W_REQ_LEN, func, station, lock, W_ETX])


def winnsen_unlock_reply(station: int, lock: int, status: int) -> bytes:
    return bytes([W_HEAD, W_REPLY_LEN, W_UNLOCK_REPLY, station, lock, status, W_ETX])


def winnsen_status_reply(station: int, lock: int, is_open: bool) -> bytes:
    # STATUS and LOCK are swapped compared with the unlock reply (as the document says)
    status = W_OPEN if is_open else W_CLOSED
    return bytes([W_HEAD, W_REPLY_LEN, W_STATUS_REPLY, station, status, lock, W_ETX])


def winnsen_answer(request: Request, board: BoardSide) -> bytes | None:
    assert request.channel is not None
    lock = request.channel
    if request.command == "unlock":
        if lock > board.channels:
            return winnsen_unlock_reply(board.address, lock, W_FAIL)
        result = board.unlock(lock)
        status = {
            UnlockResult.OK: W_OK,
            UnlockResult.FAULT: W_FAIL,
            UnlockResult.COOLDOWN: W_COOLDOWN,
        }[result]
        return winnsen_unlock_reply(board.address, lock, status)
    # W reports 01 open / 00 closed as the document says; door_closed_when does not apply here
    is_open = lock <= board.channels and not board.door_closed(lock)
    return winnsen_status_reply(board.address, lock, is_open)


# --------------------------------------------------------------------------------------------
# Protocol G: generic RS485 lock board, XOR checksum.

G_SPEC = ProtocolSpec(
    name="generic", lowest_address=1, highest_address=31, channels=50,
    bauds=(9600,), default_baud=9600,
)

G_UNLOCK_HEAD, G_QUERY_HEAD = 0x8A, 0x80
G_UNLOCK_CMD, G_QUERY_CMD = 0x11, 0x33
G_DONE, G_FAIL = 0x11, 0x00
G_MIN_STATUS_BYTES = 3  # the verified 8-channel reply carries three status bytes


def generic_take(buf: bytes) -> Take:
    if not buf:
        return NEED_MORE
    head = buf[0]
    if head not in (G_UNLOCK_HEAD, G_QUERY_HEAD):
        return JUNK
    if len(buf) > 1 and not 1 <= buf[1] <= 31:
        return JUNK
    if head == G_UNLOCK_HEAD:
        if len(buf) > 2 and buf[2] == 0:
            return JUNK
        if len(buf) > 3 and buf[3] != G_UNLOCK_CMD:
            return JUNK
    else:
        if len(buf) > 2 and buf[2] != 0x00:
            return JUNK
        if len(buf) > 3 and buf[3] != G_QUERY_CMD:
            return JUNK
    if len(buf) < 5:
        return NEED_MORE
    frame = bytes(buf[:5])
    if xor_all(frame[:4]) != frame[4]:
        return JUNK
    if head == G_UNLOCK_HEAD:
        return Take(Scan.FRAME, 5, Request("generic", "unlock", frame[1], frame[2], frame))
    return Take(Scan.FRAME, 5, Request("generic", "status", frame[1], None, frame))


def generic_frame(head: int, board: int, channel: int, cmd: int) -> bytes:
    body = bytes([head, board, channel, cmd])
    return body + bytes([xor_all(body)])


def generic_unlock_reply(board: int, channel: int, status: int) -> bytes:
    return generic_frame(G_UNLOCK_HEAD, board, channel, status)


def generic_status_bytes(board: BoardSide) -> bytes:
    """Highest channel group first; the last byte is channels 1-8 with bit 0 = channel 1."""
    count = max(G_MIN_STATUS_BYTES, (board.channels + 7) // 8)
    groups = []
    for group in range(count):
        groups.append(sum(board.closed_bit(group * 8 + bit + 1) << bit for bit in range(8)))
    return bytes(reversed(groups))


def generic_status_reply(board_address: int, status: bytes) -> bytes:
    body = bytes([G_QUERY_HEAD, board_address, *status, G_QUERY_CMD])
    return body + bytes([xor_all(body)])


def generic_answer(request: Request, board: BoardSide) -> bytes | None:
    if request.command == "unlock":
        assert request.channel is not None
        channel = request.channel
        if channel > board.channels:
            return generic_unlock_reply(board.address, channel, G_FAIL)
        result = board.unlock(channel)
        # a latch still in its pulse is doing what was asked: "done"; only a fault says 0x00
        status = G_FAIL if result is UnlockResult.FAULT else G_DONE
        return generic_unlock_reply(board.address, channel, status)
    return generic_status_reply(board.address, generic_status_bytes(board))


# --------------------------------------------------------------------------------------------


@dataclass
class BoardProtocol:
    """One protocol's board side: how to find frames and how to answer them."""

    spec: ProtocolSpec
    take: _TakeFn
    answer: _AnswerFn

    @property
    def name(self) -> str:
        return self.spec.name


class _TakeFn(Protocol):
    def __call__(self, buf: bytes, /) -> Take: ...


class _AnswerFn(Protocol):
    def __call__(self, request: Request, board: BoardSide, /) -> bytes | None: ...


# the one list of the protocols the simulated boards speak, keyed by their declarations' names
PROTOCOLS: dict[str, BoardProtocol] = {
    model.name: model
    for model in (
        BoardProtocol(K_SPEC, kerong_take, kerong_answer),
        BoardProtocol(W_SPEC, winnsen_take, winnsen_answer),
        BoardProtocol(G_SPEC, generic_take, generic_answer),
    )
}
for _model in PROTOCOLS.values():  # so that a simulator process can read a config on its own
    lockboards.register(_model.spec)


def model_for(name: str) -> BoardProtocol:
    """The board side of a config's `bus.protocol`; a ValueError naming the ones we have."""
    model = PROTOCOLS.get(name)
    if model is None:
        raise ValueError(
            f"the simulator has no board model for protocol {name!r}; it simulates"
            f" {', '.join(PROTOCOLS)} (add one to simulator/protocols.py, see ADR 0001)"
        )
    return model


def corrupt(reply: bytes) -> bytes:
    """Spoil a reply's last byte: the checksum for K and G, the trailer for W (no checksum)."""
    return reply[:-1] + bytes([reply[-1] ^ 0x5A])


@dataclass
class Scanner:
    """A receive buffer that yields complete requests and counts the bytes it threw away."""

    protocol: BoardProtocol
    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Iterator[Request | bytes]:
        """Yield each request found, and each run of discarded bytes (as bytes) in order."""
        self.buffer += data
        junk = bytearray()
        while self.buffer:
            took = self.protocol.take(bytes(self.buffer[:16]))
            if took.scan is Scan.NEED_MORE:
                break
            if took.scan is Scan.JUNK:
                junk.append(self.buffer[0])
                del self.buffer[0]
                continue
            if junk:
                yield bytes(junk)
                junk.clear()
            del self.buffer[: took.length]
            assert took.request is not None
            yield took.request
        if junk:
            yield bytes(junk)

    def discard(self) -> bytes:
        """Drop a stale partial frame (the line went quiet mid-frame)."""
        stale = bytes(self.buffer)
        self.buffer.clear()
        return stale
