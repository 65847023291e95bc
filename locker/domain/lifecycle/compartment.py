"""A compartment's life: free, reserved for an order, loaded, free again; out of service and back.

The compartments themselves come from the config: `sync_with_config` adds the new ones at every
start and refuses to drop one that still holds an order.
"""

from __future__ import annotations

from collections.abc import Callable

from locker.domain.allocation import FreeCompartment
from locker.domain.config import LockerConfig
from locker.domain.errors import Refused, StoreError, UnknownCompartment
from locker.domain.lifecycle import door, records
from locker.domain.lifecycle.records import Compartment
from locker.domain.lifecycle.table import Kind, move
from locker.domain.model import OPEN_DOOR_STATES, CompartmentState, DoorState, OrderState
from locker.domain.store import Tx


def get(tx: Tx, compartment_id: str) -> Compartment:
    row = records.compartment(tx, compartment_id)
    if row is None:
        raise UnknownCompartment(f"no compartment {compartment_id}")
    return row


def free(tx: Tx, config: LockerConfig,
         reachable: Callable[[str], bool] = lambda cid: True) -> list[FreeCompartment]:
    """Free, in-service compartments whose door is shut, whose lock can be reached now and
    that do not read occupied (goods nobody expects are inside)."""
    levels = {c.id: c.level for c in config.compartments}
    return [
        FreeCompartment(row.id, row.zone, row.size, levels.get(row.id, 1))
        for row in records.compartments(tx)
        if row.state is CompartmentState.FREE and row.door is DoorState.LOCKED
        and not row.item and reachable(row.id)
    ]


def reserve(tx: Tx, compartment_id: str, order_id: str) -> None:
    row = get(tx, compartment_id)
    move(tx, Kind.COMPARTMENT, compartment_id, row.state, "reserve")
    tx.execute("UPDATE compartments SET order_id = ? WHERE id = ?", (order_id, compartment_id))


def reserve_for_return(tx: Tx, compartment_id: str, return_id: str) -> None:
    """Held for what a customer hands back: no order is given it meanwhile."""
    row = get(tx, compartment_id)
    move(tx, Kind.COMPARTMENT, compartment_id, row.state, "reserve")
    tx.execute("UPDATE compartments SET return_id = ? WHERE id = ?", (return_id, compartment_id))


def load_return(tx: Tx, compartment_id: str) -> None:
    """The customer's return is in."""
    move(tx, Kind.COMPARTMENT, compartment_id, CompartmentState.RESERVED, "load")


def load(tx: Tx, order_id: str) -> None:
    """The order's goods are in: its reserved compartments are loaded."""
    for row in tx.all("SELECT id FROM compartments WHERE order_id = ? AND state = ?",
                      (order_id, CompartmentState.RESERVED.value)):
        move(tx, Kind.COMPARTMENT, row["id"], CompartmentState.RESERVED, "load")


def give_back(tx: Tx, compartment_id: str, event: str) -> None:
    """The compartment is free again: emptied (goods out) or released (nothing went in)."""
    row = get(tx, compartment_id)
    if row.state in (CompartmentState.RESERVED, CompartmentState.LOADED):
        move(tx, Kind.COMPARTMENT, compartment_id, row.state, event)
        tx.execute("UPDATE compartments SET order_id = NULL, return_id = NULL WHERE id = ?",
                   (compartment_id,))


def jammed_while_loading(tx: Tx, compartment_id: str) -> None:
    row = get(tx, compartment_id)
    move(tx, Kind.COMPARTMENT, compartment_id, row.state, "jam_while_loading")
    tx.execute("UPDATE compartments SET order_id = NULL, service_reason = ? WHERE id = ?",
               (JAMMED_WHILE_LOADING, compartment_id))
    tx.emit("compartment.out_of_service", "door", compartment_id=compartment_id, actor="locker",
            reason=JAMMED_WHILE_LOADING)


JAMMED_WHILE_LOADING = "jammed while loading"


def door_works_again(tx: Tx, compartment_id: str) -> None:
    """A compartment taken out of service by a jam whose door then opened and closed: the latch
    works, so it serves again without anyone having to come."""
    row = get(tx, compartment_id)
    if row.state is CompartmentState.OUT_OF_SERVICE and (
            row.service_reason == JAMMED_WHILE_LOADING):
        move(tx, Kind.COMPARTMENT, compartment_id, row.state, "door_works")
        tx.execute("UPDATE compartments SET service_reason = NULL WHERE id = ?",
                   (compartment_id,))
        tx.emit("compartment.in_service", "door", compartment_id=compartment_id,
                actor="locker", reason="its door opened and closed again after the jam")


def relink(tx: Tx, compartment_id: str, order_id: str) -> None:
    """Out of service for a jam, its door opened late for the order: the order's again."""
    row = get(tx, compartment_id)
    move(tx, Kind.COMPARTMENT, compartment_id, row.state, "relink")
    tx.execute("UPDATE compartments SET order_id = ?, service_reason = NULL WHERE id = ?",
               (order_id, compartment_id))
    tx.clear_alarm("door_jammed", compartment_id, f"compartment {compartment_id} opened late")


def set_in_service(tx: Tx, compartment_id: str, in_service: bool, actor: str,
                   reason: str) -> None:
    """Take an empty compartment out of service, or put one back (a jam is forgotten)."""
    row = get(tx, compartment_id)
    if in_service:
        if row.state is not CompartmentState.OUT_OF_SERVICE:
            raise Refused("in_service", f"compartment {compartment_id} is in service")
        move(tx, Kind.COMPARTMENT, compartment_id, row.state, "put_back")
        door.put_back(tx, compartment_id)
        tx.execute("UPDATE compartments SET service_reason = NULL WHERE id = ?",
                   (compartment_id,))
        tx.clear_alarm("door_jammed", compartment_id,
                       f"compartment {compartment_id} back in service")
    else:
        if row.state is not CompartmentState.FREE:
            raise Refused("not_empty", f"compartment {compartment_id} is"
                                 f" {row.state.value} (order {row.order_id}); empty it first")
        move(tx, Kind.COMPARTMENT, compartment_id, row.state, "take_out")
        tx.execute("UPDATE compartments SET service_reason = ? WHERE id = ?",
                   (reason, compartment_id))
    tx.emit("compartment.in_service" if in_service else "compartment.out_of_service",
            "door", compartment_id=compartment_id, actor=actor, reason=reason)


def sync_with_config(tx: Tx, config: LockerConfig) -> None:
    """Add compartments new in the config; refuse to drop one that still holds an order."""
    wanted = {c.id: c for c in config.compartments}
    known = {row.id: row for row in records.compartments(tx)}
    for cid, row in known.items():
        if cid in wanted:
            continue
        if row.order_id or row.return_id:
            what = f"order {row.order_id}" if row.order_id else "a customer's return"
            raise StoreError(
                f"{config.path}: compartment {cid} holds {what}"
                " but is no longer in the config; put it back, or take it out first"
            )
        tx.execute("DELETE FROM compartments WHERE id = ?", (cid,))
        tx.emit("compartment.removed", "order", compartment_id=cid)
    for cid, c in wanted.items():
        existing = known.get(cid)
        if existing is None:
            tx.insert("compartments", {
                "id": cid, "zone": c.zone.value, "size": c.size.value,
                "state": CompartmentState.FREE.value, "door": DoorState.LOCKED.value,
                "order_id": None, "door_changed_at": tx.now, "updated_at": tx.now,
            })
            tx.emit("compartment.added", "order", compartment_id=cid, zone=c.zone.value,
                    size=c.size.value)
        elif (existing.zone, existing.size) != (c.zone, c.size):
            if existing.order_id or existing.return_id:
                what = (f"order {existing.order_id}" if existing.order_id
                        else "a customer's return")
                raise StoreError(
                    f"{config.path}: compartment {cid} changed zone or size while it"
                    f" holds {what}"
                )
            tx.execute("UPDATE compartments SET zone = ?, size = ? WHERE id = ?",
                       (c.zone.value, c.size.value, cid))


# a bag still inside this long after its order was collected was left behind by the customer
# (beyond it, nobody can tell: it is just goods nobody expects)
GOODS_LEFT_GRACE_S = 60.0


def sense_item(tx: Tx, compartment_id: str, occupied: bool) -> bool:
    """Keep what the compartment's item sensor reads; True if it changed. Written only on a
    change: the sensor is read with the doors, several times a second."""
    return tx.execute("UPDATE compartments SET item = ? WHERE id = ? AND item IS NOT ?",
                      (int(occupied), compartment_id, int(occupied))) > 0


def check_goods(tx: Tx, config: LockerConfig, compartment_id: str) -> None:
    """A compartment holding no order that reads occupied, door shut, holds goods nobody
    expects (a forgotten bag): alarm until it reads empty, and if an order was collected from
    it moments ago, say the customer left goods behind. Without a sensor nothing happens."""
    row = get(tx, compartment_id)
    if row.item is None:
        return
    if not row.item:
        tx.clear_alarm(GOODS_UNEXPECTED, compartment_id, f"compartment {compartment_id} is empty")
        return
    tx.clear_alarm("item_sensor_suspect", compartment_id,
                   f"compartment {compartment_id}'s item sensor reads goods again")
    if row.order_id is not None or row.return_id is not None or row.door.value in (
            *OPEN_DOOR_STATES, DoorState.UNLOCKING):
        return  # its order's goods, a customer's return, or someone is at it
    if not tx.raise_alarm(GOODS_UNEXPECTED, compartment_id,
                          f"compartment {compartment_id} holds goods but no order: a courier"
                          " takes them back; it gets no order meanwhile"):
        return
    window = config.doors.open_timeout_s + GOODS_LEFT_GRACE_S
    left = tx.one(
        "SELECT oc.order_id FROM order_compartments oc JOIN orders o ON o.id = oc.order_id"
        " WHERE oc.compartment_id = ? AND o.state = ? AND oc.released_at >= ?"
        " ORDER BY oc.released_at DESC LIMIT 1",
        (compartment_id, OrderState.COLLECTED.value, tx.now - window))
    if left is not None:
        tx.emit("compartment.goods_left", "door", compartment_id=compartment_id,
                order_id=left["order_id"])


GOODS_UNEXPECTED = "goods_unexpected"


def with_unexpected_goods(tx: Tx) -> list[str]:
    """Compartments holding goods nobody expects, for the courier to take back."""
    return [r["subject"] for r in tx.all(
        "SELECT subject FROM alarms WHERE kind = ? AND cleared_at IS NULL ORDER BY subject",
        (GOODS_UNEXPECTED,))]
