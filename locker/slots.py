"""The two slots a locker runs from: install a wheel into the one not running, switch `current`.

    slots_dir/a/          a virtual environment (`python -m venv --without-pip`): its
                          site-packages holds our wheel, unpacked, and `_locker_shared.pth`,
                          which names the site-packages where the dependencies live (aiohttp,
                          pyserial, ...: installed once, shared by both slots)
    slots_dir/b/          the other one
    slots_dir/current     a symlink to `a` or `b`: systemd starts current/bin/python

A slot's own site-packages comes first on sys.path, so its `locker`, `api`, `hardware` and
`simulator` win over any copy in the shared folder. Installing never touches the slot `current`
points to; switching is one rename of a fresh symlink over `current` (atomic: a power cut leaves
the old link or the new one, never none). The boot guard (deploy/locker-boot) switches back
the same way, with the standard library only.

What it must never do: install into the running slot, or switch to a slot whose install did not
pass its check (the new slot's python imports the app and says its version).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from locker.domain.errors import LockerError
from locker.domain.update import sync_dir

SLOTS = ("a", "b")
CURRENT = "current"
SHARED_PTH = "_locker_shared.pth"
# the top-level modules of our dependencies: where they live is the shared site-packages
DEPENDENCY_MODULES = ("aiohttp", "serial", "serial_asyncio_fast", "gpiozero", "sqlite_utils",
                      "pyotp", "pymodbus", "cryptography", "prometheus_client", "tuf",
                      "securesystemslib")
CHECK = "import api.app, locker.cli, locker; print(locker.__version__)"
CHECK_TIMEOUT_S = 120.0


class SlotError(LockerError):
    """The slot was not installed or not switched; `reason` is one word for central."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def current_slot(slots_dir: Path) -> str | None:
    """The slot `current` points to, if it points to one."""
    try:
        name = os.readlink(slots_dir / CURRENT)
    except OSError:
        return None
    name = os.path.basename(name.rstrip("/"))
    return name if name in SLOTS else None


def other_slot(slots_dir: Path) -> str:
    """The slot to install into: the one `current` does not point to (`a` on a first install)."""
    running = current_slot(slots_dir)
    return "b" if running == "a" else "a"


def slot_python(slots_dir: Path, slot: str) -> Path:
    return slots_dir / slot / "bin" / "python"


def shared_paths() -> list[str]:
    """The folders the dependencies are imported from in this process, without any slot's own
    site-packages (which holds our package)."""
    found: list[str] = []
    for name in DEPENDENCY_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        folder = Path(spec.origin).resolve().parent
        if spec.submodule_search_locations:  # a package: its folder's parent
            folder = folder.parent
        text = str(folder)
        if text not in found:
            found.append(text)
    return found


def _site_packages(prefix: Path) -> Path:
    """Where a virtual environment at `prefix` imports from (POSIX layout: a Pi, a laptop)."""
    return prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def _system_site_packages() -> bool:
    """Whether this process's virtual environment sees the system's packages (lgpio comes from
    Debian on a Pi); a new slot is made the same way."""
    config = Path(sys.prefix) / "pyvenv.cfg"
    with contextlib.suppress(OSError):
        for line in config.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "include-system-site-packages":
                return value.strip().lower() == "true"
    return False


def install(slots_dir: Path, slot: str, wheel: Path, version: str,
            shared: Iterable[str] | None = None) -> Path:
    """Make `slot` a fresh virtual environment running `wheel`, and check that it says
    `version`. Returns the slot's folder."""
    slots_dir = slots_dir.absolute()
    if slot not in SLOTS:
        raise SlotError("bad_slot", f"no slot {slot!r} (there is a and b)")
    if current_slot(slots_dir) == slot:
        raise SlotError("running_slot", f"{slots_dir / slot} is the running slot; install into"
                        " the other one")
    slots_dir.mkdir(parents=True, exist_ok=True)
    folder = slots_dir / slot
    shared = list(shared_paths() if shared is None else shared)
    _check_dependencies(wheel, shared)
    try:
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)
        venv.EnvBuilder(with_pip=False, symlinks=True, clear=True,
                        system_site_packages=_system_site_packages()).create(folder)
        site = _site_packages(folder)
        site.mkdir(parents=True, exist_ok=True)
        (site / SHARED_PTH).write_text("".join(f"{path}\n" for path in shared), encoding="utf-8")
        unpack(wheel, site)
    except OSError as exc:
        reason = "disk_full" if exc.errno == 28 else "install_failed"
        raise SlotError(reason, f"installing {wheel.name} into {folder} failed: {exc}") from None
    check(slots_dir, slot, version)
    return folder


def _check_dependencies(wheel: Path, shared: list[str]) -> None:
    """Every distribution the wheel requires (outside extras) is installed where the slot will
    look: a release that needs a new dependency cannot be installed by this route."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next((n for n in archive.namelist()
                             if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None)
            if metadata is None:
                raise SlotError("bad_wheel", f"{wheel.name}: no METADATA in the wheel")
            text = archive.read(metadata).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile) as exc:
        raise SlotError("bad_wheel", f"{wheel.name}: not a wheel: {exc}") from None
    available = {_normal(d.metadata["Name"] or "")
                 for d in importlib.metadata.distributions(path=shared)}
    if _system_site_packages():
        available |= {_normal(d.metadata["Name"] or "")
                      for d in importlib.metadata.distributions()}
    missing = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = line.split(":", 1)[1].strip()
        if re.search(r"\bextra\s*==", requirement):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if match and _normal(match.group()) not in available:
            missing.append(match.group())
    if missing:
        raise SlotError("missing_dependency", f"{wheel.name} needs {', '.join(missing)}, not"
                        " installed on this locker: install it into the shared environment"
                        " first")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unpack(wheel: Path, site: Path) -> None:
    """Unpack a pure-Python wheel into `site` (what `pip install --no-deps --target` does for
    ours, without pip: a slot has none). Paths that would leave `site` are refused."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                name = PurePosixPath(info.filename)
                if name.is_absolute() or ".." in name.parts or not name.parts:
                    raise SlotError("bad_wheel", f"{wheel.name}: unsafe path {info.filename!r}")
                parts = name.parts
                if parts[0].endswith(".data"):
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        raise SlotError("bad_wheel", f"{wheel.name}: cannot install"
                                        f" {info.filename!r} into a slot")
                    parts = parts[2:]
                destination = site.joinpath(*parts)
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(destination, "wb") as target:
                    shutil.copyfileobj(source, target)
    except zipfile.BadZipFile as exc:
        raise SlotError("bad_wheel", f"{wheel.name}: not a wheel: {exc}") from None


def check(slots_dir: Path, slot: str, version: str) -> None:
    """The slot's python imports the app and says `version`, from a neutral folder and with
    no PYTHONPATH: what systemd will run."""
    slots_dir = slots_dir.absolute()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        result = subprocess.run([str(slot_python(slots_dir, slot)), "-P", "-c", CHECK],
                                capture_output=True, text=True, cwd=slots_dir / slot, env=env,
                                timeout=CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlotError("broken_install", f"slot {slot} does not run: {exc}") from None
    said = result.stdout.strip().splitlines()[-1:] if result.stdout else []
    if result.returncode != 0 or said != [version]:
        raise SlotError("broken_install", f"slot {slot} does not start version {version}:"
                        f" {(result.stderr or result.stdout).strip()[-500:]}")


def switch(slots_dir: Path, slot: str) -> None:
    """Point `current` at `slot`, atomically (a fresh link renamed over the old one)."""
    if slot not in SLOTS:
        raise SlotError("bad_slot", f"no slot {slot!r}")
    temporary = slots_dir / f".{CURRENT}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    os.symlink(slot, temporary)
    os.replace(temporary, slots_dir / CURRENT)
    sync_dir(slots_dir)


def backup_store(database: Path, copy: Path) -> None:
    """A consistent copy of the live store (SQLite's online backup), flushed to the card."""
    temporary = copy.with_name(copy.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    source = sqlite3.connect(database, timeout=30.0)
    try:
        target = sqlite3.connect(temporary)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    with open(temporary, "rb+") as file:
        os.fsync(file.fileno())
    os.replace(temporary, copy)
    sync_dir(copy.parent)
