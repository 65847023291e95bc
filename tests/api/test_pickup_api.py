"""The touchscreen's pickup call over HTTP: good codes, and every kind of bad input answered 4xx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig
from locker.domain.daemon import Locker
from locker.domain.orders import add_ready_order, parse_bag
from tests.support.doubles import FakeDriver


@pytest.fixture
async def client(config: LockerConfig) -> AsyncIterator[tuple[TestClient, Locker, FakeDriver]]:
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver, SimClock())
    async with TestClient(TestServer(create_app(locker))) as http:
        yield http, locker, driver


def snapshot(locker: Locker) -> tuple[object, ...]:
    read = locker.store.read()
    return (read.all("SELECT * FROM orders"), read.all("SELECT * FROM compartments"),
            read.all("SELECT * FROM authorisations"), read.all("SELECT * FROM slowdown"),
            read.all("SELECT kind FROM outbox"))


async def test_a_good_code_answers_which_doors_opened(client) -> None:
    http, locker, driver = client
    added = add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(), "o1",
                            [parse_bag("fresh:S"), parse_bag("frozen:M")])
    response = await http.post("/api/pickup", json={"code": added.code, "screen": "front"})
    assert response.status == 200
    body = await response.json()
    assert body["order"] == "o1"
    assert sorted(d["zone"] for d in body["opened"]) == ["fresh", "frozen"]
    assert all("level" in d["location"] for d in body["opened"])
    assert sorted(driver.unlocked) == sorted(d["compartment"] for d in body["opened"])


async def test_a_wrong_code_is_403_and_then_429_with_retry_after(client) -> None:
    http, locker, _ = client
    add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(), "o1",
                    [parse_bag("fresh:S")])
    statuses = []
    for _ in range(4):
        response = await http.post("/api/pickup", json={"code": "99999999992"})
        statuses.append(response.status)
    assert statuses == [403, 403, 403, 429]
    assert int(response.headers["Retry-After"]) > 0
    assert (await response.json())["error"] == "throttled"


@pytest.mark.parametrize(
    ("body", "headers", "status", "error", "field"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "bad_request", "body"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "bad_request", "body"),
        (b'{"code": 12345678}', {"Content-Type": "application/json"}, 400, "bad_request", "code"),
        (b'{"code": "12345678906", "open_all": true}', {"Content-Type": "application/json"}, 400,
         "bad_request", "open_all"),
        (b"{}", {"Content-Type": "application/json"}, 400, "bad_request", "code"),
        (b'{"code": "1234"}', {"Content-Type": "application/json"}, 400, "bad_code_format",
         "code"),
        (b'{"code": "12345678906", "screen": "../../etc"}', {"Content-Type": "application/json"},
         400, "bad_screen", None),
        (b"code=12345678", {"Content-Type": "application/x-www-form-urlencoded"}, 400,
         "bad_request", "body"),
        (b'{"code": "' + b"1" * 10_000 + b'"}', {"Content-Type": "application/json"}, 413,
         "too_large", None),
        (b"\xff\xfe\x00", {"Content-Type": "application/json"}, 400, "bad_request", "body"),
    ],
)
async def test_bad_input_is_4xx_with_a_clear_message_and_changes_nothing(
        client, body: bytes, headers: dict[str, str], status: int, error: str,
        field: str | None) -> None:
    http, locker, driver = client
    add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(), "o1",
                    [parse_bag("fresh:S")])
    before = snapshot(locker)
    response = await http.post("/api/pickup", data=body, headers=headers)
    assert response.status == status
    answer = await response.json()
    assert answer["error"] == error and answer["message"]
    if field is not None:
        assert answer["field"] == field
    assert snapshot(locker) == before
    assert driver.unlocked == []


async def test_health_says_ready(client) -> None:
    http, _locker, _ = client
    response = await http.get("/api/health")
    assert response.status == 200
    assert (await response.json())["ready"] is True


async def test_a_deeply_nested_body_is_a_400(client) -> None:
    http, _, _ = client
    body = b"[" * 2000 + b"]" * 2000
    response = await http.post("/api/pickup", data=body,
                               headers={"Content-Type": "application/json"})
    assert response.status == 400


async def test_a_typo_is_answered_check_the_code_at_once_and_costs_no_guess(client) -> None:
    http, locker, driver = client
    added = add_ready_order(locker.store, locker.config, locker.codes, locker.clock.now(), "o1",
                            [parse_bag("fresh:S")])
    code = added.code
    swapped = code[:4] + code[5] + code[4] + code[6:] if code[4] != code[5] else None
    typos = [code[:3] + str((int(code[3]) + 1) % 10) + code[4:], *([swapped] if swapped else [])]
    before = snapshot(locker)
    for _ in range(20):  # far more than the throttle lets through as guesses
        for typo in typos:
            response = await http.post("/api/pickup", json={"code": typo, "screen": "front"})
            assert response.status == 400
            body = await response.json()
            assert (body["error"], body["field"]) == ("check_the_code", "code")
            assert "check the code" in body["message"]
    assert snapshot(locker) == before and not driver.unlocked
    response = await http.post("/api/pickup", json={"code": f"{code[:3]} {code[3:7]} {code[7:]}"})
    assert response.status == 200  # the code as printed, in its groups
