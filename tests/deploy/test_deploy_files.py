"""The files an operator installs on the Pi: the systemd unit and /etc/locker/locker.toml.

The unit is verified by systemd itself (`systemd-analyze verify`, which .ci/run installs), with
its paths pointed at this checkout's venv; its directives are what the README promises.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from locker.cli import parser
from locker.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "locker.service"


def directives() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def test_the_unit_supervises_the_daemon_as_the_readme_says() -> None:
    unit = directives()
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main"
    assert int(unit["WatchdogSec"]) >= 10 and unit["Restart"] == "on-failure"
    assert unit["User"] == "locker" and set(unit["SupplementaryGroups"].split()) == {
        "dialout", "gpio"}
    assert unit["StateDirectory"] == "locker" and unit["StateDirectoryMode"] == "0700"
    # the command line is one our CLI accepts, with JSON logs for journald
    argv = unit["ExecStart"].split()
    assert argv[0] == "/opt/locker/venv/bin/locker"
    args = parser().parse_args(argv[1:])
    assert args.command == "run" and args.log_format == "json"
    assert args.config == "/etc/locker/locker.toml"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian package systemd; .ci/run installs it)"
    locker = Path(sys.executable).parent / "locker"
    unit = tmp_path / "locker.service"
    unit.write_text(UNIT.read_text().replace("/opt/locker/venv/bin/locker", str(locker)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "locker.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_the_pi_config_is_valid_and_keeps_its_data_in_var_lib() -> None:
    config = load_config(ROOT / "deploy" / "locker.toml")
    assert config.data_dir == Path("/var/lib/locker")
    assert config.bus is not None and config.bus.port.startswith("/dev/serial/by-id/")
    assert all(config.zones[z].probe and config.zones[z].compressor_pin
               for z in config.zones if z.value != "ambient")
    assert config.central is not None and config.central.url.startswith("https://")
