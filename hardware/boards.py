"""The lock boards on RS485 as the domain sees them: open a compartment, watch its door.

BoardLockDriver implements locker.domain.ports.LockDriver. It speaks compartment ids outward and
(board, channel) to the codec; every byte goes through the one Bus task (hardware.bus). It reports
only door changes, after a first full read at start that sets the baseline, and UNKNOWN for the
doors of a board that goes offline. It must never send an unlock the domain did not ask for, never
repeat an unlock for a lock already being pulsed, and never send "unlock all" (0x33 in K).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from hardware.bus import BoardHealth, Bus, FrameRecord, Priority
from hardware.codecs import Codec, Request, get_codec
from locker.domain.config import BoardConfig, BoardWiring, BusConfig, CompartmentConfig
from locker.domain.errors import BoardOffline, BoardTimeout, HardwareError, UnknownCompartment
from locker.domain.model import DoorSense
from locker.domain.ports import BoardCounts, HardwareListener

log = logging.getLogger(__name__)

Lock = tuple[int, int]  # (board address, 1-based channel)

RECENT_UNLOCK_S = 60.0  # per-lock protocols (W) poll a door unlocked this recently first


class BoardLockDriver:
    """LockDriver over RS485 lock boards; `driver.bus.history` holds what went on the wire."""

    def __init__(
        self,
        bus: BusConfig,
        compartments: Sequence[CompartmentConfig],
        *,
        set_pulse_time: bool = False,
        history_size: int = 4096,
    ) -> None:
        self.bus_config = bus
        self.codec: Codec = get_codec(bus.protocol, bus.boards)
        self.bus = Bus(
            bus, self.codec, on_offline=self._board_offline, on_online=self._board_online,
            history_size=history_size,
        )
        # for a protocol that can store it (K's 0x37, from one source only, its reply
        # undocumented): off unless asked for (docs/protocols.md)
        self.set_pulse_time = set_pulse_time and self.codec.protocol.pulse_time_settable
        self.boards: dict[int, BoardConfig] = {b.address: b for b in bus.boards}
        self.wiring: dict[str, Lock] = {}
        self.by_lock: dict[Lock, str] = {}
        for compartment in compartments:
            wiring = compartment.wiring
            if isinstance(wiring, BoardWiring) and wiring.board in self.boards:
                lock = (wiring.board, wiring.channel)
                self.wiring[compartment.id] = lock
                self.by_lock[lock] = compartment.id
        self.doors: dict[str, DoorSense] = dict.fromkeys(self.wiring, DoorSense.UNKNOWN)
        self.sensing = {c.id for c in compartments if c.item_sensor and c.id in self.wiring}
        self.items: dict[str, bool] = {}  # compartment -> occupied, as last reported
        self._listener: HardwareListener | None = None
        self._reporting = False  # becomes True after the first full read
        self._poll_task: asyncio.Task[None] | None = None
        self._inflight: dict[Lock, asyncio.Task[None]] = {}
        self._pulse_until: dict[Lock, float] = {}
        self._recent: dict[Lock, float] = {}
        self._requests: list[tuple[int, Request]] | None = None  # one full read, built once
        # the last reply whose doors were all reported, by request frame: a poll that reads the
        # same bytes again changed nothing and costs no decoding (most polls, on an idle locker)
        self._seen: dict[bytes, bytes] = {}

    # --- LockDriver --------------------------------------------------------------------------

    async def start(self, listener: HardwareListener) -> None:
        """Open the port, read every board once (the baseline, not reported), then poll."""
        self._listener = listener
        await self.bus.open()
        for _board, request in self._cycle(recent_first=False):
            await self._read(request, Priority.READ)
        if self.set_pulse_time:
            for address in self.boards:  # once a board has answered: nothing goes to a stranger
                request = self.codec.pulse_time_request(address, self.bus_config.pulse_ms)
                with contextlib.suppress(HardwareError):
                    await self.bus.request((request,), Priority.READ)
        self._reporting = True
        self._poll_task = asyncio.create_task(self._poll_forever(), name="lock-board poll")

    async def stop(self) -> None:
        """Stop polling, let an unlock on the wire finish its frame, close the port."""
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
            self._poll_task = None
        await self.bus.close()
        self._listener = None

    async def unlock(self, compartment_id: str) -> None:
        """Pulse one lock; return once the board acknowledged it.

        A second unlock for a lock already in flight waits for the first one's answer; one
        within pulse_ms of an acknowledged unlock is dropped (the lock is still being pulsed).
        """
        lock = self.wiring.get(compartment_id)
        if lock is None:
            raise UnknownCompartment(
                f"compartment {compartment_id!r} is not wired to a lock board on this bus;"
                " check its board and channel in [layout] of the config"
            )
        task = self._inflight.get(lock)
        if task is None:
            loop = asyncio.get_running_loop()
            if self._pulse_until.get(lock, 0.0) > loop.time():
                log.info("board %d channel %d is being pulsed: repeated unlock dropped", *lock)
                return
            task = asyncio.create_task(self._unlock(lock), name=f"unlock {compartment_id}")
            self._inflight[lock] = task
            task.add_done_callback(lambda t: self._unlock_done(lock, t))
        await asyncio.shield(task)

    async def read_doors(self) -> Mapping[str, DoorSense]:
        """A fresh read of every board; UNKNOWN for the doors of a board that did not answer."""
        fresh: dict[str, DoorSense] = dict.fromkeys(self.wiring, DoorSense.UNKNOWN)
        failed: set[int] = set()
        for board, request in self._cycle(recent_first=False):
            if board in failed:
                continue
            states = await self._read(request, Priority.READ)
            if states is None:
                failed.add(board)
                continue
            fresh.update(states)
        return fresh

    def reachable(self, compartment_id: str) -> bool:
        """Wired here, its board has answered since the start and is not offline."""
        lock = self.wiring.get(compartment_id)
        return lock is not None and self.bus.answers(lock[0])

    # --- BusTelemetry ------------------------------------------------------------------------

    def bus_telemetry(self) -> Mapping[str, BoardCounts]:
        """locker.domain.ports.BusTelemetry (for /metrics): per board of the config, its
        transactions by outcome since the bus was made, and whether it answers now."""
        counts: dict[str, BoardCounts] = {}
        for address, board in self.boards.items():
            health = self.bus.health.get(address) or BoardHealth()
            counts[board.name] = BoardCounts(
                health.transactions_ok, health.transactions_timed_out,
                health.transactions_failed, not health.offline)
        return counts

    # --- inside ------------------------------------------------------------------------------

    def history(self) -> list[FrameRecord]:
        """What went on the wire and came back, oldest first (perf_counter_ns timestamps)."""
        return list(self.bus.history)

    async def _unlock(self, lock: Lock) -> None:
        board, channel = lock
        requests = self.codec.unlock_requests(board, channel)
        reply = await self.bus.request(requests, Priority.UNLOCK)
        loop = asyncio.get_running_loop()
        self._pulse_until[lock] = loop.time() + self.bus_config.pulse_ms / 1000
        self._recent[lock] = loop.time()
        last = [r for r in requests if r.expects_reply][-1]
        if reply is not None and self.codec.protocol.ack_is_status_read:
            self._apply(last, reply)  # K: the acknowledgement is a fresh read of the board

    def _unlock_done(self, lock: Lock, task: asyncio.Task[None]) -> None:
        self._inflight.pop(lock, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, so a caller that went away leaves no warning

    def _cycle(self, recent_first: bool) -> list[tuple[int, Request]]:
        """The status requests of one full read, as (board, request); the frames never change,
        so they are built once (four times a second for every board would be wasted work)."""
        if self._requests is None:
            requests: list[tuple[int, Request]] = []
            for address, board in self.boards.items():
                wired = tuple(sorted(ch for (b, ch) in self.by_lock if b == address))
                if wired:
                    requests.extend((address, r) for r in self.codec.status_requests(board, wired))
            self._requests = requests
        items = self._requests
        if recent_first and self.codec.protocol.per_lock_status:  # W: one read per lock
            items = list(items)
            now = asyncio.get_running_loop().time()
            fresh = {k for k, t in self._recent.items() if now - t < RECENT_UNLOCK_S}
            items.sort(key=lambda item: (item[0], item[1].channel) not in fresh)  # stable
        return items

    async def _read(self, request: Request, priority: Priority) -> dict[str, DoorSense] | None:
        """One status transaction; applies and returns what it read, None if the board failed.

        A poll whose reply is the same bytes as the last one applied returns an empty dict:
        nothing changed, nothing is decoded."""
        try:
            reply = await self.bus.request((request,), priority)
        except (BoardOffline, BoardTimeout) as exc:
            log.debug("%s", exc)
            return None
        except HardwareError as exc:
            log.warning("reading %s failed: %s", request.where, exc)
            return None
        if reply is None:
            return None
        if priority is Priority.POLL and self._seen.get(request.frame) == reply:
            return {}
        return self._apply(request, reply)

    def _apply(self, request: Request, reply: bytes) -> dict[str, DoorSense]:
        board = self.boards[request.board]
        states: dict[str, DoorSense] = {}
        reported = True
        # the goods before the doors: a bag put in and its door shut between two polls is seen
        # as a loaded compartment closing, never as an empty one
        if board.item_sensor:
            for channel, occupied in self.codec.decode_items(request, reply, board).items():
                compartment_id = self.by_lock.get((request.board, channel))
                if compartment_id in self.sensing:
                    reported = self._set_item(compartment_id, occupied) and reported
        for channel, closed in self.codec.decode_doors(request, reply, board).items():
            compartment_id = self.by_lock.get((request.board, channel))
            if compartment_id is not None:
                sense = DoorSense.CLOSED if closed else DoorSense.OPEN
                states[compartment_id] = sense
                reported = self._set(compartment_id, sense) and reported
        if reported:
            self._seen[request.frame] = reply
        else:  # the listener failed on a change: the next poll must decode it again
            self._seen.pop(request.frame, None)
        return states

    def _set(self, compartment_id: str, sense: DoorSense) -> bool:
        """Take one door's state; False if the listener failed on it (so it is not kept)."""
        old = self.doors.get(compartment_id)
        if self._reporting and old != sense and self._listener is not None:
            try:
                self._listener.door_sensed(compartment_id, sense)
            except Exception:
                # not remembered: the next poll reports the change again
                log.exception("the listener failed on door %s -> %s", compartment_id, sense)
                return False
        self.doors[compartment_id] = sense
        return True

    def _set_item(self, compartment_id: str, occupied: bool) -> bool:
        """Take one item reading; the first one is reported too (items have no reconcile pass)."""
        if self.items.get(compartment_id) != occupied and self._listener is not None:
            try:
                self._listener.item_sensed(compartment_id, occupied)
            except Exception:
                log.exception("the listener failed on item %s -> %s", compartment_id, occupied)
                return False
        self.items[compartment_id] = occupied
        return True

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.bus_config.poll_interval_s
        while True:
            started = loop.time()
            failed: set[int] = set()
            try:
                for board, request in self._cycle(recent_first=True):
                    if board in failed:
                        continue  # one timeout per board and cycle is enough
                    if await self._read(request, Priority.POLL) is None:
                        failed.add(board)
            except Exception:  # a bug must not stop the door watch silently
                log.exception("door poll cycle failed; polling goes on")
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    def _board_name(self, address: int) -> str:
        board = self.boards.get(address)
        return board.name if board is not None else f"board {address}"

    def _board_offline(self, address: int, reason: str) -> None:
        listener = self._listener
        if listener is not None:
            try:
                listener.board_offline(self._board_name(address), reason)
            except Exception:
                log.exception("the listener failed on board %d offline", address)
        for (board, _channel), compartment_id in self.by_lock.items():
            if board == address:
                self._set(compartment_id, DoorSense.UNKNOWN)
        # its doors are UNKNOWN now: its first reply back must be decoded, even if unchanged
        for _board, request in self._cycle(recent_first=False):
            if request.board == address:
                self._seen.pop(request.frame, None)

    def _board_online(self, address: int) -> None:
        listener = self._listener
        if listener is not None:
            try:
                listener.board_online(self._board_name(address))
            except Exception:
                log.exception("the listener failed on board %d online", address)
