"""Shared fixtures: a small locker config in a temporary folder, with its secret."""

from __future__ import annotations

from pathlib import Path

import pytest

import hardware.codecs  # noqa: F401  (registers the lock-board protocols load_config reads)
from locker.codes import create_keys
from locker.config import LockerConfig, load_config

SMALL_CONFIG = """
[locker]
id = "test-locker"
support_phone = "0800 000 000"
data_dir = "data"

[bus]
port = "/dev/null"
protocol = "kerong"
baud = 19200
poll_interval_s = 0.05
timeout_s = 0.1
retries = 1
offline_after = 2
retry_offline_s = 0.3

[[bus.boards]]
address = 0

[[bus.boards]]
address = 1

[throttle]
free_wrong_codes = 2
first_delay_s = 10
max_delay_s = 30
forget_per_hour = 30
alarm_failures = 5
alarm_window_s = 600

[doors]
open_timeout_s = 2
left_open_alarm_s = 10

[staff]
idle_timeout_s = 60

[[staff.members]]
id = "courier-1"
name = "Camille"
role = "courier"

[[staff.members]]
id = "tech-1"
name = "Sam"
role = "technician"

[layout]
compartments = [
    { id = "A1", zone = "ambient", size = "M", board = 0, channel = 1 },
    { id = "A2", zone = "ambient", size = "L", board = 0, channel = 2, level = 2 },
    { id = "F1", zone = "fresh", size = "M", board = 0, channel = 3 },
    { id = "F2", zone = "fresh", size = "S", board = 1, channel = 1 },
    { id = "Z1", zone = "frozen", size = "M", board = 1, channel = 2 },
    { id = "Z2", zone = "frozen", size = "L", board = 1, channel = 3 },
]
"""


def write_config(folder: Path, text: str = SMALL_CONFIG) -> Path:
    path = folder / "locker.toml"
    path.write_text(text)
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    config = load_config(path)
    create_keys(config)
    return path


@pytest.fixture
def config(config_path: Path) -> LockerConfig:
    return load_config(config_path)


