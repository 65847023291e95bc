"""Guessing defence: wrong codes slow a scope down; they never lock anyone out.

A scope (pickup codes, staff logins) keeps a leaky count of its recent wrong codes. Each wrong code
sets a delay before the scope's next code may be judged: none for the first `free_wrong_codes`
(a customer's own slips), then `first_delay_s`, doubling with each further one, up to
`max_delay_s`. A guesser who keeps going gets one judgement per `max_delay_s`; a customer who comes
after the guesser stopped waits at most `max_delay_s`, and a right code opens as soon as the delay
has passed. The count leaks `forget_per_hour`, so the delay falls back to zero; it stops growing
where the delay reaches its cap (more would only make honest slips cost longer after an attack).

There is no per-screen scope: the screen is named by the client, so a guesser would name a new
one for each guess, and a screen's own count would hold nobody back that the locker's does not.

The state lives in the store, so a restart or a pulled plug gives a guesser nothing. The delay set
by the last wrong code is stored with it, so a wall clock set back never makes a wait longer than
that delay. Pure arithmetic: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from locker.domain.config import ThrottlePolicy

PICKUP_SCOPE = "pickup"
LOGIN_SCOPE = "login"  # staff logins: their own count, so neither can slow the other
SCOPES = (PICKUP_SCOPE, LOGIN_SCOPE)
HOURS_PER_YEAR = 24 * 365.25


@dataclass(frozen=True)
class Slowdown:
    """One scope's state, as stored."""

    wrong: float = 0.0  # recent wrong codes, leaking at policy.forget_per_hour
    updated_at: float = 0.0
    next_at: float = 0.0  # no code of the scope is judged before this wall time
    delay_s: float = 0.0  # the delay the last wrong code set: bounds the wait on a clock set back


def saturation(policy: ThrottlePolicy) -> float:
    """The count of recent wrong codes at which the delay reaches `max_delay_s`."""
    return policy.free_wrong_codes + 1 + math.log2(policy.max_delay_s / policy.first_delay_s)


def recent_wrong(state: Slowdown, policy: ThrottlePolicy, now: float) -> float:
    """The count as it stands at `now`; a clock set back forgets nothing."""
    elapsed = max(0.0, now - state.updated_at)
    return max(0.0, state.wrong - elapsed * policy.forget_per_hour / 3600.0)


def delay_for(wrong: float, policy: ThrottlePolicy) -> float:
    """The delay set by a wrong code that brings the count to `wrong`."""
    over = wrong - policy.free_wrong_codes
    if over <= 0:
        return 0.0
    if wrong >= saturation(policy):
        return policy.max_delay_s
    return min(policy.max_delay_s, policy.first_delay_s * math.pow(2.0, over - 1))


def wait_s(state: Slowdown, now: float) -> float:
    """Seconds before the scope's next code may be judged (0: now); never over the delay set."""
    return max(0.0, min(state.next_at - now, state.delay_s))


def after_wrong(state: Slowdown, policy: ThrottlePolicy, now: float) -> Slowdown:
    """Count a judged wrong code and set the delay before the next judgement."""
    wrong = min(saturation(policy), recent_wrong(state, policy, now) + 1.0)
    delay = delay_for(wrong, policy)
    return Slowdown(wrong, now, now + delay, delay)


def sustained_per_hour(policy: ThrottlePolicy) -> float:
    """The most wrong codes an hour a guesser can have judged over a long time, however timed.

    A wrong code judged at the saturated count is followed by `max_delay_s` before any other
    judgement, so those come at most 3600 / max_delay_s an hour. Each one judged below it raises
    the count (kept between 0 and the saturation) by one, and only the leak lowers it, so those
    come at most `forget_per_hour`, beyond a first `burst`.
    """
    return 3600.0 / policy.max_delay_s + policy.forget_per_hour


def burst(policy: ThrottlePolicy) -> float:
    """Wrong codes judged beyond the sustained rate, once (from a count of zero, say)."""
    return saturation(policy) + 1.0


def most_judged(policy: ThrottlePolicy, seconds: float) -> float:
    """The bound on wrong codes judged in any stretch of `seconds`, whatever the schedule."""
    return burst(policy) + sustained_per_hour(policy) * seconds / 3600.0


def expected_years_to_guess(policy: ThrottlePolicy, code_space: float,
                            active_orders: int) -> float:
    """Mean time for a guesser to hit any of `active_orders` codes among `code_space`, in years.

    Each guess hits with probability active_orders / code_space, so it takes code_space /
    active_orders guesses on average; after the burst they come at the sustained rate at most.
    """
    guesses = code_space / max(1, active_orders)
    return max(0.0, guesses - burst(policy)) / sustained_per_hour(policy) / HOURS_PER_YEAR


@dataclass(frozen=True)
class Bucket:
    """A plain token bucket (central's remote openings), kept in the store's `throttle` table."""

    tokens: float
    updated_at: float


@dataclass(frozen=True)
class Limits:
    capacity: int
    refill_per_s: float


def fresh(limits: Limits, now: float) -> Bucket:
    return Bucket(tokens=float(limits.capacity), updated_at=now)


def refilled(bucket: Bucket, limits: Limits, now: float) -> Bucket:
    """The bucket as it stands at `now`."""
    elapsed = max(0.0, now - bucket.updated_at)
    return Bucket(min(float(limits.capacity), bucket.tokens + elapsed * limits.refill_per_s), now)
