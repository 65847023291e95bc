"""Remote updates, the pure parts (locker/domain/update.py): versions, the rollout window, when the
locker may restart, the state file and who acts on it; the `[update]` table; the `update`
command, verified like every command and recorded for the update agent."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from locker.domain.clock import SimClock
from locker.domain.config import load_config
from locker.domain.daemon import Locker
from locker.domain.errors import ConfigError
from locker.domain.model import DoorState, OrderState
from locker.domain.update import (
    Activity,
    BadVersion,
    Wanted,
    check_window,
    clear_state,
    doors_in_flight,
    forget,
    is_newer,
    parse_version,
    read_state,
    restart_verdict,
    role,
    wanted,
    write_state,
)
from tests.support.central import CENTRAL, central_config, feed, signed
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver

UPDATE = '\n[update]\nslots_dir = "slots"\nquiet_hour = 3\nhealth_deadline_s = 120\n'


def test_versions_are_three_numbers_compared_as_numbers() -> None:
    assert parse_version("1.10.0") == (1, 10, 0)
    assert is_newer("1.10.0", "1.9.9") and not is_newer("1.9.9", "1.10.0")
    assert not is_newer("2.0.0", "2.0.0")  # the same is not newer
    assert is_newer("0.0.1", "dev-build")  # an unreadable running version counts as 0.0.0
    for bad in ("1.2", "1.2.3.4", "01.2.3", "1.2.3rc1", " 1.2.3", "v1.2.3", 123, None):
        with pytest.raises(BadVersion):
            parse_version(bad)


def test_the_rollout_window() -> None:
    wanted = Wanted("2.0.0", not_before=100.0, not_after=200.0)
    assert [wanted.window(t) for t in (50.0, 150.0, 250.0)] == ["wait", "open", "passed"]
    assert Wanted("2.0.0").window(1e12) == "open"
    now = 1000.0
    assert check_window({}, now) == (None, None)
    assert check_window({"not_before": 1100, "not_after": 1200.5}, now) == (1100.0, 1200.5)
    for args, why in (({"not_before": 1200, "not_after": 1100}, "after"),
                      ({"not_after": 900}, "ended"), ({"not_before": "soon"}, "number"),
                      ({"not_after": True}, "number"), ({"not_after": now + 100 * 86400}, "90")):
        with pytest.raises(ValueError, match=why):
            check_window(args, now)


QUIET = {"customer_quiet_s": 60.0, "local_hour": 14, "quiet_hour": 3}


@pytest.mark.parametrize(("activity", "hour", "ok", "why"), [
    (Activity(0, (), None), 14, True, "nobody"),
    (Activity(0, (), 300.0), 14, True, "nobody"),
    (Activity(1, (), None), 14, False, "staff"),
    (Activity(0, (), 20.0), 14, False, "customer typed"),
    (Activity(0, ("A1",), None), 14, False, "doors in use: A1"),
    (Activity(2, (), 5.0), 3, True, "quiet hour"),  # at the quiet hour, whoever is there
    (Activity(0, ("A1",), None), 3, False, "doors"),  # but never with a door in flight
])
def test_when_the_locker_may_restart(activity: Activity, hour: int, ok: bool, why: str) -> None:
    verdict = restart_verdict(activity, **{**QUIET, "local_hour": hour})  # type: ignore[arg-type]
    assert verdict[0] is ok and why in verdict[1]


def test_the_state_file_is_replaced_whole_and_tells_each_process_its_role(
        tmp_path: Path) -> None:
    path = tmp_path / "update-state.json"
    assert read_state(path) is None and role(None, "1.0.0") == "none"
    write_state(path, {"trying": "1.1.0", "from": "1.0.0", "boots": 0})
    assert read_state(path) == {"trying": "1.1.0", "from": "1.0.0", "boots": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["update-state.json"]  # no temporary left
    state = read_state(path)
    assert role(state, "1.1.0") == "candidate" and role(state, "1.0.0") == "stale"
    assert role({"rolled_back": "1.1.0"}, "1.0.0") == "rolled_back"
    guard_stopped = {"trying": "1.1.0", "rolling_back": True, "from": "1.0.0"}
    assert role(guard_stopped, "1.1.0") == "guard_failed"  # left for the guard's next run
    assert role(guard_stopped, "1.0.0") == "rolled_back"  # it switched back: report it
    path.write_text("{not json")
    assert read_state(path) is None
    clear_state(path)
    clear_state(path)  # idempotent
    assert not path.exists()


def test_the_update_table(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, SMALL_CONFIG + CENTRAL + UPDATE))
    update = config.update
    assert update is not None
    assert update.slots_dir == tmp_path / "slots"
    assert update.trusted_root == tmp_path / "update-root.json"
    assert update.repository_url == "http://127.0.0.1:9/v1/updates"
    assert (update.quiet_hour, update.health_deadline_s, update.max_boots) == (3, 120.0, 3)
    assert load_config(write_config(tmp_path, SMALL_CONFIG + CENTRAL)).update is None
    with pytest.raises(ConfigError, match=r"\[central\]"):
        load_config(write_config(tmp_path, SMALL_CONFIG + UPDATE))
    for bad, key in (("quiet_hour = 24", "quiet_hour"), ("min_free_mb = -1", "min_free_mb"),
                     ('repository_url = "ftp://x"', "repository_url"), ("colour = 1", "colour")):
        text = SMALL_CONFIG + CENTRAL + f'\n[update]\nslots_dir = "slots"\n{bad}\n'
        with pytest.raises(ConfigError, match=f"update.{key}"):
            load_config(write_config(tmp_path, text))


@pytest.fixture
async def locker(tmp_path: Path) -> AsyncIterator[Locker]:
    config = central_config(tmp_path, SMALL_CONFIG + CENTRAL + UPDATE)
    clock = SimClock(start=1_800_000_000.0)
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), clock)
    await locker.start()
    yield locker
    await locker.stop()


async def test_the_update_command_records_the_version_and_its_window(locker: Locker) -> None:
    now = locker.clock.now()
    outcome = await feed(locker, signed("update", {"version": "2.0.0", "not_after": now + 3600},
                                        now=now))
    assert outcome == {"done": 1}
    recorded = wanted(locker.store)
    assert recorded is not None and (recorded.version, recorded.not_after) == ("2.0.0",
                                                                               now + 3600)
    outcome = await feed(locker, signed("update", {"version": "2.1.0"}, now=now, nonce="m" * 32))
    assert wanted(locker.store) == Wanted("2.1.0", None, None, "m" * 32, now)  # the newer one
    with locker.store.transaction(now) as tx:
        forget(tx, "2.0.0")  # not what is wanted any more: kept
    assert wanted(locker.store) is not None
    with locker.store.transaction(now) as tx:
        forget(tx, "2.1.0")
    assert wanted(locker.store) is None


@pytest.mark.parametrize(("args", "why"), [
    ({"version": "2.0"}, "not a version"),
    ({"version": "2.0.0", "not_after": 1.0}, "ended"),
    ({"version": "2.0.0", "url": "http://evil"}, "update takes version"),
])
async def test_a_bad_update_command_fails_and_records_nothing(
        locker: Locker, args: dict[str, object], why: str) -> None:
    outcome = await feed(locker, signed("update", args, now=locker.clock.now()))
    assert outcome in ({"failed": 1}, {"malformed": 1})
    events = [e for e in locker.store.events()
              if e.kind in ("command.failed", "command.refused")]
    assert why in events[-1].payload["message"]
    assert wanted(locker.store) is None


async def test_a_locker_without_an_update_table_refuses_the_command(tmp_path: Path) -> None:
    config = central_config(tmp_path)
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]),
                    SimClock(start=1_800_000_000.0))
    await locker.start()
    try:
        assert await feed(locker, signed("update", {"version": "2.0.0"},
                                         now=locker.clock.now())) == {"failed": 1}
        failed = [e for e in locker.store.events() if e.kind == "command.failed"][-1]
        assert failed.payload["reason"] == "not_configured"
    finally:
        await locker.stop()


async def test_doors_in_flight_are_unlocking_doors_and_recently_opened_doors_of_an_order(
        locker: Locker) -> None:
    store, now = locker.store, locker.clock.now()
    assert doors_in_flight(store, now, 180) == ()
    with store.transaction(now) as tx:
        tx.execute("UPDATE compartments SET door = ? WHERE id = 'A1'", (DoorState.UNLOCKING,))
        tx.insert("orders", {"id": "O-1", "version": 1, "sequence": 1,
                             "state": OrderState.COLLECTING.value, "created_at": now,
                             "updated_at": now})
        tx.insert("order_compartments", {"order_id": "O-1", "compartment_id": "F1",
                                         "bag_zone": "fresh", "bag_size": "M",
                                         "opened_at": now})
        tx.execute("UPDATE compartments SET door = ?, door_changed_at = ? WHERE id = 'F1'",
                   (DoorState.OPEN, now - 10))
        tx.execute("UPDATE compartments SET door = ?, door_changed_at = ? WHERE id = 'Z1'",
                   (DoorState.OPEN, now - 10))  # open, but no order: not a transaction
    assert doors_in_flight(store, now, 180) == ("A1", "F1")
    assert doors_in_flight(store, now + 600, 180) == ("A1",)  # left open: an alarm, not this


def test_wanted_ignores_a_record_it_cannot_read(tmp_path: Path) -> None:
    from locker.domain.store import Store

    store = Store(tmp_path / "x.db")
    with store.transaction(time.time()) as tx:
        tx.set_meta("update.wanted", json.dumps({"version": "1.0.0", "colour": "red"}))
    assert wanted(store) is None
    store.close()
