"""The locker's connection to central: it pulls the feed, pushes the outbox, sends heartbeats.

The locker starts every conversation (it sits behind a shop's NAT). Three loops run side by side,
each retrying with exponential backoff and full jitter, so a slow feed never holds back the
outbox. This module only moves bytes and reads answers strictly; what an answer means is decided
in locker/ (feed, inbox, sync). Any answer that is not what docs/central.md describes changes
nothing: it raises `alarm.central_protocol` once and is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import (
    ClientConnectorCertificateError,
    ClientError,
    ClientSession,
    ClientTimeout,
    ServerDisconnectedError,
    TCPConnector,
    web,
)

from locker import __version__
from locker.domain.codes import read_private_file
from locker.domain.config import CentralConfig
from locker.domain.daemon import Locker
from locker.domain.errors import ConfigError
from locker.domain.feed import BadPayload, parse_feed
from locker.domain.sync import (
    acknowledge,
    central_saw,
    heartbeat,
    pending,
    reachable,
    unreachable,
)
from locker.domain.sync import cursor as stored_cursor
from locker.domain.tasks import cancel_and_wait

log = logging.getLogger("locker.central")
MAX_ANSWER_BYTES = 1 << 20
PUSH_IDLE_S = 5.0  # the outbox is looked at this often even when nothing wakes the pusher
PUSH_LINGER_S = 1.0  # after a wake, wait this long for more events before sending
CLOCK_SKEW_WARN_S = 60.0
# an idle connection is kept this much longer than the heartbeat period, so that the next
# heartbeat reuses it instead of paying a TLS handshake (~2 KB); central keeps idle connections
# longer still (docs/central.md, "Bytes on the wire")
KEEPALIVE_MARGIN_S = 30.0
GZIP_OVER_BYTES = 1024  # a request body this large is sent gzipped: event batches of a few events


class Unreachable(Exception):
    """No answer, or an HTTP error status: an outage, or its continuation."""


class Garbled(Exception):
    """An answer that is not what the protocol says: central (or something between) is wrong."""


class Rejected(Unreachable):
    """Central refused this locker (HTTP 401 or 403): an outage, and a configuration problem."""


def load_token(path: Path) -> str:
    """The locker's bearer token for central, from a file only the daemon's user can read."""
    token = read_private_file(path, "central token")
    if token is None:
        raise ConfigError(f"{path}: no central token; put the token central issued for this"
                          " locker here (mode 600)")
    if len(token) < 24 or not token.isprintable() or " " in token:
        raise ConfigError(f"{path}: not a central token (at least 24 printable characters)")
    return token


def tls_context(config: CentralConfig) -> ssl.SSLContext | None:
    if not config.url.startswith("https://"):
        return None
    try:
        return ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{config.ca_file}: cannot load the CA for central: {exc}") from None


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, 2015): retries spread out,
    and a fleet of lockers coming back after an outage does not knock central over together."""

    def __init__(self, low_s: float, high_s: float) -> None:
        self.low_s, self.high_s, self.failures = low_s, high_s, 0

    def next_delay(self) -> float:
        self.failures += 1
        # the exponent stops growing long before the cap: 2.0 ** 1024 would overflow
        return random.uniform(self.low_s,
                              min(self.high_s, self.low_s * 2.0 ** min(self.failures, 32)))

    def reset(self) -> None:
        self.failures = 0


class CentralLink:
    """The three loops and the state they share: when central last answered, and the alarms."""

    def __init__(self, locker: Locker) -> None:
        assert locker.config.central is not None and locker.inbox is not None
        self.locker = locker
        self.config: CentralConfig = locker.config.central
        self.inbox = locker.inbox
        self.token = load_token(self.config.token_file)
        self.ssl = tls_context(self.config)
        self.base = f"{self.config.url}/lockers/{locker.config.locker_id}"
        self.last_answer = locker.clock.now()  # until proven otherwise
        self.outbox_changed = asyncio.Event()
        self.protocol_alarm = bool(locker.store.read().one(
            "SELECT id FROM alarms WHERE kind = 'central_protocol' AND cleared_at IS NULL"))
        self.stats = {"feed_items": 0, "events_acked": 0, "heartbeats": 0, "failures": 0}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: ClientSession | None = None
        locker.store.listeners.append(self._heard)

    def _heard(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.outbox_changed.set()
        for kind, fields in events:
            if kind == "clock.stepped":  # the time of central's last answer moves with the clock
                self.last_answer += float(fields["by_s"])

    async def start(self) -> None:
        # every header is paid for on every call of a 4G plan: no Accept, no Accept-Encoding (the
        # feed's sealed codes do not compress), a short User-Agent
        self._session = ClientSession(
            connector=TCPConnector(ssl=self.ssl if self.ssl is not None else True, limit=4,
                                   keepalive_timeout=self.config.heartbeat_s
                                   + KEEPALIVE_MARGIN_S),
            headers={"Authorization": f"Bearer {self.token}",
                     "User-Agent": f"locker/{__version__}"},
            skip_auto_headers=("Accept", "Accept-Encoding"))
        self._tasks = [asyncio.create_task(loop(), name=f"central {loop.__name__}")
                       for loop in (self._pull, self._push, self._beat)]
        log.info("syncing with central at %s", self.config.url)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._session is not None:
            await self._session.close()

    # -- the loops ---------------------------------------------------------------------------

    async def _pull(self) -> None:
        """Long-poll the feed and apply what comes, item by item, in cursor order."""
        backoff = Backoff(self.config.backoff_min_s, self.config.backoff_max_s)
        while True:
            after = stored_cursor(self.locker.store)
            try:
                body = await self._call("GET", "/feed", params={
                    "after": str(after), "wait": f"{self.config.poll_wait_s:g}", "limit": "50"},
                    timeout_s=self.config.poll_wait_s + self.config.request_timeout_s)
                cursor, items = parse_feed(body, after)
                self._good_answer()
                if items or cursor != after:
                    applied = await self.inbox.apply(cursor, items)
                    self.stats["feed_items"] += len(items)
                    log.info("feed: %s", applied.outcomes or "cursor moved")
                backoff.reset()
            except (Unreachable, Garbled, BadPayload) as exc:
                await self._failed("feed", exc, backoff)
            except Exception:  # a full disk, say: the loop must outlive it and retry
                log.exception("central feed: applying failed; will retry")
                await asyncio.sleep(backoff.next_delay())

    async def _push(self) -> None:
        """Send the outbox in batches; delete each event only once central holds it."""
        backoff = Backoff(self.config.backoff_min_s, self.config.backoff_max_s)
        while True:
            try:
                await self._push_once(backoff)
            except (Unreachable, Garbled) as exc:
                await self._failed("events", exc, backoff)
            except Exception:  # a full disk, say: the loop must outlive it and retry
                log.exception("central events: failed; will retry")
                await asyncio.sleep(backoff.next_delay())

    async def _push_once(self, backoff: Backoff) -> None:
        batch = pending(self.locker.store, self.config.batch_size)
        if not batch:
            self.outbox_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.outbox_changed.wait(), PUSH_IDLE_S)
                # the rest of what is happening (a door's close follows its open) goes in the
                # same batch: one acknowledgement commit instead of one an event
                await asyncio.sleep(PUSH_LINGER_S)
            return
        events = [{"id": e.id, "seq": e.seq, "at": e.at, "kind": e.kind,
                   "category": e.category, "compartment_id": e.compartment_id,
                   "order_id": e.order_id, "payload": e.payload} for e in batch]
        answer = await self._call("POST", "/events", json_body={"events": events},
                                  timeout_s=self.config.request_timeout_s)
        acked = _acked(answer)
        self._good_answer()
        gone = acknowledge(self.locker.store, self.locker.clock.now(),
                           {e.id: e.seq for e in batch}, acked)
        self.stats["events_acked"] += gone
        if gone < len(events):  # central kept some back: do not spin on them
            await asyncio.sleep(backoff.next_delay())
        else:
            backoff.reset()

    async def _beat(self) -> None:
        """Tell central how the locker is, every heartbeat_s (and say so when clocks differ)."""
        backoff = Backoff(self.config.backoff_min_s, self.config.backoff_max_s)
        while True:
            try:
                body = heartbeat(self.locker.store, version=__version__,
                                 ready=self.locker.ready, zones=self.locker.zone_state,
                                 now=self.locker.clock.now(),
                                 live_alarms=self.locker.live_alarms())
                answer = await self._call("POST", "/heartbeat", json_body=body,
                                          timeout_s=self.config.request_timeout_s)
                server_time, events_seq = _heartbeat_answer(answer)
                if events_seq is not None:
                    central_saw(self.locker.store, self.locker.clock.now(), events_seq)
                self._good_answer()
                self.stats["heartbeats"] += 1
                if abs(server_time - time.time()) > CLOCK_SKEW_WARN_S:
                    log.warning("this locker's clock is %.0f s off central's; commands may be"
                                " refused as expired", time.time() - server_time)
                backoff.reset()
                await asyncio.sleep(self.config.heartbeat_s)
            except (Unreachable, Garbled) as exc:
                await self._failed("heartbeat", exc, backoff)
            except Exception:
                log.exception("central heartbeat: failed; will retry")
                await asyncio.sleep(backoff.next_delay())

    # -- one call ----------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, timeout_s: float,
                    params: dict[str, str] | None = None, json_body: Any = None) -> Any:
        data, headers = _request_body(json_body)
        try:
            try:
                return await self._call_once(method, path, timeout_s, params, data, headers)
            except ServerDisconnectedError:
                # a kept-alive connection that central or a NAT closed while it was idle: once
                # more on a new one (every call is idempotent) before it counts as an outage
                return await self._call_once(method, path, timeout_s, params, data, headers)
        except ClientConnectorCertificateError as exc:
            raise Unreachable(f"central's TLS certificate was refused ({exc.certificate_error});"
                              " check [central] ca_file") from None
        except (ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from None

    async def _call_once(self, method: str, path: str, timeout_s: float,
                         params: dict[str, str] | None, data: bytes | None,
                         headers: dict[str, str] | None) -> Any:
        assert self._session is not None
        async with self._session.request(
                method, self.base + path, params=params, data=data, headers=headers,
                timeout=ClientTimeout(total=timeout_s)) as answer:
            raw = await answer.content.read(MAX_ANSWER_BYTES + 1)
            if answer.status >= 500 or answer.status in (408, 429):
                raise Unreachable(f"{method} {path}: HTTP {answer.status}")
            if answer.status in (401, 403):
                raise Rejected(f"central refused this locker's token (HTTP {answer.status}"
                               f" on {path}): check {self.config.token_file}")
            if answer.status != 200:
                raise Garbled(f"{method} {path}: HTTP {answer.status}:"
                              f" {raw[:200].decode('utf-8', 'replace')}")
        if len(raw) > MAX_ANSWER_BYTES:
            raise Garbled(f"{method} {path}: answer over {MAX_ANSWER_BYTES} bytes")
        try:
            return json.loads(raw)
        except ValueError:
            raise Garbled(f"{method} {path}: answer is not JSON: {raw[:60]!r}") from None
        except RecursionError:
            raise Garbled(f"{method} {path}: answer nested too deeply") from None

    def _good_answer(self) -> None:
        store, now = self.locker.store, self.locker.clock.now()
        self.last_answer = now
        reachable(store, now)  # writes only when an outage was counted
        if self.protocol_alarm:
            with store.transaction(now) as tx:
                tx.clear_alarm("central_protocol", "central", "central's answers are good again")
            self.protocol_alarm = False

    async def _failed(self, call: str, exc: Exception, backoff: Backoff) -> None:
        self.stats["failures"] += 1
        store, now = self.locker.store, self.locker.clock.now()
        try:
            if isinstance(exc, Unreachable):
                log.warning("central %s: %s", call, exc)
                unreachable(store, self.locker.config, now, self.last_answer, str(exc))
            else:
                log.error("central %s: bad answer: %s", call, exc)
            if (not isinstance(exc, Unreachable) or isinstance(exc, Rejected)) and (
                    not self.protocol_alarm):
                with store.transaction(now) as tx:
                    tx.raise_alarm("central_protocol", "central",
                                   f"central's {call} answer was refused: {exc}"[:500])
                self.protocol_alarm = True
        except Exception:  # a full disk must not end the loop
            log.exception("recording a central failure failed")
        await asyncio.sleep(backoff.next_delay())


def _request_body(json_body: Any) -> tuple[bytes | None, dict[str, str] | None]:
    """The body as compact JSON, gzipped when that pays (docs/central.md allows it)."""
    if json_body is None:
        return None, None
    data = json.dumps(json_body, separators=(",", ":")).encode()
    if len(data) < GZIP_OVER_BYTES:
        return data, {"Content-Type": "application/json"}
    return (gzip.compress(data, mtime=0),
            {"Content-Type": "application/json", "Content-Encoding": "gzip"})


def _acked(answer: Any) -> list[str]:
    if (not isinstance(answer, dict) or set(answer) != {"acked"}
            or not isinstance(answer["acked"], list)
            or not all(isinstance(i, str) for i in answer["acked"])):
        raise Garbled("events: the answer must be exactly {\"acked\": [event ids]}")
    return answer["acked"]


def _heartbeat_answer(answer: Any) -> tuple[float, int | None]:
    """(server_time, events_seq or None)."""
    if (not isinstance(answer, dict) or "server_time" not in answer
            or not set(answer) <= {"server_time", "events_seq"}
            or isinstance(answer["server_time"], bool)
            or not isinstance(answer["server_time"], int | float)):
        raise Garbled("heartbeat: the answer must be {\"server_time\": number} and at most"
                      " \"events_seq\"")
    seq = answer.get("events_seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)
                            or not 0 <= seq <= 2**53):
        raise Garbled("heartbeat: events_seq must be an integer from 0 to 2^53")
    try:
        return float(answer["server_time"]), seq
    except OverflowError:
        raise Garbled("heartbeat: server_time out of range") from None


CENTRAL = web.AppKey("central", CentralLink)


def add_central_link(app: web.Application, locker: Locker) -> None:
    """Sync with central for as long as the app runs, when the config has a [central] table.

    Added after the locker's own cleanup context, so it starts once the doors are reconciled
    and stops before the store closes.
    """
    if locker.config.central is None:
        return
    app[CENTRAL] = central = CentralLink(locker)

    async def link(app: web.Application) -> AsyncIterator[None]:
        await central.start()
        yield
        await central.stop()

    app.cleanup_ctx.append(link)
