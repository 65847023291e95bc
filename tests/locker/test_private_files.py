"""What the daemon keeps is its user's only: `locker init` makes the data dir 0700 and the store
0600 whatever the umask, `locker run` refuses a data dir open to others, and central's command
key must be the daemon's user's (or root's) and writable by nobody else."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from locker.cli import parser
from locker.domain.commands import load_command_key
from locker.domain.config import load_config
from locker.domain.datadir import check_private_dir
from locker.domain.errors import ConfigError
from tests.support.configs import write_config


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """A umask letting the group write (init and run set their own: it is put back after)."""
    before = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(before)


def locker(*argv: str) -> int:
    """The command as `locker` runs it, without touching this process's logging."""
    args = parser().parse_args(argv)
    args.redact = None
    code: int = args.func(args)
    return code


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_the_data_dir_0700_and_the_store_0600_whatever_the_umask(
        tmp_path: Path) -> None:
    path = write_config(tmp_path)
    assert locker("init", "--config", str(path)) == 0
    config = load_config(path)
    assert mode(config.data_dir) == 0o700
    assert mode(config.database) == 0o600
    assert mode(config.digest_key_file) == mode(config.box_key_file) == 0o600
    assert mode(config.ops_token_file) == 0o600
    for sidecar in config.data_dir.glob("locker.db*"):
        assert mode(sidecar) == 0o600, sidecar


def test_init_closes_a_data_dir_that_was_open(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "data").mkdir(mode=0o755)
    assert locker("init", "--config", str(path)) == 0
    assert mode(tmp_path / "data") == 0o700


def test_run_refuses_a_data_dir_others_can_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    assert locker("init", "--config", str(path)) == 0
    (tmp_path / "data").chmod(0o750)
    with pytest.raises(ConfigError, match=r"data: the data dir is open to other users \(mode"
                                          r" 0o750\); run: chmod 700 .*data$"):
        locker("run", "--config", str(path))
    check_private_dir(tmp_path / "missing")  # none yet: the store makes it 0700


def command_key(path: Path, file_mode: int) -> Path:
    path.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    path.chmod(file_mode)
    return path


@pytest.mark.parametrize("file_mode", [0o644, 0o600, 0o444])
def test_a_command_key_only_its_owner_writes_is_loaded(tmp_path: Path, file_mode: int) -> None:
    load_command_key(command_key(tmp_path / "central.pub", file_mode))


@pytest.mark.parametrize("file_mode", [0o664, 0o646, 0o666])
def test_a_command_key_others_can_write_is_refused_with_the_fix(tmp_path: Path,
                                                                file_mode: int) -> None:
    key = command_key(tmp_path / "central.pub", file_mode)
    with pytest.raises(ConfigError, match=rf"writable by other users \(mode {oct(file_mode)}\);"
                                          rf" run: chmod go-w {key}"):
        load_command_key(key)


def test_a_command_key_of_another_user_is_refused(tmp_path: Path, monkeypatch) -> None:
    key = command_key(tmp_path / "central.pub", 0o644)
    if os.geteuid() == 0:
        os.chown(key, 4321, -1)  # root may give it away
    else:  # the daemon's user is someone else than the file's owner
        monkeypatch.setattr(os, "geteuid", lambda: os.stat(key).st_uid + 1)
    with pytest.raises(ConfigError, match=rf"belongs to user \d+, not to the daemon's user or"
                                          rf" root; run: chown root {key}"):
        load_command_key(key)
