"""Releases: build the wheel of a source tree at a given version and publish it, with signed
metadata, into a TUF repository that central serves to the lockers (`locker release`).

The repository is The Update Framework's (python-tuf's Metadata API): `metadata/` holds root,
targets, snapshot and timestamp, each signed with its own Ed25519 key; `targets/` holds the
wheels. Targets metadata gives each wheel's length, SHA-256 and, in `custom`, its version; every
file carries an expiry. Consistent snapshots: a publish writes new, versioned file names
(`3.targets.json`, `targets/<sha256>.<wheel>`) and replaces only `timestamp.json`, last and
atomically, so a locker reading the repository during a publish never mixes two releases.

The signing keys live in the keys folder (made on first use, mode 0700, one PEM file a role,
mode 0600) on the release machine, never on a locker: a locker holds only the root metadata
(`metadata/1.root.json`, installed as `[update] trusted_root`).

What it must never do: publish a version twice with different contents, or sign with keys that
the repository's root does not name.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from locker.domain.errors import LockerError
from locker.domain.update import parse_version, wheel_name

ROLES = ("root", "targets", "snapshot", "timestamp")
ROOT_EXPIRES_DAYS = 365.0
PRETTY = JSONSerializer(compact=False)


class ReleaseError(LockerError):
    """The release was not built or not published; the repository is as it was."""


def source_tree() -> Path | None:
    """The checkout this code runs from, if it is one (an installed wheel is not)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


# -- building --------------------------------------------------------------------------------


def build_wheel(source: Path, version: str, out: Path, *, isolation: bool = True) -> Path:
    """The wheel of `source` at `version`, in `out`.

    The tree is copied (pyproject.toml, README.md and the packages it declares) into a temporary
    folder, the version is written into pyproject.toml and locker/__init__.py there, and pip
    builds it; the source itself is never touched.
    """
    parse_version(version)
    project = source / "pyproject.toml"
    if not project.is_file():
        raise ReleaseError(f"{source}: no pyproject.toml; --source must be the project's root")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="locker-release-") as folder:
        tree = Path(folder) / "src"
        _copy_tree(source, tree)
        _set_version(tree, version)
        built = Path(folder) / "out"
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                "--disable-pip-version-check", "-w", str(built), str(tree)]
        if not isolation:
            argv.insert(4, "--no-build-isolation")
        result = subprocess.run(argv, capture_output=True, text=True, cwd=folder)
        wheels = list(built.glob("*.whl")) if built.is_dir() else []
        if result.returncode != 0 or len(wheels) != 1:
            raise ReleaseError(f"pip wheel failed ({result.returncode}):"
                               f" {(result.stderr or result.stdout).strip()[-800:]}")
        if wheels[0].name != wheel_name(version):
            raise ReleaseError(f"pip built {wheels[0].name}, not {wheel_name(version)}")
        target = out / wheels[0].name
        shutil.move(wheels[0], target)
    return target


def _copy_tree(source: Path, tree: Path) -> None:
    config = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = (config.get("tool", {}).get("setuptools", {}).get("packages", {})
                .get("find", {}).get("include", ["*"]))
    tree.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        if (source / name).is_file():
            shutil.copy2(source / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for entry in sorted(source.iterdir()):
        if (entry.is_dir() and (entry / "__init__.py").is_file()
                and any(fnmatch.fnmatch(entry.name, p) for p in patterns)):
            shutil.copytree(entry, tree / entry.name, ignore=ignore)


def _set_version(tree: Path, version: str) -> None:
    for path, pattern in ((tree / "pyproject.toml", r'^version = "[^"]*"$'),
                          (tree / "locker" / "__init__.py", r'^__version__ = "[^"]*"$')):
        text = path.read_text(encoding="utf-8")
        key = "version" if path.name == "pyproject.toml" else "__version__"
        changed, count = re.subn(pattern, f'{key} = "{version}"', text, count=1,
                                 flags=re.MULTILINE)
        if count != 1:
            raise ReleaseError(f"{path}: no line `{key} = \"...\"` to set the version in")
        path.write_text(changed, encoding="utf-8")


# -- publishing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    version: str
    path: str  # the target path in the repository
    length: int
    sha256: str
    expires: datetime
    trusted_root: Path  # what a locker must hold as [update] trusted_root


def load_signers(keys: Path, *, create: bool) -> dict[str, CryptoSigner]:
    """One Ed25519 signer a role, from keys/<role>.pem; made when `create` and missing."""
    signers: dict[str, CryptoSigner] = {}
    if create:
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    for role in ROLES:
        path = keys / f"{role}.pem"
        if path.exists():
            try:
                private = load_pem_private_key(path.read_bytes(), password=None)
                signers[role] = CryptoSigner(private)
            except (OSError, ValueError, TypeError) as exc:
                raise ReleaseError(f"{path}: not an unencrypted PEM private key: {exc}") from None
        elif create:
            signer = CryptoSigner.generate_ed25519()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(signer.private_bytes)
            signers[role] = signer
        else:
            raise ReleaseError(f"{path}: missing; this repository was made with other keys")
    return signers


def _in(days: float, now: datetime) -> datetime:
    return (now + timedelta(days=days)).replace(microsecond=0)


def _write(meta: Path, name: str, role: Metadata[Any], *, versioned: bool) -> None:
    """Write atomically; versioned roles also under their versioned name (consistent
    snapshots), which is what lockers fetch; the plain name is for this tool."""
    names = ([f"{role.signed.version}.{name}.json"] if versioned else []) + [f"{name}.json"]
    data = role.to_bytes(PRETTY)
    for file_name in names:
        temporary = meta / f".{file_name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, meta / file_name)


def _check_keys(root: Metadata[Root], signers: dict[str, CryptoSigner], keys: Path) -> None:
    for role, signer in signers.items():
        if signer.public_key.keyid not in root.signed.roles[role].keyids:
            raise ReleaseError(f"{keys / (role + '.pem')}: not the {role} key of this"
                               " repository's root; use the keys it was made with")


def publish(repo: Path, keys: Path, wheel: Path | None, version: str | None, *,
            expires_days: float = 30.0, now: datetime | None = None) -> Published | None:
    """Add `wheel` as `version` (or, with neither, only re-sign with new expiries) and sign
    targets, snapshot and timestamp again. The first publish makes the keys and the root."""
    now = now or datetime.now(UTC)
    meta, targets_dir = repo / "metadata", repo / "targets"
    fresh = not (meta / "root.json").exists()
    signers = load_signers(keys, create=fresh)
    meta.mkdir(parents=True, exist_ok=True)
    targets_dir.mkdir(parents=True, exist_ok=True)
    expires = _in(expires_days, now)
    if fresh:
        root = Metadata(Root(expires=_in(ROOT_EXPIRES_DAYS, now), consistent_snapshot=True))
        for role in ROLES:
            root.signed.add_key(signers[role].public_key, role)
        root.sign(signers["root"])
        _write(meta, "root", root, versioned=True)
        targets = Metadata(Targets(version=1, expires=expires))
        snapshot = Metadata(Snapshot(version=1, expires=expires))
        timestamp = Metadata(Timestamp(version=1, expires=expires))
    else:
        root = Metadata[Root].from_file(str(meta / "root.json"))
        _check_keys(root, signers, keys)
        targets = Metadata[Targets].from_file(str(meta / "targets.json"))
        snapshot = Metadata[Snapshot].from_file(str(meta / "snapshot.json"))
        timestamp = Metadata[Timestamp].from_file(str(meta / "timestamp.json"))
        for metadata in (targets, snapshot, timestamp):
            metadata.signed.version += 1
    published: Published | None = None
    if wheel is not None and version is not None:
        published = _add_target(targets.signed, targets_dir, wheel, version, expires,
                                meta / "1.root.json")
    elif (wheel is None) != (version is None):
        raise ReleaseError("give both a wheel and its version, or neither (re-sign only)")
    for metadata in (targets, snapshot, timestamp):
        metadata.signed.expires = expires
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
    targets.sign(signers["targets"])
    snapshot.sign(signers["snapshot"])
    timestamp.sign(signers["timestamp"])
    _write(meta, "targets", targets, versioned=True)
    _write(meta, "snapshot", snapshot, versioned=True)
    _write(meta, "timestamp", timestamp, versioned=False)  # last: it makes the release visible
    return published


def _add_target(targets: Targets, folder: Path, wheel: Path, version: str, expires: datetime,
                root: Path) -> Published:
    parse_version(version)
    name = wheel_name(version)
    if wheel.name != name:
        raise ReleaseError(f"{wheel}: a wheel of version {version} is named {name}")
    info = TargetFile.from_file(name, str(wheel), ["sha256"])
    info.unrecognized_fields["custom"] = {"version": version}
    known = targets.targets.get(name)
    if known is not None and known.hashes != info.hashes:
        raise ReleaseError(f"version {version} is published already, with other contents;"
                           " a version is never reused: release a higher one")
    digest = info.hashes["sha256"]
    stored = folder / f"{digest}.{name}"
    if not stored.exists():
        temporary = folder / f".{name}.tmp"
        shutil.copyfile(wheel, temporary)
        if hashlib.sha256(temporary.read_bytes()).hexdigest() != digest:
            raise ReleaseError(f"{wheel} changed while it was being published")
        os.replace(temporary, stored)
    targets.targets[name] = info
    return Published(version, name, info.length, digest, expires, root)
