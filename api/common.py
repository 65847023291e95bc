"""What every handler of the local app shares: the locker's key on the app, strict JSON bodies,
JSON problems, the staff session behind a request, the answer listing doors.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from locker.domain.config import LockerConfig
from locker.domain.courier import DoorsResult
from locker.domain.daemon import Locker
from locker.domain.errors import LockerError
from locker.domain.model import ZONES
from locker.domain.staff import Session
from locker.domain.unlocking import Door

LOCKER = web.AppKey("locker", Locker)
STATIC = Path(__file__).parent / "static"


class BadRequest(LockerError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class SlowBody(LockerError, TimeoutError):
    """The body did not arrive within http.body_timeout_s: the request does nothing and the
    connection closes (a client trickling bytes must not hold a connection for ever)."""


def problem(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


async def read_json(request: web.Request, fields: dict[str, type]) -> dict[str, Any]:
    """Parse a JSON object with exactly the known fields and types (all optional here)."""
    if request.content_type != "application/json":
        raise BadRequest("body", "send the body as application/json")
    limit = request.app[LOCKER].config.http.body_timeout_s
    try:
        async with asyncio.timeout(limit):
            raw = await request.read()
    except TimeoutError:
        raise SlowBody(f"the body did not arrive within {limit:g} s") from None
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("body", f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("body", "body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("body", "body must be a JSON object")
    for key, value in body.items():
        if key not in fields:
            raise BadRequest(_printable(key), f"unknown field {key!r}")
        if not isinstance(value, fields[key]) or (isinstance(value, bool)
                                                  and fields[key] is not bool):
            raise BadRequest(key, f"{key} must be a {fields[key].__name__}")
        if isinstance(value, str) and _printable(value) != value:
            # JSON may carry lone surrogates ("\ud800"), which are not text and cannot be stored
            raise BadRequest(key, f"{key} is not valid text")
    return body


def _printable(text: str) -> str:
    """The text with anything that is not valid Unicode replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def staff_session(request: web.Request, *, technician: bool = False,
                  touch: bool = True) -> Session:
    """The session named by `Authorization: Bearer <token>`; `touch=False` for what a screen
    reads by itself (it does not keep an idle session alive)."""
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    return request.app[LOCKER].staff.session(token, technician=technician, touch=touch)


def door_json(door: Door) -> dict[str, str]:
    """A door as the screens show it: which compartment, its zone, where it is."""
    return {"compartment": door.compartment_id, "zone": door.zone, "location": door.location}


def doors_answer(result: DoorsResult) -> web.Response:
    return web.json_response({
        "order": result.order_id, "compartments": result.compartments,
        "opened": [door_json(d) for d in result.opened],
        "failed": [door_json(d) for d in result.failed],
    })


async def open_compartment(request: web.Request, actor: str) -> web.Response:
    """A maintenance opening (a technician's or central ops'): the body gives the reason."""
    body = await read_json(request, {"reason": str})
    return doors_answer(await request.app[LOCKER].courier.open_compartment(
        actor, request.match_info["compartment"], body.get("reason", "")))


async def set_in_service(request: web.Request, actor: str) -> web.Response:
    """Out of service or back (a technician's or central ops'): `in_service` and a reason."""
    body = await read_json(request, {"in_service": bool, "reason": str})
    if "in_service" not in body:
        raise BadRequest("in_service", "in_service (true or false) is required")
    request.app[LOCKER].courier.set_in_service(actor, request.match_info["compartment"],
                                               body["in_service"], body.get("reason", ""))
    return web.json_response({"compartment": request.match_info["compartment"],
                              "in_service": body["in_service"]})


def page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    """A screen's page, served as a file from api/static."""
    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / name)

    return serve


def zones_json() -> dict[str, dict[str, Any]]:
    """Every declared zone as the screens show it: its words in each language, its colour, and
    whether it is kept below 0 °C (a snowflake on the drawing)."""
    return {spec.name: {"en": spec.en, "fr": spec.fr, "colour": spec.colour,
                        "freezing": spec.freezing} for spec in ZONES.values()}


def bank(config: LockerConfig) -> dict[str, Any]:
    """The bank as built, for every screen's drawing: its columns and levels (1 at the bottom),
    where each compartment is, and the zones (locker.domain.model.ZONES: the screens name and colour
    no zone of their own)."""
    cells = [{"id": c.id, "zone": c.zone.value, "column": c.column, "level": c.level}
             for c in config.compartments]
    return {"columns": max(c.column for c in config.compartments),
            "levels": max(c.level for c in config.compartments), "compartments": cells,
            "zones": zones_json()}


COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-z]{3,20}")


def zones_css() -> str:
    """The screens' zone colours, from the declarations: an element of a zone's class gets
    `--zone`, which every stylesheet draws with."""
    rules = []
    for spec in ZONES.values():
        if not (COLOUR.fullmatch(spec.colour) and re.fullmatch(r"[a-z][a-z0-9_-]*", spec.name)):
            raise ValueError(f"zone {spec.name!r}: not a CSS class and colour")
        rules.append(f".{spec.name} {{ --zone: {spec.colour}; }}")
    return "\n".join(rules) + "\n"
