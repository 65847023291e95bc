"""The locker's memory: one SQLite file (WAL, full sync) with versioned migrations and an outbox.

Every change of state happens inside `Store.transaction()`, and the event that tells central about
it is appended to the outbox in that same transaction: both are committed, or neither is. Nothing
here decides anything (the use cases do) and nothing here touches hardware.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locker.domain.errors import StoreError

log = logging.getLogger("locker.store")

# Each migration is a list of statements; the schema version is PRAGMA user_version. Append, never
# edit: a locker in the field may be at any earlier version.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE compartments (
            id TEXT PRIMARY KEY,
            zone TEXT NOT NULL,
            size TEXT NOT NULL,
            state TEXT NOT NULL,
            door TEXT NOT NULL,
            order_id TEXT,
            door_changed_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE orders (
            id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            sequence INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL,
            code_digest TEXT,
            window_start REAL,
            window_end REAL,
            accessible INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX orders_by_code ON orders (code_digest) WHERE code_digest IS NOT NULL",
        "CREATE INDEX orders_by_state ON orders (state)",
        """CREATE TABLE order_compartments (
            order_id TEXT NOT NULL REFERENCES orders (id),
            compartment_id TEXT NOT NULL REFERENCES compartments (id),
            bag_zone TEXT NOT NULL,
            bag_size TEXT NOT NULL,
            opened_at REAL,
            closed_at REAL,
            PRIMARY KEY (order_id, compartment_id)
        )""",
        """CREATE TABLE authorisations (
            id INTEGER PRIMARY KEY,
            compartment_id TEXT NOT NULL REFERENCES compartments (id),
            order_id TEXT,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at REAL NOT NULL,
            sent_at REAL,
            acked_at REAL,
            seen_open_at REAL,
            outcome TEXT
        )""",
        "CREATE INDEX authorisations_open ON authorisations (compartment_id) WHERE outcome IS NULL",
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            category TEXT NOT NULL,
            compartment_id TEXT,
            order_id TEXT,
            payload TEXT NOT NULL
        )""",
        """CREATE TABLE alarms (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            message TEXT NOT NULL,
            raised_at REAL NOT NULL,
            cleared_at REAL
        )""",
        "CREATE UNIQUE INDEX alarms_open ON alarms (kind, subject) WHERE cleared_at IS NULL",
        """CREATE TABLE throttle (
            scope TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated_at REAL NOT NULL,
            lockouts INTEGER NOT NULL,
            locked_until REAL NOT NULL
        )""",
        "CREATE TABLE code_failures (at REAL NOT NULL, screen TEXT NOT NULL)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # bags are their own rows: a large compartment may hold several bags of one order
        """CREATE TABLE order_bags (
            order_id TEXT NOT NULL REFERENCES orders (id),
            bag_no INTEGER NOT NULL,
            zone TEXT NOT NULL,
            size TEXT NOT NULL,
            compartment_id TEXT REFERENCES compartments (id),
            PRIMARY KEY (order_id, bag_no)
        )""",
        # the last TOTP time step each staff member used: a code is never accepted twice
        "CREATE TABLE staff_codes (staff_id TEXT PRIMARY KEY, last_step INTEGER NOT NULL)",
        "ALTER TABLE compartments ADD COLUMN service_reason TEXT",
        # the pickup window's length; it starts (window_start, window_end) when the order is ready
        "ALTER TABLE orders ADD COLUMN window_s REAL",
    ),
    (
        # the HACCP record: each zone's temperature at a fixed interval
        """CREATE TABLE temperatures (
            zone TEXT NOT NULL,
            at REAL NOT NULL,
            celsius REAL,
            compressor INTEGER NOT NULL,
            defrosting INTEGER NOT NULL,
            door_openings INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE setpoint_changes (
            zone TEXT NOT NULL,
            at REAL NOT NULL,
            celsius REAL NOT NULL,
            actor TEXT NOT NULL
        )""",
        "CREATE INDEX temperatures_by_zone ON temperatures (zone, at)",
        """CREATE TABLE excursions (
            id INTEGER PRIMARY KEY,
            zone TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            peak_c REAL NOT NULL
        )""",
        """CREATE TABLE order_flags (
            order_id TEXT NOT NULL REFERENCES orders (id),
            excursion_id INTEGER NOT NULL REFERENCES excursions (id),
            PRIMARY KEY (order_id, excursion_id)
        )""",
    ),
    (
        # central's signed commands: each nonce is obeyed once, remembered until it expires
        "CREATE TABLE command_nonces (nonce TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
    ),
    (
        # the outbox without the unique index on its random ids: each event wrote one more
        # random page for it, and deleted it again; acknowledgements now delete by seq. The
        # AUTOINCREMENT counter carries over, so seq never goes back.
        """CREATE TABLE outbox_v5 (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            category TEXT NOT NULL,
            compartment_id TEXT,
            order_id TEXT,
            payload TEXT NOT NULL
        )""",
        "INSERT INTO outbox_v5 SELECT seq, id, at, kind, category, compartment_id, order_id,"
        " payload FROM outbox",
        "DELETE FROM sqlite_sequence WHERE name = 'outbox_v5'",
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_v5', seq FROM sqlite_sequence"
        " WHERE name = 'outbox'",
        "DROP TABLE outbox",
        "ALTER TABLE outbox_v5 RENAME TO outbox",
    ),
    (
        # why a ready order's window waits (its doors cannot open), or why a loaded order is
        # not ready yet, and since when; when the current pickup or reclaim began
        "ALTER TABLE orders ADD COLUMN held_since REAL",
        "ALTER TABLE orders ADD COLUMN held_for TEXT",
        "ALTER TABLE orders ADD COLUMN phase_since REAL",
        # central's cancel of an order whose pickup is under way: done if the pickup ends short
        "ALTER TABLE orders ADD COLUMN cancel_pending TEXT",
        # a compartment given back (its goods are out) before the order ended
        "ALTER TABLE order_compartments ADD COLUMN released_at REAL",
        "UPDATE order_compartments SET released_at = (SELECT updated_at FROM orders o"
        " WHERE o.id = order_id) WHERE order_id IN (SELECT id FROM orders WHERE state IN"
        " ('collected', 'reclaimed'))",
        "UPDATE orders SET phase_since = updated_at WHERE state IN ('collecting', 'reclaiming')",
        "UPDATE orders SET held_for = 'code_collision' WHERE state = 'loaded'",
    ),
    (
        # the length of a running lockout: a wall clock set back never makes it longer
        "ALTER TABLE throttle ADD COLUMN lockout_s REAL NOT NULL DEFAULT 0",
    ),
    (
        # random codes (docs/adr/0008): finished orders keep no digest, collected ones a tag
        "ALTER TABLE orders ADD COLUMN used_tag TEXT",
        "UPDATE orders SET used_tag = substr(code_digest, 1, 4) WHERE state = 'collected'",
        "CREATE INDEX orders_by_used_tag ON orders (used_tag) WHERE used_tag IS NOT NULL",
        "UPDATE orders SET code_digest = NULL"
        " WHERE state IN ('collected', 'reclaimed', 'cancelled')",
    ),
    (
        # wrong codes slow a scope down instead of locking it out (docs/adr/0004); the old
        # per-screen and locker-wide buckets mean nothing now (central's remote openings stay)
        """CREATE TABLE slowdown (
            scope TEXT PRIMARY KEY,
            wrong REAL NOT NULL,
            updated_at REAL NOT NULL,
            next_at REAL NOT NULL,
            delay_s REAL NOT NULL
        )""",
        "DELETE FROM throttle WHERE scope <> 'remote:open'",
    ),
    (
        # a compartment given to an order's bags because the one they had jammed while loading:
        # the courier's screen says "A1 jammed: use A2", during the loading and after it
        "ALTER TABLE order_compartments ADD COLUMN replaces TEXT",
    ),
    (
        # the HACCP record's hash chain (locker.domain.haccp), each day's signed head, and each
        # order's cold-chain certificate as issued (the exact text its signature covers)
        "ALTER TABLE temperatures ADD COLUMN chain BLOB",
        # a bag kept back at pickup ([coldchain] on_excursion = "withhold"): why
        "ALTER TABLE order_compartments ADD COLUMN withheld TEXT",
        """CREATE TABLE haccp_heads (
            row INTEGER PRIMARY KEY,
            day TEXT NOT NULL,
            chain BLOB NOT NULL,
            signature TEXT NOT NULL,
            signed_at REAL NOT NULL
        )""",
        """CREATE TABLE certificates (
            order_id TEXT PRIMARY KEY REFERENCES orders (id),
            body TEXT NOT NULL,
            signature TEXT,
            issued_at REAL NOT NULL
        )""",
    ),
    (
        # an operator's acknowledgement of an alarm (locker.domain.alarms): a security alarm stays
        # open until acknowledged, even after its condition cleared
        "ALTER TABLE alarms ADD COLUMN acked_at REAL",
        "ALTER TABLE alarms ADD COLUMN acked_by TEXT",
        "ALTER TABLE alarms ADD COLUMN ack_note TEXT",
    ),
    (
        # what a compartment's item sensor reads: NULL = no sensor, 0 empty, 1 occupied
        # (written only when it changes); and when a loaded compartment was first seen empty
        # (order.loaded_empty is said once)
        "ALTER TABLE compartments ADD COLUMN item INTEGER",
        "ALTER TABLE order_compartments ADD COLUMN empty_at REAL",
    ),
    (
        # what customers hand back (locker.returns): offered after a pickup or by central's
        # return code, put in a compartment of its zone, taken back by a courier
        """CREATE TABLE returns (
            id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            state TEXT NOT NULL,
            source TEXT NOT NULL,
            code_digest TEXT,
            kind TEXT,
            zone TEXT,
            compartment_id TEXT,
            authorisation INTEGER,
            screen TEXT,
            expires_at REAL NOT NULL,
            opened_at REAL,
            deposited_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX returns_by_code ON returns (code_digest) WHERE code_digest IS NOT NULL",
        "CREATE INDEX returns_by_state ON returns (state)",
        # the return a reserved or loaded compartment holds (order_id is NULL then)
        "ALTER TABLE compartments ADD COLUMN return_id TEXT",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
PAGE_SIZE = 1024
WAL_PAGES = 4096

# Event categories, from most to least precious: the outbox bound (central sync) drops telemetry
# first and never an order or door event.
CATEGORIES = ("order", "door", "alarm", "security", "coldchain", "telemetry")


# what a transaction emitted: (event kind, its fields), as listeners are told after the commit
Emitted = list[tuple[str, dict[str, Any]]]
Listener = Callable[[Emitted], None]


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    at: float
    kind: str
    category: str
    compartment_id: str | None
    order_id: str | None
    payload: dict[str, Any]


class Tx:
    """One open transaction: reads and writes, plus `emit()` to append to the outbox."""

    def __init__(self, db: sqlite3.Connection, now: float) -> None:
        self.db = db
        self.now = now
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    def one(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> dict[str, Any] | None:
        cursor = self.db.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def all(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> int:
        """Run a write; return the number of rows changed."""
        return self.db.execute(sql, params).rowcount

    def insert(self, table: str, row: Mapping[str, Any]) -> int:
        """Insert one row; table and column names come from our code, never from input."""
        columns = ", ".join(row)
        marks = ", ".join("?" * len(row))
        cursor = self.db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                                 tuple(row.values()))
        return cursor.lastrowid or 0

    def emit(self, kind: str, category: str, *, compartment_id: str | None = None,
             order_id: str | None = None, **payload: Any) -> str:
        """Append an event to the outbox, in this transaction. Never put a pickup code in it."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown event category {category!r}")
        event_id = str(uuid.uuid4())
        self.db.execute(
            "INSERT INTO outbox (id, at, kind, category, compartment_id, order_id, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, self.now, kind, category, compartment_id, order_id,
             json.dumps(payload, sort_keys=True, separators=(",", ":"))),
        )
        self.emitted.append((kind, {"compartment_id": compartment_id, "order_id": order_id,
                                    **payload}))
        return event_id

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def raise_alarm(self, kind: str, subject: str, message: str) -> bool:
        """Latch an alarm (once per kind and subject) and emit its event; False if already open.
        The kind must be declared in locker/domain/alarms.py (severity, security, words)."""
        from locker.domain.alarms import declared  # the declaration imports this module

        declared(kind)
        if self.one("SELECT id FROM alarms WHERE kind = ? AND subject = ? AND cleared_at IS NULL",
                    (kind, subject)):
            return False
        self.db.execute(
            "INSERT INTO alarms (kind, subject, message, raised_at) VALUES (?, ?, ?, ?)",
            (kind, subject, message, self.now),
        )
        self.emit(f"alarm.{kind}", "alarm", subject=subject, message=message, state="raised")
        return True

    def clear_alarm(self, kind: str, subject: str, message: str) -> bool:
        """Clear a latched alarm once recovery is seen; False if none was open."""
        changed = self.execute(
            "UPDATE alarms SET cleared_at = ? WHERE kind = ? AND subject = ?"
            " AND cleared_at IS NULL",
            (self.now, kind, subject),
        )
        if changed:
            self.emit(f"alarm.{kind}", "alarm", subject=subject, message=message, state="cleared")
        return bool(changed)


class Store:
    """The SQLite file. Single writer per transaction; other processes (the CLI) may share it.

    `listeners` hear every committed transaction's events, after the COMMIT and never after a
    rollback (the ops page, the metrics, the central link, the cold-chain door count), so no
    use case can forget to tell them. `unwritable_since` is the time of the first transaction
    that failed since the last one that committed: the locker could not serve anyone meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listeners: list[Listener] = []
        self.unwritable_since: float | None = None
        self.unwritable_reason = ""
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # plain sqlite3: the store needs a handful of calls, and sqlite-utils (with click,
            # dateutil and pluggy) would cost the daemon 5 MB of its 60 MB (docs/performance.md)
            self.db = sqlite3.connect(str(path), timeout=10.0)
            # small pages: a transaction rewrites every page it touches (in the WAL, then again
            # at the checkpoint), and ours touch a dozen pages for a few hundred bytes of rows;
            # 1 KiB pages write a quarter of what 4 KiB pages would (an SD card wears out).
            # Takes effect only when the file is new.
            self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            # WAL lets the CLI read while the daemon writes; FULL sync makes a commit survive a
            # power cut, which is what allows a door to open right after it.
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            # the checkpoint copies each page once however often the WAL rewrote it: a longer
            # WAL (4 MiB) copies the hot pages (the outbox's end, the compartments) less often
            self.db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
            # what a statement erases (a finished order's code digest) is zeroed in its page
            # when that costs no extra write
            self.db.execute("PRAGMA secure_delete = FAST")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 10000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        self._migrate()

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this software"
                f" ({SCHEMA_VERSION}); run the newer version or restore a backup"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            try:
                self.db.execute("BEGIN IMMEDIATE")
                for statement in statements:
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                self.db.execute("ROLLBACK")
                raise StoreError(f"{self.path}: migration {number} failed: {exc}") from exc

    @property
    def schema_version(self) -> int:
        version: int = self.db.execute("PRAGMA user_version").fetchone()[0]
        return version

    @contextmanager
    def transaction(self, now: float, *, durable: bool = True) -> Iterator[Tx]:
        """BEGIN IMMEDIATE ... COMMIT: take the write lock first, so two writers never deadlock.

        `durable=False` commits without waiting for the disk (synchronous = NORMAL): only for a
        change a power cut may undo harmlessly, such as deleting events central acknowledged
        (they would be sent again, and central drops what it has). It writes a quarter of the
        bytes of a durable commit.
        """
        conn = self.db
        if not durable:
            self.db.execute("PRAGMA synchronous = NORMAL")
        try:
            yield from self._transaction(conn, now)
        finally:
            if not durable:
                self.db.execute("PRAGMA synchronous = FULL")

    def _transaction(self, conn: sqlite3.Connection, now: float) -> Iterator[Tx]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._failed(now, exc)
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from exc
        tx = Tx(self.db, now)
        try:
            yield tx
        except sqlite3.Error as exc:  # a full disk, a locked or corrupt file: say so, undo all
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._failed(now, exc)
            raise StoreError(f"{self.path}: {exc}; nothing was changed"
                             + (" (free some disk space)" if "full" in str(exc) else "")
                             ) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._failed(now, exc)
            raise StoreError(f"{self.path}: commit failed, nothing was changed: {exc}") from exc
        self._committed(tx)

    def _failed(self, now: float, exc: sqlite3.Error) -> None:
        if self.unwritable_since is None:
            self.unwritable_since = now
        self.unwritable_reason = str(exc)

    @property
    def full(self) -> bool:
        """The last failure was a full disk (else: read-only, locked, damaged)."""
        return "full" in self.unwritable_reason

    def _committed(self, tx: Tx) -> None:
        if tx.emitted:
            for listener in list(self.listeners):
                try:  # what is committed stays committed: a failing listener only logs
                    listener(tx.emitted)
                except Exception:
                    log.exception("an event listener failed")

    def read(self) -> Tx:
        """Reads outside a transaction (each statement sees the last commit)."""
        return Tx(self.db, 0.0)

    def meta(self, key: str) -> str | None:
        row = self.read().one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def version(self) -> tuple[int, int]:
        """Moves whenever a row changes: PRAGMA data_version counts other connections' commits
        (the CLI, a restore), total_changes this connection's own; for caching what a periodic
        pass read (a change rolled back moves it too, which only costs a fresh read)."""
        row = self.db.execute("PRAGMA data_version").fetchone()
        return int(row[0]), self.db.total_changes

    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        rows = self.read().all("SELECT * FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                               (after, limit))
        return [
            Event(seq=r["seq"], id=r["id"], at=r["at"], kind=r["kind"], category=r["category"],
                  compartment_id=r["compartment_id"], order_id=r["order_id"],
                  payload=json.loads(r["payload"]))
            for r in rows
        ]

    def close(self) -> None:
        self.db.close()

