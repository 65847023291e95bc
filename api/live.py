"""Committed events, fanned out to the ops pages that are watching (server-sent events).

Each subscriber gets a bounded queue: a page that stops reading loses its oldest lines, never
slows the daemon. Only what the store tells its listeners after a commit goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

QUEUE_SIZE = 256
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies and the browser from giving up
RECENT = 100  # what the ops page shows on opening: the outbox empties once central has it


class LiveFeed:
    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[str]] = set()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)

    def publish(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        for kind, fields in events:
            event = {"kind": kind, "at": time.time(), **fields}
            self.recent.append(event)
            line = json.dumps(event, default=str)
            for queue in self.subscribers:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(line)

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.subscribers.discard(queue)


async def stream(request: web.Request, feed: LiveFeed, first: Callable[[], bytes],
                 render: Callable[[str], bytes | None],
                 watching: set[asyncio.Queue[str]] | None = None) -> web.StreamResponse:
    """Server-sent events until the page goes: `first()` once subscribed (so no event falls
    between it and the feed), then `render(line)` of each committed event (None: nothing to
    send), and a comment as heartbeat. `watching`, if given,
    holds the subscription while it lasts (to count the screens)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    queue = feed.subscribe()
    if watching is not None:
        watching.add(queue)
    try:
        await response.write(first())
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    line = await queue.get()
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            out = render(line)
            if out is not None:
                await response.write(out)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        feed.unsubscribe(queue)
        if watching is not None:
            watching.discard(queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
