"""A zone is one declaration: a "chilled" zone (8-12 °C, for wine and cheese) declared while
this test runs is taken by the config, allocation, a pickup, central's feed, the reference
central's schema, the pages' words and colours and the thermal model, with nothing else
edited; and the zones documented for central are the declared ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from hardware.probes import DS18B20Probe
from locker.domain.clock import SimClock
from locker.domain.codes import create_keys
from locker.domain.config import load_config
from locker.domain.daemon import Locker
from locker.domain.feed import parse_order
from locker.domain.model import ZONES, Zone, ZoneSpec, declare_zone, forget_zone
from locker.domain.orders import add_ready_order, parse_bag
from simulator import central
from simulator.thermal import ThermalRig, ZoneModel
from tests.support.configs import SMALL_CONFIG
from tests.support.doubles import FakeDriver
from tests.support.paths import ROOT

CHILLED = ZoneSpec("chilled", "chilled", "tempéré", "#8bc34a", max_c=12.0, min_c=8.0,
                   setpoint_c=10.0)


@pytest.fixture
def chilled() -> Iterator[Zone]:
    zone = declare_zone(CHILLED)
    try:
        yield zone
    finally:
        forget_zone(CHILLED.name)
    assert "chilled" not in ZONES


def chilled_config(folder: Path) -> Path:
    text = SMALL_CONFIG.replace(
        '    { id = "Z2", zone = "frozen", size = "L", board = 1, channel = 3 },\n',
        '    { id = "Z2", zone = "frozen", size = "L", board = 1, channel = 3 },\n'
        '    { id = "C1", zone = "chilled", size = "M", board = 1, channel = 4 },\n')
    assert "C1" in text
    path = folder / "locker.toml"
    path.write_text(text + '\n[zones.chilled]\ngrace_s = 600\n')
    return path


def test_an_undeclared_zone_is_refused_everywhere(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a zone"):
        Zone("chilled")
    with pytest.raises(Exception, match="chilled"):
        load_config(chilled_config(tmp_path))


async def test_a_zone_declared_at_run_time_works_end_to_end(chilled: Zone,
                                                            tmp_path: Path) -> None:
    config = load_config(chilled_config(tmp_path))
    limits = config.zones[chilled]
    assert (limits.min_c, limits.max_c, limits.setpoint_c, limits.grace_s) == (8, 12, 10, 600)
    assert config.compartment("C1").zone is chilled
    create_keys(config)
    clock = SimClock()
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver, clock)
    async with TestClient(TestServer(create_app(locker))) as http:
        # a chilled bag goes in the chilled compartment, and its code opens it
        added = add_ready_order(locker.store, config, locker.codes, clock.now(), "w1",
                                [parse_bag("chilled:S")])
        assert [cid for cid, _ in added.compartments] == ["C1"]
        answer = await http.post("/api/pickup", json={"code": added.code})
        assert answer.status == 200, await answer.text()
        assert [d["zone"] for d in (await answer.json())["opened"]] == ["chilled"]
        # the pages learn its words and its colour from the app
        bank = (await (await http.get("/api/kiosk")).json())["bank"]
        assert bank["zones"]["chilled"] == {"en": "chilled", "fr": "tempéré",
                                            "colour": "#8bc34a", "freezing": False}
        css = await (await http.get("/zones.css")).text()
        assert ".chilled { --zone: #8bc34a; }" in css
        spoken = await http.get("/api/speech", params={"lang": "fr", "say": "doors",
                                                       "doors": "C1"})
        assert spoken.status in (200, 503)  # 503: no espeak-ng here; the words were made
    # central's feed and the reference central's schema take it
    order = parse_order({"id": "w2", "version": 1, "code": "x", "state": "active",
                         "window_hours": 1, "accessible": False,
                         "bags": [{"zone": "chilled", "size": "M"}]})
    assert order.bags[0].zone is chilled
    assert central.check_bags([{"zone": "chilled", "size": "M"}])
    # the thermal model writes its probe's file; the real DS18B20 reader reads it
    model = ZoneModel(temp_c=10.0, ambient_c=20.0, ua_w_per_k=2.0, door_leak_w_per_k=15.0,
                      cooling_w=60.0, heat_capacity_j_per_k=20_000.0)
    rig = ThermalRig(tmp_path / "w1", {"chilled": model})
    model.write_w1_slave(rig.files["chilled"])
    assert await DS18B20Probe(rig.files["chilled"]).read_celsius() == pytest.approx(10.0, abs=0.1)


def test_the_zones_central_is_told_of_are_the_declared_ones() -> None:
    document = yaml.safe_load((ROOT / "docs" / "central-api.yaml").read_text("utf-8"))
    assert document["components"]["schemas"]["Zone"]["enum"] == list(ZONES)
