"""The zone loops inside the daemon, on the simulated clock: thermal models write the 1-Wire files,
the DS18B20 readers read them, the controllers switch the compressors, the cold chain records and
acts on excursions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hardware.probes import DS18B20Probe
from locker.domain.clock import SimClock
from locker.domain.config import ColdChainPolicy, LockerConfig
from locker.domain.courier import Refused
from locker.domain.daemon import Locker
from locker.domain.model import Zone
from locker.domain.orders import add_order_to_load, add_ready_order, parse_bag
from locker.domain.pickup import PickupRefused
from simulator.thermal import ZoneModel
from tests.support.doubles import FakeDriver


@dataclass
class SimulatedZone:
    """The thermal model behind one zone's probe file and compressor relay (a test stand-in
    for the relay; the probe is the real DS18B20 reader on the file the model writes)."""

    model: ZoneModel
    file: Path
    clock: SimClock
    on: bool = False
    door_open: bool = False
    last: float = 0.0
    switches: list[tuple[float, bool]] = field(default_factory=list)
    reader: DS18B20Probe | None = None
    reads: int = 0

    def __post_init__(self) -> None:
        self.file.parent.mkdir(parents=True)
        self.last = self.clock.now()
        self.reader = DS18B20Probe(self.file, monotonic=self.clock.monotonic)

    async def read_celsius(self) -> float:
        now = self.clock.now()
        # a customer or courier opens a door of this zone for 20 s in every hour, as people do
        door = self.door_open or (now % 3600) < 20
        self.model.step(now - self.last, compressor_on=self.on, door_open=door)
        self.last = now
        self.model.write_w1_slave(self.file)
        assert self.reader is not None
        try:
            return await self.reader.read_celsius()
        finally:
            self.reads += 1

    def switch(self, on: bool) -> None:
        if on != self.on:
            self.switches.append((self.clock.now(), on))
        self.on = on


@contextlib.asynccontextmanager
async def cold_rig(config: LockerConfig, tmp_path: Path
                   ) -> AsyncIterator[tuple[Locker, dict[Zone, SimulatedZone], SimClock]]:
    clock = SimClock()
    fresh = ZoneModel.fresh()
    fresh.temp_c = 2.5
    frozen = ZoneModel.frozen()
    frozen.temp_c = -21.0
    zones = {
        Zone.FRESH: SimulatedZone(fresh, tmp_path / "w1" / "28-f" / "w1_slave", clock),
        Zone.FROZEN: SimulatedZone(frozen, tmp_path / "w1" / "28-z" / "w1_slave", clock),
    }
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), clock,
                    zones={z: (s, s) for z, s in zones.items()})
    await locker.start()
    ZONES.clear()
    ZONES.update(zones)
    # the zone loops' first readings happen now, before the clock moves: their next ones then
    # fall exactly on run_hours' 10 s steps, whatever the machine's load (the probe reads in a
    # thread, and a loop that read late would decide at a later simulated time)
    async with asyncio.timeout(5):
        while any(sim.reads == 0 for sim in zones.values()):
            await asyncio.sleep(0.001)
    try:
        yield locker, zones, clock
    finally:
        await locker.stop()
        ZONES.clear()


@pytest.fixture
async def cold(config: LockerConfig, tmp_path: Path
               ) -> AsyncIterator[tuple[Locker, dict[Zone, SimulatedZone], SimClock]]:
    async with cold_rig(config, tmp_path) as rig:
        yield rig


ZONES: dict[Zone, SimulatedZone] = {}


async def run_hours(clock: SimClock, hours: float) -> None:
    """Advance 10 s at a time and wait (in real time) for every zone loop to take its reading:
    the probe reads in a thread, and the simulated clock must not run ahead of it."""
    for _ in range(int(hours * 360)):
        before = {zone: sim.reads for zone, sim in ZONES.items()}
        await clock.advance(10)
        async with asyncio.timeout(2):
            while any(sim.reads == before[zone] for zone, sim in ZONES.items()):
                await asyncio.sleep(0.0002)


async def test_a_day_in_limits_recorded_every_five_minutes(cold) -> None:
    locker, zones, clock = cold
    await run_hours(clock, 24)
    fresh = [c for _, c in locker.coldchain.record(Zone.FRESH, 0)]
    frozen = [c for _, c in locker.coldchain.record(Zone.FROZEN, 0)]
    assert len(fresh) in (24 * 12, 24 * 12 + 1) and None not in fresh  # one every 5 minutes
    assert min(fresh) >= 0.0 and max(fresh) <= 4.0
    assert frozen and None not in frozen
    outside_defrost = [r["celsius"] for r in locker.store.read().all(
        "SELECT celsius FROM temperatures WHERE zone = 'frozen' AND defrosting = 0")]
    assert max(outside_defrost) <= -18.0
    kinds = [e.kind for e in locker.store.events()]
    assert "alarm.zone_excursion" not in kinds
    on_times = [t for t, on in zones[Zone.FRESH].switches if on]
    off_times = [t for t, on in zones[Zone.FRESH].switches if not on]
    for start in on_times:  # never restarted inside the minimum off time
        before = [t for t in off_times if t < start]
        assert not before or start - before[-1] >= locker.config.zones[Zone.FRESH].min_off_s


async def test_a_dead_compressor_is_an_excursion_that_blocks_loading_and_flags_orders(
        cold) -> None:
    locker, zones, clock = cold
    add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "in-fresh",
                    [parse_bag("fresh:S")])
    add_order_to_load(locker.store, locker.config, locker.codes, clock.now(), "to-load",
                      [parse_bag("fresh:M")])
    await run_hours(clock, 1)
    zones[Zone.FRESH].model.compressor_dead = True
    await run_hours(clock, 3)
    kinds = [e.kind for e in locker.store.events()]
    assert "alarm.zone_excursion" in kinds and "alarm.not_cooling" in kinds
    flags = [e for e in locker.store.events() if e.kind == "order.cold_chain_flag"]
    assert [e.order_id for e in flags] == ["in-fresh"]
    with pytest.raises(Refused, match="blocked"):
        await locker.courier.load("courier:c", "to-load")
    zones[Zone.FRESH].model.compressor_dead = False  # repaired
    await run_hours(clock, 2)
    ended = [e for e in locker.store.events() if e.kind == "zone.excursion_ended"]
    assert len(ended) == 1 and ended[0].payload["peak_c"] > 4.0
    assert ended[0].payload["duration_s"] > 0 and ended[0].payload["orders"] == ["in-fresh"]
    result = await locker.courier.load("courier:c", "to-load")  # the block is lifted
    assert result.compartments
    assert locker.store.read().all("SELECT * FROM order_flags")  # the flags stay


async def test_an_unplugged_probe_is_an_alarm_and_the_zone_runs_a_duty_cycle(cold) -> None:
    locker, zones, clock = cold
    await run_hours(clock, 1)
    zones[Zone.FRESH].model.probe_unplugged = True
    await run_hours(clock, 1)
    assert "alarm.probe_fault" in [e.kind for e in locker.store.events()]
    faults = [c for _, c in locker.coldchain.record(Zone.FRESH, clock.now() - 1800)]
    assert faults and all(c is None for c in faults)  # recorded as faults, not as temperatures
    assert any(on for t, on in zones[Zone.FRESH].switches if t > clock.now() - 3600)
    zones[Zone.FRESH].model.probe_unplugged = False
    await run_hours(clock, 0.5)
    cleared = [e for e in locker.store.events() if e.kind == "alarm.probe_fault"
               and e.payload["state"] == "cleared"]
    assert cleared


async def test_setpoints_and_door_openings_go_into_the_record(cold) -> None:
    locker, _, clock = cold
    await run_hours(clock, 0.1)
    setpoints = [e for e in locker.store.events() if e.kind == "zone.setpoint"]
    assert {e.payload["zone"] for e in setpoints} == {"fresh", "frozen"}
    assert all(e.payload["actor"] == "config:locker.toml" for e in setpoints)
    locker.driver.open("F1")  # type: ignore[attr-defined]
    locker.driver.close("F1")  # type: ignore[attr-defined]
    await run_hours(clock, 0.2)
    openings = locker.store.read().one(
        "SELECT SUM(door_openings) AS n FROM temperatures WHERE zone = 'fresh'")
    assert openings is not None and openings["n"] == 1


async def test_a_door_left_open_warms_the_zone_into_an_excursion(cold) -> None:
    locker, zones, clock = cold
    await run_hours(clock, 1)
    zones[Zone.FRESH].door_open = True  # nobody closed it
    await run_hours(clock, 2)
    assert "alarm.zone_excursion" in [e.kind for e in locker.store.events()]
    zones[Zone.FRESH].door_open = False
    await run_hours(clock, 2)
    assert [e.kind for e in locker.store.events()].count("alarm.zone_excursion") == 2


async def excursion_while_inside(locker: Locker, zones: dict[Zone, SimulatedZone],
                                 clock: SimClock, *bags: str) -> str:
    """An order loaded, then its fresh zone's compressor dead for three hours and repaired:
    the excursion flagged the order. Returns its code."""
    added = add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o1",
                            [parse_bag(b) for b in bags])
    await run_hours(clock, 0.5)
    zones[Zone.FRESH].model.compressor_dead = True
    await run_hours(clock, 3)
    zones[Zone.FRESH].model.compressor_dead = False
    await run_hours(clock, 2)
    assert [e.order_id for e in locker.store.events() if e.kind == "order.cold_chain_flag"]
    return added.code


def order_state(locker: Locker) -> str:
    row = locker.store.read().one("SELECT state FROM orders WHERE id = 'o1'")
    assert row is not None
    return str(row["state"])


async def test_withhold_keeps_the_exposed_bag_back_and_a_courier_takes_it(
        config: LockerConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(config, coldchain=ColdChainPolicy("withhold"))
    async with cold_rig(config, tmp_path) as (locker, zones, clock):
        code = await excursion_while_inside(locker, zones, clock, "fresh:S", "ambient:S")
        result = await locker.pickup.collect(code)
        (opened,) = result.opened
        (kept,) = result.withheld
        assert opened.zone == "ambient" and kept.zone == "fresh" and not result.warned
        assert kept.minutes_above > 30 and kept.peak_c is not None and kept.peak_c > 4.0
        driver = locker.driver
        assert isinstance(driver, FakeDriver)
        assert driver.unlocked == [opened.compartment_id]  # the fresh door stays shut
        driver.open(opened.compartment_id)
        driver.close(opened.compartment_id)
        assert order_state(locker) == "withheld"
        events = {e.kind: e for e in locker.store.events()}
        withheld = events["order.bag_withheld"].payload
        assert withheld["compartment"] == kept.compartment_id and withheld["reason"] == "excursion"
        assert withheld["minutes_above"] == kept.minutes_above
        collected = events["order.collected"].payload
        assert collected["withheld"] == [kept.compartment_id]
        certificate = json.loads(collected["certificate"]["certificate"])
        assert {p["zone"] for p in certificate["compartments"]} == {"ambient", "fresh"}
        with pytest.raises(PickupRefused, match="already been used"):
            await locker.pickup.collect(code)  # the code is spent, the card forgets it
        row = locker.store.read().one("SELECT code_digest FROM orders WHERE id = 'o1'")
        assert row is not None and row["code_digest"] is None
        (task,) = locker.courier.orders()["to_reclaim"]
        assert task["order"] == "o1" and task["compartments"] == [kept.compartment_id]
        back = await locker.courier.reclaim("courier:c", "o1")
        assert [d.compartment_id for d in back.opened] == [kept.compartment_id]
        driver.open(kept.compartment_id)
        driver.close(kept.compartment_id)
        assert order_state(locker) == "reclaimed"


async def test_withhold_of_every_bag_opens_nothing(config: LockerConfig, tmp_path: Path
                                                   ) -> None:
    config = dataclasses.replace(config, coldchain=ColdChainPolicy("withhold"))
    async with cold_rig(config, tmp_path) as (locker, zones, clock):
        code = await excursion_while_inside(locker, zones, clock, "fresh:S")
        result = await locker.pickup.collect(code)
        assert not result.opened and len(result.withheld) == 1
        assert order_state(locker) == "withheld"
        assert "order.withheld" in [e.kind for e in locker.store.events()]


async def test_warn_opens_every_bag_and_says_which_was_exposed(cold) -> None:
    locker, zones, clock = cold
    assert locker.config.coldchain.on_excursion == "warn"  # the default
    code = await excursion_while_inside(locker, zones, clock, "fresh:S", "ambient:S")
    result = await locker.pickup.collect(code)
    assert len(result.opened) == 2 and not result.withheld
    (told,) = result.warned
    assert told.zone == "fresh" and told.minutes_above > 30
    assert "order.excursion_told" in [e.kind for e in locker.store.events()]
    driver = locker.driver
    assert isinstance(driver, FakeDriver)
    for door in result.opened:
        driver.open(door.compartment_id)
        driver.close(door.compartment_id)
    assert order_state(locker) == "collected"
