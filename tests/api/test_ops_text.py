"""The ops page says everything in both of its languages: the same keys and blanks in each, and
every key its script and page ask for."""

from __future__ import annotations

import json
import re
from typing import Any

from locker.alarms import ALARMS
from tests.support.refusals import ROOT, flatten

STATIC = ROOT / "api" / "static"
TEXT: dict[str, Any] = json.loads((STATIC / "ops-text.json").read_text("utf-8"))


def test_both_languages_say_the_same_things_with_the_same_blanks() -> None:
    en, fr = flatten(TEXT["en"]), flatten(TEXT["fr"])
    assert set(en) == set(fr)
    for key, words in en.items():
        assert words.strip() and fr[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", words)) == set(re.findall(r"\{(\w+)\}", fr[key])), key


def test_every_message_the_page_asks_for_is_in_the_catalogue() -> None:
    known = set(flatten(TEXT["en"]))
    script = (STATIC / "ops.js").read_text("utf-8")
    asked = set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", script))
    page = (STATIC / "ops.html").read_text("utf-8")
    asked |= set(re.findall(r'data-t(?:-label)?="([\w.]+)"', page))
    assert len(asked) > 20 and asked - known == set(), sorted(asked - known)
    for group in ("states", "doors", "zones"):
        assert group in TEXT["en"], group
    for severity in ("page", "ticket"):  # every declared severity has its word
        assert {a.severity for a in ALARMS.values()} <= set(TEXT["en"]) and severity in known
    for kind, alarm in ALARMS.items():  # and every alarm its words in both languages
        assert alarm.en.strip() and alarm.fr.strip(), kind
