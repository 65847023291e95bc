"""The throttle's arithmetic (the codes themselves: test_pickup_codes.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from locker.config import ThrottlePolicy
from locker.throttle import (
    Bucket,
    Limits,
    after_failure,
    expected_years_to_guess,
    fresh,
    wait_s,
)

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
