"""Pickup codes for tests: well formed (their check digit right), so the locker judges them."""

from __future__ import annotations

from locker.domain.codes import check_digit


def code_no(n: int) -> str:
    """A valid pickup code for tests: n in 10 digits and the check digit."""
    body = f"{n:010d}"
    return body + check_digit(body)


def a_wrong_code(code: str) -> str:
    """A well-formed code that is not `code`: its check digit is right, so it is judged."""
    return code_no((int(code[:10]) + 1) % 10**10)
