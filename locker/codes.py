"""Pickup codes: HOTP (RFC 4226) from the locker secret and the order's sequence number.

Central holds the same secret, so it can tell a customer the code while the locker is offline.
A code is never stored or logged in clear: the store keeps a keyed digest, so looking a typed code
up is one index read, and a stolen database does not give away the codes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import pyotp

from locker.errors import ConfigError, LockerError


class BadCodeFormat(LockerError, ValueError):
    """What was typed cannot be a code (wrong length, not digits); it costs no guess."""


def read_private_file(path: Path, what: str) -> str | None:
    """A secret file's text, stripped; None if there is none. Refuses a file that other users
    can read, and says how to fix it."""
    try:
        mode = os.stat(path).st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: the {what} is readable by other users"
            f" (mode {oct(mode & 0o777)}); run: chmod 600 {path}"
        )
    return text


def load_secret(path: Path) -> str:
    """Read the base32 locker secret, refusing a file that other users can read."""
    text = read_private_file(path, "locker secret")
    if text is None:
        raise ConfigError(f"{path}: no locker secret; create one with `locker init`")
    try:
        pyotp.HOTP(text).at(0)
    except Exception:  # pyotp raises binascii.Error or ValueError on a bad secret
        raise ConfigError(f"{path}: not a base32 secret") from None
    if len(text) < 26:
        raise ConfigError(f"{path}: secret too short ({len(text)} base32 characters, want 32)")
    return text


def create_secret(path: Path) -> bool:
    """Write a new random secret with mode 0600; False if one exists already (never overwrite)."""
    return create_private_file(path, pyotp.random_base32(32))


def create_private_file(path: Path, text: str) -> bool:
    """Write `text` to a new file only its owner can read; False if it exists (never overwrite).
    A folder it makes is its owner's only too."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(text + "\n")
    return True


def load_ops_token(path: Path) -> str | None:
    """The token the ops endpoints ask for; None if there is none (ops endpoints then refuse)."""
    token = read_private_file(path, "ops token")
    if token is None:
        return None
    if len(token) < 24:
        raise ConfigError(f"{path}: the ops token is too short (at least 24 characters)")
    return token


class PickupCodes:
    """Derives a code for a sequence number, and the keyed digest the store indexes codes by."""

    def __init__(self, secret: str, digits: int = 8) -> None:
        self.digits = digits
        self._hotp = pyotp.HOTP(secret, digits=digits)
        self._digest_key = hashlib.sha256(b"pickup-code-digest:" + secret.encode()).digest()

    def code_for(self, sequence: int) -> str:
        return self._hotp.at(sequence)

    def digest(self, code: str) -> str:
        return hmac.new(self._digest_key, code.encode(), hashlib.sha256).hexdigest()

    def normalise(self, typed: str) -> str:
        """Accept what a keypad or a barcode reader sends: digits, perhaps spaces or dashes."""
        code = "".join(ch for ch in typed if ch not in " -\t\r\n")
        if len(code) != self.digits or not code.isascii() or not code.isdigit():
            raise BadCodeFormat(f"a pickup code has {self.digits} digits")
        return code
