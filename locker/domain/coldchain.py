"""The cold-chain record and its consequences: HACCP readings, excursions, alarms, flagged orders.

Fed one observation per zone reading by the zone loop. Every `RECORD_INTERVAL_S` a reading goes
into the HACCP record, and one at each excursion's start and end (kept `RETENTION_DAYS`, so the
database stays bounded; each row chained to the one before and each day's head signed, by
locker.domain.haccp). A zone out of its limits for longer than its grace (or at once above the
tolerated maximum) opens an excursion: an alarm that blocks loading into the zone, and a flag on
every order inside it. Recovery closes the excursion (peak and duration recorded) and lifts the
block; the flags stay for central to decide, and `[coldchain] on_excursion` says what the
customer's pickup does with a flagged bag (locker.domain.lifecycle.order.accept_code).
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from locker.domain import haccp
from locker.domain.clock import Clock
from locker.domain.config import LockerConfig
from locker.domain.model import OrderState, Zone
from locker.domain.store import Store, Tx
from locker.domain.zones import Decision

log = logging.getLogger("locker.coldchain")
RECORD_INTERVAL_S = 300.0
RETENTION_DAYS = 400  # at least a year, as Regulation (EC) 37/2005 asks
HELD_STATES = (OrderState.ALLOCATED.value, OrderState.READY.value, OrderState.COLLECTING.value,
               OrderState.EXPIRED.value, OrderState.RECLAIMING.value)


@dataclass
class _ZoneWatch:
    out_since: float | None = None
    peak: float | None = None
    excursion: int | None = None  # open excursion's id
    last_recorded: float = -1e12
    door_openings: int = 0  # since the last record: each lets warm air in


class ColdChain:
    def __init__(self, store: Store, config: LockerConfig, clock: Clock,
                 key: Ed25519PrivateKey | None = None) -> None:
        self.store, self.config, self.clock = store, config, clock
        self.key = key  # signs each day's head; without it the chain is kept, unsigned
        self.watch = {zone: _ZoneWatch() for zone in Zone}
        for row in store.read().all("SELECT id, zone, peak_c FROM excursions"
                                    " WHERE ended_at IS NULL"):
            # an excursion still open at the last stop stays open until recovery is seen
            watch = self.watch[Zone(row["zone"])]
            watch.excursion, watch.peak, watch.out_since = row["id"], row["peak_c"], 0.0

    def door_opened(self, zone: Zone) -> None:
        """Counted against the zone in the next record (the monitor tells us)."""
        self.watch[zone].door_openings += 1

    def setpoint(self, zone: Zone, celsius: float, actor: str) -> None:
        """Record a setpoint that differs from the last one recorded, with who set it."""
        last = self.store.read().one("SELECT celsius FROM setpoint_changes WHERE zone = ?"
                                     " ORDER BY at DESC LIMIT 1", (zone.value,))
        if last is not None and last["celsius"] == celsius:
            return
        with self.store.transaction(self.clock.now()) as tx:
            tx.insert("setpoint_changes", {"zone": zone.value, "at": tx.now, "celsius": celsius,
                                           "actor": actor})
            tx.emit("zone.setpoint", "coldchain", zone=zone.value, celsius=celsius, actor=actor,
                    previous=None if last is None else last["celsius"])

    def observe(self, zone: Zone, celsius: float | None, decision: Decision) -> None:
        now = self.clock.now()
        watch = self.watch[zone]
        with self.store.transaction(now) as tx:
            self._faults(tx, zone, celsius, decision)
            excursion = watch.excursion
            if celsius is not None:
                self._limits(tx, zone, celsius, decision.defrosting, watch)
            # one reading per interval, on the interval's grid (12 an hour, at :00, :05, ...),
            # and one when an excursion starts or ends, so the record holds its edges
            if (now // RECORD_INTERVAL_S != watch.last_recorded // RECORD_INTERVAL_S
                    or excursion != watch.excursion):
                watch.last_recorded = now
                haccp.record(tx, self.key, self.config.locker_id, zone.value, celsius,
                             decision.compressor_on, decision.defrosting, watch.door_openings)
                watch.door_openings = 0
                haccp.forget_before(tx, now - RETENTION_DAYS * 86400)

    def _faults(self, tx: Tx, zone: Zone, celsius: float | None, decision: Decision) -> None:
        if celsius is None:
            tx.raise_alarm("probe_fault", zone.value,
                           f"the {zone.value} zone's probe cannot be read: check its cable; the"
                           " compressor runs a fixed duty cycle meanwhile")
        else:
            tx.clear_alarm("probe_fault", zone.value, f"the {zone.value} probe reads again")
        if decision.not_cooling:
            tx.raise_alarm("not_cooling", zone.value,
                           f"the {zone.value} compressor runs but the zone does not get colder:"
                           " check the compressor, its fan and the door seals")
        else:
            tx.clear_alarm("not_cooling", zone.value, f"the {zone.value} zone cools again")

    def _limits(self, tx: Tx, zone: Zone, celsius: float, defrosting: bool,
                watch: _ZoneWatch) -> None:
        limits = self.config.zones[zone]
        too_cold = limits.min_c is not None and celsius < limits.min_c
        too_warm = celsius > limits.max_c
        hard = limits.tolerated_max_c is not None and celsius > limits.tolerated_max_c
        if too_warm and defrosting and not hard and limits.tolerated_max_c is not None:
            too_warm = False  # a defrost's short rise, within the tolerated maximum
        if not (too_cold or too_warm):
            if watch.excursion is not None:
                self._end(tx, zone, watch)
            watch.out_since, watch.peak = None, None
            return
        now = tx.now
        if watch.out_since is None:
            watch.out_since = now
        watch.peak = celsius if watch.peak is None else (
            max(watch.peak, celsius) if too_warm else min(watch.peak, celsius))
        if watch.excursion is not None:
            tx.execute("UPDATE excursions SET peak_c = ? WHERE id = ?",
                       (watch.peak, watch.excursion))
        elif hard or now - watch.out_since >= limits.grace_s:
            self._start(tx, zone, watch)

    def _start(self, tx: Tx, zone: Zone, watch: _ZoneWatch) -> None:
        assert watch.out_since is not None and watch.peak is not None
        watch.excursion = tx.insert("excursions", {"zone": zone.value,
                                                   "started_at": watch.out_since,
                                                   "peak_c": watch.peak})
        orders = [r["id"] for r in tx.all(
            "SELECT DISTINCT o.id FROM orders o JOIN order_bags b ON b.order_id = o.id"
            f" WHERE b.zone = ? AND o.state IN ({', '.join('?' * len(HELD_STATES))})",
            (zone.value, *HELD_STATES))]
        for order_id in orders:
            tx.execute("INSERT OR IGNORE INTO order_flags (order_id, excursion_id) VALUES (?, ?)",
                       (order_id, watch.excursion))
            tx.emit("order.cold_chain_flag", "order", order_id=order_id, zone=zone.value,
                    excursion=watch.excursion)
        tx.emit("zone.excursion_started", "coldchain", zone=zone.value, since=watch.out_since,
                peak_c=watch.peak, orders=orders)
        tx.raise_alarm("zone_excursion", zone.value,
                       f"the {zone.value} zone is out of its limits ({watch.peak:.1f} °C):"
                       f" loading into it is blocked and {len(orders)} orders are flagged")
        log.error("%s zone excursion: %.1f °C", zone.value, watch.peak)

    def _end(self, tx: Tx, zone: Zone, watch: _ZoneWatch) -> None:
        row = tx.one("SELECT started_at, peak_c FROM excursions WHERE id = ?", (watch.excursion,))
        assert row is not None
        tx.execute("UPDATE excursions SET ended_at = ? WHERE id = ?", (tx.now, watch.excursion))
        orders = [r["order_id"] for r in tx.all(
            "SELECT order_id FROM order_flags WHERE excursion_id = ?", (watch.excursion,))]
        tx.emit("zone.excursion_ended", "coldchain", zone=zone.value, excursion=watch.excursion,
                peak_c=row["peak_c"], duration_s=tx.now - row["started_at"], orders=orders)
        tx.clear_alarm("zone_excursion", zone.value,
                       f"the {zone.value} zone is back within its limits; loading resumes"
                       " (the flagged orders stay flagged)")
        watch.excursion = None

    def record(self, zone: Zone, since: float) -> list[tuple[float, float | None]]:
        """The HACCP record of one zone since a time: (time, °C or None for a probe fault)."""
        return [(r["at"], r["celsius"]) for r in self.store.read().all(
            "SELECT at, celsius FROM temperatures WHERE zone = ? AND at >= ? ORDER BY at",
            (zone.value, since))]


def export_csv(store: Store, start: float, end: float, out: Any) -> int:
    """The HACCP record between two times as CSV for an inspector; returns the rows written.

    One line per reading (local time, zone, °C or "probe fault", compressor, defrost), then one
    line per excursion that overlaps the period, with its peak, its duration and its orders.
    """
    writer = csv.writer(out)
    writer.writerow(["time", "zone", "celsius", "compressor", "defrost", "door openings"])
    rows = 0
    for r in store.read().all("SELECT * FROM temperatures WHERE at >= ? AND at < ? ORDER BY at,"
                              " zone", (start, end)):
        writer.writerow([_local(r["at"]), r["zone"],
                         "probe fault" if r["celsius"] is None else f"{r['celsius']:.1f}",
                         "on" if r["compressor"] else "off", "yes" if r["defrosting"] else "no",
                         r["door_openings"]])
        rows += 1
    writer.writerow([])
    writer.writerow(["excursion", "zone", "from", "to", "peak celsius", "minutes", "orders"])
    for e in store.read().all("SELECT * FROM excursions WHERE started_at < ? AND"
                              " (ended_at IS NULL OR ended_at >= ?) ORDER BY started_at",
                              (end, start)):
        orders = [o["order_id"] for o in store.read().all(
            "SELECT order_id FROM order_flags WHERE excursion_id = ?", (e["id"],))]
        until = e["ended_at"]
        writer.writerow([e["id"], e["zone"], _local(e["started_at"]),
                         "ongoing" if until is None else _local(until), f"{e['peak_c']:.1f}",
                         "" if until is None else f"{(until - e['started_at']) / 60:.0f}",
                         " ".join(orders)])
    writer.writerow([])
    writer.writerow(["setpoint", "zone", "time", "celsius", "set by"])
    for number, c in enumerate(store.read().all(
            "SELECT * FROM setpoint_changes WHERE at < ? ORDER BY at", (end,)), start=1):
        writer.writerow([number, c["zone"], _local(c["at"]), f"{c['celsius']:.1f}", c["actor"]])
    return rows


def _local(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(at))
