"""A simulated refrigeration controller (Dixell-like): a Modbus RTU slave on a pseudo-terminal.

`ModbusSlaveSim.start()` opens a pty pair, serves Modbus RTU on the master end from the event loop
and gives `port`, the slave end's /dev/pts path, for the daemon's real serial client to open, so
the real RTU bytes (CRC and all) pass through the kernel's tty layer between the two.

It answers FC3/FC4 (read holding/input registers), FC6 and FC16 (write registers) from its own
register store (`registers`, address -> 16-bit value), which holds the zone's temperature, a
setpoint and an alarm word at the addresses given (Dixell's by default: 256, 768, 1280, signed
16-bit x 0.1). The temperature comes from `temperature_c` or, when a `ZoneModel` is attached, from
the model at each request (its `probe_unplugged` fault reads as the probe-error value 0x7FFF).
Unknown addresses get Modbus exception 2 (illegal data address); other functions exception 1.

Fault injection (`fault`): "silent" (answer nothing), "garbage" (answer bytes that are no valid
frame), or set `probe_error = True` to report 0x7FFF in the temperature register.

Why not pymodbus's ModbusSerialServer: it opens its port by path, and a pty master cannot be
reopened by path (opening /proc/self/fd/N of /dev/ptmx makes a new pty), so one end would be left
unreachable; and its fault hooks are not part of a stable API. The RTU framing is a few lines.

It must NEVER import anything from hardware/ (its CRC and framing are written again here from the
Modbus over Serial Line specification, so a bug in the driver cannot hide behind the same bug in
the simulator), and it never regulates anything: the test or the demo sets the values.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import tty
from typing import Literal

from simulator.thermal import ZoneModel

Fault = Literal["none", "silent", "garbage"]
PROBE_ERROR_RAW = 0x7FFF
GARBAGE = bytes([0x01, 0x03, 0x02, 0xDE, 0xAD, 0x00, 0x00, 0x55])  # right shape, wrong CRC


def modbus_crc16(data: bytes) -> int:
    """CRC-16/MODBUS (polynomial 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(pdu: bytes) -> bytes:
    return pdu + struct.pack("<H", modbus_crc16(pdu))


class ModbusSlaveSim:
    """One controller at `unit` on a pty; `port` is the path a serial client opens."""

    def __init__(
        self,
        unit: int = 1,
        *,
        temperature: int = 256,
        setpoint: int = 768,
        alarms: int = 1280,
        scale: float = 0.1,
        model: ZoneModel | None = None,
    ) -> None:
        self.unit = unit
        self.temperature_address = temperature
        self.setpoint_address = setpoint
        self.alarms_address = alarms
        self.scale = scale
        self.model = model
        self.registers: dict[int, int] = {temperature: 0, setpoint: 0, alarms: 0}
        self.fault: Fault = "none"
        self.probe_error = False
        self.requests = 0  # frames received for this unit (answered or not)
        self.port = ""
        self._master = -1
        self._slave = -1
        self._buffer = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None

    # the values, in °C
    @property
    def temperature_c(self) -> float:
        return self._to_c(self.registers[self.temperature_address])

    @temperature_c.setter
    def temperature_c(self, value: float) -> None:
        self.registers[self.temperature_address] = self._to_raw(value)

    @property
    def setpoint_c(self) -> float:
        return self._to_c(self.registers[self.setpoint_address])

    @setpoint_c.setter
    def setpoint_c(self, value: float) -> None:
        self.registers[self.setpoint_address] = self._to_raw(value)

    @property
    def alarms(self) -> int:
        return self.registers[self.alarms_address]

    @alarms.setter
    def alarms(self, value: int) -> None:
        self.registers[self.alarms_address] = value & 0xFFFF

    def _to_raw(self, celsius: float) -> int:
        return max(-0x8000, min(0x7FFF, round(celsius / self.scale))) & 0xFFFF

    def _to_c(self, raw: int) -> float:
        return round((raw - 0x10000 if raw >= 0x8000 else raw) * self.scale, 6)

    # the pty
    async def start(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass as they are
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._master, self._readable)

    async def stop(self) -> None:
        if self._loop is not None and self._master >= 0:
            self._loop.remove_reader(self._master)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    async def __aenter__(self) -> ModbusSlaveSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 512)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: nobody has the slave end open right now
            return
        self._buffer += data
        self._parse()

    def _parse(self) -> None:
        buf = self._buffer
        while len(buf) >= 4:
            function = buf[1]
            if function in (3, 4, 6):
                size = 8
            elif function == 16:
                if len(buf) < 7:
                    return
                size = 9 + buf[6]
            else:
                size = len(buf)  # unknown: treat what we have as one frame
            if len(buf) < size:
                return
            frame = bytes(buf[:size])
            del buf[:size]
            if modbus_crc16(frame) != 0:  # CRC over frame+CRC is 0; else drop everything
                buf.clear()
                return
            self._handle(frame[:-2])

    def _handle(self, pdu: bytes) -> None:
        if pdu[0] != self.unit:
            return
        self.requests += 1
        if self.fault == "silent":
            return
        if self.fault == "garbage":
            os.write(self._master, GARBAGE)
            return
        os.write(self._master, with_crc(self._reply(pdu)))

    def _reply(self, pdu: bytes) -> bytes:
        unit, function = pdu[0], pdu[1]

        def exception(code: int) -> bytes:
            return bytes([unit, function | 0x80, code])

        if function in (3, 4):
            address, count = struct.unpack(">HH", pdu[2:6])
            if not 1 <= count <= 125:
                return exception(3)
            addresses = range(address, address + count)
            if any(a not in self.registers for a in addresses):
                return exception(2)
            values = [self._value(a) for a in addresses]
            return bytes([unit, function, 2 * count]) + struct.pack(f">{count}H", *values)
        if function == 6:
            address, value = struct.unpack(">HH", pdu[2:6])
            if address not in self.registers:
                return exception(2)
            self.registers[address] = value
            return pdu[:6]
        if function == 16:
            address, count, nbytes = struct.unpack(">HHB", pdu[2:7])
            if nbytes != 2 * count or len(pdu) != 7 + nbytes:
                return exception(3)
            if any(a not in self.registers for a in range(address, address + count)):
                return exception(2)
            for i, value in enumerate(struct.unpack(f">{count}H", pdu[7 : 7 + nbytes])):
                self.registers[address + i] = value
            return pdu[:6]
        return exception(1)

    def _value(self, address: int) -> int:
        if address == self.temperature_address:
            if self.probe_error or (self.model is not None and self.model.probe_unplugged):
                return PROBE_ERROR_RAW
            if self.model is not None:
                self.temperature_c = self.model.temp_c
        return self.registers[address]
