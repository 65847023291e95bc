"""The release tool (a version's wheel, published into a TUF repository with Ed25519 keys made
on first use) and the slot installer (a fresh virtual environment, the wheel unpacked, a check
that it starts, `current` switched atomically)."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from locker.cli import main
from locker.release import ReleaseError, publish
from locker.slots import SlotError, current_slot, install, other_slot, switch, unpack
from tests.support.configs import write_config
from tests.support.paths import ROOT
from tests.support.updates import N1, N


def role(repo: Path, name: str) -> Metadata:  # type: ignore[type-arg]
    return Metadata.from_file(str(repo / "metadata" / f"{name}.json"))


def test_the_first_release_makes_the_keys_and_the_root_and_each_role_is_signed(
        tmp_path: Path, wheels: dict[str, Path]) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    done = publish(repo, keys, wheels[N], N, expires_days=7)
    assert done is not None and done.path == f"locker_controller-{N}-py3-none-any.whl"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert sorted(p.name for p in keys.iterdir()) == [
        "root.pem", "snapshot.pem", "targets.pem", "timestamp.pem"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys.iterdir())
    root: Metadata[Root] = role(repo, "1.root")
    root.verify_delegate("root", root)
    for name in ("targets", "snapshot", "timestamp"):
        root.verify_delegate(name, role(repo, name))  # signed by the key the root names
    targets: Metadata[Targets] = role(repo, "1.targets")
    target = targets.signed.targets[done.path]
    assert target.custom == {"version": N} and target.length == wheels[N].stat().st_size
    assert (repo / "targets" / f"{target.hashes['sha256']}.{done.path}").read_bytes() == \
        wheels[N].read_bytes()
    assert root.signed.consistent_snapshot

    publish(repo, keys, wheels[N1], N1)  # a second release: new versions of each role
    assert role(repo, "2.targets").signed.targets.keys() == {done.path, f"locker_controller-{N1}"
                                                             "-py3-none-any.whl"}
    snapshot: Metadata[Snapshot] = role(repo, "2.snapshot")
    timestamp: Metadata[Timestamp] = role(repo, "timestamp")
    assert snapshot.signed.meta["targets.json"].version == 2
    assert timestamp.signed.snapshot_meta.version == 2 and timestamp.signed.version == 2


def test_a_version_is_never_reused_and_foreign_keys_are_refused(
        tmp_path: Path, wheels: dict[str, Path]) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    publish(repo, keys, wheels[N], N)
    publish(repo, keys, wheels[N], N)  # the same wheel again: harmless
    other = tmp_path / "other" / wheels[N].name
    other.parent.mkdir()
    other.write_bytes(wheels[N].read_bytes() + b"\0")
    with pytest.raises(ReleaseError, match="never reused"):
        publish(repo, keys, other, N)
    publish(tmp_path / "elsewhere", tmp_path / "stranger", wheels[N], N)  # another key set
    with pytest.raises(ReleaseError, match="not the root key of this repository's root"):
        publish(repo, tmp_path / "stranger", wheels[N1], N1)
    with pytest.raises(ReleaseError, match="missing"):
        publish(repo, tmp_path / "nowhere", wheels[N1], N1)
    with pytest.raises(ReleaseError, match="is named"):
        publish(repo, keys, wheels[N], N1)


def test_the_release_command_publishes_and_refreshes(tmp_path: Path, wheels: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert main(["release", "--version", N, "--repo", str(repo), "--keys", str(keys),
                 "--wheel", str(wheels[N]), "--expires-days", "3"]) == 0
    said = capsys.readouterr().out
    assert f"published locker_controller-{N}-py3-none-any.whl: version {N}" in said
    assert str(repo / "metadata" / "1.root.json") in said
    before = json.loads((repo / "metadata" / "timestamp.json").read_text())["signed"]
    assert main(["release", "--repo", str(repo), "--keys", str(keys), "--refresh",
                 "--expires-days", "60"]) == 0
    after = json.loads((repo / "metadata" / "timestamp.json").read_text())["signed"]
    assert after["version"] == before["version"] + 1 and after["expires"] > before["expires"]
    assert main(["release", "--version", "1.2", "--repo", str(repo), "--keys", str(keys),
                 "--wheel", str(wheels[N])]) == 2


def test_a_release_is_this_tree_at_the_version_asked(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels[N1]) as wheel:
        names = wheel.namelist()
        assert f'__version__ = "{N1}"' in wheel.read("locker/__init__.py").decode()
        assert f"Version: {N1}" in wheel.read(
            f"locker_controller-{N1}.dist-info/METADATA").decode()
    assert {"locker/cli.py", "api/updater.py", "hardware/boards.py", "api/static/kiosk.html"
            } <= set(names)
    assert not any(n.startswith("tests/") for n in names)
    assert f'__version__ = "{N1}"' not in (ROOT / "locker" / "__init__.py").read_text()


def test_a_wheel_goes_into_the_slot_not_running_and_current_switches_to_it(
        tmp_path: Path, wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    slots = tmp_path / "slots"
    assert current_slot(slots) is None and other_slot(slots) == "a"
    config = write_config(tmp_path)
    assert main(["install-slot", "--config", str(config), "--slots", str(slots),
                 "--wheel", str(wheels[N]), "--switch"]) == 0
    assert "current -> a (was none)" in capsys.readouterr().out
    assert current_slot(slots) == "a" and other_slot(slots) == "b"
    with pytest.raises(SlotError, match="running slot"):
        install(slots, "a", wheels[N1], N1)
    install(slots, "b", wheels[N1], N1)
    switch(slots, "b")
    assert os.readlink(slots / "current") == "b"
    assert [p.name for p in slots.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(SlotError, match=r"does not start version 9\.9\.9") as error:
        install(slots, "a", wheels[N], "9.9.9")  # it says N: not what was announced
    assert error.value.reason == "broken_install"


def test_a_wheel_that_escapes_its_folder_or_needs_a_missing_package_is_refused(
        tmp_path: Path) -> None:
    evil = tmp_path / f"locker_controller-{N}-py3-none-any.whl"
    with zipfile.ZipFile(evil, "w") as wheel:
        wheel.writestr("../outside.py", "print('no')")
    with pytest.raises(SlotError, match="unsafe path"):
        unpack(evil, tmp_path / "site")
    needy = tmp_path / "needy" / evil.name
    needy.parent.mkdir()
    with zipfile.ZipFile(needy, "w") as wheel:
        wheel.writestr(f"locker_controller-{N}.dist-info/METADATA",
                       "Name: locker-controller\nRequires-Dist: aiohttp>=3.9\n"
                       "Requires-Dist: pytest>=8; extra == \"test\"\n"
                       "Requires-Dist: no-such-package-anywhere>=1\n")
    with pytest.raises(SlotError, match="no-such-package-anywhere") as error:
        install(tmp_path / "slots", "a", needy, N)
    assert error.value.reason == "missing_dependency"
    assert not (tmp_path / "slots" / "a").exists()
