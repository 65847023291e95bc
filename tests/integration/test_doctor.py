"""`locker doctor` as a technician runs it: the real command in its own process, against the
simulated boards in theirs, through a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import serial  # type: ignore[import-untyped]

from locker.domain.codes import create_keys, create_private_file
from locker.domain.config import load_config
from locker.domain.haccp import create_record_key
from locker.domain.staff import create_secret
from locker.domain.store import Store
from simulator.control import SimulatorProcess, spawn
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.paths import ROOT

ROW = re.compile(r"^(?P<check>\S.*?)\s{2,}(?P<result>OK|WARN|FAIL|SKIP)\s{2,}(?P<detail>.*)$")
# a DS18B20's w1_slave file reading 23.125 °C (its scratchpad's CRC is right)
W1_SLAVE = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"


def prepare(folder: Path, text: str = SMALL_CONFIG) -> Path:
    """A config with everything `locker init` and `locker staff-secret` would have made."""
    path = write_config(folder, text)
    config = load_config(path)
    create_keys(config)
    create_record_key(config.record_key_file)
    create_private_file(config.ops_token_file, "ops-token-0123456789abcdef")
    for member in config.staff.members:
        create_secret(config.staff_secret_file(member.id))
    Store(config.database).close()
    return path


Rows = dict[str, tuple[str, str]]


async def doctor(config: Path, port: str | None = None,
                 env: Mapping[str, str] | None = None) -> tuple[int, str, Rows]:
    """Run `locker doctor`; its exit code, its output and {check: (result, detail)}."""
    argv = [sys.executable, "-m", "locker.cli", "doctor", "--config", str(config)]
    if port is not None:
        argv += ["--serial-port", port]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    text = out.decode()
    rows: Rows = {}
    for line in text.splitlines():
        found = ROW.match(line)
        if found:
            rows[found["check"]] = (found["result"], found["detail"])
    assert process.returncode is not None
    return process.returncode, text, rows


def failing(rows: Mapping[str, tuple[str, str]]) -> list[str]:
    return [check for check, (result, _) in rows.items() if result == "FAIL"]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return prepare(tmp_path)


@pytest.fixture
async def sim(config_file: Path) -> AsyncIterator[SimulatorProcess]:
    process = await spawn(config_file)
    try:
        yield process
    finally:
        await process.stop()


async def test_a_healthy_locker_passes_with_every_board_answering(
        config_file: Path, sim: SimulatorProcess) -> None:
    code, out, rows = await doctor(config_file, sim.port)
    assert code == 0, out
    assert failing(rows) == [], out
    for check in ("config", "code keys", "record key", "ops token", "staff secret courier-1",
                  "staff secret tech-1", "store", "serial port", "free disk"):
        assert rows[check][0] == "OK", out
    assert rows["board 0"] == ("OK", "answers: 3 doors closed, 0 open")
    assert rows["board 1"] == ("OK", "answers: 3 doors closed, 0 open")
    assert rows["doors board 0"] == ("OK", "3 closed")
    assert "schema version" in rows["store"][1] and "outbox 0 events" in rows["store"][1]
    assert "clock" in rows
    # the table is aligned: every result starts in the same column
    starts = {found.start("result") for found in map(ROW.match, out.splitlines()) if found}
    assert len(starts) == 1, out


async def test_a_silent_board_fails_its_row(config_file: Path, sim: SimulatorProcess) -> None:
    await sim.client.silent(1)
    code, out, rows = await doctor(config_file, sim.port)
    assert code == 1, out
    assert rows["board 0"][0] == "OK"
    result, detail = rows["board 1"]
    assert result == "FAIL" and "no answer" in detail and "address switches" in detail
    assert "termination" in detail
    assert rows["doors board 1"][0] == "FAIL" and "F2, Z1, Z2" in rows["doors board 1"][1]
    assert failing(rows) == ["board 1", "doors board 1"], out


async def test_an_open_door_and_a_missing_staff_secret_only_warn(
        config_file: Path, sim: SimulatorProcess) -> None:
    await sim.client.force("A2")
    load_config(config_file).staff_secret_file("tech-1").unlink()
    code, out, rows = await doctor(config_file, sim.port)
    assert code == 0, out
    assert rows["doors board 0"] == ("WARN", "door A2 open; 2 closed")
    assert rows["board 0"] == ("OK", "answers: 2 doors closed, 1 open")
    result, detail = rows["staff secret tech-1"]
    assert result == "WARN" and "locker staff-secret --id tech-1" in detail


async def test_a_secret_other_users_can_read_fails(
        config_file: Path, sim: SimulatorProcess) -> None:
    load_config(config_file).digest_key_file.chmod(0o644)
    code, out, rows = await doctor(config_file, sim.port)
    assert code == 1, out
    result, detail = rows["code keys"]
    assert result == "FAIL" and "readable by other users" in detail and "chmod 600" in detail
    assert failing(rows) == ["code keys"], out


async def test_the_port_held_by_another_program_is_said_and_the_boards_skipped(
        config_file: Path, sim: SimulatorProcess) -> None:
    held = serial.Serial(sim.port, exclusive=True)  # as the running daemon holds it
    try:
        code, out, rows = await doctor(config_file, sim.port)
    finally:
        held.close()
    assert code == 1, out
    result, detail = rows["serial port"]
    assert result == "FAIL" and "held by another program" in detail and "daemon" in detail
    assert rows["board 0"][0] == rows["board 1"][0] == "SKIP"


async def test_a_broken_config_fails_its_row_and_skips_what_needs_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, SMALL_CONFIG.replace("retries = 1", "retries = 1\nretry = 3"))
    code, out, rows = await doctor(path)
    assert code == 1, out
    result, detail = rows["config"]
    assert result == "FAIL" and "bus.retry: unknown key" in detail
    assert rows["store"][0] == rows["hardware"][0] == "SKIP"
    assert "clock" in rows


async def test_gpio_pins_and_a_probe_on_gpiozero_mock_pins(tmp_path: Path) -> None:
    (tmp_path / "w1_slave").write_text(W1_SLAVE)
    text = """
[locker]
id = "gpio-test"
data_dir = "data"

[gpio]
debounce_ms = 0

[zones.fresh]
probe = "w1_slave"
compressor_pin = 12

[layout]
compartments = [
    { id = "G1", zone = "ambient", size = "M", lock_pin = 17, door_pin = 27 },
    { id = "G2", zone = "fresh", size = "M", lock_pin = 22, door_pin = 23 },
]
"""
    path = prepare(tmp_path, text)
    code, out, rows = await doctor(path, env={"GPIOZERO_PIN_FACTORY": "mock"})
    assert code == 0, out
    assert rows["gpio"] == ("OK", "2 lock relays (off) and 2 reed switches claimed")
    assert rows["doors gpio"][0] == "WARN"  # mock pins float high: the doors read open
    assert rows["compressor fresh"] == ("OK", "GPIO12 claimed (relay off)")
    result, detail = rows["probe fresh"]
    assert result == "WARN" and detail.startswith("23.1 °C (DS18B20), above fresh's 0..4 °C")
    assert "serial port" not in rows
