"""The compressor relay on gpiozero's mock pins: off at start, on and off as told."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory

from hardware.compressor import GpioCompressor


def test_the_relay_starts_off_and_follows_the_controller() -> None:
    pins = MockFactory()
    compressor = GpioCompressor(24, pin_factory=pins)
    pin = pins.pin(24)
    assert pin.state is False or pin.state == 0
    compressor.switch(True)
    assert pin.state
    compressor.switch(False)
    compressor.close()
    assert [bool(s.state) for s in pin.states][-3:] == [False, True, False]
