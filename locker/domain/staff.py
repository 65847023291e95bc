"""Couriers and technicians log in at the screen with their id and a TOTP code (RFC 6238).

A code is accepted once: the time step it belongs to is stored, and a code of that step or an
earlier one is refused as replayed. Wrong and replayed codes slow logins down like pickup codes
(locker.domain.throttle), in a scope of their own: guessed pickup codes never keep a courier out,
nor guessed logins a customer. A session lives in memory, ends after
the configured idle time, and is lost on restart (the courier logs in again).

Idle means nobody acted: what a staff member does (an action, a touch the screen reports)
keeps the session; what a screen reads by itself (a list, a door's progress) does not, so a
screen left alone ends its session on time and can ask when that will be (`ends_in_s`).
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyotp

from locker.domain import attempts, deadline
from locker.domain.clock import Clock
from locker.domain.codes import create_private_file, read_private_file
from locker.domain.config import LockerConfig, StaffMember
from locker.domain.errors import ConfigError, LockerError
from locker.domain.store import Store
from locker.domain.throttle import LOGIN_SCOPE

STEP_S = 30
CODE_DIGITS = 6


class LoginRefused(LockerError):
    def __init__(self, reason: str, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class NotAllowed(LockerError, PermissionError):
    """No session, an ended one, or a role that may not do this."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Session:
    token: str
    member: StaffMember
    screen: str
    last_seen: float

    @property
    def actor(self) -> str:
        return f"{self.member.role}:{self.member.id}"


def load_secret(path: Path) -> str:
    """A member's base32 TOTP secret, refusing a file that other users can read."""
    text = read_private_file(path, "staff secret")
    if text is None:
        raise ConfigError(f"{path}: no staff secret; create one with `locker staff-secret`")
    try:
        pyotp.TOTP(text).at(0)
    except Exception:  # pyotp raises binascii.Error or ValueError on a bad secret
        raise ConfigError(f"{path}: not a base32 secret") from None
    if len(text) < 26:
        raise ConfigError(f"{path}: secret too short ({len(text)} base32 characters, want 32)")
    return text


def create_secret(path: Path) -> bool:
    """Write a new random TOTP secret with mode 0600; False if one exists (never overwrite)."""
    return create_private_file(path, pyotp.random_base32(32))


def load_staff_secrets(config: LockerConfig) -> dict[str, str]:
    """The secrets of the members whose secret file exists (a member without one cannot log in)."""
    found: dict[str, str] = {}
    for member in config.staff.members:
        path: Path = config.staff_secret_file(member.id)
        if path.exists():
            found[member.id] = load_secret(path)
    return found


class StaffDesk:
    """Logins and sessions."""

    def __init__(self, store: Store, config: LockerConfig, clock: Clock,
                 staff_secrets: dict[str, str]) -> None:
        self.store, self.config, self.clock = store, config, clock
        self.members = {m.id: m for m in config.staff.members}
        self.totp = {sid: pyotp.TOTP(secret, digits=CODE_DIGITS, interval=STEP_S)
                     for sid, secret in staff_secrets.items()}
        self.sessions: dict[str, Session] = {}

    def login(self, staff_id: str, code: str, screen: str) -> Session:
        deadline.check(self.clock)  # a login that waited spends no code
        now = self.clock.now()
        wait = attempts.wait(self.store, LOGIN_SCOPE, now)
        if wait > 0:
            raise LoginRefused("throttled", "wrong codes were typed here recently; try again in"
                               f" {math.ceil(wait)} s", wait)
        member = self.members.get(staff_id)
        totp = self.totp.get(staff_id)
        step = self._matching_step(totp, code, now) if totp is not None else None
        with self.store.transaction(now) as tx:
            last = tx.one("SELECT last_step FROM staff_codes WHERE staff_id = ?", (staff_id,))
            if member is None or step is None:
                reason = "wrong_code"
            elif last is not None and step <= last["last_step"]:
                reason = "replayed"
            else:
                tx.execute("INSERT OR REPLACE INTO staff_codes (staff_id, last_step)"
                           " VALUES (?, ?)", (staff_id, step))
                tx.emit("staff.login", "security", staff=staff_id, role=member.role,
                        screen=screen)
                reason = ""
            if reason:
                # the id typed is not echoed back: it may be a mistyped real one
                tx.emit("security.login_refused", "security", screen=screen, reason=reason)
                attempts.failed(tx, self.config.throttle, LOGIN_SCOPE, now, f"login:{screen}",
                                "staff codes")
        if reason:
            raise LoginRefused(reason, "wrong courier id or code" if reason == "wrong_code"
                               else "this code was used already; wait for the next one",
                               attempts.wait(self.store, LOGIN_SCOPE, now))
        assert member is not None
        session = Session(secrets.token_urlsafe(24), member, screen, self.clock.monotonic())
        self.sessions[session.token] = session
        return session

    def session(self, token: str | None, *, technician: bool = False,
                touch: bool = True) -> Session:
        """The live session behind a token, touched (unless `touch` is False: a read the screen
        made by itself); NotAllowed if none or not allowed."""
        session = self.sessions.get(token or "")
        now = self.clock.monotonic()
        if session is None:
            raise NotAllowed("no_session", "log in first")
        if now - session.last_seen > self.config.staff.idle_timeout_s:
            del self.sessions[session.token]
            raise NotAllowed("session_ended", "the session ended after being idle; log in again")
        if technician and session.member.role != "technician":
            raise NotAllowed("role", "only a technician may do this")
        if touch:
            session.last_seen = now
        return session

    def ends_in_s(self, session: Session) -> float:
        """How long this session has left if nobody acts meanwhile."""
        idle_s = self.clock.monotonic() - session.last_seen
        return max(0.0, self.config.staff.idle_timeout_s - idle_s)

    def logout(self, token: str | None) -> None:
        self.sessions.pop(token or "", None)

    @staticmethod
    def _matching_step(totp: pyotp.TOTP, code: str, now: float) -> int | None:
        """The time step (now, or one either side for clock drift) whose code this is."""
        if len(code) != CODE_DIGITS or not code.isdigit():
            return None
        current = int(now // STEP_S)
        for step in (current - 1, current, current + 1):
            if hmac.compare_digest(totp.at(step * STEP_S), code):
                return step
        return None
