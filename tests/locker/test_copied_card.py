"""What a copied SD card gives an attacker, tried: no code in clear, no generator, no collected
code; and `locker rotate-keys` re-keys the open orders without knowing a code, cut or not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyotp
import pytest

from locker.cli import parser
from locker.domain.clock import SimClock
from locker.domain.codes import DigestKey, create_private_file, load_digest_key, new_code
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.datadir import DataDirLock
from locker.domain.errors import ConfigError, LockerError
from locker.domain.keys import KEY_META, pending_file, rotate_keys, settle_key_files
from locker.domain.pickup import PickupRefused
from locker.domain.store import Store
from tests.support.central import central_config, feed, load, order
from tests.support.configs import write_config
from tests.support.doubles import FakeDriver


async def started(config: LockerConfig, clock: SimClock) -> tuple[Locker, FakeDriver]:
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver, clock)
    await locker.start()
    return locker, driver


async def collect(locker: Locker, driver: FakeDriver, code: str) -> None:
    result = await locker.pickup.collect(code)
    for door in result.opened:
        driver.open(door.compartment_id)
        driver.close(door.compartment_id)


def card_bytes(folder: Path) -> bytes:
    """Every byte of every file on the card's data dir (store, WAL, keys, backups)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


async def test_a_copied_card_gives_no_code_that_is_not_open_and_no_future_one(
        tmp_path: Path) -> None:
    config = central_config(tmp_path)
    clock = SimClock(start=1_800_000_000.0)
    locker, driver = await started(config, clock)
    codes = {f"o{n}": new_code() for n in range(10)}
    zones = ["ambient", "fresh", "frozen"]
    for n, (order_id, code) in enumerate(codes.items()):
        bags = [{"zone": zones[n % 3], "size": "S"}]
        await feed(locker, {"type": "order", "order": {**order(order_id, bags=bags),
                                                        "code": code}})
    for order_id in ("o0", "o1", "o2", "o3"):  # collected (the six doors serve them in turn)
        await load(locker, driver, order_id)
        await collect(locker, driver, codes[order_id])
    await feed(locker, {"type": "order", "order": order("o4", 2, state="cancelled")})
    for order_id in ("o5", "o6", "o7", "o8", "o9"):  # ready, waiting for their customers
        await load(locker, driver, order_id)
    copy = tmp_path / "copy"
    shutil.copytree(config.data_dir, copy)  # the card pulled while the locker runs
    await locker.stop()

    raw = card_bytes(copy)
    upcoming = new_code()  # central draws the next order's code after the copy was taken
    for code in [*codes.values(), upcoming]:
        for shown in (code, f"{code[:3]} {code[3:7]} {code[7:]}"):
            assert shown.encode() not in raw
    # the attacker holds the digest key: only the open orders' codes can be confirmed
    key = load_digest_key(copy / config.digest_key_file.name)
    store = Store(copy / "locker.db")
    try:
        digests = {r["code_digest"] for r in store.read().all(
            "SELECT code_digest FROM orders WHERE code_digest IS NOT NULL")}
        sequences = [int(r["sequence"]) for r in store.read().all("SELECT sequence FROM orders")]
    finally:
        store.close()
    confirmable = {o for o, code in codes.items() if key.digest(code) in digests}
    assert confirmable == {"o5", "o6", "o7", "o8", "o9"}  # collected and cancelled: none
    assert key.digest(upcoming) not in digests
    # the old attack: any key-like text on the card as an HOTP secret over the order numbers
    texts = [p.read_text(errors="ignore").strip() for p in copy.rglob("*") if p.is_file()
             and p.stat().st_size < 200]
    for text in texts:
        candidate = "".join(ch for ch in text.upper() if ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        if len(candidate) < 16:
            continue
        hotp = pyotp.HOTP(candidate[:32], digits=10)
        made = {hotp.at(n) for n in [*sequences, max(sequences) + 1]}
        assert not made & {code[:10] for code in [*codes.values(), upcoming]}


async def test_rotating_the_key_keeps_every_open_code_working(tmp_path: Path) -> None:
    config = central_config(tmp_path)
    clock = SimClock(start=1_800_000_000.0)
    locker, driver = await started(config, clock)
    codes = {f"o{n}": new_code() for n in range(3)}
    for order_id, code in codes.items():
        await feed(locker, {"type": "order", "order": {**order(order_id), "code": code}})
    await load(locker, driver, "o0")
    await load(locker, driver, "o1")
    await collect(locker, driver, codes["o1"])
    await locker.stop()
    old = load_digest_key(config.digest_key_file)

    store = Store(config.database)
    try:
        assert rotate_keys(config, store, clock.now()) == 2  # o0 ready, o2 still to load
    finally:
        store.close()
    new = load_digest_key(config.digest_key_file)
    assert new != old and not pending_file(config).exists()
    locker, driver = await started(config, clock)
    try:
        rotated = [e for e in locker.store.events() if e.kind == "security.keys_rotated"]
        assert rotated[-1].payload == {"orders": 2, "fingerprint": new.fingerprint,
                                       "reason": "locker rotate-keys"}
        await collect(locker, driver, codes["o0"])
        await load(locker, driver, "o2")
        await collect(locker, driver, codes["o2"])
        with pytest.raises(PickupRefused, match="already been used"):
            await locker.pickup.collect(codes["o0"])
    finally:
        await locker.stop()


def test_a_rotation_cut_at_any_point_settles_to_a_key_that_fits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = central_config(tmp_path)
    store = Store(config.database)
    try:
        old = settle_key_files(config, store, 0.0)
        # cut before the commit: a new file lies beside the old key; it is dropped
        create_private_file(pending_file(config), DigestKey.generate().text)
        assert settle_key_files(config, store, 1.0) == old
        assert not pending_file(config).exists()
        # cut after the commit, before the rename: the store names the new key; it is put in
        real_replace = os.replace
        monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("cut")))
        with pytest.raises(OSError, match="cut"):
            rotate_keys(config, store, 2.0)
        monkeypatch.setattr(os, "replace", real_replace)
        assert store.meta(KEY_META) != old.fingerprint and pending_file(config).exists()
        settled = settle_key_files(config, store, 3.0)
        assert settled.fingerprint == store.meta(KEY_META)
        assert load_digest_key(config.digest_key_file) == settled
        # a key file from somewhere else is refused, never used to judge codes
        config.digest_key_file.unlink()
        create_private_file(config.digest_key_file, DigestKey.generate().text)
        with pytest.raises(ConfigError, match="not the one the store's codes were made with"):
            settle_key_files(config, store, 4.0)
    finally:
        store.close()


async def test_a_store_restored_from_before_a_rotation_is_re_keyed_and_its_codes_open(
        tmp_path: Path) -> None:
    config = central_config(tmp_path)
    clock = SimClock(start=1_800_000_000.0)
    locker, driver = await started(config, clock)
    code = new_code()
    await feed(locker, {"type": "order", "order": {**order("o1"), "code": code}})
    await load(locker, driver, "o1")
    await locker.stop()
    backup = tmp_path / "before.db"
    store = Store(config.database)
    try:
        store.db.execute("VACUUM INTO ?", (str(backup),))
        rotate_keys(config, store, clock.now())
    finally:
        store.close()
    for sidecar in config.data_dir.glob("locker.db*"):
        sidecar.unlink()
    shutil.copy(backup, config.database)  # the backup, as `locker restore` puts it back
    locker, driver = await started(config, clock)
    try:
        await collect(locker, driver, code)
        reasons = [e.payload["reason"] for e in locker.store.events()
                   if e.kind == "security.keys_rotated"]
        assert reasons[-1] == "the store came back from before the last rotation"
    finally:
        await locker.stop()


def test_the_commands_draw_show_once_and_rotate(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert run_cli("init", "--config", str(path)) == 0
    assert "box key for central: " in capsys.readouterr().out
    assert run_cli("order-add", "--config", str(path), "--id", "o1", "--bag", "fresh:S") == 0
    said = capsys.readouterr().out
    code = said.split("pickup code: ")[1].strip().replace(" ", "")
    assert len(code) == 11 and "shown this once" in said
    config = load_config(path)
    lock = DataDirLock(config.database)
    lock.acquire()  # the daemon runs: its key must not change under it
    try:
        with pytest.raises(LockerError):
            run_cli("rotate-keys", "--config", str(path))
    finally:
        lock.release()
    assert run_cli("rotate-keys", "--config", str(path)) == 0
    assert "1 open orders re-keyed" in capsys.readouterr().out
    store = Store(config.database)
    try:
        key = settle_key_files(config, store, 0.0)
        assert store.read().one("SELECT code_digest FROM orders WHERE id = 'o1'") == {
            "code_digest": key.digest(code)}
    finally:
        store.close()


def run_cli(*argv: str) -> int:
    args = parser().parse_args(argv)
    args.redact = None
    code: int = args.func(args)
    return code
