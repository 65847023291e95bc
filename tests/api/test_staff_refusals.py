"""Every refusal the courier's and the technician's calls can answer has words in both of the
staff screens' languages (api/static/staff-text.json).

The reasons are read from the code, not listed here: every `Refused`, `NotAllowed` and
`LoginRefused` (and their subclasses) raised anywhere in the domain (locker/), and every problem
answered with a literal reason by the modules that answer the staff's requests. A reason added
to the code without its words fails this test.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api.staff import screen_html
from locker.errors import Refused
from locker.staff import LoginRefused, NotAllowed

ROOT = Path(__file__).resolve().parents[2]
TEXT: dict[str, Any] = json.loads((ROOT / "api" / "static" / "staff-text.json").read_text("utf-8"))
# the modules that answer the staff's requests: the app's middleware (errors -> problems), the
# shared helpers, the deadline middleware, the staff's routes
STAFF_API = ("api.app", "api.common", "api.freshness", "api.staff")
REFUSALS = (Refused, NotAllowed, LoginRefused)


def modules() -> Iterator[tuple[Any, ast.Module]]:
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts)
             for p in sorted((ROOT / "locker").rglob("*.py"))]
    for name in [*names, *STAFF_API]:
        name = name.removesuffix(".__init__")
        module = importlib.import_module(name)
        assert module.__file__ is not None
        yield module, ast.parse(Path(module.__file__).read_text("utf-8"))


def resolve(module: Any, node: ast.expr) -> Any:
    """What a name or a dotted name in the module refers to (None if not a module global)."""
    if isinstance(node, ast.Name):
        return vars(module).get(node.id)
    if isinstance(node, ast.Attribute):
        owner = resolve(module, node.value)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def assigned_strings(function: ast.AST, name: str) -> set[str]:
    """The string literals a function assigns to a local name."""
    found = set()
    for node in ast.walk(function):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and node.value.value
                and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)):
            found.add(node.value.value)
    return found


def enclosing_functions(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    owner: dict[ast.AST, ast.AST] = {}
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                owner.setdefault(node, function)  # the outermost: walk() goes outside in
    return owner


def refusal_reasons() -> dict[str, str]:
    """reason -> where in the code it is first given."""
    reasons: dict[str, str] = {}
    for module, tree in modules():
        owner = enclosing_functions(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            where = f"{module.__name__}:{node.lineno}"
            target = resolve(module, node.func)
            if isinstance(target, type) and issubclass(target, REFUSALS):
                given = node.args[0]
            elif target is getattr(module, "problem", object()) and len(node.args) > 1 and (
                    module.__name__ in STAFF_API):
                given = node.args[1]
                if not isinstance(given, ast.Constant):
                    continue  # a caught error's own reason (its class is read above)
            else:
                continue
            if isinstance(given, ast.Constant) and isinstance(given.value, str):
                found = {given.value}
            elif isinstance(given, ast.Name) and node in owner:
                found = assigned_strings(owner[node], given.id)
            else:
                found = set()
            assert found, f"{where}: give this refusal's reason as a string literal"
            for reason in found:
                reasons.setdefault(reason, where)
    return reasons


def test_the_reasons_are_found_in_the_code() -> None:
    # a check of the reading itself: these are raised in locker/courier.py, locker/staff.py,
    # locker/lifecycle/order.py and answered by api/app.py
    assert {"no_room", "zone_blocked", "session_ended", "role", "wrong_code", "replayed",
            "throttled", "temporarily_unavailable", "stale_request", "bad_request",
            "no_compartment"} <= set(refusal_reasons())


def test_every_refusal_reason_has_words_in_both_languages() -> None:
    reasons = refusal_reasons()
    for lang, text in TEXT.items():
        missing = {r: where for r, where in reasons.items() if not text["refusals"].get(r)}
        assert missing == {}, f"staff-text.json, {lang}: no words for {missing}"


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def test_both_languages_say_the_same_things_with_the_same_blanks() -> None:
    en, fr = flatten(TEXT["en"]), flatten(TEXT["fr"])
    assert set(en) == set(fr)
    for key, words in en.items():
        assert words.strip() and fr[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", words)) == set(re.findall(r"\{(\w+)\}", fr[key])), key


def test_every_message_the_screens_ask_for_is_in_the_catalogue() -> None:
    """The keys the staff screens' scripts name literally (t("...")) exist."""
    known = set(flatten(TEXT["en"]))
    for name in ("staff.js", "courier.js", "technician.js"):
        script = (ROOT / "api" / "static" / name).read_text("utf-8")
        asked = set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", script))
        asked |= set(re.findall(r'data-t(?:-label)?="([\w.]+)"', script))
        assert asked - known == set(), f"{name}: {sorted(asked - known)}"
    for name in ("courier", "technician"):
        page = screen_html(name, name)
        asked = set(re.findall(r'data-t(?:-label)?="([\w.]+)"', page))
        assert asked and asked - known == set(), f"{name}: {sorted(asked - known)}"
