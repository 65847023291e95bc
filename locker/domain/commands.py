"""Central's remote commands: verified, obeyed at most once, and reported either way.

A command moves hardware or changes what a customer can do, so it must be central's own (an
Ed25519 signature over the exact body text), meant for this locker, fresh, and new (its nonce is
remembered until it expires). Openings are rate limited on top of that: a stolen signing key or a
compromised central still cannot empty a locker (in 2020 an attacker opened 2,732 lockers of one
Moscow network remotely). There is deliberately no command that opens every door.

Each command is accepted in one transaction (nonce, rate, cursor), then carried out by the same
use cases couriers and technicians go through, with `central` as the actor. A crash between the
two leaves it undone rather than done twice: for a door, at most once is the safe side.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from locker.domain import attempts
from locker.domain.clock import Clock
from locker.domain.config import LockerConfig
from locker.domain.errors import ConfigError, LockerError
from locker.domain.lifecycle.order import cancel, extend_window
from locker.domain.model import ZONES, Zone
from locker.domain.store import Store, Tx
from locker.domain.sync import set_cursor
from locker.domain.throttle import Limits, refilled
from locker.domain.update import Wanted, check_window, parse_version, want

log = logging.getLogger("locker.commands")
ACTOR = "central"
MAX_TTL_S = 86400.0  # a command valid longer than a day would make the nonce table unbounded
CLOCK_SKEW_S = 60.0
REMOTE_OPEN_SCOPE = "remote:open"
ISSUED_MARK = "commands.issued_mark"  # the newest issued_at of a command accepted (datadir too)
ARGS: dict[str, tuple[set[str], frozenset[str]]] = {  # action: (required args, optional args)
    "open_compartment": ({"compartment", "reason"}, frozenset()),
    "set_in_service": ({"compartment", "in_service", "reason"}, frozenset()),
    "cancel_order": ({"order", "reason"}, frozenset()),
    "extend_window": ({"order", "hours"}, frozenset({"reason"})),
    "set_setpoint": ({"zone", "celsius"}, frozenset()),
    "update": ({"version"}, frozenset({"not_before", "not_after"})),
}


class CommandRefused(LockerError):
    """Not obeyed: `reason` is one word for central's dashboards, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Command:
    nonce: str
    issued_at: float
    expires_at: float
    action: str
    args: dict[str, Any]


def load_command_key(path: Any) -> Ed25519PublicKey:
    """Central's public key (PEM); the locker never holds the private half. Whoever can write
    the file can sign door openings, so it must belong to the daemon's user or root and be
    writable by nobody else."""
    try:
        owner, mode = os.stat(path).st_uid, os.stat(path).st_mode
        if owner not in (0, os.geteuid()):
            raise ConfigError(f"{path}: central's command key belongs to user {owner}, not to"
                              f" the daemon's user or root; run: chown root {path}")
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"{path}: central's command key is writable by other users (mode"
                              f" {oct(mode & 0o777)}); run: chmod go-w {path}")
        key = load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no central command key; copy central's public key"
                          " (PEM) here") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: central's command key must be an Ed25519 key")
    return key


class CommandVerifier:
    def __init__(self, key: Ed25519PublicKey, locker_id: str) -> None:
        self.key, self.locker_id = key, locker_id

    def verify(self, signed: dict[str, Any], now: float) -> Command:
        """Signature first (nothing unsigned is even parsed), then address, time and shape."""
        body, signature = signed["body"], signed["signature"]
        try:
            self.key.verify(base64.b64decode(signature, validate=True), body.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            raise CommandRefused("bad_signature", "the signature does not verify with"
                                 " central's key") from None
        try:
            fields = json.loads(body)
        except (ValueError, RecursionError):
            raise CommandRefused("malformed", "the signed body is not JSON") from None
        if not isinstance(fields, dict) or set(fields) != {
                "locker_id", "nonce", "issued_at", "expires_at", "action", "args"}:
            raise CommandRefused("malformed", "the body must have exactly locker_id, nonce,"
                                 " issued_at, expires_at, action and args")
        if fields["locker_id"] != self.locker_id:
            raise CommandRefused("wrong_locker", f"addressed to locker"
                                 f" {str(fields['locker_id'])[:64]!r}, not {self.locker_id!r}")
        nonce = fields["nonce"]
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
            raise CommandRefused("malformed", "nonce must be a string of 16-128 characters")
        issued, expires = _time(fields["issued_at"]), _time(fields["expires_at"])
        if expires <= now:
            raise CommandRefused("expired", f"expired {now - expires:.0f} s ago")
        if issued > now + CLOCK_SKEW_S:
            raise CommandRefused("not_yet_valid", f"issued {issued - now:.0f} s in the future")
        if expires - max(issued, now) > MAX_TTL_S or expires < issued:
            raise CommandRefused("malformed", "a command is valid for at most a day")
        action, args = fields["action"], fields["args"]
        if not isinstance(action, str) or action not in ARGS:
            raise CommandRefused("unknown_action", f"no action {str(action)[:40]!r} (there is"
                                 f" {', '.join(sorted(ARGS))})")
        required, optional = ARGS[action]
        if not isinstance(args, dict) or not required <= set(args) <= required | optional:
            raise CommandRefused("malformed", f"{action} takes {', '.join(sorted(required))}")
        return Command(nonce, float(issued), float(expires), action, args)


@dataclass
class RemoteHands:
    """What a command may do, handed in by the daemon (the same paths staff use)."""

    open_compartment: Callable[[str, str, str], Awaitable[Any]]  # actor, compartment, reason
    set_in_service: Callable[[str, str, bool, str], None]  # actor, compartment, on, reason
    set_setpoint: Callable[[Zone, float, str], None]  # zone, celsius, actor


class RemoteCommands:
    def __init__(self, store: Store, config: LockerConfig, clock: Clock,
                 verifier: CommandVerifier, hands: RemoteHands) -> None:
        self.store, self.config, self.clock = store, config, clock
        self.verifier, self.hands = verifier, hands

    async def run(self, signed: dict[str, Any], cursor: int) -> str:
        """Verify, accept and carry out one command from the feed; returns its outcome."""
        now = self.clock.now()
        try:
            command = self.verifier.verify(signed, now)
            refusal = self._accept(command, cursor, now, signed)
        except CommandRefused as exc:
            with self.store.transaction(now) as tx:
                set_cursor(tx, cursor)
                self._refused(tx, exc, signed)
            return exc.reason
        if refusal is not None:
            return refusal.reason
        try:
            detail = await self._carry_out(command)
        except Exception as exc:  # accepted, so it must end as done or failed, whatever broke
            if not isinstance(exc, LockerError | ValueError | KeyError):
                log.exception("central command %s failed", command.action)
            with self.store.transaction(self.clock.now()) as tx:
                tx.emit("command.failed", "security", nonce=command.nonce,
                        action=command.action, reason=getattr(exc, "reason", "refused"),
                        message=str(exc))
            return "failed"
        with self.store.transaction(self.clock.now()) as tx:
            tx.emit("command.done", "security", nonce=command.nonce, action=command.action,
                    **detail)
        return "done"

    def _accept(self, command: Command, cursor: int, now: float,
                signed: dict[str, Any]) -> CommandRefused | None:
        """Remember the nonce and move the cursor; an opening also spends a remote-open token
        (refused, and still remembered, when none is left)."""
        refusal: CommandRefused | None = None
        with self.store.transaction(now) as tx:
            if tx.one("SELECT nonce FROM command_nonces WHERE nonce = ?", (command.nonce,)):
                raise CommandRefused("replayed", "this command's nonce was seen before")
            # a clock set back must not revive a command whose nonce was forgotten on expiry:
            # nothing issued well before the newest command accepted is taken
            newest = float(tx.meta(ISSUED_MARK) or 0.0)
            if command.issued_at < newest - CLOCK_SKEW_S:
                raise CommandRefused("stale", f"issued {newest - command.issued_at:.0f} s before"
                                     " a command already accepted")
            tx.set_meta(ISSUED_MARK, repr(max(newest, command.issued_at)))
            tx.execute("DELETE FROM command_nonces WHERE expires_at < ?", (now,))
            tx.insert("command_nonces", {"nonce": command.nonce, "expires_at": command.expires_at})
            set_cursor(tx, cursor)
            if command.action == "open_compartment" and not self._spend_remote_open(tx, now):
                assert self.config.central is not None
                refusal = CommandRefused(
                    "rate_limited", f"more than {self.config.central.remote_opens_burst} remote"
                    f" openings in a burst (refill {self.config.central.remote_opens_per_hour:g}"
                    " an hour)")
                self._refused(tx, refusal, signed)
            else:
                tx.emit("command.accepted", "security", nonce=command.nonce,
                        action=command.action, args=command.args)
        return refusal

    def _spend_remote_open(self, tx: Tx, now: float) -> bool:
        """A token bucket for remote openings; False when it is empty."""
        assert self.config.central is not None
        limits = Limits(self.config.central.remote_opens_burst,
                        self.config.central.remote_opens_per_hour / 3600.0)
        current = refilled(attempts.load_bucket(tx, REMOTE_OPEN_SCOPE, limits, now), limits, now)
        if current.tokens < 1.0:
            return False
        attempts.save_bucket(tx, REMOTE_OPEN_SCOPE, replace(current, tokens=current.tokens - 1.0))
        return True

    @staticmethod
    def _refused(tx: Tx, exc: CommandRefused, signed: dict[str, Any]) -> None:
        log.warning("central command refused (%s): %s", exc.reason, exc)
        tx.emit("command.refused", "security", reason=exc.reason, message=str(exc),
                body=str(signed.get("body", ""))[:512])
        if exc.reason == "rate_limited":
            tx.raise_alarm("remote_open_burst", "central",
                           "central asked for more remote openings than allowed; refused."
                           " If nobody in ops did this, central's signing key may be stolen.")
        elif exc.reason in ("bad_signature", "wrong_locker", "replayed", "stale"):
            tx.raise_alarm("command_forged", "central",
                           f"a command was refused ({exc.reason}): {exc}")

    async def _carry_out(self, command: Command) -> dict[str, Any]:
        args = command.args
        text = _text(args, "reason") if "reason" in args else "extended by central"
        if command.action == "open_compartment":
            result = await self.hands.open_compartment(ACTOR, _text(args, "compartment"), text)
            opened = [d.compartment_id for d in result.opened]
            return {"opened": opened, "failed": [d.compartment_id for d in result.failed]}
        if command.action == "set_in_service":
            if not isinstance(args["in_service"], bool):
                raise CommandRefused("malformed", "in_service must be true or false")
            self.hands.set_in_service(ACTOR, _text(args, "compartment"), args["in_service"],
                                      text)
            return {}
        if command.action == "cancel_order":
            with self.store.transaction(self.clock.now()) as tx:
                cancel(tx, _text(args, "order"), ACTOR, text)
            return {}
        if command.action == "extend_window":
            hours = args["hours"]
            if (isinstance(hours, bool) or not isinstance(hours, int | float)
                    or not 0 < hours <= 720):
                raise CommandRefused("malformed", "hours must be a number above 0, at most 720")
            with self.store.transaction(self.clock.now()) as tx:
                window_end = extend_window(tx, _text(args, "order"), hours * 3600.0, ACTOR, text)
            return {"window_end": window_end}
        if command.action == "update":
            return self._update(command)
        # set_setpoint
        celsius = args["celsius"]
        if (isinstance(celsius, bool) or not isinstance(celsius, int | float)
                or not -60 <= celsius <= 60):
            raise CommandRefused("malformed", "celsius must be a number between -60 and 60")
        try:
            zone = Zone(args["zone"])
        except ValueError:
            raise CommandRefused("malformed", f"zone must be {' or '.join(ZONES)}") from None
        self.hands.set_setpoint(zone, float(celsius), ACTOR)
        return {}

    def _update(self, command: Command) -> dict[str, Any]:
        """Record the version central wants and its rollout window; the update agent
        (api/updater.py) downloads, verifies and installs it, and reports `update.*` events."""
        if self.config.update is None:
            raise CommandRefused("not_configured", "this locker has no [update] table: it is"
                                 " updated by hand")
        version = command.args["version"]
        try:
            parse_version(version)
            not_before, not_after = check_window(command.args, self.clock.now())
        except ValueError as exc:  # BadVersion included
            raise CommandRefused("malformed", str(exc)) from None
        with self.store.transaction(self.clock.now()) as tx:
            want(tx, Wanted(version, not_before, not_after, command.nonce, tx.now))
        return {"version": version, "not_before": not_before, "not_after": not_after}


def _time(value: Any) -> float:
    """A Unix time from the body: a finite number (a 400-digit integer is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandRefused("malformed", "issued_at and expires_at must be numbers")
    try:
        number = float(value)
    except OverflowError:
        raise CommandRefused("malformed", "issued_at or expires_at out of range") from None
    if not math.isfinite(number):
        raise CommandRefused("malformed", "issued_at and expires_at must be finite")
    return number


def _text(args: dict[str, Any], name: str) -> str:
    value = args[name]
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise CommandRefused("malformed", f"{name} must be a string of 1-200 characters")
    return value
