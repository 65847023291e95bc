"""Remote updates: wheels built once per session by the release tool, a TUF repository per test,
the reference central serving it over real HTTP, and a locker (in this process, on the simulated
boards) that central announces versions to."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout

from api.demo import enrol
from api.release import build_wheel, publish
from api.updater import UPDATER
from locker.config import load_config
from simulator.central import RunningCentral, start_central
from tests.integration.conftest import Rig, config_text, make_rig  # noqa: F401 (a fixture)
from tests.integration.test_central_sync import SYNC

ROOT = Path(__file__).resolve().parents[2]
# far above any version this checkout will carry, so that each is newer than the running one
N, N1, N2 = "90.0.0", "90.0.1", "90.0.2"
ADMIN = "admin-" + "u" * 24
UPDATE = """
[update]
slots_dir = "slots"
trusted_root = "repo/metadata/1.root.json"
health_deadline_s = {deadline}
customer_quiet_s = 0.5
retry_s = 0.5
min_free_mb = {min_free_mb}
"""
# N2 is built from a copy of the tree whose central link calls a port nobody listens on: it
# starts, serves, and never gets an answer from central, so it never proves itself
NEVER_SYNCS = ('self.base = f"{self.config.url}/lockers/{locker.config.locker_id}"',
               'self.base = "http://127.0.0.1:9/never"')


def copy_source(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for package in ("locker", "api", "hardware", "simulator"):
        shutil.copytree(ROOT / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return target


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


def make_repository(folder: Path, wheels: dict[str, Path], *versions: str,
                    expires_days: float = 30.0) -> Path:
    repo = folder / "repo"
    for version in versions:
        publish(repo, folder / "keys", wheels[version], version, expires_days=expires_days)
    return repo


@dataclass
class Setup:
    folder: Path
    rig: Rig
    central: RunningCentral
    session: ClientSession
    repo: Path
    restarts: list[str]

    @property
    def admin(self) -> dict[str, str]:
        return {"X-Admin-Token": self.central.admin_token}

    async def announce(self, version: str, **window: float) -> None:
        async with self.session.post(
                f"{self.central.url}/admin/lockers/test-locker/commands", headers=self.admin,
                json={"action": "update", "args": {"version": version, **window}}) as answer:
            assert answer.status == 201, await answer.text()

    async def events(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.central.url}/admin/lockers/test-locker/events",
                                    headers=self.admin) as answer:
            return list((await answer.json())["events"])

    async def event(self, kind: str, timeout_s: float = 15.0) -> dict[str, Any]:
        """The first event of this kind central received, waiting for it."""
        async with asyncio.timeout(timeout_s):
            while True:
                found = [e for e in await self.events() if e["kind"] == kind]
                if found:
                    return found[0]
                await asyncio.sleep(0.05)

    @property
    def slots(self) -> Path:
        return self.folder / "slots"


@pytest.fixture
def make_setup(tmp_path: Path, make_rig: Callable[..., AsyncIterator[Rig]],  # noqa: F811
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
