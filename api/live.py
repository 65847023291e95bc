"""Committed events, fanned out to the ops pages that are watching (server-sent events).

Each subscriber gets a bounded queue: a page that stops reading loses its oldest lines, never
slows the daemon. Only what the store tells its listeners after a commit goes out.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any

QUEUE_SIZE = 256
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
