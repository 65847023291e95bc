"""The locker's local HTTP app: the touchscreen's pickup call, health, the pages and the routes of
api/kiosk.py, api/staff.py (staff logins, couriers, technicians) and api/ops.py.

Handlers are thin: parse and check the body, call one use case, answer. One middleware turns our
errors into JSON problems ({"error": code, "message": text}) with a status. Bodies are small and
strict: an unknown field or a wrong type is a 400 that changes nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from api import kiosk, metrics, ops, returns, staff
from api.central import add_central_link
from api.common import (
    LOCKER,
    BadRequest,
    SlowBody,
    door_json,
    page,
    problem,
    read_json,
    zones_css,
)
from api.freshness import act_in_time, add_loop_watch
from api.listener import add_safety_headers, check_host
from api.updater import add_update_agent
from locker import __version__
from locker.domain.codes import BadCodeFormat
from locker.domain.daemon import Locker
from locker.domain.deadline import StaleRequest
from locker.domain.errors import LockerError, Refused, StoreError, Unavailable, UnknownCompartment
from locker.domain.lifecycle.order import Exposed
from locker.domain.pickup import PickupRefused, Throttled
from locker.domain.returns import ReturnRefused
from locker.domain.staff import LoginRefused, NotAllowed

log = logging.getLogger("locker.api")
STATIC = Path(__file__).parent / "static"


def seconds(wait_s: float) -> int:
    """A wait in whole seconds, rounded up: a screen that comes back then is never early."""
    return math.ceil(wait_s)


@web.middleware
async def errors_as_json(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return problem(400, "bad_request", str(exc), field=exc.field)
    except SlowBody as exc:
        response = problem(408, "slow_body", str(exc))
        response.force_close()
        return response
    except BadCodeFormat as exc:
        return problem(400, exc.reason, str(exc), field="code")
    except Throttled as exc:  # nothing was judged: the screen sends the same code again then
        response = problem(429, exc.reason, str(exc), retry_after_s=seconds(exc.retry_after_s))
        response.headers["Retry-After"] = str(max(1, seconds(exc.retry_after_s)))
        return response
    except LoginRefused as exc:
        status = 429 if exc.reason == "throttled" else 403
        response = problem(status, exc.reason, str(exc),
                           retry_after_s=seconds(exc.retry_after_s))
        if exc.retry_after_s > 0:
            response.headers["Retry-After"] = str(max(1, seconds(exc.retry_after_s)))
        return response
    except NotAllowed as exc:
        return problem(403 if exc.reason == "role" else 401, exc.reason, str(exc))
    except Unavailable as exc:  # nothing was committed: the code, the session still work
        response = problem(503, exc.reason, str(exc), compartments=list(exc.compartments))
        response.headers["Retry-After"] = "60"
        return response
    except StaleRequest as exc:
        return problem(408, exc.reason, str(exc))
    except Refused as exc:
        return problem(409, exc.reason, str(exc), **exc.detail)
    except UnknownCompartment as exc:
        return problem(404, "no_compartment", str(exc))
    except ReturnRefused as exc:
        return problem(409, exc.reason, str(exc))
    except PickupRefused as exc:
        status = 400 if exc.reason == "bad_screen" else 403
        return problem(status, exc.reason, str(exc), retry_after_s=seconds(exc.retry_after_s))
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[LOCKER].config.http.max_body_bytes
        return problem(413, "too_large", f"request body over {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/") or (
                exc.content_type == "application/json"):
            raise
        # the router's own refusals (no such route, wrong method) as JSON problems too
        return problem(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except StoreError as exc:  # a full disk, say: nothing was recorded, so nothing was opened
        log.error("request failed: %s", exc)
        return problem(503, "store", str(exc))
    except LockerError as exc:
        log.exception("request failed")
        return problem(500, "locker_error", str(exc))


async def pickup(request: web.Request) -> web.Response:
    locker = request.app[LOCKER]
    body = await read_json(request, {"code": str, "screen": str, "assistance": bool})
    if "code" not in body:
        raise BadRequest("code", "code is required")
    if not locker.ready:
        return problem(503, "starting", "the locker is starting; try again in a moment")
    result = await locker.pickup.collect(body["code"], body.get("screen", "front"),
                                         assistance=body.get("assistance", False))
    message = ("take your goods and close the doors" if not result.failed else
               f"some doors did not open; call {locker.config.support_phone}")
    if not result.opened and not result.failed and result.return_offer is not None:
        message = "a return code: say what you hand back"
    if result.withheld:
        message += (f"; {', '.join(e.compartment_id for e in result.withheld)} kept back: its"
                    " zone was out of its temperature limits while your goods were inside")
    return web.json_response({
        "order": result.order_id,
        "opened": [door_json(d) for d in result.opened],
        "failed": [door_json(d) for d in result.failed],
        "withheld": [exposed_json(locker, e) for e in result.withheld],
        "warned": [exposed_json(locker, e) for e in result.warned],
        "return_offer": returns.offer_json(result.return_offer),
        "message": message,
    })


def exposed_json(locker: Locker, bag: Exposed) -> dict[str, Any]:
    """A bag whose zone left its limits while it was inside, for the screen to explain."""
    compartment = locker.config.compartment(bag.compartment_id)
    return {"compartment": bag.compartment_id, "zone": bag.zone,
            "location": compartment.location, "minutes_above": bag.minutes_above,
            "minutes_below": bag.minutes_below, "peak_c": bag.peak_c}


async def health(request: web.Request) -> web.Response:
    """Ready: started (store open, doors reconciled), every board answers (a board that has not
    answered since the start, or stopped, is named in boards_offline), and the store writes."""
    locker = request.app[LOCKER]
    offline = sorted(locker.monitor.offline_boards)
    store = locker.store
    ready = locker.ready and not offline and store.unwritable_since is None
    return web.json_response({
        "locker": locker.config.locker_id, "ready": ready, "started": locker.ready,
        "version": __version__, "boards_offline": offline,
        "store": "writes" if store.unwritable_since is None else
                 f"cannot write since {store.unwritable_since:.0f}: {store.unwritable_reason}",
        "clock": locker.time.trust().why or "trusted",
    }, status=200 if ready else 503)


async def zone_colours(request: web.Request) -> web.Response:
    """The zones' colours for every screen, from their declarations (locker.domain.model.ZONES)."""
    return web.Response(text=zones_css(), content_type="text/css",
                        headers={"Cache-Control": "no-cache"})


def create_app(locker: Locker, *, manage_locker: bool = True) -> web.Application:
    """The app; with manage_locker the app starts and stops the locker (cleanup_ctx)."""
    app = web.Application(middlewares=[check_host(locker.config.http.allowed_hosts),
                                       errors_as_json, act_in_time],
                          client_max_size=locker.config.http.max_body_bytes)
    app.on_response_prepare.append(add_safety_headers)
    app[LOCKER] = locker
    add_loop_watch(app)

    async def run_locker(app: web.Application) -> AsyncIterator[None]:
        await app[LOCKER].start()
        yield
        await app[LOCKER].stop()

    if manage_locker:
        app.cleanup_ctx.append(run_locker)
        add_central_link(app, locker)
        add_update_agent(app, locker)
    app.router.add_post("/api/pickup", pickup)
    app.router.add_get("/api/health", health)
    app.router.add_get("/zones.css", zone_colours)
    app.router.add_get("/", page("kiosk.html"))
    app.router.add_get("/ops", page("ops.html"))
    app.router.add_static("/static", STATIC)
    ops.add_routes(app)
    kiosk.add_routes(app)
    returns.add_routes(app)
    staff.add_routes(app)
    metrics.add_routes(app, locker)
    locker.store.listeners.append(app[ops.LIVE].publish)
    return app
