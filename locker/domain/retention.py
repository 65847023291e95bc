"""Forgetting what is finished, so that the store stays within its bound for months.

An order collected, reclaimed or cancelled (with nothing left inside) is kept `ORDER_DAYS`, with
its bags, links, flags and authorisations, then deleted
(locker.domain.lifecycle.order.forget_finished, which also remembers the highest sequence forgotten,
so it never comes back); cleared alarms likewise. Central has had every event about them long before
(the outbox has its own bound). The cold-chain record and its excursions are kept `RECORD_DAYS` (at
least a year, as the HACCP rules ask).
"""

from __future__ import annotations

import logging

from locker.domain.alarms import OPEN_SQL
from locker.domain.coldchain import RETENTION_DAYS
from locker.domain.lifecycle import returns as returns_life
from locker.domain.lifecycle.order import forget_finished
from locker.domain.store import Store

log = logging.getLogger("locker.retention")
ORDER_DAYS = 30
RECORD_DAYS = RETENTION_DAYS


def prune(store: Store, now: float, order_days: float = ORDER_DAYS) -> dict[str, int]:
    """Delete what is old and finished; returns how many rows of each kind went."""
    cutoff = now - order_days * 86400
    with store.transaction(now) as tx:
        gone = forget_finished(tx, cutoff)
        gone["returns"] = returns_life.forget_finished(tx, cutoff)
        # a security alarm waits for its acknowledgement, however old
        gone["alarms"] = tx.execute(f"DELETE FROM alarms WHERE cleared_at < ? AND NOT {OPEN_SQL}",
                                    (cutoff,))
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
