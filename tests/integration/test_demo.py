"""The newcomer's first command: `locker simulate --script` collects every demo order."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_demo_collects_every_order(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "locker.cli", "simulate", "--script", "--auto-close", "0.5",
         "--http-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 of 3 demo orders collected" in result.stdout
    assert "code refused (403 wrong_code)" in result.stdout
    assert "ALARM" not in result.stdout
    # the store the demo kept is a real SQLite file with the events in its outbox
    db = sqlite3.connect(tmp_path / "data" / "locker.db")
    kinds = [k for (k,) in db.execute("SELECT kind FROM outbox ORDER BY seq")]
    db.close()
    assert kinds.count("order.collected") == 3 and kinds.count("door.opened") == 6
