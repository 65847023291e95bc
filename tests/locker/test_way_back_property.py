"""Random days of faults on the real domain: every order finds its way back.

Hypothesis plays customers, doors, boards and power: codes typed, doors opened (only when
their latch was released), forced, jammed, boards offline and back, acknowledgements lost,
restarts, time. Then the faults heal (boards answer, jams clear, doors shut, time passes) and
every order must rest in a harbour: ready (and its code opens what it still holds), collected,
or on a courier's list. Throughout, no lock is pulsed more often than authorisations exist for it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from locker.domain.clock import SimClock
from locker.domain.codes import create_keys
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.errors import BoardOffline, BoardTimeout, LockerError
from locker.domain.lifecycle.order import cancel
from locker.domain.lifecycle.table import HARBOURS
from locker.domain.model import DoorSense
from locker.domain.orders import add_ready_order, parse_bag
from locker.domain.pickup import PickupResult
from locker.domain.ports import HardwareListener
from tests.support.configs import write_config

COMPARTMENTS = ("A1", "A2", "F1", "F2", "Z1", "Z2")
ZONES = {"A": "ambient", "F": "fresh", "Z": "frozen"}


class Cabinet:
    """The hardware, which outlives the daemon: latches, doors, jams, boards, lost answers."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.doors = dict.fromkeys(COMPARTMENTS, DoorSense.CLOSED)
        self.released: dict[str, float] = {}
        self.jammed: set[str] = set()
        self.offline: set[str] = set()
        self.lose_next_answer = False
        self.unlocks: Counter[str] = Counter()

    def driver(self) -> Driver:
        return Driver(self)


class Driver:
    """A LockDriver over the cabinet (one per life of the daemon)."""

    def __init__(self, cabinet: Cabinet) -> None:
        self.cabinet = cabinet
        self.listener: HardwareListener | None = None

    async def start(self, listener: HardwareListener) -> None:
        self.listener = listener

    async def stop(self) -> None:
        self.listener = None

    async def unlock(self, compartment_id: str) -> None:
        cabinet = self.cabinet
        if compartment_id in cabinet.offline:
            raise BoardOffline(f"the board of {compartment_id} is offline")
        cabinet.unlocks[compartment_id] += 1
        if compartment_id not in cabinet.jammed:
            cabinet.released[compartment_id] = cabinet.clock.monotonic()
        if cabinet.lose_next_answer:
            cabinet.lose_next_answer = False
            raise BoardTimeout("the unlock's answer was lost")

    async def read_doors(self) -> Mapping[str, DoorSense]:
        return dict(self.cabinet.doors)

    def reachable(self, compartment_id: str) -> bool:
        return compartment_id not in self.cabinet.offline

    def sense(self, compartment_id: str, sense: DoorSense) -> None:
        self.cabinet.doors[compartment_id] = sense
        if self.listener is not None:
            self.listener.door_sensed(compartment_id, sense)


ACTIONS = st.one_of(
    st.tuples(st.just("order"), st.sampled_from(list(ZONES.values()))),
    st.tuples(st.just("type"), st.integers(0, 7)),
    st.tuples(st.just("cancel"), st.integers(0, 7)),  # central cancels, whatever the state
    st.tuples(st.sampled_from(["open", "close", "force", "jam", "unjam", "offline", "online"]),
              st.sampled_from(COMPARTMENTS)),
    st.tuples(st.just("lose_answer"), st.just(0)),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 1, 3, 20])),
    st.tuples(st.just("restart"), st.just(0)),
)


class Day:
    def __init__(self, config: LockerConfig) -> None:
        self.config = config
        self.clock = SimClock()
        self.cabinet = Cabinet(self.clock)
        self.codes: list[tuple[str, str]] = []  # (order, code)
        self.locker: Locker | None = None
        self.driver: Driver | None = None

    async def boot(self) -> None:
        self.driver = self.cabinet.driver()
        self.locker = Locker(self.config, self.driver, self.clock)  # type: ignore[arg-type]
        await self.locker.start()

    async def type(self, code: str) -> PickupResult | None:
        assert self.locker is not None
        task = asyncio.create_task(self.locker.pickup.collect(code))
        while not task.done():  # the answer may wait for a door: time moves meanwhile
            await asyncio.sleep(0)
            await self.clock.advance(0.1)
        try:
            return task.result()
        except LockerError:
            return None

    async def act(self, action: str, arg: object) -> None:
        locker, driver, cabinet = self.locker, self.driver, self.cabinet
        assert locker is not None and driver is not None
        if action == "order":
            number = len(self.codes)
            try:
                added = add_ready_order(locker.store, self.config, locker.codes,
                                        self.clock.now(), f"o{number}", [parse_bag(f"{arg}:S")])
            except LockerError:
                return  # no room
            self.codes.append((added.order_id, added.code))
        elif action == "type" and self.codes:
            assert isinstance(arg, int)
            await self.type(self.codes[arg % len(self.codes)][1])
        elif action == "cancel" and self.codes:
            assert isinstance(arg, int)
            order_id = self.codes[arg % len(self.codes)][0]
            try:
                with locker.store.transaction(self.clock.now()) as tx:
                    cancel(tx, order_id, "central", "cancelled by central")
            except LockerError:
                pass  # too late to cancel: collected, reclaimed, cancelled already
        elif action == "open":
            assert isinstance(arg, str)
            released = cabinet.released.get(arg)
            if released is not None and self.clock.monotonic() - released < 2.0:
                driver.sense(arg, DoorSense.OPEN)  # a person pulls a released door
        elif action == "force":
            assert isinstance(arg, str)
            driver.sense(arg, DoorSense.OPEN)
        elif action == "close":
            assert isinstance(arg, str)
            driver.sense(arg, DoorSense.CLOSED)
        elif action == "jam":
            cabinet.jammed.add(str(arg))
        elif action == "unjam":
            cabinet.jammed.discard(str(arg))
        elif action == "offline":
            cabinet.offline.add(str(arg))
        elif action == "online":
            cabinet.offline.discard(str(arg))
        elif action == "lose_answer":
            cabinet.lose_next_answer = True
        elif action == "tick":
            assert isinstance(arg, int | float)
            await self.clock.advance(float(arg))
        elif action == "restart":
            await locker.stop()  # a power cut, as far as the store can tell
            await self.boot()

    async def heal_and_check(self) -> None:
        cabinet = self.cabinet
        cabinet.offline.clear()
        cabinet.jammed.clear()
        cabinet.lose_next_answer = False
        assert self.driver is not None and self.locker is not None
        for cid in COMPARTMENTS:
            self.driver.sense(cid, DoorSense.CLOSED)
        await self.clock.advance(400)  # past every timeout and the late-opening grace
        states = self.states()
        assert all(state in HARBOURS for state in states.values()), states
        for order_id, code in self.codes:
            if states[order_id] != "ready":
                continue
            held = [r["compartment_id"] for r in self.locker.store.read().all(
                "SELECT compartment_id FROM order_compartments WHERE order_id = ?"
                " AND released_at IS NULL", (order_id,))]
            result = await self.type(code)
            assert result is not None and result.failed == [], (order_id, states[order_id])
            assert sorted(d.compartment_id for d in result.opened) == sorted(held)
            for cid in held:
                self.driver.sense(cid, DoorSense.OPEN)
                self.driver.sense(cid, DoorSense.CLOSED)
            assert self.states()[order_id] == "collected"
        self.check_pulses()
        await self.locker.stop()

    def states(self) -> dict[str, str]:
        assert self.locker is not None
        return {r["id"]: r["state"] for r in self.locker.store.read().all(
            "SELECT id, state FROM orders")}

    def check_pulses(self) -> None:
        assert self.locker is not None
        authorised = Counter(r["compartment_id"] for r in self.locker.store.read().all(
            "SELECT compartment_id FROM authorisations"))
        for cid, pulses in self.cabinet.unlocks.items():
            assert pulses <= authorised[cid], f"{cid}: {pulses} pulses, {authorised[cid]} auths"


@settings(max_examples=int(os.environ.get("WAY_BACK_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(ACTIONS, min_size=5, max_size=40))
def test_after_any_faults_every_order_rests_in_a_harbour(actions: list[tuple[str, object]]
                                                         ) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write_config(Path(folder))
        config = load_config(path)
        create_keys(config)

        async def day() -> None:
            run = Day(config)
            await run.boot()
            for action, arg in actions:
                await run.act(action, arg)
                run.check_pulses()
            await run.heal_and_check()

        asyncio.run(day())
