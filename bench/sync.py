"""Central sync: orders ingested a second, events acknowledged a second, bytes written an event;
with --wire, bytes on the network a day between the locker and central over TLS.

Four processes, as in the field: the simulated lock boards (on a pseudo-terminal), the daemon
(`locker run`, a subprocess with its link to central), the reference central
(`python -m simulator.central`, a subprocess, stopped and started again on the same port and
folder to make outages), and this script, which drives them over HTTP and watches the locker's
SQLite file read-only from outside. Every locker <-> central call is real HTTP on loopback.

1. Ingest: central holds N orders (one bag each, of the zone and size of a compartment, so every
   order fits; only receiving them is measured, not allocating). The daemon starts while
   central is down, then central comes up: time until all N are in the locker's store in state
   `received`, and the steady rate between the first and the last one stored.
2. Real events, made offline: central down, a courier loads one order per compartment (every
   order at once), then the customers collect them with the codes central issued. The events
   the daemon made (door, order, ...) wait in the outbox; the daemon's bytes written per event.
3. Real events acknowledged: central comes up; time until the outbox is empty and central holds
   them; the daemon's bytes written per event acknowledged (deleted from the outbox).
4. Injected events acknowledged: central down, this script inserts M telemetry rows into the
   outbox itself (one transaction, as `Tx.emit` writes them; the daemon writes nothing for
   them), then central comes up: events acknowledged a second, bytes written per event deleted.

Bytes written are the daemon's own /proc/<pid>/io write_bytes (what it sends towards the block
device: SQLite's WAL appends, checkpoints into locker.db; not the filesystem journal, which the
kernel writes on its own account). Its logs go to a pipe, so they are not counted. Prints figures,
asserts nothing.

--wire measures the network instead: the reference central serves https with a throwaway CA
(simulator/pki.py) that the locker trusts through `[central] ca_file`, and the locker talks to it
through a counting TCP proxy (bench/processes.py), so every byte is counted as the locker would
pay for it: TLS handshakes and records, HTTP headers, keep-alive reuse. The locker runs with its
shipped [central] defaults (or `--set key=value`). An idle window (--idle-s, best a multiple of
heartbeat_s and poll_wait_s) gives the bytes of an idle day; then --wire-orders orders go through
their life one after the other (placed at central, loaded by a courier, collected by the
customer): what they add beyond idle, per order, gives the day with 100 orders.

    python bench/sync.py [--orders 500] [--events 5000] [--batch-size 100] [--dir DIR]
    python bench/sync.py --wire [--idle-s 600] [--wire-orders 10] [--set poll_wait_s=60 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import shlex
import shutil
import sqlite3
import ssl
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, TCPConnector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import Chunk, CountingProxy, mount_of, write_bytes  # noqa: E402
from bench.processes import until as poll_until  # noqa: E402
from locker.domain.config import LockerConfig, load_config  # noqa: E402
from locker.domain.staff import create_secret  # noqa: E402
from simulator.control import spawn  # noqa: E402
from simulator.pki import make_pki  # noqa: E402
from simulator.processes import Central, Daemon, free_port, read_only  # noqa: E402

EXAMPLE = ROOT / "examples" / "locker.toml"
POLL_S = 0.01
# a simulated person closes a door this long after it opened: longer than the ~1.1 s the bus
# takes to send 66 unlock frames at 9600 baud (doors are read only between them), so that no
# door opens and closes unseen between two reads
AUTO_CLOSE_S = 2.0
BACKOFF = (0.05, 0.25)  # [central] backoff_min_s, backoff_max_s: the locker notices central soon
until = functools.partial(poll_until, poll_s=POLL_S)  # the store polled every POLL_S


def write_config(folder: Path, http_port: int, central_table: str) -> Path:
    """examples/locker.toml (66 compartments, 3 generic boards), with its own data folder and
    HTTP port, and the [central] table's lines given."""
    text = EXAMPLE.read_text()
    text = text.replace('data_dir = "../var/drive-lyon-07"', 'data_dir = "data"', 1)
    text = text.replace("port = 8080", f"port = {http_port}", 1)
    text += f"\n[central]\n{central_table}"
    (folder / "data").mkdir(mode=0o700)  # the daemon refuses a data dir others can read
    path = folder / "locker.toml"
    path.write_text(text)
    return path


@dataclass
class Snapshot:
    """The daemon's bytes written so far, and the store's files, at one moment."""

    at: float
    written: int
    db: int
    wal: int
    cpu_s: float

    @classmethod
    def take(cls, daemon: Daemon, database: Path) -> Snapshot:
        def size(path: Path) -> int:
            return path.stat().st_size if path.exists() else 0
        return cls(time.monotonic(), write_bytes(daemon.pid), size(database),
                   size(database.with_name(database.name + "-wal")), daemon.cpu_s())

    def since(self, before: Snapshot) -> str:
        return (f"daemon used {self.cpu_s - before.cpu_s:.2f} s of CPU and wrote"
                f" {(self.written - before.written) / 1024:.0f} KiB;"
                f" locker.db {before.db / 1024:.0f} -> {self.db / 1024:.0f} KiB,"
                f" -wal {before.wal / 1024:.0f} -> {self.wal / 1024:.0f} KiB")


def outbox_depth(database: Path) -> int:
    return int(read_only(database, "SELECT COUNT(*) FROM outbox")[0][0])


async def settle(daemon: Daemon, database: Path, quiet_s: float = 0.6) -> Snapshot:
    """Wait until the daemon has written nothing for `quiet_s` (its own follow-ups done)."""
    last = Snapshot.take(daemon, database)
    while True:
        await asyncio.sleep(quiet_s)
        now = Snapshot.take(daemon, database)
        if now.written == last.written:
            return now
        last = now


def commit_probe(folder: Path, commits: int = 40) -> str:
    """What one small commit costs on this disk, as the store makes them (WAL, synchronous =
    FULL): the floor under anything done one transaction an item."""
    path = folder / "probe.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    times = []
    for i in range(commits + 10):  # the first ones grow the new file: not counted
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
        db.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    db.close()
    times = times[10:]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    times.sort()
    return (f"one small commit (WAL, synchronous = FULL) p50 {times[len(times) // 2] * 1000:.2f}"
            f" ms, p90 {times[int(len(times) * 0.9)] * 1000:.2f} ms over {commits}")


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "n/a"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="N: orders central holds")
    parser.add_argument("--events", type=int, default=5000,
                        help="M: telemetry events injected into the outbox")
    parser.add_argument("--batch-size", type=int, default=100, help="[central] batch_size")
    parser.add_argument("--load", type=int, default=None,
                        help="orders loaded and collected offline (default: one per compartment)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the stores live (default: a new folder under the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    parser.add_argument("--wire", action="store_true",
                        help="measure bytes on the network (TLS) instead, idle and per order")
    parser.add_argument("--idle-s", type=float, default=600.0, help="--wire: the idle window")
    parser.add_argument("--wire-orders", type=int, default=10,
                        help="--wire: orders taken through their life, one after the other")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="--wire: a [central] setting (TOML value), e.g. poll_wait_s=60")
    args = parser.parse_args()
    parent = args.dir.resolve() if args.dir else None
    if parent:
        parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=parent))
    began = time.monotonic()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {os.cpu_count()} CPUs ({platform.machine()}), Python"
          f" {platform.python_version()}, {platform.system()} {platform.release()};"
          f" stores on {mount_of(folder)}")
    if args.wire:
        try:
            await wire(args, folder)
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        print(f"bench ran {time.monotonic() - began:.0f} s")
        return
    print("disk:", commit_probe(folder))

    central = Central(folder / "central", free_port())
    http_port = free_port()
    path = write_config(folder, http_port, (
        f'url = "{central.url}/v1"\nallow_insecure = true\nbatch_size = {args.batch_size}\n'
        f"backoff_min_s = {BACKOFF[0]}\nbackoff_max_s = {BACKOFF[1]}\n"))
    config: LockerConfig = load_config(path)
    assert config.central is not None
    database = config.database
    courier = next(m.id for m in config.staff.members if m.role == "courier")
    create_secret(config.staff_secret_file(courier))
    compartments = config.compartments
    load_count = len(compartments) if args.load is None else min(args.load, len(compartments))
    load_count = min(load_count, args.orders)
    boards = await spawn(path, auto_close_s=AUTO_CLOSE_S)
    daemon = Daemon(path, boards.port, http_port)
    print("daemon:", shlex.join(["python", *daemon.argv[1:]]))
    print("central:", shlex.join(["python", *central.argv[1:]]))
    print(f"locker: {len(compartments)} compartments ({config.bus.protocol if config.bus else '?'}"
          f" boards), [central] batch_size = {config.central.batch_size}, feed limit 50 items a"
          f" call, backoff {BACKOFF[0]}-{BACKOFF[1]} s")
    summary: list[tuple[str, str]] = []
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as session:
            # -- provisioning, and N orders waiting at central --------------------------------
            await central.start()
            await central.enrol(session, config)
            codes: dict[str, str] = {}
            queue_started = time.monotonic()
            gate = asyncio.Semaphore(8)

            async def place(i: int) -> None:
                c = compartments[i % len(compartments)]
                async with gate:
                    order = await central.admin(
                        session, "POST", f"/lockers/{config.locker_id}/orders",
                        {"id": f"S-{i:05d}", "window_hours": 72,
                         "bags": [{"zone": c.zone.value, "size": c.size.value}]})
                codes[order["id"]] = order["code"]

            await asyncio.gather(*(place(i) for i in range(args.orders)))
            print(f"\ncentral took {args.orders} orders in"
                  f" {time.monotonic() - queue_started:.1f} s (admin API, not measured here)")
            await central.stop()

            # -- 1. ingest: the daemon is up, central comes back holding N orders -----------------
            ready_s = await daemon.start(session)
            before = await settle(daemon, database)
            print(f"daemon ready over HTTP {ready_s:.2f} s after its start (central down)")
            up = await central.start()

            def received() -> bool:
                return read_only(database, "SELECT COUNT(*) FROM orders WHERE state ="
                                 " 'received'")[0][0] >= args.orders

            done = await until(received, 60, "the orders")
            in_store = Snapshot.take(daemon, database)
            drained = await until(lambda: outbox_depth(database) == 0, 60, "the outbox")
            after = await settle(daemon, database)
            first, last = read_only(database, "SELECT MIN(created_at), MAX(created_at)"
                                    " FROM orders")[0]
            made = int(central.query("SELECT COUNT(*) FROM events")[0][0])
            wall = done - up
            steady = (args.orders - 1) / (last - first) if last > first else 0.0
            print(f"1. ingest {args.orders} orders: all in the store {wall:.2f} s after central"
                  f" came up ({rate(args.orders, wall)} including the locker's reconnect"
                  f" backoff, <= {BACKOFF[1]} s); steady {steady:,.0f}/s between the first and"
                  f" the last stored ({last - first:.2f} s)")
            print(f"   meanwhile the pusher sent their order.received events: the outbox was"
                  f" empty {drained - up:.2f} s after central came up; central holds {made}"
                  " events")
            print(f"   while the orders came in: {in_store.since(before)}")
            per_order = (after.written - before.written) / args.orders
            print(f"   in all, orders in and their events acked: {after.since(before)}"
                  f" = {per_order / 1024:.1f} KiB an order")
            summary += [("orders ingested a second (steady, first -> last stored)",
                         f"{steady:,.0f}/s"),
                        ("orders ingested: central up -> all N stored", f"{wall:.2f} s"
                         f" ({rate(args.orders, wall)})"),
                        ("bytes written an order (order + its event made, sent, deleted)",
                         f"{per_order / 1024:.1f} KiB")]

            # -- 2. real events, made while central is down ---------------------------------------
            await central.stop()
            before = await settle(daemon, database)
            depth0 = outbox_depth(database)
            made_from = time.monotonic()
            auth = await daemon.login(session, config, courier)
            chosen = [f"S-{i:05d}" for i in range(load_count)]

            async def load(order_id: str) -> None:
                async with session.post(f"{daemon.url}/api/courier/orders/{order_id}/load",
                                        json={"together": True}, headers=auth) as answer:
                    if answer.status != 200:
                        raise SystemExit(f"loading {order_id}: {await answer.text()}")

            def count_in(state: str) -> int:
                marks = ", ".join("?" * len(chosen))
                return int(read_only(database, f"SELECT COUNT(*) FROM orders WHERE state = ?"
                                     f" AND id IN ({marks})", (state, *chosen))[0][0])

            await asyncio.gather(*(load(o) for o in chosen))
            await until(lambda: count_in("ready") == len(chosen), 60, "the loaded orders")

            async def pickup(order_id: str) -> None:
                async with session.post(f"{daemon.url}/api/pickup", json={
                        "code": codes[order_id], "screen": "bench"}) as answer:
                    if answer.status != 200:
                        raise SystemExit(f"pickup of {order_id}: {await answer.text()}")

            await asyncio.gather(*(pickup(o) for o in chosen))
            collected = await until(lambda: count_in("collected") == len(chosen), 60,
                                    "the collections")
            after = await settle(daemon, database)
            created = outbox_depth(database) - depth0
            kinds = read_only(database, "SELECT kind, COUNT(*) FROM outbox GROUP BY kind"
                              " ORDER BY 2 DESC")
            per_made = (after.written - before.written) / created
            print(f"2. offline, {len(chosen)} orders loaded and collected: {created} events made"
                  f" in {collected - made_from:.1f} s;"
                  f" {', '.join(f'{k} {n}' for k, n in kinds)}")
            print(f"   {after.since(before)} = {per_made / 1024:.2f} KiB an event (with the"
                  " order, compartment and authorisation changes each one records)")
            summary.append(("bytes written an event made (real load + pickup, offline)",
                            f"{per_made / 1024:.2f} KiB"))

            # -- 3. those real events acknowledged ------------------------------------------------
            async def drain(count: int, before: Snapshot) -> tuple[float, float, float, str]:
                """Central comes up; the outbox empties. Returns (central up -> outbox empty,
                central's first batch -> outbox empty, bytes written an event, what central
                got and the daemon wrote)."""
                mark = time.time()
                up = await central.start()
                drained = await until(lambda: outbox_depth(database) == 0, 120, "the outbox")
                drained_wall = time.time()
                after = await settle(daemon, database)
                held, t_first, batches = central.query(
                    "SELECT COUNT(*), MIN(received_at), COUNT(DISTINCT received_at) FROM events"
                    " WHERE received_at >= ?", (mark,))[0]
                return (drained - up, drained_wall - t_first,
                        (after.written - before.written) / count,
                        f"   central now holds {held} more events, received in {batches} batches;"
                        f" {after.since(before)}")

            wall, pushed, per_ack, detail = await drain(created, after)
            print(f"3. {created} real events acknowledged: outbox empty {wall:.2f} s after central"
                  f" came up ({rate(created, wall)}, the reconnect backoff included),"
                  f" {pushed:.2f} s after central's first batch ({rate(created, pushed)});"
                  f" {per_ack:.0f} bytes written an event acknowledged")
            print(detail)
            summary += [("real events acknowledged (central's first batch -> outbox empty)",
                         f"{rate(created, pushed)} ({created} in {pushed:.2f} s)"),
                        ("bytes written an event acknowledged (real events)",
                         f"{per_ack:.0f} B")]

            # -- 4. M injected telemetry events acknowledged --------------------------------------
            await central.stop()
            await daemon.stop()
            db = sqlite3.connect(database, timeout=10)
            with db:  # as Tx.emit writes an event: a random UUID, the time, a small JSON payload
                injected_at = time.time()
                db.executemany(
                    "INSERT INTO outbox (id, at, kind, category, compartment_id, order_id,"
                    " payload) VALUES (?, ?, 'telemetry.bench', 'telemetry', NULL, NULL, ?)",
                    [(str(uuid.uuid4()), injected_at + i * 1e-4,
                      f'{{"n":{i},"note":"injected by bench/sync.py"}}')
                     for i in range(args.events)])
            db.close()
            await daemon.start(session)  # central still down: the events wait in the outbox
            before = await settle(daemon, database)
            depth = outbox_depth(database)
            wall, pushed, per_ack, detail = await drain(depth, before)
            print(f"4. {args.events} telemetry events injected into the outbox by this script"
                  f" while the daemon was stopped (it wrote nothing for them), {depth} waiting"
                  f" with its own, acknowledged in batches of {config.central.batch_size}:"
                  f" outbox empty {wall:.2f} s after central came up ({rate(depth, wall)}),"
                  f" {pushed:.2f} s after central's first batch ({rate(depth, pushed)});"
                  f" {per_ack:.0f} bytes written an event acknowledged")
            print(detail)
            summary += [(f"events acknowledged a second (batches of {config.central.batch_size},"
                         " central's first batch -> outbox empty)",
                         f"{rate(depth, pushed)} ({depth} in {pushed:.2f} s)"),
                        (f"{depth} events: central up -> outbox empty",
                         f"{wall:.2f} s ({rate(depth, wall)})"),
                        (f"bytes written an event acknowledged ({depth} waiting)",
                         f"{per_ack:.0f} B")]
    finally:
        await daemon.stop()
        await central.stop()
        await boards.stop()
    print("\nsummary:")
    width = max(len(k) for k, _ in summary)
    for key, value in summary:
        print(f"  {key:<{width}}  {value}")
    for line in daemon.log:
        if "ready in" in line:
            print("daemon:", line.split(": ", 1)[-1])
            break
    print("disk at the end:", commit_probe(folder))
    if args.keep:
        print(f"stores kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"bench ran {time.monotonic() - began:.0f} s")


# ---- --wire: bytes on the network ----------------------------------------------------------------

DAY_S = 86400.0
SLOW_ANSWER_S = 1.0  # an exchange answered this much later was a long poll that waited


@dataclass
class Exchange:
    """What went up a connection and the answer that came down before the next request."""

    at: float
    up: int = 0
    down: int = 0
    answered_after_s: float = 0.0


def exchanges(chunks: list[Chunk]) -> list[Exchange]:
    """The proxy's reads cut into request and answer pairs, connection by connection: an
    exchange starts at bytes going up after bytes came down."""
    found: list[Exchange] = []
    open_by_connection: dict[int, tuple[Exchange, float | None]] = {}
    for chunk in chunks:
        current = open_by_connection.get(chunk.connection)
        if current is None or (chunk.up and current[1] is not None):
            current = (Exchange(chunk.at), None)
            found.append(current[0])
        exchange, answered = current
        if chunk.up:
            exchange.up += chunk.size
            last_up = chunk.at
            exchange.answered_after_s = 0.0
            open_by_connection[chunk.connection] = (exchange, None)
            exchange.at = last_up
        else:
            exchange.down += chunk.size
            if answered is None:
                exchange.answered_after_s = chunk.at - exchange.at
            open_by_connection[chunk.connection] = (exchange, chunk.at)
    return found


async def tls_handshake_bytes(proxy: CountingProxy, context: ssl.SSLContext) -> tuple[int, int]:
    """(up, down): a full TLS handshake through the proxy, as the locker's client makes it, the
    server's session tickets and the closing alerts included."""
    before = len(proxy.chunks)
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.port, ssl=context)
    await asyncio.sleep(0.3)  # the tickets a TLS 1.3 server sends after the handshake
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    await asyncio.sleep(0.2)
    mine = proxy.chunks[before:]
    del proxy.chunks[before:]
    return sum(c.size for c in mine if c.up), sum(c.size for c in mine if not c.up)


def per_day(count: float, seconds: float) -> float:
    return count * DAY_S / seconds


def human(count: float) -> str:
    """Decimal units, as the target (2 MB a day) and a 4G plan count them."""
    return f"{count / 1e3:,.1f} kB" if count < 1e6 else f"{count / 1e6:,.2f} MB"


async def wire(args: argparse.Namespace, folder: Path) -> None:
    pki = make_pki(folder / "pki")
    central = Central(folder / "central", free_port(), tls=pki)
    proxy = CountingProxy(central.port)
    await proxy.start()
    settings = "".join(f"{item.split('=', 1)[0].strip()} = {item.split('=', 1)[1].strip()}\n"
                       for item in args.set)
    http_port = free_port()
    path = write_config(folder, http_port, (
        f'url = "https://127.0.0.1:{proxy.port}/v1"\nca_file = "pki/ca.pem"\n{settings}'))
    config = load_config(path)
    link = config.central
    assert link is not None
    print(f"[central] poll_wait_s = {link.poll_wait_s:g}, heartbeat_s = {link.heartbeat_s:g},"
          f" batch_size = {link.batch_size}, outage_alarm_s = {link.outage_alarm_s:g}"
          f"{' (set: ' + ', '.join(args.set) + ')' if args.set else ' (the defaults)'}")
    courier = next(m.id for m in config.staff.members if m.role == "courier")
    create_secret(config.staff_secret_file(courier))
    compartments = config.compartments
    trust = ssl.create_default_context(cafile=str(pki.ca))
    boards = await spawn(path, auto_close_s=AUTO_CLOSE_S)
    daemon = Daemon(path, boards.port, http_port)
    try:
        async with ClientSession(timeout=ClientTimeout(total=30),
                                 connector=TCPConnector(ssl=trust)) as session:
            await central.start()
            await central.enrol(session, config)
            hs_up, hs_down = await tls_handshake_bytes(proxy, trust)
            print(f"one TLS handshake (this certificate: ECDSA P-256, one CA): {hs_up} B up,"
                  f" {hs_down} B down")
            await daemon.start(session)
            await until(lambda: central.query("SELECT heartbeat_at FROM lockers")[0][0]
                        is not None and outbox_depth(config.database) == 0, 60,
                        "the first heartbeat and the start's events")
            await asyncio.sleep(2.0)

            # -- idle ---------------------------------------------------------------------------
            t0, conns0 = time.monotonic(), proxy.connections
            await asyncio.sleep(args.idle_s)
            t1, conns = time.monotonic(), proxy.connections - conns0
            window = [c for c in proxy.chunks if t0 <= c.at < t1]
            up = sum(c.size for c in window if c.up)
            down = sum(c.size for c in window if not c.up)
            idle_day = per_day(up + down, t1 - t0)
            polls = [e for e in exchanges(window) if e.answered_after_s >= SLOW_ANSWER_S]
            poll_bytes = sum(e.up + e.down for e in polls)
            beats = (t1 - t0) / link.heartbeat_s
            rest = up + down - poll_bytes - conns * (hs_up + hs_down)
            daily = functools.partial(per_day, seconds=t1 - t0)
            print(f"\nidle {t1 - t0:.0f} s: {up} B up, {down} B down, {conns} new TLS"
                  f" connections -> {human(daily(up))} up + {human(daily(down))}"
                  f" down = {human(idle_day)} a day (target: under 2 MB)")
            if polls:
                print(f"  {len(polls)} long polls answered empty at their wait:"
                      f" {poll_bytes / len(polls):.0f} B each, {human(daily(poll_bytes))}"
                      " a day")
            print(f"  {conns} TLS handshakes: {human(daily(conns * (hs_up + hs_down)))}"
                  " a day")
            print(f"  the rest (heartbeats, ~{beats:.1f} in the window):"
                  f" ~{rest / max(beats, 1):.0f} B each, {human(daily(rest))} a day")

            # -- orders, one after the other --------------------------------------------------
            auth = await daemon.login(session, config, courier)
            await until(lambda: outbox_depth(config.database) == 0, 60, "the login's events")
            await asyncio.sleep(PUSH_SETTLE_S)
            t2 = time.monotonic()
            for i in range(args.wire_orders):
                c = compartments[i % len(compartments)]
                order_id = f"W-{i:04d}"
                order = await central.admin(
                    session, "POST", f"/lockers/{config.locker_id}/orders",
                    {"id": order_id, "window_hours": 72,
                     "bags": [{"zone": c.zone.value, "size": c.size.value}]})
                await reach(config.database, order_id, "received")
                async with session.post(f"{daemon.url}/api/courier/orders/{order_id}/load",
                                        json={"together": True}, headers=auth) as answer:
                    if answer.status != 200:
                        raise SystemExit(f"loading {order_id}: {await answer.text()}")
                await reach(config.database, order_id, "ready")
                await until(lambda: outbox_depth(config.database) == 0, 60, "the outbox")
                async with session.post(f"{daemon.url}/api/pickup", json={
                        "code": order["code"], "screen": "bench"}) as answer:
                    if answer.status != 200:
                        raise SystemExit(f"pickup of {order_id}: {await answer.text()}")
                await reach(config.database, order_id, "collected")
                await until(lambda: outbox_depth(config.database) == 0, 60, "the outbox")
            await asyncio.sleep(PUSH_SETTLE_S)
            t3 = time.monotonic()
            spent = proxy.total(t2) - idle_day * (t3 - t2) / DAY_S
            per_order = spent / max(args.wire_orders, 1)
            print(f"\n{args.wire_orders} orders through their life in {t3 - t2:.0f} s:"
                  f" {proxy.total(t2)} B, of which beyond idle {spent:.0f} B ="
                  f" {human(per_order)} an order (its item in the feed, its events, their acks)")
            print("\nsummary:")
            for orders_a_day in (0, 100, 1000):
                day = idle_day + orders_a_day * per_order
                print(f"  {orders_a_day:>4} orders a day: {human(day)} a day")
    finally:
        await daemon.stop()
        await central.stop()
        await proxy.stop()
        await boards.stop()


PUSH_SETTLE_S = 3.0  # after the outbox emptied: the last acknowledgement's bytes arrive


async def reach(database: Path, order_id: str, state: str) -> None:
    def there() -> bool:
        rows = read_only(database, "SELECT state FROM orders WHERE id = ?", (order_id,))
        return bool(rows) and rows[0][0] == state
    await until(there, 60, f"order {order_id} {state}")


if __name__ == "__main__":
    asyncio.run(main())
