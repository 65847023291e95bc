"""Fixtures every test folder may use: the small locker config in a temporary folder with its
secret (`config_path`, `config`), and the integration rig (`make_rig`, `rig`): the daemon on the
simulated boards over a real pty. Their helpers live in tests/support/ (configs.py, rig.py)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import ClientSession

import hardware.codecs  # noqa: F401  (registers the lock-board protocols load_config reads)
from locker.domain.codes import create_keys
from locker.domain.config import LockerConfig, load_config
from simulator.central import start_central
from tests.support.configs import config_text, write_config
from tests.support.rig import Rig, running_rig
from tests.support.sync import Central, enrolled_rig


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    config = load_config(path)
    create_keys(config)
    return path


@pytest.fixture
def config(config_path: Path) -> LockerConfig:
    return load_config(config_path)


@pytest.fixture
def make_rig(tmp_path: Path) -> Callable[..., AsyncIterator[Rig]]:
    """`make_rig(protocol, auto_close_s, edit, before_start)`: see tests/support/rig.py."""
    return functools.partial(running_rig, tmp_path)


@pytest.fixture
async def rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    async for r in make_rig("kerong"):
        yield r


# the reference central on loopback, and a locker enrolled at it and syncing
@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[Central]:
    async with ClientSession() as session:
        running = await start_central(tmp_path / "central", admin_token="admin-" + "x" * 24)
        handle = Central(tmp_path / "central", running, session)
        yield handle
        await handle.stop()


@pytest.fixture
async def synced(tmp_path: Path, central: Central,
                 make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    """A locker enrolled at central (token, shared secret, command key), syncing with it."""
    async for rig in enrolled_rig(tmp_path, central, make_rig, config_text("kerong")):
        yield rig
