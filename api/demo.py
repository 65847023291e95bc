"""`locker simulate`: the whole locker on a laptop, against lock boards in another process.

Starts the simulated boards (their own process, on a pseudo-terminal), the daemon on the other end
of that pseudo-terminal with its real driver and HTTP app, adds three demo orders, and then lets a
person type their codes (or types them itself with --script). Codes go through real HTTP to
/api/pickup, exactly as the touchscreen sends them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import ClientSession, ClientTimeout, web

from api.app import create_app
from locker.codes import create_private_file, create_secret, load_secret
from locker.config import LockerConfig, load_config
from locker.daemon import Locker
from locker.model import Zone
from locker.orders import AddedOrder, add_ready_order, parse_bag
from simulator.control import spawn
from simulator.thermal import ThermalRig, ZoneModel

DEMO_ORDERS = (
    ("demo-1", ("ambient:M", "fresh:M", "frozen:S")),
    ("demo-2", ("fresh:L",)),
    ("demo-3", ("frozen:M", "ambient:S")),
)
SHOWN = {
    "door.opened": "door {compartment_id} opened",
    "door.closed": "door {compartment_id} closed",
    "door.forced": "ALARM door {compartment_id} opened without authorisation",
    "door.jammed": "ALARM door {compartment_id} unlocked but did not open",
    "door.unlock_failed": "ALARM door {compartment_id} did not unlock",
    "order.collected": "order {order_id} collected",
}


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def show_events(events: list[tuple[str, dict[str, Any]]]) -> None:
    for kind, fields in events:
        if kind in SHOWN:
            say(SHOWN[kind].format(**fields))
        elif kind.startswith("alarm."):
            say(f"ALARM {kind[6:]} {fields.get('state')}: {fields.get('message')}")


def demo_config(path: Path, data_dir: Path, port: str, http_port: int | None) -> LockerConfig:
    config = load_config(path, port=port)
    http = config.http if http_port is None else dataclasses.replace(config.http, port=http_port)
    return dataclasses.replace(config, data_dir=data_dir,
                               secret_file=data_dir / config.secret_file.name, http=http)


async def type_code(session: ClientSession, url: str, code: str) -> bool:
    async with session.post(f"{url}/api/pickup", json={"code": code, "screen": "demo"}) as answer:
        body = await answer.json()
    if answer.status == 200:
        doors = ", ".join(f"{d['compartment']} ({d['zone']}, {d['location']})"
                          for d in body["opened"])
        say(f"code accepted for order {body['order']}: open {doors}")
        return True
    say(f"code refused ({answer.status} {body['error']}): {body['message']}")
    return False


async def wait_collected(locker: Locker, order_id: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = locker.store.read().one("SELECT state FROM orders WHERE id = ?", (order_id,))
        if row is not None and row["state"] == "collected":
            return True
        await asyncio.sleep(0.1)
    return False


async def run_demo(path: Path, *, script: bool = False, auto_close_s: float = 3.0,
                   http_port: int | None = None, data_dir: Path | None = None) -> int:
    # the demo prints each door and order itself; the monitor's own log lines would repeat them
    logging.getLogger("locker.doors").setLevel(logging.WARNING)
    keep = data_dir is not None
    folder = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix="locker-demo-"))
    load_config(path)  # a wrong config stops here, before any process starts
    say(f"starting simulated lock boards for {path}")
    boards = await spawn(path, auto_close_s=auto_close_s)
    runner: web.AppRunner | None = None
    physics: asyncio.Task[None] | None = None
    try:
        config = demo_config(path, folder, boards.port, http_port)
        create_secret(config.secret_file)
        create_private_file(config.ops_token_file, secrets.token_urlsafe(24))
        for member in config.staff.members:
            create_secret(config.staff_secret_file(member.id))
        assert config.bus is not None
        from hardware.boards import BoardLockDriver
        from hardware.probes import DS18B20Probe

        # the cold zones' physics run here; the daemon reads their probe files for real
        rig = ThermalRig(folder / "w1", {Zone.FRESH.value: ZoneModel.fresh(),
                                         Zone.FROZEN.value: ZoneModel.frozen()})
        rig.models[Zone.FRESH.value].temp_c = 3.0
        rig.models[Zone.FROZEN.value].temp_c = -20.0
        physics = asyncio.create_task(rig.run(), name="thermal models")
        zones = {Zone(name): (DS18B20Probe(rig.files[name]), rig.compressors[name])
                 for name in rig.models}
        locker = Locker(config, BoardLockDriver(config.bus, config.compartments),
                        on_events=show_events, zones=zones)
        runner = web.AppRunner(create_app(locker), access_log=None)
        await runner.setup()  # starts the locker: safe outputs, door read, reconcile
        site = web.TCPSite(runner, config.http.host, config.http.port)
        await site.start()
        url = f"http://{config.http.host}:{config.http.port}"
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
        added: list[AddedOrder] = [
            add_ready_order(locker.store, config, locker.codes, time.time(), order_id,
                            [parse_bag(b) for b in bags])
            for order_id, bags in DEMO_ORDERS
        ]
        for order in added:
            where = ", ".join(cid for cid, _ in order.compartments)
            say(f"order {order.order_id} ready in {where}: pickup code {order.code}")
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            if script:
                return await play(locker, session, url, added, auto_close_s)
            await interact(session, url)
        return 0
    finally:
        if runner is not None:
            await runner.cleanup()
        if physics is not None:
            physics.cancel()
        await boards.stop()
        say("stopped")


async def play(locker: Locker, session: ClientSession, url: str, added: list[AddedOrder],
               auto_close_s: float) -> int:
    """Type a wrong code, then every demo code, and wait for each order to be collected."""
    say("typing a wrong code: 00000000")
    await type_code(session, url, "00000000")
    collected = 0
    for order in added:
        say(f"typing the code of {order.order_id}")
        if await type_code(session, url, order.code) and await wait_collected(
                locker, order.order_id, auto_close_s + 15):
            collected += 1
    say(f"{collected} of {len(added)} demo orders collected")
    return 0 if collected == len(added) else 1


async def interact(session: ClientSession, url: str) -> None:
    say("type a pickup code and Enter (q to quit); the simulated customer closes the doors")
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    stdin = sys.stdin.fileno()
    # a reader on the event loop, not a thread: Ctrl-C must not wait for one more Enter
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
