"""The store: migrations, WAL, and a state change committed with its event or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from locker.errors import StoreError
from locker.store import SCHEMA_VERSION, Store


def test_a_new_store_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.schema_version == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    again = Store(tmp_path / "s.db")  # migrating twice is a no-op
    assert again.schema_version == SCHEMA_VERSION


def test_a_store_from_newer_software_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(StoreError, match="newer than this software"):
        Store(tmp_path / "s.db")


def test_a_failed_transaction_leaves_neither_change_nor_event(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with pytest.raises(RuntimeError), store.transaction(1.0) as tx:
        tx.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
        tx.emit("test.event", "order")
        raise RuntimeError("crash before commit")
    assert store.read().all("SELECT * FROM meta") == []
    assert store.events() == []
    with store.transaction(2.0) as tx:
        tx.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
        tx.emit("test.event", "order", detail=1)
    [event] = store.events()
    assert (event.kind, event.at, event.payload) == ("test.event", 2.0, {"detail": 1})


def test_alarms_latch_once_and_clear_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with store.transaction(1.0) as tx:
        assert tx.raise_alarm("board_offline", "board 1", "gone")
        assert not tx.raise_alarm("board_offline", "board 1", "gone again")
    with store.transaction(2.0) as tx:
        assert tx.clear_alarm("board_offline", "board 1", "back")
        assert not tx.clear_alarm("board_offline", "board 1", "back")
    assert [e.payload["state"] for e in store.events()] == ["raised", "cleared"]
