"""Remote updates: wheels built once per session by the release tool, a TUF repository per test,
the reference central serving it over real HTTP, and a locker (in this process, on the simulated
boards) that central announces versions to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout

from api.updater import UPDATER
from locker.demo import enrol
from locker.domain.config import load_config
from locker.release import build_wheel
from simulator.central import start_central
from tests.support.configs import config_text
from tests.support.paths import ROOT
from tests.support.rig import Rig
from tests.support.sync import SYNC
from tests.support.updates import (
    ADMIN,
    N1,
    N2,
    NEVER_SYNCS,
    UPDATE,
    N,
    Setup,
    copy_source,
    make_repository,
)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """N and N+1 of this tree, and an N+2 that never syncs with central (built once)."""
    out = tmp_path_factory.mktemp("wheels")
    built = {version: build_wheel(ROOT, version, out, isolation=False) for version in (N, N1)}
    broken = copy_source(tmp_path_factory.mktemp("broken") / "src")
    central = broken / "api" / "central.py"
    text = central.read_text()
    assert text.count(NEVER_SYNCS[0]) == 1, "api/central.py changed: update NEVER_SYNCS"
    central.write_text(text.replace(*NEVER_SYNCS))
    built[N2] = build_wheel(broken, N2, out, isolation=False)
    return built


@pytest.fixture
def make_setup(tmp_path: Path, make_rig: Callable[..., AsyncIterator[Rig]],
               wheels: dict[str, Path]) -> Callable[..., AsyncIterator[Setup]]:
    """A locker syncing with a central that serves a repository holding N+1; the locker runs
    from slot a (a placeholder: only the link matters until something is installed)."""

    async def make(*, tamper: Callable[[Path], None] = lambda repo: None,
                   expires_days: float = 30.0, min_free_mb: float = 50.0,
                   deadline_s: float = 20.0,
                   before_start: Callable[[Path], None] = lambda data_dir: None,
                   ) -> AsyncIterator[Setup]:
        repo = make_repository(tmp_path, wheels, N1, expires_days=expires_days)
        tamper(repo)
        central = await start_central(tmp_path / "central", admin_token=ADMIN,
                                      updates_dir=repo)
        text = (config_text("kerong") + SYNC.format(url=central.api_url)
                + UPDATE.format(deadline=deadline_s, min_free_mb=min_free_mb))
        path = tmp_path / "enrol.toml"
        path.write_text(text)
        config = load_config(path)
        (tmp_path / "slots" / "a").mkdir(parents=True)
        (tmp_path / "slots" / "current").symlink_to("a")
        restarts: list[str] = []
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            await enrol(session, central, config)
            before_start(config.data_dir)
            try:
                async for rig in make_rig("kerong", edit=lambda _: text):
                    agent = rig.http.app[UPDATER]
                    agent.restart = lambda: restarts.append("restart")
                    yield Setup(tmp_path, rig, central, session, repo, restarts)
            finally:
                await central.stop()

    return make
