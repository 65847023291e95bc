"""The reference central: the other end of docs/central.md, for the demo and the tests.

An aiohttp server with its own SQLite file and Ed25519 signing key in `data_dir`. It implements
the three locker calls under `/v1/lockers/{locker_id}/` (feed long poll, events, heartbeat) and an
admin API under `/admin/` (header `X-Admin-Token`) that provisions lockers, creates and cancels
orders, signs commands, queues raw items and makes the locker calls misbehave on purpose.
docs/central-api.yaml describes both; tests/simulator/test_central_openapi.py holds them together.

    python -m simulator.central --data DIR [--host H] [--port P] [--admin-token T] [--updates DIR]
                                [--tls-cert PEM --tls-key PEM]

prints `CENTRAL <url>` and `ADMIN <token>` and serves until SIGINT or SIGTERM. Every bit of state
lives in `data_dir`, so a stop and a start on the same folder (and port) looks to a locker like a
central that was down for a while. This module is an independent implementation of the protocol:
it must NEVER import from locker/, hardware/ or api/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import signal
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.public import PublicKey, SealedBox
from sqlite_utils import Database

from locker.domain.model import ZONES  # the declared zones: what a payload may name

API_PREFIX = "/v1"
MAX_BODY = 1024 * 1024  # the spec's limit on a request body (and the locker's on an answer)
MAX_WAIT_S = 300.0
# idle keep-alive connections are kept this long: longer than a locker's heartbeat period (at
# most 300 s by default), so its heartbeats reuse one connection instead of a TLS handshake each
KEEPALIVE_S = 600.0
SILENT_AFTER_S = 360.0  # no call for longer than the longest long poll and a minute: silent
CATEGORIES = ("order", "door", "alarm", "security", "coldchain", "telemetry")
SIZES = ("S", "M", "L")
# what a customer may hand back (locker.returns.KINDS; central is another program: its own list)
RETURN_KINDS = ("crates", "ambient_item", "fresh_item", "frozen_item")
COMPARTMENT_STATES = ("free", "reserved", "loaded", "out_of_service")
ORDER_STATES = ("received", "allocated", "loaded", "ready", "collecting", "collected", "withheld",
                "expired", "reclaiming", "reclaimed", "cancelled")
FAULT_MODES = ("none", "error", "slow", "garbage", "oversized", "wrong_types", "unknown_fields")
# the locker's events that say an order is over: its sealed code is kept no longer
FINISHED_EVENTS = ("order.collected", "order.reclaimed", "order.cancelled")
# ... and those that say its return code is spent
RETURN_CODE_DONE = ("order.return_deposited", "return.lapsed", "order.reclaimed",
                    "order.cancelled")
LOCKER_CALLS = ("feed", "events", "heartbeat")  # route names; faults touch only these
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")  # not "." or ".."
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
ERROR_WORDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 500: "internal"}
# what the wrong_types fault answers: the right field names, the wrong JSON types
WRONG_TYPES: dict[str, dict[str, Any]] = {"feed": {"cursor": "x", "items": {}},
                                          "events": {"acked": "all"},
                                          "heartbeat": {"server_time": "now"}}

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS lockers (
        id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, box_key TEXT NOT NULL,
        record_key TEXT, created_at REAL NOT NULL, heartbeat_at REAL, heartbeat TEXT)""",
    # AUTOINCREMENT: a cursor is never reused, even after the newest item is deleted
    """CREATE TABLE IF NOT EXISTS feed (
        cursor INTEGER PRIMARY KEY AUTOINCREMENT, locker_id TEXT NOT NULL, item TEXT NOT NULL,
        queued_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS feed_by_locker ON feed (locker_id, cursor)",
    """CREATE TABLE IF NOT EXISTS orders (
        locker_id TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        state TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (locker_id, id))""",
    """CREATE TABLE IF NOT EXISTS events (
        arrival INTEGER PRIMARY KEY AUTOINCREMENT, locker_id TEXT NOT NULL, id TEXT NOT NULL,
        seq INTEGER NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL, category TEXT NOT NULL,
        compartment_id TEXT, order_id TEXT, payload TEXT NOT NULL, received_at REAL NOT NULL,
        body TEXT NOT NULL, UNIQUE (locker_id, id))""",
    # the shop's customer behind an order (never on the feed: the locker needs no customer)
    """CREATE TABLE IF NOT EXISTS order_customers (
        locker_id TEXT NOT NULL, order_id TEXT NOT NULL, customer_id TEXT NOT NULL,
        PRIMARY KEY (locker_id, order_id))""",
    # customers who turned on the kiosk's assistance: their next orders are loaded low
    """CREATE TABLE IF NOT EXISTS customers (
        id TEXT PRIMARY KEY, assisted_at REAL NOT NULL)""",
    # each collected order's cold-chain certificate, as the locker signed it, and the verdict
    """CREATE TABLE IF NOT EXISTS certificates (
        locker_id TEXT NOT NULL, order_id TEXT NOT NULL, body TEXT NOT NULL, signature TEXT,
        verified INTEGER NOT NULL, why TEXT, received_at REAL NOT NULL,
        PRIMARY KEY (locker_id, order_id))""",
    # the locker's signed daily heads of its HACCP hash chain: a record rewritten later
    # no longer matches these
    """CREATE TABLE IF NOT EXISTS haccp_heads (
        locker_id TEXT NOT NULL, day TEXT NOT NULL, row INTEGER NOT NULL, head TEXT NOT NULL,
        signature TEXT NOT NULL, verified INTEGER NOT NULL,
        PRIMARY KEY (locker_id, row))""",
)


class Problem(Exception):
    """A refusal that becomes the spec's error body: {"error": word, "message": text}."""

    def __init__(self, status: int, message: str, word: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.word = word or ERROR_WORDS.get(status, "error")
        self.message = message


def _error(status: int, message: str, word: str | None = None) -> web.Response:
    body = {"error": word or ERROR_WORDS.get(status, "error"), "message": message}
    return web.json_response(body, status=status)


@dataclass
class Faults:
    """How the locker calls misbehave right now (POST /admin/faults); not kept across restarts."""

    mode: str = "none"
    delay_s: float = 5.0


class Central:
    """One central's state: the database, the signing key, the waiting long polls, the faults."""

    def __init__(self, data_dir: Path, *, admin_token: str, silent_after_s: float) -> None:
        self.data_dir = Path(data_dir)
        self.admin_token = admin_token
        self.silent_after_s = silent_after_s
        self.seen: dict[str, float] = {}  # locker id -> its last call (feed, events, heartbeat)
        self.faults = Faults()
        # codes for customers that no admin call answered (a collision's new code): the stand-in
        # for the SMS gateway, in memory only, drained by GET /admin/lockers/{id}/messages
        self.messages: dict[str, list[dict[str, str]]] = {}
        self.closing = False
        self._db: Database | None = None
        self._key: Ed25519PrivateKey | None = None
        self._wakeups: dict[str, asyncio.Event] = {}

    # ---- life cycle ----

    def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._db = Database(self.data_dir / "central.db")
        self._db.enable_wal()
        self._db.execute("PRAGMA secure_delete = ON")  # a forgotten sealed code is zeroed
        for statement in SCHEMA:
            self._db.execute(statement)
        self._key = load_or_create_key(self.data_dir)
        self.closing = False

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def wake_all(self) -> None:
        """Let every long poll answer now (shutdown), so a stop never waits out a 30 s poll."""
        self.closing = True
        for event in self._wakeups.values():
            event.set()
        self._wakeups.clear()

    @property
    def db(self) -> Database:
        assert self._db is not None, "central is not open"
        return self._db

    @property
    def public_key_pem(self) -> bytes:
        assert self._key is not None, "central is not open"
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # ---- lockers ----

    def provision(self, locker_id: str, box_key: str, record_key: str | None = None) -> str:
        """Register a locker with the public key its codes are sealed to (and the one its
        HACCP record and certificates are signed with); answer its bearer token, of which
        only the SHA-256 is kept."""
        token = secrets.token_urlsafe(32)
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO lockers (id, token_sha256, box_key, record_key, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (locker_id, _sha256(token), box_key, record_key, time.time()))
        return token

    def locker(self, locker_id: str) -> dict[str, Any]:
        row = self._one("SELECT * FROM lockers WHERE id = ?", (locker_id,))
        if row is None:
            raise Problem(404, f"no locker {locker_id!r}")
        return row

    def has_locker(self, locker_id: str) -> bool:
        return self._one("SELECT id FROM lockers WHERE id = ?", (locker_id,)) is not None

    def locker_of_token(self, token: str) -> str | None:
        row = self._one("SELECT id FROM lockers WHERE token_sha256 = ?", (_sha256(token),))
        return None if row is None else str(row["id"])

    def lockers(self) -> list[dict[str, Any]]:
        now = time.time()

        def last_seen(row: dict[str, Any]) -> float | None:
            return max(filter(None, (row["heartbeat_at"], self.seen.get(row["id"]))),
                       default=None)
        return [{"id": row["id"], "last_heartbeat_at": row["heartbeat_at"],
                 "last_seen_at": last_seen(row),
                 "heartbeat": None if row["heartbeat"] is None else json.loads(row["heartbeat"]),
                 "silent": (seen := last_seen(row)) is None or now - seen > self.silent_after_s}
                for row in self._all("SELECT * FROM lockers ORDER BY id")]

    def events_seq(self, locker_id: str) -> int:
        """The highest event sequence this locker ever sent (0 if none)."""
        row = self.db.execute("SELECT MAX(seq) FROM events WHERE locker_id = ?",
                              (locker_id,)).fetchone()
        return int(row[0] or 0)

    def record_heartbeat(self, locker_id: str, heartbeat: dict[str, Any]) -> None:
        with self.db.atomic():
            self.db.execute("UPDATE lockers SET heartbeat_at = ?, heartbeat = ? WHERE id = ?",
                            (time.time(), json.dumps(heartbeat), locker_id))

    # ---- the feed ----

    def queue(self, locker_id: str, item: Any) -> int:
        """Append an item to a locker's feed, wake its long polls; answer the item's cursor."""
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO feed (locker_id, item, queued_at) VALUES (?, ?, ?)",
                (locker_id, json.dumps(item), time.time())).lastrowid
        event = self._wakeups.pop(locker_id, None)
        if event is not None:
            event.set()
        return int(cursor or 0)

    def items_after(self, locker_id: str, after: int, limit: int) -> list[tuple[int, Any]]:
        rows = self.db.execute(
            "SELECT cursor, item FROM feed WHERE locker_id = ? AND cursor > ? ORDER BY cursor"
            " LIMIT ?", (locker_id, after, limit)).fetchall()
        return [(int(cursor), json.loads(text)) for cursor, text in rows]

    async def wait_for_items(self, locker_id: str, after: int, limit: int,
                             wait_s: float) -> list[tuple[int, Any]]:
        """The long poll: items above `after` at once, else the first ones within `wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            wakeup = self._wakeups.setdefault(locker_id, asyncio.Event())
            items = self.items_after(locker_id, after, limit)
            remaining = deadline - loop.time()
            if items or remaining <= 0 or self.closing:
                return items
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), remaining)

    # ---- orders ----

    def _sealed_new_code(self, locker_id: str) -> tuple[str, str]:
        """A new code and the same sealed to the locker: only the sealed one is ever stored, the
        other goes to the customer channel and is forgotten."""
        code = new_code()
        return code, seal(self.locker(locker_id)["box_key"], code)

    def create_order(self, locker_id: str, order_id: str, bags: list[dict[str, str]],
                     window_hours: float, accessible: bool | None,
                     customer: str | None = None, *, return_code: bool = False,
                     return_kind: str | None = None) -> dict[str, Any]:
        """A new order; `accessible` left out is the customer's own preference: true once
        they have used the kiosk's assistance at a pickup. With `return_code`, the customer
        also gets a code to hand something back at the locker (for `return_kind`, or what
        they say there)."""
        self.locker(locker_id)
        if self._one("SELECT id FROM orders WHERE locker_id = ? AND id = ?", (locker_id, order_id)):
            raise Problem(409, f"order {order_id!r} exists already")
        if accessible is None:
            accessible = customer is not None and self.customer(customer)["assisted"]
        with self.db.atomic():
            code, sealed = self._sealed_new_code(locker_id)
            order = {"id": order_id, "version": 1, "code": sealed, "state": "active",
                     "window_hours": window_hours, "accessible": accessible, "bags": bags}
            given_return = None
            if return_code:
                given_return, order["return_code"] = self._sealed_new_code(locker_id)
                if return_kind is not None:
                    order["return_kind"] = return_kind
            self._save_order(locker_id, order, insert=True)
            if customer is not None:
                self.db.execute("INSERT INTO order_customers (locker_id, order_id, customer_id)"
                                " VALUES (?, ?, ?)", (locker_id, order_id, customer))
        self.queue(locker_id, {"type": "order", "order": order})
        made = {**self.order_view(locker_id, order_id), "code": code}
        return made if given_return is None else {**made, "return_code": given_return}

    def _save_order(self, locker_id: str, order: dict[str, Any], *, insert: bool = False) -> None:
        values = (order["version"], order["state"], json.dumps(order), locker_id, order["id"])
        if insert:
            self.db.execute("INSERT INTO orders (version, state, body, locker_id, id)"
                            " VALUES (?, ?, ?, ?, ?)", values)
        else:
            self.db.execute("UPDATE orders SET version = ?, state = ?, body = ?"
                            " WHERE locker_id = ? AND id = ?", values)

    def _order(self, locker_id: str, order_id: str) -> dict[str, Any]:
        self.locker(locker_id)
        row = self._one("SELECT body FROM orders WHERE locker_id = ? AND id = ?",
                        (locker_id, order_id))
        if row is None:
            raise Problem(404, f"no order {order_id!r} for locker {locker_id!r}")
        order: dict[str, Any] = json.loads(row["body"])
        return order

    def order_view(self, locker_id: str, order_id: str) -> dict[str, Any]:
        """The order as it is now (its code is central's no more: only the locker can open it)."""
        order = self._order(locker_id, order_id)
        view = {"id": order["id"], "version": order["version"],
                "window_hours": order["window_hours"], "bags": order["bags"],
                "accessible": order["accessible"], "state": order["state"]}
        customer = self._customer_of(locker_id, order_id)
        if customer is not None:
            view["customer"] = customer
        # bags the locker kept back at pickup (their zone left its limits): to replace or refund
        withheld = [json.loads(r["payload"]) for r in self._all(
            "SELECT payload FROM events WHERE locker_id = ? AND order_id = ?"
            " AND kind = 'order.bag_withheld' ORDER BY arrival", (locker_id, order_id))]
        if withheld:
            view["withheld"] = [{k: w.get(k) for k in ("compartment", "zone", "reason",
                                                       "minutes_above", "peak_c")}
                                for w in withheld]
        # what the customer handed back at the locker, for the drive to credit
        handed_back = [json.loads(r["payload"]) for r in self._all(
            "SELECT payload FROM events WHERE locker_id = ? AND order_id = ?"
            " AND kind = 'order.return_deposited' ORDER BY arrival", (locker_id, order_id))]
        if handed_back:
            view["returns"] = [{k: r.get(k) for k in ("return_id", "compartment", "zone", "what",
                                                      "source")} for r in handed_back]
        return view

    # ---- customers ----

    def _customer_of(self, locker_id: str, order_id: str) -> str | None:
        row = self._one("SELECT customer_id FROM order_customers WHERE locker_id = ?"
                        " AND order_id = ?", (locker_id, order_id))
        return None if row is None else str(row["customer_id"])

    def customer(self, customer_id: str) -> dict[str, Any]:
        """What central knows of a customer: whether they use the kiosk's assistance."""
        row = self._one("SELECT assisted_at FROM customers WHERE id = ?", (customer_id,))
        return {"id": customer_id, "assisted": row is not None,
                "assisted_at": None if row is None else row["assisted_at"]}

    def on_assistance_used(self, locker_id: str, event: dict[str, Any]) -> None:
        """A customer turned on speech and large text for a pickup: from now on their orders
        are loaded in the lower compartments (those still to be sent)."""
        order_id = event["order_id"]
        customer = None if order_id is None else self._customer_of(locker_id, order_id)
        if customer is not None:
            with self.db.atomic():
                self.db.execute("INSERT OR IGNORE INTO customers (id, assisted_at)"
                                " VALUES (?, ?)", (customer, event["at"]))

    def new_version(self, locker_id: str, order_id: str, *, cancel: bool = False,
                    new_code: bool = False) -> dict[str, Any]:
        """Issue the next version of an order on the feed: cancelled, or with a fresh code."""
        order = self._order(locker_id, order_id)
        if order["state"] == "cancelled":
            raise Problem(409, f"order {order_id!r} is cancelled")
        with self.db.atomic():
            order["version"] += 1
            if cancel:
                order["state"] = "cancelled"
            code = None
            if new_code:
                code, order["code"] = self._sealed_new_code(locker_id)
            self._save_order(locker_id, order)
        self.queue(locker_id, {"type": "order", "order": order})
        view = self.order_view(locker_id, order_id)
        return view if code is None else {**view, "code": code}

    # ---- events ----

    def store_events(self, locker_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keep the events not yet held (by id, per locker); answer only the new ones."""
        fresh = []
        now = time.time()
        with self.db.atomic():
            for event in events:
                changed = self.db.execute(
                    "INSERT OR IGNORE INTO events (locker_id, id, seq, at, kind, category,"
                    " compartment_id, order_id, payload, received_at, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (locker_id, event["id"], event["seq"], event["at"], event["kind"],
                     event["category"], event["compartment_id"], event["order_id"],
                     json.dumps(event["payload"]), now, json.dumps(event))).rowcount
                if changed:
                    fresh.append(event)
        return fresh

    def events_after(self, locker_id: str, after: int) -> list[dict[str, Any]]:
        """The events as the locker sent them (numbers untouched), with when they arrived."""
        rows = self._all("SELECT arrival, locker_id, received_at, body FROM events"
                         " WHERE locker_id = ? AND arrival > ? ORDER BY arrival",
                         (locker_id, after))
        return [{**json.loads(row.pop("body")), **row} for row in rows]

    # ---- the cold chain's proofs ----

    def _record_key(self, locker_id: str) -> Ed25519PublicKey | None:
        pem = self.locker(locker_id)["record_key"]
        return None if pem is None else _ed25519_public(pem)

    def on_certificate(self, locker_id: str, event: dict[str, Any]) -> None:
        """Keep a collected order's certificate with the verdict on its signature."""
        sent = event["payload"].get("certificate")
        if not isinstance(sent, dict) or not isinstance(sent.get("certificate"), str):
            return
        body, signature = sent["certificate"], sent.get("signature")
        why = _certificate_fault(self._record_key(locker_id), locker_id, event["order_id"],
                                 body, signature)
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO certificates (locker_id, order_id, body, signature,"
                " verified, why, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (locker_id, event["order_id"], body,
                 signature if isinstance(signature, str) else None, int(why is None), why,
                 time.time()))

    def certificate(self, locker_id: str, order_id: str) -> dict[str, Any]:
        self.locker(locker_id)
        row = self._one("SELECT * FROM certificates WHERE locker_id = ? AND order_id = ?",
                        (locker_id, order_id))
        if row is None:
            raise Problem(404, f"no certificate for order {order_id!r} of {locker_id!r}")
        return {"order": order_id, "locker": locker_id, "verified": bool(row["verified"]),
                "why": row["why"], "signature": row["signature"],
                "certificate": json.loads(row["body"]), "text": row["body"],
                "received_at": row["received_at"]}

    def on_day_signed(self, locker_id: str, event: dict[str, Any]) -> None:
        """Keep the signed head of a day of the locker's HACCP record, checked."""
        p = event["payload"]
        if not all(isinstance(p.get(k), str) for k in ("day", "head", "signature")) or \
                not isinstance(p.get("row"), int):
            return
        key = self._record_key(locker_id)
        message = f"haccp-head|{locker_id}|{p['day']}|{p['row']}|{p['head']}".encode()
        ok = key is not None and _ed25519_ok(key, message, p["signature"])
        with self.db.atomic():
            self.db.execute(
                "INSERT OR IGNORE INTO haccp_heads (locker_id, day, row, head, signature,"
                " verified) VALUES (?, ?, ?, ?, ?, ?)",
                (locker_id, p["day"], p["row"], p["head"], p["signature"], int(ok)))

    def haccp_heads(self, locker_id: str) -> list[dict[str, Any]]:
        self.locker(locker_id)
        return [{**row, "verified": bool(row["verified"])} for row in self._all(
            "SELECT day, row, head, signature, verified FROM haccp_heads WHERE locker_id = ?"
            " ORDER BY row", (locker_id,))]

    def forget_return_code(self, locker_id: str, order_id: str) -> None:
        """The return code was used, or lapsed: it is kept no longer (as forget_sealed_code)."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE orders SET body = json_remove(body, '$.return_code') WHERE locker_id = ?"
                " AND id = ?", (locker_id, order_id))
            self.db.execute(
                "UPDATE feed SET item = json_remove(item, '$.order.return_code')"
                " WHERE locker_id = ? AND json_extract(item, '$.type') = 'order'"
                " AND json_extract(item, '$.order.id') = ?", (locker_id, order_id))

    def forget_sealed_code(self, locker_id: str, order_id: str) -> None:
        """The order is finished at the locker: its sealed code is dropped from the order and
        from the feed, so a leaked database (even with a copied card's box key) gives nothing
        of it. Until then it is kept, sealed, so that a locker restored from an older backup
        gets the order again from the feed."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE orders SET body = json_remove(body, '$.code') WHERE locker_id = ?"
                " AND id = ?", (locker_id, order_id))
            self.db.execute(
                "UPDATE feed SET item = json_remove(item, '$.order.code') WHERE locker_id = ?"
                " AND json_extract(item, '$.type') = 'order'"
                " AND json_extract(item, '$.order.id') = ?", (locker_id, order_id))
        # the pages that held it are zeroed (secure_delete) and the WAL's old frames emptied
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def on_code_collision(self, locker_id: str, event: dict[str, Any]) -> None:
        """The locker found the order's code already in use: give the order a fresh code.

        Only once per reported version: a report about a version already replaced is old news.
        """
        order_id = event["order_id"]
        if order_id is None:
            return
        try:
            order = self._order(locker_id, order_id)
        except Problem:
            return
        reported = event["payload"].get("version")
        if order["state"] == "cancelled" or (_is_int(reported) and reported != order["version"]):
            return
        code = self.new_version(locker_id, order_id, new_code=True)["code"]
        self.messages.setdefault(locker_id, []).append({"order_id": order_id, "code": code})

    # ---- commands ----

    def sign_command(self, locker_id: str, action: str, args: dict[str, Any], *, ttl_s: float,
                     overrides: dict[str, Any]) -> dict[str, Any]:
        """Sign the body's exact text and queue it; overrides are test aids (see the YAML)."""
        assert self._key is not None
        self.locker(locker_id)
        issued_at = overrides.get("issued_at", time.time())
        body = {"locker_id": overrides.get("locker_id", locker_id),
                "nonce": overrides.get("nonce", secrets.token_hex(16)),
                "issued_at": issued_at,
                "expires_at": overrides.get("expires_at", issued_at + ttl_s),
                "action": action, "args": args}
        text = json.dumps(body, separators=(",", ":"))
        signature = base64.b64encode(self._key.sign(text.encode("utf-8"))).decode("ascii")
        cursor = self.queue(locker_id, {"type": "command",
                                        "command": {"body": text, "signature": signature}})
        return {"cursor": cursor, "nonce": body["nonce"], "body": text, "signature": signature}


CENTRAL = web.AppKey("central", Central)


# Damm's quasigroup: the check digit every code ends with (docs/central.md, "Pickup codes")
_DAMM = ((0, 3, 1, 7, 5, 9, 8, 6, 4, 2), (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
         (4, 2, 0, 6, 8, 7, 1, 3, 5, 9), (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
         (6, 1, 2, 3, 0, 4, 5, 9, 7, 8), (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
         (5, 8, 6, 9, 7, 2, 0, 1, 3, 4), (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
         (9, 4, 3, 8, 6, 1, 7, 2, 0, 5), (2, 5, 8, 1, 4, 3, 6, 7, 9, 0))


def new_code() -> str:
    """10 random digits and their Damm check digit."""
    body = f"{secrets.randbelow(10 ** 10):010d}"
    interim = 0
    for digit in body:
        interim = _DAMM[interim][int(digit)]
    return body + str(interim)


def seal(box_key: str, code: str) -> str:
    """The code as only the locker holding the box key's private half can read it."""
    box = SealedBox(PublicKey(base64.b64decode(box_key)))
    return base64.b64encode(box.encrypt(code.encode("ascii"))).decode("ascii")


def _is_box_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    """Central's command key: made once (mode 0600), then kept, so lockers can keep trusting it."""
    private_path, public_path = data_dir / "commands.key", data_dir / "commands.pub"
    if private_path.exists():
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey), "commands.key is not an Ed25519 key"
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


# ---- validation: the spec's shapes, checked by hand so a bad batch is refused whole ----------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Problem(400, message)


def _ed25519_public(pem: str) -> Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def _ed25519_ok(key: Ed25519PublicKey, message: bytes, signature: Any) -> bool:
    try:
        key.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _certificate_fault(key: Ed25519PublicKey | None, locker_id: str, order_id: str, body: str,
                       signature: Any) -> str | None:
    """Why a certificate cannot be trusted, or None: signed by this locker's record key over
    its exact text, and about this locker and this order."""
    if key is None:
        return "the locker was provisioned without a record key"
    if not isinstance(signature, str) or not _ed25519_ok(key, body.encode("utf-8"), signature):
        return "the signature does not match the locker's record key"
    try:
        data = json.loads(body)
    except ValueError:
        return "the certificate is not JSON"
    if not isinstance(data, dict) or data.get("locker") != locker_id \
            or data.get("order") != order_id:
        return "the certificate is about another locker or order"
    return None


def _keys(obj: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    _require(isinstance(obj, dict), f"{where} must be an object")
    missing = [k for k in required if k not in obj]
    unknown = [k for k in obj if k not in required and k not in optional]
    _require(not missing, f"{where} lacks {', '.join(missing)}")
    _require(not unknown, f"{where} has unknown fields {', '.join(unknown)}")


def _text(value: Any, where: str, least: int = 1, most: int = 64) -> str:
    _require(isinstance(value, str) and least <= len(value) <= most,
             f"{where} must be a string of {least}-{most} characters")
    return str(value)


def _optional_text(value: Any, where: str) -> None:
    if value is not None:
        _text(value, where)


def _count(value: Any, where: str) -> None:
    _require(_is_int(value) and value >= 0, f"{where} must be an integer >= 0")


def _counts(value: Any, where: str, names: tuple[str, ...]) -> None:
    _keys(value, where, (), names)
    for name, count in value.items():
        _count(count, f"{where}.{name}")


def _nullable_number(value: Any, where: str) -> None:
    _require(value is None or _is_number(value), f"{where} must be a number or null")


def check_events(data: Any) -> list[dict[str, Any]]:
    _keys(data, "body", ("events",))
    events = data["events"]
    _require(isinstance(events, list) and 1 <= len(events) <= 500,
             "events must be a list of 1-500 events")
    previous_seq = -1
    for i, event in enumerate(events):
        where = f"events[{i}]"
        _keys(event, where, ("id", "seq", "at", "kind", "category", "compartment_id",
                             "order_id", "payload"))
        _text(event["id"], f"{where}.id")
        _count(event["seq"], f"{where}.seq")
        _require(event["seq"] > previous_seq, f"{where}.seq must be above the one before it")
        previous_seq = event["seq"]
        _require(_is_number(event["at"]), f"{where}.at must be a number")
        _require(isinstance(event["kind"], str) and len(event["kind"]) <= 100
                 and KIND_PATTERN.fullmatch(event["kind"]) is not None,
                 f"{where}.kind must look like 'door.opened'")
        _require(event["category"] in CATEGORIES,
                 f"{where}.category must be one of {', '.join(CATEGORIES)}")
        _optional_text(event["compartment_id"], f"{where}.compartment_id")
        _optional_text(event["order_id"], f"{where}.order_id")
        _require(isinstance(event["payload"], dict), f"{where}.payload must be an object")
    return list(events)


def check_heartbeat(data: Any) -> dict[str, Any]:
    _keys(data, "body", ("at", "version", "ready", "cursor", "compartments", "orders", "zones",
                         "alarms", "outbox"))
    _require(_is_number(data["at"]), "at must be a number")
    _text(data["version"], "version")
    _require(isinstance(data["ready"], bool), "ready must be true or false")
    _count(data["cursor"], "cursor")
    _counts(data["compartments"], "compartments", COMPARTMENT_STATES)
    _counts(data["orders"], "orders", ORDER_STATES)
    _keys(data["zones"], "zones", (), tuple(ZONES))
    for name, zone in data["zones"].items():
        _keys(zone, f"zones.{name}", ("celsius", "setpoint_c", "compressor"))
        _nullable_number(zone["celsius"], f"zones.{name}.celsius")
        _nullable_number(zone["setpoint_c"], f"zones.{name}.setpoint_c")
        _require(zone["compressor"] is None or isinstance(zone["compressor"], bool),
                 f"zones.{name}.compressor must be true, false or null")
    _require(isinstance(data["alarms"], list) and len(data["alarms"]) <= 1000,
             "alarms must be a list of at most 1000 alarms")
    for i, alarm in enumerate(data["alarms"]):
        _keys(alarm, f"alarms[{i}]", ("kind", "subject", "message", "raised_at"))
        _text(alarm["kind"], f"alarms[{i}].kind")
        _text(alarm["subject"], f"alarms[{i}].subject", 0, 64)
        _text(alarm["message"], f"alarms[{i}].message", 0, 500)
        _require(_is_number(alarm["raised_at"]), f"alarms[{i}].raised_at must be a number")
    _keys(data["outbox"], "outbox", ("depth", "oldest_at", "dropped"))
    _count(data["outbox"]["depth"], "outbox.depth")
    _nullable_number(data["outbox"]["oldest_at"], "outbox.oldest_at")
    _count(data["outbox"]["dropped"], "outbox.dropped")
    return dict(data)


def check_bags(bags: Any) -> list[dict[str, str]]:
    _require(isinstance(bags, list) and 1 <= len(bags) <= 32, "bags must be a list of 1-32 bags")
    for i, bag in enumerate(bags):
        _keys(bag, f"bags[{i}]", ("zone", "size"))
        _require(bag["zone"] in ZONES, f"bags[{i}].zone must be one of {', '.join(ZONES)}")
        _require(bag["size"] in SIZES, f"bags[{i}].size must be one of {', '.join(SIZES)}")
    return [dict(bag) for bag in bags]


async def _body(request: web.Request) -> Any:
    """The request's JSON (413 over 1 MiB through client_max_size, 400 when not JSON)."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "body is not JSON") from None


def _query_number(request: web.Request, name: str, default: float, least: float,
                  most: float, *, integer: bool = True) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise Problem(400, f"{name} must be a number") from None
    _require(least <= value <= most, f"{name} must be from {least:g} to {most:g}")
    return value


# ---- the locker calls ------------------------------------------------------------------------


def _locker_of(request: web.Request) -> str:
    """The locker named in the path, if the bearer token is that locker's (401, 403 otherwise)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "an Authorization: Bearer token is required")
    owner = request.app[CENTRAL].locker_of_token(token.strip())
    if owner is None:
        raise Problem(401, "unknown token")
    if owner != request.match_info["locker_id"]:
        raise Problem(403, "this token is for another locker")
    request.app[CENTRAL].seen[owner] = time.time()  # a locker that polls is alive
    return owner


async def get_feed(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    locker_id = _locker_of(request)
    after = int(_query_number(request, "after", 0, 0, 2**63 - 1))
    wait_s = _query_number(request, "wait", 25.0, 0, MAX_WAIT_S, integer=False)
    limit = int(_query_number(request, "limit", 50, 1, 100))
    items = await central.wait_for_items(locker_id, after, limit, wait_s)
    central.seen[locker_id] = time.time()
    answered = [{"cursor": cursor, **item} if isinstance(item, dict) else item
                for cursor, item in items]
    return web.json_response({"cursor": items[-1][0] if items else after, "items": answered})


async def post_events(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    locker_id = _locker_of(request)
    events = check_events(await _body(request))
    for event in central.store_events(locker_id, events):
        if event["kind"] == "security.code_collision":
            central.on_code_collision(locker_id, event)
        elif event["kind"] == "order.assistance_used":
            central.on_assistance_used(locker_id, event)
        elif event["kind"] == "haccp.day_signed":
            central.on_day_signed(locker_id, event)
        if event["kind"] in RETURN_CODE_DONE and event["order_id"] and (
                event["kind"] != "order.return_deposited"
                or event["payload"].get("source") == "code"):
            central.forget_return_code(locker_id, event["order_id"])
        if event["kind"] in FINISHED_EVENTS and event["order_id"]:
            central.forget_sealed_code(locker_id, event["order_id"])
            if event["kind"] == "order.collected":
                central.on_certificate(locker_id, event)
    return web.json_response({"acked": [event["id"] for event in events]})


async def post_heartbeat(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    locker_id = _locker_of(request)
    central.record_heartbeat(locker_id, check_heartbeat(await _body(request)))
    return web.json_response({"server_time": time.time(),
                              "events_seq": central.events_seq(locker_id)})


# ---- the admin calls -------------------------------------------------------------------------


async def post_locker(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    data = await _body(request)
    _keys(data, "body", ("id", "box_key"), ("record_key",))
    locker_id = data["id"]
    _require(isinstance(locker_id, str) and ID_PATTERN.fullmatch(locker_id) is not None,
             "id must be 1-64 ASCII letters, digits, '.', '_' or '-', not starting with '.'")
    box_key = data["box_key"]
    _require(isinstance(box_key, str) and _is_box_key(box_key),
             "box_key must be base64 of the locker's 32-byte X25519 public key")
    record_key = data.get("record_key")
    if record_key is not None:
        _require(isinstance(record_key, str) and _ed25519_public(record_key) is not None,
                 "record_key must be the locker's Ed25519 public key, PEM (locker haccp key)")
    if central.has_locker(locker_id):
        raise Problem(409, f"locker {locker_id!r} exists already")
    token = central.provision(locker_id, box_key, record_key)
    return web.json_response({"id": locker_id, "token": token,
                              "command_public_key": central.public_key_pem.decode("ascii")},
                             status=201)


async def get_lockers(request: web.Request) -> web.Response:
    return web.json_response({"lockers": request.app[CENTRAL].lockers()})


async def post_order(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    data = await _body(request)
    _keys(data, "body", ("id", "bags", "window_hours"),
          ("accessible", "customer", "return_code", "return_kind"))
    _text(data["id"], "id")
    hours = data["window_hours"]
    _require(_is_number(hours) and 0 < hours <= 720, "window_hours must be above 0, at most 720")
    accessible = data.get("accessible")
    _require(accessible is None or isinstance(accessible, bool),
             "accessible must be true or false")
    customer = data.get("customer")
    if customer is not None:
        _text(customer, "customer")
    return_code = data.get("return_code", False)
    _require(isinstance(return_code, bool), "return_code must be true or false")
    return_kind = data.get("return_kind")
    _require(return_kind is None or (return_code and return_kind in RETURN_KINDS),
             f"return_kind must be one of {', '.join(RETURN_KINDS)}, with return_code true")
    order = central.create_order(request.match_info["locker_id"], data["id"],
                                 check_bags(data["bags"]), hours, accessible, customer,
                                 return_code=return_code, return_kind=return_kind)
    return web.json_response(order, status=201)


async def get_customer(request: web.Request) -> web.Response:
    customer = request.match_info["customer_id"]
    _text(customer, "customer")
    return web.json_response(request.app[CENTRAL].customer(customer))


async def get_certificate(request: web.Request) -> web.Response:
    info = request.match_info
    return web.json_response(request.app[CENTRAL].certificate(info["locker_id"],
                                                              info["order_id"]))


async def get_haccp_heads(request: web.Request) -> web.Response:
    return web.json_response({"heads": request.app[CENTRAL].haccp_heads(
        request.match_info["locker_id"])})


async def get_order(request: web.Request) -> web.Response:
    info = request.match_info
    return web.json_response(request.app[CENTRAL].order_view(info["locker_id"], info["order_id"]))


async def post_cancel(request: web.Request) -> web.Response:
    info = request.match_info
    order = request.app[CENTRAL].new_version(info["locker_id"], info["order_id"], cancel=True)
    return web.json_response(order)


async def post_command(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    data = await _body(request)
    _keys(data, "body", ("action", "args"),
          ("ttl_s", "locker_id", "nonce", "issued_at", "expires_at"))
    _text(data["action"], "action")
    _require(isinstance(data["args"], dict), "args must be an object")
    ttl_s = data.get("ttl_s", 300)
    _require(_is_number(ttl_s) and 0 < ttl_s <= 7 * 86400, "ttl_s must be above 0, at most 7 days")
    overrides = {k: data[k] for k in ("locker_id", "nonce", "issued_at", "expires_at") if k in data}
    for name in ("locker_id", "nonce"):
        if name in overrides:
            _text(overrides[name], name, 1, 128)
    for name in ("issued_at", "expires_at"):
        if name in overrides:
            _require(_is_number(overrides[name]), f"{name} must be a number")
    command = central.sign_command(request.match_info["locker_id"], data["action"], data["args"],
                                   ttl_s=ttl_s, overrides=overrides)
    return web.json_response(command, status=201)


async def post_raw(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    data = await _body(request)
    _keys(data, "body", ("item",))
    locker_id = central.locker(request.match_info["locker_id"])["id"]
    return web.json_response({"cursor": central.queue(locker_id, data["item"])}, status=201)


async def get_events(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    locker_id = central.locker(request.match_info["locker_id"])["id"]
    after = int(_query_number(request, "after", 0, 0, 2**63 - 1))
    return web.json_response({"events": central.events_after(locker_id, after)})


async def get_messages(request: web.Request) -> web.Response:
    """The codes for customers central drew without an admin call to answer (after a code
    collision): handed over once, then forgotten, as an SMS gateway would take them."""
    central = request.app[CENTRAL]
    locker_id = central.locker(request.match_info["locker_id"])["id"]
    return web.json_response({"messages": central.messages.pop(locker_id, [])})


async def post_faults(request: web.Request) -> web.Response:
    central = request.app[CENTRAL]
    data = await _body(request)
    _keys(data, "body", ("mode",), ("delay_s",))
    _require(data["mode"] in FAULT_MODES, f"mode must be one of {', '.join(FAULT_MODES)}")
    delay_s = data.get("delay_s", Faults.delay_s)
    _require(_is_number(delay_s) and 0 <= delay_s <= 120, "delay_s must be from 0 to 120")
    central.faults = Faults(data["mode"], float(delay_s))
    return web.json_response({"mode": central.faults.mode, "delay_s": central.faults.delay_s})


# ---- middlewares: errors in the spec's shape, the admin token, the faults --------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        response = _error(problem.status, problem.message, problem.word)
        if problem.status == 401 and request.path.startswith(API_PREFIX + "/"):
            response.headers["WWW-Authenticate"] = "Bearer"  # RFC 6750
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/admin/") or request.path == "/admin":
        given = request.headers.get("X-Admin-Token", "").encode("utf-8")
        if not hmac.compare_digest(given, request.app[CENTRAL].admin_token.encode("utf-8")):
            raise Problem(401, "the X-Admin-Token header is missing or wrong")
    return await handler(request)


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Misbehave on the locker calls as POST /admin/faults said; the admin calls stay sane."""
    call = request.match_info.route.name
    mode, delay_s = request.app[CENTRAL].faults.mode, request.app[CENTRAL].faults.delay_s
    if call not in LOCKER_CALLS or mode == "none":
        return await handler(request)
    if mode == "error":
        return _error(500, "injected fault: error")
    if mode == "slow":
        await asyncio.sleep(delay_s)
    if mode == "garbage":
        return web.Response(text="not json{{", content_type="application/json")
    if mode == "wrong_types":
        return web.json_response(WRONG_TYPES[call])
    if mode == "oversized":  # the right shape, padded with whitespace to 2 MiB: only size is wrong
        shape = {"feed": '{"cursor": 0, "items": []', "events": '{"acked": []',
                 "heartbeat": f'{{"server_time": {time.time()}'}[call]
        body = shape + " " * (2 * MAX_BODY - len(shape) - 1) + "}"
        return web.Response(text=body, content_type="application/json")
    response = await handler(request)
    if mode == "unknown_fields" and isinstance(response, web.Response) and response.status == 200:
        assert isinstance(response.body, bytes)
        return web.json_response({**json.loads(response.body), "surprise": True})
    return response


# ---- the app and how to run it ---------------------------------------------------------------


def create_central_app(data_dir: Path, *, admin_token: str,
                       silent_after_s: float = SILENT_AFTER_S,
                       updates_dir: Path | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY,
                          middlewares=[errors_middleware, admin_middleware, faults_middleware])
    app[CENTRAL] = Central(Path(data_dir), admin_token=admin_token, silent_after_s=silent_after_s)

    async def database(app: web.Application) -> AsyncIterator[None]:
        app[CENTRAL].open()
        yield
        app[CENTRAL].close()

    async def wake_long_polls(app: web.Application) -> None:
        app[CENTRAL].wake_all()

    app.cleanup_ctx.append(database)
    app.on_shutdown.append(wake_long_polls)
    lockers = API_PREFIX + "/lockers/{locker_id}"
    app.router.add_get(lockers + "/feed", get_feed, name="feed")
    app.router.add_post(lockers + "/events", post_events, name="events")
    app.router.add_post(lockers + "/heartbeat", post_heartbeat, name="heartbeat")
    app.router.add_post("/admin/lockers", post_locker)
    app.router.add_get("/admin/lockers", get_lockers)
    app.router.add_post("/admin/lockers/{locker_id}/orders", post_order)
    app.router.add_get("/admin/lockers/{locker_id}/orders/{order_id}", get_order)
    app.router.add_post("/admin/lockers/{locker_id}/orders/{order_id}/cancel", post_cancel)
    app.router.add_get("/admin/lockers/{locker_id}/orders/{order_id}/certificate",
                       get_certificate)
    app.router.add_get("/admin/lockers/{locker_id}/haccp/heads", get_haccp_heads)
    app.router.add_post("/admin/lockers/{locker_id}/commands", post_command)
    app.router.add_post("/admin/lockers/{locker_id}/raw", post_raw)
    app.router.add_get("/admin/lockers/{locker_id}/events", get_events)
    app.router.add_get("/admin/lockers/{locker_id}/messages", get_messages)
    app.router.add_post("/admin/faults", post_faults)
    app.router.add_get("/admin/customers/{customer_id}", get_customer)
    if updates_dir is not None:
        # the update repository (TUF: metadata/ and targets/, made by `locker release`), as
        # static files, read-only and without a token: every file in it is signed or hashed,
        # and a locker trusts only what verifies against the root it was installed with
        Path(updates_dir).mkdir(parents=True, exist_ok=True)
        app.router.add_static(API_PREFIX + "/updates", Path(updates_dir), name="updates")
    return app


@dataclass
class RunningCentral:
    """A central serving on a port; `stop()` then `start_central()` on the same folder resumes."""

    url: str
    admin_token: str
    public_key_pem: bytes
    runner: web.AppRunner

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        await self.runner.cleanup()


def _admin_token(data_dir: Path, given: str | None) -> str:
    """The given token, else the one kept in data_dir/admin.token (made once, mode 0600)."""
    if given is not None:
        return given
    path = data_dir / "admin.token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


async def start_central(data_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                        admin_token: str | None = None, ssl_context: ssl.SSLContext | None = None,
                        silent_after_s: float = SILENT_AFTER_S,
                        updates_dir: Path | None = None) -> RunningCentral:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = _admin_token(data_dir, admin_token)
    app = create_central_app(data_dir, admin_token=token, silent_after_s=silent_after_s,
                             updates_dir=updates_dir)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0,
                           keepalive_timeout=KEEPALIVE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    shown_host = f"[{host}]" if ":" in host else host
    return RunningCentral(f"{scheme}://{shown_host}:{bound_port}", token,
                          app[CENTRAL].public_key_pem, runner)


async def serve(args: argparse.Namespace) -> None:
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    central = await start_central(Path(args.data), host=args.host, port=args.port,
                                  admin_token=args.admin_token, ssl_context=tls,
                                  updates_dir=Path(args.updates) if args.updates else None)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before we say we are up: a stop may follow
        loop.add_signal_handler(sig, stopping.set)
    print(f"CENTRAL {central.url}", flush=True)
    print(f"ADMIN {central.admin_token}", flush=True)
    try:
        await stopping.wait()
    finally:
        await central.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator.central",
                                     description="The reference central (docs/central.md).")
    parser.add_argument("--data", required=True, help="folder of its database and signing key")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--admin-token", help="default: kept in DATA/admin.token")
    parser.add_argument("--updates", help="serve this update repository (`locker release"
                        " --repo`) read-only under /v1/updates/")
    parser.add_argument("--tls-cert", help="serve https with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
