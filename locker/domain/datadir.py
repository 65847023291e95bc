"""What keeps the store honest from outside it: one daemon per data dir, the store's identity,
its integrity at start, and high-water marks that a lost or rolled-back file cannot take along.

SQLite's own warnings (https://www.sqlite.org/howtocorrupt.html) name what a Pi meets: a hot WAL
deleted or lost after a crash (committed transactions gone), a second writer, a file replaced
under the daemon, a card that wears. So, beside `locker.db` in the data dir:

- `locker.lock`: an exclusive flock held by the running daemon, with its pid;
- `locker.db.identity`: the store's identity (locker, a random store id, when it was made), also
  kept inside the store; a missing, empty or foreign store is refused when this file says one
  existed;
- `locker.db.marks`: the highest outbox sequence and the newest central command accepted,
  written (fsynced) at most every few seconds and at shutdown. A store whose sequence is below
  the mark lost committed data: `alarm.store_rolled_back`, and the sequence is moved up so that
  it never goes back. The command mark keeps a restored store from obeying a command twice.

Stdlib only (fcntl, os, json): no I/O library of the kinds the domain must not import.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from locker.domain.errors import ConfigError, StoreError
from locker.domain.store import Store, Tx

log = logging.getLogger("locker.datadir")
IDENTITY_KEY = "store.identity"
# locker.domain.commands keeps it in the store; it is copied out here
ISSUED_MARK = "commands.issued_mark"
QUICK_CHECK_BUDGET_S = 5.0


class AnotherDaemon(StoreError):
    """Another process holds the data dir."""


class StoreLost(StoreError):
    """The store is missing, empty or damaged: only a backup brings its contents back."""


@dataclass(frozen=True)
class Identity:
    locker_id: str
    store_id: str
    created_at: float

    def as_json(self) -> str:
        return json.dumps({"locker_id": self.locker_id, "store_id": self.store_id,
                           "created_at": self.created_at}, sort_keys=True)

    @classmethod
    def parse(cls, text: str, where: str) -> Identity:
        try:
            data = json.loads(text)
            return cls(str(data["locker_id"]), str(data["store_id"]), float(data["created_at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{where}: not a store identity ({exc})") from None


def identity_file(database: Path) -> Path:
    return database.with_name(database.name + ".identity")


def marks_file(database: Path) -> Path:
    return database.with_name(database.name + ".marks")


def lock_file(database: Path) -> Path:
    return database.with_name("locker.lock")


# -- one daemon per data dir -------------------------------------------------------------------

class DataDirLock:
    """An exclusive flock on data_dir/locker.lock, held as long as the daemon runs."""

    def __init__(self, database: Path) -> None:
        self.path = lock_file(database)
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open while the daemon runs)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "unknown"
            handle.close()
            raise AnotherDaemon(
                f"{self.path}: another locker daemon (pid {other}) is running on this data dir;"
                " two daemons on one store would both open doors. Stop it first"
                " (systemctl stop locker), or give this one another [locker] data_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


# -- the store's identity ----------------------------------------------------------------------

def stored_identity(tx: Tx) -> Identity | None:
    text = tx.meta(IDENTITY_KEY)
    return None if text is None else Identity.parse(text, f"meta {IDENTITY_KEY}")


def give_identity(store: Store, locker_id: str, now: float) -> Identity:
    """A new store's identity, inside it and in the sidecar (`locker init`, or a first start)."""
    identity = stored_identity(store.read())
    if identity is None:
        identity = Identity(locker_id, str(uuid.uuid4()), now)
        with store.transaction(identity.created_at) as tx:
            tx.set_meta(IDENTITY_KEY, identity.as_json())
            tx.emit("store.created", "telemetry", store_id=identity.store_id)
        # out of the WAL into the file: a WAL lost later must not take the identity with it
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    write_durably(identity_file(store.path), identity.as_json())
    return identity


def make_private_dir(path: Path) -> None:
    """The data dir, made (or put back) 0700 whatever the umask: it holds the store, the
    secrets' digests and the backups, which are nobody else's business on the Pi."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def check_private_dir(path: Path) -> None:
    """Refuse a data dir other users may enter or read (`locker init` and systemd's
    StateDirectoryMode make it 0700): a copy of the store or a backup holds every order."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # the store makes it, 0700
    if mode & 0o077:
        raise ConfigError(f"{path}: the data dir is open to other users (mode"
                          f" {oct(mode & 0o777)}); run: chmod 700 {path}")


def make_private_file(path: Path) -> None:
    """A file of the store (the database, its WAL, its sidecars) readable by its owner only."""
    if path.exists():
        os.chmod(path, 0o600)


def check_before_open(database: Path) -> Identity | None:
    """The sidecar says a store existed: it must still be there, and not empty."""
    sidecar = identity_file(database)
    if not sidecar.exists():
        return None
    expected = Identity.parse(sidecar.read_text(), str(sidecar))
    fix = (f"restore the last backup (locker restore --from FILE; the nightly one is in"
           f" {database.parent / 'backups'}), or, to start over with an empty store on purpose,"
           f" delete {sidecar}")
    if not database.exists():
        raise StoreLost(f"{database}: the store is missing but {sidecar.name} says store"
                         f" {expected.store_id} was here; {fix}")
    if database.stat().st_size == 0:
        raise StoreLost(f"{database}: the store is empty (0 bytes) but {sidecar.name} says"
                         f" store {expected.store_id} was here; {fix}")
    return expected


def check_identity(store: Store, locker_id: str, expected: Identity | None,
                   now: float) -> Identity:
    """The store is the one the sidecar names, of this locker; a store made before identities
    existed is given one."""
    found = stored_identity(store.read())
    if expected is None:
        if found is not None and found.locker_id != locker_id:
            raise StoreError(f"{store.path}: this store belongs to locker {found.locker_id},"
                             f" not {locker_id}; check [locker] id and data_dir")
        return give_identity(store, locker_id, now)
    sidecar = identity_file(store.path)
    if found is None or found.store_id != expected.store_id:
        what = ("a store without identity" if found is None
                else f"store {found.store_id} of locker {found.locker_id}")
        raise StoreError(
            f"{store.path}: this is not the store {sidecar.name} names ({expected.store_id},"
            f" locker {expected.locker_id}) but {what}; it was replaced or copied in. Put the"
            " right file back, or restore a backup of this locker (locker restore --from FILE)")
    if found.locker_id != locker_id:
        raise StoreError(f"{store.path}: this store belongs to locker {found.locker_id}, not"
                         f" {locker_id}; check [locker] id and data_dir")
    return found


def quick_check(store: Store, budget_s: float = QUICK_CHECK_BUDGET_S) -> None:
    """PRAGMA quick_check within a time budget: damage stops the daemon with a clear message.
    A store too large to check in the budget is let through (`locker doctor` checks it all)."""
    deadline = time.monotonic() + budget_s
    store.db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        rows = store.db.execute("PRAGMA quick_check(20)").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            log.warning("%s: quick_check did not finish in %.0f s; run locker doctor",
                        store.path, budget_s)
            return
        raise StoreLost(f"{store.path}: the store cannot be checked: {exc}; restore a backup"
                        " (locker restore --from FILE)") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreLost(f"{store.path}: the store is damaged: {exc}; restore a backup"
                        " (locker restore --from FILE)") from exc
    finally:
        store.db.set_progress_handler(None, 0)
    problems = [str(row[0]) for row in rows if row[0] != "ok"]
    if problems:
        raise StoreLost(f"{store.path}: the store is damaged ({'; '.join(problems[:3])});"
                         " restore a backup (locker restore --from FILE)")


# -- high-water marks outside the store ----------------------------------------------------------

@dataclass(frozen=True)
class Marks:
    outbox_seq: int = 0
    command_issued: float = 0.0


def outbox_seq(tx: Tx) -> int:
    row = tx.one("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
    return 0 if row is None else int(row["seq"])


def raise_outbox_seq(tx: Tx, seq: int) -> None:
    """The outbox numbers continue above `seq`: an event number is never used twice."""
    if not tx.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'outbox'",
                      (seq,)):
        tx.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (seq,))


def read_marks(database: Path) -> Marks:
    path = marks_file(database)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return Marks(int(data["outbox_seq"]), float(data["command_issued"]))
    except FileNotFoundError:
        return Marks()
    except (ValueError, KeyError, TypeError, OSError) as exc:
        log.warning("%s: unreadable (%s); the marks start again from the store", path, exc)
        return Marks()


def current_marks(tx: Tx) -> Marks:
    return Marks(outbox_seq(tx), float(tx.meta(ISSUED_MARK) or 0.0))


def save_marks(database: Path, marks: Marks) -> None:
    write_durably(marks_file(database), json.dumps(
        {"outbox_seq": marks.outbox_seq, "command_issued": marks.command_issued,
         "at": time.time()}, sort_keys=True))


def compare_marks(store: Store, marks: Marks, now: float) -> int:
    """At start: events lost since the marks were written (0 when none). A loss raises
    `alarm.store_rolled_back`, and the sequence and the command mark are moved up to the marks,
    so that nothing is numbered twice and no command is obeyed twice."""
    read = store.read()
    found = current_marks(read)
    lost = marks.outbox_seq - found.outbox_seq
    if lost <= 0 and marks.command_issued <= found.command_issued:
        return 0
    with store.transaction(now) as tx:
        if lost > 0:
            raise_outbox_seq(tx, marks.outbox_seq)
        tx.set_meta(ISSUED_MARK, repr(max(marks.command_issued, found.command_issued)))
        if lost > 0:
            report_rollback(tx, found.outbox_seq, marks.outbox_seq, "the marks beside the store")
    return max(0, lost)


def report_rollback(tx: Tx, found: int, expected: int, witness: str) -> None:
    message = (f"the store holds events up to {found} but {witness} saw {expected}: up to"
               f" {expected - found} committed events, and the orders they told of, were lost"
               " (a deleted WAL, a card restored or copied). See docs/operations.md, 'The store"
               " went back'")
    log.error("%s", message)
    tx.emit("store.rolled_back", "alarm", found_seq=found, expected_seq=expected,
            witness=witness)
    tx.raise_alarm("store_rolled_back", "store", message)


def write_durably(path: Path, text: str) -> None:
    """Write a small file so that a power cut leaves the old one or the new one, whole."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
