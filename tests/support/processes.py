"""The files of a locker a test runs as a child process (simulator.processes.Daemon): its
config with its keys, ops token and staff secrets, and its store as the order system writes it."""

from __future__ import annotations

import time
from pathlib import Path

from locker.domain.codes import create_keys, create_private_file
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import sync_compartments
from locker.domain.staff import create_secret
from locker.domain.store import Store
from tests.support.rig import OPS_TOKEN
from tests.support.sync import LOG_EVERY_EVENT


def prepare(path: Path, text: str) -> tuple[LockerConfig, Store]:
    """A locker's config at `path` with its keys, ops token and staff secrets, and the store the
    "order system" writes from another process, with a trigger that logs every event ever
    committed (so a test sees what a killed daemon committed, even what it deleted since)."""
    path.write_text(text)
    config = load_config(path)
    create_keys(config)
    create_private_file(config.ops_token_file, OPS_TOKEN)
    for member in config.staff.members:
        create_secret(config.staff_secret_file(member.id))
    store = Store(config.database)
    sync_compartments(store, config, time.time())
    for statement in LOG_EVERY_EVENT:
        store.db.execute(statement)
    return config, store
