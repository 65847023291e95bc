"""Fixtures for the simulator's tests: small configs for each protocol and a pty client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from locker.domain.config import LockerConfig, load_config
from tests.support.pty_line import Board, MakeConfig, PtyClient, write_boards_config


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    def make(protocol: str, boards: list[Board], **kwargs: int) -> LockerConfig:
        return load_config(write_boards_config(tmp_path, protocol, boards, **kwargs))

    return make


@pytest.fixture
def kerong(make_config: MakeConfig) -> LockerConfig:
    return make_config("kerong", [(0, 16, "bit_set"), (1, 16, "bit_set")], baud=19200)


@pytest.fixture
def winnsen(make_config: MakeConfig) -> LockerConfig:
    return make_config("winnsen", [(1, 16, "bit_set")])


@pytest.fixture
def generic(make_config: MakeConfig) -> LockerConfig:
    return make_config("generic", [(1, 24, "bit_set"), (2, 8, "bit_clear")])


@pytest.fixture
def pty_client() -> Iterator[Callable[[str], PtyClient]]:
    clients: list[PtyClient] = []

    def open_client(port: str) -> PtyClient:
        client = PtyClient(port)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()
