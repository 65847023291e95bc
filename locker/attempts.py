"""Wrong secrets, counted: throttle buckets kept in the store, and the burst alarm.

Shared by pickup codes and staff logins. Each check names its scopes (one per screen, one for the
whole locker); a failure spends a token in each and is counted toward the alarm. The arithmetic
lives in locker.throttle; this module only reads and writes its state.
"""

from __future__ import annotations

from collections.abc import Sequence

from locker.config import ThrottlePolicy
from locker.store import Store, Tx
from locker.throttle import Bucket, Limits, after_failure, fresh, limits_for, wait_s


def load(tx: Tx, scope: str, limits: Limits, now: float) -> Bucket:
    """A scope's bucket as stored (a fresh one if it was never spent)."""
    row = tx.one("SELECT * FROM throttle WHERE scope = ?", (scope,))
    return fresh(limits, now) if row is None else Bucket(
        row["tokens"], row["updated_at"], row["lockouts"], row["locked_until"], row["lockout_s"])


def save(tx: Tx, scope: str, bucket: Bucket) -> None:
    tx.execute("INSERT OR REPLACE INTO throttle (scope, tokens, updated_at, lockouts,"
               " locked_until, lockout_s) VALUES (?, ?, ?, ?, ?, ?)",
               (scope, bucket.tokens, bucket.updated_at, bucket.lockouts, bucket.locked_until,
                bucket.lockout_s))


def bucket(tx: Tx, policy: ThrottlePolicy, scope: str, now: float) -> tuple[Bucket, Limits]:
    """A scope's bucket as stored (a fresh one if it never failed) and its limits."""
    limits = limits_for(scope, policy)
    return load(tx, scope, limits, now), limits


def wait(store: Store, policy: ThrottlePolicy, scopes: Sequence[str], now: float) -> float:
    """Seconds before every one of these scopes may try again."""
    read = store.read()
    return max(wait_s(*bucket(read, policy, scope, now), now) for scope in scopes)


def failed(tx: Tx, policy: ThrottlePolicy, scopes: Sequence[str], now: float, screen: str,
           alarm: tuple[str, str]) -> None:
    """Spend a token in each scope; raise `alarm` (kind, what) on a burst of failures."""
    for scope in scopes:
        stored, limits = bucket(tx, policy, scope, now)
        save(tx, scope, after_failure(stored, limits, policy, now))
    tx.execute("INSERT INTO code_failures (at, screen) VALUES (?, ?)", (now, screen))
    tx.execute("DELETE FROM code_failures WHERE at < ?", (now - policy.alarm_window_s,))
    recent = tx.one("SELECT COUNT(*) AS n FROM code_failures")
    if recent is not None and recent["n"] >= policy.alarm_failures:
        kind, what = alarm
        tx.raise_alarm(kind, "locker", f"{recent['n']} wrong secrets in the last"
                       f" {policy.alarm_window_s:.0f} s: someone may be guessing {what}")
