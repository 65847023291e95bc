"""Every refusal the courier's and the technician's calls can answer has words in both of the
staff screens' languages (api/static/staff-text.json).

The reasons are read from the code, not listed here: every `Refused`, `NotAllowed` and
`LoginRefused` (and their subclasses) raised anywhere in the domain (locker/), and every problem
answered with a literal reason by the modules that answer the staff's requests. A reason added
to the code without its words fails this test.
"""

from __future__ import annotations

from typing import Any

from api.staff import screen_html
from locker.domain.errors import Refused
from locker.domain.staff import LoginRefused, NotAllowed
from tests.support.catalogues import (
    STATIC,
    assert_same_in_both_languages,
    catalogue,
    flatten,
    keys_named,
)
from tests.support.refusals import domain_modules
from tests.support.refusals import refusal_reasons as read_reasons

TEXT: dict[str, Any] = catalogue("staff-text.json")
# the modules that answer the staff's requests: the app's middleware (errors -> problems), the
# shared helpers, the deadline middleware, the staff's routes
STAFF_API = ("api.app", "api.common", "api.freshness", "api.staff")
REFUSALS = (Refused, NotAllowed, LoginRefused)


def refusal_reasons() -> dict[str, str]:
    return read_reasons(domain_modules(), REFUSALS, STAFF_API)


def test_the_reasons_are_found_in_the_code() -> None:
    # a check of the reading itself: these are raised in locker/domain/courier.py,
    # locker/domain/staff.py, locker/domain/lifecycle/order.py and answered by api/app.py
    assert {"no_room", "zone_blocked", "session_ended", "role", "wrong_code", "replayed",
            "throttled", "temporarily_unavailable", "stale_request", "bad_request",
            "no_compartment"} <= set(refusal_reasons())


def test_every_refusal_reason_has_words_in_both_languages() -> None:
    reasons = refusal_reasons()
    for lang, text in TEXT.items():
        missing = {r: where for r, where in reasons.items() if not text["refusals"].get(r)}
        assert missing == {}, f"staff-text.json, {lang}: no words for {missing}"


def test_both_languages_say_the_same_things_with_the_same_blanks() -> None:
    assert_same_in_both_languages(TEXT)


def test_every_message_the_screens_ask_for_is_in_the_catalogue() -> None:
    """The keys the staff screens' scripts name literally (t("...")) exist."""
    known = set(flatten(TEXT["en"]))
    for name in ("staff.js", "courier.js", "technician.js"):
        asked = keys_named([(STATIC / name).read_text("utf-8")])
        assert asked - known == set(), f"{name}: {sorted(asked - known)}"
    for name in ("courier", "technician"):
        asked = keys_named([screen_html(name, name)])
        assert asked and asked - known == set(), f"{name}: {sorted(asked - known)}"
