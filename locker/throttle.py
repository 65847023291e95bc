"""Guessing defence for pickup codes (RFC 4226 section 7.3): token buckets with a growing lockout.

Each scope (one per screen, plus one for the whole locker) holds a bucket of wrong-code tokens that
refills slowly. A wrong code spends a token; an empty bucket locks the scope out, for a time that
doubles with each lockout and resets once the bucket has refilled. The state lives in the store, so
a restart (or a pulled plug) does not hand a guesser a fresh bucket. Pure arithmetic: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from locker.config import ThrottlePolicy

GLOBAL_SCOPE = "locker"
LOGIN_GLOBAL_SCOPE = "login:locker"  # staff logins: their own locker-wide bucket


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated_at: float
    lockouts: int = 0
    locked_until: float = 0.0
    lockout_s: float = 0.0  # the length of the lockout running: a clock set back never adds


@dataclass(frozen=True)
class Limits:
    capacity: int
    refill_per_s: float


def limits_for(scope: str, policy: ThrottlePolicy) -> Limits:
    """The locker-wide buckets' limits, or a screen's (any other scope)."""
    if scope in (GLOBAL_SCOPE, LOGIN_GLOBAL_SCOPE):
        return Limits(policy.global_capacity, policy.global_refill_per_hour / 3600.0)
    return Limits(policy.screen_capacity, policy.screen_refill_per_hour / 3600.0)


def fresh(limits: Limits, now: float) -> Bucket:
    return Bucket(tokens=float(limits.capacity), updated_at=now)


def refilled(bucket: Bucket, limits: Limits, now: float) -> Bucket:
    """The bucket as it stands at `now`; a full bucket forgets earlier lockouts."""
    elapsed = max(0.0, now - bucket.updated_at)
    tokens = min(float(limits.capacity), bucket.tokens + elapsed * limits.refill_per_s)
    lockouts = 0 if tokens >= limits.capacity else bucket.lockouts
    return Bucket(tokens, now, lockouts, bucket.locked_until, bucket.lockout_s)


def wait_s(bucket: Bucket, limits: Limits, now: float) -> float:
    """Seconds before this scope may try a code again (0 when it may now)."""
    current = refilled(bucket, limits, now)
    lockout = max(0.0, current.locked_until - now)
    if current.lockout_s > 0:  # the wall clock set back mid-lockout: never longer than it was
        lockout = min(lockout, current.lockout_s)
    token = 0.0 if current.tokens >= 1.0 else (1.0 - current.tokens) / limits.refill_per_s
    return float(max(lockout, token))


def after_failure(bucket: Bucket, limits: Limits, policy: ThrottlePolicy, now: float) -> Bucket:
    """Spend a token; an emptied bucket locks out for base * 2^(lockouts), capped."""
    current = refilled(bucket, limits, now)
    tokens = max(0.0, current.tokens - 1.0)
    if tokens >= 1.0:
        return Bucket(tokens, now, current.lockouts, current.locked_until, current.lockout_s)
    lockout = min(policy.lockout_max_s, policy.lockout_base_s * (2.0 ** current.lockouts))
    until = max(current.locked_until, now + lockout)
    return Bucket(tokens, now, current.lockouts + 1, until, until - now)


def expected_years_to_guess(policy: ThrottlePolicy, digits: int, active_orders: int) -> float:
    """Mean time for a guesser to hit any active code at the sustained global rate, in years.

    The lockouts only slow a guesser further, so this is a lower bound: codes are uniform in
    10^digits, each guess hits one of `active_orders` codes, at most `global_refill_per_hour`
    wrong guesses per hour are allowed once the burst is spent.
    """
    guesses_needed = float(10) ** digits / max(1, active_orders)
    hours = max(0.0, guesses_needed - policy.global_capacity) / policy.global_refill_per_hour
    return hours / (24 * 365.25)
