"""Returns at the locker: a customer hands back what they refuse, or the reusable crates.

What may be handed back, and into which zone, is declared once here (`KINDS`). The screen gets
an offer after a pickup (`PickupResult.return_offer`), or from central's return code typed like
a pickup code; the customer says what they hand back, and an empty compartment of its zone opens
(locker.domain.lifecycle.returns chooses one no waiting order needs). Central hears
`order.return_deposited` once the door closed on it, and couriers find it on their list.

An offer opens one compartment at a time: a second request while its door is still being opened
is refused, and one whose door did not open frees the compartment, so the customer can try again.
Offers are 128 random bits the locker gave the screen; a return code is a pickup code's twin and
is judged, throttled and counted the same way (locker.pickup).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from locker.domain import deadline
from locker.domain.clock import Clock
from locker.domain.config import LockerConfig
from locker.domain.courier import DoorsResult
from locker.domain.errors import PickupRefused, Refused
from locker.domain.lifecycle import order as order_life
from locker.domain.lifecycle import returns as returns_life
from locker.domain.lifecycle.returns import Return
from locker.domain.model import ReturnState, Size, Zone
from locker.domain.ports import LockDriver
from locker.domain.store import Store, Tx
from locker.domain.unlocking import Door, pulse


@dataclass(frozen=True)
class ReturnKind:
    """Something a customer may hand back: the zone it waits in, the compartment it needs."""

    name: str
    zone: Zone
    size: Size


KINDS: dict[str, ReturnKind] = {k.name: k for k in (
    ReturnKind("crates", Zone.AMBIENT, Size.M),  # the drive's reusable crates and bags
    ReturnKind("ambient_item", Zone.AMBIENT, Size.S),
    ReturnKind("fresh_item", Zone.FRESH, Size.S),  # kept cold until a courier takes it
    ReturnKind("frozen_item", Zone.FROZEN, Size.S),
)}


class ReturnRefused(PickupRefused):
    """The customer's return cannot be taken now; `reason` is for the screen."""


@dataclass(frozen=True)
class ReturnOffer:
    """What the screen may offer: the offer's id (its proof), how long it holds, and what can
    be handed back now (`kind` fixed when central's return code says what it is for)."""

    id: str
    expires_in_s: float
    kinds: list[str]
    kind: str | None = None
    by_code: bool = False


@dataclass
class ReturnResult:
    return_id: str
    order_id: str
    compartment_id: str
    kind: str
    opened: list[Door] = field(default_factory=list)
    failed: list[Door] = field(default_factory=list)


def kinds_with_room(tx: Tx, config: LockerConfig, driver: LockDriver,
                    fixed: str | None = None) -> list[str]:
    """What could be handed back now (a compartment of its zone is free and no waiting order
    needs it), in the order the screen shows them."""
    names = [fixed] if fixed is not None else list(KINDS)
    free, bags = returns_life.room(tx, config, driver.reachable)
    return [name for name in names if returns_life.choose_among(
        free, bags, KINDS[name].zone, KINDS[name].size) is not None]


def offer_after_pickup(tx: Tx, config: LockerConfig, driver: LockDriver, order_id: str,
                       screen: str) -> ReturnOffer | None:
    """The offer the screen shows after a pickup (None when returns are off)."""
    if not config.returns.enabled:
        return None
    offer_id = returns_life.offer(tx, order_id, source="pickup", screen=screen,
                                  expires_at=tx.now + config.returns.offer_s)
    return ReturnOffer(offer_id, config.returns.offer_s, kinds_with_room(tx, config, driver))


def offer_of_code(tx: Tx, config: LockerConfig, driver: LockDriver,
                  current: Return) -> ReturnOffer:
    """Central's return code was typed: the offer it opens (refused when spent or lapsed)."""
    if current.state is ReturnState.OFFERED and current.expires_at > tx.now:
        return ReturnOffer(current.id, current.expires_at - tx.now,
                           kinds_with_room(tx, config, driver, current.kind), current.kind,
                           by_code=True)
    if current.state in (ReturnState.LAPSED, ReturnState.CANCELLED, ReturnState.OFFERED):
        raise ReturnRefused("return_lapsed", "this return code is no longer valid;"
                            f" call {config.support_phone}")
    raise ReturnRefused("return_used", "this return code has already been used")


class ReturnService:
    def __init__(self, store: Store, config: LockerConfig, driver: LockDriver,
                 clock: Clock) -> None:
        self.store, self.config, self.driver, self.clock = store, config, driver, clock

    async def deposit(self, offer_id: str, kind: str, screen: str = "front") -> ReturnResult:
        """Open a compartment for what the customer hands back under this offer."""
        if kind not in KINDS:
            raise ReturnRefused("return_kind", f"kind: one of {', '.join(KINDS)}")
        what = KINDS[kind]
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            current = returns_life.get(tx, offer_id) if len(offer_id) <= 64 else None
            if current is None:
                raise ReturnRefused("return_unknown", "this screen's return offer is not known"
                                    " here; start again")
            if current.state is ReturnState.OPENING:
                # a second press while the first door is being opened: only once it settles
                returns_life.settle(tx, self.config, current.id)
                current = returns_life.get(tx, offer_id)
                assert current is not None
            if current.state is ReturnState.OPENING:
                raise ReturnRefused("return_opening", "a compartment is already opening for"
                                    " this return: put your goods in it and close its door")
            if current.state is not ReturnState.OFFERED and current.state not in (
                    ReturnState.LAPSED, ReturnState.CANCELLED):
                raise ReturnRefused("return_used", "this return has already been made")
            if current.state is not ReturnState.OFFERED or current.expires_at <= tx.now:
                raise ReturnRefused("return_lapsed", "the time to hand something back is over;"
                                    " start again with your code")
            if current.kind is not None and current.kind != kind:
                raise ReturnRefused("return_kind", f"this return code is for {current.kind}")
            compartment_id = returns_life.choose(tx, self.config, what.zone, what.size,
                                                 self.driver.reachable)
            if compartment_id is None:
                raise ReturnRefused("return_no_room", f"no {what.zone.value} compartment is free"
                                    " for a return now; try later, or call"
                                    f" {self.config.support_phone}")
            door = returns_life.open_for_deposit(tx, self.config, current, kind, what.zone,
                                                 compartment_id, f"customer:{screen}")
        result = ReturnResult(current.id, current.order_id, compartment_id, kind)
        result.opened, result.failed = await pulse(self.store, self.driver, self.clock, [door])
        return result

    async def take_back(self, actor: str, return_id: str) -> DoorsResult:
        """A courier opens a return's compartment to take it; it is free once closed again."""
        with self.store.transaction(self.clock.now()) as tx:
            deadline.check(self.clock)
            current = returns_life.get(tx, return_id) if len(return_id) <= 64 else None
            if current is None or current.state not in (ReturnState.DEPOSITED,
                                                        ReturnState.TAKING_BACK):
                raise Refused("no_return", f"no return {return_id[:64]} waits to be taken back")
            if current.state is ReturnState.TAKING_BACK:
                returns_life.settle(tx, self.config, current.id)
                current = returns_life.get(tx, return_id)
                assert current is not None
                if current.state is ReturnState.TAKING_BACK:
                    raise Refused("return_opening", f"compartment {current.compartment_id} is"
                                  " already being opened for this return")
            assert current.compartment_id is not None
            order_life.refuse_unreachable([current.compartment_id], self.driver.reachable)
            door = returns_life.open_for_courier(tx, self.config, current, actor)
        opened, failed = await pulse(self.store, self.driver, self.clock, [door])
        return DoorsResult(current.order_id, [current.compartment_id], opened, failed)

    def housekeep(self) -> None:
        """Offers that ran out lapse; a return waiting too long for a courier is an alarm."""
        now = self.clock.now()
        read = self.store.read()
        due = read.one("SELECT 1 AS due FROM returns WHERE state = ? AND expires_at <= ? LIMIT 1",
                       (ReturnState.OFFERED.value, now))
        late_before = now - self.config.returns.take_back_within_h * 3600.0
        late = {r["compartment_id"] for r in read.all(
            "SELECT compartment_id FROM returns WHERE state IN (?, ?) AND deposited_at <= ?",
            (ReturnState.DEPOSITED.value, ReturnState.TAKING_BACK.value, late_before))}
        raised = {r["subject"] for r in read.all(
            "SELECT subject FROM alarms WHERE kind = ? AND cleared_at IS NULL", (WAITING,))}
        if due is None and late == raised:
            return
        with self.store.transaction(now) as tx:
            returns_life.lapse_due(tx, now)
            for cid in sorted(late - raised):
                tx.raise_alarm(WAITING, cid, f"compartment {cid} has held a customer's return"
                               f" for over {self.config.returns.take_back_within_h:g} h: a"
                               " courier takes it back")
            for cid in sorted(raised - late):
                tx.clear_alarm(WAITING, cid, f"compartment {cid}'s return was taken back")


WAITING = "return_waiting"
