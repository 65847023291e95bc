"""What the ops page reads: the locker's state, its live feed and remote maintenance (behind the
ops token, `X-Ops-Token`).

Reads only, except the two maintenance actions, which go through the same use cases as a
technician's, with "ops" as the actor, and clearing the guessing throttle (an event for central
says who and why).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

from api.central import CENTRAL, CentralLink
from api.common import (
    LOCKER,
    BadRequest,
    bank,
    open_compartment,
    read_json,
    set_in_service,
)
from api.live import LiveFeed, stream
from locker.domain import attempts
from locker.domain.alarms import ALARMS, NOTE_CHARS, acknowledge, open_alarms
from locker.domain.config import BoardWiring
from locker.domain.daemon import Locker
from locker.domain.sync import outage_since
from locker.domain.throttle import SCOPES

LIVE = web.AppKey("live", LiveFeed)
OPS_ACTOR = "ops"


def _locker(request: web.Request) -> Locker:
    return request.app[LOCKER]


def require_ops(request: web.Request) -> None:
    expected = _locker(request).ops_token
    if expected is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "no_ops_token", "message": "no ops token on this locker;'
                 ' run locker init"}', content_type="application/json")
    given = request.headers.get("X-Ops-Token", "")
    # a header may hold any bytes: aiohttp keeps the non-UTF-8 ones as surrogates
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode()):
        raise web.HTTPUnauthorized(
            text='{"error": "ops_token", "message": "a valid X-Ops-Token is required"}',
            content_type="application/json")


def central_state(locker: Locker, link: CentralLink | None) -> dict[str, Any] | None:
    """How the sync with central goes, for the ops page's header line."""
    if locker.config.central is None:
        return None
    since = outage_since(locker.store)
    row = locker.store.read().one("SELECT COUNT(*) AS n FROM outbox")
    return {
        "url": locker.config.central.url, "reachable": since is None, "outage_since": since,
        "outbox": row["n"] if row else 0,
        "last_answer_age_s": (None if link is None
                              else round(locker.clock.now() - link.last_answer, 1)),
    }


def ops_state(locker: Locker, live: LiveFeed | None = None,
              link: CentralLink | None = None) -> dict[str, Any]:
    read = locker.store.read()
    rows = {r["id"]: r for r in read.all("SELECT * FROM compartments")}
    compartments = []
    for c in locker.config.compartments:
        row = rows.get(c.id, {})
        wiring = c.wiring
        # a silent board's doors are not known: what the store last saw may no longer be true
        known = locker.driver.reachable(c.id)
        compartments.append({
            "id": c.id, "zone": c.zone.value, "size": c.size.value, "column": c.column,
            "level": c.level, "state": row.get("state"),
            "door": row.get("door") if known else "unknown", "door_last_seen": row.get("door"),
            "order": row.get("order_id"), "service_reason": row.get("service_reason"),
            # what a customer handed back waits inside for a courier (locker.returns)
            "holds_return": row.get("return_id") is not None,
            "wired": (f"board {wiring.board} channel {wiring.channel}"
                      if isinstance(wiring, BoardWiring)
                      else f"GPIO {wiring.lock_pin}/{wiring.door_pin}"),
        })
    live_alarms = [{"id": None, "severity": "page", "security": False, "state": "active",
                    "cleared_at": None, "acked_at": None, "acked_by": None, "ack_note": None,
                    **alarm} for alarm in locker.live_alarms()]
    events = [
        {"seq": e.seq, "at": e.at, "kind": e.kind, "compartment_id": e.compartment_id,
         "order_id": e.order_id, **e.payload}
        for e in locker.store.events(after=max(0, _last_seq(read) - 100), limit=100)
    ]
    if live is not None and locker.config.central is not None:
        # the outbox empties as central acknowledges: show what happened since the start
        events = list(live.recent)
    return {
        "locker": locker.config.locker_id, "name": locker.config.name, "ready": locker.ready,
        "boards_offline": sorted(locker.monitor.offline_boards),
        "central": central_state(locker, link),
        "compartments": compartments, "alarms": [*live_alarms, *open_alarms(read)],
        "alarm_kinds": {k: {"severity": a.severity, "security": a.security, "en": a.en,
                            "fr": a.fr} for k, a in ALARMS.items()},
        "events": events[::-1],
        "locale": locker.config.locale, "time_zone": locker.config.time_zone,
        "bank": bank(locker.config),
        # each zone's HACCP record over the last 24 hours, as [time, °C (None: probe fault),
        # defrosting], and its limits
        "temperatures": {
            zone: [[r["at"], r["celsius"], bool(r["defrosting"])] for r in rows]
            for zone, rows in _records(read, locker.clock.now() - 86400).items()
        },
        "zones": {zone.value: {"min_c": limits.min_c, "max_c": limits.max_c,
                               "tolerated_max_c": limits.tolerated_max_c}
                  for zone, limits in locker.config.zones.items()},
    }


def _records(read: Any, since: float) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in read.all("SELECT zone, at, celsius, defrosting FROM temperatures WHERE at >= ?"
                        " ORDER BY at", (since,)):
        found.setdefault(row["zone"], []).append(row)
    return found


def _last_seq(read: Any) -> int:
    row = read.one("SELECT MAX(seq) AS top FROM outbox")
    return int(row["top"] or 0) if row else 0


async def ops_get_state(request: web.Request) -> web.Response:
    require_ops(request)
    link = request.app.get(CENTRAL)
    return web.json_response(ops_state(_locker(request), request.app[LIVE], link),
                             dumps=lambda obj: json.dumps(obj, default=str))


async def ops_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every committed event as one `data:` line, a comment as heartbeat."""
    require_ops(request)
    return await stream(request, request.app[LIVE], lambda: b": connected\n\n",
                        lambda line: f"data: {line}\n\n".encode())


async def ops_ack_alarm(request: web.Request) -> web.Response:
    """An operator acknowledges an alarm with a note (`by` names the person); central hears
    it (`alarm.acknowledged`)."""
    require_ops(request)
    locker = _locker(request)
    body = await read_json(request, {"note": str, "by": str})
    by, note = body.get("by", "").strip(), body.get("note", "").strip()
    if len(by) > 64:
        raise BadRequest("by", "by: at most 64 characters")
    low, high = NOTE_CHARS
    if not low <= len(note) <= high:
        raise BadRequest("note", f"note: say what was seen or done ({low}-{high} characters)")
    try:
        alarm_id = int(request.match_info["alarm"])
    except ValueError:
        raise BadRequest("alarm", "alarm: the alarm's number") from None
    with locker.store.transaction(locker.clock.now()) as tx:
        answer = acknowledge(tx, alarm_id, body.get("note", ""),
                             f"{OPS_ACTOR}:{by}" if by else OPS_ACTOR)
    return web.json_response(answer)


async def ops_open(request: web.Request) -> web.Response:
    require_ops(request)
    return await open_compartment(request, OPS_ACTOR)


async def ops_service(request: web.Request) -> web.Response:
    require_ops(request)
    return await set_in_service(request, OPS_ACTOR)


def throttle_view(locker: Locker) -> dict[str, Any]:
    policy = locker.config.throttle
    with_policy = {"max_delay_s": policy.max_delay_s, "free_wrong_codes": policy.free_wrong_codes,
                   "forget_per_hour": policy.forget_per_hour}
    return {"scopes": attempts.report(locker.store.read(), policy, locker.clock.now()),
            "policy": with_policy}


async def ops_get_throttle(request: web.Request) -> web.Response:
    """Each scope's wait, recent wrong codes and the delay the next wrong code would set."""
    require_ops(request)
    return web.json_response(throttle_view(_locker(request)))


async def ops_clear_throttle(request: web.Request) -> web.Response:
    """Forget the wrong codes of one scope (or both): `reason` is required, `by` names the
    person; both go to central in `security.throttle_cleared`."""
    require_ops(request)
    locker = _locker(request)
    body = await read_json(request, {"reason": str, "by": str, "scope": str})
    reason, by = body.get("reason", "").strip(), body.get("by", "").strip()
    if not reason or len(reason) > 200:
        raise BadRequest("reason", "reason (1-200 characters) is required: central reads it")
    if len(by) > 64:
        raise BadRequest("by", "by: at most 64 characters")
    scope = body.get("scope")
    if scope is not None and scope not in SCOPES:
        raise BadRequest("scope", f"scope must be one of {', '.join(SCOPES)} (or left out: both)")
    scopes = SCOPES if scope is None else (scope,)
    actor = f"{OPS_ACTOR}:{by}" if by else OPS_ACTOR
    with locker.store.transaction(locker.clock.now()) as tx:
        before = attempts.clear(tx, locker.config.throttle, scopes, tx.now, actor, reason)
    return web.json_response({"cleared": before, **throttle_view(locker)})


def add_routes(app: web.Application) -> None:
    feed = LiveFeed()
    app[LIVE] = feed
    app.router.add_get("/api/ops/state", ops_get_state)
    app.router.add_get("/api/ops/stream", ops_stream)
    app.router.add_post("/api/ops/alarms/{alarm}/ack", ops_ack_alarm)
    app.router.add_post("/api/ops/compartments/{compartment}/open", ops_open)
    app.router.add_post("/api/ops/compartments/{compartment}/service", ops_service)
    app.router.add_get("/api/ops/throttle", ops_get_throttle)
    app.router.add_post("/api/ops/throttle/clear", ops_clear_throttle)
