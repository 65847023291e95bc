"""The locker's hardware, built from its config in one place: the lock driver (RS485 boards or
GPIO pins), and each regulated zone's probe and compressor relay, or its Modbus refrigeration
controller. `locker run`, `locker doctor` and the demo build through here, so a new kind of
driver or probe is wired once.

Each driver module is imported only when the config asks for it: pymodbus alone weighs 10 MB,
and gpiozero claims pins when it loads a pin factory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from locker.domain.config import BusConfig, GpioConfig, LockerConfig, ModbusZone
from locker.domain.errors import LockerError
from locker.domain.model import Zone
from locker.domain.ports import Compressor, LockDriver, ZoneProbe

if TYPE_CHECKING:
    from hardware.bus import Bus
    from hardware.codecs.base import Codec
    from hardware.compressor import GpioCompressor
    from hardware.gpio import GpioLockDriver
    from hardware.modbus import ModbusController
    from hardware.probes import DS18B20Probe


def lock_driver(config: LockerConfig) -> LockDriver:
    """The driver the config asks for: RS485 boards or GPIO pins."""
    if config.bus is not None:
        from hardware.boards import BoardLockDriver

        return BoardLockDriver(config.bus, config.compartments)
    if config.gpio is not None:
        return gpio_driver(config, config.gpio)
    raise LockerError(f"{config.path}: declare a [bus] or a [gpio] table")


def bus_line(bus: BusConfig) -> tuple[Bus, Codec]:
    """The RS485 line and the codec of its boards, for a check that asks each board itself
    (`locker doctor`); the driver builds the same pair inside."""
    from hardware.bus import Bus
    from hardware.codecs import get_codec

    codec = get_codec(bus.protocol, bus.boards)
    return Bus(bus, codec), codec


def gpio_driver(config: LockerConfig, gpio: GpioConfig) -> GpioLockDriver:
    from hardware.gpio import GpioLockDriver

    return GpioLockDriver(gpio, config.compartments)


def probe(path: Path) -> DS18B20Probe:
    """A DS18B20 read through its 1-Wire `w1_slave` file."""
    from hardware.probes import DS18B20Probe

    return DS18B20Probe(path)


def compressor(pin: int) -> GpioCompressor:
    """A compressor relay on a GPIO pin, off until told otherwise."""
    from hardware.compressor import GpioCompressor

    return GpioCompressor(pin)


def modbus_controller(m: ModbusZone) -> ModbusController:
    """A refrigeration controller on Modbus RTU (ValueError: a register map that cannot be)."""
    from hardware.modbus import ModbusController, RegisterMap

    registers = RegisterMap(temperature=m.temperature, setpoint=m.setpoint, alarms=m.alarms,
                            scale=m.scale, input_registers=m.input_registers)
    return ModbusController(m.port, m.baud, m.slave, registers)


def zones(config: LockerConfig) -> dict[Zone, tuple[ZoneProbe, Compressor]]:
    """A probe and a compressor for each zone the config regulates: a DS18B20 and a relay, or a
    Modbus controller that is both."""
    built: dict[Zone, tuple[ZoneProbe, Compressor]] = {}
    for zone, limits in config.zones.items():
        if limits.probe is not None and limits.compressor_pin is not None:
            built[zone] = (probe(limits.probe), compressor(limits.compressor_pin))
        elif limits.modbus is not None:
            from hardware.modbus import ControllerCompressor

            built[zone] = (modbus_controller(limits.modbus), ControllerCompressor())
    return built
