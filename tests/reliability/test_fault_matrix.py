"""The faults of docs/reliability.md's matrix that live nowhere else: the disk full, and a corrupt
or hostile config file. (Serial noise, silent boards, jams, forced doors, doors left open,
probes reading nonsense and central misbehaving each have their test where the matrix says.)

The disk is "full" the way SQLite sees a full disk: the store's file may not grow
(`PRAGMA max_page_count`), so every write fails with SQLITE_FULL, exactly as on a full card.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from locker.domain.errors import StoreError
from tests.support.configs import SMALL_CONFIG
from tests.support.paths import ROOT
from tests.support.rig import Rig


def fill_disk(rig: Rig) -> int:
    """Freeze the store at its current size; returns the page count to restore later."""
    db = rig.locker.store.db
    pages: int = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    return pages


async def test_a_full_disk_opens_nothing_says_so_and_corrupts_nothing(rig: Rig) -> None:
    orders = [rig.add("d0", "fresh:M")]
    fill_disk(rig)
    # telemetry fills the outbox's last pages (SQLite needs a new page only when one splits)
    for size in (4096, 512, 64, 1):
        with contextlib.suppress(StoreError):
            for _ in range(10_000):
                with rig.locker.store.transaction(rig.locker.clock.now()) as tx:
                    tx.emit("telemetry.filler", "telemetry", pad="x" * size)
    unlocks_before = len(rig.boards.doors.history)
    status, body = await rig.pickup(orders[0].code)
    assert status == 503 and body["error"] == "store"
    assert "full" in str(body["message"]) and "nothing was changed" in str(body["message"])
    assert rig.order_state("d0") == "ready"  # nothing recorded ...
    unlocks = [c for c in rig.boards.doors.history[unlocks_before:] if c.what == "unlock"]
    assert unlocks == []  # ... so nothing opened
    # room again: the same code works, and the file is sound
    rig.locker.store.db.execute("PRAGMA max_page_count = 1073741823")
    status, body = await rig.pickup(orders[0].code)
    assert status == 200, body
    await rig.until(lambda: rig.order_state("d0") == "collected")
    assert rig.locker.store.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


HOSTILE = {
    "binary garbage": bytes(range(256)) * 4,
    "not toml": b"[locker\nid = ",
    "a wrong type": SMALL_CONFIG.replace('id = "test-locker"', "id = 42").encode(),
    "an unknown key": SMALL_CONFIG.replace("[doors]", "[doors]\nopen_always = true").encode(),
    "deep nesting": b"x = " + b"[" * 100_000 + b"]" * 100_000,
    "too large": b"# " + b"x" * (2 << 20) + b"\n",
    "a channel twice": SMALL_CONFIG.replace("board = 0, channel = 2", "board = 0, channel = 1"
                                            ).encode(),
    "a negative timeout": SMALL_CONFIG.replace("open_timeout_s = 2", "open_timeout_s = -1"
                                               ).encode(),
    "NaN": SMALL_CONFIG.replace("left_open_alarm_s = 10", "left_open_alarm_s = nan").encode(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_corrupt_or_hostile_config_is_refused_clearly(tmp_path: Path, name: str) -> None:
    path = tmp_path / "locker.toml"
    path.write_bytes(HOSTILE[name])
    result = subprocess.run([sys.executable, "-m", "locker.cli", "check-config", "--config",
                             str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"locker: {path}:"), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr) < 2000
    assert not (tmp_path / "data").exists()  # nothing was created


def test_a_config_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "locker.toml"
    os.mkfifo(fifo)  # reading it would block for ever
    result = subprocess.run([sys.executable, "-m", "locker.cli", "check-config", "--config",
                             str(fifo)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a regular file" in result.stderr


def test_a_store_that_is_not_sqlite_is_refused_clearly(tmp_path: Path) -> None:
    from locker.domain.store import Store

    path = tmp_path / "locker.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"locker\.db"):
        Store(path)
    assert path.read_bytes() == b"this is not a database" * 100  # left as found
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(path).execute("SELECT 1 FROM sqlite_master").fetchall()
