"""The locker's side of keeping central informed: the feed cursor, the outbox, and outages.

The HTTP client (api/central.py) moves bytes; the decisions live here. The cursor is committed
with the item it applied, so a restart neither skips nor repeats an item. An outbox event is
deleted only once central acknowledged it. The outbox is bounded: over the bound, the oldest
telemetry goes first, then cold-chain events (whose record stays in the store), never an order,
door, alarm or security event. An outage is counted from the last answer central gave; windows
that end during it are held open and, once central answers, extended by its length.

Nothing is written when things go well and nothing changes (an empty long poll, a heartbeat):
an SD card has only so many writes in it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from locker.domain.config import LockerConfig
from locker.domain.datadir import outbox_seq, raise_outbox_seq, report_rollback
from locker.domain.lifecycle.order import extend_for_outage
from locker.domain.model import OrderState
from locker.domain.store import Event, Store, Tx

CURSOR = "central.cursor"
OUTAGE_SINCE = "central.outage_since"
DROPPED = "central.outbox_dropped"
DROPPABLE = ("telemetry", "coldchain")  # in the order they are dropped


def cursor(store: Store) -> int:
    value = store.meta(CURSOR)
    return 0 if value is None else int(value)


def set_cursor(tx: Tx, value: int) -> None:
    """Move the cursor, inside the transaction that applied the item it points past."""
    tx.set_meta(CURSOR, str(value))


def pending(store: Store, limit: int) -> list[Event]:
    """The oldest events still waiting for central, in the order they happened."""
    return store.events(after=0, limit=limit)


def acknowledge(store: Store, now: float, sent: Mapping[str, int], acked: Iterable[str]) -> int:
    """Delete the sent events (id -> seq) central says it holds; an id we did not send is
    ignored."""
    seqs = sorted({sent[event_id] for event_id in acked if event_id in sent})
    if not seqs:
        return 0
    # not durable: a power cut that undoes this sends the events again, and central drops them
    with store.transaction(now, durable=False) as tx:
        for start in range(0, len(seqs), 500):
            chunk = seqs[start:start + 500]
            tx.execute(f"DELETE FROM outbox WHERE seq IN ({', '.join('?' * len(chunk))})",
                       tuple(chunk))
    return len(seqs)


def enforce_bound(store: Store, now: float, max_events: int,
                  droppable: tuple[str, ...] = DROPPABLE) -> int:
    """Drop the oldest droppable events over the bound; returns how many were dropped."""
    row = store.read().one("SELECT COUNT(*) AS n FROM outbox")
    excess = (row["n"] if row else 0) - max_events
    if excess <= 0:
        return 0
    dropped: dict[str, int] = {}
    with store.transaction(now) as tx:
        for category in droppable:
            if excess <= 0:
                break
            gone = tx.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE category = ?"
                " ORDER BY seq LIMIT ?)", (category, excess))
            if gone:
                dropped[category] = gone
                excess -= gone
        total = sum(dropped.values())
        if total:
            before = int(tx.meta(DROPPED) or 0)
            tx.set_meta(DROPPED, str(before + total))
            tx.emit("telemetry.outbox_dropped", "telemetry", dropped=dropped,
                    total_dropped=before + total, bound=max_events)
    return total


def outage_since(store: Store) -> float | None:
    value = store.meta(OUTAGE_SINCE)
    return None if value is None else float(value)


def unreachable(store: Store, config: LockerConfig, now: float, last_answer: float,
                why: str = "") -> Tx | None:
    """Central did not answer: start counting an outage (from its last answer), and alarm once
    it has lasted `outage_alarm_s`. Returns the transaction when something was written."""
    assert config.central is not None
    since = outage_since(store)
    if since is None:
        with store.transaction(now) as tx:
            tx.set_meta(OUTAGE_SINCE, repr(last_answer))
            tx.emit("telemetry.central_unreachable", "telemetry", since=last_answer,
                    reason=why[:300])
        return tx
    if now - since >= config.central.outage_alarm_s:
        with store.transaction(now) as tx:
            raised = tx.raise_alarm(
                "central_unreachable", "central",
                f"central has not answered for {now - since:.0f} s ({why[:200] or 'no answer'});"
                " pickups and loading go on, events wait in the outbox. Check the shop's network,"
                " and [central] url and ca_file.")
        return tx if raised else None
    return None


def reachable(store: Store, now: float) -> Tx | None:
    """Central answered: end the outage, extending every window that ended during it. Returns
    the transaction when an outage ended (its events name the orders extended)."""
    since = outage_since(store)
    if since is None:
        return None
    outage_s = max(0.0, now - since)
    with store.transaction(now) as tx:
        extended = extend_for_outage(tx, since, f"central unreachable for {outage_s:.0f} s",
                                     ended_only=True)
        tx.set_meta(OUTAGE_SINCE, None)
        tx.clear_alarm("central_unreachable", "central",
                       f"central answers again after {outage_s:.0f} s")
        tx.emit("telemetry.central_reachable", "telemetry", outage_s=outage_s,
                windows_extended=len(extended))
    return tx


def central_saw(store: Store, now: float, events_seq: int) -> bool:
    """Central holds events up to `events_seq`: a store behind that lost committed data. It is
    said once (the sequence moves up, so that no number is used twice); True when it was."""
    found = outbox_seq(store.read())
    if events_seq <= found:
        return False
    with store.transaction(now) as tx:
        raise_outbox_seq(tx, events_seq)
        report_rollback(tx, found, events_seq, "central")
    return True


def heartbeat(store: Store, *, version: str, ready: bool,
              zones: Mapping[str, Mapping[str, Any]], now: float | None = None,
              live_alarms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """How the locker is, as docs/central.md's heartbeat describes it (reads only)."""
    read = store.read()
    compartments = {r["state"]: r["n"] for r in read.all(
        "SELECT state, COUNT(*) AS n FROM compartments GROUP BY state")}
    orders = {r["state"]: r["n"] for r in read.all(
        "SELECT state, COUNT(*) AS n FROM orders WHERE state NOT IN (?, ?, ?) GROUP BY state",
        (OrderState.COLLECTED.value, OrderState.RECLAIMED.value, OrderState.CANCELLED.value))}
    alarms = [{"kind": r["kind"], "subject": r["subject"], "message": r["message"],
               "raised_at": r["raised_at"]}
              for r in read.all("SELECT kind, subject, message, raised_at FROM alarms"
                                " WHERE cleared_at IS NULL ORDER BY raised_at LIMIT 100")]
    alarms += live_alarms or []  # those the store cannot hold now (it cannot write)
    outbox = read.one("SELECT COUNT(*) AS depth, MIN(at) AS oldest_at FROM outbox")
    return {
        "at": time.time() if now is None else now,
        "version": version, "ready": ready, "cursor": cursor(store),
        "compartments": compartments, "orders": orders,
        "zones": {name: dict(state) for name, state in zones.items()},
        "alarms": alarms,
        "outbox": {"depth": outbox["depth"] if outbox else 0,
                   "oldest_at": outbox["oldest_at"] if outbox else None,
                   "dropped": int(store.meta(DROPPED) or 0)},
    }
