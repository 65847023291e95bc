"""A refrigeration controller (Dixell-like) read and set over Modbus RTU, as a zone's probe.

Some cold zones are not run by our relay and DS18B20 but by their own refrigeration controller,
which regulates its compressor itself and exposes its probe, setpoint and alarms as Modbus
registers on an RS485 line. `ModbusController` talks to one such controller through pymodbus's
async serial client (RTU framer, 9600 8N1 by default, ~0.5 s timeout, few retries):

- `read_celsius()` reads the probe register as a signed 16-bit value times the scale (0.1 °C for
  Dixell, register 256) and so meets `locker.domain.ports.ZoneProbe`;
- `write_setpoint(celsius)` writes the setpoint register with FC16 (as Dixell requires);
- `read_alarms()` reads the alarm/status word.

The register addresses, scale and signedness come from a `RegisterMap` (Dixell's defaults; Carel
and Eliwell use other addresses, see the lockboard protocol notes). `ControllerCompressor` is the
`locker.domain.ports.Compressor` for such a zone: a no-op, because the controller switches its own
compressor.

What it must never do:
- return a temperature it has not checked: no answer, a Modbus exception, a garbled or short reply
  and the controller's "probe error" values (0x7FFF, 0x8000 by default) are each a
  `ControllerFault` naming the port, slave and register and what to check;
- raise anything but `ControllerFault` (a `HardwareError`) for what happens on the line;
- block the event loop, or wait longer than its timeout times its retries for one request;
- decide anything about the cold chain: that is locker/domain/zones.py's job.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

from locker.domain.errors import HardwareError

# pymodbus 3.10 renamed the unit keyword from `slave` to `device_id`; accept either release.
_UNIT_KW = (
    "device_id"
    if "device_id" in inspect.signature(AsyncModbusSerialClient.read_holding_registers).parameters
    else "slave"
)

_CHECK_LINE = (
    "check the RS485 wiring (A/B not swapped, 120 ohm termination at both ends), the "
    "controller's power, and that its Modbus address and baud rate match the config"
)


class ControllerFault(HardwareError):
    """A refrigeration controller did not answer, answered wrongly, or reported a probe error."""


@dataclass(frozen=True)
class RegisterMap:
    """Where a controller keeps its values. Defaults: Dixell (protocol document v2.6).

    Addresses are the 0-based register numbers sent on the wire. `input_registers` reads the
    temperature and alarms with FC4 instead of FC3 (holding registers).
    """

    temperature: int = 256
    setpoint: int = 768
    alarms: int = 1280
    scale: float = 0.1
    signed: bool = True
    input_registers: bool = False
    probe_error_values: frozenset[int] = field(default_factory=lambda: frozenset({0x7FFF, 0x8000}))

    def __post_init__(self) -> None:
        for name in ("temperature", "setpoint", "alarms"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"RegisterMap.{name} must be a register 0..65535, not {value}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"RegisterMap.scale must be a positive number, not {self.scale}")


class ModbusController:
    """One refrigeration controller on a Modbus RTU line (implements
    locker.domain.ports.ZoneProbe)."""

    def __init__(
        self,
        port: str,
        baud: int = 9600,
        slave: int = 1,
        registers: RegisterMap | None = None,
        *,
        timeout_s: float = 0.5,
        retries: int = 1,
    ) -> None:
        if not 1 <= slave <= 247:
            raise ValueError(f"Modbus slave id must be 1..247, not {slave}")
        if not 0 <= retries <= 3:
            raise ValueError(f"retries must be 0..3, not {retries}")
        self.port = port
        self.baud = baud
        self.slave = slave
        self.registers = registers or RegisterMap()
        self.timeout_s = timeout_s
        self.retries = retries
        self._client = AsyncModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baud,
            bytesize=8,
            parity="N",
            stopbits=1,
            timeout=timeout_s,
            retries=retries,
        )
        self._lock = asyncio.Lock()  # one transaction at a time on the line

    async def connect(self) -> None:
        """Open the serial port; `ControllerFault` if it cannot be opened."""
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:
            raise ControllerFault(
                f"Modbus controller on {self.port}: cannot open the port ({exc}); check the "
                "port name in the config and that the daemon may use it"
            ) from exc
        if not ok:
            raise ControllerFault(
                f"Modbus controller on {self.port}: cannot open the port; check the port name in "
                "the config and that the daemon may use it"
            )

    def close(self) -> None:
        """Close the serial port (safe to call twice)."""
        self._client.close()

    async def read_celsius(self) -> float:
        """The controller's probe in °C, or `ControllerFault` saying what was wrong."""
        regs = self.registers
        raw = await self._read(regs.temperature, "temperature")
        if raw in regs.probe_error_values:
            raise self._fault(
                regs.temperature,
                "temperature",
                f"the controller reports a probe error (raw 0x{raw:04X}): its probe is open, "
                "shorted or not configured",
                "check the probe's cable and connector at the controller, and its probe parameters",
            )
        value = raw - 0x10000 if regs.signed and raw >= 0x8000 else raw
        return round(value * regs.scale, 6)

    async def read_alarms(self) -> int:
        """The controller's alarm/status word (16 bits, meaning as in its manual)."""
        return await self._read(self.registers.alarms, "alarms")

    async def write_setpoint(self, celsius: float) -> None:
        """Write the setpoint register (FC16) with `celsius` in the register's scale."""
        regs = self.registers
        if not math.isfinite(celsius):
            raise ValueError(f"setpoint must be a finite temperature, not {celsius}")
        value = round(celsius / regs.scale)
        low, high = (-0x8000, 0x7FFF) if regs.signed else (0, 0xFFFF)
        if not low <= value <= high:
            raise ValueError(
                f"setpoint {celsius} °C does not fit the register at scale {regs.scale}"
            )
        await self._call(
            "write_registers", regs.setpoint, "setpoint", regs.setpoint, [value & 0xFFFF]
        )

    async def _read(self, address: int, what: str) -> int:
        method = (
            "read_input_registers" if self.registers.input_registers else "read_holding_registers"
        )
        result = await self._call(method, address, what, address, count=1)
        registers: Sequence[int] | None = getattr(result, "registers", None)
        if not registers or len(registers) != 1 or not 0 <= registers[0] <= 0xFFFF:
            raise self._fault(
                address,
                what,
                f"the reply carries {registers!r} instead of one register",
                _CHECK_LINE,
            )
        return int(registers[0])

    async def _call(self, method: str, address: int, what: str, *args: Any, **kwargs: Any) -> Any:
        kwargs[_UNIT_KW] = self.slave
        async with self._lock:
            try:
                if not self._client.connected:
                    await self._client.connect()
                result = await getattr(self._client, method)(*args, **kwargs)
            except ModbusException as exc:
                raise self._fault(
                    address,
                    what,
                    f"no valid answer within {self.timeout_s} s after {self.retries} retries "
                    f"({exc})",
                    _CHECK_LINE,
                ) from None
            except (OSError, ValueError) as exc:
                raise self._fault(address, what, f"the line failed ({exc})", _CHECK_LINE) from None
        if result is None or result.isError():
            code = getattr(result, "exception_code", None)
            raise self._fault(
                address,
                what,
                f"the controller answered with Modbus exception {code} ({result})",
                "check the register map in the config against the controller's manual (model "
                "and firmware)",
            )
        return result

    def _fault(self, address: int, what: str, problem: str, check: str) -> ControllerFault:
        return ControllerFault(
            f"Modbus controller on {self.port}, slave {self.slave}, register {address} "
            f"({what}): {problem}; {check}."
        )


class ControllerCompressor:
    """The `locker.domain.ports.Compressor` of a zone run by its own refrigeration controller: a
    no-op.

    The controller switches its compressor itself against its setpoint, so `switch()` does
    nothing: the zone's thermostat logic may call it as for any zone, and nothing happens on the
    line. To change what the zone holds, use `ModbusController.write_setpoint()`.
    """

    def switch(self, on: bool) -> None:
        """Do nothing: the controller regulates its own compressor."""
