"""Every error the locker raises on purpose, under one root so callers can catch ours alone.

Each also inherits the builtin it resembles (as gpiozero does), so `except ValueError` still works.
Messages say what happened, where, and what to do.
"""


class LockerError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(LockerError, ValueError):
    """The config file is wrong; the message names the file, the key and why."""


class StoreError(LockerError):
    """The store cannot be opened, migrated or written."""


class HardwareError(LockerError):
    """A lock board, a GPIO pin or the serial line did not do what was asked."""


class BoardTimeout(HardwareError, TimeoutError):
    """A board did not answer one transaction in time (after its retries)."""


class BoardOffline(HardwareError):
    """A board is marked offline after repeated timeouts; requests to it fail fast."""


class UnknownCompartment(LockerError, KeyError):
    """A compartment id that the config does not declare."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else "unknown compartment"


class Refused(LockerError):
    """The action does not apply now; `reason` for the screen, the message for the person."""

    def __init__(self, reason: str, message: str, **detail: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail


class Unavailable(Refused):
    """Nothing was done because the locker cannot do it right now (a board offline, the bus
    down): nothing was committed, so a customer's code still works once it is back."""

    def __init__(self, reason: str, message: str, compartments: tuple[str, ...] = ()) -> None:
        super().__init__(reason, message, compartments=list(compartments))
        self.compartments = compartments


class PickupRefused(LockerError):
    """What the customer typed opens nothing; `reason` is for the screen (its words are in
    kiosk-text.json), `retry_after_s` for the keypad."""

    def __init__(self, reason: str, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s
