"""Simulated boards on a real pseudo-terminal, driven by hand with os.read/os.write."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from locker.domain.config import LockerConfig
from simulator.boards import SimulatedBoards
from simulator.doors import DoorRefused
from tests.support.pty_line import PtyClient

H = bytes.fromhex
Open = Callable[[str], PtyClient]


async def test_kerong_golden_frames_over_the_pty(kerong: LockerConfig, pty_client: Open) -> None:
    async with SimulatedBoards(kerong, pace=False) as boards:
        line = pty_client(boards.port)
        assert await line.transact(H("02 00 30 03 35"), 9) == H("02 00 35 FF FF 00 00 03 38")
        # an unlock gets no reply (as in both sources); the next status read shows the latch
        assert await line.transact(H("02 00 31 03 36"), 9, timeout_s=0.1) == b""
        assert await line.transact(H("02 00 30 03 35"), 9) == H("02 00 35 FE FF 00 00 03 37")
        assert await line.transact(H("02 15 31 03 4B"), 9, timeout_s=0.1) == b""
        assert await line.transact(H("02 10 30 03 45"), 9) == H("02 10 35 DF FF 00 00 03 28")
        assert [f.command for f in boards.received()] == [
            "status", "unlock", "status", "unlock", "status"]
        assert [f.channel for f in boards.received("unlock")] == [1, 6]


async def test_winnsen_and_generic_golden_over_the_pty(
    winnsen: LockerConfig, generic: LockerConfig, pty_client: Open
) -> None:
    async with SimulatedBoards(winnsen, pace=False) as boards:
        line = pty_client(boards.port)
        assert await line.transact(H("90 06 05 01 05 03"), 7) == H("90 07 85 01 05 01 03")
    async with SimulatedBoards(generic, pace=False) as boards:
        line = pty_client(boards.port)
        assert await line.transact(H("8A 01 01 11 9B"), 5) == H("8A 01 01 11 9B")
        assert await line.transact(H("80 01 00 33 B2"), 7) == H("80 01 FF FF FE 33 4C")


async def test_frame_split_across_writes_and_garbage_before(
    generic: LockerConfig, pty_client: Open
) -> None:
    async with SimulatedBoards(generic, pace=False) as boards:
        line = pty_client(boards.port)
        line.write(H("80 01"))
        await asyncio.sleep(0.005)
        assert await line.transact(H("00 33 B2"), 7) == H("80 01 FF FF FF 33 4D")
        assert await line.transact(H("FF 00 8A 8A 55 13") + H("8A 01 01 11 9B"), 5) == H(
            "8A 01 01 11 9B"
        )
        junk = [f for f in boards.frames if f.direction == "junk"]
        assert b"".join(f.data for f in junk) == H("FF 00 8A 8A 55 13")


async def test_stale_partial_frame_is_dropped_after_a_gap(
    generic: LockerConfig, pty_client: Open
) -> None:
    async with SimulatedBoards(generic, pace=False, frame_gap_s=0.02) as boards:
        line = pty_client(boards.port)
        line.write(H("8A 01"))  # half a frame, then the line goes quiet
        await asyncio.sleep(0.05)
        assert await line.transact(H("80 01 00 33 B2"), 7) == H("80 01 FF FF FF 33 4D")
        assert boards.frames[0].note == "stale partial frame"


async def test_silent_board_and_undeclared_board_never_answer(
    generic: LockerConfig, pty_client: Open
) -> None:
    async with SimulatedBoards(generic, pace=False) as boards:
        line = pty_client(boards.port)
        assert await line.transact(H("80 05 00 33 B6"), 7, timeout_s=0.05) == b""  # board 5
        boards.set_silent(1)
        assert await line.transact(H("8A 01 01 11 9B"), 5, timeout_s=0.05) == b""
        assert boards.doors.is_closed("B1C01")  # a dead board does not pulse either
        assert await line.transact(H("80 02 00 33 B1"), 7) != b""  # the others still answer
        boards.answer(1)
        assert await line.transact(H("8A 01 01 11 9B"), 5) == H("8A 01 01 11 9B")
        notes = [f.note for f in boards.received()]
        assert notes == ["no such board", "board silent", "", ""]


async def test_jammed_door_acknowledges_but_stays_shut(
    winnsen: LockerConfig, pty_client: Open
) -> None:
    async with SimulatedBoards(winnsen, pace=False) as boards:
        line = pty_client(boards.port)
        boards.jam("B1C05")
        assert await line.transact(H("90 06 05 01 05 03"), 7) == H("90 07 85 01 05 01 03")
        assert await line.transact(H("90 06 12 01 05 03"), 7) == H("90 07 92 01 00 05 03")
        assert boards.doors.times("B1C05", "latch", "released")
        assert boards.doors.times("B1C05", "door", "open") == []
        boards.unjam("B1C05")
        boards.open("B1C05")  # the person pulls while the latch is still released
        assert await line.transact(H("90 06 12 01 05 03"), 7) == H("90 07 92 01 01 05 03")


async def test_forced_door_opens_without_unlock(generic: LockerConfig, pty_client: Open) -> None:
    async with SimulatedBoards(generic, pace=False) as boards:
        line = pty_client(boards.port)
        boards.force("B1C03")
        assert await line.transact(H("80 01 00 33 B2"), 7) == H("80 01 FF FF FB 33 49")
        (change,) = boards.doors.history_of("B1C03", "door")
        assert (change.state, change.cause) == ("open", "force")
        assert boards.doors.history_of("B1C03", "unlock") == []
        assert boards.doors.lock("B1C03").latch_engaged
        with pytest.raises(DoorRefused):
            boards.open("B1C04")  # pulling a latched door does nothing


async def test_lock_fault_and_corrupted_reply_and_noise(
    generic: LockerConfig, pty_client: Open
) -> None:
    async with SimulatedBoards(generic, pace=False) as boards:
        line = pty_client(boards.port)
        boards.lock_fault("B1C02")
        assert await line.transact(H("8A 01 02 11 98"), 5) == H("8A 01 02 00 89")
        boards.corrupt_next_replies(1)
        bad = await line.transact(H("80 01 00 33 B2"), 7)
        assert bad[:6] == H("80 01 FF FF FF 33") and bad[6] != 0x4D
        assert await line.transact(H("80 01 00 33 B2"), 7) == H("80 01 FF FF FF 33 4D")
        sent = boards.inject_noise(5)
        assert await line.read(5) == sent
        assert boards.inject_noise(H("AA 55")) == H("AA 55")
        assert await line.read(2) == H("AA 55")


async def test_latch_pulse_and_auto_close_history(generic: LockerConfig, pty_client: Open) -> None:
    async with SimulatedBoards(generic, pace=False, auto_close_s=0.05) as boards:
        line = pty_client(boards.port)
        await line.transact(H("8A 01 01 11 9B"), 5)
        doors = boards.doors
        for _ in range(200):
            if doors.is_closed("B1C01") and doors.lock("B1C01").latch_engaged:
                break
            await asyncio.sleep(0.01)
        (opened,) = doors.times("B1C01", "door", "open")
        (closed,) = doors.times("B1C01", "door", "closed")
        (released,) = doors.times("B1C01", "latch", "released")
        (engaged,) = doors.times("B1C01", "latch", "engaged")
        assert released == opened
        assert engaged - released == 100_000_000  # pulse_ms of the config, exactly
        assert 0.045 < (closed - opened) / 1e9 < 0.3
        assert [c.cause for c in doors.history_of("B1C01", "door")] == ["board", "auto"]
        assert doors.is_closed("B1C01") and doors.lock("B1C01").latch_engaged


async def test_pacing_delays_the_reply_by_the_frame_times(
    generic: LockerConfig, pty_client: Open
) -> None:
    async with SimulatedBoards(generic, pace=True, turnaround_s=0.001) as boards:
        line = pty_client(boards.port)
        start = time.perf_counter()
        assert await line.transact(H("8A 01 01 11 9B"), 5) == H("8A 01 01 11 9B")
        elapsed = time.perf_counter() - start
        floor = (5 + 5) * 10 / 9600 + 0.001  # 11.4 ms at 9600 baud
        assert floor - 0.0005 <= elapsed < floor + 0.05
        rx, tx = boards.received()[0], boards.sent()[0]
        assert rx.wire_end_ns is not None and tx.wire_end_ns is not None
        assert (tx.wire_end_ns - rx.t_ns) / 1e9 == pytest.approx(floor, abs=1e-6)
        assert tx.t_ns >= tx.wire_end_ns


async def test_symlink_and_daemon_reopening_the_port(
    generic: LockerConfig, pty_client: Open, tmp_path: Path
) -> None:
    link = str(tmp_path / "ttyLOCK")
    async with SimulatedBoards(generic, pace=False, link=link) as boards:
        assert os.path.realpath(link) == boards.port
        first = pty_client(link)
        await first.transact(H("8A 01 01 11 9B"), 5)
        first.close()
        second = PtyClient(link)  # the daemon was killed and started again
        try:
            assert await second.transact(H("80 01 00 33 B2"), 7) == H("80 01 FF FF FE 33 4C")
        finally:
            second.close()
    assert not os.path.lexists(link)


async def test_frame_records_are_bounded(generic: LockerConfig, pty_client: Open) -> None:
    async with SimulatedBoards(generic, pace=False, max_frames=3) as boards:
        line = pty_client(boards.port)
        for _ in range(3):
            await line.transact(H("80 01 00 33 B2"), 7)
        assert boards.frames_total == 6 and len(boards.frames) == 3
        assert [f.direction for f in boards.frames_since(4)] == ["rx", "tx"]
        assert len(boards.frames_since(0)) == 3
