"""The test code's own layout, so that a newcomer finds a helper in one place.

Helpers shared by several test modules live once in tests/support/; fixtures live in conftest.py
files and take their helpers from there. No module under tests/ imports a test module (a
test_*.py, a conftest.py, or anything else outside tests/support/), even inside a function, and
bench/ imports nothing from tests/ at all (what bench shares with the tests, the daemon and central
as child processes, is simulator/processes.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import ROOT

TESTS = ROOT / "tests"
SUPPORT = "tests.support"
# the helper modules that used to sit among the tests, and where their helpers went
GONE = {
    "tests/processes.py": "simulator/processes.py (Daemon), tests/support/processes.py (prepare)",
    "tests/golden_frames.py": "tests/support/golden_frames.py",
    "tests/locker/fakes.py": "tests/support/doubles.py",
    "tests/hardware/fakeboard.py": "tests/support/fake_boards.py",
    "tests/simulator/pty_line.py": "tests/support/pty_line.py",
    "tests/update/lockerproc.py": "tests/support/update_site.py",
    "tests/integration/conftest.py": "tests/conftest.py (make_rig, rig), tests/support/rig.py",
    "tests/reliability/conftest.py": "tests/conftest.py (make_rig, rig)",
}
# helpers that test modules used to copy or take from each other: each is defined once, in
# tests/support/ (other modules may still keep a local helper of another name's meaning, such as
# a `Rig` of their own); None: defined in no test module, since it lives in simulator/processes.py
# with the daemon's process wrapper that bench/ shares
ONCE = {"ROOT": "paths", "free_port": None, "until": "waiting", "SMALL_CONFIG": "configs",
        "write_config": "configs", "config_text": "configs", "FakeDriver": "doubles",
        "LOG_EVERY_EVENT": "sync", "prepare_log": "sync", "as_built": "screens",
        "shot": "screens", "axe": "screens", "misfits": "screens"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imported(path: Path, source: str | None = None) -> Iterator[tuple[int, str]]:
    """Every module `path` (or `source`, as if it were at `path`) imports, anywhere in it
    (inside functions too), with its line; `from package import name` counts as importing
    package.name as well."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    source = path.read_text("utf-8") if source is None else source
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) in ("import_module", "__import__") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def is_test_module(name: str) -> bool:
    """A module of tests/ other than tests/support/ (and the bare packages on the way there)."""
    return (name.split(".")[0] == "tests" and name not in ("tests", SUPPORT)
            and not name.startswith(SUPPORT + "."))


def test_no_module_under_tests_imports_a_test_module() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted(TESTS.rglob("*.py"))
             for line, name in imported(path) if is_test_module(name)]
    assert found == [], "move what they share to tests/support/:\n" + "\n".join(found)


def test_bench_imports_nothing_from_tests() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted((ROOT / "bench").rglob("*.py"))
             for line, name in imported(path) if name.split(".")[0] == "tests"]
    assert found == []


def test_outside_tests_support_there_are_only_tests_and_fixtures() -> None:
    allowed = ("conftest.py", "__init__.py")
    stray = [str(path.relative_to(ROOT)) for path in sorted(TESTS.rglob("*.py"))
             if "support" not in path.relative_to(TESTS).parts[:1]
             and not path.name.startswith("test_") and path.name not in allowed]
    assert stray == [], "helpers belong in tests/support/"


def test_the_old_helper_modules_stay_gone() -> None:
    back = [f"{old} (now {new})" for old, new in GONE.items() if (ROOT / old).exists()]
    assert back == []


def test_each_shared_helper_is_defined_once_in_tests_support() -> None:
    defined: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.parse(path.read_text("utf-8")).body:  # module level
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            else:
                continue
            for name in names:
                if name in ONCE:
                    defined.setdefault(name, []).append(module_name(path))
    assert defined == {name: [f"{SUPPORT}.{home}"] for name, home in ONCE.items() if home}


def test_the_import_walk_sees_imports_inside_functions_and_relative_ones() -> None:
    source = ("def f():\n    from tests.locker import test_pickup\n"
              "from ..integration.test_demo import x\nfrom .conftest import y\n"
              "import importlib\nimportlib.import_module('tests.hardware.test_bus')\n"
              "from tests.support.rig import Rig\nfrom tests import support\n")
    names = {name for _, name in imported(TESTS / "locker" / "test_probe.py", source)}
    assert {n for n in names if is_test_module(n)} == {
        "tests.locker", "tests.locker.test_pickup", "tests.integration.test_demo",
        "tests.integration.test_demo.x", "tests.locker.conftest", "tests.locker.conftest.y",
        "tests.hardware.test_bus"}
    assert {"tests.support.rig.Rig", "tests.support"} <= names
