"""A cold-chain certificate per order: what each of its bags lived through, signed.

For each compartment of the order, from the moment its door first opened for the courier to
load it until the order's doors closed after pickup: the zone's HACCP readings over
that span (lowest, highest, mean, minutes outside the limits, defrosts, probe faults), the
compartment's door openings, the zone's excursions, the probe and its last calibration, and the
readings themselves (the curve an inspector looks at); the reading in force when the bag came
in counts as the first. It names the rows of the hash-chained
record it was read from (locker.domain.haccp) and is signed with the locker's own key over its exact
text, which travels as text so that any reader checks the very bytes that were signed.

Issued in the transaction that records the collection (`issue`), kept with the order, and sent
to central inside `order.collected`; `provisional` reads the same for an order still inside.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from locker.domain import haccp
from locker.domain.config import LockerConfig, ZoneLimits
from locker.domain.errors import ConfigError, LockerError
from locker.domain.model import Zone
from locker.domain.store import Tx

KIND = "cold_chain_certificate"
CURVE_POINTS = 144  # a longer stay keeps the warmest reading of each stretch: a few kB a bag


@dataclass(frozen=True)
class Certificate:
    body: str  # JSON text, exactly what the signature covers
    signature: str | None  # hex Ed25519; None when the locker has no key (yet)

    @property
    def data(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def wire(self) -> dict[str, Any]:
        """As it travels to central and is printed: the text and its signature."""
        return {"certificate": self.body, "signature": self.signature}


def issue(tx: Tx, config: LockerConfig, order_id: str) -> Certificate:
    """Build, sign and keep the order's certificate, as of tx.now (its doors just closed)."""
    certificate = _signed(_body(tx, config, order_id, _parts(tx, order_id), tx.now,
                                final=True), config)
    tx.execute("INSERT OR REPLACE INTO certificates (order_id, body, signature, issued_at)"
               " VALUES (?, ?, ?, ?)", (order_id, certificate.body, certificate.signature,
                                        tx.now))
    return certificate


def kept(read: Tx, order_id: str) -> Certificate | None:
    row = read.one("SELECT body, signature FROM certificates WHERE order_id = ?", (order_id,))
    return None if row is None else Certificate(row["body"], row["signature"])


def provisional(read: Tx, config: LockerConfig, order_id: str, now: float) -> Certificate:
    """The certificate so far of an order whose bags are still inside."""
    parts = _parts(read, order_id)
    if not any(until is None for _, _, until in parts):
        raise LockerError(f"order {order_id} has no certificate and no bags inside")
    return _signed(_body(read, config, order_id, parts, now, final=False), config)


Part = tuple[str, Zone, float | None]  # a compartment, its zone, when its goods came out


def _parts(tx: Tx, order_id: str) -> list[Part]:
    """The compartments the order's bags were in: every one its courier loaded (a compartment
    whose door jammed while loading held nothing), or, for an order added ready without a
    courier at the door, every one it was given; each until its goods came out (now for those
    still inside, or kept back)."""
    links = tx.all("SELECT compartment_id, bag_zone, released_at FROM order_compartments"
                   " WHERE order_id = ? ORDER BY compartment_id", (order_id,))
    loaded = {r["compartment_id"] for r in tx.all(
        "SELECT DISTINCT compartment_id FROM authorisations WHERE order_id = ?"
        " AND reason = 'load' AND seen_open_at IS NOT NULL", (order_id,))}
    return [(r["compartment_id"], Zone(r["bag_zone"]), r["released_at"]) for r in links
            if not loaded or r["compartment_id"] in loaded]


def _signed(body: dict[str, Any], config: LockerConfig) -> Certificate:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    key = _key(config)
    return Certificate(text, None if key is None else key.sign(text.encode("utf-8")).hex())


def _key(config: LockerConfig) -> Ed25519PrivateKey | None:
    if not config.record_key_file.exists():
        return None
    try:
        return haccp.load_record_key(config.record_key_file)
    except ConfigError:
        return None


def _body(tx: Tx, config: LockerConfig, order_id: str, compartments: list[Part],
          now: float, *, final: bool) -> dict[str, Any]:
    parts = [_compartment(tx, config, order_id, cid, zone, now if until is None else until)
             for cid, zone, until in compartments]
    rows = [p.pop("_rows") for p in parts]
    first = [r[0] for r in rows if r]
    last = [r[1] for r in rows if r]
    head = None
    if last:
        found = tx.one("SELECT chain FROM temperatures WHERE rowid = ?", (max(last),))
        head = None if found is None or found["chain"] is None else found["chain"].hex()
    return {
        "kind": KIND, "version": 1, "locker": config.locker_id, "order": order_id,
        "final": final, "issued_at": _iso(now),
        "compartments": parts,
        "record": {"first_row": min(first) if first else None,
                   "last_row": max(last) if last else None, "head": head},
    }


def _compartment(tx: Tx, config: LockerConfig, order_id: str, compartment_id: str,
                 zone: Zone, now: float) -> dict[str, Any]:
    """One compartment's part, from its loading until `now` (when its goods came out)."""
    limits = config.zones[zone]
    # loaded when its door first opened for the courier (an order added ready, without a
    # courier at the door, counts from when it was added)
    loaded = tx.one("SELECT min(seen_open_at) AS at FROM authorisations WHERE order_id = ?"
                    " AND compartment_id = ? AND reason = 'load'", (order_id, compartment_id))
    order = tx.one("SELECT created_at FROM orders WHERE id = ?", (order_id,))
    start = (loaded["at"] if loaded is not None and loaded["at"] is not None
             else order["created_at"] if order is not None else now)
    end = max(start, now)
    before = tx.one("SELECT rowid, at, celsius, defrosting FROM temperatures WHERE zone = ?"
                    " AND at < ? ORDER BY at DESC LIMIT 1", (zone.value, start))
    readings = tx.all("SELECT rowid, at, celsius, defrosting FROM temperatures WHERE zone = ?"
                      " AND at >= ? AND at <= ? ORDER BY at", (zone.value, start, end))
    spans = ([before] if before is not None else []) + readings
    outside_s = {"above": 0.0, "below": 0.0}
    defrosts = faults = 0
    was_defrosting = bool(before["defrosting"]) if before is not None else False
    for n, r in enumerate(spans):
        lo = max(start, r["at"])
        hi = min(end, spans[n + 1]["at"]) if n + 1 < len(spans) else end
        side = _outside(limits, r["celsius"], bool(r["defrosting"]))
        if side is not None:
            outside_s[side] += max(0.0, hi - lo)
        if r is not before:
            faults += r["celsius"] is None
            defrosts += bool(r["defrosting"]) and not was_defrosting
        was_defrosting = bool(r["defrosting"])
    # the reading in force when the bag came in counts: it is what the bag met first
    values = [r["celsius"] for r in spans if r["celsius"] is not None]
    excursions = tx.all("SELECT id, started_at, ended_at, peak_c FROM excursions WHERE zone = ?"
                        " AND started_at <= ? AND (ended_at IS NULL OR ended_at >= ?)"
                        " ORDER BY started_at", (zone.value, end, start))
    # excursions are timed by the zone loop's readings (every few seconds), finer than the
    # record's samples: their overlap with the stay counts when the samples missed them
    timed = {"above": 0.0, "below": 0.0}
    for e in excursions:
        overlap = max(0.0, min(end, e["ended_at"] or end) - max(start, e["started_at"]))
        timed["above" if e["peak_c"] > limits.max_c else "below"] += overlap
    outside_s = {side: max(outside_s[side], timed[side]) for side in outside_s}
    openings = tx.one(
        "SELECT count(*) AS n FROM authorisations WHERE compartment_id = ? AND seen_open_at"
        " BETWEEN ? AND ?", (compartment_id, start, end))
    forced = tx.one("SELECT count(*) AS n FROM alarms WHERE kind = 'door_forced' AND subject = ?"
                    " AND raised_at BETWEEN ? AND ?", (compartment_id, start, end))
    rows = [r["rowid"] for r in spans]
    return {
        "compartment": compartment_id, "zone": zone.value,
        "from": _iso(start), "to": _iso(end), "minutes": round((end - start) / 60, 1),
        "limits": {"min_c": limits.min_c, "max_c": limits.max_c,
                   "tolerated_max_c": limits.tolerated_max_c},
        "probe": _probe(limits, monitored=bool(spans)),
        "readings": len(spans),
        "min_c": _round(min(values)) if values else None,
        "max_c": _round(max(values)) if values else None,
        "mean_c": _round(sum(values) / len(values)) if values else None,
        "minutes_above": round(outside_s["above"] / 60, 1),
        "minutes_below": round(outside_s["below"] / 60, 1),
        "defrosts": defrosts, "probe_faults": faults,
        "door_openings": (openings["n"] if openings else 0) + (forced["n"] if forced else 0),
        "excursions": [{"id": e["id"], "from": _iso(e["started_at"]),
                        "to": None if e["ended_at"] is None else _iso(e["ended_at"]),
                        "peak_c": _round(e["peak_c"])} for e in excursions],
        # the curve: seconds since `from` and °C (None: the probe could not be read)
        "curve": [[max(0, round(r["at"] - start)), _round(r["celsius"])]
                  for r in _curve(spans)],
        "_rows": (min(rows), max(rows)) if rows else None,
    }


def _curve(readings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most CURVE_POINTS readings: of each stretch, the warmest (a fault if all were)."""
    if len(readings) <= CURVE_POINTS:
        return readings
    kept = []
    for n in range(CURVE_POINTS):
        stretch = readings[n * len(readings) // CURVE_POINTS:
                           (n + 1) * len(readings) // CURVE_POINTS]
        read = [r for r in stretch if r["celsius"] is not None]
        kept.append(max(read, key=lambda r: r["celsius"]) if read else stretch[0])
    return kept


def figures(tx: Tx, config: LockerConfig, order_id: str, compartment_id: str, zone: Zone,
            now: float) -> dict[str, Any]:
    """One compartment's part of the order's certificate, as of `now`."""
    part = _compartment(tx, config, order_id, compartment_id, zone, now)
    part.pop("_rows")
    return part


def _outside(limits: ZoneLimits, celsius: float | None, defrosting: bool) -> str | None:
    if celsius is None:
        return None
    if limits.min_c is not None and celsius < limits.min_c:
        return "below"
    ceiling = limits.max_c
    if defrosting and limits.tolerated_max_c is not None:
        ceiling = limits.tolerated_max_c  # a defrost's short rise, as the excursions judge it
    return "above" if celsius > ceiling else None


def _probe(limits: ZoneLimits, *, monitored: bool) -> dict[str, Any]:
    name: str | None
    if limits.modbus is not None:
        name = f"Modbus controller {limits.modbus.slave} on {limits.modbus.port}"
    elif limits.probe is not None:
        name = f"DS18B20 {limits.probe.parent.name or limits.probe.name}"
    else:  # a probe wired in by other means (the simulator's), or none: not monitored
        name = "the zone's probe" if monitored else None
    return {"name": name, "calibrated": limits.probe_calibrated}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
