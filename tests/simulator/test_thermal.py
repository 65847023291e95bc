"""ZoneModel: a bang-bang controller holds the zones, faults warm them, its w1_slave file parses.

The w1_slave file is parsed here by hand, with a third CRC-8 written in the test (no hardware/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.thermal import ZoneModel, maxim_crc8, w1_slave_text

DAY_S = 24 * 3600
STEP_S = 10.0


def run_bang_bang(zone: ZoneModel, setpoint_c: float, seconds: float) -> tuple[list[float], float]:
    """On above setpoint+1, off below setpoint-1; every temperature seen, and the duty cycle."""
    on = False
    temps: list[float] = []
    on_steps = 0
    steps = int(seconds / STEP_S)
    for _ in range(steps):
        if zone.temp_c > setpoint_c + 1:
            on = True
        elif zone.temp_c < setpoint_c - 1:
            on = False
        on_steps += on
        temps.append(zone.step(STEP_S, compressor_on=on, door_open=False))
    return temps, on_steps / steps


def crc8_by_hand(data: bytes) -> int:
    """CRC-8/MAXIM as polynomial division, MSB-first on bit-reversed bytes (another formulation)."""

    def rev(x: int) -> int:
        return int(f"{x:08b}"[::-1], 2)

    crc = 0
    for byte in data:
        crc ^= rev(byte)
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return rev(crc)


def parse_w1(text: str) -> float:
    first, second = text.splitlines()
    pad, verdict = first.split(" : crc=")
    crc_hex, yes = verdict.split(" ")
    assert yes == "YES"
    data = bytes.fromhex(pad)
    assert len(data) == 9 and int(crc_hex, 16) == data[8]
    assert crc8_by_hand(data[:8]) == data[8]
    pad2, t = second.split(" t=")
    assert pad2 == pad
    raw = int.from_bytes(data[:2], "little", signed=True)
    assert int(t) == int(raw * 62.5)  # t= agrees with the scratchpad, truncated like the kernel
    return int(t) / 1000


def test_fresh_holds_2_to_4_over_a_day_at_about_40_percent_duty() -> None:
    temps, duty = run_bang_bang(ZoneModel.fresh(), 3.0, DAY_S)
    # a sampled controller overshoots each threshold by at most one step's change (< 0.03 K)
    assert min(temps) >= 2.0 - 0.03 and max(temps) <= 4.0 + 0.03
    assert 0.35 <= duty <= 0.45


def test_frozen_holds_about_minus_20_at_about_50_percent_duty() -> None:
    temps, duty = run_bang_bang(ZoneModel.frozen(), -20.0, DAY_S)
    assert min(temps) >= -21.03 and max(temps) <= -18.97
    assert 0.45 <= duty <= 0.55


def test_a_dead_compressor_warms_the_zone_toward_the_room() -> None:
    zone, healthy = ZoneModel.fresh(), ZoneModel.fresh()
    zone.compressor_dead = True
    for _ in range(360):  # an hour with the compressor asked to run all the time
        zone.step(STEP_S, compressor_on=True, door_open=False)
        healthy.step(STEP_S, compressor_on=True, door_open=False)
    assert zone.temp_c > 3.0 + 1.0
    assert healthy.temp_c < 3.0
    for _ in range(30):
        zone.step(3600, compressor_on=True, door_open=False)
    assert zone.temp_c == pytest.approx(20.0, abs=0.1)


def test_an_open_door_warms_faster() -> None:
    closed, open_ = ZoneModel.fresh(), ZoneModel.fresh()
    for _ in range(60):  # ten minutes, compressor off
        closed.step(STEP_S, compressor_on=False, door_open=False)
        open_.step(STEP_S, compressor_on=False, door_open=True)
    assert open_.temp_c > closed.temp_c + 1.0 > 3.0 + 1.0


def test_the_step_is_exact_whatever_its_size() -> None:
    a, b = ZoneModel.frozen(), ZoneModel.frozen()
    a.step(600, compressor_on=True, door_open=True)
    for _ in range(600):
        b.step(1, compressor_on=True, door_open=True)
    assert a.temp_c == pytest.approx(b.temp_c, abs=1e-9)
    assert a.step(0, compressor_on=False, door_open=False) == a.temp_c


def test_warm_goods_mix_by_heat_capacity_and_the_zone_recovers() -> None:
    zone = ZoneModel.fresh()
    capacity = zone.heat_capacity_j_per_k
    # 5 kg at 20 °C: 17.5 kJ/K into 20 kJ/K at 3 °C
    assert zone.add_goods(5.0, 20.0) == pytest.approx((20_000 * 3 + 17_500 * 20) / 37_500)
    assert zone.heat_capacity_j_per_k == capacity + 17_500
    temps, _ = run_bang_bang(zone, 3.0, 6 * 3600)
    assert max(temps[-360:]) <= 4.03  # back in band within hours


def test_rejects_nonsense() -> None:
    zone = ZoneModel.fresh()
    with pytest.raises(ValueError):
        zone.step(-1, compressor_on=False, door_open=False)
    with pytest.raises(ValueError):
        zone.add_goods(-1, 5)
    with pytest.raises(ValueError):
        ZoneModel(
            temp_c=0,
            ambient_c=20,
            ua_w_per_k=0,
            door_leak_w_per_k=1,
            cooling_w=1,
            heat_capacity_j_per_k=1,
        )


def test_crc_matches_real_samples() -> None:
    # the brief's example, and ladecadence/EkiGo's testdata/ds18b20test.txt
    assert maxim_crc8(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert maxim_crc8(bytes.fromhex("3f0100007fff7f10")) == 0xE8
    assert crc8_by_hand(bytes.fromhex("3f0100007fff7f10")) == 0xE8


@pytest.mark.parametrize("temp_c", [23.125, 3.0, 0.0, -0.5, -18.5, -20.03, -55.0, 125.0])
def test_w1_text_parses(temp_c: float) -> None:
    assert parse_w1(w1_slave_text(temp_c)) == pytest.approx(temp_c, abs=1 / 16)


def test_w1_text_of_the_brief_sample() -> None:
    assert w1_slave_text(23.125) == (
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
    )
    assert w1_slave_text(-18.5).startswith("d8 fe 4b 46 7f ff 08 10 ")


def test_writes_and_removes_the_w1_file(tmp_path: Path) -> None:
    path = tmp_path / "28-0000000000ff" / "w1_slave"
    zone = ZoneModel.frozen()
    zone.write_w1_slave(path)
    assert parse_w1(path.read_text(encoding="ascii")) == -20.0
    zone.step(3600, compressor_on=False, door_open=False)
    zone.write_w1_slave(path)
    assert parse_w1(path.read_text(encoding="ascii")) == pytest.approx(zone.temp_c, abs=1 / 16)
    assert [p.name for p in path.parent.iterdir()] == ["w1_slave"]  # no temporary left behind
    zone.probe_unplugged = True
    zone.write_w1_slave(path)
    assert not path.exists()
    zone.write_w1_slave(path)  # unplugged twice: still fine
    zone.probe_unplugged = False
    zone.write_w1_slave(path)
    assert path.exists()
