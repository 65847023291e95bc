"""Remote updates on the locker: fetch the version central announced, verify it with python-tuf,
install it into the other slot, and restart when nobody is using the locker; started as a new
version, prove it works before the deadline, or let the boot guard bring the old one back.

The pieces: the `update` command (locker/domain/commands.py) records what central wants and its
rollout
window; this agent (one task beside the central link) does the rest:

1. the announced version must be newer than the running one (`locker.__version__`);
2. python-tuf's ngclient refreshes the metadata from `[update] repository_url` against the
   trusted root the locker was installed with (signatures and thresholds, expiry, TUF's own
   rollback and freeze protection) and finds the wheel's target; its `custom.version` must be
   the announced one;
3. the free disk must hold the download, the unpacked slot and a copy of the store, with
   `min_free_mb` to spare;
4. the download is checked against the signed length and SHA-256 (ngclient again);
5. locker/slots.py installs it into the slot `current` does not point to, and checks it starts;
6. when no door transaction is in flight and nobody is at the locker (or at the quiet hour),
   the store is copied (SQLite's backup), update-state.json says what is being tried, `current`
   is switched, and the process exits with 75 so that systemd starts the new version.

Any refusal is one `update.refused` event {version, reason, message} for central, and the
running version is left as it was. Network trouble is not a refusal: it is retried every
`retry_s` until the rollout window ends.

Started as the version being tried, the agent waits for the locker to be ready and for one good
answer from central, then emits `update.succeeded` and clears the state file; at the deadline it
exits instead, and the boot guard (deploy/locker-boot) rolls back. Started after a rollback, it
emits `update.rolled_back` and counts it (`locker_update_rollbacks_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from api.central import CENTRAL, CentralLink
from locker import __version__, slots
from locker.domain.config import UpdateConfig
from locker.domain.daemon import Locker
from locker.domain.tasks import cancel_and_wait
from locker.domain.update import (
    CUSTOMER_EVENTS,
    RESTART_EXIT_CODE,
    ROLLBACKS_KEY,
    STATE_FILE,
    Activity,
    RepositoryUnavailable,
    UpdateRefused,
    Wanted,
    clear_state,
    doors_in_flight,
    forget,
    is_newer,
    read_state,
    restart_verdict,
    role,
    wanted,
    write_state,
)

log = logging.getLogger("locker.update")
MIB = 1 << 20
SPACE_FACTOR = 4  # the download, the unpacked slot (about 2.5 times the wheel) and a margin
QUIET_POLL_S = 0.5
IDLE_POLL_S = 30.0
HEALTH_POLL_S = 0.2
LAST_ROLLBACK_KEY = "update.last_rollback"  # the rollback last reported (reported once)


class UpdateAgent:
    def __init__(self, locker: Locker, central: CentralLink,
                 restart: Callable[[], None] | None = None) -> None:
        assert locker.config.update is not None
        self.locker, self.central = locker, central
        self.config: UpdateConfig = locker.config.update
        self.state_path = locker.config.data_dir / STATE_FILE
        self.work = locker.config.data_dir / "update"
        self.exit_code = 0
        self.restart = restart or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self.wake = asyncio.Event()
        self.customer_at: float | None = None  # monotonic time a customer last typed a code
        self.central_since = central.last_answer  # an answer after this is a round trip
        self._tasks: list[asyncio.Task[None]] = []
        locker.store.listeners.append(self._heard)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        state = read_state(self.state_path)
        what = role(state, __version__)
        if what == "rolled_back" and state is not None:
            self._report_rollback(state)
        elif what == "stale" and state is not None:
            log.warning("forgetting an update that did not get as far as a switch: %s", state)
            self._discard(state)
        elif what == "guard_failed":
            log.error("the boot guard began a rollback and did not finish it: %s; it will try"
                      " again at the next start, and no update runs meanwhile", state)
        elif what == "candidate" and state is not None:
            log.info("this is version %s being tried: proving it works before %s", __version__,
                     time.strftime("%H:%M:%S", time.localtime(float(state["deadline"]))))
            self._tasks.append(asyncio.create_task(self._prove(state), name="update health"))
        self._tasks.append(asyncio.create_task(self._run(), name="update agent"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)

    def _heard(self, events: list[tuple[str, dict[str, object]]]) -> None:
        for kind, fields in events:
            if kind in CUSTOMER_EVENTS:
                self.customer_at = self.locker.clock.monotonic()
            elif kind == "command.done" and fields.get("action") == "update":
                self.wake.set()

    def request_restart(self, why: str) -> None:
        log.warning("restarting: %s", why)
        self.exit_code = RESTART_EXIT_CODE
        self.restart()

    # -- after a restart -------------------------------------------------------------------

    async def _prove(self, state: dict[str, Any]) -> None:
        """Ready, and central answered once since this process started: good. Not by the
        deadline: exit, and the boot guard brings the old version back."""
        deadline = float(state["deadline"])
        while True:
            if self.locker.ready and self.central.last_answer > self.central_since:
                self._succeeded(state)
                return
            if self.locker.clock.now() > deadline:
                self.request_restart(f"version {__version__} did not prove itself by its"
                                     " deadline (ready, and one answer from central)")
                return
            await asyncio.sleep(HEALTH_POLL_S)

    def _succeeded(self, state: dict[str, Any]) -> None:
        now = self.locker.clock.now()
        with self.locker.store.transaction(now) as tx:
            forget(tx, __version__)
            tx.emit("update.succeeded", "security", version=__version__,
                    from_version=state.get("from"), slot=state.get("to_slot"),
                    boots=state.get("boots"),
                    seconds=round(now - float(state.get("switched_at", now)), 3))
        clear_state(self.state_path)
        self._remove(state.get("backup"))
        log.info("version %s is good (from %s)", __version__, state.get("from"))

    def _report_rollback(self, state: dict[str, Any]) -> None:
        version = str(state.get("rolled_back") or state.get("trying"))
        mark = f"{version}@{state.get('at')}"
        with self.locker.store.transaction(self.locker.clock.now()) as tx:
            if tx.meta(LAST_ROLLBACK_KEY) != mark:
                tx.set_meta(LAST_ROLLBACK_KEY, mark)
                tx.set_meta(ROLLBACKS_KEY, str(int(tx.meta(ROLLBACKS_KEY) or 0) + 1))
                tx.emit("update.rolled_back", "security", version=version,
                        reason=str(state.get("reason", "unknown")), running=__version__,
                        boots=state.get("boots"), store=state.get("store"),
                        rescued_events=state.get("rescued_events", 0))
            forget(tx, version)
        log.error("version %s was rolled back (%s); running %s again", version,
                  state.get("reason"), __version__)
        clear_state(self.state_path)
        self._remove(state.get("backup"))

    def _discard(self, state: dict[str, Any]) -> None:
        clear_state(self.state_path)
        self._remove(state.get("backup"))

    @staticmethod
    def _remove(path: object) -> None:
        if isinstance(path, str) and path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    # -- the update ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            want = wanted(self.locker.store)
            if want is None or self.state_path.exists():
                await self._sleep(IDLE_POLL_S)
                continue
            try:
                await self._attempt(want)
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk, a bug: neither may end the loop or the daemon
                log.exception("update to %s failed; retry in %.0f s", want.version,
                              self.config.retry_s)
                await self._sleep(self.config.retry_s)
            if self.exit_code:
                return

    async def _attempt(self, want: Wanted) -> None:
        try:
            await self._update(want)
        except UpdateRefused as exc:
            self._refuse(want, exc)
        except RepositoryUnavailable as exc:
            log.warning("update to %s: repository unavailable (%s); retry in %.0f s",
                        want.version, exc, self.config.retry_s)
            await self._sleep(self.config.retry_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()

    def _refuse(self, want: Wanted, exc: UpdateRefused) -> None:
        log.warning("update to %s refused (%s): %s", want.version, exc.reason, exc)
        with self.locker.store.transaction(self.locker.clock.now()) as tx:
            forget(tx, want.version)
            tx.emit("update.refused", "security", version=want.version, reason=exc.reason,
                    message=str(exc)[:500], running=__version__)

    def _still(self, want: Wanted) -> bool:
        """Central has not announced something else meanwhile."""
        return wanted(self.locker.store) == want

    async def _update(self, want: Wanted) -> None:
        if not is_newer(want.version, __version__):
            raise UpdateRefused("downgrade", f"{want.version} is not newer than the running"
                                f" {__version__}")
        window = want.window(self.locker.clock.now())
        if window == "passed":
            raise UpdateRefused("window_passed", "the rollout window ended before the update")
        if window == "wait":
            assert want.not_before is not None
            await self._sleep(min(want.not_before - self.locker.clock.now(), 3600.0))
            return
        if slots.current_slot(self.config.slots_dir) is None:
            raise UpdateRefused("not_in_slots", f"{self.config.slots_dir / slots.CURRENT} is not a"
                                " slot: install the running version into a slot first"
                                " (locker install-slot)")
        wheel = await asyncio.to_thread(self._fetch, want.version)
        if not self._still(want):
            return
        slot = slots.other_slot(self.config.slots_dir)
        try:
            await asyncio.to_thread(slots.install, self.config.slots_dir, slot, wheel,
                                    want.version)
        except slots.SlotError as exc:
            raise UpdateRefused(exc.reason, str(exc)) from None
        finally:
            with contextlib.suppress(OSError):
                wheel.unlink()
        with self.locker.store.transaction(self.locker.clock.now()) as tx:
            tx.emit("update.installed", "security", version=want.version, slot=slot)
        log.info("version %s installed into slot %s; restarting when the locker is quiet",
                 want.version, slot)
        if await self._until_quiet(want):
            await self._switch(want, slot)

    def _fetch(self, version: str) -> Path:
        """Verify and download the version's wheel (api/tuf_client.py); runs in a thread."""
        from api.tuf_client import fetch_target  # python-tuf: loaded only on a locker that updates

        central = self.locker.config.central
        return fetch_target(self.config, self.work, central.ca_file if central else None,
                            version, self._check_space)

    def _check_space(self, length: int) -> None:
        """Room for the download, the new slot and the store's copy, with min_free_mb left."""
        database = self.locker.config.database
        store_bytes = database.stat().st_size if database.exists() else 0
        needed = length * SPACE_FACTOR + store_bytes
        floor = int(self.config.min_free_mb * MIB)
        for folder in {self.work.parent, self.config.slots_dir}:
            free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
            if free - needed < floor:
                raise UpdateRefused("disk_full", f"{folder}: {free / MIB:.0f} MiB free; the update"
                                    f" needs {needed / MIB:.1f} MiB and {self.config.min_free_mb:g}"
                                    " MiB must stay free")

    # -- the restart -----------------------------------------------------------------------

    def activity(self) -> Activity:
        clock, config = self.locker.clock, self.locker.config
        now = clock.monotonic()
        sessions = sum(1 for s in self.locker.staff.sessions.values()
                       if now - s.last_seen <= config.staff.idle_timeout_s)
        doors = doors_in_flight(self.locker.store, clock.now(), config.doors.left_open_alarm_s)
        idle = None if self.customer_at is None else now - self.customer_at
        return Activity(sessions, doors, idle)

    async def _until_quiet(self, want: Wanted) -> bool:
        said = ""
        while True:
            if not self._still(want):
                return False
            if want.window(self.locker.clock.now()) == "passed":
                raise UpdateRefused("window_passed", "the locker was never quiet enough to restart"
                                    " inside the rollout window")
            hour = time.localtime(self.locker.clock.now()).tm_hour
            ok, why = restart_verdict(self.activity(),
                                      customer_quiet_s=self.config.customer_quiet_s,
                                      local_hour=hour, quiet_hour=self.config.quiet_hour)
            if ok:
                log.info("restart for %s now: %s", want.version, why)
                return True
            if why != said:
                log.info("restart for %s waits: %s", want.version, why)
                said = why
            await asyncio.sleep(QUIET_POLL_S)

    async def _switch(self, want: Wanted, slot: str) -> None:
        """Copy the store, say what is being tried, switch `current`, exit for systemd."""
        config, store = self.locker.config, self.locker.store
        running = slots.current_slot(self.config.slots_dir)
        backup = config.data_dir / f"store-before-{want.version}.db"
        try:
            await asyncio.to_thread(slots.backup_store, config.database, backup)
        except OSError as exc:
            with contextlib.suppress(OSError):
                backup.unlink()
            raise UpdateRefused("disk_full" if exc.errno == 28 else "backup_failed",
                                f"copying the store to {backup} failed: {exc}") from None
        now = self.locker.clock.now()
        write_state(self.state_path, {
            "trying": want.version, "from": __version__, "from_slot": running, "to_slot": slot,
            "slots_dir": str(self.config.slots_dir), "store": str(config.database),
            "backup": str(backup), "schema": store.schema_version,
            "deadline": now + self.config.health_deadline_s, "boots": 0,
            "max_boots": self.config.max_boots, "switched_at": now,
            "announced_at": want.announced_at})
        slots.switch(self.config.slots_dir, slot)
        with store.transaction(now) as tx:
            tx.emit("update.restarting", "security", version=want.version, slot=slot,
                    from_version=__version__)
        self.request_restart(f"switched to version {want.version} in slot {slot}")


UPDATER = web.AppKey("updater", UpdateAgent)


def add_update_agent(app: web.Application, locker: Locker) -> None:
    """Run the update agent for as long as the app runs, when the config has an [update] table;
    added after the central link, which it needs to prove a new version healthy."""
    if locker.config.update is None or CENTRAL not in app:
        return
    app[UPDATER] = agent = UpdateAgent(locker, app[CENTRAL])

    async def run(app: web.Application) -> AsyncIterator[None]:
        await agent.start()
        yield
        await agent.stop()

    app.cleanup_ctx.append(run)


def exit_code(app: web.Application) -> int:
    """What `locker run` exits with: 75 when the agent restarts the daemon for an update."""
    return app[UPDATER].exit_code if UPDATER in app else 0
