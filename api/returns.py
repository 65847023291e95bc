"""The customer's return call: what they hand back under the offer the screen was given, and the
compartment that opens for it. The couriers' side (their list, taking a return back) is in
api.staff."""

from __future__ import annotations

from aiohttp import web

from api.common import LOCKER, BadRequest, door_json, problem, read_json
from locker.domain.returns import KINDS, ReturnOffer


def offer_json(offer: ReturnOffer | None) -> dict[str, object] | None:
    """What the screen may offer (None: nothing to hand back here)."""
    if offer is None:
        return None
    return {"offer": offer.id, "expires_in_s": round(offer.expires_in_s), "kinds": offer.kinds,
            "kind": offer.kind, "by_code": offer.by_code}


def kinds_json() -> list[dict[str, str]]:
    """What may be handed back, for the screen's buttons (its words are the screen's own)."""
    return [{"kind": k.name, "zone": k.zone.value, "size": k.size.value}
            for k in KINDS.values()]


async def hand_back(request: web.Request) -> web.Response:
    """POST /api/returns {offer, kind, screen}: a compartment of the kind's zone opens."""
    locker = request.app[LOCKER]
    body = await read_json(request, {"offer": str, "kind": str, "screen": str})
    for name in ("offer", "kind"):
        if name not in body:
            raise BadRequest(name, f"{name} is required")
    if not locker.ready:
        return problem(503, "starting", "the locker is starting; try again in a moment")
    result = await locker.returns.deposit(body["offer"], body["kind"],
                                          body.get("screen", "front"))
    message = ("put what you hand back inside and close the door" if result.opened else
               f"the compartment did not open; try again, or call {locker.config.support_phone}")
    return web.json_response({
        "return": result.return_id, "order": result.order_id,
        "compartment": result.compartment_id, "kind": result.kind,
        "opened": [door_json(d) for d in result.opened],
        "failed": [door_json(d) for d in result.failed],
        "message": message,
    })


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/returns", hand_back)
