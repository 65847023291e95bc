"""`locker simulate`: the whole chain on a laptop, against lock boards in another process.

Starts the simulated boards (their own process, on a pseudo-terminal), the reference central (an
HTTP server with its own SQLite file), and the daemon on the other end of that pseudo-terminal
with its real driver, its HTTP app and its link to central. Central provisions the locker (its
token and command key; the locker gives it the key codes are sealed to) and takes three demo
orders, each with a random code sealed for the locker; they reach the
locker through the feed, a simulated courier logs in and loads them, and then a person types the
codes central gave (or the demo types them itself with --script). Every call is real HTTP, as
from the touchscreen, the courier's screen and central.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import ClientSession, ClientTimeout, web

from api.app import create_app
from api.listener import make_runner, start_site
from locker.domain import certificates
from locker.domain.certificate_html import render_html
from locker.domain.codes import (
    box_public_key,
    create_keys,
    create_private_file,
    grouped,
    load_box_key,
)
from locker.domain.config import CentralConfig, ColdChainPolicy, LockerConfig, load_config
from locker.domain.daemon import ZONE_INTERVAL_S, Locker
from locker.domain.haccp import public_pem, record_key
from locker.domain.model import Zone
from locker.domain.staff import create_secret, load_secret
from simulator.central import RunningCentral, start_central
from simulator.control import spawn
from simulator.thermal import ThermalRig, ZoneModel

DEMO_ORDERS = (
    ("demo-1", ("ambient:M", "fresh:M", "frozen:S")),  # its fresh bag meets the excursion
    ("demo-2", ("ambient:L",)),  # central gives it a return code too (a substituted item)
    ("demo-3", ("frozen:M", "ambient:S")),
)
RETURN_CODE_ORDER = 1  # the index of the order central issues a return code with
EXCURSION_C = 9.0  # the scripted demo's fresh zone, its door seal gone for a moment
SHOWN = {
    "door.opened": "door {compartment_id} opened",
    "door.closed": "door {compartment_id} closed",
    "door.forced": "ALARM door {compartment_id} opened without authorisation",
    "door.jammed": "ALARM door {compartment_id} unlocked but did not open",
    "door.unlock_failed": "ALARM door {compartment_id} did not unlock",
    "order.received": "order {order_id} received from central",
    "order.ready": "order {order_id} loaded and ready",
    "order.collected": "order {order_id} collected",
    "order.bag_withheld": "order {order_id}: {compartment} kept back, its zone reached"
                          " {peak_c} °C, above its limit for {minutes_above} min while the bag"
                          " was inside (central replaces or refunds it; a courier takes it"
                          " back)",
    "order.return_deposited": "order {order_id}: {what} handed back into {compartment}"
                              " ({zone}); central is told, a courier takes it back",
    "zone.excursion_started": "the {zone} zone is out of its limits ({peak_c:.1f} °C): the"
                              " orders inside it are flagged",
}


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def show_events(events: list[tuple[str, dict[str, Any]]]) -> None:
    for kind, fields in events:
        if kind in SHOWN:
            say(SHOWN[kind].format(**fields))
        elif kind.startswith("alarm."):
            say(f"ALARM {kind[6:]} {fields.get('state')}: {fields.get('message')}")


def demo_config(path: Path, data_dir: Path, port: str, http_port: int | None,
                central_url: str) -> LockerConfig:
    config = load_config(path, port=port)
    http = config.http if http_port is None else dataclasses.replace(config.http, port=http_port)
    # the reference central runs beside the demo on loopback, in clear
    central = CentralConfig(url=central_url, allow_insecure=True,
                            token_file=data_dir / "central.token",
                            command_key_file=data_dir / "central-commands.pub",
                            heartbeat_s=10.0, backoff_min_s=0.5, backoff_max_s=10.0)
    return dataclasses.replace(config, data_dir=data_dir, http=http, central=central)


async def enrol(session: ClientSession, central: RunningCentral, config: LockerConfig) -> None:
    """Register the locker with central (giving it the key codes are sealed to, and the one its
    cold-chain record is signed with) and keep what
    central issues in the locker's files: its token and central's public command key."""
    assert config.central is not None
    create_keys(config)
    box_key = box_public_key(load_box_key(config.box_key_file))
    async with session.post(f"{central.url}/admin/lockers",
                            json={"id": config.locker_id, "box_key": box_key,
                                  "record_key": public_pem(record_key(config))},
                            headers={"X-Admin-Token": central.admin_token}) as answer:
        issued = await answer.json()
        if answer.status != 201:
            raise RuntimeError(f"central refused to provision {config.locker_id}: {issued}")
    create_private_file(config.central.token_file, issued["token"])
    config.central.command_key_file.write_text(issued["command_public_key"])


async def central_order(session: ClientSession, central: RunningCentral, locker_id: str,
                        order_id: str, bags: tuple[str, ...],
                        window_hours: float = 72.0, return_code: bool = False
                        ) -> dict[str, Any]:
    """An order placed at central, as the shop's system would; central answers with its code
    (and, with `return_code`, a code to hand a fridge item back at the locker)."""
    body: dict[str, Any] = {"id": order_id, "window_hours": window_hours, "bags": [
        {"zone": zone, "size": size} for zone, size in (b.split(":") for b in bags)]}
    if return_code:
        body.update(return_code=True, return_kind="fresh_item")
    async with session.post(f"{central.url}/admin/lockers/{locker_id}/orders", json=body,
                            headers={"X-Admin-Token": central.admin_token}) as answer:
        order: dict[str, Any] = await answer.json()
        if answer.status != 201:
            raise RuntimeError(f"central refused order {order_id}: {order}")
    return order


async def central_events(session: ClientSession, central: RunningCentral,
                         locker_id: str) -> list[dict[str, Any]]:
    async with session.get(f"{central.url}/admin/lockers/{locker_id}/events",
                           headers={"X-Admin-Token": central.admin_token}) as answer:
        events: list[dict[str, Any]] = (await answer.json())["events"]
    return events


async def type_code(session: ClientSession, url: str, code: str) -> dict[str, Any] | None:
    """The pickup's answer (None if refused)."""
    async with session.post(f"{url}/api/pickup", json={"code": code, "screen": "demo"}) as answer:
        body: dict[str, Any] = await answer.json()
    if answer.status == 200:
        doors = ", ".join(f"{d['compartment']} ({d['zone']}, {d['location']})"
                          for d in body["opened"])
        say(f"code accepted for order {body['order']}: " + (
            f"open {doors}" if doors else "a return code, nothing to collect"))
        return body
    say(f"code refused ({answer.status} {body['error']}): {body['message']}")
    return None


async def hand_back(session: ClientSession, url: str, offer: dict[str, Any] | None,
                    kind: str) -> bool:
    """The customer presses "Return something" and says what they hand back."""
    if offer is None or kind not in offer["kinds"]:
        say(f"no return of {kind} offered here")
        return False
    async with session.post(f"{url}/api/returns", json={"offer": offer["offer"], "kind": kind,
                                                         "screen": "demo"}) as answer:
        body = await answer.json()
    if answer.status != 200:
        say(f"return refused ({answer.status} {body['error']}): {body['message']}")
        return False
    say(f"the customer hands back {kind}: {body['compartment']} opens")
    return True


async def wait_state(locker: Locker, order_id: str, state: str, timeout_s: float) -> bool:
    return await wait_states(locker, order_id, (state,), timeout_s)


async def wait_states(locker: Locker, order_id: str, states: tuple[str, ...],
                      timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = locker.store.read().one("SELECT state FROM orders WHERE id = ?", (order_id,))
        if row is not None and row["state"] in states:
            return True
        await asyncio.sleep(0.05)
    return False


async def load_as_courier(locker: Locker, session: ClientSession, url: str,
                          orders: list[dict[str, Any]], auto_close_s: float) -> None:
    """The simulated courier logs in with a TOTP code and loads every order that arrived."""
    courier = next(m for m in locker.config.staff.members if m.role == "courier")
    code = pyotp.TOTP(load_secret(locker.config.staff_secret_file(courier.id))).now()
    async with session.post(f"{url}/api/staff/login", json={
            "staff": courier.id, "code": code, "screen": "demo"}) as answer:
        token = (await answer.json())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    say(f"courier {courier.id} logged in")
    for order in orders:
        if not await wait_state(locker, order["id"], "received", 15):
            raise RuntimeError(f"order {order['id']} did not arrive from central")
        async with session.post(f"{url}/api/courier/orders/{order['id']}/load",
                                json={"together": True}, headers=auth) as answer:
            body = await answer.json()
            if answer.status != 200:
                raise RuntimeError(f"loading {order['id']} refused: {body}")
        say(f"courier loads {order['id']} into {', '.join(body['compartments'])}")
        if not await wait_state(locker, order["id"], "ready", auto_close_s + 15):
            raise RuntimeError(f"order {order['id']} did not become ready")
    async with session.post(f"{url}/api/staff/logout", headers=auth):
        pass


async def run_demo(path: Path, *, script: bool = False, auto_close_s: float = 3.0,
                   http_port: int | None = None, data_dir: Path | None = None) -> int:
    # the demo prints each door and order itself; the monitor's own log lines would repeat them
    logging.getLogger("locker.doors").setLevel(logging.WARNING)
    logging.getLogger("locker.central").setLevel(logging.WARNING)
    keep = data_dir is not None
    folder = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix="locker-demo-"))
    load_config(path)  # a wrong config stops here, before any process starts
    say(f"starting simulated lock boards for {path}")
    boards = await spawn(path, auto_close_s=auto_close_s)
    central: RunningCentral | None = None
    runner: web.AppRunner | None = None
    physics: asyncio.Task[None] | None = None
    try:
        central = await start_central(folder / "central")
        say(f"reference central: {central.url} (its store: {folder / 'central'})")
        config = demo_config(path, folder / "locker", boards.port, http_port, central.api_url)
        if script:  # the cold chain's policy shown: a bag that met an excursion is kept back
            fresh = dataclasses.replace(config.zones[Zone.FRESH], grace_s=0.0)
            config = dataclasses.replace(config, coldchain=ColdChainPolicy("withhold"),
                                         zones={**config.zones, Zone.FRESH: fresh})
        assert config.central is not None
        if not config.central.token_file.exists():
            async with ClientSession(timeout=ClientTimeout(total=10)) as session:
                await enrol(session, central, config)
        create_private_file(config.ops_token_file, secrets.token_urlsafe(24))
        for member in config.staff.members:
            create_secret(config.staff_secret_file(member.id))
        assert config.bus is not None
        from hardware import factory

        # the cold zones' physics run here; the daemon reads their probe files for real
        rig = ThermalRig(folder / "w1", {Zone.FRESH.value: ZoneModel.fresh(),
                                         Zone.FROZEN.value: ZoneModel.frozen()})
        rig.models[Zone.FRESH.value].temp_c = 3.0
        rig.models[Zone.FROZEN.value].temp_c = -20.0
        physics = asyncio.create_task(rig.run(), name="thermal models")
        zones = {Zone(name): (factory.probe(rig.files[name]), rig.compressors[name])
                 for name in rig.models}
        locker = Locker(config, factory.lock_driver(config), on_events=show_events, zones=zones)
        runner = make_runner(create_app(locker), config.http, access_log=False)
        await runner.setup()  # starts the locker: safe outputs, door read, reconcile, sync
        url = await start_site(runner, config.http)
        say(f"locker {config.locker_id} ready: {len(config.compartments)} compartments on"
            f" {len(config.bus.boards)} {config.bus.protocol} boards via {boards.port},"
            f" started in {locker.started_in_s:.2f} s")
        say(f"touchscreen: {url}/   simulated boards' control API: {boards.control_url}/state")
        say(f"store: {config.database}{'' if keep else ' (temporary)'}")
        say(f"ops page: {url}/ops  token: {config.ops_token_file.read_text().strip()}")
        for member in config.staff.members:
            totp = pyotp.TOTP(load_secret(config.staff_secret_file(member.id)))
            say(f"{member.role} {member.id}: {url}/courier, enrol a phone with"
                f" {totp.provisioning_uri(name=member.id, issuer_name=config.locker_id)}")
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            suffix = secrets.token_hex(2)  # a kept data folder may hold earlier demo orders
            orders = [await central_order(session, central, config.locker_id,
                                          f"{order_id}-{suffix}", bags,
                                          return_code=number == RETURN_CODE_ORDER)
                      for number, (order_id, bags) in enumerate(DEMO_ORDERS)]
            for order in orders:
                say(f"central took order {order['id']}: pickup code {grouped(order['code'])}"
                    + (f", return code {grouped(order['return_code'])}"
                       if "return_code" in order else ""))
            await load_as_courier(locker, session, url, orders, auto_close_s)
            if script:
                await excursion(locker, rig)
                status = await play(locker, session, url, orders, auto_close_s)
                status = max(status, await returns(locker, session, url, orders,
                                                   auto_close_s))
                await report_central(locker, session, central, config.locker_id)
                await show_certificate(locker, session, central, orders[0]["id"], folder)
                return status
            await interact(session, url)
        return 0
    finally:
        if runner is not None:
            await runner.cleanup()
        if physics is not None:
            physics.cancel()
        if central is not None:
            await central.stop()
        await boards.stop()
        say("stopped")


async def excursion(locker: Locker, rig: ThermalRig) -> None:
    """The fresh zone warms past its limit until the locker sees it, then cools again: the
    order inside it is flagged, and its fresh bag will be kept back at pickup."""
    model = rig.models[Zone.FRESH.value]
    say(f"the fresh zone's door seal gives way: it warms toward {EXCURSION_C:g} °C")
    model.compressor_dead = True
    deadline = time.monotonic() + 4 * ZONE_INTERVAL_S
    while time.monotonic() < deadline and locker.store.read().one(
            "SELECT id FROM excursions WHERE zone = 'fresh'") is None:
        # as fast as air warms through an open seal (the probe's plausibility check takes
        # no more than 0.5 °C/s)
        model.temp_c = min(EXCURSION_C, model.temp_c + 0.4)
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)  # it stays warm a moment
    model.compressor_dead = False
    say("the seal is fixed: the fresh zone cools down again")


async def play(locker: Locker, session: ClientSession, url: str, orders: list[dict[str, Any]],
               auto_close_s: float) -> int:
    """Type a wrong code, then every demo code, and wait for each order to be handed over
    (collected, or collected but for a bag kept back)."""
    say("typing a wrong code: 000 0000 0000")
    await type_code(session, url, "00000000000")
    collected = 0
    for order in orders:
        say(f"typing the code of {order['id']}")
        answer = await type_code(session, url, order["code"])
        order["return_offer"] = answer["return_offer"] if answer else None
        if answer and await wait_states(locker, order["id"], ("collected", "withheld"),
                                        auto_close_s + 15):
            collected += 1
    say(f"{collected} of {len(orders)} demo orders collected")
    return 0 if collected == len(orders) else 1


async def returns(locker: Locker, session: ClientSession, url: str,
                  orders: list[dict[str, Any]], auto_close_s: float) -> int:
    """The last customer hands back the drive's crates after their pickup; another types the
    return code central gave with their order and hands back a fridge item."""
    last = orders[-1]
    say(f"the customer of {last['id']} presses \"Return something\"")
    made = await hand_back(session, url, last.get("return_offer"), "crates")
    coded = orders[RETURN_CODE_ORDER]
    say(f"typing the return code of {coded['id']}")
    answer = await type_code(session, url, coded["return_code"])
    made = await hand_back(session, url, answer and answer["return_offer"], "fresh_item") and made
    deadline = time.monotonic() + auto_close_s + 15
    deposited: list[str] = []
    while time.monotonic() < deadline and len(deposited) < 2:
        deposited = [r["id"] for r in locker.store.read().all(
            "SELECT id FROM returns WHERE state = 'deposited'")]
        await asyncio.sleep(0.05)
    waiting = [f"{r['compartment']} ({r['what']})"
               for r in locker.courier.orders()["returns_to_take_back"]]
    say(f"{len(deposited)} returns deposited; the couriers' list has {len(waiting)} to take"
        f" back: {', '.join(waiting)}")
    return 0 if made and len(deposited) == 2 else 1


async def report_central(locker: Locker, session: ClientSession, central: RunningCentral,
                         locker_id: str) -> None:
    """Wait for the outbox to drain and say what central received."""
    deadline = time.monotonic() + 15
    while locker.store.events(limit=1) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    events = await central_events(session, central, locker_id)
    collected = sum(e["kind"] == "order.collected" for e in events)
    say(f"central holds {len(events)} events from {locker_id} ({collected} collections);"
        f" {len(locker.store.events())} still in the locker's outbox")


async def show_certificate(locker: Locker, session: ClientSession, central: RunningCentral,
                           order_id: str, folder: Path) -> None:
    """What central holds of an order's cold-chain certificate, checked against the key the
    locker gave at provisioning, and the locker's own page of it."""
    async with session.get(
            f"{central.url}/admin/lockers/{locker.config.locker_id}/orders/{order_id}"
            "/certificate",
            headers={"X-Admin-Token": central.admin_token}) as answer:
        if answer.status != 200:
            say(f"central has no certificate for {order_id} ({answer.status})")
            return
        held = await answer.json()
    verdict = "signature verified" if held["verified"] else f"NOT verified: {held['why']}"
    say(f"cold-chain certificate of {order_id} at central ({verdict}):")
    for part in held["certificate"]["compartments"]:
        span = ("not monitored" if part["probe"]["name"] is None and part["min_c"] is None
                else "no reading" if part["min_c"] is None
                else f"{part['min_c']:.1f} to {part['max_c']:.1f} °C")
        say(f"  {part['compartment']} ({part['zone']}): {part['minutes']:g} min inside, {span},"
            f" {part['minutes_above']:g} min above {part['limits']['max_c']:g} °C,"
            f" {part['door_openings']} door openings")
    kept = certificates.kept(locker.store.read(), order_id)
    if kept is not None:
        page = folder / f"certificate-{order_id}.html"
        page.write_text(render_html(kept), encoding="utf-8")
        say(f"  the page an inspector reads: {page} (locker haccp certificate ORDER --html)")


def watchable(fd: int) -> bool:
    """A terminal, a pipe or a socket: what the event loop can watch (a file or /dev/null, as
    under nohup or a service, cannot: epoll refuses them)."""
    mode = os.fstat(fd).st_mode
    return os.isatty(fd) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def interact(session: ClientSession, url: str) -> None:
    stdin = sys.stdin.fileno() if sys.stdin is not None else -1
    if stdin < 0 or not watchable(stdin):
        stop = asyncio.Event()  # as a service is stopped: the boards and central stop too
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        say(f"no keyboard here: type the pickup codes on the touchscreen page, {url}/, in a"
            " browser; stop the demo with Ctrl-C or kill -TERM")
        await stop.wait()
        return
    # a reader on the event loop, not a thread: Ctrl-C must not wait for one more Enter
    say("type a pickup code and Enter (q to quit); the simulated customer closes the doors")
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(stdin, lambda: lines.put_nowait(sys.stdin.readline()))
    try:
        while True:
            line = await lines.get()
            if not line or line.strip().lower() in ("q", "quit", "exit"):
                return
            if line.strip():
                await type_code(session, url, line.strip())
    finally:
        loop.remove_reader(stdin)
