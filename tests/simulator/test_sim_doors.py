"""The door model alone: latch pulses, springs, people, and the recorded history."""

from __future__ import annotations

import asyncio

import pytest

from simulator.doors import DoorRefused, Doors, Person
from simulator.protocols import UnlockResult


class FakeTime:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def test_without_spring_a_person_pulls_within_the_pulse_only() -> None:
    clock = FakeTime()
    doors = Doors([("A01", 1, 1), ("A02", 1, 2)], pulse_ms=500, spring=False, now_ns=clock)
    assert doors.unlock("A01") is UnlockResult.OK
    assert doors.is_closed("A01")  # no spring: it stays shut until pulled
    clock.ns += 200_000_000
    doors.open("A01")
    assert not doors.is_closed("A01")
    doors.unlock("A02")
    clock.ns += 600_000_000
    with pytest.raises(DoorRefused):
        doors.open("A02")  # too late: the latch engaged again at +500 ms
    # the re-engagement is recorded at the pulse's exact end, in time order
    assert doors.times("A02", "latch", "engaged") == [1_700_000_000]
    assert [c.t_ns for c in doors.history] == sorted(c.t_ns for c in doors.history)


def test_cooldown_fault_and_pulse_change() -> None:
    clock = FakeTime()
    doors = Doors([("A01", 1, 1)], pulse_ms=500, now_ns=clock)
    assert doors.unlock("A01") is UnlockResult.OK
    assert doors.unlock("A01") is UnlockResult.COOLDOWN
    clock.ns += 500_000_000
    doors.set_pulse_ms("A01", 1000)
    assert doors.unlock("A01") is UnlockResult.OK  # the door was open already: stays open
    assert doors.lock("A01").latch_released_until_ns == clock.ns + 1_000_000_000
    doors.lock_fault("A01")
    clock.ns += 2_000_000_000
    assert doors.unlock("A01") is UnlockResult.FAULT
    states = [(c.what, c.state) for c in doors.history_of("A01")]
    assert states == [
        ("unlock", "ok"),
        ("latch", "released"),
        ("door", "open"),
        ("unlock", "cooldown"),
        ("latch", "engaged"),
        ("pulse", "1000"),
        ("unlock", "ok"),
        ("latch", "released"),
        ("fault", "on"),
        ("latch", "engaged"),
        ("unlock", "fault"),
    ]


async def test_person_script_and_auto_close() -> None:
    doors = Doors([("A01", 1, 1), ("A02", 1, 2)], pulse_ms=100)
    person = Person(doors, auto_close_s=None)
    doors.unlock("A01")
    await person.script([(0.01, "close", "A01"), (0.0, "open", "A02"), (0.0, "force", "A02")])
    assert doors.is_closed("A01")
    assert [c.cause for c in doors.history_of("A02", "door")] == ["force"]
    person.auto_close_s = 0.02
    doors.close("A02")
    doors.force("A02")
    await asyncio.sleep(0.1)
    causes = [c.cause for c in doors.history_of("A02", "door")]
    assert causes == ["force", "person", "force", "auto"]
    person.stop()
    doors.cancel_timers()


async def test_the_person_moves_goods_in_watched_compartments_before_closing() -> None:
    doors = Doors([("A01", 1, 1), ("A02", 1, 2)], pulse_ms=10)
    person = Person(doors, auto_close_s=0.02, moves_goods=frozenset({"A01"}))
    for _ in range(2):  # a loading puts the bag in, the pickup takes it out
        doors.unlock("A01")
        doors.unlock("A02")
        await asyncio.sleep(0.1)
        assert doors.is_closed("A01") and doors.is_closed("A02")
    assert [(c.state, c.cause) for c in doors.history_of("A01", "goods")] == [
        ("in", "auto"), ("out", "auto")]
    assert doors.history_of("A02", "goods") == []  # no sensor there: nothing to show
    person.stop()
    doors.cancel_timers()
