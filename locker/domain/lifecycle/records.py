"""Typed views of the rows the lifecycle owns: orders, their bags and compartments, doors,
authorisations. Read with the functions below; written only through locker.domain.lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from locker.domain.lifecycle.table import AuthState
from locker.domain.model import CompartmentState, DoorState, OrderState, Size, Zone
from locker.domain.store import Tx


@dataclass(frozen=True)
class Order:
    id: str
    version: int
    sequence: int
    state: OrderState
    code_digest: str | None
    window_start: float | None
    window_end: float | None
    window_s: float
    accessible: bool
    held_since: float | None  # its doors could not open from then on (the window waits)
    held_for: str | None  # why
    phase_since: float | None  # when the pickup or reclaim under way began
    cancel_pending: str | None  # central cancelled it during its pickup: the reason
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, row: dict[str, Any]) -> Order:
        return cls(row["id"], int(row["version"]), int(row["sequence"]),
                   OrderState(row["state"]), row["code_digest"], row["window_start"],
                   row["window_end"], float(row["window_s"] or 0.0), bool(row["accessible"]),
                   row["held_since"], row["held_for"], row["phase_since"],
                   row["cancel_pending"], row["created_at"], row["updated_at"])


@dataclass(frozen=True)
class Bag:
    """One bag of an order, and the compartment it was given (None until allocated)."""

    order_id: str
    number: int
    zone: Zone
    size: Size
    compartment_id: str | None


@dataclass(frozen=True)
class Link:
    """An order's compartment: when its door opened and closed in the current phase (loading,
    pickup or reclaim), and when the compartment was given back (its goods are out)."""

    order_id: str
    compartment_id: str
    zone: Zone
    size: Size
    opened_at: float | None
    closed_at: float | None
    released_at: float | None
    replaces: str | None = None  # the compartment that jammed while loading, whose bags these are
    withheld: str | None = None  # kept back at pickup (its zone left its limits): why


@dataclass(frozen=True)
class Compartment:
    id: str
    zone: Zone
    size: Size
    state: CompartmentState
    door: DoorState
    order_id: str | None
    door_changed_at: float
    service_reason: str | None
    item: bool | None = None  # its item sensor: occupied, empty, or None (no sensor)
    return_id: str | None = None  # the return it holds (then it holds no order)


@dataclass(frozen=True)
class Authorisation:
    id: int
    compartment_id: str
    order_id: str | None
    actor: str
    reason: str
    created_at: float
    acked_at: float | None
    seen_open_at: float | None
    outcome: str | None

    @property
    def state(self) -> AuthState:
        if self.outcome is not None:
            return AuthState(self.outcome)
        return AuthState.ACKED if self.acked_at is not None else AuthState.PENDING

    @classmethod
    def of(cls, row: dict[str, Any]) -> Authorisation:
        return cls(row["id"], row["compartment_id"], row["order_id"], row["actor"],
                   row["reason"], row["created_at"], row["acked_at"], row["seen_open_at"],
                   row["outcome"])


def order(tx: Tx, order_id: str) -> Order | None:
    row = tx.one("SELECT * FROM orders WHERE id = ?", (order_id,))
    return None if row is None else Order.of(row)


def orders_in(tx: Tx, *states: OrderState) -> list[Order]:
    marks = ", ".join("?" * len(states))
    return [Order.of(r) for r in tx.all(
        f"SELECT * FROM orders WHERE state IN ({marks}) ORDER BY created_at", tuple(states))]


def bags(tx: Tx, order_id: str) -> list[Bag]:
    return [Bag(r["order_id"], r["bag_no"], Zone(r["zone"]), Size(r["size"]),
                r["compartment_id"])
            for r in tx.all("SELECT * FROM order_bags WHERE order_id = ? ORDER BY bag_no",
                            (order_id,))]


def links(tx: Tx, order_id: str, *, held_only: bool = True) -> list[Link]:
    """The order's compartments; by default only those it still holds (not given back)."""
    rows = tx.all("SELECT * FROM order_compartments WHERE order_id = ?"
                  + (" AND released_at IS NULL" if held_only else "")
                  + " ORDER BY compartment_id", (order_id,))
    return [Link(r["order_id"], r["compartment_id"], Zone(r["bag_zone"]), Size(r["bag_size"]),
                 r["opened_at"], r["closed_at"], r["released_at"], r["replaces"],
                 r["withheld"]) for r in rows]


def compartment(tx: Tx, compartment_id: str) -> Compartment | None:
    row = tx.one("SELECT * FROM compartments WHERE id = ?", (compartment_id,))
    return None if row is None else _compartment(row)


def compartments(tx: Tx) -> list[Compartment]:
    return [_compartment(r) for r in tx.all("SELECT * FROM compartments ORDER BY id")]


def _compartment(row: dict[str, Any]) -> Compartment:
    return Compartment(row["id"], Zone(row["zone"]), Size(row["size"]),
                       CompartmentState(row["state"]), DoorState(row["door"]), row["order_id"],
                       row["door_changed_at"], row["service_reason"],
                       None if row["item"] is None else bool(row["item"]), row["return_id"])


def authorisation(tx: Tx, auth_id: int) -> Authorisation | None:
    row = tx.one("SELECT * FROM authorisations WHERE id = ?", (auth_id,))
    return None if row is None else Authorisation.of(row)


def latest_authorisation(tx: Tx, compartment_id: str, order_id: str | None = None,
                         since: float | None = None) -> Authorisation | None:
    """The newest authorisation of a door (for this order, created at or after `since`)."""
    sql = "SELECT * FROM authorisations WHERE compartment_id = ?"
    params: list[Any] = [compartment_id]
    if order_id is not None:
        sql += " AND order_id = ?"
        params.append(order_id)
    if since is not None:
        sql += " AND created_at >= ?"
        params.append(since)
    row = tx.one(sql + " ORDER BY id DESC LIMIT 1", tuple(params))
    return None if row is None else Authorisation.of(row)


def unsettled_authorisations(tx: Tx, compartment_id: str | None = None) -> list[Authorisation]:
    """Authorisations whose door has not answered yet (pending or acknowledged)."""
    if compartment_id is None:
        rows = tx.all("SELECT * FROM authorisations WHERE outcome IS NULL ORDER BY id")
    else:
        rows = tx.all("SELECT * FROM authorisations WHERE outcome IS NULL"
                      " AND compartment_id = ? ORDER BY id", (compartment_id,))
    return [Authorisation.of(r) for r in rows]
