"""The screens' message catalogues (api/static/*-text.json) checked the same way for each: both
languages say the same things with the same blanks, and every key a page or script names is
there."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from tests.support.refusals import ROOT

STATIC = ROOT / "api" / "static"


def catalogue(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((STATIC / name).read_text("utf-8"))
    return loaded


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A message catalogue's nested keys as dotted names."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def assert_same_in_both_languages(text: dict[str, Any]) -> None:
    en, fr = flatten(text["en"]), flatten(text["fr"])
    assert set(en) == set(fr), sorted(set(en) ^ set(fr))
    for key, words in en.items():
        assert words.strip() and fr[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", words)) == set(re.findall(r"\{(\w+)\}", fr[key])), key


def keys_named(sources: Iterable[str]) -> set[str]:
    """The message keys a script or a page names literally: t("..."), data-t, data-t-label."""
    asked: set[str] = set()
    for source in sources:
        asked |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", source))
        asked |= set(re.findall(r'data-t(?:-label)?="([\w.]+)"', source))
    return asked
