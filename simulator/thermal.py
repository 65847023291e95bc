"""The thermal world of one cold zone: a first-order model, its faults, and its DS18B20 file.

    C dT/dt = UA (T_ambient - T) + door_leak (T_ambient - T) [door open] - cooling_w [compressor
    running and not dead]

`ZoneModel.step()` advances it with the exact solution of that linear equation over the step (the
inputs are constant during a step), so a 10 s step and a 1 h step agree and no step size can make
it unstable. `add_goods()` mixes in warm goods (their heat capacity stays in the zone). The faults
a test can inject are a dead compressor (it runs, nothing cools) and an unplugged probe.
`write_w1_slave()` writes what the kernel's w1-therm driver would show for a DS18B20 at the zone's
temperature, with a CRC computed here, so the daemon's probe driver can read the simulated zone
through a real file.

The defaults are plausible for a small locker cabinet, not measured on one: `fresh()` holds about
+3 °C with ~40 % compressor duty in a 20 °C room, `frozen()` about -20 °C with ~50 %.

It must NEVER import anything from hardware/ (its CRC and file format are written again here from
the DS18B20 datasheet and the kernel's output, so a bug in the driver cannot hide behind the same
bug in the simulator), and it never decides when the compressor runs: the caller does.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

FOOD_SPECIFIC_HEAT_J_PER_KG_K = 3500.0  # chilled food, mostly water; frozen food is nearer 1800
SENSOR_MIN_C = -55.0  # the DS18B20's range; the file never shows a value outside it
SENSOR_MAX_C = 125.0


def maxim_crc8(data: bytes) -> int:
    """Dallas/Maxim 1-Wire CRC-8 (x^8+x^5+x^4+1, LSB first, init 0), written from the datasheet."""
    crc = 0
    for byte in data:
        for bit in range(8):
            feedback = (crc ^ (byte >> bit)) & 1
            crc = (crc >> 1) ^ (0x8C if feedback else 0)
    return crc


def w1_slave_text(temp_c: float) -> str:
    """The w1_slave file the kernel shows for a DS18B20 (12-bit) reading `temp_c`."""
    raw = round(min(max(temp_c, SENSOR_MIN_C), SENSOR_MAX_C) * 16)  # signed, 1/16 °C steps
    # temperature LSB, MSB; TH, TL alarm registers at their factory values; config 12-bit;
    # reserved 0xff; a reserved byte that real DS18B20s show as 0x10 - (raw & 0xf); reserved 0x10
    body = bytes([raw & 0xFF, (raw >> 8) & 0xFF, 0x4B, 0x46, 0x7F, 0xFF, 0x10 - (raw & 0xF), 0x10])
    scratchpad = " ".join(f"{b:02x}" for b in body + bytes([maxim_crc8(body)]))
    milli_c = int(raw * 1000 / 16)  # the kernel's C integer division truncates toward zero
    return f"{scratchpad} : crc={maxim_crc8(body):02x} YES\n{scratchpad} t={milli_c}\n"


@dataclass
class ZoneModel:
    """One cold zone's air, walls and goods as a single heat capacity, in a room at `ambient_c`."""

    temp_c: float
    ambient_c: float
    ua_w_per_k: float  # heat leak through the walls and door seals
    door_leak_w_per_k: float  # extra exchange with the room while the door is open
    cooling_w: float  # heat the running compressor removes
    heat_capacity_j_per_k: float
    compressor_dead: bool = False  # fault: the compressor runs but nothing cools
    probe_unplugged: bool = False  # fault: write_w1_slave removes the file

    def __post_init__(self) -> None:
        for name in ("ua_w_per_k", "heat_capacity_j_per_k"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ZoneModel.{name} must be a positive number, not {value}")
        for name in ("door_leak_w_per_k", "cooling_w"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ZoneModel.{name} must be zero or more, not {value}")

    @classmethod
    def fresh(cls, *, ambient_c: float = 20.0) -> ZoneModel:
        """A chilled zone: losses 2 W/K (34 W at +3 °C in 20 °C), an 85 W compressor (40 %)."""
        return cls(
            temp_c=3.0,
            ambient_c=ambient_c,
            ua_w_per_k=2.0,
            door_leak_w_per_k=15.0,
            cooling_w=85.0,
            heat_capacity_j_per_k=20_000.0,
        )

    @classmethod
    def frozen(cls, *, ambient_c: float = 20.0) -> ZoneModel:
        """A frozen zone: losses 1.5 W/K (60 W at -20 °C in 20 °C), a 120 W compressor (50 %)."""
        return cls(
            temp_c=-20.0,
            ambient_c=ambient_c,
            ua_w_per_k=1.5,
            door_leak_w_per_k=15.0,
            cooling_w=120.0,
            heat_capacity_j_per_k=30_000.0,
        )

    def step(self, dt_s: float, *, compressor_on: bool, door_open: bool) -> float:
        """Advance `dt_s` seconds with the compressor and door as given; the new temperature."""
        if not (math.isfinite(dt_s) and dt_s >= 0):
            raise ValueError(f"dt_s must be zero or more seconds, not {dt_s}")
        conductance = self.ua_w_per_k + (self.door_leak_w_per_k if door_open else 0.0)
        cooling = self.cooling_w if compressor_on and not self.compressor_dead else 0.0
        # C dT/dt = G (T_a - T) - Q  =>  T -> T_eq = T_a - Q/G exponentially, time constant C/G
        equilibrium = self.ambient_c - cooling / conductance
        decay = math.exp(-conductance * dt_s / self.heat_capacity_j_per_k)
        self.temp_c = equilibrium + (self.temp_c - equilibrium) * decay
        return self.temp_c

    def add_goods(
        self,
        mass_kg: float,
        temp_c: float,
        *,
        specific_heat_j_per_kg_k: float = FOOD_SPECIFIC_HEAT_J_PER_KG_K,
    ) -> float:
        """Load goods at `temp_c`: the zone's temperature mixes by heat capacity; the new one."""
        if not (math.isfinite(mass_kg) and mass_kg >= 0):
            raise ValueError(f"mass_kg must be zero or more, not {mass_kg}")
        if not (math.isfinite(temp_c) and math.isfinite(specific_heat_j_per_kg_k)):
            raise ValueError("temp_c and specific_heat_j_per_kg_k must be finite numbers")
        goods = mass_kg * specific_heat_j_per_kg_k
        total = self.heat_capacity_j_per_k + goods
        self.temp_c = (self.heat_capacity_j_per_k * self.temp_c + goods * temp_c) / total
        self.heat_capacity_j_per_k = total
        return self.temp_c

    def write_w1_slave(self, path: str | Path) -> None:
        """Write the probe's w1_slave file for the current temperature (remove it if unplugged).

        Written to a temporary file and renamed, so a reader never sees half a file.
        """
        path = Path(path)
        if self.probe_unplugged:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(w1_slave_text(self.temp_c), encoding="ascii")
        os.replace(temporary, path)


class SimCompressor:
    """Stands in for a zone's compressor relay: the model reads `on`
    (locker.domain.ports.Compressor)."""

    def __init__(self) -> None:
        self.on = False

    def switch(self, on: bool) -> None:
        self.on = on


class ThermalRig:
    """The zones' physics in real time, for the demo: every `step_s` each model advances with its
    compressor's state and rewrites its 1-Wire file, which the daemon's real probe reader reads."""

    def __init__(self, folder: Path, models: dict[str, ZoneModel], step_s: float = 1.0) -> None:
        self.models = models
        self.step_s = step_s
        self.compressors = {zone: SimCompressor() for zone in models}
        self.files = {zone: folder / f"28-sim{zone}" / "w1_slave" for zone in models}
        for zone, path in self.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            models[zone].write_w1_slave(path)

    async def run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.step_s)
            now = time.monotonic()
            for zone, model in self.models.items():
                model.step(now - last, compressor_on=self.compressors[zone].on, door_open=False)
                model.write_w1_slave(self.files[zone])
            last = now
