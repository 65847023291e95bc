"""The domain imports no hardware, no HTTP and no simulator: they plug into it, never the reverse.

Every import is read (the ast is walked whole: imports inside functions count too). The domain
is locker/domain/; the composition root around it (locker/cli.py, doctor.py, demo.py, release.py,
slots.py) builds the hardware through hardware/factory.py, the one place a driver, a probe or a
relay is made from the config, and the HTTP app from api/.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import ROOT

DOMAIN = ROOT / "locker" / "domain"
IO_LIBRARIES = ("aiohttp", "serial", "serial_asyncio_fast", "gpiozero", "pymodbus",
                "prometheus_client", "playwright", "tuf")
OUTSIDE = ("hardware", "api", "simulator", "bench", "tests")
COMPOSITION = ("locker.cli", "locker.doctor", "locker.demo", "locker.release", "locker.slots")
# what builds hardware from a config: only hardware/factory.py calls these
BUILDERS = ("BoardLockDriver", "GpioLockDriver", "DS18B20Probe", "GpioCompressor",
            "ModbusController", "Bus")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports, wherever in it (line, dotted name)."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def test_the_domain_imports_nothing_of_hardware_http_or_the_simulator() -> None:
    offenders = []
    for path in sorted(DOMAIN.rglob("*.py")):
        for line, name in imports(path):
            top = name.split(".")[0]
            if top in IO_LIBRARIES or top in OUTSIDE or name.startswith(COMPOSITION):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert offenders == []


def test_hardware_and_the_simulator_stay_on_their_side() -> None:
    """hardware/ plugs into the domain (no HTTP app, no simulator); the simulator plays the
    hardware's far side and central, reading the domain's plain declarations only."""
    offenders = []
    for folder, banned in (("hardware", ("api", "simulator", "aiohttp")),
                           ("simulator", ("hardware", "api"))):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, name in imports(path):
                if name.split(".")[0] in banned or name.startswith(COMPOSITION):
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert offenders == []


def test_hardware_is_built_from_the_config_in_one_place() -> None:
    offenders = []
    for folder in ("locker", "api"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, name in imports(path):
                if name.startswith("hardware.") and name.rsplit(".", 1)[-1] in BUILDERS:
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert offenders == [], "build hardware through hardware.factory"


def test_the_walk_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from hardware.boards import BoardLockDriver\n")
    assert (2, "hardware.boards.BoardLockDriver") in list(imports(probe))


def test_importing_the_whole_domain_loads_none_of_them() -> None:
    modules = " ".join(".".join(p.relative_to(ROOT).with_suffix("").parts)
                       for p in DOMAIN.rglob("*.py") if p.stem != "__init__")
    code = (f"import importlib, sys\nfor m in '{modules}'.split(): importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in"
            f" {IO_LIBRARIES + OUTSIDE!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"
