"""The feed from central, applied in cursor order: orders, cancellations and signed commands.

Each item is applied in its own transaction together with the cursor that points past it, so a
restart picks up exactly where the last commit left off: an item is neither skipped nor applied
twice. An item that cannot be applied is reported and stepped over; one bad item never blocks
the feed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from locker.domain.clock import Clock
from locker.domain.codes import PickupCodes
from locker.domain.commands import RemoteCommands
from locker.domain.config import LockerConfig
from locker.domain.errors import StoreError
from locker.domain.feed import FeedItem, apply_order
from locker.domain.lifecycle.order import CodeInUse, OrderRejected
from locker.domain.store import Store
from locker.domain.sync import cursor as stored_cursor
from locker.domain.sync import set_cursor

log = logging.getLogger("locker.inbox")


@dataclass
class Applied:
    """What one feed answer did, counted by outcome (for logs and the benchmark)."""

    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Inbox:
    def __init__(self, store: Store, config: LockerConfig, clock: Clock, codes: PickupCodes,
                 commands: RemoteCommands) -> None:
        self.store, self.config, self.clock, self.codes = store, config, clock, codes
        self.commands = commands

    async def apply(self, cursor: int, items: list[FeedItem]) -> Applied:
        applied = Applied()
        for item in items:
            if 0 < item.cursor <= stored_cursor(self.store):
                applied.count("seen")  # delivered again after a lost answer: already applied
                continue
            try:
                if item.problem is not None:
                    self._skip(item, "central.item_rejected", message=item.problem)
                    applied.count("rejected")
                elif item.order is not None:
                    applied.count(self._order(item))
                elif item.command is not None:
                    applied.count(await self.commands.run(item.command, item.cursor))
            except StoreError:
                raise  # the disk, not the item: the link retries the same answer later
            except Exception as exc:  # a bug met by a strange item: step over it, say so
                log.exception("feed item %s could not be applied", item.cursor)
                self._skip(item, "central.item_rejected",
                           message=f"could not be applied: {type(exc).__name__}: {exc}"[:300])
                applied.count("rejected")
        if cursor > stored_cursor(self.store):
            with self.store.transaction(self.clock.now()) as tx:
                set_cursor(tx, cursor)
        return applied

    def _order(self, item: FeedItem) -> str:
        order = item.order
        assert order is not None
        try:
            with self.store.transaction(self.clock.now()) as tx:
                outcome = apply_order(tx, self.config, self.codes, order)
                set_cursor(tx, item.cursor)
        except CodeInUse as exc:
            log.warning("order from central refused: %s", exc)
            self._skip(item, "security.code_collision", order_id=order.id, version=order.version,
                       message=str(exc))
            return "rejected"
        except OrderRejected as exc:
            log.warning("order from central refused: %s", exc)
            self._skip(item, "order.rejected", order_id=order.id, version=order.version,
                       message=str(exc))
            return "rejected"
        return outcome

    def _skip(self, item: FeedItem, kind: str, *, order_id: str | None = None,
              **fields: Any) -> None:
        with self.store.transaction(self.clock.now()) as tx:
            if item.cursor > stored_cursor(self.store):
                set_cursor(tx, item.cursor)
            tx.emit(kind, "order" if order_id else "security", order_id=order_id, **fields)
