"""The locker's local HTTP app: the touchscreen's pickup call and the health check.

Handlers are thin: parse and check the body, call one use case, answer. One middleware turns our
errors into JSON problems ({"error": code, "message": text}) with a status. Bodies are small and
strict: an unknown field or a wrong type is a 400 that changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from locker import __version__
from locker.codes import BadCodeFormat
from locker.daemon import Locker
from locker.errors import LockerError
from locker.pickup import PickupRefused, Throttled

log = logging.getLogger("locker.api")
LOCKER = web.AppKey("locker", Locker)
STATIC = Path(__file__).parent / "static"


class BadRequest(LockerError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def problem(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


@web.middleware
async def errors_as_json(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return problem(400, "bad_request", str(exc), field=exc.field)
    except BadCodeFormat as exc:
        return problem(400, "bad_code_format", str(exc), field="code")
    except Throttled as exc:
        response = problem(429, exc.reason, str(exc), retry_after_s=round(exc.retry_after_s))
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return response
    except PickupRefused as exc:
        status = 400 if exc.reason == "bad_screen" else 403
        return problem(status, exc.reason, str(exc), retry_after_s=round(exc.retry_after_s))
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[LOCKER].config.http.max_body_bytes
        return problem(413, "too_large", f"request body over {limit} bytes")
    except web.HTTPException:
        raise
    except LockerError as exc:
        log.exception("request failed")
        return problem(500, "locker_error", str(exc))


async def read_json(request: web.Request, fields: dict[str, type]) -> dict[str, Any]:
    """Parse a JSON object with exactly the known fields and types (all optional here)."""
    if request.content_type != "application/json":
        raise BadRequest("body", "send the body as application/json")
    try:
        body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("body", f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("body", "body must be a JSON object")
    for key, value in body.items():
        if key not in fields:
            raise BadRequest(key, f"unknown field {key!r}")
        if not isinstance(value, fields[key]) or isinstance(value, bool):
            raise BadRequest(key, f"{key} must be a {fields[key].__name__}")
    return body


async def pickup(request: web.Request) -> web.Response:
    locker = request.app[LOCKER]
    body = await read_json(request, {"code": str, "screen": str})
    if "code" not in body:
        raise BadRequest("code", "code is required")
    if not locker.ready:
        return problem(503, "starting", "the locker is starting; try again in a moment")
    result = await locker.pickup.collect(body["code"], body.get("screen", "front"))

    def door(d: Any) -> dict[str, str]:
        return {"compartment": d.compartment_id, "zone": d.zone, "location": d.location}

    return web.json_response({
        "order": result.order_id,
        "opened": [door(d) for d in result.opened],
        "failed": [door(d) for d in result.failed],
        "message": "take your goods and close the doors" if not result.failed else
                   f"some doors did not open; call {locker.config.support_phone}",
    })


async def health(request: web.Request) -> web.Response:
    locker = request.app[LOCKER]
    return web.json_response({
        "locker": locker.config.locker_id, "ready": locker.ready, "version": __version__,
        "boards_offline": sorted(locker.monitor.offline_boards),
    }, status=200 if locker.ready else 503)


async def kiosk(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "kiosk.html")


def create_app(locker: Locker, *, manage_locker: bool = True) -> web.Application:
    """The app; with manage_locker the app starts and stops the locker (cleanup_ctx)."""
    app = web.Application(middlewares=[errors_as_json],
                          client_max_size=locker.config.http.max_body_bytes)
    app[LOCKER] = locker

    async def run_locker(app: web.Application) -> AsyncIterator[None]:
        await app[LOCKER].start()
        yield
        await app[LOCKER].stop()

    if manage_locker:
        app.cleanup_ctx.append(run_locker)
    app.router.add_post("/api/pickup", pickup)
    app.router.add_get("/api/health", health)
    app.router.add_get("/", kiosk)
    return app
