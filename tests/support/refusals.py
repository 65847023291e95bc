"""Every refusal reason the code can answer, read from the code itself (not listed by hand), so
that a screen's message catalogue can be checked against it: a reason added without its words
fails the screen's test.

A reason is the first argument of a refusal class's call (`Refused("no_room", ...)`, a literal
or a local name assigned literals), a class's own `reason = "..."` attribute, or the literal
error of a `problem(status, "reason", ...)` answered by the named API modules.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.paths import ROOT


def domain_modules() -> list[str]:
    return [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for p in sorted((ROOT / "locker").rglob("*.py"))]


def _modules(names: Iterable[str]) -> Iterator[tuple[ModuleType, ast.Module]]:
    for name in names:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        yield module, ast.parse(Path(module.__file__).read_text("utf-8"))


def _resolve(module: ModuleType, node: ast.expr) -> Any:
    """What a name or a dotted name in the module refers to (None if not a module global)."""
    if isinstance(node, ast.Name):
        return vars(module).get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(module, node.value)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def _assigned_strings(function: ast.AST, name: str) -> set[str]:
    """The string literals a function assigns to a local name."""
    found = set()
    for node in ast.walk(function):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and node.value.value
                and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)):
            found.add(node.value.value)
    return found


def _enclosing_functions(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    owner: dict[ast.AST, ast.AST] = {}
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                owner.setdefault(node, function)  # the outermost: walk() goes outside in
    return owner


def refusal_reasons(modules: Iterable[str], refusals: tuple[type, ...],
                    answering: Iterable[str] = ()) -> dict[str, str]:
    """reason -> where in the code it is first given: every call of one of `refusals` (or a
    subclass) in `modules`, each class's own `reason` attribute, and every `problem()` with a
    literal reason in the `answering` API modules."""
    answering = tuple(answering)
    reasons: dict[str, str] = {}
    for module, tree in _modules([*modules, *answering]):
        owner = _enclosing_functions(tree)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, refusals) and cls.__module__ == module.__name__
                    and isinstance(vars(cls).get("reason"), str)):
                reasons.setdefault(vars(cls)["reason"], f"{module.__name__}.{cls.__name__}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            where = f"{module.__name__}:{node.lineno}"
            target = _resolve(module, node.func)
            if isinstance(target, type) and issubclass(target, refusals):
                if isinstance(getattr(target, "reason", None), str):
                    continue  # its reason is the class's own (read above); the call's, a message
                given = node.args[0]
            elif target is getattr(module, "problem", object()) and len(node.args) > 1 and (
                    module.__name__ in answering):
                given = node.args[1]
                if not isinstance(given, ast.Constant):
                    continue  # a caught error's own reason (its class is read above)
            else:
                continue
            if isinstance(given, ast.Constant) and isinstance(given.value, str):
                found = {given.value}
            elif isinstance(given, ast.Name) and node in owner:
                found = _assigned_strings(owner[node], given.id)
            else:
                found = set()
            assert found, f"{where}: give this refusal's reason as a string literal"
            for reason in found:
                reasons.setdefault(reason, where)
    return reasons
