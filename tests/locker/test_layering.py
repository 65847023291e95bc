"""The domain stays free of I/O libraries: hardware/ and api/ plug into it, never the reverse.

Only the CLI (the composition root) reaches hardware/, api/ and simulator/, inside the commands
that need them, so `import locker` never loads aiohttp, pyserial or gpiozero.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

LOCKER = Path(__file__).resolve().parents[2] / "locker"
FORBIDDEN = ("aiohttp", "serial", "serial_asyncio_fast", "gpiozero", "pymodbus", "hardware", "api",
             "simulator")


def test_no_module_of_locker_imports_an_io_library_at_top_level() -> None:
    for path in sorted(LOCKER.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # top level only: the CLI's lazy imports live inside functions
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_the_whole_domain_loads_none_of_them() -> None:
    modules = " ".join(f"locker.{p.stem}" for p in LOCKER.glob("*.py") if p.stem != "__init__")
    code = (f"import importlib, sys\nfor m in '{modules}'.split(): importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=LOCKER.parent).stdout.strip()
    assert out == "[]"
