"""The newcomer's first command: `locker simulate --script` collects every demo order, with
orders from the reference central and every event delivered back to it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from simulator.processes import free_port
from tests.support.paths import ROOT


def test_the_demo_collects_every_order(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "locker.cli", "simulate", "--script", "--auto-close", "0.5",
         "--http-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 of 3 demo orders collected" in result.stdout
    assert "code refused (403 wrong_code)" in result.stdout
    # the scripted excursion's alarm, and no other
    alarms = [line for line in result.stdout.splitlines() if "ALARM" in line]
    assert alarms and all("ALARM zone_excursion raised: the fresh zone" in a for a in alarms)
    assert "F04 kept back" in result.stdout or "kept back, its zone reached" in result.stdout
    assert "still in the locker's outbox" in result.stdout
    # the last customer hands back crates; a return code from central brings a fridge item
    assert "2 returns deposited; the couriers' list has 2 to take back" in result.stdout
    assert "cold-chain certificate of" in result.stdout and "signature verified" in result.stdout
    page = next((tmp_path / "data").glob("certificate-*.html"))
    assert "<svg" in page.read_text() or "No readings" in page.read_text()
    # both stores the demo kept are real SQLite files: central holds every event, once
    db = sqlite3.connect(tmp_path / "data" / "locker" / "locker.db")
    states = {i.split("-")[1]: s for (i, s) in db.execute("SELECT id, state FROM orders")}
    db.close()
    # the first order's fresh bag met the scripted excursion: kept back, for a courier
    assert states == {"1": "withheld", "2": "collected", "3": "collected"}
    central = sqlite3.connect(next((tmp_path / "data" / "central").glob("*.db")))
    tables = [t for (t,) in central.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert "events" in tables, tables
    kinds = [k for (k,) in central.execute("SELECT kind FROM events")]
    central.close()
    # 3 loadings (6 doors), 3 collections (5 doors, the kept bag's stays shut) and 2 returns:
    # 13 door openings, each event once
    assert kinds.count("order.collected") == 3 and kinds.count("door.opened") == 13
    assert kinds.count("order.bag_withheld") == 1
    assert kinds.count("order.return_deposited") == 2


def test_the_demo_without_a_keyboard_says_to_use_the_browser(tmp_path: Path) -> None:
    # standard input is /dev/null, as under nohup or a service: the loop cannot watch it
    demo = subprocess.Popen(
        [sys.executable, "-m", "locker.cli", "simulate", "--auto-close", "0.5",
         "--http-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    assert demo.stdout is not None
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "no keyboard here" in line:
                break
        assert "in a browser" in lines[-1], "".join(lines)
        demo.terminate()  # as a service is stopped
        rest = demo.communicate(timeout=30)[0]
        assert demo.returncode == 0, "".join(lines) + rest
    finally:
        if demo.poll() is None:
            demo.kill()
    assert "Traceback" not in rest and "stopped" in rest
