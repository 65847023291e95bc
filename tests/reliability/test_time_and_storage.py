"""Time and storage you can trust, through `locker run` as a real process with its boards on a
pty: the wall clock stepped under it with libfaketime, its store emptied, damaged, replaced or
rolled back (a WAL deleted after SIGKILL), a second daemon on the same data dir, and the disk
filling up mid-pickup on a small tmpfs."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from aiohttp import ClientSession, ClientTimeout

from locker.domain.codes import PickupCodes, load_codes
from locker.domain.config import LockerConfig
from locker.domain.orders import AddedOrder, add_ready_order, parse_bag
from locker.domain.staff import load_secret
from locker.domain.store import Store
from simulator.control import SimulatorProcess, spawn
from simulator.processes import Daemon, free_port
from tests.support.configs import SMALL_CONFIG
from tests.support.processes import prepare
from tests.support.rig import OPS_TOKEN

FAKETIME_LIBS = "/usr/lib/*/faketime/libfaketime.so.1"


def faketime_library() -> str:
    found = sorted(glob.glob(FAKETIME_LIBS))
    if not found:
        pytest.fail("libfaketime is missing: install Debian's faketime (./dev test does, as"
                    " root; or run: apt-get install faketime)")
    return found[0]


@dataclass
class Cabinet:
    path: Path
    config: LockerConfig
    boards: SimulatorProcess
    daemon: Daemon
    codes: PickupCodes

    def add(self, order_id: str, zone: str = "ambient") -> AddedOrder:
        """An order written by the order system, from another process (closed at once: the
        daemon's connection must stay the last one, or closing would checkpoint the WAL)."""
        store = Store(self.config.database)
        try:
            return add_ready_order(store, self.config, self.codes, time.time(), order_id,
                                   [parse_bag(f"{zone}:S")])
        finally:
            store.close()

    def kinds(self) -> list[str]:
        return [k for (k,) in self.daemon.query("SELECT kind FROM outbox ORDER BY seq")]

    async def pickup(self, session: ClientSession, code: str) -> tuple[int, dict[str, object]]:
        async with session.post(f"{self.daemon.url}/api/pickup", json={"code": code}) as answer:
            return answer.status, await answer.json()


@contextlib.asynccontextmanager
async def cabinet(folder: Path, *, extra: str = "", env: dict[str, str] | None = None,
                  data_dir: Path | None = None) -> AsyncIterator[Cabinet]:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    text = SMALL_CONFIG + f"\n[http]\nport = {port}\n" + extra
    if data_dir is not None:
        text = text.replace('data_dir = "data"', f'data_dir = "{data_dir}"')
    path = folder / "locker.toml"
    config, store = prepare(path, text)
    store.close()
    boards = await spawn(path, auto_close_s=0.6)
    daemon = Daemon(path, boards.port, port, database=config.database, env=env)
    codes = load_codes(config)
    try:
        yield Cabinet(path, config, boards, daemon, codes)
    finally:
        if daemon.process is not None and daemon.process.returncode is None:
            daemon.process.kill()
            await daemon.process.wait()
        await boards.stop()


# -- the clock ------------------------------------------------------------------------------------

async def test_the_clock_stepped_four_days_ahead_then_corrected_costs_nothing(
        tmp_path: Path) -> None:
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {"LD_PRELOAD": faketime_library(), "FAKETIME_TIMESTAMP_FILE": str(offset),
           "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    async with cabinet(tmp_path, env=env) as c, ClientSession() as session:
        await c.daemon.start(session)
        order = c.add("o1")
        secret = load_secret(c.config.staff_secret_file("courier-1"))
        offset.write_text("+4d\n")  # someone sets the date four days ahead
        await asyncio.sleep(2.5)
        ahead = time.time() + 4 * 86400
        async with session.post(f"{c.daemon.url}/api/staff/login", json={
                "staff": "courier-1", "code": pyotp.TOTP(secret).at(ahead)}) as answer:
            assert answer.status == 200  # the courier logs in on the wrong date
        for _ in range(3):  # free_wrong_codes = 2: the third sets a 10 s wait
            await c.pickup(session, "00000000000")
        status, body = await c.pickup(session, "00000000000")
        assert status == 429
        locked_for = float(body["retry_after_s"])  # type: ignore[arg-type]
        offset.write_text("+0\n")  # NTP corrects it
        await asyncio.sleep(2.5)
        steps = [r for r in c.daemon.query("SELECT payload FROM outbox WHERE kind ="
                                           " 'clock.stepped' ORDER BY seq")]
        assert len(steps) == 2
        assert c.daemon.query("SELECT state FROM orders WHERE id = 'o1'") == [("ready",)]
        status, body = await c.pickup(session, "00000000000")
        assert status == 429 and float(body["retry_after_s"]) <= locked_for  # type: ignore
        async with session.post(f"{c.daemon.url}/api/staff/login", json={
                "staff": "courier-1", "code": pyotp.TOTP(secret).now()}) as answer:
            assert answer.status == 200, await answer.text()  # not "replayed"
        await c.daemon.stop()
    store = Store(c.config.database)
    try:  # the window, four days "over" during the step, is still open
        row = store.read().one("SELECT state, window_end FROM orders WHERE id = 'o1'")
        assert row is not None and row["state"] == "ready" and row["window_end"] > time.time()
    finally:
        store.close()
    assert order.code


# -- the store ------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "foreign"])
async def test_a_damaged_or_replaced_store_is_refused_with_the_file_and_the_fix(
        tmp_path: Path, damage: str) -> None:
    async with cabinet(tmp_path / "locker") as c, ClientSession() as session:
        await c.daemon.start(session)
        c.add("o1")
        await c.daemon.stop()
        database = c.config.database
        data = database.read_bytes()
        if damage == "empty":
            database.write_bytes(b"")
        elif damage == "truncated":
            database.write_bytes(data[: len(data) // 3])
        elif damage == "flipped":
            middle = (len(data) // 1024 // 2) * 1024
            database.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:
                                 middle + 1024]) + data[middle + 1024:])
        else:  # another locker's store copied in
            other = tmp_path / "other"
            other.mkdir()
            (other / "locker.toml").write_text(SMALL_CONFIG.replace('"test-locker"',
                                                                     '"other-locker"'))
            subprocess.run([sys.executable, "-m", "locker.cli", "init", "--config",
                            str(other / "locker.toml")], check=True, capture_output=True,
                           cwd=Path(__file__).resolve().parents[2])
            shutil.copyfile(other / "data" / "locker.db", database)
        code, said = await c.daemon.refused()
        assert code == 2, said
        assert str(database) in said and "restore" in said and "Traceback" not in said


async def test_a_wal_deleted_after_a_power_cut_is_seen_and_reported(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as c, ClientSession() as session:
        await c.daemon.start(session)
        codes = [c.add(f"o{n}", zone).code for n, zone in enumerate(["ambient", "fresh"])]
        await asyncio.sleep(6)  # the marks beside the store are written
        await c.daemon.kill()
        for suffix in ("-wal", "-shm"):  # the WAL lost, with the transactions it held
            Path(f"{c.config.database}{suffix}").unlink(missing_ok=True)
        await c.daemon.start(session)
        kinds = c.kinds()
        assert "store.rolled_back" in kinds and "alarm.store_rolled_back" in kinds
        status, _ = await c.pickup(session, codes[0])
        assert status == 403  # what the lost WAL held is gone, and the locker says so
        fresh = c.add("o9", "frozen")  # and it serves again
        status, body = await c.pickup(session, fresh.code)
        assert status == 200 and body["failed"] == []
        await c.daemon.stop()


async def test_two_daemons_on_one_data_dir(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as c, ClientSession() as session:
        await c.daemon.start(session)
        assert c.daemon.process is not None
        second = Daemon(c.path, "/dev/null", free_port(), database=c.config.database)
        code, said = await second.refused()
        assert code == 2 and f"pid {c.daemon.process.pid}" in said
        assert "another locker daemon" in said
        await c.daemon.stop()


# -- a full disk -----------------------------------------------------------------------------------

async def test_a_disk_filled_mid_pickup_is_an_alarm_and_door_facts_wait_for_room(
        tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); the same"
                    " logic is tested with a read-only store in tests/locker/test_pickup.py")
    try:
        async with cabinet(tmp_path / "locker", data_dir=disk / "data") as c, \
                ClientSession(timeout=ClientTimeout(total=10)) as session:
            await c.daemon.start(session)
            order = c.add("o1")
            filler = disk / "filler"
            # the close flushes what the last write left: inside the suppress too
            with contextlib.suppress(OSError), open(filler, "wb") as out:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            status, body = await c.pickup(session, order.code)
            assert status == 503 and body["error"] == "store"
            assert c.daemon.query("SELECT COUNT(*) FROM authorisations") == [(0,)]
            async with session.get(f"{c.daemon.url}/api/health") as answer:
                health = await answer.json()
            assert answer.status == 503 and "full" in health["store"]
            async with session.get(f"{c.daemon.url}/api/ops/state",
                                   headers={"X-Ops-Token": OPS_TOKEN}) as answer:
                alarms = (await answer.json())["alarms"]
            assert [a["kind"] for a in alarms][:1] == ["disk_full"]
            await c.boards.client.force("A2")  # meanwhile a door is forced, and shut
            await asyncio.sleep(0.5)
            await c.boards.client.close("A2")
            await asyncio.sleep(0.5)
            filler.unlink()  # room again
            await asyncio.sleep(6)
            kinds = c.kinds()
            assert kinds.index("door.forced") < kinds.index("door.closed")
            assert "alarm.disk_full" in kinds
            emitted = {r[0] for r in c.daemon.query("SELECT id FROM test_emitted")}
            kept = {r[0] for r in c.daemon.query("SELECT id FROM outbox")}
            assert emitted <= kept  # nothing committed was lost
            status, body = await c.pickup(session, order.code)
            assert status == 200 and body["failed"] == []
            await c.daemon.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
