"""The boot guard (deploy/locker-boot), run before every start: it counts a new version's starts,
rolls back past max_boots or the deadline, forgets an update cut short before its switch, and
restores the store only when the new version migrated it, carrying over the failed version's
events and command nonces so that no committed event is lost and no command is obeyed twice."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from locker.domain.store import SCHEMA_VERSION, Store
from locker.domain.update import STATE_FILE, read_state, role
from locker.slots import backup_store

GUARD = Path(__file__).resolve().parents[2] / "deploy" / "locker-boot"


def load_guard() -> ModuleType:
    loader = SourceFileLoader("locker_boot", str(GUARD))
    spec = importlib.util.spec_from_loader("locker_boot", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


boot = load_guard()


class World:
    """A data folder with a store and its copy, two slots with `current` on the new one, and
    the state file the old version wrote before switching."""

    def __init__(self, root: Path) -> None:
        self.data, self.slots = root / "data", root / "slots"
        self.data.mkdir()
        for slot in ("a", "b"):
            (self.slots / slot).mkdir(parents=True)
        self.store_path = self.data / "locker.db"
        store = Store(self.store_path)
        with store.transaction(time.time()) as tx:
            for n in range(3):
                tx.emit("door.opened", "door", compartment_id=f"A{n}")
        store.close()
        self.backup = self.data / "store-before-9.0.0.db"
        backup_store(self.store_path, self.backup)
        os.symlink("b", self.slots / "current")
        self.state_path = self.data / STATE_FILE
        self.write({"trying": "9.0.0", "from": "8.0.0", "from_slot": "a", "to_slot": "b",
                    "slots_dir": str(self.slots), "store": str(self.store_path),
                    "backup": str(self.backup), "schema": SCHEMA_VERSION,
                    "deadline": time.time() + 60, "boots": 0, "max_boots": 3,
                    "switched_at": time.time()})

    def write(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def state(self) -> dict[str, Any]:
        state = read_state(self.state_path)
        assert state is not None
        return state

    def current(self) -> str:
        return os.readlink(self.slots / "current")

    def guard(self) -> str:
        done: str = boot.guard(self.data, time.time())
        return done

    def query(self, sql: str, path: Path | None = None) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(path or self.store_path)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_nothing_to_do_without_an_update(world: World) -> None:
    world.state_path.unlink()
    assert world.guard() == "nothing" and world.current() == "b"
    reported = {"rolled_back": "9.0.0", "reason": "x", "at": 1.0}
    world.write(reported)  # the old version has not told central yet: leave it to it
    assert world.guard() == "nothing" and world.state() == reported


def test_three_starts_then_the_old_slot_comes_back_and_the_store_is_kept(world: World) -> None:
    store = Store(world.store_path)  # the new version ran and committed events: not migrated
    with store.transaction(time.time()) as tx:
        tx.emit("order.collected", "order", order_id="X-1")
    store.close()
    assert [world.guard() for _ in range(3)] == ["trying"] * 3
    assert world.state()["boots"] == 3 and world.current() == "b"
    assert world.guard() == "rolled_back"
    assert world.current() == "a"
    state = world.state()
    assert state["rolled_back"] == "9.0.0" and state["from"] == "8.0.0"
    assert "did not come up in 3 starts" in state["reason"] and state["boots"] == 4
    assert state["store"] == "kept" and state["rescued_events"] == 0
    kinds = [row[0] for row in world.query("SELECT kind FROM outbox ORDER BY seq")]
    assert kinds == ["door.opened"] * 3 + ["order.collected"]  # nothing lost
    assert role(state, "8.0.0") == "rolled_back"


def test_past_the_deadline_it_rolls_back_at_once(world: World) -> None:
    state = world.state()
    world.write({**state, "deadline": time.time() - 1, "boots": 1})
    assert world.guard() == "rolled_back" and world.current() == "a"
    assert "deadline" in world.state()["reason"]


def test_an_update_cut_short_before_its_switch_is_forgotten(world: World) -> None:
    os.replace(world.slots / "current", world.slots / "old")
    os.symlink("a", world.slots / "current")  # the switch never happened
    assert world.guard() == "interrupted"
    assert not world.state_path.exists() and not world.backup.exists()
    assert world.current() == "a"


def test_a_migrated_store_is_restored_with_the_new_events_and_nonces_carried_over(
        world: World) -> None:
    store = Store(world.store_path)
    with store.transaction(time.time()) as tx:  # committed after the copy, by either version
        tx.emit("door.closed", "door", compartment_id="A1")
        tx.insert("command_nonces", {"nonce": "n" * 32, "expires_at": time.time() + 300})
        acked = tx.one("SELECT MIN(seq) AS seq FROM outbox")
        assert acked is not None
        tx.execute("DELETE FROM outbox WHERE seq = ?", (acked["seq"],))  # central has it
    store.close()
    db = sqlite3.connect(world.store_path)  # the new version's migration
    db.execute("ALTER TABLE outbox ADD COLUMN trace TEXT")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.execute("INSERT INTO outbox (id, at, kind, category, payload, trace) VALUES"
               " ('new-1', 1.0, 'order.collected', 'order', '{}', 't')")
    db.commit()
    db.close()
    failed_ids = {row[0] for row in world.query("SELECT id FROM outbox")}
    state = world.state()
    world.write({**state, "deadline": time.time() - 1})

    assert world.guard() == "rolled_back"
    state = world.state()
    assert state["store"] == "restored" and state["rescued_events"] == 2
    assert world.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    restored_ids = {row[0] for row in world.query("SELECT id FROM outbox")}
    assert failed_ids <= restored_ids  # every event the failed store held
    assert len(restored_ids) == len(failed_ids) + 1  # and the acked one again (central dedups)
    assert world.query("SELECT nonce FROM command_nonces") == [("n" * 32,)]
    kept = world.data / "store-failed-9.0.0.db"
    assert world.query("PRAGMA user_version", kept)[0][0] == SCHEMA_VERSION + 1
    Store(world.store_path).close()  # the old version opens it


def test_a_rollback_cut_short_is_finished_at_the_next_start(world: World) -> None:
    state = world.state()
    world.write({**state, "rolling_back": True, "reason": "did not come up", "boots": 4})
    assert role(world.state(), "8.0.0") == "rolled_back"  # even if the guard never ran again
    assert world.guard() == "rolled_back"
    assert world.current() == "a" and world.state()["reason"] == "did not come up"


def test_it_runs_on_the_standard_library_alone_and_never_blocks_a_start(world: World,
                                                                        tmp_path: Path) -> None:
    state = world.state()
    world.write({**state, "deadline": time.time() - 1})
    config = tmp_path / "locker.toml"
    config.write_text(f'[locker]\nid = "x"\ndata_dir = "{world.data}"\n')
    # -I -S: no site-packages at all, so not the locker's package either
    done = subprocess.run([sys.executable, "-I", "-S", str(GUARD), "--config", str(config)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "rolled back from 9.0.0 to 8.0.0" in done.stderr
    assert world.current() == "a"
    world.write({"trying": "9.0.0"})  # nonsense: logged, and the start goes on
    done = subprocess.run([str(GUARD), "--data-dir", str(world.data)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0 and "failed" in done.stderr
