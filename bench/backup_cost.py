"""The rolling backup's cost on the card: its size and bytes written, for a store a year old.

A store as a locker has it after 400 days (the HACCP record's retention): two regulated zones
recorded every 5 minutes (230,400 rows), the bulk of a year-old store. Orders (a few hundred
KiB: finished ones are pruned after 30 days) are left out: only the lifecycle writes them.
Then `locker.domain.backup.take` into a `.xz` as the daemon's rolling backup does, with this
process's /proc/self/io write_bytes before and after. Prints figures, asserts nothing. About 10 s.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from locker.domain.backup import take
from locker.domain.datadir import give_identity
from locker.domain.store import Store

DAY = 86400.0
HACCP_DAYS = 400


def written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def fill(store: Store, now: float) -> None:
    rng = random.Random(400)
    db = store.db
    with db:
        for zone, base in (("fresh", 3.0), ("frozen", -20.0)):
            db.executemany(
                "INSERT INTO temperatures (zone, at, celsius, compressor, defrosting,"
                " door_openings) VALUES (?, ?, ?, ?, 0, ?)",
                ((zone, now - HACCP_DAYS * DAY + i * 300.0,
                  round(base + rng.uniform(-1.2, 1.2), 2), rng.random() < 0.4,
                  rng.random() < 0.1) for i in range(int(HACCP_DAYS * DAY / 300))))


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        database = Path(work) / "locker.db"
        store = Store(database)
        now = time.time()
        give_identity(store, "bench-locker", now)
        fill(store, now)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        size = database.stat().st_size
        before, started = written(), time.perf_counter()
        copy = take(database, Path(work) / "backups" / "rolling.db.xz")
        took, wrote = time.perf_counter() - started, written() - before
        print(f"store a year old: {size / 1e6:.1f} MB ({HACCP_DAYS} days of HACCP record)")
        print(f"rolling backup: {copy.size / 1e6:.2f} MB compressed, {wrote / 1e6:.2f} MB"
              f" written, {took:.1f} s on this machine")
        print(f"  a day, taken every 24 h: {wrote / 1e6:.2f} MB of the 20 MB a day")


if __name__ == "__main__":
    main()
