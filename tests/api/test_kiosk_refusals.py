"""Every refusal the customer's pickup call can answer has words, with the next step, in both of
the kiosk's languages (api/static/kiosk-text.json "refusals", keyed by the API's error code);
every message the kiosk's script and page ask for exists in both.

The reasons are read from the code (tests/support/refusals.py): every `PickupRefused` (and
`Throttled`), `Unavailable` and `StaleRequest` raised in the domain, every `BadCodeFormat`
kind, and every problem the modules that answer the pickup give with a literal reason.
"""

from __future__ import annotations

import re
from typing import Any

from locker.domain.codes import BadCodeFormat
from locker.domain.deadline import StaleRequest
from locker.domain.errors import Unavailable
from locker.domain.pickup import PickupRefused
from tests.support.catalogues import (
    STATIC,
    assert_same_in_both_languages,
    catalogue,
    flatten,
    keys_named,
)
from tests.support.refusals import domain_modules, refusal_reasons

TEXT: dict[str, Any] = catalogue("kiosk-text.json")
# the middleware (errors -> problems), the shared helpers, the deadline middleware
PICKUP_API = ("api.app", "api.common", "api.freshness")
REFUSALS = (PickupRefused, Unavailable, StaleRequest, BadCodeFormat)


def reasons() -> dict[str, str]:
    return refusal_reasons(domain_modules(), REFUSALS, PICKUP_API)


def test_the_reasons_are_found_in_the_code() -> None:
    # a check of the reading itself: raised in locker/domain/pickup.py, locker/domain/codes.py,
    # locker/domain/lifecycle/order.py and answered by api/app.py
    assert {"wrong_code", "used", "expired", "not_ready", "throttled", "bad_code_format",
            "check_the_code", "temporarily_unavailable", "stale_request", "starting",
            "bad_request", "store"} <= set(reasons())


def test_every_refusal_of_a_pickup_has_words_in_both_languages() -> None:
    found = reasons()
    for lang, text in TEXT.items():
        missing = {r: where for r, where in found.items() if not text["refusals"].get(r)}
        assert missing == {}, f"kiosk-text.json, {lang}: no words for {missing}"


def test_both_languages_say_the_same_things_with_the_same_blanks() -> None:
    assert_same_in_both_languages(TEXT)


def test_every_message_the_screen_asks_for_is_in_the_catalogue() -> None:
    """The keys kiosk.js names literally (t("..."), tell("..."), speak([...])) and the page's
    data-t / data-t-label exist; a refusal shown from the API's code falls back to words too."""
    known = set(flatten(TEXT["en"]))
    script = (STATIC / "kiosk.js").read_text("utf-8")
    asked = set(re.findall(r"""\b(?:t|tell|has|countdown\([^,]+,)\s*\(?\s*["']([\w.]+)["']""",
                           script))
    asked |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", script))
    for spoken in re.findall(r"speak\(\[([^\]]*)\]", script):
        asked |= set(re.findall(r'"([\w.]+)"', spoken)) - {"doors"}
    asked |= {"refusals.error"}
    asked |= keys_named([(STATIC / "kiosk.html").read_text("utf-8")])
    assert len(asked) > 20 and asked - known == set(), sorted(asked - known)
    # the door outcomes the screen draws all have words
    for state in ("opening", "opened", "closed", "did_not_unlock", "jammed", "kept"):
        assert state in known, state
