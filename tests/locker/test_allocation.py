"""Allocation, by property: no compartment given twice, zones never mixed, sizes always fit."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locker.domain.allocation import UNITS, Bag, FreeCompartment, NoRoom, allocate
from locker.domain.model import Size, Zone

zones = st.sampled_from(list(Zone))
sizes = st.sampled_from(list(Size))
bags = st.lists(st.builds(Bag, zones, sizes), min_size=1, max_size=12)


@st.composite
def compartments(draw: st.DrawFn) -> list[FreeCompartment]:
    specs = draw(st.lists(st.tuples(zones, sizes, st.integers(1, 6)), max_size=20))
    return [FreeCompartment(f"C{i}", z, s, level) for i, (z, s, level) in enumerate(specs)]


@settings(max_examples=400, deadline=None)
@given(bags, compartments(), st.booleans())
def test_every_allocation_is_sound(order: list[Bag], free: list[FreeCompartment],
                                   accessible: bool) -> None:
    try:
        placed = allocate(order, free, accessible)
    except NoRoom as exc:
        assert exc.missing and all(b in order for b in exc.missing)
        return
    assert sorted(map(repr, (b for b, _ in placed))) == sorted(map(repr, order))  # every bag once
    load: dict[str, int] = defaultdict(int)
    for bag, compartment in placed:
        assert compartment in free  # only free compartments
        assert bag.zone == compartment.zone  # never a frozen bag outside frozen
        assert bag.size.fits_in(compartment.size)
        load[compartment.id] += UNITS[bag.size]
    by_id = {c.id: c for c in free}
    assert all(units <= UNITS[by_id[cid].size] for cid, units in load.items())
    assert len(load) <= len(order)


@settings(max_examples=200, deadline=None)
@given(bags, compartments())
def test_an_order_that_fits_in_one_free_compartment_per_zone_gets_one(
        order: list[Bag], free: list[FreeCompartment]) -> None:
    for zone in Zone:
        total = sum(UNITS[b.size] for b in order if b.zone == zone)
        if total and not any(c.zone == zone and UNITS[c.size] >= total for c in free):
            return
    placed = allocate(order, free)
    assert len({c.id for _, c in placed}) == len({b.zone for b in order})


def test_two_medium_bags_share_a_large_compartment() -> None:
    free = [FreeCompartment("L1", Zone.FRESH, Size.L, 3), FreeCompartment("M1", Zone.FRESH,
                                                                          Size.M, 1)]
    placed = allocate([Bag(Zone.FRESH, Size.M), Bag(Zone.FRESH, Size.M)], free)
    assert {c.id for _, c in placed} == {"L1"}


def test_an_accessible_order_gets_the_lowest_level() -> None:
    free = [FreeCompartment("high", Zone.AMBIENT, Size.M, 5),
            FreeCompartment("low", Zone.AMBIENT, Size.L, 1)]
    assert allocate([Bag(Zone.AMBIENT, Size.S)], free, accessible=True)[0][1].id == "low"
    assert allocate([Bag(Zone.AMBIENT, Size.S)], free)[0][1].id == "high"


def test_what_does_not_fit_is_named() -> None:
    free = [FreeCompartment("Z1", Zone.FROZEN, Size.M, 1)]
    with pytest.raises(NoRoom, match="frozen L") as caught:
        allocate([Bag(Zone.FROZEN, Size.L), Bag(Zone.FROZEN, Size.S)], free)
    assert caught.value.missing == (Bag(Zone.FROZEN, Size.L),)  # the S would fit in Z1
