"""Pickup codes: RFC 4226 HOTP, keyed digests, formats; the throttle's arithmetic."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locker.codes import BadCodeFormat, PickupCodes, create_secret, load_secret
from locker.config import ThrottlePolicy
from locker.errors import ConfigError
from locker.throttle import (
    Bucket,
    Limits,
    after_failure,
    expected_years_to_guess,
    fresh,
    wait_s,
)

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


POLICY = ThrottlePolicy(lockout_base_s=30, lockout_max_s=600)
LIMITS = Limits(capacity=3, refill_per_s=30 / 3600)


def test_an_empty_bucket_locks_out_for_longer_each_time() -> None:
    bucket = fresh(LIMITS, 0.0)
    now = 0.0
    waits = []
    for _ in range(6):
        while wait_s(bucket, LIMITS, now) > 0:
            now += wait_s(bucket, LIMITS, now)
        bucket = after_failure(bucket, LIMITS, POLICY, now)
        waits.append(bucket.locked_until - now if bucket.locked_until > now else 0)
    lockouts = [w for w in waits if w]
    assert lockouts == sorted(lockouts) and lockouts[0] == 30 and lockouts[-1] > 30


def test_a_full_bucket_forgets_its_lockouts() -> None:
    bucket = Bucket(tokens=0.0, updated_at=0.0, lockouts=4, locked_until=10.0)
    later = 3 / LIMITS.refill_per_s + 1
    assert after_failure(bucket, LIMITS, POLICY, later).lockouts == 0


@given(st.lists(st.floats(min_value=0, max_value=10_000), min_size=1, max_size=50))
def test_no_schedule_of_failures_beats_the_refill_rate(gaps: list[float]) -> None:
    """However a guesser times their tries, allowed failures <= capacity + rate * elapsed."""
    bucket, now, allowed = fresh(LIMITS, 0.0), 0.0, 0
    for gap in gaps:
        now += gap
        if wait_s(bucket, LIMITS, now) > 0:
            continue
        bucket = after_failure(bucket, LIMITS, POLICY, now)
        allowed += 1
    assert allowed <= LIMITS.capacity + LIMITS.refill_per_s * now + 1e-9


def test_the_default_policy_holds_a_guesser_off_for_over_a_year() -> None:
    assert expected_years_to_guess(ThrottlePolicy(), digits=8, active_orders=300) > 1.0
