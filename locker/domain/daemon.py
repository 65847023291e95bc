"""The running locker: the store, the codes, the door monitor and the use cases, around one driver.

Start-up order is the reliability argument: open and migrate the store, bring the compartments in
line with the config, start the driver (outputs to their safe state), read every door and
reconcile, and only then accept codes. It knows the driver only as a locker.domain.ports.LockDriver.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any

from locker import __version__
from locker.domain.backup import restore, rolling_backup, take
from locker.domain.clock import Clock, RealClock
from locker.domain.codes import PickupCodes, load_box_key, load_ops_token
from locker.domain.coldchain import ColdChain
from locker.domain.commands import (
    CommandRefused,
    CommandVerifier,
    RemoteCommands,
    RemoteHands,
    load_command_key,
)
from locker.domain.config import LockerConfig
from locker.domain.courier import CourierService
from locker.domain.datadir import (
    DataDirLock,
    StoreLost,
    check_before_open,
    check_identity,
    compare_marks,
    current_marks,
    quick_check,
    read_marks,
    save_marks,
)
from locker.domain.doors import DoorMonitor
from locker.domain.errors import ConfigError, HardwareError, StoreError
from locker.domain.haccp import record_key
from locker.domain.inbox import Inbox
from locker.domain.keys import settle_key_files
from locker.domain.lifecycle.compartment import sync_with_config
from locker.domain.lifecycle.order import extend_for_outage
from locker.domain.model import Zone
from locker.domain.orders import expire_orders
from locker.domain.pickup import PickupService
from locker.domain.ports import (
    ClockStatus,
    Compressor,
    LockDriver,
    RefrigerationController,
    ZoneProbe,
)
from locker.domain.retention import prune
from locker.domain.returns import ReturnService
from locker.domain.staff import StaffDesk, load_staff_secrets
from locker.domain.store import CATEGORIES, Store
from locker.domain.sync import enforce_bound, outage_since
from locker.domain.tasks import cancel_and_wait
from locker.domain.timekeeping import TimeKeeper
from locker.domain.unlocking import pulse
from locker.domain.zones import Decision, ZoneControl, ZoneController

log = logging.getLogger("locker")
HOUSEKEEPING_INTERVAL_S = 1.0
OUTBOX_BOUND_INTERVAL_S = 60.0
PRUNE_INTERVAL_S = 3600.0
STANDALONE_OUTBOX_EVENTS = 50_000  # without central, the outbox is a journal of recent events
ZONE_INTERVAL_S = 10.0
LAST_STORE_OUTAGE = "store.last_outage"  # "since until": when the store last could not write
STORE_OUTAGE_MIN_S = 60.0  # a store that could not write this long extends every ready window
STORE_ALARM_MIN_S = 5.0  # ... and is recorded as an alarm past this (not a moment's busy file)
DISK_CHECK_S = 60.0
INCIDENT_S = 86400.0  # an incident's alarm (the store went back) stays open this long
MARKS_EVERY_S = 5.0  # the marks beside the store are written at most this often
BACKUP_FIRST_S = 300.0  # the first rolling backup waits this long after a start
SETPOINT_KEY = "setpoint.{zone}"  # a setpoint set by central outlives a restart


class Locker:
    def __init__(self, config: LockerConfig, driver: LockDriver, clock: Clock | None = None,
                 on_events: Callable[[list[tuple[str, dict[str, object]]]], None] | None = None,
                 zones: Mapping[Zone, tuple[ZoneProbe, Compressor]] | None = None,
                 clock_status: ClockStatus | None = None) -> None:
        self.config = config
        self.driver = driver
        self.clock: Clock = clock or RealClock()
        box_key = load_box_key(config.box_key_file)
        self.ops_token = load_ops_token(config.ops_token_file)
        self.lock = DataDirLock(config.database)  # one daemon per data dir
        self.lock.acquire()
        try:
            self.store = open_store(config, self.clock.now())
        except BaseException:
            self.lock.release()
            raise
        try:
            self.codes = PickupCodes(settle_key_files(config, self.store, self.clock.now()),
                                     box_key)
        except BaseException:
            self.store.close()
            self.lock.release()
            raise
        self._marks = current_marks(self.store.read())
        if on_events is not None:
            self.store.listeners.append(on_events)
        self.monitor = DoorMonitor(self.store, config, self.clock, driver)
        self.time = TimeKeeper(self.store, self.clock, config.clock, clock_status)
        self.pickup = PickupService(self.store, config, self.codes, driver, self.clock,
                                    self.time.expiry_suspended)
        self.staff = StaffDesk(self.store, config, self.clock, load_staff_secrets(config))
        self.courier = CourierService(self.store, config, driver, self.clock)
        self.returns = ReturnService(self.store, config, driver, self.clock)
        self.coldchain = ColdChain(self.store, config, self.clock, record_key(config))
        self.store.listeners.append(self._count_door_openings)
        self.zone_hardware = dict(zones or {})
        for zone in self.zone_hardware:
            if config.zones[zone].setpoint_c is None:
                raise ConfigError(f"{config.path}: zones.{zone.value}.setpoint_c: a zone with a"
                                  " probe and a compressor needs a setpoint")
        self.zone_controllers: dict[Zone, ZoneController] = {}
        self.zone_state: dict[str, dict[str, Any]] = {}  # last reading per zone, for heartbeats
        self.compressor_on_s: dict[str, float] = {}  # seconds each compressor ran since start
        self._setpoint_sent: dict[Zone, float] = {}  # what each Modbus controller was given
        self._zone_tasks: list[asyncio.Task[None]] = []
        self.inbox: Inbox | None = None
        if config.central is not None:
            verifier = CommandVerifier(load_command_key(config.central.command_key_file),
                                       config.locker_id)
            hands = RemoteHands(self.courier.open_compartment, self.courier.set_in_service,
                                self.set_setpoint)
            commands = RemoteCommands(self.store, config, self.clock, verifier, hands)
            self.inbox = Inbox(self.store, config, self.clock, self.codes, commands)
        self.ready = False
        self.housekept_at: float | None = None  # monotonic time of the last housekeeping turn
        self.started_in_s: float | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._backups: asyncio.Task[None] | None = None
        self._ready_at = 0.0
        self._stopped = False

    async def start(self) -> None:
        began = self.clock.monotonic()
        self.time.start()
        self._sync_compartments()
        await self.driver.start(self.monitor)
        readings = await self.driver.read_doors()
        self.monitor.reconcile_at_start(readings)
        with self.store.transaction(self.clock.now()) as tx:
            tx.emit("locker.started", "telemetry", version=__version__,
                    locker_id=self.config.locker_id)
        self._housekeeping = asyncio.create_task(self._housekeep(), name="housekeeping")
        self._backups = asyncio.create_task(self._rolling_backups(), name="rolling backup")
        for zone, (probe, compressor) in self.zone_hardware.items():
            compressor.switch(False)  # the safe value until the first decision
            self._zone_tasks.append(asyncio.create_task(
                self._zone_loop(zone, probe, compressor), name=f"zone {zone.value}"))
        self.ready = True
        self._ready_at = self.clock.monotonic()
        self.started_in_s = self._ready_at - began
        log.info("locker %s ready in %.3f s: %d compartments", self.config.locker_id,
                 self.started_in_s, len(self.config.compartments))

    async def stop(self) -> None:
        """Stop the loops, put the hardware in its safe state, close the store; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.ready = False
        await cancel_and_wait([*self._zone_tasks, self._housekeeping, self._backups])
        for _, compressor in self.zone_hardware.values():
            compressor.switch(False)
        await self.driver.stop()
        self.time.stop()
        self._save_marks(force=True)
        self.store.close()
        self.lock.release()

    def alive(self, max_age_s: float) -> bool:
        """Ready, and the housekeeping loop turned within `max_age_s` (for systemd's watchdog)."""
        if not self.ready:
            return False
        last = self.housekept_at
        # right after start the loop has not turned yet: the start itself counts
        since = self.clock.monotonic() - (last if last is not None else self._ready_at)
        return since <= max_age_s

    def setpoint(self, zone: Zone) -> float | None:
        """The zone's setpoint: central's last, or the config's."""
        stored = self.store.meta(SETPOINT_KEY.format(zone=zone.value))
        return float(stored) if stored is not None else self.config.zones[zone].setpoint_c

    def set_setpoint(self, zone: Zone, celsius: float, actor: str) -> None:
        """A new setpoint for a regulated zone, within its limits; kept across restarts."""
        limits = self.config.zones[zone]
        if zone not in self.zone_hardware:
            raise CommandRefused("not_regulated", f"the {zone.value} zone has no probe and"
                                 " compressor here")
        low = limits.min_c if limits.min_c is not None else limits.max_c - 15.0
        if not low <= celsius <= limits.max_c:
            raise CommandRefused("out_of_limits", f"a {zone.value} setpoint must lie within"
                                 f" {low:g}..{limits.max_c:g} °C, not {celsius:g}")
        with self.store.transaction(self.clock.now()) as tx:
            tx.set_meta(SETPOINT_KEY.format(zone=zone.value), repr(celsius))
        controller = self.zone_controllers.get(zone)
        if controller is not None:
            controller.control = dataclasses.replace(controller.control, setpoint_c=celsius)
        self.coldchain.setpoint(zone, celsius, actor)

    async def _housekeep(self) -> None:
        """Every second: jams (and the reallocations they cause), doors left open, the
        reconcile pass over every order under way and every held window, ended windows, the
        store's return after it could not write; the outbox's bound every minute."""
        last_bound = last_prune = last_marks = last_disk = -PRUNE_INTERVAL_S
        while True:
            await self.clock.sleep(HOUSEKEEPING_INTERVAL_S)
            self.housekept_at = self.clock.monotonic()
            try:
                self.time.check()  # first: a step is seen before anything is timed by it
                now = self.clock.now()
                self._store_back(now)
                self.monitor.flush_waiting()
                reallocated = self.monitor.check_timeouts()
                if reallocated:  # committed: a jammed door's bags go to these doors, now
                    await pulse(self.store, self.driver, self.clock, reallocated)
                self.monitor.reconcile()
                self._expire(now)
                self.returns.housekeep()
                if now - last_bound >= OUTBOX_BOUND_INTERVAL_S:
                    last_bound = now
                    central = self.config.central
                    if central is not None:
                        enforce_bound(self.store, now, central.outbox_max_events)
                    else:  # nobody will collect it: a rolling local journal
                        enforce_bound(self.store, now, STANDALONE_OUTBOX_EVENTS, CATEGORIES)
                if now - last_disk >= DISK_CHECK_S:
                    last_disk = now
                    self._check_free_space()
                if self.clock.monotonic() - last_marks >= MARKS_EVERY_S:
                    last_marks = self.clock.monotonic()
                    self._save_marks()
                if now - last_prune >= PRUNE_INTERVAL_S:
                    last_prune = now
                    prune(self.store, now, self.config.keep_finished_days)
                    self._close_old_incidents(now)
            except Exception:  # a full disk, say: keep the loop alive, try again next second
                log.exception("housekeeping failed; will retry")

    async def _rolling_backups(self) -> None:
        """Keep one compressed copy of the store on the card, replaced every backup_every_h: a
        store lost (a card error, a deleted file) comes back from it by itself at start."""
        every = self.config.store.backup_every_h * 3600.0
        if every <= 0:
            return
        await self.clock.sleep(BACKUP_FIRST_S)
        path = rolling_backup(self.config.database)
        while True:
            age = time.time() - path.stat().st_mtime if path.exists() else every
            if age >= every * 0.95:
                try:  # a thread: a copy of a few MB must not hold up the doors
                    copy = await asyncio.to_thread(take, self.config.database, path)
                    with self.store.transaction(self.clock.now(), durable=False) as tx:
                        tx.emit("store.backed_up", "telemetry", path=str(path),
                                bytes=copy.size, outbox_seq=copy.outbox_seq)
                    age = 0.0
                except Exception:  # a full disk: the next turn tries again
                    log.exception("the rolling backup failed; will retry")
                    age = every - 600.0
            await self.clock.sleep(max(60.0, every - age))

    def _save_marks(self, *, force: bool = False) -> None:
        """The high-water marks beside the store, when they moved (every MARKS_EVERY_S)."""
        marks = current_marks(self.store.read())
        if marks != self._marks or force:
            try:
                save_marks(self.config.database, marks)
                self._marks = marks
            except OSError as exc:  # a full disk: said by the store's own alarm
                log.warning("could not write the marks beside the store: %s", exc)

    def _expire(self, now: float) -> None:
        """Windows that ended, as far as the clock can be trusted (locker.domain.timekeeping)."""
        trust = self.time.trust()
        if trust.expiry == "suspended":
            return
        central = self.config.central
        provisional = trust.expiry == "provisional"
        if central is None:
            expire_orders(self.store, now, provisional=provisional)
        else:
            expire_orders(self.store, now, held_since=outage_since(self.store),
                          hold_s=central.offline_hold_h * 3600.0, provisional=provisional)

    def _store_back(self, now: float) -> None:
        """The store could not write for a while: once it can, that is recorded (an alarm
        raised and cleared, for central and the ops page), and every ready order gets the time
        back (nobody could collect meanwhile; a few seconds of a busy file cost nothing)."""
        since = self.store.unwritable_since
        if since is None:
            return
        kind, reason = self._unwritable_kind(), self.store.unwritable_reason
        with self.store.transaction(now) as tx:
            # a real write: only one that commits proves the store can write again
            tx.set_meta(LAST_STORE_OUTAGE, f"{since!r} {now!r}")
            if now - since >= STORE_ALARM_MIN_S or self.store.full:
                tx.raise_alarm(kind, "store", f"the store could not write from"
                               f" {time.strftime('%H:%M:%S', time.localtime(since))}: {reason}")
                tx.clear_alarm(kind, "store", f"the store writes again after {now - since:.0f} s")
            if now - since >= STORE_OUTAGE_MIN_S:
                extend_for_outage(tx, since, f"the store could not write for {now - since:.0f} s",
                                  ended_only=False)
        self.store.unwritable_since = None
        log.warning("the store writes again after %.0f s", now - since)

    def _unwritable_kind(self) -> str:
        return "disk_full" if self.store.full else "store_unwritable"

    def live_alarms(self) -> list[dict[str, Any]]:
        """Alarms the store cannot hold right now: it cannot write (the heartbeat and the ops
        page show them; they are recorded once it writes again)."""
        since = self.store.unwritable_since
        if since is None:
            return []
        return [{"kind": self._unwritable_kind(), "subject": "store", "raised_at": since,
                 "message": f"the store cannot write: {self.store.unwritable_reason}; pickups"
                            " wait, door changes are kept in memory until it can"
                            + (" (free some disk space)" if self.store.full else "")}]

    def _close_old_incidents(self, now: float) -> None:
        """A store that went back is an incident, not a state: its alarm stays a day for ops to
        see (central has its event), then clears."""
        if self.store.read().one("SELECT 1 AS open FROM alarms WHERE kind = 'store_rolled_back'"
                                 " AND cleared_at IS NULL AND raised_at < ?",
                                 (now - INCIDENT_S,)):
            with self.store.transaction(now) as tx:
                tx.clear_alarm("store_rolled_back", "store", "a day has passed since the store"
                               " went back")

    def _check_free_space(self) -> None:
        """A warning before the disk is full: store.min_free_mb."""
        try:
            free_mb = shutil.disk_usage(self.config.data_dir).free / 1e6
        except OSError:
            return
        low = self.config.store.min_free_mb
        with self.store.transaction(self.clock.now()) as tx:
            if free_mb < low:
                tx.raise_alarm("disk_low", "store", f"{free_mb:.0f} MB free in"
                               f" {self.config.data_dir}, under store.min_free_mb ({low:g} MB):"
                               " the store will stop writing when it is full")
            elif free_mb > low * 1.25:
                tx.clear_alarm("disk_low", "store", f"{free_mb:.0f} MB free again")

    def _count_door_openings(self, events: list[tuple[str, dict[str, object]]]) -> None:
        """Every door opened lets warm air into its zone: the HACCP record counts them."""
        for kind, fields in events:
            if kind in ("door.opened", "door.forced"):
                compartment = self.config.compartment(str(fields["compartment_id"]))
                self.coldchain.door_opened(compartment.zone)

    async def _zone_loop(self, zone: Zone, probe: ZoneProbe, compressor: Compressor) -> None:
        """Read the probe, decide, switch the compressor, record: every ZONE_INTERVAL_S."""
        limits = self.config.zones[zone]
        setpoint = self.setpoint(zone)
        assert setpoint is not None  # checked in __init__
        if isinstance(probe, RefrigerationController):
            await self._controller_loop(zone, probe)
            return
        control = ZoneControl(
            setpoint_c=setpoint, hysteresis_c=limits.hysteresis_c,
            min_off_s=limits.min_off_s, defrost_s=limits.defrost_min * 60,
            defrost_every_s=(limits.defrost_every_h * 3600 if limits.defrost_every_h else None))
        controller = ZoneController(control, started_at=self.clock.monotonic())
        self.zone_controllers[zone] = controller
        self.coldchain.setpoint(zone, setpoint, self._setpoint_source(zone))
        last_tick, was_on = self.clock.monotonic(), False
        self.compressor_on_s.setdefault(zone.value, 0.0)
        while True:
            tick = self.clock.monotonic()
            if was_on:
                self.compressor_on_s[zone.value] += tick - last_tick
            last_tick = tick
            try:
                celsius: float | None = await probe.read_celsius()
            except HardwareError as exc:
                log.warning("%s zone: %s", zone.value, exc)
                celsius = None
            try:
                decision = controller.decide(celsius, self.clock.monotonic())
                compressor.switch(decision.compressor_on)
                was_on = decision.compressor_on
                self.zone_state[zone.value] = {"celsius": celsius,
                                               "setpoint_c": controller.control.setpoint_c,
                                               "compressor": decision.compressor_on}
                self.coldchain.observe(zone, celsius, decision)
            except Exception:  # the loop must outlive a full disk or a stuck relay
                log.exception("%s zone loop failed; will retry", zone.value)
            await self.clock.sleep(ZONE_INTERVAL_S)

    def _setpoint_source(self, zone: Zone) -> str:
        if self.store.meta(SETPOINT_KEY.format(zone=zone.value)) is not None:
            return "central"
        return f"config:{self.config.path.name}"

    async def _controller_loop(self, zone: Zone, controller: RefrigerationController) -> None:
        """A zone regulated by its own controller: give it the setpoint, read and record."""
        first = self.setpoint(zone)
        assert first is not None
        self.coldchain.setpoint(zone, first, self._setpoint_source(zone))
        alarms_seen = 0
        while True:
            setpoint = self.setpoint(zone)
            assert setpoint is not None
            try:
                if self._setpoint_sent.get(zone) != setpoint:
                    await controller.write_setpoint(setpoint)
                    self._setpoint_sent[zone] = setpoint
                celsius: float | None = await controller.read_celsius()
                alarms = await controller.read_alarms()
            except HardwareError as exc:
                log.warning("%s zone controller: %s", zone.value, exc)
                celsius, alarms = None, alarms_seen
            try:
                if alarms != alarms_seen:
                    self._controller_alarms(zone, alarms)
                    alarms_seen = alarms
                # the controller runs its compressor; its state is not read back
                self.zone_state[zone.value] = {"celsius": celsius, "setpoint_c": setpoint,
                                               "compressor": None}
                self.coldchain.observe(zone, celsius, Decision(
                    False, False, False, celsius is None, "regulated by its controller"))
            except Exception:
                log.exception("%s zone loop failed; will retry", zone.value)
            await self.clock.sleep(ZONE_INTERVAL_S)

    def _controller_alarms(self, zone: Zone, alarms: int) -> None:
        with self.store.transaction(self.clock.now()) as tx:
            if alarms:
                tx.raise_alarm("controller_alarm", zone.value,
                               f"the {zone.value} refrigeration controller reports alarm word"
                               f" 0x{alarms:04x}: see its display and its manual")
            else:
                tx.clear_alarm("controller_alarm", zone.value,
                               f"the {zone.value} controller's alarms cleared")

    def _sync_compartments(self) -> None:
        sync_compartments(self.store, self.config, self.clock.now())


def open_store(config: LockerConfig, now: float) -> Store:
    """The store, as the daemon may use it: the one this data dir had (not missing, empty or
    foreign), undamaged, not rolled back behind the marks beside it (locker.domain.datadir).

    A store lost (missing, empty, damaged) comes back from the rolling backup by itself, with
    `alarm.store_rolled_back` saying so: the locker serves again without anyone travelling to
    it. Without a backup, or for a store replaced by another locker's, it refuses to start.
    """
    try:
        return _open_checked(config, now)
    except StoreLost as lost:
        rolling = rolling_backup(config.database)
        if not rolling.exists():
            raise
        log.error("%s; restoring the rolling backup %s", lost, rolling)
        copy = restore(config.database, config.locker_id, rolling, now, locked=True)
        store = _open_checked(config, now)
        with store.transaction(now) as tx:
            tx.raise_alarm("store_rolled_back", "store",
                           f"the store was lost ({lost}) and restored from the rolling backup"
                           f" of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(copy.taken_at))}"
                           "; what happened since then is gone. See docs/operations.md, 'The"
                           " store went back'")
        return store


def _open_checked(config: LockerConfig, now: float) -> Store:
    expected = check_before_open(config.database)
    try:
        store = Store(config.database)
    except StoreError as exc:
        if any(word in str(exc) for word in ("not a database", "malformed", "disk image")):
            raise StoreLost(f"{exc}; restore a backup (locker restore --from FILE)") from exc
        raise
    try:
        quick_check(store)
        check_identity(store, config.locker_id, expected, now)
        compare_marks(store, read_marks(config.database), now)
    except BaseException:
        store.close()
        raise
    return store


def sync_compartments(store: Store, config: LockerConfig, now: float) -> None:
    """Add compartments new in the config; refuse to drop one that still holds an order.

    Idempotent: run at every start, and by the CLI before it adds an order.
    """
    with store.transaction(now) as tx:
        sync_with_config(tx, config)
