"""A zone regulated by its own refrigeration controller over Modbus RTU: the daemon writes the
setpoint, reads temperature and alarms through a real pty, and keeps the cold-chain record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hardware import factory
from hardware.modbus import ControllerCompressor, ModbusController
from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.errors import ConfigError
from locker.domain.model import Zone
from simulator.modbus_slave import ModbusSlaveSim
from simulator.thermal import ZoneModel
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver


@pytest.fixture
async def rig(config: LockerConfig) -> AsyncIterator[tuple[Locker, ModbusSlaveSim, SimClock]]:
    model = ZoneModel.fresh()
    model.temp_c = 3.1
    async with ModbusSlaveSim(model=model) as slave:
        clock = SimClock()
        controller = ModbusController(slave.port, timeout_s=0.1, retries=0)
        locker = Locker(config, FakeDriver([c.id for c in config.compartments]), clock,
                        zones={Zone.FRESH: (controller, ControllerCompressor())})
        await locker.start()
        try:
            yield locker, slave, clock
        finally:
            await locker.stop()
            controller.close()


async def run(clock: SimClock, seconds: float) -> None:
    for _ in range(int(seconds / 10)):
        await clock.advance(10)
        await asyncio.sleep(0.02)  # real time for the Modbus round trip on the pty


def kinds(locker: Locker) -> list[str]:
    return [e.kind for e in locker.store.events()]


async def test_the_daemon_sets_reads_and_records_through_the_controller(rig) -> None:
    locker, slave, clock = rig
    await run(clock, 900)
    assert slave.setpoint_c == pytest.approx(2.5)  # the config's setpoint, written with FC16
    record = locker.coldchain.record(Zone.FRESH, 0)
    assert len(record) >= 3 and all(c == pytest.approx(3.1, abs=0.2) for _, c in record)
    slave.alarms = 0x0004
    await run(clock, 30)
    assert "alarm.controller_alarm" in kinds(locker)
    slave.alarms = 0
    await run(clock, 30)
    assert kinds(locker).count("alarm.controller_alarm") == 2  # raised, then cleared


@pytest.mark.parametrize("fault", ["silent", "garbage"])
async def test_a_controller_that_answers_nothing_or_garbage_is_a_probe_fault(
        rig, fault: str) -> None:
    locker, slave, clock = rig
    await run(clock, 60)
    slave.fault = fault  # type: ignore[assignment]
    await run(clock, 60)
    assert "alarm.probe_fault" in kinds(locker)
    slave.fault = "none"  # type: ignore[assignment]
    await run(clock, 60)
    cleared = [e for e in locker.store.events() if e.kind == "alarm.probe_fault"
               and e.payload["state"] == "cleared"]
    assert cleared and "alarm.zone_excursion" not in kinds(locker)


async def test_the_config_picks_the_modbus_controller(tmp_path: Path) -> None:
    text = SMALL_CONFIG + ('\n[zones.frozen.modbus]\nport = "/dev/ttyUSB1"\nslave = 3\n'
                           'temperature = 3\nsetpoint = 15\n')
    config = load_config(write_config(tmp_path, text))
    zones = factory.zones(config)  # as `locker run` does, inside the event loop
    controller, compressor = zones[Zone.FROZEN]
    assert isinstance(controller, ModbusController) and controller.slave == 3
    assert isinstance(compressor, ControllerCompressor)
    controller.close()
    both = SMALL_CONFIG + ('\n[zones.frozen]\nprobe = "w1"\ncompressor_pin = 5\n'
                           '\n[zones.frozen.modbus]\nport = "/dev/ttyUSB1"\n')
    with pytest.raises(ConfigError, match=r"zones\.frozen\.modbus: a zone is regulated by"):
        load_config(write_config(tmp_path, both))
