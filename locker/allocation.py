"""Choosing compartments for an order's bags: right zone, big enough, lowest first when asked.

Pure function over the free compartments; the caller reserves the result in one transaction, so
an order that does not fit reserves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from locker.errors import LockerError
from locker.model import Size, Zone


@dataclass(frozen=True)
class Bag:
    zone: Zone
    size: Size


@dataclass(frozen=True)
class FreeCompartment:
    id: str
    zone: Zone
    size: Size
    level: int


class NoRoom(LockerError):
    """The order cannot fit; the message says which bags have no compartment."""

    def __init__(self, missing: Sequence[Bag]) -> None:
        self.missing = tuple(missing)
        what = ", ".join(f"{b.zone.value} {b.size.value}" for b in self.missing)
        super().__init__(f"no free compartment for: {what}")


def allocate(bags: Sequence[Bag], free: Sequence[FreeCompartment],
             accessible: bool = False) -> list[tuple[Bag, FreeCompartment]]:
    """One compartment per bag, same zone, smallest that fits; never a frozen bag elsewhere.

    Largest bags are placed first so a small bag never takes the only large compartment.
    """
    available = list(free)
    placed: list[tuple[Bag, FreeCompartment]] = []
    missing: list[Bag] = []
    for bag in sorted(bags, key=lambda b: -b.size.rank):
        candidates = [c for c in available if c.zone == bag.zone and bag.size.fits_in(c.size)]
        if not candidates:
            missing.append(bag)
            continue
        if accessible:
            best = min(candidates, key=lambda c: (c.level, c.size.rank, c.id))
        else:
            best = min(candidates, key=lambda c: (c.size.rank, -c.level, c.id))
        available.remove(best)
        placed.append((bag, best))
    if missing:
        raise NoRoom(missing)
    return placed
