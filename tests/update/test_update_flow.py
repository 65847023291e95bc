"""The update agent in this process, against the reference central over HTTP: it installs what
central announces into the other slot, waits for the locker to be quiet (and for the rollout
window), copies the store, writes the state file and switches `current` before asking for a
restart; started as the version being tried it proves itself or gives up at its deadline;
started after a rollback it tells central and counts it."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyotp

from api.updater import UPDATER, UpdateAgent
from locker import __version__
from locker.domain.staff import load_secret
from locker.domain.store import SCHEMA_VERSION
from locker.domain.update import RESTART_EXIT_CODE, ROLLBACKS_KEY, STATE_FILE, read_state, wanted
from locker.slots import slot_python
from tests.support.updates import N1, Setup


async def login(s: Setup) -> dict[str, str]:
    code = pyotp.TOTP(load_secret(s.rig.config.staff_secret_file("courier-1"))).now()
    response = await s.rig.http.post("/api/staff/login", json={
        "staff": "courier-1", "code": code, "screen": "front"})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def test_installed_into_the_other_slot_and_restarted_once_nobody_is_there(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    async for s in make_setup():
        staff = await login(s)
        await s.announce(N1, not_before=time.time() + 1.0)
        await asyncio.sleep(0.6)
        # the rollout window has not opened yet
        assert "update.installed" not in [e["kind"] for e in await s.events()]
        installed = await s.event("update.installed")
        assert installed["payload"] == {"version": N1, "slot": "b"}
        await asyncio.sleep(1.0)
        # a courier is logged in: installed, not switched
        assert not s.restarts and os.readlink(s.slots / "current") == "a"
        assert not (s.rig.config.data_dir / STATE_FILE).exists()
        await s.rig.http.post("/api/staff/logout", headers=staff)
        async with asyncio.timeout(5):
            while not s.restarts:
                await asyncio.sleep(0.05)
        agent = s.rig.http.app[UPDATER]
        assert agent.exit_code == RESTART_EXIT_CODE and s.restarts == ["restart"]
        assert os.readlink(s.slots / "current") == "b"
        state = read_state(s.rig.config.data_dir / STATE_FILE)
        assert state is not None
        assert (state["trying"], state["from"], state["from_slot"], state["to_slot"],
                state["boots"]) == (N1, __version__, "a", "b", 0)
        assert state["deadline"] > time.time() and state["schema"] == SCHEMA_VERSION
        backup = Path(state["backup"])
        db = sqlite3.connect(backup)
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] >= 0
        db.close()
        restarting = await s.event("update.restarting")
        assert restarting["payload"]["version"] == N1
        said = await asyncio.create_subprocess_exec(
            str(slot_python(s.slots, "b")), "-P", "-c", "import locker; print(locker.__version__)",
            stdout=asyncio.subprocess.PIPE, cwd=s.slots)
        assert (await said.communicate())[0].decode().strip() == N1


async def test_an_update_never_quiet_inside_its_window_is_refused_and_not_switched(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    async for s in make_setup():
        await login(s)
        await s.announce(N1, not_after=time.time() + 2.5)
        refused = await s.event("update.refused")
        assert refused["payload"]["reason"] == "window_passed"
        assert os.readlink(s.slots / "current") == "a" and not s.restarts
        assert wanted(s.rig.locker.store) is None


def candidate_state(data_dir: Path, deadline_s: float) -> dict[str, Any]:
    backup = data_dir / f"store-before-{__version__}.db"
    data_dir.mkdir(parents=True, exist_ok=True)
    backup.write_bytes(b"a copy")
    state = {"trying": __version__, "from": "0.0.9", "from_slot": "a", "to_slot": "b",
             "backup": str(backup), "deadline": time.time() + deadline_s, "boots": 1,
             "max_boots": 3, "switched_at": time.time() - 1, "schema": SCHEMA_VERSION}
    (data_dir / STATE_FILE).write_text(json.dumps(state))
    return state


async def test_the_version_being_tried_proves_itself_and_says_so(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    saved: dict[str, Any] = {}
    async for s in make_setup(before_start=lambda d: saved.update(candidate_state(d, 60))):
        succeeded = await s.event("update.succeeded")
        assert succeeded["payload"]["version"] == __version__
        assert succeeded["payload"]["from_version"] == "0.0.9"
        assert succeeded["payload"]["boots"] == 1
        assert not (s.rig.config.data_dir / STATE_FILE).exists()
        assert not Path(saved["backup"]).exists()
        assert not s.restarts


async def test_a_version_that_does_not_prove_itself_by_its_deadline_exits(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    async for s in make_setup():
        restarts: list[str] = []
        never = SimpleNamespace(last_answer=0.0)  # central never answers this one
        agent = UpdateAgent(s.rig.locker, never,  # type: ignore[arg-type]
                            restart=functools.partial(restarts.append, "x"))
        state = candidate_state(s.rig.config.data_dir, 0.3)
        await asyncio.wait_for(agent._prove(state), 5)
        assert restarts == ["x"] and agent.exit_code == RESTART_EXIT_CODE
        assert (s.rig.config.data_dir / STATE_FILE).exists()  # for the boot guard to read


async def test_after_a_rollback_the_old_version_tells_central_and_counts_it(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    def rolled_back(data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / STATE_FILE).write_text(json.dumps({
            "rolled_back": "90.0.2", "from": __version__, "reason": "did not come up",
            "boots": 4, "store": "restored", "rescued_events": 3, "at": 1234.5,
            "backup": str(data_dir / "store-before-90.0.2.db")}))

    async for s in make_setup(before_start=rolled_back):
        event = await s.event("update.rolled_back")
        assert event["payload"]["version"] == "90.0.2"
        assert event["payload"]["reason"] == "did not come up"
        assert event["payload"]["store"] == "restored"
        assert event["payload"]["rescued_events"] == 3
        assert not (s.rig.config.data_dir / STATE_FILE).exists()
        assert s.rig.locker.store.meta(ROLLBACKS_KEY) == "1"
        metrics = await (await s.rig.http.get("/metrics")).text()
        assert "locker_update_rollbacks_total 1.0" in metrics


async def test_a_repository_out_of_reach_is_retried_not_refused(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    async for s in make_setup():
        timestamp = s.repo / "metadata" / "timestamp.json"
        hidden = timestamp.with_name("hidden.json")
        timestamp.rename(hidden)  # central answers 404: not there yet, or a proxy in the way
        await s.announce(N1)
        await s.event("command.done")
        await asyncio.sleep(1.5)  # three retries (retry_s = 0.5)
        assert wanted(s.rig.locker.store) is not None
        assert "update.refused" not in [e["kind"] for e in await s.events()]
        hidden.rename(timestamp)
        assert (await s.event("update.installed"))["payload"]["version"] == N1


async def test_a_locker_not_running_from_a_slot_refuses_to_update(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    async for s in make_setup(before_start=lambda d: (d.parent / "slots" / "current").unlink()):
        await s.announce(N1)
        refused = await s.event("update.refused")
        assert refused["payload"]["reason"] == "not_in_slots"
        assert "install-slot" in refused["payload"]["message"]


async def test_an_update_cut_short_before_its_switch_is_forgotten_without_a_guard(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    saved: dict[str, Any] = {}

    def other(data_dir: Path) -> None:
        state = candidate_state(data_dir, 60)
        saved.update(state, trying="90.0.5")
        (data_dir / STATE_FILE).write_text(json.dumps(saved))

    async for s in make_setup(before_start=other):
        assert not (s.rig.config.data_dir / STATE_FILE).exists()
        assert not Path(saved["backup"]).exists()
        await asyncio.sleep(0.3)
        kinds = [e["kind"] for e in await s.events()]
        assert not [k for k in kinds if k.startswith("update.")]
