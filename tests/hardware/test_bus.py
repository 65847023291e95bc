"""The bus against tiny fake boards on a real pseudo-terminal (protocol K at 19200 baud)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from hardware.bus import Bus, Priority
from hardware.codecs import get_codec
from locker.domain.config import BoardConfig, BusConfig
from locker.domain.errors import BoardOffline, BoardTimeout, HardwareError
from tests.support.fake_boards import FakeBoard, FakeBus

CODEC = get_codec("kerong")


@dataclass
class Events:
    offline: list[tuple[int, str]] = field(default_factory=list)
    online: list[int] = field(default_factory=list)


@dataclass
class Rig:
    fake: FakeBus
    bus: Bus
    events: Events

    def status(self, board: int) -> tuple[object, ...]:
        return CODEC.status_requests(BoardConfig(board))

    async def read(self, board: int, priority: Priority = Priority.POLL) -> bytes | None:
        return await self.bus.request(CODEC.status_requests(BoardConfig(board)), priority)


def _config(port: str, **kw: float) -> BusConfig:
    values: dict[str, float] = dict(
        timeout_s=0.05, retries=1, offline_after=2, retry_offline_s=0.2, poll_interval_s=0.05
    )
    values.update(kw)
    return BusConfig(
        port=port, protocol="kerong", baud=19200,
        boards=(BoardConfig(0), BoardConfig(1), BoardConfig(2)),
        poll_interval_s=values["poll_interval_s"], timeout_s=values["timeout_s"],
        retries=int(values["retries"]), offline_after=int(values["offline_after"]),
        retry_offline_s=values["retry_offline_s"],
    )


async def _rig(**kw: float) -> Rig:
    fake = FakeBus("kerong", [FakeBoard(0, closed={1}), FakeBoard(1), FakeBoard(2)])
    events = Events()
    bus = Bus(
        _config(fake.port, **kw), CODEC,
        on_offline=lambda b, r: events.offline.append((b, r)),
        on_online=events.online.append,
    )
    await bus.open()
    rig = Rig(fake, bus, events)
    # as the driver does at start: every board read once (an unknown board gets no unlock)
    for board in (0, 1, 2):
        await rig.read(board)
    bus.history.clear()
    fake.received.clear()
    return rig


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = await _rig()
    yield rig
    await rig.bus.close()
    rig.fake.close()


async def test_a_status_read_returns_the_boards_reply(rig: Rig) -> None:
    reply = await rig.read(0)
    assert reply is not None and reply[2] == 0x35 and reply[3] == 0x01
    kinds = [(r.direction, r.kind, r.board) for r in rig.bus.history]
    assert kinds == [("tx", "status", 0), ("rx", "reply", 0)]


async def test_an_unlock_queued_behind_polls_goes_first(rig: Rig) -> None:
    rig.fake.boards[0].delay_s = 0.02  # keep the first poll in flight while the others queue
    polls = [asyncio.create_task(rig.read(b)) for b in (0, 1, 2, 1, 2)]
    await asyncio.sleep(0.005)
    unlock = asyncio.create_task(rig.bus.request(CODEC.unlock_requests(2, 3), Priority.UNLOCK))
    await asyncio.gather(unlock, *polls)
    written = [(r.kind, r.board) for r in rig.bus.history if r.direction == "tx"]
    # the poll already on the wire finishes, then the unlock (and its confirming read) jumps
    # the queue, then the polls in the order they came
    assert written[:3] == [("status", 0), ("unlock", 2), ("status", 2)]
    assert written[3:] == [("status", 1), ("status", 2), ("status", 1), ("status", 2)]
    assert rig.fake.boards[2].unlocks == [3]


async def test_a_dropped_reply_is_retried(rig: Rig) -> None:
    rig.fake.boards[1].drop_next = 1
    assert await rig.read(1) is not None
    assert rig.bus.stats.timeouts == 1 and rig.bus.stats.retries == 1
    assert len(rig.fake.frames_of(0x30)) == 2


async def test_no_reply_after_the_retries_is_a_board_timeout(rig: Rig) -> None:
    rig.fake.boards[1].silent = True
    started = time.monotonic()
    with pytest.raises(BoardTimeout, match="board 1 did not answer its status request"):
        await rig.read(1)
    assert time.monotonic() - started < 0.5
    assert len(rig.fake.frames_of(0x30)) == 2  # one try and one retry (retries = 1)


async def test_offline_board_is_reported_once_fails_fast_and_comes_back(rig: Rig) -> None:
    rig.fake.boards[1].silent = True
    for _ in range(2):  # offline_after = 2 transactions
        with pytest.raises(BoardTimeout):
            await rig.read(1)
    assert [b for b, _ in rig.events.offline] == [1]
    assert rig.bus.is_offline(1)
    # fail fast, many times, and the other boards are served meanwhile
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(BoardOffline, match="board 1 is offline"):
            await rig.read(1)
        assert await rig.read(0) is not None
    assert time.monotonic() - started < 0.2
    assert len(rig.events.offline) == 1  # not once per poll
    with pytest.raises(BoardOffline):
        await rig.bus.request(CODEC.unlock_requests(1, 1), Priority.UNLOCK)  # no unlock as probe
    # it answers again: the next probe, after retry_offline_s, brings it back once
    rig.fake.boards[1].silent = False
    deadline = time.monotonic() + 1.0
    while rig.bus.is_offline(1) and time.monotonic() < deadline:
        try:
            await rig.read(1)
        except BoardOffline:
            await asyncio.sleep(0.02)
    assert not rig.bus.is_offline(1)
    assert rig.events.online == [1]
    assert await rig.read(1) is not None
    assert rig.fake.boards[1].unlocks == []


async def test_a_late_reply_is_discarded(rig: Rig) -> None:
    rig.fake.boards[1].delay_s = 0.15  # later than timeout + retry
    with pytest.raises(BoardTimeout):
        await rig.read(1)
    rig.fake.boards[1].delay_s = 0
    reply = await rig.read(0)  # board 1's late replies arrive around now
    assert reply is not None and reply[1] == 0x00
    await asyncio.sleep(0.2)
    assert rig.bus.stats.discarded_frames >= 1
    assert any(r.kind == "discarded" for r in rig.bus.history)
    assert (await rig.read(1)) is not None


async def test_garbage_on_the_line_is_skipped(rig: Rig) -> None:
    rig.fake.boards[2].garbage = b"\xff\x02\x13\x00\x02\x20"
    reply = await rig.read(2)
    assert reply is not None and reply[1] == 0x20
    assert rig.bus.dropped_bytes >= 5
    rig.fake.send(b"\x02\x00\x35\xff")  # half a frame from nowhere, then a normal transaction
    await asyncio.sleep(0.01)
    assert await rig.read(0) is not None


async def test_frames_keep_the_inter_frame_gap(rig: Rig) -> None:
    for board in (0, 1, 2, 0):
        await rig.read(board)
    await rig.bus.request(CODEC.unlock_requests(0, 2), Priority.UNLOCK)
    history = list(rig.bus.history)
    gap_ns = rig.bus.gap_s * 1e9
    for before, after in itertools.pairwise(history):
        if after.direction == "tx":
            assert after.t_ns - before.t_ns >= gap_ns * 0.95


async def test_a_caller_that_gives_up_does_not_stall_the_bus(rig: Rig) -> None:
    rig.fake.boards[1].delay_s = 0.02
    task = asyncio.create_task(rig.read(1))
    await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await rig.read(0) is not None


async def test_history_is_bounded() -> None:
    fake = FakeBus("kerong", [FakeBoard(0)])
    bus = Bus(_config(fake.port), CODEC, history_size=6)
    await bus.open()
    try:
        for _ in range(10):
            await bus.request(CODEC.status_requests(BoardConfig(0)))
        assert len(bus.history) == 6
    finally:
        await bus.close()
        fake.close()


async def test_a_board_never_heard_gets_no_unlock_and_its_first_failure_is_offline() -> None:
    fake = FakeBus("kerong", [FakeBoard(0), FakeBoard(1)])
    fake.boards[1].silent = True
    offline: list[int] = []
    bus = Bus(_config(fake.port), CODEC, on_offline=lambda b, r: offline.append(b))
    await bus.open()
    try:
        with pytest.raises(BoardOffline, match="has not answered since the start"):
            await bus.request(CODEC.unlock_requests(0, 1), Priority.UNLOCK)
        assert fake.frames_of(0x31) == []  # nothing went on the wire
        assert not bus.answers(0) and not bus.answers(1)
        assert await bus.request(CODEC.status_requests(BoardConfig(0))) is not None
        assert bus.answers(0)
        with pytest.raises(BoardTimeout):  # a dead board: offline at once, not in a few polls
            await bus.request(CODEC.status_requests(BoardConfig(1)))
        assert offline == [1] and not bus.answers(1)
        await bus.request(CODEC.unlock_requests(0, 1), Priority.UNLOCK)
        assert fake.boards[0].unlocks == [1]
    finally:
        await bus.close()
        fake.close()


async def test_closed_bus_refuses_requests(rig: Rig) -> None:
    await rig.bus.close()
    with pytest.raises(HardwareError, match="not running"):
        await rig.read(0)


async def test_kerong_unlock_works_whether_or_not_the_board_answers_it(rig: Rig) -> None:
    for answers in (False, True):
        rig.fake.boards[1].answers_unlock = answers
        reply = await rig.bus.request(CODEC.unlock_requests(1, 4), Priority.UNLOCK)
        assert reply is not None and reply[2] == 0x35 and reply[1] == 0x10
        await asyncio.sleep(0.02)
        assert await rig.read(0) is not None  # a second 0x35 of board 1 never answers board 0
    assert rig.fake.boards[1].unlocks == [4, 4]
