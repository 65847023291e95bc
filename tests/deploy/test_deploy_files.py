"""The files an operator installs on the Pi: the systemd unit and /etc/locker/locker.toml.

The unit is verified by systemd itself (`systemd-analyze verify`, which .ci/run installs), with
its paths pointed at this checkout's venv; its directives are what the README promises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from locker.cli import parser
from locker.domain.config import load_config
from tests.support.paths import ROOT

UNIT = ROOT / "deploy" / "systemd" / "locker.service"


def directives() -> dict[str, str]:
    """Each directive's value (the last one, for a directive given more than once)."""
    return {key: values[-1] for key, values in all_directives().items()}


def all_directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_supervises_the_daemon_as_the_readme_says() -> None:
    unit = directives()
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main"
    assert int(unit["WatchdogSec"]) >= 10 and unit["Restart"] == "on-failure"
    assert unit["User"] == "locker" and set(unit["SupplementaryGroups"].split()) == {
        "dialout", "gpio"}
    assert unit["StateDirectory"] == "locker" and unit["StateDirectoryMode"] == "0700"
    # the command line is one our CLI accepts, with JSON logs for journald, run by the python
    # of the current slot (remote updates switch it), which never imports from its folder (-P)
    argv = unit["ExecStart"].split()
    assert argv[:4] == ["/opt/locker/slots/current/bin/python", "-P", "-m", "locker.cli"]
    args = parser().parse_args(argv[4:])
    assert args.command == "run" and args.log_format == "json"
    assert args.config == "/etc/locker/locker.toml"


def test_the_unit_runs_the_boot_guard_first_and_restarts_for_an_update() -> None:
    unit, before = directives(), all_directives()["ExecStartPre"]
    assert before[0] == "/opt/locker/bin/locker-boot --config /etc/locker/locker.toml"
    assert before[1].startswith("/opt/locker/slots/current/bin/python -P -m locker.cli"
                                " check-config")
    assert unit["RestartForceExitStatus"] == "75" and unit["StartLimitIntervalSec"] == "0"
    assert unit["ReadWritePaths"] == "/opt/locker/slots"  # ProtectSystem=strict otherwise
    assert os.access(ROOT / "deploy" / "locker-boot", os.X_OK)


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian package systemd; .ci/run installs it)"
    unit = tmp_path / "locker.service"
    unit.write_text(UNIT.read_text()
                    .replace("/opt/locker/slots/current/bin/python", sys.executable)
                    .replace("/opt/locker/bin/locker-boot", str(ROOT / "deploy" / "locker-boot")))
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
