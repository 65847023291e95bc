"""Backups that restore: consistent copies of the store, taken while the daemon runs, and a
restore that refuses another locker's copy and replays nothing twice.

A copy is made with SQLite's online backup API (a consistent snapshot even while the daemon
writes). `.xz` and `.gz` copies are compressed, through a plain copy in memory (/dev/shm), so
that the rolling backup the daemon keeps on the card (data_dir/backups/rolling.db.xz, replaced
whole every `store.backup_every_h`) writes only its compressed size: a sixth of the store.

A restore puts the copy in place of the store (the old file kept beside it), then moves the outbox
sequence and the command mark up to the high-water marks kept outside the store, so that no
event number is used twice and no command from central is obeyed twice; unanswered unlocks in
the copy are interrupted at the next start, never pulsed. Stdlib only.
"""

from __future__ import annotations

import gzip
import io
import logging
import lzma
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from locker.domain.datadir import (
    IDENTITY_KEY,
    ISSUED_MARK,
    DataDirLock,
    Identity,
    Marks,
    current_marks,
    identity_file,
    raise_outbox_seq,
    read_marks,
    save_marks,
    write_durably,
)
from locker.domain.errors import StoreError
from locker.domain.store import Store

log = logging.getLogger("locker.backup")
ROLLING = "rolling.db.xz"
# compressed copies, by their name's end: xz (preset 1) packs the store to two thirds of what
# gzip does, in about the same time (bench/backup_cost.py)
PACKED = (".xz", ".gz")


class BackupRefused(StoreError):
    """This copy cannot be restored here; nothing was changed."""


@dataclass(frozen=True)
class Copy:
    path: Path
    identity: Identity
    outbox_seq: int
    taken_at: float
    size: int


def rolling_backup(database: Path) -> Path:
    return database.parent / "backups" / ROLLING


def take(database: Path, to: Path) -> Copy:
    """A consistent copy of the store at `to` (compressed when it ends in .xz or .gz)."""
    if not database.exists() or database.stat().st_size == 0:
        raise StoreError(f"{database}: no store to back up")
    to.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10.0)
    try:
        with tempfile.TemporaryDirectory(dir=to.parent) as work:
            staged = Path(work) / f"staged{to.suffix}"
            if to.suffix in PACKED:
                # the plain copy in memory (tmpfs), then only the compressed one on the card:
                # a year-old store is 15 MB, its copy 4 MB (bench/backup_cost.py)
                with tempfile.TemporaryDirectory(dir=scratch_dir()) as scratch:
                    plain = Path(scratch) / "copy.db"
                    _copy(source, plain)
                    with open(plain, "rb") as raw, _packed(staged, writing=True) as out:
                        shutil.copyfileobj(raw, out)
            else:
                _copy(source, staged)
            with open(staged, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(staged, to)
    except sqlite3.Error as exc:
        raise StoreError(f"{database}: the backup failed: {exc}") from exc
    finally:
        source.close()
    return inspect(to)


def _packed(path: Path, writing: bool) -> io.BufferedIOBase:
    """A compressed copy opened to read or to write."""
    if path.suffix == ".xz":
        return lzma.LZMAFile(path, "wb", preset=1) if writing else lzma.LZMAFile(path, "rb")
    return gzip.GzipFile(path, "wb", compresslevel=6) if writing else gzip.GzipFile(path, "rb")


def scratch_dir() -> str | None:
    """Where a plain copy may be unpacked without writing the card: /dev/shm (tmpfs) when it is
    there, else the system's temporary directory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _copy(source: sqlite3.Connection, to: Path) -> None:
    """SQLite's online backup: consistent while the daemon writes; one self-contained file."""
    target = sqlite3.connect(to)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode = DELETE")
    finally:
        target.close()


def inspect(path: Path) -> Copy:
    """What a copy holds: whose it is, how far its outbox goes; refused when it is damaged."""
    with _opened(path) as plain:
        db = sqlite3.connect(f"file:{plain}?mode=ro", uri=True)
        try:
            check = db.execute("PRAGMA integrity_check(5)").fetchall()
            if [row[0] for row in check] != ["ok"]:
                raise BackupRefused(f"{path}: the copy is damaged: {check[0][0]}")
            row = db.execute("SELECT value FROM meta WHERE key = ?", (IDENTITY_KEY,)).fetchone()
            if row is None:
                raise BackupRefused(f"{path}: the copy has no store identity; it is not a"
                                    " backup of a locker store")
            identity = Identity.parse(row[0], f"{path}: meta {IDENTITY_KEY}")
            seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            newest = db.execute("SELECT MAX(at) FROM outbox").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BackupRefused(f"{path}: not a locker store: {exc}") from exc
        finally:
            db.close()
    taken = newest[0] if newest and newest[0] is not None else path.stat().st_mtime
    return Copy(path, identity, int(seq[0]) if seq else 0, float(taken), path.stat().st_size)


def restore(database: Path, locker_id: str, copy_path: Path, now: float, *,
            locked: bool = False) -> Copy:
    """Put the copy in place of the store. The daemon must be stopped: the data dir's lock is
    taken here (`locked`: the caller holds it). The replaced store is kept as
    locker.db.replaced-<time>."""
    if not locked:
        lock = DataDirLock(database)
        lock.acquire()
        try:
            return restore(database, locker_id, copy_path, now, locked=True)
        finally:
            lock.release()
    copy = inspect(copy_path)
    if copy.identity.locker_id != locker_id:
        raise BackupRefused(f"{copy_path}: a backup of locker {copy.identity.locker_id}, not"
                            f" of {locker_id}; nothing was changed")
    marks = _highest_marks(database)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    for suffix in ("", "-wal", "-shm"):
        old = database.with_name(database.name + suffix)
        if old.exists():
            os.replace(old, database.with_name(f"{database.name}.replaced-{stamp}{suffix}"))
    with _opened(copy_path) as plain:
        source = sqlite3.connect(f"file:{plain}?mode=ro", uri=True)
        target = sqlite3.connect(database)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
    store = Store(database)
    try:
        found = current_marks(store.read())
        with store.transaction(now) as tx:
            raise_outbox_seq(tx, max(marks.outbox_seq, found.outbox_seq))
            tx.set_meta(ISSUED_MARK, repr(max(marks.command_issued, found.command_issued)))
            tx.emit("store.restored", "alarm", store_id=copy.identity.store_id,
                    backup=str(copy_path), backup_taken_at=copy.taken_at,
                    events_after_the_backup=max(0, marks.outbox_seq - copy.outbox_seq))
        write_durably(identity_file(database), copy.identity.as_json())
        save_marks(database, current_marks(store.read()))
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    log.warning("restored %s from %s (taken %s)", database, copy_path,
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(copy.taken_at)))
    return copy


def _highest_marks(database: Path) -> Marks:
    """The marks beside the store, or the store's own if they are higher (it may still open)."""
    marks = read_marks(database)
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            issued = db.execute("SELECT value FROM meta WHERE key = ?",
                                (ISSUED_MARK,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return marks
    return Marks(max(marks.outbox_seq, int(row[0]) if row else 0),
                 max(marks.command_issued, float(issued[0]) if issued else 0.0))


class _opened:
    """A copy as a plain SQLite file (a compressed one unpacked to a temporary file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._work: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        if not self.path.exists():
            raise BackupRefused(f"{self.path}: no such file")
        if self.path.suffix not in PACKED:
            return self.path
        self._work = tempfile.TemporaryDirectory(dir=scratch_dir())
        plain = Path(self._work.name) / "copy.db"
        try:
            with _packed(self.path, writing=False) as packed, open(plain, "wb") as out:
                shutil.copyfileobj(packed, out)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            self._work.cleanup()
            raise BackupRefused(f"{self.path}: not a {self.path.suffix[1:]}-compressed copy:"
                                f" {exc}") from None
        return plain

    def __exit__(self, *exc: object) -> None:
        if self._work is not None:
            self._work.cleanup()
