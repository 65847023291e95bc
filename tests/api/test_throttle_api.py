"""A guesser at the screen over real HTTP, then a customer: the locker slows down, never locks.

The locker runs on the real clock here, so every wait is really waited: `max_delay_s` is 2 s
(first delay 0.5 s) to keep the test short. That the default 30 s holds for any schedule of
guesses is tests/locker/test_throttle.py's property test; this one holds the whole path
(HTTP, the 429 and its Retry-After, the store, the right code opening once the wait is over).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from locker.domain.codes import create_keys, create_private_file
from locker.domain.config import load_config
from locker.domain.daemon import Locker
from locker.domain.orders import add_ready_order, parse_bag
from locker.domain.staff import create_secret, load_secret
from tests.support.codes import code_no
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver

OPS = {"X-Ops-Token": "throttle-test-ops-token-0123456789"}
MAX_DELAY_S = 2.0
FAST_THROTTLE = SMALL_CONFIG.replace("first_delay_s = 10", "first_delay_s = 0.5").replace(
    "max_delay_s = 30", f"max_delay_s = {MAX_DELAY_S:g}")


def pickup_codes(locker: Locker, order_id: str) -> tuple[str, list[str]]:
    """A ready order's code, and well-formed wrong ones: the one place here that knows the
    format (with a check digit, the wrong ones must carry a right one, or they cost nothing)."""
    code = add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(),
                           order_id, [parse_bag("fresh:S")]).code
    wrong = [code_no((int(code[:10]) + n) % 10**10) for n in range(1, 40)]
    return code, wrong


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Locker, FakeDriver]]:
    config = load_config(write_config(tmp_path, FAST_THROTTLE))
    create_keys(config)
    create_secret(config.staff_secret_file("courier-1"))
    create_private_file(config.ops_token_file, OPS["X-Ops-Token"])
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver)  # the real clock
    async with TestClient(TestServer(create_app(locker))) as http:
        yield http, locker, driver


async def test_after_a_guessers_burst_a_right_code_opens_within_max_delay_s(client) -> None:
    http, locker, driver = client
    code, wrong = pickup_codes(locker, "o1")
    statuses = []
    for n, guess in enumerate(wrong[:20]):  # as fast as HTTP goes, a new screen id each time
        response = await http.post("/api/pickup", json={"code": guess, "screen": f"s{n}"})
        statuses.append(response.status)
    stopped = time.monotonic()
    assert statuses[:4] == [403, 403, 403, 429]  # two free, then 0.5 s: the rest are too early

    answer = await http.post("/api/pickup", json={"code": code, "screen": "front"})
    body = await answer.json()
    assert answer.status == 429 and body["error"] == "throttled"
    assert 0 < body["retry_after_s"] <= MAX_DELAY_S
    assert int(answer.headers["Retry-After"]) == body["retry_after_s"]
    assert f"kept and will be tried in {body['retry_after_s']} s" in body["message"]
    assert driver.unlocked == []
    await asyncio.sleep(body["retry_after_s"])  # as the kiosk does: the same code again
    answer = await http.post("/api/pickup", json={"code": code, "screen": "front"})
    assert answer.status == 200, await answer.text()
    assert time.monotonic() - stopped <= MAX_DELAY_S + 1.0  # rounded up to whole seconds
    assert len(driver.unlocked) == 1


async def test_a_guesser_who_keeps_going_is_slowed_to_the_cap_and_alarms(client) -> None:
    http, locker, _ = client
    _code, wrong = pickup_codes(locker, "o1")
    judged: list[float] = []
    started = time.monotonic()
    for guess in wrong[:7]:
        while True:  # hammering while it waits gains nothing
            response = await http.post("/api/pickup", json={"code": guess})
            if response.status != 429:
                break
            await asyncio.sleep(0.05)
        assert response.status == 403
        judged.append(time.monotonic() - started)
    gaps = [b - a for a, b in itertools.pairwise(judged)]
    assert max(gaps) <= MAX_DELAY_S + 0.5  # never more than the cap (plus our 50 ms polls)
    assert gaps[-1] >= MAX_DELAY_S - 0.1  # and the cap once the count is up
    assert "alarm.code_guessing" in [e.kind for e in locker.store.events()]  # alarm_failures = 5


async def test_a_courier_logs_in_while_codes_are_guessed(client) -> None:
    http, locker, _ = client
    _code, wrong = pickup_codes(locker, "o1")
    for guess in wrong[:5]:
        await http.post("/api/pickup", json={"code": guess})
    assert (await http.post("/api/pickup", json={"code": wrong[6]})).status == 429
    secret = load_secret(locker.config.staff_secret_file("courier-1"))
    login = await http.post("/api/staff/login", json={
        "staff": "courier-1", "code": pyotp.TOTP(secret).at(time.time())})
    assert login.status == 200, await login.text()


async def test_ops_see_the_throttle_and_clear_it_saying_who_and_why(client) -> None:
    http, locker, _ = client
    code, wrong = pickup_codes(locker, "o1")
    for guess in wrong[:4]:
        await http.post("/api/pickup", json={"code": guess})
    assert (await http.get("/api/ops/throttle")).status == 401
    seen = await (await http.get("/api/ops/throttle", headers=OPS)).json()
    assert 0 < seen["scopes"]["pickup"]["wait_s"] <= MAX_DELAY_S
    assert seen["scopes"]["pickup"]["recent_wrong_codes"] == pytest.approx(3, abs=0.01)
    assert seen["scopes"]["login"]["wait_s"] == 0
    refused = await http.post("/api/ops/throttle/clear", json={"by": "ana"}, headers=OPS)
    assert (refused.status, (await refused.json())["field"]) == (400, "reason")
    cleared = await http.post("/api/ops/throttle/clear", headers=OPS, json={
        "by": "ana", "reason": "a customer on the phone", "scope": "pickup"})
    assert cleared.status == 200
    assert (await cleared.json())["scopes"]["pickup"]["wait_s"] == 0
    [event] = [e for e in locker.store.events() if e.kind == "security.throttle_cleared"]
    assert event.payload["by"] == "ops:ana" and event.payload["reason"] == "a customer on the phone"
    assert (await http.post("/api/pickup", json={"code": code})).status == 200
