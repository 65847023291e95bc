"""The staff's side of the local app: logins and sessions, the courier's orders and doors, the
technician's compartments, and their two screens (/courier, /technician).

Handlers are thin: check the session (server-side, with the role the action needs), call one use
case of locker.courier or locker.staff, answer. What a screen reads by itself (its lists, a
door's progress, the bank) does not keep an idle session alive; what a person does does, and
`POST /api/staff/session` is the screen saying someone touched it. Every answer about the
session says how long it has left (`ends_in_s`), so a screen left alone returns to its login on
time without being touched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.common import (
    LOCKER,
    STATIC,
    BadRequest,
    doors_answer,
    open_compartment,
    problem,
    read_json,
    set_in_service,
    staff_session,
)
from locker.domain.config import LockerConfig
from locker.domain.courier import Progress
from locker.domain.errors import Refused
from locker.domain.pickup import SCREEN_ID
from locker.domain.staff import Session


def screen_html(screen: str, title: str) -> str:
    """One staff screen's page: the frame every staff screen shares (staff.html: header,
    languages, login) around the screen's own part (`<screen>-screen.html`: its header link,
    then `<!-- work -->`, then what it shows once logged in)."""
    frame = (STATIC / "staff.html").read_text("utf-8")
    nav, work = (STATIC / f"{screen}-screen.html").read_text("utf-8").split("<!-- work -->\n")
    page = frame.replace("<!-- nav -->\n", nav).replace("<!-- work -->\n", work)
    return page.replace("<!-- title -->", title).replace("<!-- screen -->", screen)


def screen_page(screen: str, title: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    html = screen_html(screen, title)

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    return serve


def session_json(request: web.Request, session: Session) -> dict[str, Any]:
    locker = request.app[LOCKER]
    return {"staff": session.member.id, "name": session.member.name,
            "role": session.member.role, "idle_timeout_s": locker.config.staff.idle_timeout_s,
            "ends_in_s": round(locker.staff.ends_in_s(session), 1)}


async def staff_login(request: web.Request) -> web.Response:
    locker = request.app[LOCKER]
    body = await read_json(request, {"staff": str, "code": str, "screen": str})
    for key in ("staff", "code"):
        if key not in body:
            raise BadRequest(key, f"{key} is required")
    screen = body.get("screen", "front")
    if not SCREEN_ID.fullmatch(screen):
        raise BadRequest("screen", "screen: 1-32 lower-case letters, digits, - or _")
    session = locker.staff.login(body["staff"], body["code"].strip(), screen)
    return web.json_response({"token": session.token, **session_json(request, session)})


async def staff_logout(request: web.Request) -> web.Response:
    session = staff_session(request, touch=False)
    request.app[LOCKER].staff.logout(session.token)
    return web.json_response({"ended": True})


async def session_left(request: web.Request) -> web.Response:
    """The session and how long it has left, without keeping it alive."""
    return web.json_response(session_json(request, staff_session(request, touch=False)))


async def session_touched(request: web.Request) -> web.Response:
    """Someone touched the screen: the session starts its idle time again."""
    return web.json_response(session_json(request, staff_session(request)))


async def courier_orders(request: web.Request) -> web.Response:
    staff_session(request, touch=False)
    return web.json_response(request.app[LOCKER].courier.orders())


def progress_json(config: LockerConfig, progress: Progress) -> dict[str, Any]:
    doors = []
    for door in progress.doors:
        c = config.compartment(door.compartment_id)
        doors.append({"compartment": c.id, "zone": c.zone.value, "column": c.column,
                      "level": c.level, "step": door.step, "replaces": door.replaces,
                      "moved_to": list(door.moved_to), "may_open": door.may_open,
                      "empty": door.empty})
    return {"order": progress.order_id, "state": progress.state, "phase": progress.phase,
            "result": progress.result, "doors": doors, "unplaced": progress.unplaced,
            "held_zones": progress.held_zones}


async def courier_order(request: web.Request) -> web.Response:
    """One order's doors, live: opened, closed, did not unlock, jammed (and where its bags
    went instead)."""
    staff_session(request, touch=False)
    locker = request.app[LOCKER]
    order_id = request.match_info["order"]
    try:
        progress = locker.courier.progress(order_id)
    except Refused as exc:
        if exc.reason != "no_order":
            raise
        return problem(404, "no_order", str(exc))
    return web.json_response(progress_json(locker.config, progress))


async def courier_load(request: web.Request) -> web.Response:
    session = staff_session(request)
    body = await read_json(request, {"together": bool})
    result = await request.app[LOCKER].courier.load(session.actor, request.match_info["order"],
                                                    together=body.get("together", True))
    return doors_answer(result)


async def courier_open(request: web.Request) -> web.Response:
    session = staff_session(request)
    body = await read_json(request, {"compartment": str})
    if "compartment" not in body:
        raise BadRequest("compartment", "compartment is required")
    return doors_answer(await request.app[LOCKER].courier.open_for_loading(
        session.actor, request.match_info["order"], body["compartment"]))


async def courier_reclaim(request: web.Request) -> web.Response:
    session = staff_session(request)
    return doors_answer(await request.app[LOCKER].courier.reclaim(
        session.actor, request.match_info["order"]))


async def courier_take_back(request: web.Request) -> web.Response:
    """Open a compartment holding goods nobody expects (left behind, forgotten)."""
    session = staff_session(request)
    return doors_answer(await request.app[LOCKER].courier.take_back(
        session.actor, request.match_info["compartment"]))


async def courier_take_back_return(request: web.Request) -> web.Response:
    """Open the compartment holding what a customer handed back; it is free once closed."""
    session = staff_session(request)
    return doors_answer(await request.app[LOCKER].returns.take_back(
        session.actor, request.match_info["return"]))


async def technician_compartments(request: web.Request) -> web.Response:
    """Every compartment's state for the technician's drawing of the bank."""
    staff_session(request, technician=True, touch=False)
    return web.json_response({"compartments": request.app[LOCKER].courier.bank()})


async def technician_open(request: web.Request) -> web.Response:
    return await open_compartment(request, staff_session(request, technician=True).actor)


async def technician_service(request: web.Request) -> web.Response:
    return await set_in_service(request, staff_session(request, technician=True).actor)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/staff/login", staff_login)
    app.router.add_post("/api/staff/logout", staff_logout)
    app.router.add_get("/api/staff/session", session_left)
    app.router.add_post("/api/staff/session", session_touched)
    app.router.add_get("/api/courier/orders", courier_orders)
    app.router.add_get("/api/courier/orders/{order}", courier_order)
    app.router.add_post("/api/courier/orders/{order}/load", courier_load)
    app.router.add_post("/api/courier/orders/{order}/open", courier_open)
    app.router.add_post("/api/courier/orders/{order}/reclaim", courier_reclaim)
    app.router.add_post("/api/courier/compartments/{compartment}/take_back", courier_take_back)
    app.router.add_post("/api/courier/returns/{return}/take_back", courier_take_back_return)
    app.router.add_get("/api/technician/compartments", technician_compartments)
    app.router.add_post("/api/technician/compartments/{compartment}/open", technician_open)
    app.router.add_post("/api/technician/compartments/{compartment}/service", technician_service)
    app.router.add_get("/courier", screen_page("courier", "Courier"))
    app.router.add_get("/technician", screen_page("technician", "Technician"))
