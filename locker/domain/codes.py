"""Pickup codes: random, with a check digit, known to the locker only as a keyed digest.

No code can be computed from anything on the card (docs/adr/0008): central (or, for a standalone
locker, the locker itself) draws each order's code at random and sends it sealed to the locker's
box key; the locker opens it, keeps only its digest, and forgets it. The digest is a scalar
multiple of a point hashed from the code (ed25519, libsodium through PyNaCl), which is what lets
`locker rotate-keys` re-key the active orders without knowing their codes: the new digest is the
old one times (new key / old key). A typed code is digested once and looked up in one index read.

The last digit is a Damm check digit, so a mistyped digit or two swapped neighbours are caught at
once and never judged as a guess.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from locker.domain.config import LockerConfig
from locker.domain.errors import ConfigError, LockerError

RANDOM_DIGITS = 10  # 10^10 codes: the guessing arithmetic is in docs/adr/0008
CODE_DIGITS = RANDOM_DIGITS + 1  # and the check digit

# Damm's quasigroup of order 10 (weakly totally anti-symmetric): every single-digit error and
# every transposition of adjacent digits changes the check.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2), (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9), (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8), (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4), (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5), (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class BadCodeFormat(LockerError, ValueError):
    """What was typed cannot be a code (wrong length, not digits); it costs no guess."""

    reason = "bad_code_format"


class CheckDigitWrong(BadCodeFormat):
    """The right length, but the check digit says a digit is mistyped: a typo, not a guess."""

    reason = "check_the_code"


def damm_interim(digits: str) -> int:
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][ord(digit) - 48]
    return interim


def check_digit(digits: str) -> str:
    """The digit that makes `digits` + it pass the Damm check."""
    return str(damm_interim(digits))


def new_code() -> str:
    """A fresh code: 10 digits from the system's CSPRNG and the check digit."""
    body = f"{secrets.randbelow(10 ** RANDOM_DIGITS):0{RANDOM_DIGITS}d}"
    return body + check_digit(body)


def grouped(code: str) -> str:
    """How a code is shown and printed: '123 4567 8901' (groups of 3-4-4 are easy to copy)."""
    return f"{code[:3]} {code[3:7]} {code[7:]}"


def normalise(typed: str) -> str:
    """Accept what a keypad or a barcode reader sends: digits, perhaps spaces or dashes."""
    code = "".join(ch for ch in typed if ch not in " -\t\r\n")
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        raise BadCodeFormat(f"a pickup code has {CODE_DIGITS} digits")
    if damm_interim(code) != 0:
        raise CheckDigitWrong("check the code: a digit is mistyped or two digits are swapped")
    return code


# -- files -------------------------------------------------------------------------------------

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
        file.flush()
        os.fsync(file.fileno())
    return True


def load_ops_token(path: Path) -> str | None:
    """The token the ops endpoints ask for; None if there is none (ops endpoints then refuse)."""
    token = read_private_file(path, "ops token")
    if token is None:
        return None
    if len(token) < 24:
        raise ConfigError(f"{path}: the ops token is too short (at least 24 characters)")
    return token


# -- the digest key ------------------------------------------------------------------------------

def _point(code: str) -> bytes:
    uniform = hashlib.blake2b(code.encode("ascii"), digest_size=32,
                              person=b"pickup-code-v2").digest()
    return bindings.crypto_core_ed25519_from_uniform(uniform)


@dataclass(frozen=True)
class DigestKey:
    """A secret scalar: digest(code) = scalar * H(code). Never leaves its 0600 file."""

    scalar: bytes

    @classmethod
    def generate(cls) -> DigestKey:
        return cls(bindings.crypto_core_ed25519_scalar_reduce(secrets.token_bytes(64)))

    @classmethod
    def parse(cls, text: str, where: str) -> DigestKey:
        try:
            scalar = bytes.fromhex(text)
        except ValueError:
            scalar = b""
        if len(scalar) != 32 or bindings.crypto_core_ed25519_scalar_reduce(
                scalar + bytes(32)) != scalar or not any(scalar):
            raise ConfigError(f"{where}: not a code digest key (64 hex digits)")
        return cls(scalar)

    @property
    def text(self) -> str:
        return self.scalar.hex()

    @property
    def fingerprint(self) -> str:
        """Names the key in the store without giving it away (a hash of its public point)."""
        public = bindings.crypto_scalarmult_ed25519_base_noclamp(self.scalar)
        return hashlib.sha256(b"digest-key:" + public).hexdigest()[:16]

    def digest(self, code: str) -> str:
        return bindings.crypto_scalarmult_ed25519_noclamp(self.scalar, _point(code)).hex()

    def rekeyed(self, digest: str, new: DigestKey) -> str:
        """The digest `new` gives the same code, computed from this key's digest alone."""
        ratio = bindings.crypto_core_ed25519_scalar_mul(
            new.scalar, bindings.crypto_core_ed25519_scalar_invert(self.scalar))
        return bindings.crypto_scalarmult_ed25519_noclamp(ratio, bytes.fromhex(digest)).hex()


def load_digest_key(path: Path) -> DigestKey:
    text = read_private_file(path, "code digest key")
    if text is None:
        raise ConfigError(f"{path}: no code digest key; create one with `locker init`")
    return DigestKey.parse(text, str(path))


# -- the box key: how central hands the locker a code ------------------------------------------

class SealedCodeInvalid(LockerError, ValueError):
    """A sealed code this locker cannot open, or that holds no valid code."""


def load_box_key(path: Path) -> PrivateKey:
    text = read_private_file(path, "code box key")
    if text is None:
        raise ConfigError(f"{path}: no code box key; create one with `locker init`")
    try:
        raw = bytes.fromhex(text)
        if len(raw) != 32:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{path}: not a code box key (64 hex digits)") from None
    return PrivateKey(raw)


def box_public_key(key: PrivateKey) -> str:
    """What central is given at provisioning (base64 of the X25519 public key)."""
    return base64.b64encode(bytes(key.public_key)).decode("ascii")


def seal(public_key_b64: str, code: str) -> str:
    """Central's side: the code, readable only by the locker holding the box key."""
    public = PublicKey(base64.b64decode(public_key_b64, validate=True))
    return base64.b64encode(SealedBox(public).encrypt(code.encode("ascii"))).decode("ascii")


def create_code_keys(digest_key_file: Path, box_key_file: Path) -> bool:
    """Create the digest key and the box key if missing (mode 0600); True if any was made."""
    made = create_private_file(digest_key_file, DigestKey.generate().text)
    made_box = create_private_file(box_key_file, bytes(PrivateKey.generate()).hex())
    return made or made_box


class PickupCodes:
    """The locker's code keys: opens sealed codes, digests typed ones, draws local ones."""

    def __init__(self, digest_key: DigestKey, box_key: PrivateKey) -> None:
        self.key = digest_key
        self._box = SealedBox(box_key)
        self.box_public = box_public_key(box_key)

    @classmethod
    def load(cls, digest_key_file: Path, box_key_file: Path) -> PickupCodes:
        return cls(load_digest_key(digest_key_file), load_box_key(box_key_file))

    def digest(self, code: str) -> str:
        return self.key.digest(code)

    normalise = staticmethod(normalise)
    new_code = staticmethod(new_code)

    def open_sealed(self, sealed: str) -> str:
        """The code central sealed for this locker; SealedCodeInvalid if it is not one."""
        try:
            raw = self._box.decrypt(base64.b64decode(sealed, validate=True))
            return normalise(raw.decode("ascii"))
        except (CryptoError, binascii.Error, UnicodeDecodeError, BadCodeFormat, ValueError):
            raise SealedCodeInvalid("the sealed code cannot be opened with this locker's box"
                                    " key, or holds no valid code") from None


def create_keys(config: LockerConfig) -> bool:
    """`locker init`'s part: the locker's code keys, made once and never overwritten."""
    return create_code_keys(config.digest_key_file, config.box_key_file)


def load_codes(config: LockerConfig) -> PickupCodes:
    return PickupCodes.load(config.digest_key_file, config.box_key_file)
