"""The transition table: one owner of the states, and a way back from every fault.

Properties of the table itself (every state has a way out, every fault leads back to a harbour
without a technician on site), the rule that nothing outside locker/domain/lifecycle writes its
tables, and docs/lifecycle.md drawn from the table.
"""

from __future__ import annotations

import re
from collections import deque

import pytest

from locker.domain.lifecycle.table import (
    FINAL,
    HARBOURS,
    INITIAL,
    NEXT,
    STATES,
    TABLE,
    IllegalTransition,
    Kind,
    mermaid,
    next_state,
)
from locker.domain.model import CompartmentState, DoorState, OrderState
from tests.support.paths import ROOT

OWNED = ("orders", "order_bags", "order_compartments", "compartments", "authorisations",
         "returns")
WRITE = re.compile(
    r"(INSERT(\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+(" + "|".join(OWNED) + r")\b"
    r"|\.insert\(\s*[\"'](" + "|".join(OWNED) + r")[\"']", re.IGNORECASE)
ON_SITE = "technician"  # the one who must travel to the locker: never needed for a way back


def graph(kind: Kind, *, without: str | None = None) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {state: set() for state in STATES[kind]}
    for step in TABLE:
        if step.kind is kind and step.by != without:
            edges[str(step.source)].add(str(step.target))
    return edges


def reachable_from(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in edges[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("kind", list(Kind))
def test_every_state_is_reachable_and_every_unfinished_state_has_a_way_out(kind: Kind) -> None:
    edges = graph(kind)
    assert reachable_from(edges, INITIAL[kind]) == set(STATES[kind])
    for state in STATES[kind]:
        if state not in FINAL[kind]:
            assert edges[state] - {state}, f"{kind.value} {state} has no way out"


def test_every_step_names_states_of_its_kind() -> None:
    for step in TABLE:
        assert step.source in STATES[step.kind] and step.target in STATES[step.kind], step


def test_from_every_order_state_a_fault_reaches_a_harbour_without_a_technician() -> None:
    edges = graph(Kind.ORDER, without=ON_SITE)
    for start in reachable_from(graph(Kind.ORDER), OrderState.RECEIVED):
        for step in TABLE:
            if step.kind is Kind.ORDER and step.fault and step.source == start:
                back = reachable_from(edges, str(step.target))
                assert back & HARBOURS, f"{start} -{step.event}-> {step.target}: no way back"


def test_a_pickup_or_a_loading_a_fault_cut_short_comes_back_ready() -> None:
    """The interrupted pickup: from collecting, every fault leads straight back to ready (the
    same code), and an order loaded but held comes to ready once the fault is gone."""
    for step in TABLE:
        if step.kind is Kind.ORDER and step.fault and step.source == OrderState.COLLECTING:
            assert step.target == OrderState.READY, step
    assert next_state(Kind.ORDER, OrderState.LOADED, "activate") == OrderState.READY
    assert next_state(Kind.ORDER, OrderState.RECLAIMING, "interrupt") == OrderState.RECLAIMING


@pytest.mark.parametrize(("kind", "home"), [(Kind.DOOR, DoorState.LOCKED),
                                            (Kind.COMPARTMENT, CompartmentState.FREE)])
def test_doors_and_compartments_get_home_from_every_state_without_a_technician(
        kind: Kind, home: str) -> None:
    edges = graph(kind, without=ON_SITE)
    for state in STATES[kind]:
        assert home in reachable_from(edges, state), f"{kind.value} {state} is stuck"


def test_every_authorisation_ends_and_a_late_opening_still_counts() -> None:
    edges = graph(Kind.AUTHORISATION)
    for state in STATES[Kind.AUTHORISATION]:
        assert reachable_from(edges, state) & FINAL[Kind.AUTHORISATION]
    for late in ("unconfirmed", "jammed", "interrupted"):
        assert next_state(Kind.AUTHORISATION, late, "opened") == "opened"


def test_a_step_that_is_not_in_the_table_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        next_state(Kind.ORDER, OrderState.COLLECTED, "accept_code")
    assert len(NEXT) == len(TABLE)


def test_nothing_outside_the_lifecycle_writes_its_tables() -> None:
    offenders = []
    for folder in ("locker", "api", "hardware", "simulator", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "lifecycle" in path.parts or (folder, path.name) in (
                    ("simulator", "central.py"),  # the reference central's own database
                    ("locker", "store.py")):  # the schema's migrations
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if WRITE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_state_diagrams_in_the_docs_are_drawn_from_the_table() -> None:
    doc = (ROOT / "docs" / "lifecycle.md").read_text()
    for kind in Kind:
        block = f"```mermaid\n{mermaid(kind)}\n```"
        assert block in doc, (f"docs/lifecycle.md: the {kind.value} diagram is not the table's;"
                              " print it again with `python -m locker.domain.lifecycle.table`")
