"""What the domain needs from the hardware, as small protocols that hardware/ implements.

Drivers speak in compartment ids: the wiring (board and channel, or GPIO pins) is given to the
driver from the config, so the domain never sees a byte or a pin. The same protocols are met by
the RS485 lock boards (hardware.boards), by GPIO relays and reed switches (hardware.gpio) and,
through a pseudo-terminal, by the simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol, runtime_checkable

from locker.domain.model import DoorSense


class HardwareListener(Protocol):
    """Told by a driver about what it sees. Called from the event loop; must not block."""

    def door_sensed(self, compartment_id: str, sense: DoorSense) -> None:
        """A door's sensor changed (only changes are reported, after the first full read)."""

    def item_sensed(self, compartment_id: str, occupied: bool) -> None:
        """A compartment with an item sensor reads occupied or empty: its first reading, then
        each change. Never called for a compartment without a sensor."""

    def board_offline(self, board: str, reason: str) -> None:
        """A board (or GPIO bank) stopped answering; its doors read UNKNOWN until it returns."""

    def board_online(self, board: str) -> None:
        """A board that was offline answers again."""


class LockDriver(Protocol):
    """Opens locks and watches doors. One per locker, chosen by the config."""

    async def start(self, listener: HardwareListener) -> None:
        """Open the port or pins, put every output in its safe state, start polling doors."""

    async def stop(self) -> None:
        """Stop polling, put outputs in their safe state, release the port or pins."""

    async def unlock(self, compartment_id: str) -> None:
        """Pulse one lock; return once the board acknowledged it.

        Raises UnknownCompartment, BoardOffline or BoardTimeout. Never called for a compartment
        whose authorisation has not been committed to the store.
        """

    async def read_doors(self) -> Mapping[str, DoorSense]:
        """A fresh read of every door (UNKNOWN where the board does not answer), for reconciling."""

    def reachable(self, compartment_id: str) -> bool:
        """Whether an unlock for this compartment can reach its lock now: its board has answered
        since the start and is not offline, the port is there. Cheap, no I/O: asked before an
        authorisation is committed, so nothing is spent on a door that cannot open."""


class ZoneProbe(Protocol):
    """A zone's thermometer."""

    async def read_celsius(self) -> float:
        """One reading; raises a HardwareError (a fault, not a temperature) when it cannot."""


class Compressor(Protocol):
    """A zone's compressor relay. Off is its safe value at start and at stop."""

    def switch(self, on: bool) -> None: ...


@runtime_checkable
class RefrigerationController(Protocol):
    """A controller that regulates its own compressor (e.g. over Modbus): the daemon gives it the
    setpoint and reads its temperature and its alarm word, and decides nothing itself."""

    async def read_celsius(self) -> float: ...

    async def write_setpoint(self, celsius: float) -> None: ...

    async def read_alarms(self) -> int: ...


class ClockStatus(Protocol):
    """Whether the system clock is synchronised (NTP), as the kernel or timesyncd tells it."""

    def synchronised(self) -> bool | None:
        """True or False; None when this system cannot tell. Cheap: asked every second."""


class BoardCounts(NamedTuple):
    """One board's transactions since the driver started, by how they ended, and its state now."""

    ok: int
    timeouts: int  # no answer after the retries
    failures: int  # any other error (a refused unlock, a lost port)
    online: bool


@runtime_checkable
class BusTelemetry(Protocol):
    """A driver that can say how its bus is doing (the RS485 boards can; GPIO has no bus).

    Read by the metrics endpoint at scrape time: cheap, no I/O, never raises.
    """

    def bus_telemetry(self) -> Mapping[str, BoardCounts]:
        """Board name -> its counts, for every board of the bus."""
