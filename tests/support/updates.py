"""Remote updates under test: the versions built from this tree, the [update] table, a TUF
repository publishing some of them, and a handle on a locker (the integration rig) syncing with a
central that serves the repository, as the `make_setup` fixture (tests/update/conftest.py)
gives it."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from locker.release import publish
from simulator.central import RunningCentral
from tests.support.paths import ROOT
from tests.support.rig import Rig

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
