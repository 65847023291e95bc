"""A zone's compressor relay on a GPIO pin (gpiozero OutputDevice).

Off is the safe value: at start, at stop, and whenever the daemon lets go of the pin. The zone
controller decides when it runs; this module only switches, and never decides.
"""

from __future__ import annotations

from gpiozero import Device, OutputDevice
from gpiozero.pins import Factory

from locker.domain.errors import HardwareError


class GpioCompressor:
    """locker.domain.ports.Compressor on one relay."""

    def __init__(self, pin: int, *, active_high: bool = True,
                 pin_factory: Factory | None = None) -> None:
        try:
            self.relay = OutputDevice(pin, active_high=active_high, initial_value=False,
                                      pin_factory=pin_factory or Device.pin_factory)
        except Exception as exc:  # gpiozero raises its own families; say which pin
            raise HardwareError(f"cannot claim GPIO{pin} for a compressor relay"
                                f" ({type(exc).__name__}: {exc})") from exc

    def switch(self, on: bool) -> None:
        if on:
            self.relay.on()
        else:
            self.relay.off()

    def close(self) -> None:
        self.relay.off()
        self.relay.close()
