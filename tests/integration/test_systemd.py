"""`locker run` as systemd runs it: READY once reconciled, WATCHDOG pings while alive, STOPPING
and a clean store on SIGTERM, JSON log lines without a secret or a pickup code in them.

The notify socket is a real unix datagram socket, the daemon a real process, the lock boards
another process on a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.systemd import Notifier
from locker.domain.codes import create_keys, create_private_file
from locker.domain.config import load_config
from locker.domain.staff import create_secret, load_secret
from simulator.control import spawn
from simulator.processes import free_port
from tests.support.configs import config_text
from tests.support.paths import ROOT
from tests.support.rig import OPS_TOKEN


def receive(sock: socket.socket, wanted: str, timeout_s: float) -> list[str]:
    """Datagrams until one starts with `wanted` (all of them, in order)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if seen[-1].startswith(wanted):
            return seen
    raise AssertionError(f"no {wanted!r} from the daemon; got {seen}")


async def test_ready_watchdog_and_a_clean_stop_under_systemd(tmp_path: Path) -> None:
    path = tmp_path / "locker.toml"
    http_port = free_port()
    path.write_text(config_text("kerong") + f"\n[http]\nport = {http_port}\n")
    config = load_config(path)
    create_keys(config)
    create_private_file(config.ops_token_file, OPS_TOKEN)
    for member in config.staff.members:
        create_secret(config.staff_secret_file(member.id))
    added = subprocess.run(
        [sys.executable, "-m", "locker.cli", "order-add", "--config", str(path), "--id", "s-1",
         "--bag", "fresh:S"], cwd=ROOT, capture_output=True, text=True, check=True)
    code = added.stdout.split("pickup code: ")[1].strip()  # 123 4567 8901

    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    boards = await spawn(path, auto_close_s=0.6)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(notify),
           "WATCHDOG_USEC": "1000000"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "locker.cli", "--log-format", "json", "run", "--config",
         str(path), "--serial-port", boards.port], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = receive(sock, "READY=1", 15)[-1]
        assert "STATUS=ready: 6 compartments" in ready
        pings = receive(sock, "WATCHDOG=1", 3) + receive(sock, "WATCHDOG=1", 3)
        assert pings.count("WATCHDOG=1") >= 2
        wrong = subprocess.run(  # curl-like calls through the standard library, from a thread
            [sys.executable, "-c", PICKUP, str(http_port), "00000000000"], capture_output=True,
            text=True)
        assert wrong.stdout.strip() == "403"
        right = subprocess.run([sys.executable, "-c", PICKUP, str(http_port), code],
                               capture_output=True, text=True)
        assert right.stdout.strip() == "200"
        await asyncio.sleep(1.5)  # the doors open and close
        daemon.send_signal(signal.SIGTERM)
        assert receive(sock, "STOPPING=1", 10)
        _, stderr = daemon.communicate(timeout=15)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        await boards.stop()
        sock.close()
    assert daemon.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    assert any("ready in" in line["msg"] for line in lines)
    assert lines[-1]["msg"] == "stopped; store closed"
    for secret in (code, code.replace(" ", ""), config.digest_key_file.read_text().strip(),
                   config.box_key_file.read_text().strip(), OPS_TOKEN,
                   load_secret(config.staff_secret_file("courier-1"))):
        assert secret not in stderr
    wal = Path(f"{config.database}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and closed
    db = sqlite3.connect(config.database)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT state FROM orders").fetchone() == ("collected",)
    db.close()


PICKUP = """
import json, sys, urllib.error, urllib.request
port, code = sys.argv[1], sys.argv[2]
request = urllib.request.Request(f"http://127.0.0.1:{port}/api/pickup", method="POST",
    data=json.dumps({"code": code, "screen": "front"}).encode(),
    headers={"Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


class Stalled:
    """A locker whose housekeeping stopped turning."""

    def alive(self, max_age_s: float) -> bool:
        return False


class Alive:
    def alive(self, max_age_s: float) -> bool:
        return True


@pytest.mark.parametrize("locker, pings", [(Alive(), True), (Stalled(), False)])
async def test_the_watchdog_is_pinged_only_while_housekeeping_turns(
        tmp_path: Path, locker: object, pings: bool) -> None:
    path = tmp_path / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"})
    task = asyncio.create_task(notifier.watchdog(locker))  # type: ignore[arg-type]
    await asyncio.sleep(0.35)
    task.cancel()
    got = []
    while True:
        try:
            got.append(sock.recv(100).decode())
        except BlockingIOError:
            break
    sock.close()
    assert (got.count("WATCHDOG=1") >= 2) is pings


def test_no_notify_socket_means_no_calls() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.notify("READY=1") is False
    assert Notifier({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}).watchdog_s is None
