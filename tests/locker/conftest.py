"""The domain's usual rig: a started Locker on a simulated clock with a stand-in driver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig
from locker.domain.daemon import Locker
from tests.support.doubles import FakeDriver


@pytest.fixture
async def rig(config: LockerConfig) -> AsyncIterator[tuple[Locker, FakeDriver, SimClock]]:
    clock = SimClock()
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver, clock)
    await locker.start()
    yield locker, driver, clock
    await locker.stop()
