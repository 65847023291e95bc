"""The store is never silently replaced, truncated or rolled back; one daemon per data dir;
backups that restore (on the domain, with a stand-in driver; tests/reliability has the same
through `locker run` processes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from locker.domain.backup import BackupRefused, restore, rolling_backup, take
from locker.domain.clock import SimClock
from locker.domain.codes import create_keys
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.datadir import (
    AnotherDaemon,
    StoreLost,
    identity_file,
    outbox_seq,
    read_marks,
)
from locker.domain.errors import StoreError
from locker.domain.orders import add_ready_order, parse_bag
from locker.domain.sync import central_saw
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver


async def started(config: LockerConfig) -> Locker:
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), SimClock())
    await locker.start()
    return locker


ZONES = ("ambient", "fresh", "frozen")


async def with_orders(config: LockerConfig, *ids: str) -> None:
    locker = await started(config)
    held = len(locker.store.read().all("SELECT id FROM orders"))
    for n, order_id in enumerate(ids, start=held):
        add_ready_order(locker.store, config, locker.codes, locker.clock.now(), order_id,
                        [parse_bag(f"{ZONES[n % 3]}:S")])
    await locker.stop()


def kinds(locker: Locker) -> list[str]:
    return [e.kind for e in locker.store.events()]


async def test_a_second_daemon_on_the_same_data_dir_is_refused(config: LockerConfig) -> None:
    first = await started(config)
    try:
        with pytest.raises(AnotherDaemon, match=r"another locker daemon \(pid \d+\)"):
            Locker(config, FakeDriver([]), SimClock())
    finally:
        await first.stop()
    again = await started(config)  # once the first is gone, it may start
    await again.stop()


@pytest.mark.parametrize("damage", ["empty", "missing", "truncated", "flipped"])
async def test_a_lost_store_is_refused_with_the_file_and_the_fix(
        config: LockerConfig, damage: str) -> None:
    await with_orders(config, "o1", "o2")
    database = config.database
    data = database.read_bytes()
    if damage == "empty":
        database.write_bytes(b"")
    elif damage == "missing":
        database.unlink()
    elif damage == "truncated":
        database.write_bytes(data[: len(data) // 2])
    else:  # a page in the middle of the file goes bad
        middle = (len(data) // 1024 // 2) * 1024
        database.write_bytes(data[:middle] + bytes(1024) + data[middle + 1024:])
    with pytest.raises(StoreLost) as refused:
        Locker(config, FakeDriver([]), SimClock())
    message = str(refused.value)
    assert str(database) in message and "restore" in message
    assert (database.exists() and database.stat().st_size > 0) or damage in ("empty", "missing")


async def test_another_lockers_store_copied_in_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours = load_config(write_config(tmp_path / "ours"))
    theirs = load_config(write_config(tmp_path / "theirs",
                                      SMALL_CONFIG.replace('"test-locker"', '"other-locker"')))
    for config in (ours, theirs):
        create_keys(config)
        await with_orders(config, "o1")
    shutil.copyfile(theirs.database, ours.database)
    with pytest.raises(StoreError, match="other-locker") as refused:
        Locker(ours, FakeDriver([]), SimClock())
    assert not isinstance(refused.value, StoreLost)  # a person did this: no automatic restore


async def test_a_lost_wal_is_seen_at_the_next_start_and_numbers_never_go_back(
        config: LockerConfig) -> None:
    locker = await started(config)
    before = config.database.read_bytes()  # the main file, before these reach it
    for n in range(3):
        add_ready_order(locker.store, config, locker.codes, locker.clock.now(), f"o{n}",
                        [parse_bag(f"{ZONES[n]}:S")])
    await locker.clock.advance(6)  # the marks beside the store are written
    top = read_marks(config.database).outbox_seq
    await locker.stop()
    config.database.write_bytes(before)  # a crash, and the WAL deleted with what it held
    for suffix in ("-wal", "-shm"):
        config.database.with_name(config.database.name + suffix).unlink(missing_ok=True)
    again = await started(config)
    try:
        assert "alarm.store_rolled_back" in kinds(again)
        [event] = [e for e in again.store.events() if e.kind == "store.rolled_back"]
        assert event.payload["expected_seq"] == top and event.seq > top
        assert outbox_seq(again.store.read()) > top
    finally:
        await again.stop()


async def test_central_holding_newer_events_means_the_store_went_back(
        config: LockerConfig) -> None:
    locker = await started(config)
    try:
        seq = outbox_seq(locker.store.read())
        assert not central_saw(locker.store, locker.clock.now(), seq)
        assert central_saw(locker.store, locker.clock.now(), seq + 40)
        assert not central_saw(locker.store, locker.clock.now(), seq + 40)  # said once
        assert "alarm.store_rolled_back" in kinds(locker)
    finally:
        await locker.stop()


async def test_a_lost_store_comes_back_from_the_rolling_backup_by_itself(
        config: LockerConfig) -> None:
    await with_orders(config, "o1")
    take(config.database, rolling_backup(config.database))
    await with_orders(config, "o2")  # after the backup: lost with the store
    config.database.write_bytes(b"")
    locker = await started(config)
    try:
        orders = [r["id"] for r in locker.store.read().all("SELECT id FROM orders")]
        assert orders == ["o1"]
        assert "store.restored" in kinds(locker) and "alarm.store_rolled_back" in kinds(locker)
        assert list(config.data_dir.glob("locker.db.replaced-*"))  # the bad file is kept
    finally:
        await locker.stop()


async def test_a_backup_restores_and_numbers_and_commands_never_go_back(
        config: LockerConfig, tmp_path: Path) -> None:
    await with_orders(config, "o1")
    copy = take(config.database, tmp_path / "copy.db.gz")
    assert copy.identity.locker_id == "test-locker"
    await with_orders(config, "o2", "o3")
    marks = read_marks(config.database)
    with pytest.raises(AnotherDaemon):  # not while the daemon runs
        running = await started(config)
        try:
            restore(config.database, "test-locker", copy.path, 0.0)
        finally:
            await running.stop()
    restore(config.database, "test-locker", copy.path, 1_800_000_100.0)
    locker = await started(config)
    try:
        assert [r["id"] for r in locker.store.read().all("SELECT id FROM orders")] == ["o1"]
        assert outbox_seq(locker.store.read()) >= marks.outbox_seq
        assert "alarm.store_rolled_back" not in kinds(locker)  # a restore is deliberate
        [restored] = [e for e in locker.store.events() if e.kind == "store.restored"]
        assert restored.payload["events_after_the_backup"] > 0
        assert identity_file(config.database).exists()
    finally:
        await locker.stop()


async def test_another_lockers_backup_is_refused(config: LockerConfig, tmp_path: Path) -> None:
    await with_orders(config, "o1")
    copy = take(config.database, tmp_path / "copy.db")
    with pytest.raises(BackupRefused, match="not of other-locker"):
        restore(config.database, "other-locker", copy.path, 0.0)
    (tmp_path / "junk.db").write_bytes(b"not a store at all" * 100)
    with pytest.raises(BackupRefused):
        restore(config.database, "test-locker", tmp_path / "junk.db", 0.0)
    locker = await started(config)  # nothing was changed
    try:
        assert [r["id"] for r in locker.store.read().all("SELECT id FROM orders")] == ["o1"]
    finally:
        await locker.stop()
