"""Updates the locker must refuse, each reported to central as `update.refused` {version,
reason}, with the running version untouched: metadata signed by a key the root does not name, a
wheel altered after signing, a downgrade, expired metadata, a truncated download, a full disk,
a version the repository does not have, and a repository sent back to older metadata.

The repository is a real TUF repository made by the release tool, served by the reference
central over HTTP; the locker verifies with python-tuf's ngclient."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Timestamp
from tuf.api.serialization.json import JSONSerializer

from locker import __version__
from locker.domain.update import STATE_FILE, wanted
from locker.release import publish
from tests.support.updates import N1, Setup


def signed_by_a_stranger(repo: Path) -> None:
    """timestamp.json re-signed with a key the root does not name (central compromised, the
    release keys not)."""
    path = repo / "metadata" / "timestamp.json"
    timestamp = Metadata[Timestamp].from_file(str(path))
    timestamp.signatures.clear()
    timestamp.sign(CryptoSigner.generate_ed25519())
    timestamp.to_file(str(path), JSONSerializer(compact=False))


def the_wheel(repo: Path) -> Path:
    (wheel,) = (repo / "targets").glob(f"*.locker_controller-{N1}-py3-none-any.whl")
    return wheel


def altered(repo: Path) -> None:
    """One byte of the wheel changed after it was signed (same length)."""
    wheel = the_wheel(repo)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))


def truncated(repo: Path) -> None:
    """The server holds (and serves, with an honest Content-Length) half of the wheel."""
    wheel = the_wheel(repo)
    data = wheel.read_bytes()
    wheel.write_bytes(data[: len(data) // 2])


CASES: dict[str, dict[str, Any]] = {
    "bad_signature": {"setup": {"tamper": signed_by_a_stranger}},
    "bad_hash": {"setup": {"tamper": altered}},
    "truncated": {"setup": {"tamper": truncated}},
    "expired": {"setup": {"expires_days": -1.0}},
    "disk_full": {"setup": {"min_free_mb": 1e9}},  # "free space below what it needs"
    "downgrade": {"version": "0.0.0"},
    "not_newer": {"version": __version__, "reason": "downgrade"},
    "not_published": {"version": "90.9.9"},
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_bad_update_is_refused_and_reported_and_nothing_changes(
        case: str, make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    spec = CASES[case]
    version, reason = spec.get("version", N1), spec.get("reason", case)
    async for s in make_setup(**spec.get("setup", {})):
        before = os.readlink(s.slots / "current")
        await s.announce(version)
        refused = await s.event("update.refused")
        assert refused["payload"]["version"] == version
        assert refused["payload"]["reason"] == reason, refused["payload"]["message"]
        assert refused["payload"]["running"] == __version__
        # the running version is untouched: same slot, nothing installed, no update under way
        assert os.readlink(s.slots / "current") == before == "a"
        assert not (s.slots / "b").exists()
        assert not (s.rig.config.data_dir / STATE_FILE).exists()
        assert wanted(s.rig.locker.store) is None  # refused once, not retried for ever
        assert not s.restarts
        kinds = [e["kind"] for e in await s.events()]
        assert "command.done" in kinds and "update.installed" not in kinds
        assert s.rig.locker.ready


async def test_a_malformed_announcement_is_refused_as_a_command(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    async for s in make_setup():
        await s.announce("1.2")
        failed = await s.event("command.failed")
        assert failed["payload"]["action"] == "update"
        assert "not a version" in failed["payload"]["message"]
        assert wanted(s.rig.locker.store) is None


async def test_a_repository_sent_back_to_older_metadata_is_refused(
        make_setup: Callable[..., AsyncIterator[Setup]]) -> None:
    """TUF's rollback protection: once the locker has seen timestamp version 2, a mirror (or a
    compromised central) serving version 1 again, validly signed, is refused."""
    old: dict[str, bytes] = {}

    def resigned(repo: Path) -> None:
        old["timestamp"] = (repo / "metadata" / "timestamp.json").read_bytes()
        publish(repo, repo.parent / "keys", None, None)  # version 2 of each role

    async for s in make_setup(tamper=resigned):
        await s.announce("90.9.9")  # not there: refused, but the locker now trusts version 2
        assert (await s.event("update.refused"))["payload"]["reason"] == "not_published"
        (s.repo / "metadata" / "timestamp.json").write_bytes(old["timestamp"])
        await s.announce(N1)
        async with asyncio.timeout(15):
            while len(refusals := [e for e in await s.events()
                                   if e["kind"] == "update.refused"]) < 2:
                await asyncio.sleep(0.05)
        assert refusals[1]["payload"]["reason"] == "rollback"
        assert os.readlink(s.slots / "current") == "a" and not (s.slots / "b").exists()
