"""A customer types a pickup code: check the throttle, find the order, authorise, then unlock.

The order of operations is the safety argument: the authorisation (order state, one row per
door, the events) is committed first, and only then are the locks pulsed. A crash in between
leaves an authorisation that is never pulsed twice, and an order the reconcile pass brings back
to `ready` with the same code (locker.domain.lifecycle.order.settle). Nothing is committed when a
door of the order cannot open now (its board is offline), so the code is not spent for nothing. A
code is judged only once the throttle's wait is over (a code typed earlier is answered with the
wait and changes nothing); a wrong one is counted, in a transaction of its own, before the answer
goes back.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from locker.domain import attempts, deadline, returns
from locker.domain.clock import Clock
from locker.domain.codes import PickupCodes
from locker.domain.config import LockerConfig
from locker.domain.errors import PickupRefused, Unavailable
from locker.domain.lifecycle import order as order_life
from locker.domain.lifecycle import returns as returns_life
from locker.domain.lifecycle.order import Exposed
from locker.domain.lifecycle.records import Order
from locker.domain.model import OrderState
from locker.domain.ports import LockDriver
from locker.domain.store import Store
from locker.domain.throttle import PICKUP_SCOPE
from locker.domain.unlocking import Door, pulse

log = logging.getLogger("locker.pickup")
__all__ = ["PickupRefused", "PickupResult", "PickupService", "Throttled"]
SCREEN_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # fullmatch only: "$" lets "x\n" in


class Throttled(PickupRefused):
    """Too early after wrong codes: nothing was judged; the screen keeps the code and sends it
    again after `retry_after_s`."""


@dataclass
class PickupResult:
    order_id: str
    opened: list[Door] = field(default_factory=list)
    failed: list[Door] = field(default_factory=list)
    # bags whose zone left its limits while inside: kept back, or opened with a word
    withheld: list[Exposed] = field(default_factory=list)
    warned: list[Exposed] = field(default_factory=list)
    # the customer may hand something back (locker.returns): after a pickup, or a return code
    return_offer: returns.ReturnOffer | None = None


class PickupService:
    def __init__(self, store: Store, config: LockerConfig, codes: PickupCodes,
                 driver: LockDriver, clock: Clock,
                 expiry_suspended: Callable[[], bool] = lambda: False) -> None:
        self.store, self.config, self.codes = store, config, codes
        self.driver, self.clock = driver, clock
        # after a forward step of the wall clock, no window counts as ended (timekeeping)
        self.expiry_suspended = expiry_suspended

    async def collect(self, typed: str, screen: str = "front", *,
                      assistance: bool = False) -> PickupResult:
        """Open the doors of the order whose code this is. `assistance`: the customer turned on
        speech and large text; central hears it with the pickup, so the customer's next orders
        are loaded in the lower compartments (the order's `accessible`)."""
        if not SCREEN_ID.fullmatch(screen):
            raise PickupRefused("bad_screen", "screen: 1-32 lower-case letters, digits, - or _")
        code = self.codes.normalise(typed)  # BadCodeFormat: judged by no one, costs nothing
        now = self.clock.now()
        wait = attempts.wait(self.store, PICKUP_SCOPE, now)
        if wait > 0:
            raise Throttled("throttled", "wrong codes were typed here recently, so codes are"
                            f" checked more slowly: your code is kept and will be tried in"
                            f" {math.ceil(wait)} s", retry_after_s=wait)
        digest = self.codes.digest(code)
        offer: returns.ReturnOffer | None = None
        try:
            with self.store.transaction(now) as tx:
                deadline.check(self.clock)
                row = tx.one(
                    "SELECT * FROM orders WHERE code_digest = ?"
                    " ORDER BY state = 'ready' DESC, window_end DESC LIMIT 1", (digest,))
                order = None if row is None else Order.of(row)
                refusal = self._refusal(order, now)
                handed_back = (returns_life.by_code(tx, digest) if order is None
                               and self.config.returns.enabled else None)
                if handed_back is not None:  # central's return code: what may be handed back
                    try:
                        offer = returns.offer_of_code(tx, self.config, self.driver, handed_back)
                    except returns.ReturnRefused as exc:
                        refusal = exc
                    else:
                        return PickupResult(handed_back.order_id, return_offer=offer)
                elif order is None and tx.one("SELECT 1 AS used FROM orders WHERE used_tag = ?"
                                            " LIMIT 1", (digest[:4],)) is not None:
                    # a collected order keeps only 16 bits of its digest: most likely this
                    # code, perhaps a guess that shares them, so it still counts as one
                    refusal = PickupRefused("used", "this code has already been used")
                if refusal is None and order is not None:
                    accepted = order_life.accept_code(tx, self.config, order,
                                                      self.driver.reachable)
                    if assistance:
                        tx.emit("order.assistance_used", "order", order_id=order.id,
                                screen=screen, accessible=order.accessible)
        except Unavailable as exc:
            self._unavailable(now, order, exc)
            raise
        if refusal is not None:
            self._refused(now, screen, refusal, guess=order is None and handed_back is None)
            raise refusal
        assert order is not None
        opened, failed = await pulse(self.store, self.driver, self.clock, accepted.doors)
        return PickupResult(order.id, opened, failed, accepted.withheld, accepted.warned,
                            self._return_offer(order.id, screen))

    def _return_offer(self, order_id: str, screen: str) -> returns.ReturnOffer | None:
        """The offer to hand something back, made once the doors are pulsed: it reads every
        compartment (what has room), which must not stand between a customer and the unlock.
        Losing it (a full card, a crash) costs only the offer: the pickup is done."""
        try:
            with self.store.transaction(self.clock.now()) as tx:
                return returns.offer_after_pickup(tx, self.config, self.driver, order_id, screen)
        except Unavailable as exc:
            log.warning("no return offer after the pickup of %s: %s", order_id, exc)
            return None

    def _refusal(self, order: Order | None, now: float) -> PickupRefused | None:
        if order is None:
            return PickupRefused("wrong_code", "this code is not valid")
        state = order.state
        if state in (OrderState.COLLECTING, OrderState.COLLECTED, OrderState.WITHHELD):
            return PickupRefused("used", "this code has already been used")
        window_end = order.window_end
        if state is OrderState.EXPIRED or (
            state is OrderState.READY and window_end is not None and window_end <= now
            and order.held_since is None and not self.expiry_suspended()
        ):
            return PickupRefused("expired", "this code's pickup window has ended;"
                                 f" call {self.config.support_phone}")
        if state is not OrderState.READY:
            return PickupRefused("not_ready", "this order is not ready for pickup")
        return None

    def _unavailable(self, now: float, order: Order | None, exc: Unavailable) -> None:
        """A good code whose doors cannot open now: nothing was spent; central hears of it."""
        log.warning("pickup of order %s refused for now: %s",
                    order.id if order else "?", exc)
        with self.store.transaction(now) as tx:
            tx.emit("order.pickup_unavailable", "order", order_id=order.id if order else None,
                    compartments=list(exc.compartments))

    def _refused(self, now: float, screen: str, refusal: PickupRefused, *, guess: bool) -> None:
        """Count a wrong code for the whole locker (the screen only goes in the event); alarm on
        a burst."""
        with self.store.transaction(now) as tx:
            tx.emit("security.code_refused", "security", screen=screen, reason=refusal.reason)
            if guess:
                attempts.failed(tx, self.config.throttle, PICKUP_SCOPE, now, screen,
                                "pickup codes")
        refusal.retry_after_s = attempts.wait(self.store, PICKUP_SCOPE, now)
