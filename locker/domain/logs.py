"""Log lines for people and for journald: plain text at a terminal, one JSON object per line
under systemd, and never a secret in either.

Pickup codes are never logged by the code that handles them (only their keyed digest exists in
the store). As a second line of defence, `Redact` replaces every known secret (the locker's code
secret, the ops token, central's token, staff secrets) in every record, whatever logger wrote it.
Standard library only, so the domain may use it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
# attributes every LogRecord has; anything else was passed in `extra=` and goes into the JSON
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One line per record: {"ts", "level", "logger", "msg", ...extra, "exc"}."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class Redact(logging.Filter):
    """Replace known secrets everywhere in a record: its message with the arguments merged in,
    every field passed with `extra=` (the JSON lines carry them all, aiohttp's access log its
    `first_request_line` among them), the traceback and the stack."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # short strings would redact ordinary words and numbers; our secrets are long
        self.secrets |= {s for s in secrets if s and len(s) >= 16}

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        clean = self._clean(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD or key in ("exc_text", "stack_info"):
                setattr(record, key, self._scrub(value))
        return True

    def _scrub(self, value: Any) -> Any:
        """The value with every secret replaced, looking inside strings, bytes and containers;
        any other object is judged by its text, as the JSON line would print it."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self._clean(value)
        if isinstance(value, bytes):
            clean = self._clean(value.decode("utf-8", "replace"))
            return value if clean == value.decode("utf-8", "replace") else clean
        if isinstance(value, dict):
            return {self._scrub(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._scrub(v) for v in value]
        text = str(value)
        clean = self._clean(text)
        return value if clean == text else clean

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def under_systemd() -> bool:
    """journald connects our stderr (JOURNAL_STREAM) or systemd started us (INVOCATION_ID)."""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def setup(style: str = "auto", *, verbose: bool = False) -> Redact:
    """Configure the root logger; returns the redaction filter to feed secrets into."""
    use_json = style == "json" or (style == "auto" and under_systemd())
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    redact = Redact()
    handler.addFilter(redact)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return redact
