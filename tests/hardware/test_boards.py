"""BoardLockDriver against fake boards on a pseudo-terminal, for each protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from hardware.boards import BoardLockDriver
from hardware.codecs import UnlockRefused
from locker.domain.config import BoardConfig, BoardWiring, BusConfig, CompartmentConfig, GpioWiring
from locker.domain.errors import BoardOffline, UnknownCompartment
from locker.domain.model import DoorSense, Size, Zone
from tests.support.fake_boards import FakeBoard, FakeBus

ADDRESSES = {"kerong": (0, 1), "generic": (1, 2), "winnsen": (1, 2)}


@dataclass
class Listener:
    doors: list[tuple[str, DoorSense]] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    online: list[str] = field(default_factory=list)
    items: list[tuple[str, bool]] = field(default_factory=list)
    told: list[str] = field(default_factory=list)  # doors and items, in the order told

    def door_sensed(self, compartment_id: str, sense: DoorSense) -> None:
        self.doors.append((compartment_id, sense))
        self.told.append(f"door {compartment_id}")

    def item_sensed(self, compartment_id: str, occupied: bool) -> None:
        self.items.append((compartment_id, occupied))
        self.told.append(f"item {compartment_id}")

    def board_offline(self, board: str, reason: str) -> None:
        self.offline.append(board)

    def board_online(self, board: str) -> None:
        self.online.append(board)


@dataclass
class Rig:
    fake: FakeBus
    driver: BoardLockDriver
    listener: Listener
    first: int
    second: int


async def _rig(protocol: str) -> Rig:
    first, second = ADDRESSES[protocol]
    polarity = "bit_set"
    fake = FakeBus(
        protocol,
        [FakeBoard(first, 16, closed={1, 2, 3}), FakeBoard(second, 16, closed={1, 2, 3})],
    )
    config = BusConfig(
        port=fake.port, protocol=protocol,  # type: ignore[arg-type]
        baud=19200 if protocol == "kerong" else 9600,
        boards=(BoardConfig(first, 16, polarity), BoardConfig(second, 16, polarity)),  # type: ignore[arg-type]
        poll_interval_s=0.03, timeout_s=0.04, retries=1, offline_after=2, retry_offline_s=0.15,
        pulse_ms=300,
    )
    compartments = [
        CompartmentConfig(f"C{b}-{ch}", Zone.AMBIENT, Size.M, BoardWiring(b, ch))
        for b in (first, second) for ch in (1, 2, 3)
    ]
    compartments.append(CompartmentConfig("G1", Zone.AMBIENT, Size.S, GpioWiring(5, 6)))
    listener = Listener()
    driver = BoardLockDriver(config, compartments)
    await driver.start(listener)
    return Rig(fake, driver, listener, first, second)


@pytest.fixture(params=["kerong", "generic", "winnsen"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    rig = await _rig(request.param)
    yield rig
    await rig.driver.stop()
    rig.fake.close()


async def _until(condition: object, timeout: float = 1.5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.01)


async def test_first_read_is_the_baseline_and_only_changes_are_reported(rig: Rig) -> None:
    doors = await rig.driver.read_doors()
    assert set(doors.values()) == {DoorSense.CLOSED} and "G1" not in doors
    await asyncio.sleep(0.1)
    assert rig.listener.doors == []
    rig.fake.boards[rig.second].closed.discard(2)
    key = f"C{rig.second}-2"
    await _until(lambda: rig.listener.doors)
    await asyncio.sleep(0.1)
    assert rig.listener.doors == [(key, DoorSense.OPEN)]
    assert (await rig.driver.read_doors())[key] == DoorSense.OPEN


async def test_kerong_item_bits_are_reported_first_then_on_change_for_sensing_boards_only(
        ) -> None:
    fake = FakeBus("kerong", [FakeBoard(0, 16, closed={1, 2}, items={2}),
                              FakeBoard(1, 16, closed={1}, items={1})])
    config = BusConfig(
        port=fake.port, protocol="kerong", baud=19200,
        boards=(BoardConfig(0, 16, item_sensor=True), BoardConfig(1, 16)),
        poll_interval_s=0.03, timeout_s=0.04, retries=1, offline_after=2, retry_offline_s=0.15)
    compartments = [
        CompartmentConfig("S1", Zone.AMBIENT, Size.M, BoardWiring(0, 1), item_sensor=True),
        CompartmentConfig("S2", Zone.AMBIENT, Size.M, BoardWiring(0, 2), item_sensor=True),
        CompartmentConfig("N1", Zone.AMBIENT, Size.M, BoardWiring(1, 1)),
    ]
    listener = Listener()
    driver = BoardLockDriver(config, compartments)
    await driver.start(listener)
    try:
        # the first reading of each sensor is told (no reconcile pass for goods); board 1 has
        # no sensor: its infrared bit means nothing and is never reported
        assert sorted(listener.items) == [("S1", False), ("S2", True)]
        fake.boards[0].items = {1, 2}
        await _until(lambda: len(listener.items) == 3)
        fake.boards[0].items = {1}
        await _until(lambda: len(listener.items) == 4)
        await asyncio.sleep(0.1)
        assert listener.items[2:] == [("S1", True), ("S2", False)]
        assert listener.doors == []  # the doors did not move
        # goods and a door that both changed between two polls: the goods are told first
        fake.boards[0].items = {1, 2}
        fake.boards[0].closed.discard(2)
        await _until(lambda: len(listener.items) == 5 and listener.doors)
        assert listener.told[-2:] == ["item S2", "door S2"]
    finally:
        await driver.stop()
        fake.close()


async def test_unlock_returns_once_acknowledged_and_drops_repeats(rig: Rig) -> None:
    key = f"C{rig.first}-3"
    await asyncio.gather(rig.driver.unlock(key), rig.driver.unlock(key))  # one in flight
    await rig.driver.unlock(key)  # within pulse_ms: dropped
    assert rig.fake.boards[rig.first].unlocks == [3]
    await asyncio.sleep(0.35)  # after the pulse: a new unlock goes out
    await rig.driver.unlock(key)
    assert rig.fake.boards[rig.first].unlocks == [3, 3]
    unlocks = [r for r in rig.driver.bus.history if r.kind == "unlock"]
    assert len(unlocks) == 2


async def test_unknown_or_gpio_compartment_is_refused(rig: Rig) -> None:
    for compartment_id in ("nope", "G1"):
        with pytest.raises(UnknownCompartment, match=f"{compartment_id!r} is not wired"):
            await rig.driver.unlock(compartment_id)


async def test_offline_board_goes_unknown_once_and_comes_back(rig: Rig) -> None:
    rig.fake.boards[rig.second].silent = True
    await _until(lambda: rig.listener.offline)
    await asyncio.sleep(0.2)
    assert rig.listener.offline == [f"board {rig.second}"]
    unknown = {c for c, s in rig.listener.doors if s == DoorSense.UNKNOWN}
    assert unknown == {f"C{rig.second}-{ch}" for ch in (1, 2, 3)}
    assert len(rig.listener.doors) == 3
    with pytest.raises(BoardOffline):
        await rig.driver.unlock(f"C{rig.second}-1")
    await rig.driver.unlock(f"C{rig.first}-1")  # the other board is not stalled
    doors = await rig.driver.read_doors()
    assert doors[f"C{rig.second}-1"] == DoorSense.UNKNOWN
    assert doors[f"C{rig.first}-2"] == DoorSense.CLOSED
    rig.fake.boards[rig.second].silent = False
    await _until(lambda: rig.listener.online)
    await _until(lambda: len(rig.listener.doors) >= 6)
    assert rig.listener.online == [f"board {rig.second}"]
    assert rig.listener.doors[3:] == [(f"C{rig.second}-{ch}", DoorSense.CLOSED) for ch in (1, 2, 3)]


async def test_stop_closes_the_port_and_can_run_twice(rig: Rig) -> None:
    await rig.driver.stop()
    await rig.driver.stop()
    assert rig.driver.bus._protocol.transport is None


async def test_winnsen_refused_unlock_is_an_error() -> None:
    rig = await _rig("winnsen")
    try:
        rig.fake.boards[1].unlock_status = 0x02
        with pytest.raises(UnlockRefused, match="board 1 channel 2: the board refused"):
            await rig.driver.unlock("C1-2")
        assert not rig.driver.bus.is_offline(1)
    finally:
        await rig.driver.stop()
        rig.fake.close()


async def test_winnsen_polls_recently_unlocked_doors_first() -> None:
    rig = await _rig("winnsen")
    try:
        await rig.driver.unlock("C2-3")
        await asyncio.sleep(0.15)
        order = [r.frame[3:5] for _, r in rig.driver._cycle(recent_first=True)]
        assert order[0] == bytes([2, 3]) and len(order) == 6
        # on the wire: every complete cycle after the unlock starts with board 2 lock 3
        history = list(rig.driver.bus.history)
        after = [r.data[3:5] for r in history if r.kind == "status"][-12:]
        cycle = [bytes(p) for p in ((2, 3), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2))]
        assert any(after[i : i + 6] == cycle for i in range(len(after) - 5))
    finally:
        await rig.driver.stop()
        rig.fake.close()
