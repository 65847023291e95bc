"""Fixtures every test folder may use: the small locker config in a temporary folder with its
secret (`config_path`, `config`), and the integration rig (`make_rig`, `rig`): the daemon on the
simulated boards over a real pty. Their helpers live in tests/support/ (configs.py, rig.py)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from locker.codes import create_keys
from locker.config import LockerConfig, load_config
from tests.support.configs import write_config
from tests.support.rig import Rig, running_rig


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
