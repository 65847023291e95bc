"""Protocol G: the generic "RS485 lock board" (8-50 channels, XOR checksum, 9600 8N1).

Frames and sources are in docs/protocols.md. The query reply's length depends on how many status
bytes the board sends (highest channel group first), so the codec is built with the lengths the
configured boards may answer with. Pure functions only: never touches the line, sleeps or logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce
from math import ceil

from hardware.codecs.base import (
    INVALID,
    NEED_MORE,
    Request,
    check_board,
    check_channel,
    closed_from_bit,
    doors_only,
    no_pulse_time,
)
from locker.domain.config import BoardConfig
from locker.domain.lockboards import ProtocolSpec

PROTOCOL = ProtocolSpec(
    name="generic",
    lowest_address=1,
    highest_address=31,
    channels=50,  # 8-50 channels by model
    bauds=(9600,),  # 9600 8N1
    default_baud=9600,
)

UNLOCK_HEAD = 0x8A
QUERY_HEAD = 0x80
CMD_UNLOCK = 0x11
CMD_QUERY = 0x33
ACK_DONE, ACK_ZERO = 0x11, 0x00
MAX_CHANNELS = PROTOCOL.channels
MAX_STATUS_BYTES = ceil(MAX_CHANNELS / 8)  # 7
# an 8-channel board was seen answering with 3 status bytes (Open-Locker's verified frame)
VERIFIED_8_CHANNEL_STATUS_BYTES = 3


def xor(data: Iterable[int]) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def _frame(*body: int) -> bytes:
    return bytes((*body, xor(body)))


def unlock_frame(board: int, channel: int) -> bytes:
    check_board(board, PROTOCOL)
    check_channel(board, channel, PROTOCOL)
    return _frame(UNLOCK_HEAD, board, channel, CMD_UNLOCK)


def query_frame(board: int) -> bytes:
    check_board(board, PROTOCOL)
    return _frame(QUERY_HEAD, board, 0x00, CMD_QUERY)


def unlock_reply(board: int, channel: int, status: int = ACK_DONE) -> bytes:
    return _frame(UNLOCK_HEAD, board, channel, status)


def query_reply(board: int, bits: int, status_bytes: int) -> bytes:
    """A query reply carrying `bits` (bit 0 = channel 1) in `status_bytes` bytes, highest first."""
    groups = [(bits >> (8 * i)) & 0xFF for i in reversed(range(status_bytes))]
    return _frame(QUERY_HEAD, board, *groups, CMD_QUERY)


def status_bytes_for(channels: int) -> tuple[int, ...]:
    """Status bytes a board of this size may answer with: ceil(channels / 8), or at least 3.

    The one verified reply (8 channels) carries 3 status bytes, more than its channels need, so
    boards up to 24 channels may pad to 3 just the same; a later source expects exactly
    ceil(channels / 8). Both lengths are accepted.
    """
    exact = ceil(channels / 8)
    return tuple(sorted({exact, max(VERIFIED_8_CHANNEL_STATUS_BYTES, exact)}))


class GenericCodec:
    """Protocol G. Built with the boards on the bus so that query replies have known lengths."""

    name = PROTOCOL.name
    protocol = PROTOCOL

    def __init__(self, boards: Sequence[BoardConfig] = ()) -> None:
        counts: set[int] = set()
        for board in boards:
            counts.update(status_bytes_for(board.channels))
        if not counts:  # no boards given: accept every size the protocol has
            counts = set(range(1, MAX_STATUS_BYTES + 1))
        # shortest first: a frame is taken at the first length whose marker and XOR check out
        self.query_lengths = tuple(sorted(n + 4 for n in counts))

    def unlock_requests(self, board: int, channel: int) -> tuple[Request, ...]:
        return (Request("unlock", board, unlock_frame(board, channel), channel),)

    def status_requests(
        self, board: BoardConfig, channels: tuple[int, ...] | None = None
    ) -> tuple[Request, ...]:
        return (Request("status", board.address, query_frame(board.address)),)

    def frame_at(self, buffer: bytes | bytearray) -> int:
        head = buffer[0]
        if head == UNLOCK_HEAD:
            if len(buffer) >= 4 and buffer[3] not in (ACK_DONE, ACK_ZERO):
                return INVALID
            if len(buffer) < 5:
                return NEED_MORE
            return 5 if buffer[4] == xor(buffer[:4]) else INVALID
        if head != QUERY_HEAD:
            return INVALID
        for length in self.query_lengths:
            if len(buffer) < length:
                return NEED_MORE
            if buffer[length - 2] == CMD_QUERY and buffer[length - 1] == xor(buffer[: length - 1]):
                return length
        return INVALID

    def answers(self, request: Request, reply: bytes) -> bool:
        if len(reply) < 5 or reply[1] != request.board:
            return False
        if request.kind == "unlock":
            return reply[0] == UNLOCK_HEAD and reply[2] == request.channel
        if request.kind == "status":
            return reply[0] == QUERY_HEAD and reply[-2] == CMD_QUERY
        return False

    def check_unlock(self, request: Request, reply: bytes) -> None:
        # 0x11 and 0x00 both acknowledge the command (Open-Locker's decodeUnlockAck): what the
        # byte says about the latch is feedback, and door detection is the status poll's job
        return None

    def decode_doors(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        groups = reply[2:-2]  # status bytes, highest channel group first
        states: dict[int, bool] = {}
        for index, value in enumerate(reversed(groups)):  # index 0 = channels 1-8
            for bit in range(8):
                states[index * 8 + bit + 1] = closed_from_bit(value >> bit & 1, board)
        return doors_only(states, board)

    def decode_items(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        return {}  # no item bits in this protocol (docs/protocols.md)

    def pulse_time_request(self, board: int, pulse_ms: int) -> Request:
        raise no_pulse_time(PROTOCOL, board)
