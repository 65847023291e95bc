"""Pickup codes: RFC 4226 HOTP, keyed digests, formats (the throttle: test_throttle.py)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from locker.codes import BadCodeFormat, PickupCodes, create_secret, load_secret
from locker.errors import ConfigError

RFC4226_SECRET = base64.b32encode(b"12345678901234567890").decode()


def test_codes_follow_rfc4226_test_vectors() -> None:
    codes = PickupCodes(RFC4226_SECRET, digits=6)
    # RFC 4226 appendix D
    assert [codes.code_for(i) for i in range(3)] == ["755224", "287082", "359152"]


def test_eight_digit_codes_and_digests_differ_per_code() -> None:
    codes = PickupCodes(RFC4226_SECRET, digits=8)
    assert len(codes.code_for(7)) == 8
    assert codes.digest("12345678") != codes.digest("12345679")
    assert "12345678" not in codes.digest("12345678")


@pytest.mark.parametrize("typed", ["1234567", "123456789", "abcdefgh", "", "１２３４５６７８"])
def test_malformed_codes_are_refused_before_lookup(typed: str) -> None:
    with pytest.raises(BadCodeFormat, match="8 digits"):
        PickupCodes(RFC4226_SECRET).normalise(typed)


def test_a_scanned_code_with_separators_is_accepted() -> None:
    assert PickupCodes(RFC4226_SECRET).normalise(" 1234-5678\r\n") == "12345678"


def test_the_secret_is_created_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    assert create_secret(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    first = load_secret(path)
    assert not create_secret(path)
    assert load_secret(path) == first
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        load_secret(path)


def test_a_missing_secret_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="locker init"):
        load_secret(tmp_path / "none")
