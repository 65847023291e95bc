"""The running locker: the store, the codes, the door monitor and the use cases, around one driver.

Start-up order is the reliability argument: open and migrate the store, bring the compartments in
line with the config, start the driver (outputs to their safe state), read every door and
reconcile, and only then accept codes. It knows the driver only as a locker.ports.LockDriver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from locker import __version__
from locker.clock import Clock, RealClock
from locker.codes import PickupCodes, load_ops_token, load_secret
from locker.config import LockerConfig
from locker.courier import CourierService
from locker.doors import DoorMonitor
from locker.errors import StoreError
from locker.model import CompartmentState, DoorState
from locker.orders import expire_orders
from locker.pickup import PickupService
from locker.ports import LockDriver
from locker.staff import StaffDesk, load_staff_secrets
from locker.store import Store
from locker.unlocking import pulse

log = logging.getLogger("locker")
HOUSEKEEPING_INTERVAL_S = 1.0


class Locker:
    def __init__(self, config: LockerConfig, driver: LockDriver, clock: Clock | None = None,
                 on_events: Callable[[list[tuple[str, dict[str, object]]]], None] | None = None
                 ) -> None:
        self.config = config
        self.driver = driver
        self.clock: Clock = clock or RealClock()
        self.codes = PickupCodes(load_secret(config.secret_file), config.codes.digits)
        self.ops_token = load_ops_token(config.ops_token_file)
        self.store = Store(config.database)
        self.monitor = DoorMonitor(self.store, config, self.clock, self.codes, on_events)
        self.pickup = PickupService(self.store, config, self.codes, driver, self.clock,
                                    self.monitor)
        self.staff = StaffDesk(self.store, config, self.clock, load_staff_secrets(config))
        self.courier = CourierService(self.store, config, driver, self.clock, self.monitor)
        self.ready = False
        self.started_in_s: float | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        began = self.clock.monotonic()
        self._sync_compartments()
        await self.driver.start(self.monitor)
        readings = await self.driver.read_doors()
        self.monitor.reconcile(readings)
        with self.store.transaction(self.clock.now()) as tx:
            tx.emit("locker.started", "telemetry", version=__version__,
                    locker_id=self.config.locker_id)
        self._housekeeping = asyncio.create_task(self._housekeep(), name="housekeeping")
        self.ready = True
        self.started_in_s = self.clock.monotonic() - began
        log.info("locker %s ready in %.3f s: %d compartments", self.config.locker_id,
                 self.started_in_s, len(self.config.compartments))

    async def stop(self) -> None:
        """Stop the loops, put the hardware in its safe state, close the store; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.ready = False
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._housekeeping
        await self.driver.stop()
        self.store.close()

    async def _housekeep(self) -> None:
        """Jams (and the reallocations they cause), doors left open, ended windows: every second."""
        while True:
            await self.clock.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                reallocated = self.monitor.check_timeouts()
                expire_orders(self.store, self.clock.now())
                if reallocated:  # committed above: a jammed door's bags go to these doors
                    await pulse(self.store, self.driver, self.clock, reallocated,
                                self.monitor.publish)
            except Exception:  # a full disk, say: keep the loop alive, try again next second
                log.exception("housekeeping failed; will retry")

    def _sync_compartments(self) -> None:
        """Add compartments new in the config; refuse to drop one that still holds an order."""
        now = self.clock.now()
        wanted = {c.id: c for c in self.config.compartments}
        with self.store.transaction(now) as tx:
            known = {r["id"]: r for r in tx.all("SELECT * FROM compartments")}
            for cid, row in known.items():
                if cid in wanted:
                    continue
                if row["order_id"]:
                    raise StoreError(
                        f"{self.config.path}: compartment {cid} holds order {row['order_id']}"
                        " but is no longer in the config; put it back, or take the order out first"
                    )
                tx.execute("DELETE FROM compartments WHERE id = ?", (cid,))
                tx.emit("compartment.removed", "order", compartment_id=cid)
            for cid, c in wanted.items():
                existing = known.get(cid)
                if existing is None:
                    tx.insert("compartments", {
                        "id": cid, "zone": c.zone.value, "size": c.size.value,
                        "state": CompartmentState.FREE.value, "door": DoorState.LOCKED.value,
                        "order_id": None, "door_changed_at": now, "updated_at": now,
                    })
                    tx.emit("compartment.added", "order", compartment_id=cid, zone=c.zone.value,
                            size=c.size.value)
                elif (existing["zone"], existing["size"]) != (c.zone.value, c.size.value):
                    if existing["order_id"]:
                        raise StoreError(
                            f"{self.config.path}: compartment {cid} changed zone or size while it"
                            f" holds order {existing['order_id']}"
                        )
                    tx.execute("UPDATE compartments SET zone = ?, size = ? WHERE id = ?",
                               (c.zone.value, c.size.value, cid))
