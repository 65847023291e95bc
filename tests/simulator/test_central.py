"""The reference central (simulator/central.py) on a real port: the locker calls, the admin API,
the faults, and a restart on the same data folder."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import stat
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.public import PrivateKey, SealedBox

from locker.domain.codes import damm_interim
from simulator.central import RunningCentral, start_central
from simulator.pki import make_pki

ADMIN = "admin-token-for-tests"
SILENT_AFTER_S = 0.5
BAGS = [{"zone": "frozen", "size": "M"}, {"zone": "ambient", "size": "L"}]


class Client:
    """Calls one central: the locker calls with a locker's token, the admin calls with its own."""

    def __init__(self, session: aiohttp.ClientSession, central: RunningCentral) -> None:
        self.session = session
        self.central = central

    async def call(self, method: str, url: str, *, body: Any = None, data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.request(method, url, json=body, data=data,
                                        headers=headers or {}) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call(method, self.central.url + "/admin" + path, body=body,
                               headers={"X-Admin-Token": self.central.admin_token})

    async def locker(self, method: str, locker_id: str, call: str, token: str, *,
                     body: Any = None, query: str = "") -> tuple[int, Any]:
        url = f"{self.central.api_url}/lockers/{locker_id}/{call}{query}"
        return await self.call(method, url, body=body,
                               headers={"Authorization": f"Bearer {token}"})

    async def provision(self, locker_id: str) -> dict[str, Any]:
        """A locker registered with a fresh box key; "box" is its private half, for opening
        the codes central seals to it."""
        box = PrivateKey.generate()
        status, answer = await self.admin("POST", "/lockers", {"id": locker_id,
                                                               "box_key": box_key_of(box)})
        assert status == 201, answer
        return {**answer, "box": box}

    async def order(self, locker_id: str, order_id: str, **extra: Any) -> dict[str, Any]:
        body = {"id": order_id, "bags": BAGS, "window_hours": 72, **extra}
        status, answer = await self.admin("POST", f"/lockers/{locker_id}/orders", body)
        assert status == 201, answer
        return dict(answer)

    async def feed(self, locker_id: str, token: str, query: str = "?wait=0") -> dict[str, Any]:
        status, answer = await self.locker("GET", locker_id, "feed", token, query=query)
        assert status == 200, answer
        return dict(answer)

    async def events(self, locker_id: str, after: int = 0) -> list[dict[str, Any]]:
        status, answer = await self.admin("GET", f"/lockers/{locker_id}/events?after={after}")
        assert status == 200, answer
        return list(answer["events"])


@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[RunningCentral]:
    running = await start_central(tmp_path / "central", admin_token=ADMIN,
                                  silent_after_s=SILENT_AFTER_S)
    yield running
    await running.stop()


@pytest.fixture
async def client(central: RunningCentral) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, central)


@pytest.fixture
async def locker(client: Client) -> dict[str, Any]:
    return await client.provision("L-0001")


def event(seq: int, kind: str = "door.opened", **fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "seq": seq, "at": 1795000012.5 + seq, "kind": kind,
            "category": kind.split(".")[0] if kind.split(".")[0] != "zone" else "coldchain",
            "compartment_id": "A03", "order_id": "A-1001", "payload": {"actor": "customer"},
            **fields}


def box_key_of(key: PrivateKey) -> str:
    return base64.b64encode(bytes(key.public_key)).decode()


def valid_code(code: str) -> bool:
    """11 digits passing the locker's own Damm check (central has its own copy of it)."""
    return len(code) == 11 and code.isdigit() and damm_interim(code) == 0


def heartbeat(**fields: Any) -> dict[str, Any]:
    return {"at": time.time(), "version": "0.4.0", "ready": True, "cursor": 42,
            "compartments": {"free": 40, "reserved": 2, "loaded": 20, "out_of_service": 4},
            "orders": {"received": 1, "ready": 18, "expired": 2},
            "zones": {"fresh": {"celsius": 3.1, "setpoint_c": 3.0, "compressor": False},
                      "frozen": {"celsius": -19.4, "setpoint_c": -20.0, "compressor": True}},
            "alarms": [{"kind": "door_forced", "subject": "B07", "message": "forced",
                        "raised_at": 1795000001.0}],
            "outbox": {"depth": 3, "oldest_at": 1795000011.0, "dropped": 0}, **fields}


# ---- provisioning and auth ---------------------------------------------------------------------


async def test_provisioning_answers_token_secret_and_key_once(
        client: Client, central: RunningCentral, tmp_path: Path) -> None:
    answer = await client.provision("L-0001")
    assert set(answer) == {"id", "token", "command_public_key", "box"}
    assert answer["command_public_key"].encode() == central.public_key_pem
    key_file = tmp_path / "central" / "commands.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tmp_path / "central" / "commands.pub").read_bytes() == central.public_key_pem
    assert answer["token"] not in (tmp_path / "central" / "central.db").read_bytes().decode(
        "latin-1")
    key = box_key_of(PrivateKey.generate())
    status, again = await client.admin("POST", "/lockers", {"id": "L-0001", "box_key": key})
    assert status == 409 and again["error"] == "conflict"
    for bad in ({"id": "no spaces", "box_key": key}, {"id": "L-3"}, {"id": "L-3", "box_key": "x"},
                {"id": "L-3", "box_key": key[:-4]}, {"id": "L-3", "box_key": key, "extra": 1},
                {"id": "L-3", "box_key": key, "digits": 8}, {}):
        status, refused = await client.admin("POST", "/lockers", bad)
        assert status == 400, bad
        assert set(refused) == {"error", "message"}


async def test_tokens_answer_for_one_locker_only(client: Client, locker: dict[str, Any]) -> None:
    other = await client.provision("L-0002")
    url = client.central.api_url + "/lockers/L-0001/feed?wait=0"
    status, answer = await client.call("GET", url)
    assert status == 401 and answer["error"] == "unauthorized" and answer["message"]
    status, _ = await client.call("GET", url, headers={"Authorization": "Bearer nope"})
    assert status == 401
    status, _ = await client.call("GET", url, headers={"Authorization": "Basic " + locker["token"]})
    assert status == 401
    status, answer = await client.locker("GET", "L-0001", "feed", other["token"], query="?wait=0")
    assert status == 403 and answer["error"] == "forbidden"
    status, _ = await client.locker("POST", "L-0002", "heartbeat", locker["token"],
                                    body=heartbeat())
    assert status == 403
    status, _ = await client.locker("GET", "L-0001", "feed", locker["token"], query="?wait=0")
    assert status == 200


async def test_admin_calls_need_the_admin_token(client: Client, central: RunningCentral) -> None:
    for headers in ({}, {"X-Admin-Token": "wrong"}, {"X-Admin-Token": ADMIN + "x"}):
        status, answer = await client.call("GET", central.url + "/admin/lockers", headers=headers)
        assert status == 401 and answer["error"] == "unauthorized"
    status, answer = await client.admin("GET", "/nothing-here")
    assert status == 404 and set(answer) == {"error", "message"}
    status, answer = await client.admin("GET", "/lockers/nobody/events")
    assert status == 404 and answer["error"] == "not_found"


# ---- orders ------------------------------------------------------------------------------------


async def test_orders_get_a_random_code_told_once_and_kept_only_sealed(
        client: Client, central: RunningCentral, locker: dict[str, Any], tmp_path: Path) -> None:
    first = await client.order("L-0001", "A-1001", accessible=True)
    second = await client.order("L-0001", "A-1002")
    code = first.pop("code")
    assert first == {"id": "A-1001", "version": 1, "window_hours": 72, "bags": BAGS,
                     "accessible": True, "state": "active"}
    assert valid_code(code) and valid_code(second["code"]) and code != second["code"]
    status, shown = await client.admin("GET", "/lockers/L-0001/orders/A-1001")
    assert status == 200 and shown == first  # told once: central cannot tell it again
    feed = await client.feed("L-0001", locker["token"])
    assert [item["order"]["id"] for item in feed["items"]] == ["A-1001", "A-1002"]
    sealed = feed["items"][0]["order"].pop("code")
    assert feed["items"][0] == {"cursor": feed["items"][0]["cursor"], "type": "order", "order": {
        "id": "A-1001", "version": 1, "state": "active", "window_hours": 72,
        "accessible": True, "bags": BAGS}}
    assert SealedBox(locker["box"]).decrypt(base64.b64decode(sealed)).decode() == code
    stored = b"".join(p.read_bytes() for p in (tmp_path / "central").iterdir() if p.is_file())
    assert code.encode() not in stored and second["code"].encode() not in stored
    assert feed["cursor"] == feed["items"][1]["cursor"] > feed["items"][0]["cursor"]

    status, cancelled = await client.admin("POST", "/lockers/L-0001/orders/A-1001/cancel")
    assert status == 200
    assert (cancelled["version"], cancelled["state"]) == (2, "cancelled")
    assert "code" not in cancelled
    after = await client.feed("L-0001", locker["token"], f"?after={feed['cursor']}&wait=0")
    assert [(i["order"]["id"], i["order"]["version"], i["order"]["state"])
            for i in after["items"]] == [("A-1001", 2, "cancelled")]
    status, _ = await client.admin("POST", "/lockers/L-0001/orders/A-1001/cancel")
    assert status == 409
    status, _ = await client.admin("POST", "/lockers/L-0001/orders/A-1001",
                                   {"id": "A-1001", "bags": BAGS, "window_hours": 1})
    assert status == 405
    status, _ = await client.admin("POST", "/lockers/L-0001/orders",
                                   {"id": "A-1001", "bags": BAGS, "window_hours": 1})
    assert status == 409
    status, _ = await client.admin("GET", "/lockers/L-0001/orders/nope")
    assert status == 404


@pytest.mark.parametrize("body", [
    {"id": "A-9", "bags": [], "window_hours": 1},
    {"id": "A-9", "bags": [{"zone": "fresh", "size": "M"}] * 33, "window_hours": 1},
    {"id": "A-9", "bags": [{"zone": "hot", "size": "M"}], "window_hours": 1},
    {"id": "A-9", "bags": [{"zone": "fresh", "size": "XL"}], "window_hours": 1},
    {"id": "A-9", "bags": [{"zone": "fresh", "size": "M", "x": 1}], "window_hours": 1},
    {"id": "A-9", "bags": BAGS, "window_hours": 0},
    {"id": "A-9", "bags": BAGS, "window_hours": 721},
    {"id": "A-9", "bags": BAGS, "window_hours": "72"},
    {"id": "A-9", "bags": BAGS, "window_hours": 72, "accessible": "yes"},
    {"id": "", "bags": BAGS, "window_hours": 72},
    {"bags": BAGS, "window_hours": 72},
])
async def test_bad_orders_are_refused(client: Client, locker: dict[str, Any],
                                      body: dict[str, Any]) -> None:
    status, answer = await client.admin("POST", "/lockers/L-0001/orders", body)
    assert status == 400, answer
    assert (await client.feed("L-0001", locker["token"]))["items"] == []


# ---- the feed's long poll ----------------------------------------------------------------------


async def test_feed_answers_at_once_when_items_wait(client: Client,
                                                   locker: dict[str, Any]) -> None:
    await client.order("L-0001", "A-1001")
    started = time.monotonic()
    feed = await client.feed("L-0001", locker["token"], "?wait=30")
    assert time.monotonic() - started < 1.0
    assert len(feed["items"]) == 1


async def test_feed_waits_then_answers_the_item_that_arrives(
        client: Client, locker: dict[str, Any]) -> None:
    first = await client.feed("L-0001", locker["token"])
    poll = asyncio.create_task(client.feed("L-0001", locker["token"],
                                           f"?after={first['cursor']}&wait=10"))
    await asyncio.sleep(0.3)
    assert not poll.done()
    started = time.monotonic()
    await client.order("L-0001", "A-1001")
    feed = await asyncio.wait_for(poll, 2.0)
    assert time.monotonic() - started < 1.0
    assert [item["order"]["id"] for item in feed["items"]] == ["A-1001"]


async def test_feed_answers_nothing_after_wait(client: Client, locker: dict[str, Any]) -> None:
    await client.order("L-0001", "A-1001")
    cursor = (await client.feed("L-0001", locker["token"]))["cursor"]
    started = time.monotonic()
    feed = await client.feed("L-0001", locker["token"], f"?after={cursor}&wait=1")
    assert 0.9 <= time.monotonic() - started < 2.0
    assert feed == {"cursor": cursor, "items": []}


async def test_feed_is_per_locker_and_limited(client: Client, locker: dict[str, Any]) -> None:
    other = await client.provision("L-0002")
    await client.order("L-0001", "A-1")
    await client.order("L-0002", "B-1")
    await client.order("L-0001", "A-2")
    await client.order("L-0001", "A-3")
    page = await client.feed("L-0001", locker["token"], "?limit=2&wait=0")
    assert [i["order"]["id"] for i in page["items"]] == ["A-1", "A-2"]
    rest = await client.feed("L-0001", locker["token"], f"?after={page['cursor']}&wait=0")
    assert [i["order"]["id"] for i in rest["items"]] == ["A-3"]
    theirs = await client.feed("L-0002", other["token"])
    assert [i["order"]["id"] for i in theirs["items"]] == ["B-1"]
    sealed = theirs["items"][0]["order"]["code"]
    assert valid_code(SealedBox(other["box"]).decrypt(base64.b64decode(sealed)).decode())


@pytest.mark.parametrize("query", ["?wait=301", "?wait=-1", "?wait=soon", "?limit=0",
                                   "?limit=101", "?limit=1.5", "?after=-1", "?after=x"])
async def test_feed_refuses_bad_parameters(client: Client, locker: dict[str, Any],
                                           query: str) -> None:
    status, answer = await client.locker("GET", "L-0001", "feed", locker["token"], query=query)
    assert status == 400 and answer["error"] == "bad_request"


async def test_raw_items_are_answered_as_they_are(client: Client,
                                                  locker: dict[str, Any]) -> None:
    for item in ({"type": "order", "order": {"id": 7}}, [1, 2], "text", {"cursor": -5, "x": 1}):
        status, answer = await client.admin("POST", "/lockers/L-0001/raw", {"item": item})
        assert status == 201 and answer["cursor"] >= 1
    feed = await client.feed("L-0001", locker["token"])
    items = feed["items"]
    assert items[0] == {"cursor": items[0]["cursor"], "type": "order", "order": {"id": 7}}
    assert items[1:] == [[1, 2], "text", {"cursor": -5, "x": 1}]
    assert feed["cursor"] > items[0]["cursor"]
    status, _ = await client.admin("POST", "/lockers/L-0001/raw", {"thing": 1})
    assert status == 400


async def test_a_stop_does_not_wait_for_long_polls(tmp_path: Path) -> None:
    central = await start_central(tmp_path / "c", admin_token=ADMIN)
    async with aiohttp.ClientSession() as session:
        client = Client(session, central)
        token = (await client.provision("L-0001"))["token"]
        poll = asyncio.create_task(client.locker("GET", "L-0001", "feed", token,
                                                 query="?wait=30"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await central.stop()
        assert time.monotonic() - started < 1.5
        status, answer = await asyncio.wait_for(poll, 1.0)
        assert (status, answer["items"]) == (200, [])


# ---- events ------------------------------------------------------------------------------------


async def test_events_are_stored_once_and_acked_every_time(
        client: Client, locker: dict[str, Any]) -> None:
    batch = [event(1), event(2, "order.ready", compartment_id=None),
             event(3, "alarm.door_forced", order_id=None, payload={"state": "raised"})]
    for _ in range(2):
        status, answer = await client.locker("POST", "L-0001", "events", locker["token"],
                                             body={"events": batch})
        assert status == 200
        assert answer == {"acked": [e["id"] for e in batch]}
    overlapping = [batch[2], event(4, at=1795000016)]
    status, answer = await client.locker("POST", "L-0001", "events", locker["token"],
                                         body={"events": overlapping})
    assert answer == {"acked": [e["id"] for e in overlapping]}
    stored = await client.events("L-0001")
    assert [e["id"] for e in stored] == [e["id"] for e in [*batch, overlapping[1]]]
    assert {k: v for k, v in stored[2].items()
            if k not in ("arrival", "locker_id", "received_at")} == batch[2]
    assert [e["arrival"] for e in stored] == sorted(e["arrival"] for e in stored)
    assert stored[3]["at"] == 1795000016 and isinstance(stored[3]["at"], int)  # as received
    assert {e["locker_id"] for e in stored} == {"L-0001"}
    assert [e["id"] for e in await client.events("L-0001", stored[1]["arrival"])] == [
        stored[2]["id"], stored[3]["id"]]


def _without(key: str) -> dict[str, Any]:
    bad = event(2)
    del bad[key]
    return bad


def _changed(**fields: Any) -> dict[str, Any]:
    return {**event(2), **fields}


@pytest.mark.parametrize("body", [
    {"events": []},
    {"events": [event(i) for i in range(1, 502)]},
    {"events": [_changed(extra=1)]},
    {"events": [_without("order_id")]},
    {"events": [_without("payload")]},
    {"events": [_changed(seq="2")]},
    {"events": [_changed(seq=True)]},
    {"events": [_changed(seq=-1)]},
    {"events": [_changed(at="now")]},
    {"events": [_changed(id="")]},
    {"events": [_changed(id=7)]},
    {"events": [_changed(kind="Door Opened")]},
    {"events": [_changed(category="gossip")]},
    {"events": [_changed(compartment_id=3)]},
    {"events": [_changed(payload=[1])]},
    {"events": [event(3), event(2)]},
    {"events": event(2)},
    {"events": [event(2)], "more": 1},
    [event(2)],
])
async def test_a_bad_batch_is_refused_whole(client: Client, locker: dict[str, Any],
                                            body: Any) -> None:
    if isinstance(body, dict) and isinstance(body.get("events"), list) and body["events"]:
        body = {**body, "events": [event(1), *body["events"]]}  # a good event first: not kept
    status, answer = await client.locker("POST", "L-0001", "events", locker["token"], body=body)
    assert status == 400 and answer["error"] == "bad_request" and answer["message"]
    assert await client.events("L-0001") == []


async def test_events_that_are_not_json_or_too_large_are_refused(
        client: Client, locker: dict[str, Any]) -> None:
    url = client.central.api_url + "/lockers/L-0001/events"
    auth = {"Authorization": f"Bearer {locker['token']}", "Content-Type": "application/json"}
    status, answer = await client.call("POST", url, data=b"{not json", headers=auth)
    assert status == 400 and answer["error"] == "bad_request"
    huge = json.dumps({"events": [event(1, payload={"pad": "x" * (1024 * 1024)})]}).encode()
    status, answer = await client.call("POST", url, data=huge, headers=auth)
    assert status == 413 and answer["error"] == "too_large"
    assert await client.events("L-0001") == []


async def test_a_code_collision_gets_the_order_a_fresh_code_for_the_customer(
        client: Client, locker: dict[str, Any]) -> None:
    order = await client.order("L-0001", "A-1001")
    await client.order("L-0001", "A-1002")
    cursor = (await client.feed("L-0001", locker["token"]))["cursor"]
    collision = event(1, "security.code_collision", compartment_id=None, order_id="A-1001",
                      payload={"version": 1, "message": "its code is an open order's"})
    for _ in range(2):  # the same event delivered twice reissues once
        status, _ = await client.locker("POST", "L-0001", "events", locker["token"],
                                        body={"events": [collision]})
        assert status == 200
    feed = await client.feed("L-0001", locker["token"], f"?after={cursor}&wait=0")
    assert [(i["order"]["id"], i["order"]["version"]) for i in feed["items"]] == [("A-1001", 2)]
    new = SealedBox(locker["box"]).decrypt(base64.b64decode(feed["items"][0]["order"]["code"]))
    assert valid_code(new.decode()) and new.decode() != order["code"]
    status, told = await client.admin("GET", "/lockers/L-0001/messages")
    assert told == {"messages": [{"order_id": "A-1001", "code": new.decode()}]}
    status, told = await client.admin("GET", "/lockers/L-0001/messages")
    assert told == {"messages": []}  # handed over once, then forgotten
    stale = event(2, "security.code_collision", order_id="A-1001",
                  payload={"version": 1})  # about the version already replaced
    await client.locker("POST", "L-0001", "events", locker["token"], body={"events": [stale]})
    assert (await client.feed("L-0001", locker["token"], f"?after={feed['cursor']}&wait=0")
            )["items"] == []


async def test_a_finished_order_leaves_no_sealed_code_at_central(
        client: Client, locker: dict[str, Any], tmp_path: Path) -> None:
    await client.order("L-0001", "A-1001")
    await client.order("L-0001", "A-1002")
    before = await client.feed("L-0001", locker["token"])
    sealed = {i["order"]["id"]: i["order"]["code"] for i in before["items"]}
    done = event(1, "order.collected", compartment_id=None, order_id="A-1001", payload={})
    await client.locker("POST", "L-0001", "events", locker["token"], body={"events": [done]})
    stored = b"".join(p.read_bytes() for p in (tmp_path / "central").iterdir() if p.is_file())
    assert sealed["A-1001"].encode() not in stored  # gone from the order and from the feed
    assert sealed["A-1002"].encode() in stored  # still open: a restored locker may ask again
    again = await client.feed("L-0001", locker["token"])
    assert "code" not in again["items"][0]["order"] and "code" in again["items"][1]["order"]


# ---- heartbeat ---------------------------------------------------------------------------------


async def test_heartbeat_is_kept_and_silence_is_flagged(client: Client,
                                                        locker: dict[str, Any]) -> None:
    status, listed = await client.admin("GET", "/lockers")
    assert listed["lockers"] == [{"id": "L-0001", "last_heartbeat_at": None, "last_seen_at": None,
                                  "heartbeat": None, "silent": True}]
    beat = heartbeat()
    status, answer = await client.locker("POST", "L-0001", "heartbeat", locker["token"], body=beat)
    assert status == 200 and set(answer) == {"server_time", "events_seq"}
    assert abs(answer["server_time"] - time.time()) < 5
    status, listed = await client.admin("GET", "/lockers")
    (row,) = listed["lockers"]
    assert row["heartbeat"] == beat and row["silent"] is False
    assert abs(row["last_heartbeat_at"] - time.time()) < 5
    await asyncio.sleep(SILENT_AFTER_S + 0.1)
    status, listed = await client.admin("GET", "/lockers")
    assert listed["lockers"][0]["silent"] is True


@pytest.mark.parametrize("change", [
    {"ready": "yes"}, {"cursor": -1}, {"at": None}, {"version": ""}, {"extra": 1},
    {"compartments": {"free": -1}}, {"compartments": {"broken": 1}}, {"orders": {"ready": 1.5}},
    {"zones": {"sauna": {"celsius": 80, "setpoint_c": 80, "compressor": False}}},
    {"zones": {"fresh": {"celsius": 3.0}}}, {"alarms": [{"kind": "x"}]},
    {"outbox": {"depth": 1, "oldest_at": None}}, {"outbox": None},
])
async def test_a_bad_heartbeat_is_refused(client: Client, locker: dict[str, Any],
                                          change: dict[str, Any]) -> None:
    status, answer = await client.locker("POST", "L-0001", "heartbeat", locker["token"],
                                         body=heartbeat(**change))
    assert status == 400, answer
    status, listed = await client.admin("GET", "/lockers")
    assert listed["lockers"][0]["heartbeat"] is None


async def test_a_heartbeat_with_nulls_and_no_alarms_is_fine(client: Client,
                                                           locker: dict[str, Any]) -> None:
    beat = heartbeat(zones={"ambient": {"celsius": None, "setpoint_c": None, "compressor": None}},
                     alarms=[], orders={}, outbox={"depth": 0, "oldest_at": None, "dropped": 0})
    status, _ = await client.locker("POST", "L-0001", "heartbeat", locker["token"], body=beat)
    assert status == 200


# ---- commands ----------------------------------------------------------------------------------


async def test_commands_are_signed_with_the_central_key(
        client: Client, central: RunningCentral, locker: dict[str, Any]) -> None:
    args = {"compartment": "A03", "reason": "customer stuck, ticket 4411"}
    before = time.time()
    status, answer = await client.admin("POST", "/lockers/L-0001/commands",
                                        {"action": "open_compartment", "args": args})
    assert status == 201 and set(answer) == {"cursor", "nonce", "body", "signature"}
    (item,) = (await client.feed("L-0001", locker["token"]))["items"]
    assert item == {"cursor": answer["cursor"], "type": "command",
                    "command": {"body": answer["body"], "signature": answer["signature"]}}
    public_key = serialization.load_pem_public_key(central.public_key_pem)
    assert isinstance(public_key, Ed25519PublicKey)
    public_key.verify(base64.b64decode(item["command"]["signature"], validate=True),
                      item["command"]["body"].encode("utf-8"))
    body = json.loads(item["command"]["body"])
    assert list(body) == ["locker_id", "nonce", "issued_at", "expires_at", "action", "args"]
    assert body["locker_id"] == "L-0001" and body["nonce"] == answer["nonce"]
    assert len(body["nonce"]) == 32 and (body["action"], body["args"]) == ("open_compartment", args)
    assert before - 1 <= body["issued_at"] <= time.time() + 1
    assert body["expires_at"] == pytest.approx(body["issued_at"] + 300)


async def test_command_overrides_are_test_aids(client: Client, locker: dict[str, Any]) -> None:
    first = (await client.admin("POST", "/lockers/L-0001/commands", {
        "action": "set_setpoint", "args": {"zone": "fresh", "celsius": 4.0}, "ttl_s": 60}))[1]
    assert json.loads(first["body"])["expires_at"] == pytest.approx(
        json.loads(first["body"])["issued_at"] + 60)
    status, replay = await client.admin("POST", "/lockers/L-0001/commands", {
        "action": "no_such_action", "args": {}, "locker_id": "L-9999", "nonce": first["nonce"],
        "issued_at": 1000.0, "expires_at": 2000.0})
    assert status == 201
    body = json.loads(replay["body"])
    assert (body["locker_id"], body["nonce"], body["issued_at"], body["expires_at"],
            body["action"]) == ("L-9999", first["nonce"], 1000.0, 2000.0, "no_such_action")
    feed = await client.feed("L-0001", locker["token"])
    assert [i["command"]["body"] for i in feed["items"]] == [first["body"], replay["body"]]
    for bad in ({"action": "x"}, {"action": "x", "args": []}, {"action": "", "args": {}},
                {"action": "x", "args": {}, "ttl_s": 0}, {"action": "x", "args": {}, "why": 1},
                {"action": "x", "args": {}, "expires_at": "later"}):
        status, _ = await client.admin("POST", "/lockers/L-0001/commands", bad)
        assert status == 400, bad
    status, _ = await client.admin("POST", "/lockers/L-0404/commands", {"action": "x", "args": {}})
    assert status == 404


# ---- faults ------------------------------------------------------------------------------------


async def _three_calls(client: Client, token: str) -> dict[str, tuple[int, bytes, str]]:
    """Each locker call's raw answer: status, body bytes, content type."""
    answers = {}
    for call, method, body in (("feed", "GET", None), ("events", "POST", {"events": [event(1)]}),
                               ("heartbeat", "POST", heartbeat())):
        query = "?wait=0" if call == "feed" else ""
        async with client.session.request(
                method, f"{client.central.api_url}/lockers/L-0001/{call}{query}", json=body,
                headers={"Authorization": f"Bearer {token}"}) as response:
            answers[call] = (response.status, await response.read(), response.content_type)
    return answers


async def _fault(client: Client, mode: str, **extra: Any) -> None:
    status, answer = await client.admin("POST", "/faults", {"mode": mode, **extra})
    assert status == 200 and answer["mode"] == mode


async def test_fault_error(client: Client, locker: dict[str, Any]) -> None:
    await _fault(client, "error")
    for status, body, _ in (await _three_calls(client, locker["token"])).values():
        assert status == 500 and json.loads(body)["error"] == "internal"
    assert (await client.admin("GET", "/lockers"))[0] == 200  # admin calls stay sane


async def test_fault_slow(client: Client, locker: dict[str, Any]) -> None:
    await _fault(client, "slow", delay_s=0.3)
    started = time.monotonic()
    answers = await _three_calls(client, locker["token"])
    assert time.monotonic() - started >= 0.9
    assert [status for status, _, _ in answers.values()] == [200, 200, 200]
    assert json.loads(answers["feed"][1]) == {"cursor": 0, "items": []}


async def test_fault_garbage(client: Client, locker: dict[str, Any]) -> None:
    await _fault(client, "garbage")
    for answer in (await _three_calls(client, locker["token"])).values():
        assert answer == (200, b"not json{{", "application/json")


async def test_fault_oversized(client: Client, locker: dict[str, Any]) -> None:
    await _fault(client, "oversized")
    answers = await _three_calls(client, locker["token"])
    for call, (status, body, content_type) in answers.items():
        assert status == 200 and content_type == "application/json"
        assert len(body) >= 2 * 1024 * 1024, call
        assert isinstance(json.loads(body), dict)
    assert json.loads(answers["feed"][1]) == {"cursor": 0, "items": []}
    assert json.loads(answers["events"][1]) == {"acked": []}


async def test_fault_wrong_types(client: Client, locker: dict[str, Any]) -> None:
    await _fault(client, "wrong_types")
    answers = await _three_calls(client, locker["token"])
    assert {call: json.loads(body) for call, (_, body, _) in answers.items()} == {
        "feed": {"cursor": "x", "items": {}}, "events": {"acked": "all"},
        "heartbeat": {"server_time": "now"}}


async def test_fault_unknown_fields_then_none(client: Client, locker: dict[str, Any]) -> None:
    await _fault(client, "unknown_fields")
    answers = {call: json.loads(body)
               for call, (_, body, _) in (await _three_calls(client, locker["token"])).items()}
    assert answers["feed"] == {"cursor": 0, "items": [], "surprise": True}
    assert answers["events"]["surprise"] is True and len(answers["events"]["acked"]) == 1
    assert set(answers["heartbeat"]) == {"server_time", "events_seq", "surprise"}
    await _fault(client, "none")
    answers = {call: json.loads(body)
               for call, (_, body, _) in (await _three_calls(client, locker["token"])).items()}
    assert "surprise" not in answers["feed"] and "surprise" not in answers["heartbeat"]
    for bad in ({"mode": "chaos"}, {"mode": "slow", "delay_s": -1}, {"delay_s": 1}):
        assert (await client.admin("POST", "/faults", bad))[0] == 400


# ---- restarts, the command line, TLS -----------------------------------------------------------


async def test_a_restart_on_the_same_folder_and_port_keeps_everything(tmp_path: Path) -> None:
    data = tmp_path / "central"
    central = await start_central(data)  # no admin token given: kept in data/admin.token
    port, admin_token, key = central.port, central.admin_token, central.public_key_pem
    assert stat.S_IMODE((data / "admin.token").stat().st_mode) == 0o600
    async with aiohttp.ClientSession() as session:
        try:
            client = Client(session, central)
            locker = await client.provision("L-0001")
            await client.order("L-0001", "A-1")
            await client.locker("POST", "L-0001", "events", locker["token"],
                                 body={"events": [event(1)]})
            await client.locker("POST", "L-0001", "heartbeat", locker["token"], body=heartbeat())
            before = await client.feed("L-0001", locker["token"])
            await central.stop()

            with pytest.raises(aiohttp.ClientConnectionError):
                await client.feed("L-0001", locker["token"])
            central = await start_central(data, port=port)
            client.central = central
            assert (central.port, central.admin_token, central.public_key_pem) == (
                port, admin_token, key)
            assert await client.feed("L-0001", locker["token"]) == before
            second = await client.order("L-0001", "A-2")
            assert second["version"] == 1 and valid_code(second["code"])
            after = await client.feed("L-0001", locker["token"], f"?after={before['cursor']}"
                                      "&wait=0")
            assert after["items"][0]["cursor"] > before["cursor"]
            assert len(await client.events("L-0001")) == 1
            status, listed = await client.admin("GET", "/lockers")
            assert listed["lockers"][0]["heartbeat"]["version"] == "0.4.0"
            status, _ = await client.locker("POST", "L-0001", "events", locker["token"],
                                            body={"events": [event(1)]})
            assert status == 200
        finally:
            await central.stop()


async def test_the_command_line_prints_its_url_and_admin_token(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator.central", "--data", str(tmp_path / "c"), "--port", "0",
        "--admin-token", "cli-token", stdout=asyncio.subprocess.PIPE, cwd=root, env=env)
    assert process.stdout is not None
    try:
        lines = [(await asyncio.wait_for(process.stdout.readline(), 10)).decode().split()
                 for _ in range(2)]
        assert lines[0][0] == "CENTRAL" and lines[0][1].startswith("http://127.0.0.1:")
        assert lines[1] == ["ADMIN", "cli-token"]
        async with aiohttp.ClientSession() as session, session.get(
                lines[0][1] + "/admin/lockers", headers={"X-Admin-Token": "cli-token"}) as r:
            assert r.status == 200 and await r.json() == {"lockers": []}
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_central_over_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki.cert, pki.key)
    central = await start_central(tmp_path / "c", admin_token=ADMIN, ssl_context=server_context)
    try:
        assert central.url.startswith("https://127.0.0.1:")
        client_context = ssl.create_default_context(cafile=str(pki.ca))
        connector = aiohttp.TCPConnector(ssl=client_context)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = Client(session, central)
            locker = await client.provision("L-0001")
            assert (await client.feed("L-0001", locker["token"]))["items"] == []
    finally:
        await central.stop()
