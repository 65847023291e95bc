"""Forgetting what is finished, so that the store stays within its bound for months.

An order collected, reclaimed or cancelled (with nothing left inside) is kept `ORDER_DAYS`, with
its bags, links, flags and authorisations, then deleted; cleared alarms likewise. Central has
had every event about them long before (the outbox has its own bound). The cold-chain record
and its excursions are kept `RECORD_DAYS` (at least a year, as the HACCP rules ask).

A pickup code is the HOTP of its order's sequence, so a sequence must never come back: the
highest sequence ever pruned is kept in `meta`, and no order at or below it is taken again.
"""

from __future__ import annotations

import logging

from locker.coldchain import RETENTION_DAYS
from locker.model import OrderState
from locker.store import Store, Tx

log = logging.getLogger("locker.retention")
ORDER_DAYS = 30
RECORD_DAYS = RETENTION_DAYS
PRUNED_SEQUENCE = "sequence.pruned_up_to"
FINISHED = (OrderState.COLLECTED.value, OrderState.RECLAIMED.value, OrderState.CANCELLED.value)


def pruned_up_to(tx: Tx) -> int:
    """The highest sequence of an order already forgotten (0 if none)."""
    value = tx.meta(PRUNED_SEQUENCE)
    return 0 if value is None else int(value)


def prune(store: Store, now: float, order_days: float = ORDER_DAYS) -> dict[str, int]:
    """Delete what is old and finished; returns how many rows of each kind went."""
    cutoff = now - order_days * 86400
    gone: dict[str, int] = {}
    with store.transaction(now) as tx:
        finished = tx.all(
            "SELECT id, sequence FROM orders o WHERE state IN (?, ?, ?) AND updated_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM compartments c WHERE c.order_id = o.id)",
            (*FINISHED, cutoff))
        ids = [r["id"] for r in finished]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for table in ("order_flags", "order_bags", "order_compartments"):
                gone[table] = gone.get(table, 0) + tx.execute(
                    f"DELETE FROM {table} WHERE order_id IN ({marks})", tuple(chunk))
            gone["orders"] = gone.get("orders", 0) + tx.execute(
                f"DELETE FROM orders WHERE id IN ({marks})", tuple(chunk))
        if finished:
            top = max(int(r["sequence"]) for r in finished)
            tx.set_meta(PRUNED_SEQUENCE, str(max(top, pruned_up_to(tx))))
        gone["authorisations"] = tx.execute(
            "DELETE FROM authorisations WHERE outcome IS NOT NULL AND created_at < ?", (cutoff,))
        gone["alarms"] = tx.execute("DELETE FROM alarms WHERE cleared_at < ?", (cutoff,))
        record_cutoff = now - RECORD_DAYS * 86400
        gone["excursions"] = tx.execute(
            "DELETE FROM excursions WHERE ended_at < ? AND id NOT IN"
            " (SELECT excursion_id FROM order_flags)", (record_cutoff,))
        gone["setpoint_changes"] = tx.execute(
            "DELETE FROM setpoint_changes WHERE at < ? AND rowid NOT IN"
            " (SELECT MAX(rowid) FROM setpoint_changes GROUP BY zone)", (record_cutoff,))
    gone = {k: v for k, v in gone.items() if v}
    if gone:
        log.info("pruned %s", gone)
    return gone
