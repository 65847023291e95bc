"""The locker and the reference central over TLS on loopback, with a throwaway CA made here.

A locker that trusts the CA (`[central] ca_file`) syncs both ways; one that trusts only the
system's CAs refuses central's certificate, gets nothing and says so; one with a token central
does not know is answered 401, which is a bad answer, not an outage.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import ClientSession, TCPConnector

from api.central import CENTRAL, CentralLink
from locker.demo import enrol
from locker.domain.config import load_config
from simulator.central import start_central
from simulator.pki import Pki, make_pki
from tests.support.configs import config_text
from tests.support.rig import Rig
from tests.support.sync import Central, all_delivered, arrived, kinds, payloads, prepare_log
from tests.support.waiting import until

SYNC = """
[central]
url = "{url}"
poll_wait_s = 2
heartbeat_s = 1
request_timeout_s = 2
backoff_min_s = 0.05
backoff_max_s = 0.3
outage_alarm_s = 1
{extra}
"""
UNKNOWN_TOKEN = "unknown-" + "Zx9" * 12  # looks like a token; central never issued it


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def central(tmp_path: Path, pki: Pki) -> AsyncIterator[Central]:
    """The reference central on https://127.0.0.1:PORT, its admin API called trusting the CA."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.cert, pki.key)
    admin = ssl.create_default_context(cafile=str(pki.ca))
    async with ClientSession(connector=TCPConnector(ssl=admin)) as session:
        running = await start_central(tmp_path / "central", admin_token="admin-" + "x" * 24,
                                      ssl_context=server)
        handle = Central(tmp_path / "central", running, session)
        try:
            yield handle
        finally:
            await handle.stop()


MakeLocker = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def tls_locker(tmp_path: Path, central: Central,
                     make_rig: Callable[..., AsyncGenerator[Rig, None]],
                     ) -> AsyncIterator[MakeLocker]:
    """Enrols the locker at central, then starts it syncing with the [central] table given."""
    rigs: list[AsyncGenerator[Rig, None]] = []

    async def make(extra: str = "", token: str | None = None) -> Rig:
        assert central.running.api_url.startswith("https://127.0.0.1:")
        text = config_text("kerong") + SYNC.format(url=central.running.api_url, extra=extra)
        probe = tmp_path / "enrol.toml"  # the rig's config is in the same folder: same paths
        probe.write_text(text)
        config = load_config(probe)
        assert config.central is not None
        await enrol(central.session, central.running, config)
        if token is not None:  # central issued another one; this locker holds a wrong one
            config.central.token_file.write_text(token + "\n")
            config.central.token_file.chmod(0o600)
        prepare_log(config.database)
        rig_gen = make_rig("kerong", edit=lambda _: text)
        rigs.append(rig_gen)
        return await anext(rig_gen)

    yield make
    for rig_gen in rigs:
        await rig_gen.aclose()


def link(rig: Rig) -> CentralLink:
    app = rig.http.app
    assert app is not None
    central_link: CentralLink = app[CENTRAL]
    return central_link


def orders(rig: Rig) -> list[str]:
    return [r["id"] for r in rig.locker.store.read().all("SELECT id FROM orders")]


async def heartbeats(central: Central) -> list[object]:
    status, body = await central.call("GET", "/admin/lockers")
    assert status == 200
    return [locker["heartbeat"] for locker in body["lockers"] if locker["heartbeat"]]


def heartbeats_arrived(central: Central) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(await heartbeats(central))
    return check


async def test_a_locker_trusting_the_ca_file_syncs_both_ways_over_tls(
        central: Central, tls_locker: MakeLocker) -> None:
    rig = await tls_locker('ca_file = "pki/ca.pem"')  # relative to the config's folder
    assert rig.config.central is not None and rig.config.central.ca_file is not None
    assert rig.config.central.ca_file.is_file()
    assert link(rig).ssl is not None
    await central.order("T-1", "fresh:M", "ambient:S")
    await arrived(rig, "T-1")
    received = await all_delivered(rig, central)  # every event the locker made, once
    delivered = [e["kind"] for e in received]
    assert "locker.started" in delivered and "order.received" in delivered
    assert [e["order_id"] for e in received if e["kind"] == "order.received"] == ["T-1"]
    await until(heartbeats_arrived(central), 5)
    assert "alarm.central_unreachable" not in kinds(rig)
    assert "alarm.central_protocol" not in kinds(rig)


async def test_without_the_ca_central_is_unreached_and_the_locker_says_so(
        central: Central, tls_locker: MakeLocker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="locker.central")
    rig = await tls_locker()  # no ca_file: the system's CAs, which never signed this certificate
    assert rig.config.central is not None and rig.config.central.ca_file is None
    await central.order("T-1", "fresh:M")
    await until(lambda: "alarm.central_unreachable" in kinds(rig), 6)
    assert orders(rig) == []
    assert link(rig).stats["feed_items"] == 0 and link(rig).stats["events_acked"] == 0
    assert link(rig).stats["heartbeats"] == 0
    assert rig.locker.store.events(limit=1)  # the events wait in the outbox
    assert await central.events() == []
    assert await heartbeats(central) == []
    # the refusal is a certificate failure, and it is in the log, not swallowed
    refused = [r.getMessage() for r in caplog.records if r.name == "locker.central"]
    assert any("CERTIFICATE_VERIFY_FAILED" in m for m in refused), refused
    assert "alarm.central_protocol" not in kinds(rig)  # an outage, not a bad answer
    # and the alarm itself says where to look
    assert "check [central] ca_file" in payloads(rig, "alarm.central_unreachable")[0]["message"]


async def test_an_unknown_token_gets_401_a_protocol_alarm_and_no_orders(
        central: Central, tls_locker: MakeLocker) -> None:
    rig = await tls_locker('ca_file = "pki/ca.pem"', token=UNKNOWN_TOKEN)
    await central.order("T-1", "fresh:M")
    await until(lambda: "alarm.central_protocol" in kinds(rig), 6)
    message = payloads(rig, "alarm.central_protocol")[0]["message"]
    assert "HTTP 401" in message and "refused this locker's token" in message
    # central hears nothing from this locker: an outage too, so windows are held
    await until(lambda: "alarm.central_unreachable" in kinds(rig), 6)
    await until(lambda: link(rig).stats["failures"] >= 6, 5)  # every loop keeps trying
    assert kinds(rig).count("alarm.central_protocol") == 1  # raised once, not per failure
    assert orders(rig) == []
    assert link(rig).stats["feed_items"] == 0 and link(rig).stats["events_acked"] == 0
    assert await central.events() == []
    assert await heartbeats(central) == []
    assert rig.locker.store.events(limit=1)  # nothing was acked, nothing was deleted
