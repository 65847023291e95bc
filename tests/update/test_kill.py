"""SIGKILL in the middle of an update (a power cut): right before `current` is switched (the new
slot installed, the store copied, the state file written) or right after it. Either way the next
start, boot guard first, comes up on a good slot and ends on the new version, proven good.

The daemon killed is this checkout's (`locker run`), with the slot switch wrapped so that it
kills itself at the chosen instant; what runs after is what systemd would start."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from locker import __version__
from locker.domain.update import STATE_FILE, read_state
from tests.support.paths import ROOT
from tests.support.update_site import Supervisor, site
from tests.support.updates import N1, N

KILLER = """
import os, signal, sys
import locker.slots as slots
point, real = sys.argv[1], slots.switch
def switch(*args):
    if point == "before_switch":
        os.kill(os.getpid(), signal.SIGKILL)
    real(*args)
    if point == "after_switch":
        os.kill(os.getpid(), signal.SIGKILL)
slots.switch = switch
from locker.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("point", ["before_switch", "after_switch"])
async def test_killed_mid_update_the_locker_starts_on_a_good_slot(
        point: str, tmp_path: Path, wheels: dict[str, Path]) -> None:
    async with site(tmp_path, wheels, deadline_s=20.0) as s:
        s.publish(N1)
        with open(tmp_path / "killed.log", "wb") as log:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", KILLER, point, "run", "--config", str(s.path),
                "--serial-port", s.serial, cwd=ROOT, stdout=log, stderr=log,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                await s.in_service(__version__)
                await s.announce(N1)
                assert await asyncio.wait_for(child.wait(), 30) == -9
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
        state = read_state(s.config.data_dir / STATE_FILE)
        assert state is not None and state["trying"] == N1
        assert os.readlink(s.slots / "current") == ("a" if point == "before_switch" else "b")

        supervisor = Supervisor(tmp_path, s.path, s.serial)
        supervisor.start()
        try:
            await s.in_service(N1, timeout_s=40)
            succeeded = await s.event("update.succeeded", version=N1)
            # cut before the switch: N started again from slot a and did the update itself
            assert succeeded["payload"]["from_version"] == (
                N if point == "before_switch" else __version__)
            assert os.readlink(s.slots / "current") == "b"
            assert not (s.config.data_dir / STATE_FILE).exists()
            assert "update.rolled_back" not in [e["kind"] for e in await s.events()]
        finally:
            await supervisor.stop()
