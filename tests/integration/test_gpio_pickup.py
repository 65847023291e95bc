"""A small locker on GPIO: the same daemon and API, relays and reed switches on gpiozero's mock
pins. The relay histories show the pulse; the reed switch inputs are driven as a door would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from gpiozero.pins.mock import MockFactory, MockPin

from api.app import create_app
from hardware.gpio import GpioLockDriver
from locker.domain.codes import create_keys
from locker.domain.config import load_config
from locker.domain.daemon import Locker
from locker.domain.orders import add_ready_order, parse_bag
from tests.support.paths import ROOT


class ReedPin(MockPin):  # type: ignore[misc]
    """A mock input wired to a reed switch to ground: a closed door holds it low, whatever
    pull-up the driver sets (gpiozero's MockPin would read high as soon as the pull-up is on)."""

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if value == "up":
            self.drive_low()


async def test_a_pickup_on_a_gpio_locker(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "gpio-4.toml").read_text()
    path = tmp_path / "gpio.toml"
    path.write_text(text.replace('data_dir = "../var/kiosk-gpio-4"', 'data_dir = "data"'))
    config = load_config(path)
    assert config.gpio is not None
    create_keys(config)
    pins = MockFactory(pin_class=ReedPin)  # every door starts closed
    locker = Locker(config, GpioLockDriver(config.gpio, config.compartments, pin_factory=pins))
    async with TestClient(TestServer(create_app(locker))) as http:
        order = add_ready_order(locker.store, config, locker.codes, locker.clock.now(), "g1",
                                [parse_bag("fresh:M"), parse_bag("frozen:M")])
        response = await http.post("/api/pickup", json={"code": order.code})
        assert response.status == 200, await response.text()
        opened = sorted(d["compartment"] for d in (await response.json())["opened"])
        assert opened == ["G3", "G4"]
        for cid in opened:
            wiring = config.compartment(cid).wiring
            relay = pins.pin(wiring.lock_pin)  # type: ignore[union-attr]
            on = [s for s in relay.states if s.state]
            assert len(on) == 1 and not relay.state  # one pulse, and off again
            door = pins.pin(wiring.door_pin)  # type: ignore[union-attr]
            door.drive_high()  # the door opens: magnet away, pull-up reads high
        await asyncio.sleep(0.3)  # longer than the 50 ms debounce
        for cid in opened:
            pins.pin(config.compartment(cid).wiring.door_pin).drive_low()  # type: ignore[union-attr]
        async with asyncio.timeout(3):
            while locker.store.read().one(
                    "SELECT state FROM orders WHERE id = 'g1'")["state"] != "collected":  # type: ignore[index]
                await asyncio.sleep(0.05)
        kinds = [e.kind for e in locker.store.events()]
        assert kinds.count("door.opened") == 2 and "door.forced" not in kinds
