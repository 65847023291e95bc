"""The guessing throttle's arithmetic (locker.domain.throttle) and its state in the store
(locker.domain.attempts): a guesser is held to the policy's rate whatever they do, and nobody who
comes after them waits more than max_delay_s."""

from __future__ import annotations

import math
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from locker.domain import attempts
from locker.domain.config import ThrottlePolicy, load_config
from locker.domain.errors import ConfigError
from locker.domain.store import Store
from locker.domain.throttle import (
    LOGIN_SCOPE,
    PICKUP_SCOPE,
    Slowdown,
    after_wrong,
    expected_years_to_guess,
    most_judged,
    recent_wrong,
    sustained_per_hour,
    wait_s,
)
from tests.support.configs import SMALL_CONFIG, write_config

DEFAULT = ThrottlePolicy()
CODE_SPACE = 10**10  # 10 random digits (the 11th, a check digit, refuses typos for free)
ACTIVE_ORDERS = 300


def wrong_codes_from_rest(policy: ThrottlePolicy, n: int) -> list[float]:
    """The delays n wrong codes in a row set, each judged as soon as it may be."""
    state, now, delays = Slowdown(), 0.0, []
    for _ in range(n):
        now += wait_s(state, now)
        state = after_wrong(state, policy, now)
        delays.append(state.delay_s)
    return delays


def test_a_customers_own_slips_cost_nothing_and_a_guesser_is_slowed_to_the_cap() -> None:
    unforgiving = ThrottlePolicy(forget_per_hour=0.01)
    assert [round(d) for d in wrong_codes_from_rest(unforgiving, 10)] == [
        0, 0, 1, 2, 4, 8, 16, 30, 30, 30]
    # the default forgets one every 2 minutes, even while the guesser waits: 9 codes in 85 s
    assert [round(d) for d in wrong_codes_from_rest(DEFAULT, 10)] == [
        0, 0, 1, 2, 4, 8, 15, 27, 30, 30]


def test_the_count_falls_back_to_zero_as_the_wrong_codes_age() -> None:
    state = Slowdown()
    for at in range(20):
        state = after_wrong(state, DEFAULT, float(at))
    later = 19 + state.wrong / DEFAULT.forget_per_hour * 3600 + 1
    assert recent_wrong(state, DEFAULT, later) == 0
    assert after_wrong(state, DEFAULT, later).delay_s == 0


def test_the_default_policy_holds_a_guesser_off_for_over_ten_years() -> None:
    years = expected_years_to_guess(DEFAULT, CODE_SPACE, ACTIVE_ORDERS)
    # (10^10 / 300 - 8.9) / (120 + 30 an hour) / 8766 hours a year
    assert years == pytest.approx(25.35, abs=0.01) and years > 10
    assert sustained_per_hour(DEFAULT) == 150
    # a guesser who keeps at it gets one code per max_delay_s: 31.7 years
    assert CODE_SPACE / ACTIVE_ORDERS / (3600 / DEFAULT.max_delay_s) / 8766 > 31.6


def test_a_guesser_at_the_best_pace_for_a_day_stays_under_the_bound() -> None:
    """The bound is not empty: the best steady pace is one code per max_delay_s."""
    state, now, judged = Slowdown(), 0.0, 0
    while now < 86400:
        now += wait_s(state, now)
        state = after_wrong(state, DEFAULT, now)
        judged += 1
    assert 24 * 120 <= judged <= most_judged(DEFAULT, now)


def test_a_clock_set_back_never_makes_the_wait_longer_than_the_delay_set() -> None:
    state = Slowdown()
    for _ in range(10):
        state = after_wrong(state, DEFAULT, 1000.0)
    assert wait_s(state, 1000.0 - 86400) == DEFAULT.max_delay_s
    assert recent_wrong(state, DEFAULT, 1000.0 - 86400) == state.wrong  # nor forgets


@st.composite
def policies(draw: st.DrawFn) -> ThrottlePolicy:
    max_delay = draw(st.floats(1, 120))
    return ThrottlePolicy(free_wrong_codes=draw(st.integers(0, 5)),
                          first_delay_s=draw(st.floats(0.1, max_delay)), max_delay_s=max_delay,
                          forget_per_hour=draw(st.floats(0.5, 600)))


@dataclass
class Rig:
    """A store on disk that a test may close and open again, as a restart or a pulled plug."""

    path: Path
    store: Store

    def restart(self) -> None:
        self.store.close()
        self.store = Store(self.path)


def guess(rig: Rig, policy: ThrottlePolicy, scope: str, now: float, screen: str) -> bool:
    """A wrong code, tried as locker.pickup and locker.staff try one: judged (and counted) only
    once the wait is over; True if it was judged."""
    if attempts.wait(rig.store, scope, now) > 0:
        return False  # too early: nothing judged, nothing written
    with rig.store.transaction(now) as tx:
        attempts.failed(tx, policy, scope, now, screen, "pickup codes")
    return True


# an attempt: come back when the wait is over (the best a guesser can do), or after a gap; under
# a screen id of the guesser's choice; perhaps after pulling the plug
ATTEMPTS = st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 5), st.floats(0, 3600)),
                              st.text("abcxyz0123-", min_size=1, max_size=8), st.booleans()),
                    min_size=1, max_size=120)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), ATTEMPTS, st.floats(0, 120), st.lists(st.floats(0, 10), max_size=30),
       st.floats(0, 30 * 86400))
def test_no_schedule_beats_the_policys_rate_and_a_later_customer_waits_at_most_the_cap(
        policy: ThrottlePolicy, tries: list[tuple[float | None, str, bool]], comes_after: float,
        taps: list[float], set_back: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        rig = Rig(Path(folder) / "locker.db", Store(Path(folder) / "locker.db"))
        now, judged = 1_800_000_000.0, []
        for gap, screen, pulled_plug in tries:
            if pulled_plug:
                rig.restart()
            now += attempts.wait(rig.store, PICKUP_SCOPE, now) if gap is None else gap
            if guess(rig, policy, PICKUP_SCOPE, now, screen):
                judged.append(now)
        # in every stretch between two judged wrong codes, no more than the policy allows
        for i, first in enumerate(judged):
            for j in range(i, len(judged)):
                assert j - i + 1 <= most_judged(policy, judged[j] - first) + 1e-9
        assert attempts.wait(rig.store, LOGIN_SCOPE, now) == 0  # logins are not slowed

        # the guesser stops; a customer comes, taps OK again and again while waiting (each
        # attempt too early: nothing spent), and is judged within max_delay_s
        now += comes_after
        arrived = now
        assert attempts.wait(rig.store, PICKUP_SCOPE, arrived) <= policy.max_delay_s
        assert attempts.wait(rig.store, PICKUP_SCOPE, arrived - set_back) <= policy.max_delay_s
        for tap in [*taps, math.inf]:
            left = attempts.wait(rig.store, PICKUP_SCOPE, now)
            if left == 0:
                break
            now += min(tap, left)
        assert now - arrived <= policy.max_delay_s + 1e-6
        rig.store.close()


def test_wrong_logins_and_wrong_pickup_codes_slow_only_their_own_scope(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "locker.db", Store(tmp_path / "locker.db"))
    for at in range(10):
        guess(rig, DEFAULT, LOGIN_SCOPE, 100.0 + at * 30, "front")
    assert attempts.wait(rig.store, LOGIN_SCOPE, 390.0) > 0
    assert attempts.wait(rig.store, PICKUP_SCOPE, 390.0) == 0
    rig.store.close()


def test_ops_see_each_scope_and_clearing_it_is_an_event_with_who_and_why(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "locker.db", Store(tmp_path / "locker.db"))
    for at in range(12):
        guess(rig, DEFAULT, PICKUP_SCOPE, 100.0 + at * 30, f"s{at}")
    seen = attempts.report(rig.store.read(), DEFAULT, 431.0)
    assert seen[PICKUP_SCOPE]["wait_s"] == 29 and seen[LOGIN_SCOPE]["wait_s"] == 0
    assert seen[PICKUP_SCOPE]["delay_after_a_wrong_code_s"] == 30
    assert rig.store.read().one("SELECT 1 AS open FROM alarms WHERE kind = 'code_guessing'"
                                " AND cleared_at IS NULL")
    with rig.store.transaction(432.0) as tx:
        attempts.clear(tx, DEFAULT, (PICKUP_SCOPE,), 432.0, "ops:ana", "a test of the locker")
    assert attempts.wait(rig.store, PICKUP_SCOPE, 432.0) == 0
    [event] = [e for e in rig.store.events() if e.kind == "security.throttle_cleared"]
    assert event.payload["by"] == "ops:ana" and event.payload["reason"] == "a test of the locker"
    assert event.payload["before"]["pickup"]["wait_s"] == 28
    assert "alarm.code_guessing" in [e.kind for e in rig.store.events()]  # raised, then cleared
    assert not rig.store.read().one("SELECT 1 AS open FROM alarms WHERE kind = 'code_guessing'"
                                    " AND cleared_at IS NULL")
    rig.store.close()


@pytest.mark.parametrize(("old", "new"), [("lockout_max_s", "max_delay_s"),
                                          ("screen_capacity", "nothing"),
                                          ("global_refill_per_hour", "forget_per_hour")])
def test_a_key_of_the_old_lockout_says_what_replaced_it(tmp_path: Path, old: str,
                                                        new: str) -> None:
    text = SMALL_CONFIG.replace("[throttle]\n", f"[throttle]\n{old} = 30\n")
    with pytest.raises(ConfigError, match=f"throttle.{old}: no longer used .*replaced by {new}"):
        load_config(write_config(tmp_path, text))


def test_a_first_delay_over_the_cap_is_refused(tmp_path: Path) -> None:
    text = SMALL_CONFIG.replace("first_delay_s = 10", "first_delay_s = 60")
    with pytest.raises(ConfigError, match="first_delay_s: must not be over max_delay_s"):
        load_config(write_config(tmp_path, text))


def test_locker_throttle_shows_and_clears_it(config_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from locker.cli import main

    config = load_config(config_path)
    rig = Rig(config.database, Store(config.database))
    now = time.time()
    for _ in range(3):
        guess(rig, config.throttle, PICKUP_SCOPE, now, "front")
    rig.store.close()
    assert main(["throttle", "--config", str(config_path)]) == 0
    shown = capsys.readouterr().out  # the real clock: a little of the wait and count is gone
    assert re.search(r"pickup  wait +(9\.\d|10\.0) s, recent wrong codes (2\.9\d|3\.00)", shown)
    assert main(["throttle", "--clear", "--config", str(config_path)]) == 2
    assert "--reason" in capsys.readouterr().err
    assert main(["throttle", "--clear", "--reason", "tested", "--config", str(config_path)]) == 0
    assert "pickup  wait  0.0 s, recent wrong codes 0.00" in capsys.readouterr().out
    store = Store(config.database)
    [event] = [e for e in store.events() if e.kind == "security.throttle_cleared"]
    assert event.payload["by"].startswith("cli:") and event.payload["reason"] == "tested"
    store.close()
