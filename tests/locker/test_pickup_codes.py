"""Pickup codes: random with a Damm check digit, keyed digests that rotate, sealed hand-over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.public import PrivateKey

from locker.domain.codes import (
    CODE_DIGITS,
    BadCodeFormat,
    CheckDigitWrong,
    DigestKey,
    PickupCodes,
    SealedCodeInvalid,
    box_public_key,
    check_digit,
    create_code_keys,
    grouped,
    load_digest_key,
    new_code,
    normalise,
    seal,
)
from locker.domain.errors import ConfigError

BODIES = st.integers(0, 10**10 - 1).map(lambda n: f"{n:010d}")


def test_the_check_digit_is_damms() -> None:
    assert check_digit("572") == "4"  # the algorithm's published example
    assert check_digit("0" * 10) == "0"
    with pytest.raises(CheckDigitWrong):
        normalise("57200000001")


@given(BODIES, st.integers(0, CODE_DIGITS - 1), st.integers(1, 9))
def test_every_single_digit_error_is_caught(body: str, where: int, shift: int) -> None:
    code = body + check_digit(body)
    typo = code[:where] + str((int(code[where]) + shift) % 10) + code[where + 1:]
    with pytest.raises(CheckDigitWrong, match="check the code"):
        normalise(typo)


@given(BODIES, st.integers(0, CODE_DIGITS - 2))
def test_every_swap_of_neighbours_is_caught(body: str, where: int) -> None:
    code = body + check_digit(body)
    if code[where] == code[where + 1]:
        return  # swapping equal digits changes nothing
    swapped = code[:where] + code[where + 1] + code[where] + code[where + 2:]
    with pytest.raises(CheckDigitWrong):
        normalise(swapped)


def test_new_codes_are_valid_random_and_shown_in_groups() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000  # 10^10 of them: a repeat here would mean a broken generator
    assert all(normalise(code) == code for code in codes)
    # every position takes every digit: nothing fixed that a guesser could lean on
    assert all({code[i] for code in codes} == set("0123456789") for i in range(CODE_DIGITS))
    code = new_code()
    assert grouped(code).replace(" ", "") == code and len(grouped(code).split()) == 3


@pytest.mark.parametrize("typed", ["1234567890", "123456789012", "abcdefghijk", "",
                                   "１２３４５６７８９０６", "1234567890x6"])
def test_malformed_codes_are_refused_before_lookup(typed: str) -> None:
    with pytest.raises(BadCodeFormat):
        normalise(typed)


def test_a_scanned_code_with_separators_is_accepted() -> None:
    assert normalise(" 123-4567 8906\r\n") == "12345678906"


@given(BODIES)
def test_a_rotated_key_gives_the_digest_the_new_key_would(body: str) -> None:
    code = body + check_digit(body)
    old, new = DigestKey.generate(), DigestKey.generate()
    assert old.digest(code) != new.digest(code)
    assert old.rekeyed(old.digest(code), new) == new.digest(code)


def test_digests_differ_per_code_and_hide_it() -> None:
    key = DigestKey.generate()
    assert key.digest("12345678906") != key.digest("00000000000")
    assert key.digest("12345678906") == key.digest("12345678906")
    assert "12345678906" not in key.digest("12345678906")
    assert DigestKey.parse(key.text, "here") == key


def test_a_sealed_code_opens_only_at_its_own_locker() -> None:
    mine, theirs = PrivateKey.generate(), PrivateKey.generate()
    codes = PickupCodes(DigestKey.generate(), mine)
    code = new_code()
    sealed = seal(box_public_key(mine), code)
    assert code not in sealed and codes.open_sealed(sealed) == code
    for bad in (seal(box_public_key(theirs), code), "not base64!", sealed[:-8] + "AAAAAAA=",
                seal(box_public_key(mine), "1234")):
        with pytest.raises(SealedCodeInvalid):
            codes.open_sealed(bad)


def test_the_keys_are_created_private_and_never_overwritten(tmp_path: Path) -> None:
    digest_file, box_file = tmp_path / "code-digest.key", tmp_path / "code-box.key"
    assert create_code_keys(digest_file, box_file)
    assert os.stat(digest_file).st_mode & 0o777 == os.stat(box_file).st_mode & 0o777 == 0o600
    first = load_digest_key(digest_file)
    assert not create_code_keys(digest_file, box_file)
    assert load_digest_key(digest_file) == first
    os.chmod(digest_file, 0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        load_digest_key(digest_file)
    with pytest.raises(ConfigError, match="locker init"):
        load_digest_key(tmp_path / "none")
    (tmp_path / "bad").write_text("zz" * 32)
    os.chmod(tmp_path / "bad", 0o600)
    with pytest.raises(ConfigError, match="not a code digest key"):
        load_digest_key(tmp_path / "bad")
