"""The transport fed fake byte streams: split frames, two in one read, garbage, resync."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from hardware.codecs import get_codec, kerong
from hardware.transport import FrameProtocol, open_serial
from locker.domain.errors import HardwareError

A = kerong.status_reply(0, 0x00FF)
B = kerong.status_reply(1, 0xFF00)


def _protocol() -> tuple[FrameProtocol, list[bytes]]:
    frames: list[bytes] = []
    return FrameProtocol(get_codec("kerong"), frames.append), frames


def test_frame_split_across_reads() -> None:
    protocol, frames = _protocol()
    protocol.data_received(A[:2])
    protocol.data_received(A[2:7])
    assert frames == []
    protocol.data_received(A[7:])
    assert frames == [A]


def test_two_frames_in_one_read() -> None:
    protocol, frames = _protocol()
    protocol.data_received(A + B)
    assert frames == [A, B]


def test_garbage_before_and_inside() -> None:
    protocol, frames = _protocol()
    protocol.data_received(b"\xff\x13" + A[:4])
    protocol.data_received(b"\x02\x99" + B)  # A is cut short by noise: lost, B survives
    assert frames == [B]
    assert protocol.dropped_bytes > 0


def test_bad_checksum_resyncs_on_the_next_frame() -> None:
    protocol, frames = _protocol()
    broken = A[:-1] + bytes([A[-1] ^ 1])
    protocol.data_received(broken + B)
    assert frames == [B]
    assert protocol.dropped_bytes == len(broken)


def test_write_on_a_closed_port_is_a_clear_error() -> None:
    protocol, _ = _protocol()
    with pytest.raises(HardwareError, match="serial port is closed"):
        protocol.write(b"\x02")


async def test_opens_a_pseudo_terminal_and_reads_frames() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    protocol, frames = _protocol()
    transport = await open_serial(os.ttyname(slave), 19200, protocol)
    try:
        os.write(master, A[:3])
        os.write(master, A[3:] + B)
        for _ in range(100):
            if len(frames) == 2:
                break
            await asyncio.sleep(0.01)
        assert frames == [A, B]
        protocol.write(kerong.status_frame(0))
        await asyncio.sleep(0.05)
        assert os.read(master, 64) == kerong.status_frame(0)
    finally:
        transport.close()
        await asyncio.sleep(0.01)
        os.close(master)
        os.close(slave)


async def test_opening_a_missing_port_says_what_to_do() -> None:
    protocol, _ = _protocol()
    with pytest.raises(HardwareError, match=r"check bus\.port"):
        await open_serial("/dev/does-not-exist", 9600, protocol)
