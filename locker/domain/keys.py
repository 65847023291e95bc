"""Rotating the code digest key: every open order re-keyed in one transaction, with no code known.

The new key is written beside the old one first, then one transaction re-keys every digest and
names the new key in the store, then the old key is kept as the retired one and the new file
replaces it. A power cut at any point leaves a store and a key file that belong together once
`settle_key_files` has run at the next start: before the commit the old key still matches (the
new file is dropped), after it the new file is put in place. A store restored from a backup
taken before the rotation names the retired key: it is re-keyed to the current one. A key file
that matches none of these is refused, never used to judge codes.
"""

from __future__ import annotations

import os
from pathlib import Path

from locker.domain.codes import DigestKey, create_private_file, load_digest_key
from locker.domain.config import LockerConfig
from locker.domain.errors import ConfigError
from locker.domain.lifecycle import order as order_life
from locker.domain.store import Store
from locker.domain.update import sync_dir

KEY_META = "codes.digest_key"  # the fingerprint of the key the store's digests are made with


def pending_file(config: LockerConfig) -> Path:
    return config.digest_key_file.with_name(config.digest_key_file.name + ".new")


def retired_file(config: LockerConfig) -> Path:
    """The key before the last rotation: a store restored from before it is re-keyed with it."""
    return config.digest_key_file.with_name(config.digest_key_file.name + ".retired")


def settle_key_files(config: LockerConfig, store: Store, now: float) -> DigestKey:
    """The digest key that belongs to this store, finishing or dropping a rotation cut short,
    and re-keying a store restored from a backup taken before the last rotation."""
    key = load_digest_key(config.digest_key_file)
    pending = pending_file(config)
    named = store.meta(KEY_META)
    if named is None:  # a store from before key rotation, or a new one: it takes this key
        with store.transaction(now) as tx:
            tx.set_meta(KEY_META, key.fingerprint)
        named = key.fingerprint
    if key.fingerprint == named:
        pending.unlink(missing_ok=True)  # a rotation cut before its commit
        return key
    if pending.exists():
        new = load_digest_key(pending)
        if new.fingerprint == named:  # cut after the commit: the new key is the store's
            os.replace(pending, config.digest_key_file)
            sync_dir(config.digest_key_file.parent)
            return new
    retired = retired_file(config)
    if retired.exists():
        old = load_digest_key(retired)
        if old.fingerprint == named:  # a backup from before the last rotation came back
            _rekey(store, now, old, key, "the store came back from before the last rotation")
            pending.unlink(missing_ok=True)
            return key
    raise ConfigError(
        f"{config.digest_key_file}: this code digest key (fingerprint {key.fingerprint}) is not"
        f" the one the store's codes were made with ({named}); put back the key file that"
        " belongs to this store (from the same backup), or no code will open")


def rotate_keys(config: LockerConfig, store: Store, now: float) -> int:
    """A new digest key; returns how many open orders were re-keyed. The old key is kept as the
    retired one (only the last), so that the rolling backup still fits."""
    old = settle_key_files(config, store, now)
    new = DigestKey.generate()
    pending = pending_file(config)
    if not create_private_file(pending, new.text):
        raise ConfigError(f"{pending}: exists; start the locker once to settle it")
    count = _rekey(store, now, old, new, "locker rotate-keys")
    retired = retired_file(config)
    retired.unlink(missing_ok=True)
    create_private_file(retired, old.text)
    os.replace(pending, config.digest_key_file)
    sync_dir(config.digest_key_file.parent)
    return count


def _rekey(store: Store, now: float, old: DigestKey, new: DigestKey, why: str) -> int:
    with store.transaction(now) as tx:
        count = order_life.rekey_codes(tx, lambda digest: old.rekeyed(digest, new))
        tx.set_meta(KEY_META, new.fingerprint)
        tx.emit("security.keys_rotated", "security", orders=count, fingerprint=new.fingerprint,
                reason=why)
    return count
