"""Protocol W: "Winnsen" STM32 boards, 16 locks, fixed-length frames with no checksum.

Frames and their source are in docs/protocols.md. With no checksum, every field of a frame is
checked (header, length byte, function, lock 1-16, status values, end byte): anything else is noise.
Pure functions only: this module must never touch the line, sleep or log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hardware.codecs.base import (
    INVALID,
    NEED_MORE,
    Request,
    UnlockRefused,
    check_board,
    check_channel,
    closed_from_bit,
    doors_only,
    no_pulse_time,
)
from locker.domain.config import BoardConfig
from locker.domain.lockboards import ProtocolSpec

HEAD = 0x90
END = 0x03
LEN_REQUEST = 0x06
LEN_REPLY = 0x07
FUNC_UNLOCK = 0x05
FUNC_STATUS = 0x12
REPLY_UNLOCK = 0x85
REPLY_STATUS = 0x92
UNLOCK_FAILED, UNLOCK_OK, UNLOCK_COOLDOWN = 0x00, 0x01, 0x02

PROTOCOL = ProtocolSpec(
    name="winnsen",
    lowest_address=0,  # STATION: one byte, any DIP address
    highest_address=255,
    channels=16,  # LOCK 1-16
    bauds=(9600,),
    default_baud=9600,
    per_lock_status=True,  # 0x12 reads one lock: one transaction per wired channel
)
LOCKS = PROTOCOL.channels


def unlock_frame(station: int, lock: int) -> bytes:
    check_board(station, PROTOCOL)
    check_channel(station, lock, PROTOCOL)
    return bytes((HEAD, LEN_REQUEST, FUNC_UNLOCK, station, lock, END))


def status_frame(station: int, lock: int) -> bytes:
    check_board(station, PROTOCOL)
    check_channel(station, lock, PROTOCOL)
    return bytes((HEAD, LEN_REQUEST, FUNC_STATUS, station, lock, END))


def unlock_reply(station: int, lock: int, status: int) -> bytes:
    return bytes((HEAD, LEN_REPLY, REPLY_UNLOCK, station, lock, status, END))


def status_reply(station: int, lock: int, status: int) -> bytes:
    """STATUS comes before LOCK in this reply (swapped compared with the unlock reply)."""
    return bytes((HEAD, LEN_REPLY, REPLY_STATUS, station, status, lock, END))


def _lock_ok(value: int) -> bool:
    return 1 <= value <= LOCKS


FieldCheck = Callable[[int], bool] | None

# per frame shape: for each byte position after the head, a check on that byte (None = any)
_REQUEST_FIELDS: tuple[FieldCheck, ...] = (
    lambda b: b == LEN_REQUEST,
    lambda b: b in (FUNC_UNLOCK, FUNC_STATUS),
    None,  # station: any DIP address
    _lock_ok,
    lambda b: b == END,
)
_UNLOCK_REPLY_FIELDS: tuple[FieldCheck, ...] = (
    lambda b: b == LEN_REPLY,
    lambda b: b == REPLY_UNLOCK,
    None,
    _lock_ok,
    lambda b: b in (UNLOCK_FAILED, UNLOCK_OK, UNLOCK_COOLDOWN),
    lambda b: b == END,
)
_STATUS_REPLY_FIELDS: tuple[FieldCheck, ...] = (
    lambda b: b == LEN_REPLY,
    lambda b: b == REPLY_STATUS,
    None,
    lambda b: b in (0x00, 0x01),
    _lock_ok,
    lambda b: b == END,
)


class WinnsenCodec:
    """Protocol W: one transaction per lock, both for unlocking and for reading a door."""

    name = PROTOCOL.name
    protocol = PROTOCOL

    def __init__(self, boards: Sequence[BoardConfig] = ()) -> None:
        pass  # fixed-length frames: nothing to learn from the boards

    def unlock_requests(self, board: int, channel: int) -> tuple[Request, ...]:
        return (Request("unlock", board, unlock_frame(board, channel), channel),)

    def status_requests(
        self, board: BoardConfig, channels: tuple[int, ...] | None = None
    ) -> tuple[Request, ...]:
        wanted = channels if channels is not None else range(1, min(board.channels, LOCKS) + 1)
        return tuple(
            Request("status", board.address, status_frame(board.address, ch), ch) for ch in wanted
        )

    def frame_at(self, buffer: bytes | bytearray) -> int:
        if buffer[0] != HEAD:
            return INVALID
        if len(buffer) < 3:
            # the length byte alone can already rule the frame out
            if len(buffer) == 2 and buffer[1] not in (LEN_REQUEST, LEN_REPLY):
                return INVALID
            return NEED_MORE
        if buffer[1] == LEN_REQUEST:
            fields = _REQUEST_FIELDS
        elif buffer[1] == LEN_REPLY and buffer[2] == REPLY_UNLOCK:
            fields = _UNLOCK_REPLY_FIELDS
        elif buffer[1] == LEN_REPLY and buffer[2] == REPLY_STATUS:
            fields = _STATUS_REPLY_FIELDS
        else:
            return INVALID
        for offset, check in enumerate(fields, start=1):
            if offset >= len(buffer):
                return NEED_MORE
            if check is not None and not check(buffer[offset]):
                return INVALID
        return len(fields) + 1

    def answers(self, request: Request, reply: bytes) -> bool:
        if len(reply) != 7 or reply[1] != LEN_REPLY or reply[3] != request.board:
            return False
        if request.kind == "unlock":
            return reply[2] == REPLY_UNLOCK and reply[4] == request.channel
        if request.kind == "status":
            return reply[2] == REPLY_STATUS and reply[5] == request.channel
        return False

    def check_unlock(self, request: Request, reply: bytes) -> None:
        status = reply[5]
        if status == UNLOCK_OK:
            return
        if status == UNLOCK_COOLDOWN:
            raise UnlockRefused(
                f"{request.where}: the board refused the unlock (cooldown after a recent"
                " unlock); wait a few seconds and try again"
            )
        raise UnlockRefused(
            f"{request.where}: the board answered that the unlock failed; check the lock's"
            " wiring and power supply"
        )

    def decode_doors(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        # the source documents STATUS 00 = closed, 01 = open; we read "closed" as the bit, so the
        # default polarity (bit_set) follows the source and bit_clear inverts it for odd wiring
        closed_bit = 1 if reply[4] == 0x00 else 0
        return doors_only({reply[5]: closed_from_bit(closed_bit, board)}, board)

    def decode_items(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        return {}  # no item bits in this protocol (docs/protocols.md)

    def pulse_time_request(self, board: int, pulse_ms: int) -> Request:
        raise no_pulse_time(PROTOCOL, board)
