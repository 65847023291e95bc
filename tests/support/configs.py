"""The small test locker's config (six compartments on two boards), written to a folder, and
the edits of it that several tests make: another bus protocol, item sensors."""

from __future__ import annotations

from pathlib import Path

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


BUS = {
    "kerong": ('protocol = "kerong"\nbaud = 19200', ("address = 0", "address = 1")),
    "generic": ('protocol = "generic"\nbaud = 9600', ("address = 1", "address = 2")),
    "winnsen": ('protocol = "winnsen"\nbaud = 9600', ("address = 0", "address = 1")),
}


def config_text(protocol: str) -> str:
    line, (first, second) = BUS[protocol]
    text = SMALL_CONFIG.replace('protocol = "kerong"\nbaud = 19200', line)
    text = text.replace("address = 0", first, 1).replace("address = 1", second, 1)
    if protocol == "generic":  # generic boards are numbered from 1
        text = text.replace("board = 1,", "board = 2,").replace("board = 0,", "board = 1,")
    return text


def with_item_sensors(text: str) -> str:
    """Both boards report what is inside (Kerong's infrared bits)."""
    for address in (0, 1):
        text = text.replace(f"[[bus.boards]]\naddress = {address}\n",
                            f"[[bus.boards]]\naddress = {address}\nitem_sensor = true\n")
    assert text.count("item_sensor = true") == 2
    return text
