"""Choosing compartments for an order's bags: right zone, big enough, as few as possible.

A compartment holds bags of its own zone whose sizes add up to no more than its own (an L holds
two M or four S; sizes are in units S = 1, M = 2, L = 4). Pure function over the free
compartments; the caller reserves the result in one transaction, so an order that does not fit
reserves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from locker.domain.errors import LockerError
from locker.domain.model import Size, Zone

UNITS = {Size.S: 1, Size.M: 2, Size.L: 4}


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
    """Each bag to a compartment of its zone; every compartment's bags fit inside it.

    Zone by zone: while bags remain, take the smallest free compartment that holds all that is
    left if there is one, else the largest, and fill it largest bag first. That uses few
    compartments and keeps large ones for large orders. With `accessible`, lower levels are taken
    first whatever their size. Raises NoRoom, naming the bags left over, if anything does not fit.
    """
    placed: list[tuple[Bag, FreeCompartment]] = []
    missing: list[Bag] = []
    for zone in Zone:
        waiting = sorted((b for b in bags if b.zone == zone), key=lambda b: -UNITS[b.size])
        available = [c for c in free if c.zone == zone]
        while waiting:
            compartment = _choose(waiting, available, accessible)
            if compartment is None:  # the largest bag left fits nowhere: the others may
                missing.append(waiting.pop(0))
                continue
            available.remove(compartment)
            room = UNITS[compartment.size]
            for bag in list(waiting):
                if UNITS[bag.size] <= room:
                    placed.append((bag, compartment))
                    waiting.remove(bag)
                    room -= UNITS[bag.size]
    if missing:
        raise NoRoom(missing)
    return placed


def _choose(waiting: Sequence[Bag], available: Sequence[FreeCompartment],
            accessible: bool) -> FreeCompartment | None:
    largest_bag = UNITS[waiting[0].size]
    candidates = [c for c in available if UNITS[c.size] >= largest_bag]
    if not candidates:
        return None
    if accessible:
        # a wheelchair user reaches the bottom rows: the level comes before everything else
        lowest = min(c.level for c in candidates)
        candidates = [c for c in candidates if c.level == lowest]
    total = sum(UNITS[b.size] for b in waiting)
    holds_all = [c for c in candidates if UNITS[c.size] >= total]
    if holds_all:
        return min(holds_all, key=lambda c: (UNITS[c.size], -c.level, c.id))
    return max(candidates, key=lambda c: (UNITS[c.size], c.level, c.id))
