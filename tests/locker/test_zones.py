"""The zone controller on a simple first-order fridge, a simulated day at a time."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from locker.domain.zones import ZoneControl, ZoneController


@dataclass
class Box:
    """Just enough physics for the rules: heat leaks in, the compressor takes it out."""

    temp: float
    ambient: float = 20.0
    leak_per_s: float = 0.0005  # fraction of the gap to ambient closed per second
    cooling_c_per_s: float = 0.02
    dead: bool = False

    def step(self, dt: float, on: bool) -> None:
        self.temp += (self.ambient - self.temp) * self.leak_per_s * dt
        if on and not self.dead:
            self.temp -= self.cooling_c_per_s * dt


def run(controller: ZoneController, box: Box, seconds: float, dt: float = 10.0,
        probe: bool = True) -> list[tuple[float, float, bool]]:
    history = []
    t = controller.started_at
    end = t + seconds
    while t < end:
        decision = controller.decide(box.temp if probe else None, t)
        box.step(dt, decision.compressor_on)
        history.append((t, box.temp, decision.compressor_on))
        t += dt
    return history


FRESH = ZoneControl(setpoint_c=3.0, hysteresis_c=1.0, min_off_s=180)


def test_a_fresh_zone_holds_its_limits_for_a_day() -> None:
    controller = ZoneController(FRESH, started_at=0.0)
    history = run(controller, Box(temp=3.0), 24 * 3600)
    temps = [temp for _, temp, _ in history]
    assert min(temps) >= 0.0 and max(temps) <= 4.0
    assert not controller.not_cooling


def test_the_compressor_never_restarts_inside_its_minimum_off_time() -> None:
    controller = ZoneController(FRESH, started_at=0.0)
    history = run(controller, Box(temp=8.0, leak_per_s=0.005), 6 * 3600)
    last_off = None
    for (t, _, on), (_, _, was_on) in zip(history[1:], history, strict=False):
        if was_on and not on:
            last_off = t
        if on and not was_on and last_off is not None:
            assert t - last_off >= FRESH.min_off_s


def test_a_dead_compressor_trips_the_watchdog_and_recovery_clears_it() -> None:
    controller = ZoneController(FRESH, started_at=0.0)
    box = Box(temp=3.0)
    run(controller, box, 3600)
    box.dead = True
    run(controller, box, 2 * 3600)
    assert controller.not_cooling and box.temp > 4.0
    box.dead = False
    run(controller, box, 2 * 3600)
    assert not controller.not_cooling


def test_a_frozen_zone_defrosts_on_schedule() -> None:
    control = ZoneControl(setpoint_c=-20.0, defrost_every_s=6 * 3600, defrost_s=1200)
    controller = ZoneController(control, started_at=0.0)
    box = Box(temp=-20.0, cooling_c_per_s=0.05)
    defrosts = 0
    t = 0.0
    was = False
    while t < 24 * 3600:
        decision = controller.decide(box.temp, t)
        box.step(10, decision.compressor_on)
        assert not (decision.defrosting and decision.compressor_on)
        defrosts += decision.defrosting and not was
        was = decision.defrosting
        t += 10
    assert defrosts == 3  # at 6, 12 and 18 hours


def test_a_failed_probe_runs_a_fixed_duty_cycle() -> None:
    controller = ZoneController(FRESH, started_at=0.0)
    history = run(controller, Box(temp=3.0), 3600, probe=False)
    duty = sum(on for _, _, on in history) / len(history)
    assert 0.4 <= duty <= 0.6


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-40, 40)), min_size=10, max_size=400))
def test_no_reading_sequence_short_cycles_the_compressor(readings: list[float | None]) -> None:
    controller = ZoneController(FRESH, started_at=0.0)
    off_at = None
    for i, reading in enumerate(readings):
        before = controller.compressor_on
        decision = controller.decide(reading, i * 10.0)
        if before and not decision.compressor_on:
            off_at = i * 10.0
        if not before and decision.compressor_on and off_at is not None:
            assert i * 10.0 - off_at >= FRESH.min_off_s
