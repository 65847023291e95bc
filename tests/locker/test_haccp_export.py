"""`locker haccp export`: the record an inspector reads, as CSV."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from locker.cli import main
from locker.domain.coldchain import export_csv
from locker.domain.config import LockerConfig
from locker.domain.store import Store


def fill(store: Store, day_start: float) -> None:
    with store.transaction(day_start) as tx:
        for i in range(288):
            tx.execute("INSERT INTO temperatures (zone, at, celsius, compressor, defrosting)"
                       " VALUES ('fresh', ?, ?, ?, 0)", (day_start + i * 300,
                                                          None if i == 5 else 3.0, i % 2))
        excursion = tx.insert("excursions", {"zone": "fresh", "started_at": day_start + 3600,
                                             "ended_at": day_start + 5400, "peak_c": 6.4})
        tx.insert("orders", {"id": "o1", "version": 1, "sequence": 1, "state": "ready",
                             "created_at": day_start, "updated_at": day_start})
        tx.insert("order_flags", {"order_id": "o1", "excursion_id": excursion})


def test_the_export_lists_readings_and_excursions(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    day = time.mktime(time.strptime("2026-11-20", "%Y-%m-%d"))
    fill(store, day)
    out = io.StringIO()
    assert export_csv(store, day, day + 86400, out) == 288
    lines = list(csv.reader(io.StringIO(out.getvalue())))
    assert lines[0] == ["time", "zone", "celsius", "compressor", "defrost", "door openings"]
    assert lines[1][0].startswith("2026-11-20 00:00:00") and lines[1][2] == "3.0"
    assert lines[6][2] == "probe fault"
    excursion = next(row for row in lines if row and row[0] == "1")
    assert excursion[4:] == ["6.4", "30", "o1"]


def test_the_command_writes_a_file(config: LockerConfig, config_path: Path,
                                   tmp_path: Path) -> None:
    store = Store(config.database)
    fill(store, time.mktime(time.strptime("2026-11-20", "%Y-%m-%d")))
    store.close()
    out = tmp_path / "haccp.csv"
    assert main(["haccp", "export", "--config", str(config_path), "--from", "2026-11-20",
                 "--to", "2026-11-20", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1 + 288 + 3 + 2  # readings, excursions, setpoints
    assert main(["haccp", "export", "--config", str(config_path), "--from", "20/11/2026",
                 "--to", "2026-11-20"]) == 2  # a clear error, nothing written
