"""A wrong config fails at start with the file, the key and why; the examples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from locker.domain.config import load_config
from locker.domain.errors import ConfigError
from locker.domain.model import Zone
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.paths import ROOT


def test_the_shipped_example_is_a_realistic_locker() -> None:
    config = load_config(ROOT / "examples" / "locker.toml")
    assert config.bus is not None and len(config.bus.boards) == 3
    assert len(config.compartments) >= 60
    assert {c.zone for c in config.compartments} == set(Zone)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.toml")))
def test_every_example_loads(name: str) -> None:
    load_config(ROOT / "examples" / name)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[bus]", "[bus]\nbaud_rate = 9600"), r"bus\.baud_rate: unknown key"),
        (('protocol = "kerong"', 'protocol = "acme"'), r"bus\.protocol: must be one of"),
        (("baud = 19200", 'baud = "fast"'), r"bus\.baud: must be an integer, not str"),
        (("baud = 19200", "baud = 12345"), r"bus\.baud: must be one of"),
        (("board = 1, channel = 3", "board = 0, channel = 1"),
         r"compartments\[5\]\.channel: board 0 channel 1 already drives compartment A1"),
        (("board = 1, channel = 2", "board = 7, channel = 2"),
         r"compartments\[4\]\.board: board 7 is not declared"),
        (('id = "F2"', 'id = "A1"'), r"compartments\[3\]\.id: 'A1' already used"),
        (('zone = "fresh", size = "S"', 'zone = "chilled", size = "S"'),
         r"compartments\[3\]\.zone: must be one of ambient, fresh, frozen"),
        (("channel = 3 }", "channel = 17 }"), r"channel: board \d has 16 channels"),
        (("address = 1", "address = 0"), r"bus\.boards\[1\]\.address: board 0 declared twice"),
        (("address = 1", "address = 16"), r"protocol kerong addresses boards 0-15"),
        (("open_timeout_s = 2", "open_timeout_s = true"),
         r"doors\.open_timeout_s: must be a number"),
        (('id = "test-locker"', 'id = "test locker!"'), r"locker\.id: use at most 64 letters"),
        # identifiers are matched whole: a trailing newline or a non-ASCII digit is no id
        (('id = "test-locker"', 'id = "test-locker\\n"'), r"locker\.id: use at most 64"),
        (('id = "courier-1"', 'id = "courier-1\\n"'), r"staff\.members\[0\]\.id: use at most 32"),
        (('id = "courier-1"', 'id = "courier-\u00b2"'), r"staff\.members\[0\]\.id: use at most 32"),
        (('id = "A1"', 'id = "A1\\n"'), r"compartments\[0\]\.id: use at most 32"),
        (('id = "A1"', 'id = "../A1"'), r"compartments\[0\]\.id: use at most 32"),
        (("address = 1", "address = 1\nitem_sensor = 1"),
         r"bus\.boards\[1\]\.item_sensor: must be true or false"),
        (('id = "A1", zone = "ambient", size = "M", board = 0, channel = 1',
          'id = "A1", zone = "ambient", size = "M", board = 0, channel = 1, item_pin = 4'),
         r"compartments\[0\]\.item_pin: a compartment on a board gets its item sensor from"),
        (("[layout]", "[layuot]"), r"layout: is required"),
        (("[locker]", "[locker\n"), r"not valid TOML"),
    ],
)
def test_a_wrong_config_names_file_key_and_reason(tmp_path: Path, change: tuple[str, str],
                                                   expected: str) -> None:
    old, new = change
    assert old in SMALL_CONFIG
    path = write_config(tmp_path, SMALL_CONFIG.replace(old, new, 1))
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_gpio_wiring_refuses_a_pin_used_twice(tmp_path: Path) -> None:
    text = """
[locker]
id = "small"
[gpio]
pulse_ms = 300
[layout]
compartments = [
  { id = "C1", zone = "ambient", size = "M", lock_pin = 17, door_pin = 27 },
  { id = "C2", zone = "fresh", size = "M", lock_pin = 22, door_pin = 17 },
]
"""
    with pytest.raises(ConfigError, match=r"compartments\[1\]: GPIO pin 17 already used by"
                                          r" compartment C1"):
        load_config(write_config(tmp_path, text))


def test_the_locale_and_time_zone_are_checked(tmp_path: Path) -> None:
    french = SMALL_CONFIG.replace("[locker]\n", '[locker]\nlocale = "fr-FR"\n'
                                  'time_zone = "Europe/Paris"\n', 1)
    config = load_config(write_config(tmp_path, french))
    assert (config.locale, config.time_zone) == ("fr-FR", "Europe/Paris")
    default = load_config(write_config(tmp_path, SMALL_CONFIG))
    assert (default.locale, default.time_zone) == ("en-GB", "UTC")
    for bad, expected in ((french.replace("fr-FR", "french"), r"locker\.locale: a language tag"),
                          (french.replace("Europe/Paris", "Europe/Lyon"), r"locker\.time_zone"),
                          (french.replace("Europe/Paris", "../../etc/passwd"),
                           r"locker\.time_zone")):
        with pytest.raises(ConfigError, match=expected):
            load_config(write_config(tmp_path, bad))


def test_item_sensors_are_set_per_board_or_per_gpio_compartment(tmp_path: Path) -> None:
    text = SMALL_CONFIG.replace("address = 1", "address = 1\nitem_sensor = true", 1)
    config = load_config(write_config(tmp_path, text))
    assert {c.id for c in config.compartments if c.item_sensor} == {"F2", "Z1", "Z2"}
    assert not any(c.item_sensor for c in load_config(write_config(tmp_path)).compartments)
    gpio = """
[locker]
id = "small"
[gpio]
pulse_ms = 300
[layout]
compartments = [
  { id = "C1", zone = "ambient", size = "M", lock_pin = 17, door_pin = 27, item_pin = 5 },
  { id = "C2", zone = "fresh", size = "M", lock_pin = 22, door_pin = 23 },
]
"""
    config = load_config(write_config(tmp_path, gpio))
    assert [c.item_sensor for c in config.compartments] == [True, False]
    with pytest.raises(ConfigError, match=r"compartments\[1\]: GPIO pin 5 already used by"
                                          r" compartment C1"):
        load_config(write_config(tmp_path, gpio.replace("door_pin = 23", "door_pin = 5")))


@pytest.mark.parametrize("protocol", ["winnsen", "generic"])
def test_item_sensor_on_a_board_without_item_bits_is_an_error(tmp_path: Path,
                                                               protocol: str) -> None:
    text = (SMALL_CONFIG.replace('protocol = "kerong"', f'protocol = "{protocol}"')
            .replace("baud = 19200", "baud = 9600").replace("address = 0", "address = 2")
            .replace("board = 0", "board = 2")
            .replace("address = 1", "address = 1\nitem_sensor = true", 1))
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"bus\.boards\[1\]\.item_sensor: protocol {protocol}"
                                          r" boards report no item presence") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_the_cold_chain_policy_and_calibration_dates_are_checked(tmp_path: Path) -> None:
    good = SMALL_CONFIG + ('\n[coldchain]\non_excursion = "withhold"\n'
                           '[zones.fresh]\nprobe_calibrated = "2026-10-01"\n')
    config = load_config(write_config(tmp_path, good))
    assert config.coldchain.on_excursion == "withhold"
    assert config.zones[Zone.FRESH].probe_calibrated == "2026-10-01"
    assert load_config(write_config(tmp_path, SMALL_CONFIG)).coldchain.on_excursion == "warn"
    for bad, expected in (
            (good.replace('"withhold"', '"discard"'), r"coldchain\.on_excursion: must be one of"),
            (good.replace("2026-10-01", "01/10/2026"), r"zones\.fresh\.probe_calibrated: the"),
            (good.replace("2026-10-01", "2026-13-01"), r"zones\.fresh\.probe_calibrated: the"),
            (good + "\n[coldchain.extra]\n", r"coldchain\.extra: unknown key")):
        with pytest.raises(ConfigError, match=expected):
            load_config(write_config(tmp_path, bad))


def test_a_regulated_zone_needs_its_probe_and_its_relay(tmp_path: Path) -> None:
    text = SMALL_CONFIG + '\n[zones.fresh]\nprobe = "w1/28-1/w1_slave"\n'
    with pytest.raises(ConfigError, match=r"zones\.fresh\.compressor_pin: a regulated zone"):
        load_config(write_config(tmp_path, text))
    text = SMALL_CONFIG + '\n[zones.fresh]\nsetpoint_c = 9.0\n'
    with pytest.raises(ConfigError, match=r"zones\.fresh\.setpoint_c: must lie inside"):
        load_config(write_config(tmp_path, text))


def test_the_serial_port_can_be_overridden(config_path: Path) -> None:
    config = load_config(config_path, port="/dev/pts/9")
    assert config.bus is not None and config.bus.port == "/dev/pts/9"
