"""ModbusController against the simulated controller, through a real pseudo-terminal.

Every byte goes through the kernel's tty layer as Modbus RTU: pymodbus's serial client on the pty's
slave end, simulator.modbus_slave on its master end. Faults (silence, garbage, probe-error values,
Modbus exceptions) must each be a ControllerFault naming the port, slave and register, quickly.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from hardware.modbus import ControllerCompressor, ControllerFault, ModbusController, RegisterMap
from locker.domain.errors import HardwareError
from simulator.modbus_slave import GARBAGE, ModbusSlaveSim, modbus_crc16, with_crc
from simulator.thermal import ZoneModel

TIMEOUT_S = 0.3


@pytest.fixture
async def sim() -> AsyncIterator[ModbusSlaveSim]:
    async with ModbusSlaveSim(unit=5) as slave:
        yield slave


@pytest.fixture
async def controller(sim: ModbusSlaveSim) -> AsyncIterator[ModbusController]:
    ctl = ModbusController(sim.port, 9600, 5, timeout_s=TIMEOUT_S, retries=1)
    await ctl.connect()
    yield ctl
    ctl.close()


def test_crc_matches_the_spec_example() -> None:
    # The widely used example frame "read 3 holding registers at 0x6B from slave 1": CRC 0x1774.
    assert with_crc(bytes.fromhex("0103006B0003")) == bytes.fromhex("0103006B00037417")
    assert modbus_crc16(bytes.fromhex("0103006B00037417")) == 0
    assert modbus_crc16(GARBAGE) != 0


@pytest.mark.parametrize("celsius", [3.2, -18.5, 0.0, -0.1, 25.0])
async def test_reads_signed_scaled_temperature(
    sim: ModbusSlaveSim, controller: ModbusController, celsius: float
) -> None:
    sim.temperature_c = celsius
    assert await controller.read_celsius() == pytest.approx(celsius)


async def test_raw_register_values(sim: ModbusSlaveSim, controller: ModbusController) -> None:
    sim.registers[256] = 0xFF47  # -185 -> -18.5 °C
    assert await controller.read_celsius() == pytest.approx(-18.5)
    sim.registers[256] = 32  # 3.2 °C
    assert await controller.read_celsius() == pytest.approx(3.2)


async def test_reads_the_zone_model(sim: ModbusSlaveSim, controller: ModbusController) -> None:
    sim.model = ZoneModel.frozen()
    assert await controller.read_celsius() == pytest.approx(-20.0)
    sim.model.step(600, compressor_on=False, door_open=True)
    assert await controller.read_celsius() == pytest.approx(sim.model.temp_c, abs=0.051)
    sim.model.probe_unplugged = True
    with pytest.raises(ControllerFault, match="probe error"):
        await controller.read_celsius()


async def test_write_setpoint_lands_in_the_datastore(
    sim: ModbusSlaveSim, controller: ModbusController
) -> None:
    await controller.write_setpoint(-21.5)
    assert sim.registers[768] == (-215) & 0xFFFF
    assert sim.setpoint_c == pytest.approx(-21.5)
    await controller.write_setpoint(4.0)
    assert sim.registers[768] == 40


async def test_write_setpoint_rejects_unrepresentable(controller: ModbusController) -> None:
    with pytest.raises(ValueError):
        await controller.write_setpoint(5000.0)
    with pytest.raises(ValueError):
        await controller.write_setpoint(float("nan"))


async def test_read_alarms(sim: ModbusSlaveSim, controller: ModbusController) -> None:
    assert await controller.read_alarms() == 0
    sim.alarms = 0x8005
    assert await controller.read_alarms() == 0x8005


async def test_silent_slave_is_a_fault_within_bounded_time(
    sim: ModbusSlaveSim, controller: ModbusController
) -> None:
    sim.fault = "silent"
    started = time.monotonic()
    with pytest.raises(ControllerFault) as info:
        await controller.read_celsius()
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT_S * (controller.retries + 1) + 1.0
    message = str(info.value)
    assert sim.port in message and "slave 5" in message and "register 256" in message
    assert "RS485" in message
    assert isinstance(info.value, HardwareError)
    sim.fault = "none"
    sim.temperature_c = 2.0
    assert await controller.read_celsius() == pytest.approx(2.0)


async def test_garbage_is_a_fault_and_the_next_read_works(
    sim: ModbusSlaveSim, controller: ModbusController
) -> None:
    sim.temperature_c = 3.2
    sim.fault = "garbage"
    with pytest.raises(ControllerFault, match="register 256"):
        await controller.read_celsius()
    sim.fault = "none"
    assert await controller.read_celsius() == pytest.approx(3.2)


@pytest.mark.parametrize("raw", [0x7FFF, 0x8000])
async def test_probe_error_value_is_a_fault(
    sim: ModbusSlaveSim, controller: ModbusController, raw: int
) -> None:
    sim.registers[256] = raw
    with pytest.raises(ControllerFault, match="probe error") as info:
        await controller.read_celsius()
    assert f"0x{raw:04X}" in str(info.value)


async def test_modbus_exception_is_a_fault(sim: ModbusSlaveSim) -> None:
    ctl = ModbusController(
        sim.port, 9600, 5, RegisterMap(temperature=3), timeout_s=TIMEOUT_S, retries=0
    )
    await ctl.connect()
    try:
        with pytest.raises(ControllerFault, match="exception 2"):
            await ctl.read_celsius()
    finally:
        ctl.close()


async def test_other_slave_ids_get_no_answer(sim: ModbusSlaveSim) -> None:
    ctl = ModbusController(sim.port, 9600, 6, timeout_s=0.2, retries=0)
    await ctl.connect()
    try:
        with pytest.raises(ControllerFault, match="slave 6"):
            await ctl.read_celsius()
    finally:
        ctl.close()
    assert sim.requests == 0


def test_register_map_defaults_and_validation() -> None:
    regs = RegisterMap()
    assert (regs.temperature, regs.setpoint, regs.alarms, regs.scale, regs.signed) == (
        256,
        768,
        1280,
        0.1,
        True,
    )
    with pytest.raises(ValueError):
        RegisterMap(scale=0)
    with pytest.raises(ValueError):
        RegisterMap(temperature=70000)
    with pytest.raises(ValueError):
        ModbusController("/dev/null", slave=0)


def test_controller_compressor_is_a_no_op() -> None:
    compressor = ControllerCompressor()
    compressor.switch(True)
    compressor.switch(False)
    assert ControllerCompressor.__doc__ is not None and "no-op" in ControllerCompressor.__doc__
