"""What central sends down the feed, checked and applied: orders by id and version, cancellations.

Central's answers are parsed strictly here, as plain data, before anything is written: a field we
do not know, a wrong type or an impossible value is refused with a message that names it, so a
confused or hostile central changes nothing. An order is applied idempotently: a version the
locker already holds is ignored, a higher one replaces what can still change (the steps are
locker.domain.lifecycle.order's). An active order carries its pickup code sealed to this locker's
box key (docs/adr/0008): it is opened here, digested, and forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from locker.domain.allocation import Bag
from locker.domain.codes import PickupCodes, SealedCodeInvalid
from locker.domain.config import LockerConfig
from locker.domain.errors import LockerError
from locker.domain.lifecycle import order as order_life
from locker.domain.lifecycle import records
from locker.domain.lifecycle import returns as returns_life
from locker.domain.lifecycle.order import ORDER_ID, OrderRejected, receive
from locker.domain.model import ZONES, Size, Zone
from locker.domain.returns import KINDS
from locker.domain.store import Tx

MAX_ITEMS = 100
MAX_BAGS = 32
MAX_WINDOW_HOURS = 720.0
MAX_SEQUENCE = 2**53  # JSON numbers beyond this are not exact integers
MAX_SEALED = 200  # base64 of a sealed 11-digit code is 80 characters


class BadPayload(LockerError, ValueError):
    """Central sent something that is not what docs/central.md describes; nothing was applied."""


@dataclass(frozen=True)
class CentralOrder:
    id: str
    version: int
    sealed_code: str | None  # None only on a cancellation
    cancelled: bool
    window_hours: float
    accessible: bool
    bags: tuple[Bag, ...]
    # a code the customer types to hand something back (locker.returns), sealed like the
    # pickup code, and what it is for if central knows (else the customer says)
    sealed_return_code: str | None = None
    return_kind: str | None = None


@dataclass(frozen=True)
class FeedItem:
    """One entry of the feed: an order, a signed command, or something we could not read."""

    cursor: int
    order: CentralOrder | None = None
    command: dict[str, Any] | None = None  # {"body": str, "signature": str}, checked by commands
    problem: str | None = None  # why the item cannot be used (it is skipped and reported)


def _exact_keys(obj: object, where: str, required: set[str],
                optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadPayload(f"{where}: must be an object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - required - optional)
    if unknown:
        raise BadPayload(f"{where}: unknown field {unknown[0]!r}")
    missing = sorted(required - set(obj))
    if missing:
        raise BadPayload(f"{where}: missing field {missing[0]!r}")
    return obj


def _integer(value: object, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadPayload(f"{where}: must be an integer, not {value!r:.40}")
    if not lo <= value <= hi:
        raise BadPayload(f"{where}: must be between {lo} and {hi}, not {value}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadPayload(f"{where}: must be a number, not {value!r:.40}")
    try:
        number = float(value)  # an integer of 400 digits does not fit
    except OverflowError:
        raise BadPayload(f"{where}: out of range") from None
    if not math.isfinite(number):
        raise BadPayload(f"{where}: must be a finite number")
    return number


def parse_feed(body: object, after: int) -> tuple[int, list[FeedItem]]:
    """The whole answer: refused as a whole when its frame is wrong, item by item otherwise."""
    top = _exact_keys(body, "feed", {"cursor", "items"})
    cursor = _integer(top["cursor"], "feed.cursor", 0, MAX_SEQUENCE)
    items = top["items"]
    if not isinstance(items, list):
        raise BadPayload(f"feed.items: must be an array, not {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise BadPayload(f"feed.items: at most {MAX_ITEMS} items, not {len(items)}")
    if cursor < after:
        raise BadPayload(f"feed.cursor: {cursor} goes back before {after}")
    parsed = [parse_item(item, index) for index, item in enumerate(items)]
    if any(item.cursor > cursor for item in parsed):
        raise BadPayload("feed: an item's cursor lies beyond the answer's cursor")
    return cursor, parsed


def parse_item(item: object, index: int) -> FeedItem:
    where = f"feed.items[{index}]"
    cursor = 0
    try:
        if not isinstance(item, dict):
            raise BadPayload(f"{where}: must be an object, not {type(item).__name__}")
        cursor = _integer(item.get("cursor"), f"{where}.cursor", 1, MAX_SEQUENCE)
        kind = item.get("type")
        if kind == "order":
            fields = _exact_keys(item, where, {"cursor", "type", "order"})
            return FeedItem(cursor, order=parse_order(fields["order"], f"{where}.order"))
        if kind == "command":
            fields = _exact_keys(item, where, {"cursor", "type", "command"})
            command = _exact_keys(fields["command"], f"{where}.command", {"body", "signature"})
            if not isinstance(command["body"], str) or not isinstance(command["signature"], str):
                raise BadPayload(f"{where}.command: body and signature must be strings")
            if len(command["body"]) > 4096 or len(command["signature"]) > 200:
                raise BadPayload(f"{where}.command: body or signature too long")
            return FeedItem(cursor, command=command)
        raise BadPayload(f"{where}.type: must be 'order' or 'command', not {kind!r:.40}")
    except BadPayload as exc:
        return FeedItem(cursor, problem=str(exc))


def parse_order(obj: object, where: str = "order") -> CentralOrder:
    order = _exact_keys(obj, where, {"id", "version", "state", "window_hours", "accessible",
                                     "bags"}, frozenset({"code", "return_code", "return_kind"}))
    order_id = order["id"]
    if not isinstance(order_id, str) or not ORDER_ID.fullmatch(order_id):
        raise BadPayload(f"{where}.id: 1-64 letters, digits, '.', '_' or '-', not"
                         f" {order_id!r:.80}")
    version = _integer(order["version"], f"{where}.version", 1, MAX_SEQUENCE)
    if order["state"] not in ("active", "cancelled"):
        raise BadPayload(f"{where}.state: must be 'active' or 'cancelled', not"
                         f" {order['state']!r:.40}")
    sealed = order.get("code")
    if sealed is None and order["state"] == "active":
        raise BadPayload(f"{where}.code: an active order carries its code, sealed to this"
                         " locker's box key")
    if sealed is not None and (not isinstance(sealed, str) or not 1 <= len(sealed) <= MAX_SEALED):
        raise BadPayload(f"{where}.code: must be base64 of the sealed code, at most"
                         f" {MAX_SEALED} characters")
    hours = _number(order["window_hours"], f"{where}.window_hours")
    if not 0 < hours <= MAX_WINDOW_HOURS:
        raise BadPayload(f"{where}.window_hours: must be above 0 and at most"
                         f" {MAX_WINDOW_HOURS:g}, not {hours:g}")
    if not isinstance(order["accessible"], bool):
        raise BadPayload(f"{where}.accessible: must be true or false")
    bags = order["bags"]
    if not isinstance(bags, list) or not 1 <= len(bags) <= MAX_BAGS:
        raise BadPayload(f"{where}.bags: must be an array of 1 to {MAX_BAGS} bags")
    parsed: list[Bag] = []
    for number, raw in enumerate(bags):
        bag = _exact_keys(raw, f"{where}.bags[{number}]", {"zone", "size"})
        try:
            parsed.append(Bag(Zone(bag["zone"]), Size(bag["size"])))
        except (ValueError, TypeError):
            raise BadPayload(f"{where}.bags[{number}]: zone must be {' or '.join(ZONES)} and"
                             f" size S, M or L, not {bag['zone']!r:.20}:{bag['size']!r:.20}"
                             ) from None
    sealed_return = order.get("return_code")
    if sealed_return is not None and (not isinstance(sealed_return, str)
                                      or not 1 <= len(sealed_return) <= MAX_SEALED):
        raise BadPayload(f"{where}.return_code: must be base64 of the sealed return code, at"
                         f" most {MAX_SEALED} characters")
    return_kind = order.get("return_kind")
    if return_kind is not None and return_kind not in KINDS:
        raise BadPayload(f"{where}.return_kind: must be one of {', '.join(KINDS)}, not"
                         f" {return_kind!r:.40}")
    if return_kind is not None and sealed_return is None:
        raise BadPayload(f"{where}.return_kind: given without a return_code")
    return CentralOrder(order_id, version, sealed, order["state"] == "cancelled", hours,
                        order["accessible"], tuple(parsed), sealed_return, return_kind)


# -- applying ----------------------------------------------------------------------------------

def unfit_bags(config: LockerConfig, bags: tuple[Bag, ...]) -> str | None:
    """Why this locker could never hold these bags (no compartment of that zone and size)."""
    for bag in bags:
        if not any(c.zone == bag.zone and bag.size.fits_in(c.size) for c in config.compartments):
            return f"this locker has no {bag.zone.value} compartment of size {bag.size.value}" + (
                "" if bag.size is Size.S else " or larger")
    return None


def apply_order(tx: Tx, config: LockerConfig, codes: PickupCodes, order: CentralOrder) -> str:
    """Take a new order, a new version or a cancellation in; returns what was done.

    Raises OrderRejected (nothing written) when the order cannot be taken as sent.
    """
    existing = records.order(tx, order.id)
    if existing is not None and order.version <= existing.version:
        return "unchanged"
    if order.cancelled:
        if existing is None:
            return "unknown_cancelled"  # never had it: nothing to undo
        outcome = order_life.cancel(tx, order.id, "central", "cancelled by central")
        order_life.set_version(tx, order.id, order.version)
        return outcome
    problem = unfit_bags(config, order.bags)
    if problem:
        raise OrderRejected(f"order {order.id}: {problem}")
    assert order.sealed_code is not None  # parse_order: an active order carries one
    try:
        digest = codes.digest(codes.open_sealed(order.sealed_code))
    except SealedCodeInvalid as exc:
        raise OrderRejected(f"order {order.id}: code: {exc}") from None
    return_digest = None
    if order.sealed_return_code is not None:
        try:
            return_digest = codes.digest(codes.open_sealed(order.sealed_return_code))
        except SealedCodeInvalid as exc:
            raise OrderRejected(f"order {order.id}: return_code: {exc}") from None
        if return_digest == digest:
            raise OrderRejected(f"order {order.id}: the return code is the pickup code")
    if existing is None:
        receive(tx, config, order.id, order.bags, code_digest=digest,
                window_hours=order.window_hours, accessible=order.accessible,
                version=order.version)
        outcome = "received"
    else:
        outcome = order_life.change(tx, existing, version=order.version, code_digest=digest,
                                    window_hours=order.window_hours,
                                    accessible=order.accessible, bags=order.bags)
    if return_digest is not None:
        _give_return_code(tx, config, order, return_digest)
    return outcome


def _give_return_code(tx: Tx, config: LockerConfig, order: CentralOrder, digest: str) -> None:
    """The order's return code, for `code_days`; a new version's code replaces the old one
    (the same code again changes nothing). CodeInUse if another code already is this one."""
    held = returns_life.by_code(tx, digest)
    if held is not None and held.order_id == order.id:
        return
    order_life.code_free(tx, order.id, digest)  # no order's and no other return's code
    returns_life.cancel_for_order(tx, order.id, "a new return code came with a new version",
                                  source="code")
    returns_life.offer(tx, order.id, source="code", code_digest=digest, kind=order.return_kind,
                       expires_at=tx.now + config.returns.code_days * 86400.0)
    tx.emit("order.return_code_taken", "order", order_id=order.id, version=order.version,
            what=order.return_kind)
