"""Wrong secrets, counted: each scope's slowdown kept in the store, the burst alarm, ops' view.

Shared by pickup codes and staff logins (each its own scope). A code is judged only once its
scope's wait is over; a judged wrong code raises the scope's count and sets the next delay, and is
counted toward the alarm. A code typed too early is not judged and writes nothing, so hammering
the screen never makes anyone wait longer. The arithmetic lives in locker.domain.throttle; this
module reads and writes its state.
"""

from __future__ import annotations

from typing import Any

from locker.domain.config import ThrottlePolicy
from locker.domain.store import Store, Tx
from locker.domain.throttle import (
    SCOPES,
    Bucket,
    Limits,
    Slowdown,
    after_wrong,
    delay_for,
    fresh,
    recent_wrong,
    wait_s,
)

ALARMS = {"pickup": "code_guessing", "login": "login_guessing"}  # the burst alarm of each scope


def load(tx: Tx, scope: str) -> Slowdown:
    """A scope's state as stored (a resting one if it never saw a wrong code)."""
    row = tx.one("SELECT * FROM slowdown WHERE scope = ?", (scope,))
    return Slowdown() if row is None else Slowdown(
        row["wrong"], row["updated_at"], row["next_at"], row["delay_s"])


def save(tx: Tx, scope: str, state: Slowdown) -> None:
    tx.execute("INSERT OR REPLACE INTO slowdown (scope, wrong, updated_at, next_at, delay_s)"
               " VALUES (?, ?, ?, ?, ?)",
               (scope, state.wrong, state.updated_at, state.next_at, state.delay_s))


def wait(store: Store, scope: str, now: float) -> float:
    """Seconds before the scope's next code may be judged."""
    return wait_s(load(store.read(), scope), now)


def failed(tx: Tx, policy: ThrottlePolicy, scope: str, now: float, screen: str,
           what: str) -> None:
    """Count a judged wrong code; raise the scope's alarm on a burst (`what` was guessed)."""
    save(tx, scope, after_wrong(load(tx, scope), policy, now))
    tx.execute("INSERT INTO code_failures (at, screen) VALUES (?, ?)", (now, screen))
    tx.execute("DELETE FROM code_failures WHERE at < ?", (now - policy.alarm_window_s,))
    recent = tx.one("SELECT COUNT(*) AS n FROM code_failures")
    if recent is not None and recent["n"] >= policy.alarm_failures:
        tx.raise_alarm(ALARMS[scope], "locker", f"{recent['n']} wrong secrets in the last"
                       f" {policy.alarm_window_s:.0f} s: someone may be guessing {what}")


def report(tx: Tx, policy: ThrottlePolicy, now: float) -> dict[str, dict[str, Any]]:
    """What ops see of each scope: the wait now, the recent wrong codes, the next delay."""
    view = {}
    for scope in SCOPES:
        state = load(tx, scope)
        wrong = recent_wrong(state, policy, now)
        view[scope] = {"wait_s": round(wait_s(state, now), 1),
                       "recent_wrong_codes": round(wrong, 2),
                       "delay_after_a_wrong_code_s": round(delay_for(wrong + 1, policy), 1)}
    return view


def clear(tx: Tx, policy: ThrottlePolicy, scopes: tuple[str, ...], now: float, by: str,
          reason: str) -> dict[str, dict[str, Any]]:
    """Forget the scopes' wrong codes and waits (an operator's decision: who and why go to
    central), and clear their burst alarms; returns what they were."""
    now_seen = report(tx, policy, now)
    before = {scope: now_seen[scope] for scope in scopes}
    for scope in scopes:
        tx.execute("DELETE FROM slowdown WHERE scope = ?", (scope,))
        tx.clear_alarm(ALARMS[scope], "locker", f"the throttle was cleared by {by}: {reason}")
    tx.emit("security.throttle_cleared", "security", by=by, reason=reason, before=before)
    return before


def load_bucket(tx: Tx, scope: str, limits: Limits, now: float) -> Bucket:
    """A token bucket as stored (a full one if it was never spent)."""
    row = tx.one("SELECT tokens, updated_at FROM throttle WHERE scope = ?", (scope,))
    return fresh(limits, now) if row is None else Bucket(row["tokens"], row["updated_at"])


def save_bucket(tx: Tx, scope: str, bucket: Bucket) -> None:
    tx.execute("INSERT OR REPLACE INTO throttle (scope, tokens, updated_at, lockouts,"
               " locked_until, lockout_s) VALUES (?, ?, ?, 0, 0, 0)",
               (scope, bucket.tokens, bucket.updated_at))
