"""A locker syncing with the reference central over real HTTP (tests/integration's rig with a
[central] table): the [central] table to add, a trigger that logs every event the outbox ever
held, a handle on central's admin API, and the checks that nothing was lost or sent twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import ClientSession

from locker.demo import enrol
from locker.domain.config import load_config
from locker.domain.staff import load_secret
from locker.domain.store import Store
from simulator.central import RunningCentral, start_central
from tests.support.rig import Rig
from tests.support.waiting import until

SYNC = """
[central]
url = "{url}"
allow_insecure = true
poll_wait_s = 2
heartbeat_s = 1
request_timeout_s = 2
backoff_min_s = 0.05
backoff_max_s = 0.3
outage_alarm_s = 1.5
remote_opens_burst = 2
remote_opens_per_hour = 1
"""
LOG_EVERY_EVENT = (
    "CREATE TABLE IF NOT EXISTS test_emitted (n INTEGER PRIMARY KEY, id TEXT NOT NULL,"
    " kind TEXT NOT NULL, payload TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS test_log_event AFTER INSERT ON outbox BEGIN"
    " INSERT INTO test_emitted (id, kind, payload) VALUES (NEW.id, NEW.kind, NEW.payload); END",
)


class Central:
    """The reference central, its admin API, and a way to stop and start it on its port."""

    def __init__(self, folder: Path, running: RunningCentral, session: ClientSession) -> None:
        self.folder, self.running, self.session = folder, running, session
        self.port = running.port

    @property
    def admin(self) -> dict[str, str]:
        return {"X-Admin-Token": self.running.admin_token}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.running.url + path, json=body,
                                        headers=self.admin) as answer:
            return answer.status, await answer.json()

    async def order(self, order_id: str, *bags: str, hours: float = 72) -> dict[str, Any]:
        status, order = await self.call("POST", "/admin/lockers/test-locker/orders", {
            "id": order_id, "window_hours": hours,
            "bags": [{"zone": b.split(":")[0], "size": b.split(":")[1]} for b in bags]})
        assert status == 201, order
        return dict(order)

    async def command(self, action: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
        status, body = await self.call("POST", "/admin/lockers/test-locker/commands",
                                       {"action": action, "args": args, **extra})
        assert status == 201, body
        return dict(body)

    async def events(self) -> list[dict[str, Any]]:
        status, body = await self.call("GET", "/admin/lockers/test-locker/events")
        assert status == 200
        return list(body["events"])

    async def fault(self, mode: str, delay_s: float = 0.0) -> None:
        status, body = await self.call("POST", "/admin/faults", {"mode": mode,
                                                                 "delay_s": delay_s})
        assert status == 200, body

    async def stop(self) -> None:
        await self.running.stop()

    async def start(self) -> None:
        self.running = await start_central(self.folder, port=self.port,
                                           admin_token=self.running.admin_token)


def prepare_log(database: Path) -> None:
    store = Store(database)  # migrated first, as the daemon would
    for statement in LOG_EVERY_EVENT:
        store.db.execute(statement)
    store.close()


def emitted(rig: Rig) -> list[str]:
    return [r["id"] for r in rig.locker.store.read().all("SELECT id FROM test_emitted ORDER BY n")]


def kinds(rig: Rig) -> list[str]:
    """Every event the locker ever made (the outbox itself empties as central acknowledges)."""
    return [r["kind"] for r in rig.locker.store.read().all(
        "SELECT kind FROM test_emitted ORDER BY n")]


def payloads(rig: Rig, kind: str) -> list[dict[str, Any]]:
    return [json.loads(r["payload"]) for r in rig.locker.store.read().all(
        "SELECT payload FROM test_emitted WHERE kind = ? ORDER BY n", (kind,))]


async def arrived(rig: Rig, order_id: str) -> None:
    await until(lambda: rig.locker.store.read().one(
        "SELECT id FROM orders WHERE id = ?", (order_id,)) is not None)


async def all_delivered(rig: Rig, central: Central) -> list[dict[str, Any]]:
    """Wait for the outbox to drain; central then holds exactly the events the locker made."""
    await until(lambda: not rig.locker.store.events(limit=1), 15)
    received = await central.events()
    ids = [e["id"] for e in received]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(emitted(rig))  # none lost, none twice
    by_compartment: dict[str, list[int]] = {}
    for event in received:
        if event["compartment_id"]:
            by_compartment.setdefault(event["compartment_id"], []).append(event["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_compartment.values())
    return received


async def enrolled_rig(tmp_path: Path, central: Central,
                       make_rig: Callable[..., AsyncIterator[Rig]],
                       layout: str) -> AsyncIterator[Rig]:
    """The rig on `layout` (a config without [central]), enrolled at central and syncing."""
    text = layout + SYNC.format(url=central.running.api_url)
    probe = tmp_path / "enrol.toml"
    probe.write_text(text)
    config = load_config(probe)  # same data_dir as the rig's: enrol writes the locker's files
    await enrol(central.session, central.running, config)
    prepare_log(config.database)
    async for rig in make_rig("kerong", edit=lambda _: text):
        yield rig


SESSIONS: dict[int, dict[str, str]] = {}


async def courier_loads(rig: Rig, order_id: str) -> None:
    """The courier (logged in once per locker: a TOTP code is good once) loads the order."""
    auth = SESSIONS.get(id(rig))
    if auth is None:
        secret = load_secret(rig.config.staff_secret_file("courier-1"))
        response = await rig.http.post("/api/staff/login", json={
            "staff": "courier-1", "code": pyotp.TOTP(secret).now(), "screen": "front"})
        assert response.status == 200, await response.text()
        auth = SESSIONS[id(rig)] = {
            "Authorization": f"Bearer {(await response.json())['token']}"}
    response = await rig.http.post(f"/api/courier/orders/{order_id}/load",
                                   json={"together": True}, headers=auth)
    assert response.status == 200, await response.text()
    await rig.until(lambda: rig.order_state(order_id) == "ready", 10)
