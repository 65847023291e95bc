"""The HACCP record's hash chain and signed days: any quiet edit is found, and named."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from locker.cli import main
from locker.domain import haccp
from locker.domain.config import LockerConfig
from locker.domain.store import Store

DAY = float(calendar.timegm(time.strptime("2026-11-20", "%Y-%m-%d")))  # UTC midnight
KEY = Ed25519PrivateKey.generate()


def fill(store: Store, start: float, hours: float, key: Ed25519PrivateKey | None = KEY,
         locker_id: str = "L-1") -> None:
    for i in range(int(hours * 12)):
        with store.transaction(start + i * 300) as tx:
            haccp.record(tx, key, locker_id, "fresh", 3.0 + (i % 5) / 10, i % 2 == 0, False, i % 3)


def check(store: Store, start: float = DAY - 86400, end: float = DAY + 10 * 86400
          ) -> haccp.Verdict:
    return haccp.verify(store.read(), KEY.public_key(), "L-1", start, end)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.db")


def test_an_untouched_record_verifies_and_each_day_is_signed_once(store: Store) -> None:
    fill(store, DAY, 72)  # three days: the first two ended, the third is under way
    verdict = check(store)
    assert verdict.ok and verdict.readings == 3 * 288 and verdict.heads == 2
    assert verdict.unsigned == 288  # today's, signed when the day ends
    heads = store.read().all("SELECT day FROM haccp_heads ORDER BY row")
    assert [h["day"] for h in heads] == ["2026-11-20", "2026-11-21"]
    signed = store.read().all("SELECT payload FROM outbox WHERE kind = 'haccp.day_signed'")
    assert len(signed) == 2  # each head goes to central


@pytest.mark.parametrize("edit, why", [
    ("UPDATE temperatures SET celsius = 3.9 WHERE rowid = 100", "changed"),
    ("DELETE FROM temperatures WHERE rowid = 100", "removed"),
    ("INSERT INTO temperatures (rowid, zone, at, celsius, compressor, defrosting, door_openings,"
     " chain) SELECT 100000, zone, at, 2.0, 0, 0, 0, chain FROM temperatures WHERE rowid = 99",
     "changed"),
    ("UPDATE temperatures SET chain = NULL WHERE rowid = 100", "chain was removed"),
])
def test_a_quiet_edit_is_named_by_its_row(store: Store, edit: str, why: str) -> None:
    fill(store, DAY, 24)
    store.db.execute(edit)
    verdict = check(store)
    assert not verdict.ok and verdict.broken is not None
    assert verdict.broken.row in (100, 101, 100000)
    assert why in verdict.broken.why or "inserted" in verdict.broken.why


def test_rewriting_the_chain_after_an_edit_still_disagrees_with_the_signed_day(
        store: Store) -> None:
    """Someone with SQL access edits a reading and recomputes every chain after it: the day's
    signed head (which central holds too) no longer matches."""
    fill(store, DAY, 30)
    store.db.execute("UPDATE temperatures SET celsius = 3.1 WHERE rowid = 10")
    rows = store.read().all("SELECT rowid, * FROM temperatures ORDER BY rowid")
    previous = haccp.GENESIS
    for r in rows:
        chain = haccp.link(previous, r["zone"], r["at"], r["celsius"], r["compressor"],
                           r["defrosting"], r["door_openings"])
        store.db.execute("UPDATE temperatures SET chain = ? WHERE rowid = ?", (chain, r["rowid"]))
        previous = chain
    verdict = check(store)
    assert verdict.broken is not None and "signed head of 2026-11-20" in verdict.broken.why
    assert verdict.broken.row == 288


def test_a_signature_by_another_key_is_refused(store: Store) -> None:
    fill(store, DAY, 30, key=Ed25519PrivateKey.generate())
    verdict = check(store)
    assert verdict.broken is not None and "signed head" in verdict.broken.why


def test_retention_keeps_the_anchor_the_rest_follows_from(store: Store) -> None:
    fill(store, DAY, 48)
    with store.transaction(DAY + 2 * 86400) as tx:
        haccp.forget_before(tx, DAY + 86400 + 3600)
    assert store.read().one("SELECT min(at) AS at FROM temperatures")["at"] >= DAY + 86400
    assert check(store).ok
    store.db.execute("DELETE FROM meta WHERE key = ?", (haccp.ANCHOR_META,))
    assert not check(store).ok  # the first kept row no longer follows from anything known


def test_a_record_from_before_the_chain_is_told_apart(store: Store) -> None:
    with store.transaction(DAY) as tx:
        for i in range(3):
            tx.execute("INSERT INTO temperatures (zone, at, celsius, compressor, defrosting)"
                       " VALUES ('fresh', ?, 3.0, 0, 0)", (DAY + i * 300,))
    fill(store, DAY + 3600, 2)
    verdict = check(store)
    assert verdict.ok and verdict.unchained == 3 and verdict.readings == 3 + 24


def test_a_clock_step_back_neither_breaks_the_chain_nor_signs_a_day_twice(store: Store) -> None:
    fill(store, DAY + 86400 - 1800, 1)  # across midnight: the first day is signed
    fill(store, DAY + 86400 - 3600, 1)  # the clock stepped back an hour, across it again
    fill(store, DAY + 86400 + 600, 1)
    verdict = check(store)
    assert verdict.ok and verdict.readings == 36
    days = [h["day"] for h in store.read().all("SELECT day FROM haccp_heads ORDER BY row")]
    assert days == ["2026-11-20", "2026-11-21", "2026-11-20"]  # each head at its own row


def test_without_a_key_the_chain_is_kept_and_the_day_waits(store: Store) -> None:
    fill(store, DAY, 30, key=None)
    verdict = check(store)
    assert verdict.ok and verdict.heads == 0 and verdict.unsigned == 360


def test_the_command_names_the_broken_row(config: LockerConfig, config_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    haccp.create_record_key(config.record_key_file)
    key = haccp.load_record_key(config.record_key_file)
    store = Store(config.database)
    start = time.mktime(time.strptime("2026-11-20", "%Y-%m-%d"))
    fill(store, start, 30, key=key, locker_id=config.locker_id)
    args = ["haccp", "verify", "--config", str(config_path), "--from", "2026-11-20",
            "--to", "2026-11-21"]
    assert main(args) == 0
    assert "ok: 360 readings" in capsys.readouterr().out
    store.db.execute("UPDATE temperatures SET celsius = 1.0 WHERE rowid = 7")
    store.db.commit()
    store.close()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert out.startswith("BROKEN at row 7 (fresh 2026-11-20 00:30:00)"), out
    assert main([*args[:-2], "--to", "21/11/2026"]) == 2  # a clear error
