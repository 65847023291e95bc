"""GET /metrics on a locker with a stand-in driver: what each family says after a pickup, a wrong
code, a forced door, an alarm; the text parses as Prometheus's; nothing secret gets out."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import prometheus_client
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from api.app import create_app
from api.metrics import ACTOR_KINDS, METRICS, EventCounts, LockerCollector
from locker.domain.alarms import acknowledge
from locker.domain.clock import SimClock
from locker.domain.codes import create_keys
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.errors import BoardOffline, Unavailable
from locker.domain.model import OrderState, Zone
from locker.domain.orders import add_ready_order, parse_bag
from locker.domain.pickup import PickupRefused
from locker.domain.ports import BoardCounts, BusTelemetry
from locker.domain.staff import LoginRefused
from locker.domain.sync import DROPPED, reachable, unreachable
from tests.support.codes import code_no
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class BoardsStandIn(FakeDriver):
    """FakeDriver that also tells bus figures, as the RS485 driver does."""

    def __init__(self, compartments: list[str]) -> None:
        super().__init__(compartments)
        self.boards = {"board 0": BoardCounts(10, 0, 0, True),
                       "board 1": BoardCounts(7, 2, 1, False)}

    def bus_telemetry(self) -> Mapping[str, BoardCounts]:
        return dict(self.boards)


@dataclasses.dataclass
class Rig:
    locker: Locker
    driver: FakeDriver
    clock: SimClock
    http: TestClient

    def add(self, order_id: str, *bags: str) -> tuple[str, list[str]]:
        added = add_ready_order(self.locker.store, self.locker.config, self.locker.codes,
                                self.clock.now(), order_id, [parse_bag(b) for b in bags])
        return added.code, [cid for cid, _ in added.compartments]

    async def text(self) -> str:
        response = await self.http.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()

    async def scrape(self) -> Samples:
        return parse(await self.text())


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("locker_"), family.name
        assert family.documentation, f"{family.name} has no HELP"
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture
async def rig(config: LockerConfig) -> AsyncIterator[Rig]:
    clock = SimClock()
    driver = BoardsStandIn([c.id for c in config.compartments])
    locker = Locker(config, driver, clock)
    async with TestClient(TestServer(create_app(locker))) as http:
        yield Rig(locker, driver, clock, http)


async def test_a_fresh_locker_says_what_it_is_and_every_series_starts_at_zero(rig: Rig) -> None:
    samples = await rig.scrape()
    assert value(samples, "locker_info", version="0.1.0", locker_id="test-locker") == 1
    assert value(samples, "locker_ready") == 1
    for zone in ("ambient", "fresh", "frozen"):
        for kind in ACTOR_KINDS:
            assert value(samples, "locker_door_openings_total", zone=zone, actor_kind=kind) == 0
    assert value(samples, "locker_code_failures_total", kind="pickup") == 0
    assert value(samples, "locker_code_failures_total", kind="staff") == 0
    for state in OrderState:
        assert value(samples, "locker_orders", state=state.value) == 0
    assert value(samples, "locker_outbox_events") >= 1  # locker.started, at least
    assert value(samples, "locker_outbox_dropped_total") == 0
    # no [central]: nothing about a sync that does not exist; no probe: no zone figures
    assert not {n for n in names(samples) if "central" in n or "zone" in n or "compressor" in n}


async def test_a_pickup_counts_one_customer_opening_per_zone(rig: Rig) -> None:
    code, compartments = rig.add("o1", "ambient:M", "fresh:M", "frozen:S")
    await rig.locker.pickup.collect(code)
    samples = await rig.scrape()
    assert value(samples, "locker_orders", state="collecting") == 1
    assert value(samples, "locker_door_openings_total", zone="fresh", actor_kind="customer") == 0
    for cid in compartments:  # the doors open as the customer pulls them
        rig.driver.open(cid)
    samples = await rig.scrape()
    for zone in ("ambient", "fresh", "frozen"):
        assert value(samples, "locker_door_openings_total", zone=zone, actor_kind="customer") == 1
        assert value(samples, "locker_door_openings_total", zone=zone, actor_kind="forced") == 0
    for cid in compartments:
        rig.driver.close(cid)
    samples = await rig.scrape()
    assert value(samples, "locker_orders", state="collected") == 1
    assert value(samples, "locker_orders", state="collecting") == 0
    assert sum(v for (n, _), v in samples.items() if n == "locker_door_openings_total") == 3


async def test_only_a_wrong_code_counts_as_a_pickup_failure(rig: Rig) -> None:
    code, _ = rig.add("o1", "fresh:S")
    wrong = code_no((int(code[:10]) + 1) % 10**10)
    with pytest.raises(PickupRefused):
        await rig.locker.pickup.collect(wrong)
    await rig.locker.pickup.collect(code)
    with pytest.raises(PickupRefused, match="already been used"):
        await rig.locker.pickup.collect(code)  # a used code is not a guess
    text = await rig.text()
    samples = parse(text)
    assert value(samples, "locker_code_failures_total", kind="pickup") == 1
    assert value(samples, "locker_code_failures_total", kind="staff") == 0
    assert code not in text and wrong not in text and "o1" not in text  # no code, no order id


async def test_a_forced_door_counts_as_forced_and_its_alarm_is_open_until_acknowledged(
        rig: Rig) -> None:
    rig.driver.open("A2")  # nobody authorised this
    samples = await rig.scrape()
    assert value(samples, "locker_door_openings_total", zone="ambient", actor_kind="forced") == 1
    assert value(samples, "locker_alarms_open", kind="door_forced", severity="page") == 1
    rig.driver.close("A2")
    samples = await rig.scrape()
    # the door closed, but a security alarm is open until an operator acknowledges it
    assert value(samples, "locker_alarms_open", kind="door_forced", severity="page") == 1
    (alarm,) = rig.locker.store.read().all("SELECT id FROM alarms WHERE kind = 'door_forced'")
    with rig.locker.store.transaction(rig.locker.clock.now()) as tx:
        acknowledge(tx, alarm["id"], "seen on camera", "ops")
    samples = await rig.scrape()
    assert value(samples, "locker_alarms_open", kind="door_forced", severity="page") == 0
    assert value(samples, "locker_door_openings_total", zone="ambient", actor_kind="forced") == 1


async def test_staff_openings_count_by_role_and_a_failed_unlock_raises_an_alarm(rig: Rig) -> None:
    rig.driver.offline.add("Z1")
    result = await rig.locker.courier.open_compartment("technician:tech-1", "F1", "cleaning")
    assert result.opened
    rig.driver.open("F1")
    with pytest.raises(Unavailable):  # its board is offline: refused, nothing authorised
        await rig.locker.courier.open_compartment("ops", "Z1", "check")
    rig.driver.offline.clear()

    async def refused_by_the_board(compartment_id: str) -> None:
        raise BoardOffline("board 1 went offline just now")

    rig.driver.unlock = refused_by_the_board  # type: ignore[method-assign]
    await rig.locker.courier.open_compartment("ops", "Z1", "check")
    samples = await rig.scrape()
    assert value(samples, "locker_door_openings_total", zone="fresh",
                 actor_kind="technician") == 1
    assert value(samples, "locker_alarms_open", kind="unlock_failed", severity="ticket") == 1
    assert not any("tech-1" in dict(labels).values() for _, labels in samples)


async def test_a_staff_login_refusal_event_counts_as_a_staff_failure(config: LockerConfig
                                                                      ) -> None:
    counts = EventCounts(Locker(config, FakeDriver([]), SimClock()))
    counts([("security.login_refused", {"screen": "front", "reason": "wrong_code"}),
            ("security.login_refused", {"screen": "front", "reason": "replayed"}),
            ("security.login_refused", {"screen": "front", "reason": "throttled"}),
            ("security.code_refused", {"screen": "front", "reason": "expired"})])
    assert counts.code_failures == {"pickup": 0, "staff": 2}


async def test_a_wrong_courier_code_counts_as_a_staff_failure(rig: Rig) -> None:
    with pytest.raises(LoginRefused):
        rig.locker.staff.login("courier-1", "000000", "front")
    samples = await rig.scrape()
    assert value(samples, "locker_code_failures_total", kind="staff") == 1


async def test_the_bus_figures_come_from_a_driver_that_tells_them(rig: Rig) -> None:
    samples = await rig.scrape()
    assert value(samples, "locker_bus_transactions_total", board="board 1", outcome="ok") == 7
    assert value(samples, "locker_bus_transactions_total", board="board 1",
                 outcome="timeout") == 2
    assert value(samples, "locker_bus_transactions_total", board="board 1", outcome="failed") == 1
    assert value(samples, "locker_board_online", board="board 0") == 1
    assert value(samples, "locker_board_online", board="board 1") == 0


async def test_a_driver_without_a_bus_gives_no_bus_figures(config: LockerConfig) -> None:
    driver = FakeDriver([c.id for c in config.compartments])
    assert not isinstance(driver, BusTelemetry)
    locker = Locker(config, driver, SimClock())
    async with TestClient(TestServer(create_app(locker))) as http:
        samples = parse(await (await http.get("/metrics")).text())
    assert not {n for n in names(samples) if "bus" in n or "board" in n}
    assert value(samples, "locker_ready") == 1


async def test_the_outbox_depth_age_and_drops(rig: Rig) -> None:
    depth = value(await rig.scrape(), "locker_outbox_events")
    await rig.clock.advance(120)
    rig.add("o1", "fresh:S")
    with rig.locker.store.transaction(rig.clock.now()) as tx:
        tx.set_meta(DROPPED, "7")
    samples = await rig.scrape()
    assert value(samples, "locker_outbox_events") > depth
    assert value(samples, "locker_outbox_oldest_age_seconds") == pytest.approx(120, abs=1)
    assert value(samples, "locker_outbox_dropped_total") == 7
    rig.locker.store.db.execute("DELETE FROM outbox")  # central acknowledged everything
    samples = await rig.scrape()
    assert value(samples, "locker_outbox_events") == 0
    assert value(samples, "locker_outbox_oldest_age_seconds") == 0


class Probe:
    """A zone's thermometer and compressor relay, moved by the test."""

    def __init__(self, celsius: float) -> None:
        self.celsius = celsius
        self.on = False

    async def read_celsius(self) -> float:
        return self.celsius

    def switch(self, on: bool) -> None:
        self.on = on


async def test_zone_temperature_setpoint_compressor_and_its_duty(config: LockerConfig) -> None:
    clock = SimClock(start=1_800_000_000.0)  # on the 5-minute grid of the HACCP record
    fresh = Probe(3.5)  # above 2.5 + 1.0 / 2: the compressor runs
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), clock,
                    zones={Zone.FRESH: (fresh, fresh)})
    async with TestClient(TestServer(create_app(locker))) as http:
        async def scrape() -> Samples:
            return parse(await (await http.get("/metrics")).text())

        await clock.advance(30 * 60)
        samples = await scrape()
        assert value(samples, "locker_zone_temperature_celsius", zone="fresh") == 3.5
        assert value(samples, "locker_zone_setpoint_celsius", zone="fresh") == 2.5
        assert value(samples, "locker_compressor_on", zone="fresh") == 1
        assert value(samples, "locker_compressor_duty_ratio", zone="fresh") == 1.0
        # the relay ran the whole half hour, to the zone loop's 10 s tick
        assert 30 * 60 - 20 <= value(samples, "locker_compressor_on_seconds_total",
                                     zone="fresh") <= 30 * 60
        fresh.celsius = 1.5  # below 2.5 - 1.0 / 2: it stops
        await clock.advance(30 * 60)
        samples = await scrape()
        assert value(samples, "locker_compressor_on", zone="fresh") == 0
        # 12 records in the last hour: 6 on, 6 off (give or take the one at the boundary)
        assert 5 / 13 <= value(samples, "locker_compressor_duty_ratio", zone="fresh") <= 7 / 12
        # and then stopped: the counter grew by a tick at most
        assert value(samples, "locker_compressor_on_seconds_total", zone="fresh") <= 30 * 60 + 10
        assert ("locker_zone_temperature_celsius", (("zone", "frozen"),)) not in samples


async def test_central_reachability_and_the_time_since_its_last_answer(tmp_path: Path) -> None:
    path = write_config(tmp_path, SMALL_CONFIG + '\n[central]\nurl = "http://127.0.0.1:9/v1"\n'
                        'allow_insecure = true\n'
                        "outage_alarm_s = 60\n")
    config = load_config(path)
    create_keys(config)
    assert config.central is not None
    config.central.command_key_file.write_bytes(
        Ed25519PrivateKey.generate().public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    clock = SimClock()
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), clock)
    last_answer = clock.now()
    registry = CollectorRegistry()
    registry.register(LockerCollector(locker, EventCounts(locker), lambda: last_answer))
    await locker.start()
    try:
        await clock.advance(90)
        samples = parse(generate_latest(registry).decode())
        assert value(samples, "locker_central_reachable") == 1
        assert value(samples, "locker_central_last_answer_age_seconds") == 90
        unreachable(locker.store, config, clock.now(), last_answer)
        samples = parse(generate_latest(registry).decode())
        assert value(samples, "locker_central_reachable") == 0
        reachable(locker.store, clock.now())
        last_answer = clock.now()
        samples = parse(generate_latest(registry).decode())
        assert value(samples, "locker_central_reachable") == 1
        assert value(samples, "locker_central_last_answer_age_seconds") == 0
    finally:
        await locker.stop()


async def test_each_app_has_its_own_registry_and_the_default_one_stays_clean(
        config: LockerConfig) -> None:
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), SimClock())
    first = create_app(locker, manage_locker=False)
    second = create_app(locker, manage_locker=False)  # a second registry: no duplicate error
    assert first[METRICS] is not second[METRICS]
    default = generate_latest(prometheus_client.REGISTRY).decode()
    assert "locker_" not in default
    locker.store.close()
