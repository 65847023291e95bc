"""A simulated week of a busy locker, on the simulated clock, synced with the reference central.

Orders arrive at central all day with an evening rush; couriers come three times a day to load
what arrived and take back what expired; most customers come the same evening, some the next
day, some never; a few mistype their code. Central is the real reference server over HTTP; the
locker is the real daemon (its housekeeping, expiry, retention and outbox bound run on the
simulated clock); the doors are spring doors that customers close after a while.

At the end: memory did not grow from the second day to the last (resident set size), the
database stayed within its bound (finished orders are forgotten after
`store.keep_finished_days`), every order ended collected or reclaimed, and central holds exactly
the events the locker made. Prints its figures; docs/reliability.md records them.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from api.central import add_central_link
from locker.demo import enrol
from locker.domain.clock import SimClock
from locker.domain.config import load_config
from locker.domain.daemon import Locker
from locker.domain.errors import LockerError
from locker.domain.model import DoorSense
from locker.domain.ports import HardwareListener
from simulator.central import start_central
from tests.support.sync import LOG_EVERY_EVENT, prepare_log

DAYS = float(os.environ.get("SOAK_DAYS", "7"))
ARRIVALS_END_DAY = DAYS - 2  # then two days for the last orders to be collected or taken back
ORDERS_PER_DAY = 110
# orders placed per hour of the day (relative), with the evening rush
HOURLY = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.4, 1.4, 1.5, 1.8, 2.0, 1.6, 1.4, 1.4, 1.8,
          3.0, 3.6, 3.2, 2.2, 1.2, 0.6, 0.3]
COURIER_HOURS = (7, 12, 16)
WINDOW_HOURS = 30


def soak_locker_config(url: str) -> str:
    zones = ("ambient", "fresh", "frozen")
    boards = "".join(f"[[bus.boards]]\naddress = {b}\nchannels = 24\n" for b in range(1, 9))
    compartments = "\n".join(
        f'  {{ id = "B{b}C{ch:02d}", zone = "{zones[(b * 24 + ch) % 3]}",'
        f' size = "{"SML"[(ch // 3) % 3]}", board = {b}, channel = {ch} }},'
        for b in range(1, 9) for ch in range(1, 25))
    return f"""
[locker]
id = "soak-locker"
data_dir = "data"

[bus]
port = "/dev/null"
protocol = "generic"
baud = 9600
{boards}
[codes]
pickup_window_hours = {WINDOW_HOURS}

[store]
keep_finished_days = 1

[central]
url = "{url}"
allow_insecure = true
heartbeat_s = 3600
backoff_min_s = 0.05
backoff_max_s = 0.5
outbox_max_events = 20000

[layout]
compartments = [
{compartments}
]
"""


class SpringDoors:
    """Lock boards as the domain sees them: a pulsed lock's door springs open a second later
    and the customer shuts it after `dwell_s`, on the simulated clock."""

    def __init__(self, clock: SimClock, compartments: list[str], dwell_s: float = 20.0) -> None:
        self.clock, self.dwell_s = clock, dwell_s
        self.doors = dict.fromkeys(compartments, DoorSense.CLOSED)
        self.listener: HardwareListener | None = None
        self.unlocks = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, listener: HardwareListener) -> None:
        self.listener = listener

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def unlock(self, compartment_id: str) -> None:
        self.unlocks += 1
        if self.doors[compartment_id] is DoorSense.CLOSED:
            task = asyncio.create_task(self._swing(compartment_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def read_doors(self) -> Mapping[str, DoorSense]:
        return dict(self.doors)

    def reachable(self, compartment_id: str) -> bool:
        return compartment_id in self.doors

    async def _swing(self, cid: str) -> None:
        assert self.listener is not None
        await self.clock.sleep(1.0)
        self.doors[cid] = DoorSense.OPEN
        self.listener.door_sensed(cid, DoorSense.OPEN)
        await self.clock.sleep(self.dwell_s)
        self.doors[cid] = DoorSense.CLOSED
        self.listener.door_sensed(cid, DoorSense.CLOSED)


async def test_a_simulated_week_keeps_every_promise(tmp_path: Path) -> None:
    rng = random.Random(2026)
    central = await start_central(tmp_path / "central", admin_token="admin-" + "s" * 24)
    path = tmp_path / "locker.toml"
    path.write_text(soak_locker_config(central.api_url))
    config = load_config(path)
    session = ClientSession()
    await enrol(session, central, config)
    prepare_log(config.database)
    clock = SimClock(start=1_800_000_000.0 - 1_800_000_000.0 % 86400)  # midnight UTC
    doors = SpringDoors(clock, [c.id for c in config.compartments])
    locker = Locker(config, doors, clock)
    from aiohttp import web

    app = web.Application()
    add_central_link(app, locker)
    runner = web.AppRunner(app)
    await locker.start()
    await runner.setup()  # starts the link to central
    tally: Counter[str] = Counter()
    codes: dict[str, str] = {}
    visits: list[tuple[float, str]] = []  # (when, order id) a customer comes
    heap: list[int] = []
    sizes: list[int] = []
    started = time.monotonic()
    try:
        minutes = int(DAYS * 24 * 60)
        for minute in range(minutes):
            await clock.advance(60)
            now = clock.now()
            day, hour = divmod(minute // 60, 24)
            if minute % 60 == 0:
                await every_hour(locker, central, session, rng, tally, codes, visits, day, hour)
            for when, order_id in [v for v in visits if v[0] <= now]:
                visits.remove((when, order_id))
                await customer(locker, rng, tally, order_id, codes[order_id])
            if minute % (24 * 60) == 24 * 60 - 1:
                await asyncio.sleep(0.2)  # let the link catch up in real time
                if day >= 1:  # from the second day: the first one warms caches up
                    heap.append(rss_bytes())
                sizes.append(database_bytes(config.database))
        # the week is over: every order has ended, and central has every event
        async with asyncio.timeout(30):
            while locker.store.events(limit=1):
                await asyncio.sleep(0.05)
        states = Counter(r["state"] for r in locker.store.read().all(
            "SELECT state FROM orders"))
        async with session.get(f"{central.url}/admin/lockers/soak-locker/events",
                               headers={"X-Admin-Token": central.admin_token}) as answer:
            received = [e["id"] for e in (await answer.json())["events"]]
        made = [r["id"] for r in locker.store.read().all("SELECT id FROM test_emitted")]
    finally:
        await runner.cleanup()
        await locker.stop()
        await session.close()
        await central.stop()
    growth = heap[-1] - heap[0]
    print(f"\nsoak: {DAYS:g} simulated days in {time.monotonic() - started:.0f} s;"
          f" {dict(tally)}; orders left in the store by state {dict(states)};"
          f" {len(made)} events made, {len(received)} at central;"
          f" RSS (this process: locker, central and test) day 2 -> last: {heap[0] / 1e6:.1f}"
          f" -> {heap[-1] / 1e6:.1f} MB;"
          f" database by day (KiB): {[s // 1024 for s in sizes]}; {doors.unlocks} unlocks")
    assert sorted(received) == sorted(made)  # every event reached central, once
    assert set(states) <= {"collected", "reclaimed"}, states  # every order ended
    assert tally["placed"] == tally["collected"] + tally["reclaimed"]
    assert tally["reclaimed"] >= tally["forgotten"]  # the forgotten, and any customer too late
    assert tally["collected"] > 0.7 * ARRIVALS_END_DAY * ORDERS_PER_DAY
    assert tally["reclaimed"] > 0
    assert growth < 4_000_000, f"memory grew by {growth} bytes: {heap}"
    # retention keeps the store at a steady size: the last days are not bigger than day 3
    assert max(sizes[3:]) < 1.5 * sizes[2] + 512 * 1024, sizes


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def database_bytes(database: Path) -> int:
    return sum(p.stat().st_size for p in (database, Path(f"{database}-wal")) if p.exists())


async def every_hour(locker: Locker, central: Any, session: ClientSession, rng: random.Random,
                     tally: Counter[str], codes: dict[str, str],
                     visits: list[tuple[float, str]], day: int, hour: int) -> None:
    """Orders placed at central this hour; a courier's visit at COURIER_HOURS."""
    if day + hour / 24 < ARRIVALS_END_DAY:
        expected = ORDERS_PER_DAY * HOURLY[hour] / sum(HOURLY)
        for _ in range(int(expected) + (rng.random() < expected % 1)):
            order_id = f"S{tally['placed']:05d}"
            bags = [{"zone": rng.choice(("ambient", "fresh", "frozen")),
                     "size": rng.choice("SSM")} for _ in range(rng.choice((1, 1, 2)))]
            async with session.post(
                    f"{central.url}/admin/lockers/soak-locker/orders",
                    json={"id": order_id, "window_hours": WINDOW_HOURS, "bags": bags},
                    headers={"X-Admin-Token": central.admin_token}) as answer:
                codes[order_id] = (await answer.json())["code"]
            tally["placed"] += 1
    if hour not in COURIER_HOURS:
        return
    await arrived(locker, tally["placed"])
    listing = locker.courier.orders()
    for order in listing["to_reclaim"]:
        try:
            await locker.courier.reclaim("courier:soak", order["order"])
            tally["reclaimed"] += 1
        except LockerError:
            tally["reclaim_refused"] += 1
    for order in listing["to_load"]:
        try:
            await locker.courier.load("courier:soak", order["order"])
        except LockerError:
            tally["no_room"] += 1  # waits for the next visit
            continue
        tally["loaded"] += 1
        now = locker.clock.now()
        roll = rng.random()
        if roll < 0.65:  # this evening (or the next, for a late load)
            evening = now - now % 86400 + rng.uniform(17, 21) * 3600
            visits.append((evening if evening > now else evening + 86400, order["order"]))
        elif roll < 0.92:  # some time before the window ends
            visits.append((now + rng.uniform(2, WINDOW_HOURS - 2) * 3600, order["order"]))
        else:
            tally["forgotten"] += 1  # never comes: expires, and a courier takes it back


async def arrived(locker: Locker, placed: int) -> None:
    """Wait (in real time) for the feed to bring every order central took."""
    async with asyncio.timeout(10):
        while True:
            row = locker.store.read().one("SELECT COUNT(*) AS n FROM orders")
            forgotten = locker.store.meta("sequence.pruned_up_to")
            if row is not None and row["n"] + int(forgotten or 0) >= placed:
                return
            await asyncio.sleep(0.01)


async def customer(locker: Locker, rng: random.Random, tally: Counter[str], order_id: str,
                   code: str) -> None:
    if rng.random() < 0.03:  # a typo first
        wrong = f"{(int(code) + 1) % 10**len(code):0{len(code)}d}"
        try:
            await locker.pickup.collect(wrong, "front")
        except LockerError:
            tally["typos"] += 1
    try:
        await locker.pickup.collect(code, "front")
        tally["collected"] += 1
    except LockerError as exc:
        tally[f"refused_{type(exc).__name__}"] += 1


__all__ = ["LOG_EVERY_EVENT"]
