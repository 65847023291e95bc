"""The store: migrations, WAL, and a state change committed with its event or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from locker.domain.errors import StoreError
from locker.domain.store import MIGRATIONS, SCHEMA_VERSION, Store


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


def test_migrating_the_outbox_keeps_its_events_and_never_reuses_a_seq(tmp_path: Path) -> None:
    """Version 5 rebuilds the outbox; a store at version 4 with events (and acknowledged ones
    before them) keeps them all, and the next event's seq is above every earlier one."""
    path = tmp_path / "locker.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, statements in enumerate(MIGRATIONS[:4], start=1):
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    for n in range(1, 6):
        conn.execute("INSERT INTO outbox (id, at, kind, category, payload) VALUES"
                     " (?, 0, 'door.opened', 'door', '{}')", (f"e{n}",))
    conn.execute("DELETE FROM outbox WHERE seq >= 4")  # the newest were acknowledged
    conn.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [(e.seq, e.id) for e in store.events()] == [(1, "e1"), (2, "e2"), (3, "e3")]
    with store.transaction(1.0) as tx:
        tx.emit("door.closed", "door")
    assert store.events()[-1].seq == 6
    indexes = [r[1] for r in store.db.execute("PRAGMA index_list(outbox)").fetchall()]
    assert indexes == []  # no index on the random ids: one page less per event
    store.close()
