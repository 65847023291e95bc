"""Staff logins on the simulated clock: sessions end when idle; codes are single use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyotp
import pytest

from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig
from locker.domain.daemon import Locker
from locker.domain.staff import LoginRefused, NotAllowed, create_secret, load_secret
from tests.support.doubles import FakeDriver


@pytest.fixture
async def locker(config: LockerConfig) -> AsyncIterator[Locker]:
    for member in config.staff.members:
        create_secret(config.staff_secret_file(member.id))
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), SimClock())
    await locker.start()
    yield locker
    await locker.stop()


def code(locker: Locker, staff_id: str) -> str:
    secret = load_secret(locker.config.staff_secret_file(staff_id))
    return pyotp.TOTP(secret).at(locker.clock.now())


async def test_a_session_ends_after_the_idle_time(locker: Locker) -> None:
    session = locker.staff.login("courier-1", code(locker, "courier-1"), "front")
    assert session.member.role == "courier"
    await locker.clock.advance(59)  # type: ignore[attr-defined]
    assert locker.staff.session(session.token) is session  # touched: the idle time restarts
    await locker.clock.advance(61)  # type: ignore[attr-defined]
    with pytest.raises(NotAllowed, match="ended"):
        locker.staff.session(session.token)


async def test_a_code_is_single_use_and_the_next_step_works(locker: Locker) -> None:
    first = code(locker, "courier-1")
    locker.staff.login("courier-1", first, "front")
    with pytest.raises(LoginRefused) as refused:
        locker.staff.login("courier-1", first, "front")
    assert refused.value.reason == "replayed"
    await locker.clock.advance(30)  # type: ignore[attr-defined]
    locker.staff.login("courier-1", code(locker, "courier-1"), "front")


async def test_roles_and_unknown_staff(locker: Locker) -> None:
    session = locker.staff.login("courier-1", code(locker, "courier-1"), "front")
    with pytest.raises(NotAllowed) as refused:
        locker.staff.session(session.token, technician=True)
    assert refused.value.reason == "role"
    with pytest.raises(LoginRefused) as unknown:
        locker.staff.login("intruder", "123456", "front")
    assert unknown.value.reason == "wrong_code"
    events = locker.store.events()
    assert not any("intruder" in str(e.payload) for e in events)  # a typed id is not echoed
