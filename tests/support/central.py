"""A locker with a [central] table, driven through the domain (no HTTP): its config with
central's test command key, orders as central sends them, a feed answer applied, a signed command,
and a courier loading an order on the stand-in driver."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from locker.domain.codes import CODE_DIGITS, create_keys, seal
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.feed import parse_feed
from locker.domain.sync import cursor as stored_cursor
from tests.support.codes import code_no
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver

CENTRAL = """
[central]
url = "http://127.0.0.1:9/v1"
allow_insecure = true
remote_opens_burst = 2
remote_opens_per_hour = 1
outbox_max_events = 100
offline_hold_h = 24
outage_alarm_s = 60
"""
KEY = Ed25519PrivateKey.generate()


def central_config(folder: Path, text: str = SMALL_CONFIG + CENTRAL) -> LockerConfig:
    """A locker config with a [central] table, its secret, and central's test command key."""
    config = load_config(write_config(folder, text))
    create_keys(config)
    assert config.central is not None
    config.central.command_key_file.write_bytes(KEY.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return config


def order(order_id: str = "A-1", version: int = 1, code: int = 1, *, state: str = "active",
          bags: list[dict[str, str]] | None = None, hours: float = 48) -> dict[str, Any]:
    """An order as central sends it; feed() seals code_no(code) to the locker's box key."""
    return {"id": order_id, "version": version, "code": code_no(code), "state": state,
            "window_hours": hours, "accessible": False,
            "bags": bags or [{"zone": "frozen", "size": "M"}, {"zone": "ambient", "size": "S"}]}


def _sealed(locker: Locker, item: dict[str, Any]) -> dict[str, Any]:
    if item.get("type") != "order" or not isinstance(item["order"].get("code"), str):
        return item
    code = item["order"]["code"]
    if len(code) == CODE_DIGITS:  # a test's plain code: sealed as central would
        code = seal(locker.codes.box_public, code)
    return {**item, "order": {**item["order"], "code": code}}


async def feed(locker: Locker, *items: dict[str, Any]) -> dict[str, int]:
    """Number the items after the stored cursor and apply them as one feed answer."""
    assert locker.inbox is not None
    after = stored_cursor(locker.store)
    items = tuple(_sealed(locker, item) for item in items)
    numbered = [{"cursor": after + n, **item} for n, item in enumerate(items, start=1)]
    cursor, parsed = parse_feed({"cursor": after + len(items), "items": numbered}, after)
    return (await locker.inbox.apply(cursor, parsed)).outcomes


def signed(action: str, args: dict[str, Any], *, now: float, locker_id: str = "test-locker",
           nonce: str = "n" * 32, ttl: float = 300, key: Ed25519PrivateKey = KEY,
           issued: float | None = None) -> dict[str, Any]:
    body = json.dumps({"locker_id": locker_id, "nonce": nonce,
                       "issued_at": now if issued is None else issued,
                       "expires_at": now + ttl, "action": action, "args": args})
    return {"type": "command", "command": {
        "body": body, "signature": base64.b64encode(key.sign(body.encode())).decode()}}


async def load(locker: Locker, driver: FakeDriver, order_id: str) -> None:
    """A courier loads the order: its doors open and close."""
    result = await locker.courier.load("courier:courier-1", order_id)
    for door in result.opened:
        driver.open(door.compartment_id)
        driver.close(door.compartment_id)


