"""The HACCP record made so that it cannot be edited quietly, and the locker's signing key.

Every reading row carries `chain`: SHA-256 over the previous row's chain and this row's values,
so changing, inserting or removing a row breaks the chain from that row on. When the (UTC) day of
the readings changes, the last row's chain (the day's head) is signed with the locker's own
Ed25519 key (`locker init` makes it; central gets the public half at provisioning) and the signed
head goes to central (`haccp.day_signed`): a record rewritten later, even with the key in hand,
no longer agrees with what central holds. Retention removes the oldest rows; the chain of the
last row it removed is kept as the anchor the first remaining row follows from.

`verify()` walks the chain and the signed heads and names the first row that does not follow.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from locker.domain.codes import create_private_file
from locker.domain.config import LockerConfig
from locker.domain.errors import ConfigError
from locker.domain.store import Tx

log = logging.getLogger("locker.haccp")
GENESIS = bytes(32)  # what the first row ever recorded follows from
ANCHOR_META = "haccp.anchor"  # hex chain of the last row retention removed


# ---- the locker's signing key ---------------------------------------------------------------

def create_record_key(path: Path) -> bool:
    """Make the locker's Ed25519 key once (never overwritten); True when it was made now."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode("ascii")
    return create_private_file(path, pem)


@functools.lru_cache(maxsize=8)
def load_record_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: the locker's record key cannot be read ({e});"
                          " `locker init` makes it") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: the locker's record key must be an Ed25519 key")
    return key


def record_key(config: LockerConfig) -> Ed25519PrivateKey:
    """The locker's key, made now if this data dir is from before it existed (an upgrade):
    central must then be given its public half (`locker haccp key`) to check the signatures."""
    if create_record_key(config.record_key_file):
        log.warning("made the locker's record key %s: give central its public half"
                    " (locker haccp key)", config.record_key_file)
    return load_record_key(config.record_key_file)


def public_pem(key: Ed25519PrivateKey) -> str:
    """The public half, as central is given it at provisioning."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo
                                         ).decode("ascii")


def load_public_pem(text: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as e:
        raise ValueError(f"not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def signed(key: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


# ---- the chain --------------------------------------------------------------------------------

def link(previous: bytes, zone: str, at: float, celsius: float | None, compressor: int,
         defrosting: int, door_openings: int) -> bytes:
    """A row's chain: its values (as JSON, which keeps floats exactly) after the previous one."""
    values = json.dumps([zone, at, celsius, compressor, defrosting, door_openings])
    return hashlib.sha256(previous + values.encode("ascii")).digest()


def head_message(locker_id: str, day: str, row: int, chain: bytes) -> bytes:
    """What a day's signature covers: the locker, the day, its last row and that row's chain."""
    return f"haccp-head|{locker_id}|{day}|{row}|{chain.hex()}".encode("ascii")


def utc_day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def record(tx: Tx, key: Ed25519PrivateKey | None, locker_id: str, zone: str,
           celsius: float | None, compressor: bool, defrosting: bool,
           door_openings: int) -> None:
    """Add one reading to the record at tx.now; the first reading of a new day signs the
    previous day's head (without a key the chain is still kept, and the head waits)."""
    last = tx.one("SELECT rowid, at, chain FROM temperatures ORDER BY rowid DESC LIMIT 1")
    previous = _follows_from(tx, last)
    chain = link(previous, zone, tx.now, celsius, int(compressor), int(defrosting),
                 door_openings)
    if last is not None and last["chain"] is not None and utc_day(last["at"]) != utc_day(tx.now):
        sign_head(tx, key, locker_id, last["rowid"])
    tx.execute("INSERT INTO temperatures (zone, at, celsius, compressor, defrosting,"
               " door_openings, chain) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (zone, tx.now, celsius, int(compressor), int(defrosting), door_openings, chain))


def _follows_from(read: Tx, last: Any) -> bytes:
    if last is None:
        anchor = read.meta(ANCHOR_META)
        return bytes.fromhex(anchor) if anchor else GENESIS
    # a row recorded before the chain began: the chain starts again from nothing there
    return last["chain"] if last["chain"] is not None else GENESIS


def sign_head(tx: Tx, key: Ed25519PrivateKey | None, locker_id: str, row: int) -> bool:
    """Sign the head at `row` (once) and send it to central; False without a key."""
    if key is None or tx.one("SELECT 1 FROM haccp_heads WHERE row = ?", (row,)) is not None:
        return False
    found = tx.one("SELECT at, chain FROM temperatures WHERE rowid = ?", (row,))
    if found is None or found["chain"] is None:
        return False
    day = utc_day(found["at"])
    signature = key.sign(head_message(locker_id, day, row, found["chain"])).hex()
    tx.insert("haccp_heads", {"row": row, "day": day, "chain": found["chain"],
                              "signature": signature, "signed_at": tx.now})
    tx.emit("haccp.day_signed", "coldchain", day=day, row=row, head=found["chain"].hex(),
            signature=signature)
    return True


def forget_before(tx: Tx, cutoff: float) -> None:
    """Retention: remove readings older than `cutoff`, keeping the anchor the rest follows.

    Called at every reading: it looks at the oldest rows only (by rowid, no scan of the year),
    at most a thousand at a time, so a locker back from months off catches up over a few
    readings."""
    oldest = tx.one("SELECT at FROM temperatures ORDER BY rowid LIMIT 1")
    if oldest is None or oldest["at"] >= cutoff:
        return
    gone = tx.one("SELECT rowid, chain FROM (SELECT rowid, at, chain FROM temperatures"
                  " ORDER BY rowid LIMIT 1000) WHERE at < ? ORDER BY rowid DESC LIMIT 1",
                  (cutoff,))
    if gone is None:
        return
    # rows are removed up to the newest old one, so what remains follows from its chain
    tx.execute("DELETE FROM temperatures WHERE rowid <= ?", (gone["rowid"],))
    tx.execute("DELETE FROM haccp_heads WHERE row <= ?", (gone["rowid"],))
    if gone["chain"] is not None:
        tx.set_meta(ANCHOR_META, gone["chain"].hex())


# ---- checking it ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Broken:
    row: int
    zone: str
    at: float
    why: str


@dataclass(frozen=True)
class Verdict:
    readings: int
    heads: int  # signed day heads checked
    first_row: int | None
    last_row: int | None
    unsigned: int  # readings after the last signed head (today's, signed when the day ends)
    unchained: int  # readings recorded before the chain began (an older version)
    broken: Broken | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(read: Tx, public: Ed25519PublicKey, locker_id: str, start: float,
           end: float) -> Verdict:
    """Re-check the chain and the signed heads of the readings between two times."""
    bounds = read.one("SELECT min(rowid) AS lo, max(rowid) AS hi FROM temperatures"
                      " WHERE at >= ? AND at < ?", (start, end))
    if bounds is None or bounds["lo"] is None:
        return Verdict(0, 0, None, None, 0, 0, None)
    lo, hi = int(bounds["lo"]), int(bounds["hi"])
    before = read.one("SELECT rowid, at, chain FROM temperatures WHERE rowid < ?"
                      " ORDER BY rowid DESC LIMIT 1", (lo,))
    previous = _follows_from(read, before)
    started = before is not None and before["chain"] is not None  # rows before follow the chain
    heads = {r["row"]: r for r in read.all(
        "SELECT row, day, chain, signature FROM haccp_heads WHERE row BETWEEN ? AND ?", (lo, hi))}
    readings = checked_heads = unchained = 0
    last_signed = None
    for r in read.all("SELECT rowid, zone, at, celsius, compressor, defrosting, door_openings,"
                      " chain FROM temperatures WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
                      (lo, hi)):
        readings += 1
        if r["chain"] is None:
            if started:
                return _broken(readings, checked_heads, lo, hi, r, "its chain was removed")
            unchained += 1  # recorded before the chain began
            continue
        started = True
        expected = link(previous, r["zone"], r["at"],
                        r["celsius"], r["compressor"], r["defrosting"], r["door_openings"])
        if r["chain"] != expected:
            return _broken(readings, checked_heads, lo, hi, r,
                           "its values or its chain were changed, or a row before it was"
                           " removed or inserted")
        head = heads.pop(r["rowid"], None)
        if head is not None:
            good = head["chain"] == expected and signed(
                public, head_message(locker_id, head["day"], r["rowid"], expected),
                head["signature"])
            if not good:
                return _broken(readings, checked_heads, lo, hi, r,
                               f"the signed head of {head['day']} does not match it")
            checked_heads += 1
            last_signed = r["rowid"]
        previous = expected
    if heads:  # a signed head whose row is gone
        row = min(heads)
        return Verdict(readings, checked_heads, lo, hi, 0, unchained,
                       Broken(row, "", 0.0, f"the signed head of {heads[row]['day']} names a"
                              " reading that is not in the record"))
    unsigned = read.one("SELECT count(*) AS n FROM temperatures WHERE rowid > ? AND rowid <= ?",
                        (last_signed or lo - 1, hi))
    return Verdict(readings, checked_heads, lo, hi, unsigned["n"] if unsigned else 0,
                   unchained, None)


def _broken(readings: int, heads: int, lo: int, hi: int, row: Any, why: str) -> Verdict:
    return Verdict(readings, heads, lo, hi, 0, 0,
                   Broken(row["rowid"], row["zone"], row["at"], why))
