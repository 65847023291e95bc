"""The cold chain's footprint: database size for a year of HACCP records, bytes written per day.

1. A year: 365 days of readings every five minutes for the three zones, written as the zone loop
   writes them (a day per transaction here, for speed), then the file size.
2. A day: the daemon's zone loops (fresh and frozen) on the simulated clock, with thermal models
   behind real DS18B20 files, for 24 simulated hours; the bytes the process wrote to the disk
   (/proc/self/io write_bytes: what reaches the SD card, WAL and checkpoints included).

Prints figures, asserts nothing.   python bench/coldchain.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hardware.probes import DS18B20Probe  # noqa: E402
from locker.clock import SimClock  # noqa: E402
from locker.codes import create_keys  # noqa: E402
from locker.coldchain import RECORD_INTERVAL_S  # noqa: E402
from locker.config import load_config  # noqa: E402
from locker.daemon import Locker  # noqa: E402
from locker.model import DoorSense, Zone  # noqa: E402
from locker.ports import HardwareListener  # noqa: E402
from locker.store import Store  # noqa: E402
from simulator.thermal import SimCompressor, ZoneModel  # noqa: E402

CONFIG = """
[locker]
id = "bench-cold"
data_dir = "data"
[gpio]
[layout]
compartments = [
  { id = "A1", zone = "ambient", size = "M", lock_pin = 17, door_pin = 27 },
  { id = "F1", zone = "fresh", size = "M", lock_pin = 22, door_pin = 23 },
  { id = "Z1", zone = "frozen", size = "M", lock_pin = 5, door_pin = 6 },
]
"""


class NoLocks:
    """This benchmark measures the zones only: a lock driver with every door shut."""

    async def start(self, listener: HardwareListener) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def unlock(self, compartment_id: str) -> None:
        return None

    async def read_doors(self) -> Mapping[str, DoorSense]:
        return {"A1": DoorSense.CLOSED, "F1": DoorSense.CLOSED, "Z1": DoorSense.CLOSED}

    def reachable(self, compartment_id: str) -> bool:
        return True


class ModelProbe:
    """A zone's thermal model stepped on the simulated clock, read through its 1-Wire file."""

    def __init__(self, model: ZoneModel, folder: Path, clock: SimClock) -> None:
        self.model, self.clock, self.last = model, clock, clock.now()
        self.file = folder / "w1_slave"
        folder.mkdir(parents=True)
        self.compressor = SimCompressor()
        self.reader = DS18B20Probe(self.file, monotonic=clock.monotonic)

    async def read_celsius(self) -> float:
        now = self.clock.now()
        self.model.step(now - self.last, compressor_on=self.compressor.on, door_open=False)
        self.last = now
        self.model.write_w1_slave(self.file)
        return await self.reader.read_celsius()


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def year_of_records(folder: Path) -> None:
    store = Store(folder / "year.db")
    per_day = int(86400 / RECORD_INTERVAL_S)
    start = 1_800_000_000.0
    for day in range(365):
        with store.transaction(start) as tx:
            base = start + day * 86400
            for i in range(per_day):
                for zone, celsius in (("ambient", 19.0), ("fresh", 3.0), ("frozen", -20.0)):
                    tx.execute("INSERT INTO temperatures (zone, at, celsius, compressor,"
                               " defrosting) VALUES (?, ?, ?, ?, 0)",
                               (zone, base + i * RECORD_INTERVAL_S, celsius, i % 2))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    size = (folder / "year.db").stat().st_size
    rows = 365 * per_day * 3
    print(f"a year of HACCP records, 3 zones every {RECORD_INTERVAL_S / 60:.0f} min:"
          f" {rows} readings, database {size / 1e6:.1f} MB ({size / rows:.0f} bytes a reading);"
          " kept 400 days, so the file stops growing there")


async def day_of_zone_loops(folder: Path, w1: Path) -> None:
    folder.mkdir()
    path = folder / "locker.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    create_keys(config)
    clock = SimClock()
    fresh, frozen = ZoneModel.fresh(), ZoneModel.frozen()
    fresh.temp_c, frozen.temp_c = 3.0, -21.0
    # the 1-Wire files live in memory (/dev/shm), as sysfs does on a Pi: only the store's
    # writes reach the disk
    probes = {Zone.FRESH: ModelProbe(fresh, w1 / "fresh", clock),
              Zone.FROZEN: ModelProbe(frozen, w1 / "frozen", clock)}
    locker = Locker(config, NoLocks(), clock,
                    zones={z: (p, p.compressor) for z, p in probes.items()})
    await locker.start()
    async def run(seconds: float) -> None:
        for _ in range(int(seconds / 10)):
            await clock.advance(10)
            await asyncio.sleep(0.0005)  # real time for the probe reads (a thread each)

    await run(3600)  # settle, then measure a day
    before, cpu_before, wall_before = written_bytes(), time.process_time(), time.perf_counter()
    recorded_before = locker.store.read().one("SELECT COUNT(*) AS n FROM temperatures")
    await run(86400)
    during = written_bytes() - before
    cpu_s, wall_s = time.process_time() - cpu_before, time.perf_counter() - wall_before
    readings = locker.store.read().one("SELECT COUNT(*) AS n FROM temperatures")
    recorded = (readings["n"] if readings else 0) - (
        recorded_before["n"] if recorded_before else 0)
    probe_reads = 2 * 86400 // 10
    events = locker.store.read().one("SELECT COUNT(*) AS n FROM outbox")
    await locker.stop()
    print(f"a simulated day of the fresh and frozen zone loops (a reading every 10 s, recorded"
          f" every 5 min): {during / 1e6:.2f} MB written to disk"
          f" (target: under 20 MB a day for the whole locker); {readings['n'] if readings else 0}"
          f" readings and {events['n'] if events else 0} events in the store")
    print(f"  CPU: {cpu_s / probe_reads * 1e6:.0f} µs per probe reading ({probe_reads} in the"
          f" day, {wall_s:.1f} s wall), {cpu_s / max(1, recorded) * 1e3:.2f} ms per HACCP reading"
          f" recorded ({recorded}); both carry the day's 86,400 housekeeping turns, which the"
          " simulated clock runs too")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cold-", dir=os.environ.get("TMPDIR")) as tmp:
        year_of_records(Path(tmp))
        with tempfile.TemporaryDirectory(prefix="bench-w1-", dir="/dev/shm") as w1:
            asyncio.run(day_of_zone_loops(Path(tmp) / "day", Path(w1)))


if __name__ == "__main__":
    main()
