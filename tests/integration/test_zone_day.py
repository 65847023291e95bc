"""A simulated day of one fresh zone: the thermal model writes the 1-Wire file, the DS18B20
reader reads it, the zone controller switches the compressor. (The zone loop in the daemon, the
HACCP record and the excursion alarms come next: see the cold-chain issue.)"""

from __future__ import annotations

from pathlib import Path

from hardware.probes import DS18B20Probe
from locker.domain.zones import ZoneControl, ZoneController
from simulator.thermal import ZoneModel


async def test_a_fresh_zone_holds_a_day_through_its_real_probe_file(tmp_path: Path) -> None:
    now = 0.0
    model = ZoneModel.fresh()
    model.temp_c = 3.0
    w1 = tmp_path / "28-000000000001" / "w1_slave"
    w1.parent.mkdir()
    probe = DS18B20Probe(w1, monotonic=lambda: now)
    control = ZoneControl(setpoint_c=2.5, hysteresis_c=1.0, min_off_s=180)
    controller = ZoneController(control, started_at=0.0)
    temps, off_since, on_steps = [], None, 0
    step = 30.0
    while now < 24 * 3600:
        model.write_w1_slave(w1)
        reading = await probe.read_celsius()
        was_on = controller.compressor_on
        decision = controller.decide(reading, now)
        if was_on and not decision.compressor_on:
            off_since = now
        if decision.compressor_on and not was_on and off_since is not None:
            assert now - off_since >= control.min_off_s  # never short-cycled
        door_open = (now % 3600) < 30  # a door opened for 30 s every hour
        model.step(step, compressor_on=decision.compressor_on, door_open=door_open)
        temps.append(model.temp_c)
        on_steps += decision.compressor_on
        now += step
    assert min(temps) >= 0.0 and max(temps) <= 4.0
    assert not controller.not_cooling
    assert 0.2 < on_steps / len(temps) < 0.8
