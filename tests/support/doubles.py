"""Stand-ins for the hardware in tests of the domain: a lock driver the test moves doors on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from locker.domain.errors import BoardOffline, BoardTimeout
from locker.domain.model import DoorSense
from locker.domain.ports import HardwareListener


class FakeDriver:
    """Records unlocks; doors are moved by the test with `open()` / `close()`."""

    def __init__(self, compartments: list[str]) -> None:
        self.doors = {cid: DoorSense.CLOSED for cid in compartments}
        self.unlocked: list[str] = []
        self.offline: set[str] = set()
        self.lose_answers = False  # the lock pulses, the board's acknowledgement never comes
        self.springs = False  # an unlocked door pops open a moment later
        self.listener: HardwareListener | None = None
        self.items: dict[str, bool] = {}  # what item sensors read, for those the test moved

    async def start(self, listener: HardwareListener) -> None:
        self.listener = listener

    async def stop(self) -> None:
        self.listener = None

    async def unlock(self, compartment_id: str) -> None:
        if compartment_id in self.offline:
            raise BoardOffline(f"board of {compartment_id} is offline")
        self.unlocked.append(compartment_id)
        if self.springs:
            await asyncio.sleep(0)
            self.open(compartment_id)
        if self.lose_answers:
            raise BoardTimeout(f"the board of {compartment_id} did not answer its unlock")

    async def read_doors(self) -> Mapping[str, DoorSense]:
        return dict(self.doors)

    def reachable(self, compartment_id: str) -> bool:
        return compartment_id in self.doors and compartment_id not in self.offline

    def set(self, compartment_id: str, sense: DoorSense) -> None:
        self.doors[compartment_id] = sense
        assert self.listener is not None
        self.listener.door_sensed(compartment_id, sense)

    def open(self, compartment_id: str) -> None:
        self.set(compartment_id, DoorSense.OPEN)

    def close(self, compartment_id: str) -> None:
        self.set(compartment_id, DoorSense.CLOSED)

    def put(self, compartment_id: str) -> None:
        """Goods go in: an item sensor of the compartment reads occupied."""
        self.items[compartment_id] = True
        assert self.listener is not None
        self.listener.item_sensed(compartment_id, True)

    def take(self, compartment_id: str) -> None:
        """Goods come out: the item sensor reads empty."""
        self.items[compartment_id] = False
        assert self.listener is not None
        self.listener.item_sensed(compartment_id, False)
