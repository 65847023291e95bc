"""The cold chain's footprint: database size for a year of HACCP records, bytes written per day.

1. A year: 365 days of readings every five minutes for the three zones, written as the zone loop
   writes them (a day per transaction here, for speed), then the file size: bare rows, and
   through locker.domain.haccp (each row chained to the one before, each day's head signed), with
   the CPU a reading costs to write and to verify, and what a signature costs.
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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

import hardware.codecs  # noqa: E402, F401  (registers the lock-board protocols load_config reads)
from hardware.probes import DS18B20Probe  # noqa: E402
from locker.domain import haccp  # noqa: E402
from locker.domain.clock import SimClock  # noqa: E402
from locker.domain.codes import create_keys  # noqa: E402
from locker.domain.coldchain import RECORD_INTERVAL_S  # noqa: E402
from locker.domain.config import load_config  # noqa: E402
from locker.domain.daemon import Locker  # noqa: E402
from locker.domain.model import DoorSense, Zone  # noqa: E402
from locker.domain.ports import HardwareListener  # noqa: E402
from locker.domain.store import Store  # noqa: E402
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


def year_of_records(folder: Path, chained: bool) -> int:
    """Returns the file's size; `chained` writes through locker.domain.haccp (hash chain, signed
    days), else bare rows as before the chain."""
    store = Store(folder / f"year-{chained}.db")
    key = Ed25519PrivateKey.generate()
    per_day = int(86400 / RECORD_INTERVAL_S)
    start = 1_800_000_000.0
    cpu = time.process_time()
    for day in range(365):
        with store.transaction(start) as tx:
            base = start + day * 86400
            for i in range(per_day):
                for zone, celsius in (("ambient", 19.0), ("fresh", 3.0), ("frozen", -20.0)):
                    tx.now = base + i * RECORD_INTERVAL_S
                    if chained:
                        haccp.record(tx, key, "bench", zone, celsius, i % 2 == 0, False, 0)
                    else:
                        tx.execute("INSERT INTO temperatures (zone, at, celsius, compressor,"
                                   " defrosting) VALUES (?, ?, ?, ?, 0)",
                                   (zone, tx.now, celsius, i % 2))
    cpu = time.process_time() - cpu
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = 365 * per_day * 3
    verdict = None
    if chained:
        check = time.process_time()
        verdict = haccp.verify(store.read(), key.public_key(), "bench", start, start + 366 * 86400)
        check = time.process_time() - check
        assert verdict.ok, verdict
    store.close()
    size = (folder / f"year-{chained}.db").stat().st_size
    what = "chained and signed" if chained else "bare rows (before the chain)"
    print(f"a year of HACCP records, 3 zones every {RECORD_INTERVAL_S / 60:.0f} min, {what}:"
          f" {rows} readings, database {size / 1e6:.1f} MB ({size / rows:.0f} bytes a reading),"
          f" {cpu / rows * 1e6:.0f} µs CPU a reading to write")
    if verdict is not None:
        print(f"  `locker haccp verify` over the year: {check:.1f} s CPU"
              f" ({check / rows * 1e6:.1f} µs a reading, {verdict.heads} signed days checked)")
    return size


def signatures() -> None:
    key = Ed25519PrivateKey.generate()
    message = haccp.head_message("bench", "2026-12-01", 288, bytes(32))
    n = 2000
    cpu = time.process_time()
    for _ in range(n):
        key.sign(message)
    cpu = time.process_time() - cpu
    print(f"  a signature (a day's head, or a certificate): {cpu / n * 1e6:.0f} µs CPU; one a"
          " day and one an order; a signed head's event is ~330 bytes to central a day")


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
        bare = year_of_records(Path(tmp), chained=False)
        chained = year_of_records(Path(tmp), chained=True)
        print(f"  the chain costs {(chained - bare) / 365 / 1e3:.1f} kB a day on the card"
              f" ({(chained - bare) / 1e6:.1f} MB a year)")
        signatures()
        with tempfile.TemporaryDirectory(prefix="bench-w1-", dir="/dev/shm") as w1:
            asyncio.run(day_of_zone_loops(Path(tmp) / "day", Path(w1)))


if __name__ == "__main__":
    main()
