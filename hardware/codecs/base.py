"""The shape every lock-board protocol codec has, and the frame extractor they share.

A codec turns "unlock board 2 channel 5" into bytes and bytes back into door states. It is pure:
no asyncio, no serial port, no clock, no logging of its own; the same input always gives the same
output, so golden frames from the sources are its tests. It must never write to the line and never
decide about retries or timing: that is the bus's job (hardware.bus).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from locker.domain.config import BoardConfig
from locker.domain.errors import HardwareError
from locker.domain.lockboards import ProtocolSpec

# what frame_at() answers besides a frame length
NEED_MORE = 0  # the bytes so far could still become a valid frame
INVALID = -1  # no valid frame starts at byte 0: drop ONE byte and scan again

# a buffer that never yields a frame is trimmed to this many bytes (noise must not grow memory)
MAX_BUFFER = 4096

RequestKind = Literal["unlock", "status", "config"]


class UnlockRefused(HardwareError):
    """The board answered the unlock but says it did not pulse the lock (fault or cooldown)."""


@dataclass(frozen=True)
class Request:
    """One frame to write to the line and who should answer it.

    `channel` is 1-based (as printed on the board's label) and set for an unlock, and for a status
    read that covers one lock only (protocol W). `expects_reply` is False for a frame the board
    does not answer (protocol K's unlock), which the bus writes and moves on from.
    """

    kind: RequestKind
    board: int
    frame: bytes
    channel: int | None = None
    expects_reply: bool = True

    @property
    def where(self) -> str:
        return f"board {self.board}" + (f" channel {self.channel}" if self.channel else "")


@runtime_checkable
class Codec(Protocol):
    """What the bus and the driver need from one protocol.

    A codec class is built as `Codec(boards)` with the boards on the bus (G needs their sizes to
    know its reply lengths; the others ignore them), and carries its protocol's declaration.
    """

    name: str
    protocol: ProtocolSpec

    def unlock_requests(self, board: int, channel: int) -> tuple[Request, ...]:
        """The frames of one unlock, in order; the last one that expects a reply acknowledges it."""
        ...

    def status_requests(
        self, board: BoardConfig, channels: tuple[int, ...] | None = None
    ) -> tuple[Request, ...]:
        """The transactions that read a board's doors (one for K and G, one per lock for W).

        `channels` limits a per-lock protocol to the channels actually wired; whole-board reads
        ignore it.
        """
        ...

    def frame_at(self, buffer: bytes | bytearray) -> int:
        """Length of a valid frame starting at buffer[0], or NEED_MORE, or INVALID."""
        ...

    def answers(self, request: Request, reply: bytes) -> bool:
        """Whether a complete, valid frame is the reply to this request (else it is stale)."""
        ...

    def check_unlock(self, request: Request, reply: bytes) -> None:
        """Raise UnlockRefused if the acknowledgement says the lock was not pulsed."""
        ...

    def decode_doors(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        """{channel: door is closed} for every channel this reply reports, polarity applied."""
        ...

    def decode_items(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        """{channel: something is inside} for every channel this reply reports item presence
        for; empty for a protocol without item bits (W and G)."""
        ...

    def pulse_time_request(self, board: int, pulse_ms: int) -> Request:
        """The frame that stores a board's unlock pulse time, for a protocol whose declaration
        says `pulse_time_settable`; the others raise ValueError."""
        ...


CodecFactory = Callable[[Sequence[BoardConfig]], Codec]


def no_pulse_time(spec: ProtocolSpec, board: int) -> ValueError:
    """The error of pulse_time_request for a protocol that cannot store a pulse time."""
    return ValueError(f"board {board}: protocol {spec.name} boards keep their own pulse time")


def extract_frames(codec: Codec, buffer: bytearray) -> tuple[list[bytes], int]:
    """Pull every complete frame out of `buffer` (in place); return them and the bytes dropped.

    On anything that cannot start a valid frame (unknown start byte, impossible length, bad
    checksum, a field out of range) exactly ONE byte is dropped and the scan starts again, so a
    burst of noise costs the frames it overlaps and never the link. An incomplete frame at the end
    stays in the buffer for the next read.
    """
    frames: list[bytes] = []
    dropped = 0
    while buffer:
        length = codec.frame_at(buffer)
        if length == NEED_MORE:
            break
        if length == INVALID:
            del buffer[0]
            dropped += 1
            continue
        frames.append(bytes(buffer[:length]))
        del buffer[:length]
    if len(buffer) > MAX_BUFFER:
        extra = len(buffer) - MAX_BUFFER
        del buffer[:extra]
        dropped += extra
    return frames, dropped


def closed_from_bit(bit: int, board: BoardConfig) -> bool:
    """Apply the board's polarity: bit_set means bit 1 = door closed, bit_clear the reverse."""
    return bool(bit) if board.door_closed_when == "bit_set" else not bit


def check_channel(board: int, channel: int, spec: ProtocolSpec) -> None:
    """Refuse a channel the protocol cannot address, before a byte is built."""
    if not 1 <= channel <= spec.channels:
        raise ValueError(
            f"board {board} channel {channel}: protocol {spec.name} drives channels"
            f" 1-{spec.channels}; fix the compartment's channel in [layout]"
        )


def check_board(board: int, spec: ProtocolSpec) -> None:
    if not spec.reaches(board):
        raise ValueError(
            f"board {board}: protocol {spec.name} addresses boards {spec.addresses};"
            " fix [[bus.boards]] address"
        )


def hexs(data: bytes | bytearray) -> str:
    """Bytes as the sources write them: '02 00 31 03 36'."""
    return data.hex(" ").upper()


def doors_only(states: Mapping[int, bool], board: BoardConfig) -> dict[int, bool]:
    """Keep the channels the board actually has (replies may carry spare bits)."""
    return {ch: closed for ch, closed in states.items() if 1 <= ch <= board.channels}
