"""The RS485 bus: ONE task owns the serial port and runs one transaction at a time.

Requests wait in a priority queue (an unlock goes before a status poll, first come first served
within a priority). Each transaction creates its reply future before writing, writes after the
inter-frame gap (3.5 character times), waits with a timeout and retries a bounded number of times.
A board that fails `offline_after` transactions in a row is marked offline once (one warning, one
callback), its requests then fail fast with BoardOffline except one probe every `retry_offline_s`,
so it never stalls the other boards. A board that has not answered since the start is not trusted
yet: no unlock goes to it, and its first failed read marks it offline at once (a dead board must
not look ready). Frames that answer nothing pending are stale and discarded.

This module never interprets door states and never speaks compartment ids (hardware.boards does);
it must never write to the port from anywhere but its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, NamedTuple

from hardware.codecs import Codec, Request, UnlockRefused
from hardware.transport import FrameProtocol, open_serial
from locker.domain.config import BusConfig
from locker.domain.errors import BoardOffline, BoardTimeout, HardwareError

log = logging.getLogger(__name__)

BITS_PER_CHAR = 10  # 8N1: start bit, 8 data bits, stop bit
GAP_CHARS = 3.5
REPLY_ALLOWANCE_CHARS = 16  # wire time of the longest reply, added to the configured timeout
# asyncio's timers wake up to a millisecond late (epoll's resolution); ahead of an unlock the
# last stretch of the gap is spun out instead, never more than this
SPIN_S = 0.0015


class Priority(IntEnum):
    """Lower goes first."""

    UNLOCK = 0
    READ = 1  # a fresh read someone is waiting for (read_doors, reconciling at start)
    POLL = 2


class FrameRecord(NamedTuple):
    """One frame seen on the line: written ("tx") or read ("rx").

    `t_ns` is time.perf_counter_ns() just after the frame was handed to the OS (tx) or when its
    last byte was read (rx). For tx, `kind` is the request's kind ("unlock", "status", "config");
    for rx it is "reply" (answered the pending request) or "discarded" (stale, late, unasked).
    A tuple: two are made per transaction, and a frozen dataclass costs several times more.
    """

    t_ns: int
    direction: Literal["tx", "rx"]
    data: bytes
    board: int | None
    kind: str


@dataclass
class BusStats:
    tx_frames: int = 0
    rx_frames: int = 0
    discarded_frames: int = 0
    timeouts: int = 0
    retries: int = 0
    fail_fast: int = 0
    probes: int = 0


@dataclass
class BoardHealth:
    failures: int = 0  # consecutive failed transactions
    answered: bool = False  # it answered at least once since the bus was made
    offline: bool = False
    reason: str = ""
    next_probe: float = 0.0
    # transactions that went to the wire, by how they ended, since the bus was made (requests
    # refused at once because the board is offline never reach the wire and are not counted)
    transactions_ok: int = 0
    transactions_timed_out: int = 0  # no answer after the retries (BoardTimeout)
    transactions_failed: int = 0  # any other error: a refused unlock, the port lost


@dataclass
class _Job:
    requests: tuple[Request, ...]
    future: asyncio.Future[bytes | None]
    probe: bool = False

    @property
    def board(self) -> int:
        return self.requests[0].board


def _no_reply(future: asyncio.Future[bytes | None]) -> None:
    """The reply's timeout: None stands for "no answer" (the caller counts it and retries)."""
    if not future.done():
        future.set_result(None)


BoardHandler = Callable[[int, str], None]
OnlineHandler = Callable[[int], None]


class Bus:
    """Owns the port. `await bus.request(requests, priority)` is the only way to the line."""

    def __init__(
        self,
        config: BusConfig,
        codec: Codec,
        *,
        on_offline: BoardHandler | None = None,
        on_online: OnlineHandler | None = None,
        history_size: int = 4096,
        gap_chars: float = GAP_CHARS,
    ) -> None:
        self.config = config
        self.codec = codec
        self.on_offline = on_offline
        self.on_online = on_online
        self.history: deque[FrameRecord] = deque(maxlen=history_size)
        self.stats = BusStats()
        self.health: dict[int, BoardHealth] = {b.address: BoardHealth() for b in config.boards}
        self.char_s = BITS_PER_CHAR / config.baud
        self.gap_s = gap_chars * self.char_s
        self._queue: asyncio.PriorityQueue[tuple[int, int, _Job]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._protocol = FrameProtocol(codec, self._on_frame, self._on_lost, self._on_bytes)
        self._pending: tuple[Request, asyncio.Future[bytes | None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._line_free_at = 0.0  # loop time when the next frame may start (after the gap)
        self._unlocks_waiting = 0
        self._closed = False
        self._lost = asyncio.Event()
        self._reopen_at = 0.0

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the port and start the task that owns it."""
        await open_serial(self.config.port, self.config.baud, self._protocol)
        self._task = asyncio.create_task(self._run(), name=f"lock-bus {self.config.port}")

    async def close(self) -> None:
        """Stop the task, fail whatever still waits, close the port. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            _, _, job = self._queue.get_nowait()
            self._settle(job, exc=HardwareError("the lock-board bus was stopped"))
        if self._protocol.transport is not None:
            self._protocol.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._lost.wait()

    @property
    def dropped_bytes(self) -> int:
        """Bytes thrown away as noise while resyncing."""
        return self._protocol.dropped_bytes

    def is_offline(self, board: int) -> bool:
        return self._health(board).offline

    def answers(self, board: int) -> bool:
        """It answered since the start and is not offline: an unlock can reach it."""
        health = self._health(board)
        return health.answered and not health.offline and not self._lost.is_set()

    # --- requests ----------------------------------------------------------------------------

    async def request(
        self, requests: Sequence[Request], priority: Priority = Priority.POLL
    ) -> bytes | None:
        """Run one transaction (a few frames to one board); return the last reply, if any.

        Raises BoardOffline at once for an offline board (unless this status read is its probe),
        BoardTimeout after the retries, UnlockRefused if the board refused, HardwareError if the
        port is gone.
        """
        if self._closed or self._task is None:
            raise HardwareError("the lock-board bus is not running; start the driver first")
        job = _Job(tuple(requests), asyncio.get_running_loop().create_future())
        health = self._health(job.board)
        if not health.answered and not health.offline and any(
                r.kind != "status" for r in job.requests):
            self.stats.fail_fast += 1
            raise BoardOffline(f"board {job.board} has not answered since the start; nothing is"
                               " sent to it until it does. Check its power, its address switches"
                               " and the RS485 cable")
        if health.offline:
            now = asyncio.get_running_loop().time()
            probe_ok = all(r.kind == "status" for r in job.requests)
            if not probe_ok or now < health.next_probe:
                self.stats.fail_fast += 1
                raise self._offline_error(job.board)
            job.probe = True  # this one goes to the wire; the others fail fast meanwhile
            health.next_probe = now + self.config.retry_offline_s
            self.stats.probes += 1
        if priority is Priority.UNLOCK:
            self._unlocks_waiting += 1
        self._queue.put_nowait((int(priority), next(self._seq), job))
        return await job.future

    def _offline_error(self, board: int) -> BoardOffline:
        health = self._health(board)
        return BoardOffline(
            f"board {board} is offline ({health.reason}); its requests fail at once until it"
            f" answers a probe (one every {self.config.retry_offline_s:g} s). Check its power,"
            " its address switches and the RS485 cable"
        )

    def _health(self, board: int) -> BoardHealth:
        return self.health.setdefault(board, BoardHealth())

    # --- the one task that owns the port -----------------------------------------------------

    async def _run(self) -> None:
        while True:
            # choose the next job only once the line is free: an unlock queued during the
            # inter-frame gap must go before the poll that was already waiting
            await self._wait_gap()
            priority, _, job = await self._queue.get()
            if priority == Priority.UNLOCK:
                self._unlocks_waiting -= 1
            if self._lost.is_set() and not await self._reopen():
                self._settle(job, exc=BoardOffline(
                    f"the lock-board port {self.config.port} is lost; retrying every"
                    f" {self.config.retry_offline_s:g} s. Check the RS485 adapter and its cable"))
                continue
            if job.future.done():  # the caller gave up while it waited
                continue
            board = job.board
            if self._health(board).offline and not job.probe:
                self.stats.fail_fast += 1
                self._settle(job, exc=self._offline_error(board))
                continue
            health = self._health(board)
            try:
                reply = await self._transaction(job)
            except BoardTimeout as exc:
                health.transactions_timed_out += 1
                self._failed(board, str(exc))
                self._settle(job, exc=exc)
            except UnlockRefused as exc:
                health.transactions_failed += 1
                self._succeeded(board)  # it answered: alive, just unwilling
                self._settle(job, exc=exc)
            except HardwareError as exc:
                health.transactions_failed += 1
                self._settle(job, exc=exc)
            else:
                health.transactions_ok += 1
                if any(r.expects_reply for r in job.requests):  # a write-only job proves nothing
                    self._succeeded(board)
                self._settle(job, result=reply)

    @staticmethod
    def _settle(
        job: _Job, result: bytes | None = None, exc: BaseException | None = None
    ) -> None:
        if not job.future.done():
            if exc is not None:
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)

    async def _transaction(self, job: _Job) -> bytes | None:
        attempts = 1 if job.probe else self.config.retries + 1
        last: bytes | None = None
        for request in job.requests:
            if not request.expects_reply:
                await self._wait_gap()
                self._write(request)
                continue
            reply: bytes | None = None
            # an unlock frame is never sent twice: its reply may be lost after the lock pulsed,
            # and a second pulse would open the door twice for one authorisation
            tries = 1 if request.kind == "unlock" else attempts
            for attempt in range(tries):
                if attempt:
                    self.stats.retries += 1
                reply = await self._exchange(request)
                if reply is not None:
                    break
                self.stats.timeouts += 1
            if reply is None:
                raise BoardTimeout(
                    f"{request.where} did not answer its {request.kind} request"
                    f" ({tries} attempt{'s' if tries > 1 else ''},"
                    f" {self.config.timeout_s:g} s each); check the board's power, address"
                    " and cable"
                )
            if request.kind == "unlock":
                self.codec.check_unlock(request, reply)
            last = reply
        return last

    async def _exchange(self, request: Request) -> bytes | None:
        """Write one request and wait for its reply; None on timeout."""
        loop = asyncio.get_running_loop()
        await self._wait_gap()
        self._protocol.clear()  # a half frame left on the line can only be stale now
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._pending = (request, future)  # before writing: a fast reply must find it
        # a bare timer that answers None, cheaper than asyncio.timeout's cancellation machinery
        wire_s = (len(request.frame) + REPLY_ALLOWANCE_CHARS) * self.char_s
        timer = loop.call_later(self.config.timeout_s + wire_s, _no_reply, future)
        try:
            self._write(request)
            return await future
        finally:
            timer.cancel()
            self._pending = None

    def _write(self, request: Request) -> None:
        self._protocol.write(request.frame)
        now = asyncio.get_running_loop().time()
        self._line_free_at = now + len(request.frame) * self.char_s + self.gap_s
        self.stats.tx_frames += 1
        self.history.append(
            FrameRecord(time.perf_counter_ns(), "tx", request.frame, request.board, request.kind)
        )

    async def _wait_gap(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._line_free_at - loop.time()
        if delay <= 0:
            return
        if not self._unlocks_waiting:
            await asyncio.sleep(delay)
            return
        # a customer is waiting for this unlock: sleep the coarse part, spin out the rest
        if delay > SPIN_S:
            await asyncio.sleep(delay - SPIN_S)
        while loop.time() < self._line_free_at:
            pass

    # --- callbacks from the transport --------------------------------------------------------

    def _on_bytes(self, data: bytes) -> None:
        # any byte on the line pushes the next write back by a full gap
        self._line_free_at = max(
            self._line_free_at, asyncio.get_running_loop().time() + self.gap_s
        )

    def _on_frame(self, frame: bytes) -> None:
        t_ns = time.perf_counter_ns()
        self.stats.rx_frames += 1
        pending = self._pending
        if pending is not None:
            request, future = pending
            if not future.done() and self.codec.answers(request, frame):
                future.set_result(frame)
                self.history.append(FrameRecord(t_ns, "rx", frame, request.board, "reply"))
                return
        self.stats.discarded_frames += 1
        self.history.append(FrameRecord(t_ns, "rx", frame, None, "discarded"))
        log.debug("discarded a frame that answers nothing pending: %s", frame.hex(" "))

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost.set()
        if self._closed:
            return
        log.error("lost the lock-board port %s (%s); every board is offline until it is back",
                  self.config.port, exc or "closed")
        self._reopen_at = 0.0
        for board in list(self.health):
            self._mark_offline(board, f"the port {self.config.port} is lost")
        pending = self._pending
        if pending is not None and not pending[1].done():
            pending[1].set_exception(HardwareError(f"lost the port {self.config.port}"))

    # --- board health ------------------------------------------------------------------------

    def _failed(self, board: int, reason: str) -> None:
        health = self._health(board)
        health.failures += 1
        if health.offline:
            return  # a failed probe: still offline, already said so
        if not health.answered:
            self._mark_offline(board, "it has not answered since the start", reason)
        elif health.failures >= self.config.offline_after:
            self._mark_offline(board, f"{health.failures} transactions in a row failed", reason)

    def _mark_offline(self, board: int, why: str, detail: str = "") -> None:
        health = self._health(board)
        if health.offline:
            return
        health.offline = True
        health.reason = why
        health.next_probe = asyncio.get_running_loop().time() + self.config.retry_offline_s
        log.warning("board %d is offline: %s%s", board, why,
                    f"; last error: {detail}" if detail else "")
        if self.on_offline is not None:
            self.on_offline(board, why)

    async def _reopen(self) -> bool:
        """After the port was lost (an adapter unplugged): try to open it again, now and then."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._reopen_at:
            return False
        self._reopen_at = loop.time() + self.config.retry_offline_s
        try:
            await open_serial(self.config.port, self.config.baud, self._protocol)
        except HardwareError as exc:
            log.debug("the lock-board port is still lost: %s", exc)
            return False
        self._lost.clear()
        log.warning("reopened the lock-board port %s", self.config.port)
        return True

    def _succeeded(self, board: int) -> None:
        health = self._health(board)
        health.failures = 0
        health.answered = True
        if health.offline:
            health.offline = False
            health.reason = ""
            log.warning("board %d answers again: back online", board)
            if self.on_online is not None:
                self.on_online(board)
