"""Protocol K: Kerong KR-CU16 / CU12 lock boards (STX, ADDR, CMD, ETX, 8-bit sum).

Frames, byte for byte, with their sources, are in docs/protocols.md. Pure functions only: this
module must never touch the line, sleep or log. It must never build 0x33 (unlock every lock of a
board): that command is not reachable from here on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence

from hardware.codecs.base import (
    INVALID,
    NEED_MORE,
    Request,
    check_board,
    check_channel,
    closed_from_bit,
    doors_only,
)
from locker.domain.config import BoardConfig
from locker.domain.lockboards import ProtocolSpec

PROTOCOL = ProtocolSpec(
    name="kerong",
    lowest_address=0,  # the board number is the ADDR byte's high nibble
    highest_address=15,
    channels=16,  # CU16; a CU12 uses the first 12
    bauds=(9600, 19200, 38400, 57600, 115200),  # set on the board; 19200 out of the box
    default_baud=19200,
    ack_is_status_read=True,  # 0x31 gets no reply: the 0x30 read after it acknowledges
    item_bits=True,  # D3/D4 of the status reply: the infrared beam
    pulse_time_settable=True,  # 0x37, one source only: sent only if asked for
)

STX = 0x02
ETX = 0x03
CMD_STATUS = 0x30  # read one board: latch bits and infrared bits
CMD_UNLOCK = 0x31  # pulse one lock for the board's stored pulse time
CMD_SET_PULSE = 0x37  # store the unlock pulse time, 10 ms units (one source only, see docs)
REPLY_STATUS = 0x35  # the board's answer to 0x30
REPLY_ALL = 0x36  # answer to 0x32 (query every board); parsed, never requested here

# frame length by command byte, for pulling frames out of the line: status replies are 9 bytes,
# plain commands 5; 0x37 is 5 (query) or 7 (set, two data bytes), 0x39 6 (one data byte)
_LENGTHS: dict[int, tuple[int, ...]] = {
    0x30: (5,), 0x31: (5,), 0x32: (5,), 0x33: (5,), 0x38: (5,),
    0x35: (9,), 0x36: (9,),
    0x37: (5, 7), 0x39: (6,),
}
MAX_PULSE_MS = 60_000


def checksum(body: bytes | bytearray) -> int:
    """The low byte of the sum of every earlier byte."""
    return sum(body) & 0xFF


def _frame(*body: int) -> bytes:
    return bytes((*body, checksum(bytes(body))))


def address(board: int, channel: int | None = None) -> int:
    """ADDR byte: board in the high nibble, lock index (channel - 1) in the low one."""
    return (board << 4) | ((channel - 1) if channel else 0)


def unlock_frame(board: int, channel: int) -> bytes:
    check_board(board, PROTOCOL)
    check_channel(board, channel, PROTOCOL)
    return _frame(STX, address(board, channel), CMD_UNLOCK, ETX)


def status_frame(board: int) -> bytes:
    check_board(board, PROTOCOL)
    return _frame(STX, address(board), CMD_STATUS, ETX)


def pulse_time_frame(board: int, pulse_ms: int) -> bytes:
    """0x37 with the pulse in 10 ms units, high byte first (single source: see docs)."""
    check_board(board, PROTOCOL)
    if not 0 <= pulse_ms <= MAX_PULSE_MS:
        raise ValueError(f"board {board}: pulse time must be 0-{MAX_PULSE_MS} ms, not {pulse_ms}")
    units = pulse_ms // 10
    return _frame(STX, address(board), CMD_SET_PULSE, units >> 8, units & 0xFF, ETX)


def status_reply(board: int, latches: int, infrared: int = 0) -> bytes:
    """A board's 0x35 reply (for tests and tools): latches/infrared bit 0 = lock 1."""
    return _frame(STX, address(board), REPLY_STATUS, latches & 0xFF, latches >> 8 & 0xFF,
                  infrared & 0xFF, infrared >> 8 & 0xFF, ETX)


class KerongCodec:
    """Protocol K. An unlock gets no reply in either source, so it is confirmed by a status read."""

    name = PROTOCOL.name
    protocol = PROTOCOL

    def __init__(self, boards: Sequence[BoardConfig] = ()) -> None:
        pass  # every status reply has the same length, whatever the board's size

    def unlock_requests(self, board: int, channel: int) -> tuple[Request, ...]:
        # lkaas-kerong and kerong-lib both write 0x31 and read nothing back: the status read that
        # follows proves the board is there and listening, and shows the latch
        return (
            Request("unlock", board, unlock_frame(board, channel), channel, expects_reply=False),
            Request("status", board, status_frame(board)),
        )

    def status_requests(
        self, board: BoardConfig, channels: tuple[int, ...] | None = None
    ) -> tuple[Request, ...]:
        return (Request("status", board.address, status_frame(board.address)),)

    def pulse_time_request(self, board: int, pulse_ms: int) -> Request:
        return Request("config", board, pulse_time_frame(board, pulse_ms), expects_reply=False)

    def frame_at(self, buffer: bytes | bytearray) -> int:
        if buffer[0] != STX:
            return INVALID
        if len(buffer) < 3:
            return NEED_MORE
        lengths = _LENGTHS.get(buffer[2])
        if lengths is None:
            return INVALID
        for length in lengths:
            if len(buffer) < length:
                return NEED_MORE
            if buffer[length - 2] == ETX and buffer[length - 1] == checksum(buffer[: length - 1]):
                return length
        return INVALID

    def answers(self, request: Request, reply: bytes) -> bool:
        # kerong-lib checks the whole ADDR byte; we check the board nibble only, so a firmware
        # that echoes a lock index in the low nibble is still understood
        return (
            request.kind == "status"
            and len(reply) == 9
            and reply[2] == REPLY_STATUS
            and reply[1] >> 4 == request.board
        )

    def check_unlock(self, request: Request, reply: bytes) -> None:
        return None  # the acknowledgement is the status reply itself; no refusal code exists

    def decode_doors(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        latches = reply[3] | reply[4] << 8  # D1 = locks 1-8, D2 = locks 9-16, bit 0 first
        states = {ch: closed_from_bit(latches >> (ch - 1) & 1, board) for ch in range(1, 17)}
        return doors_only(states, board)

    def decode_items(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        # D3 = channels 1-8, D4 = 9-16, bit 0 first (kerong-lib ir_1_8, ir_9_16): bit set = an
        # item breaks the infrared beam
        infrared = reply[5] | reply[6] << 8
        return doors_only({ch: bool(infrared >> (ch - 1) & 1) for ch in range(1, 17)}, board)
