"""The ops page says everything in both of its languages: the same keys and blanks in each, and
every key its script and page ask for."""

from __future__ import annotations

from typing import Any

from locker.domain.alarms import ALARMS
from tests.support.catalogues import (
    STATIC,
    assert_same_in_both_languages,
    catalogue,
    flatten,
    keys_named,
)

TEXT: dict[str, Any] = catalogue("ops-text.json")


def test_both_languages_say_the_same_things_with_the_same_blanks() -> None:
    assert_same_in_both_languages(TEXT)


def test_every_message_the_page_asks_for_is_in_the_catalogue() -> None:
    known = set(flatten(TEXT["en"]))
    asked = keys_named([(STATIC / name).read_text("utf-8") for name in ("ops.js", "ops.html")])
    assert len(asked) > 20 and asked - known == set(), sorted(asked - known)
    for group in ("states", "doors"):
        assert group in TEXT["en"], group
    assert "zones" not in TEXT["en"]  # their words are the zones' declarations (the app's)
    for severity in ("page", "ticket"):  # every declared severity has its word
        assert {a.severity for a in ALARMS.values()} <= set(TEXT["en"]) and severity in known
    for kind, alarm in ALARMS.items():  # and every alarm its words in both languages
        assert alarm.en.strip() and alarm.fr.strip(), kind
