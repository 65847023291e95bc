"""On a Pi-sized budget: the daemon's memory, idle CPU and bytes written a day, next to DESIGN.md 8.

Four processes, as on a locker in the field: the simulated lock boards (`simulator.control.spawn`,
on a pseudo-terminal: 8 generic boards x 40 channels = 320 compartments, 9600 baud, every board
polled every 0.25 s), the daemon (`locker --log-format json run`, a subprocess, with
GPIOZERO_PIN_FACTORY=mock so gpiozero's mock pins serve the compressor relays), the reference
central (`python -m simulator.central`, a subprocess; the locker is provisioned as `locker
simulate` does), and this script, which runs the fresh and frozen zones' thermal models
(`simulator.thermal.ThermalRig`, their DS18B20 files in /dev/shm as sysfs is in memory on a Pi),
plays courier and customers over HTTP, and reads the daemon's /proc files.

Before the daemon starts, 300 orders are made ready in the store (received, allocated, activated:
`add_ready_order`'s steps, each with a random code of the locker's own drawing). 20
compartments stay free for the orders whose life is measured.

1. Memory: VmRSS once idle, and VmHWM (the peak) at the end, from /proc/<pid>/status.
2. CPU when idle: utime + stime from /proc/<pid>/stat over --cpu-s seconds, % of one core.
3. Bytes written a day (/proc/<pid>/io write_bytes: what the process sends towards the block
   device, SQLite's WAL appends and checkpoints; its logs go to a pipe and are not counted):
   a. idle, over --idle-s seconds (polls, zone loops reading their probes every 10 s, heartbeats
      to central), sampled every second; seconds in which the HACCP record was written are left
      out (that record is c.), the rest extrapolated to 24 h;
   b. an order's whole life, --orders of them in waves of up to 20 (the free compartments; a
      courier a wave): central creates it, the locker receives it from the feed, a courier logs
      in (TOTP) and loads it, the simulated door closes, the customer collects it with central's
      code, the door closes, central acknowledges every event. With --pace one (the default)
      each order goes through each step alone and its events are acknowledged before the next
      starts, as orders, loads and pickups come one at a time in the field; --pace together
      sends a wave's orders at once, so door changes and acknowledgements share commits. The
      daemon's bytes over the waves, less the idle rate over the same time and any HACCP record
      written meanwhile (at c.'s cost a record), plus the checkpoint of what the WAL still held
      at the end (run by this script: its own write_bytes), divided by the orders. Each stage's
      commits and the pages they wrote are read from the WAL file itself (frame headers), each
      page named by its table or index (dbstat);
   c. the cold chain's HACCP record (every 5 minutes, so not seen in a short window): the
      simulated day of bench/coldchain.py (its `day_of_zone_loops`, run here after the daemon
      stopped).
   Then a day: a. + c. + orders a day x b., for --day-orders workloads, against 20 MB.

Prints figures, asserts nothing. About 3 minutes with the defaults.

    python bench/pi_budget.py [--orders 40] [--idle-s 60] [--cpu-s 30] [--pace one|together]
                              [--day-orders 100,150] [--coldchain-mb MB]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import os
import platform
import re
import shlex
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import cpu_seconds, mount_of, proc_fields, until, write_bytes  # noqa: E402
from locker.domain.codes import PickupCodes, load_codes  # noqa: E402
from locker.domain.config import LockerConfig, load_config  # noqa: E402
from locker.domain.daemon import sync_compartments  # noqa: E402
from locker.domain.lifecycle.order import draw_code  # noqa: E402
from locker.domain.orders import activate, allocate_order, parse_bag, receive  # noqa: E402
from locker.domain.staff import create_secret  # noqa: E402
from locker.domain.store import PAGE_SIZE, Store  # noqa: E402
from simulator.control import spawn  # noqa: E402
from simulator.processes import Central, Daemon, free_port, read_only  # noqa: E402
from simulator.thermal import ThermalRig, ZoneModel  # noqa: E402

BOARDS, CHANNELS, BAUD = 8, 40, 9600
ZONES = ("ambient", "fresh", "frozen")
COMPRESSOR_PINS = {"fresh": 24, "frozen": 25}
# a simulated person closes a door this long after it opened (every board is read every 0.25 s)
AUTO_CLOSE_S = 0.6
MB = 1e6
DAY_S = 86400.0
TARGETS = {"rss": "under 60 MB", "cpu": "under 3 % of one core", "day": "under 20 MB"}


def write_config(folder: Path, w1: dict[str, Path], http_port: int, central_url: str,
                 couriers: int) -> Path:
    """8 generic boards x 40 channels, zones in turn, size M; fresh and frozen regulated by a
    probe file and a compressor relay each; couriers; a [central] table with its defaults."""
    lines = []
    for b in range(BOARDS):
        for ch in range(1, CHANNELS + 1):
            zone = ZONES[(b * CHANNELS + ch) % 3]
            lines.append(f'  {{ id = "B{b}C{ch:02d}", zone = "{zone}", size = "M",'
                         f" board = {1 + b}, channel = {ch} }},")
    boards = "\n".join(f"[[bus.boards]]\naddress = {1 + b}\nchannels = {CHANNELS}\n"
                       for b in range(BOARDS))
    staff = "\n".join(f'[[staff.members]]\nid = "courier-{i}"\nname = "Courier {i}"\n'
                      'role = "courier"\n' for i in range(1, couriers + 1))
    zones = "\n".join(f'[zones.{zone}]\nprobe = "{w1[zone]}"\ncompressor_pin = {pin}\n'
                      for zone, pin in COMPRESSOR_PINS.items())
    text = f"""
[locker]
id = "bench-pi"
data_dir = "data"
[http]
port = {http_port}
[staff]
{staff}
[bus]
port = "/dev/null"
protocol = "generic"
baud = {BAUD}
poll_interval_s = 0.25
{boards}
{zones}
[central]
url = "{central_url}"
allow_insecure = true
[layout]
compartments = [
{chr(10).join(lines)}
]
"""
    path = folder / "locker.toml"
    path.write_text(text)
    return path


# ---- /proc ------------------------------------------------------------------------------------

def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = proc_fields(pid, "status")
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def rss_split(pid: int) -> str:
    """VmRSS's parts: anonymous memory (the heap) and file pages (shared libraries, mostly)."""
    fields = proc_fields(pid, "status")
    return ", ".join(f"{k[3:].lower()} {int(fields[k].split()[0]) / 1024:.1f} MB"
                     for k in ("RssAnon", "RssFile", "RssShmem") if k in fields)


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPUs ({platform.machine()}, {model}), Python"
            f" {platform.python_version()}, {platform.system()} {platform.release()}")


# ---- the store, read from outside ---------------------------------------------------------------

def count(database: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(read_only(database, sql, params)[0][0])


def wal_frames(database: Path) -> int:
    """mxFrame from the WAL index (the -shm file's header): frames (pages) in the WAL now. It
    drops back when a writer restarts the WAL after a checkpoint."""
    with contextlib.suppress(OSError):
        with open(f"{database}-shm", "rb") as f:
            header = f.read(48)
        if len(header) == 48:
            return int(struct.unpack_from("=I", header, 16)[0])
    return 0


def btree_names(database: Path) -> dict[int, str]:
    """Each page's table or index now (dbstat), an automatic index named by its columns."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        labels = {}
        for name, table in db.execute("SELECT name, tbl_name FROM sqlite_schema WHERE type ="
                                      " 'index' AND name LIKE 'sqlite_autoindex_%'"):
            columns = [r[2] for r in db.execute(f"PRAGMA index_info('{name}')")]
            labels[name] = f"{table}({','.join(columns)})"
        return {page: labels.get(name, name)
                for page, name in db.execute("SELECT pageno, name FROM dbstat")}
    finally:
        db.close()


def freed_page(page: bytes) -> str:
    """A page written in the WAL that belongs to no b-tree any more: freed since. A table leaf
    holding events was the outbox's (emptied by acknowledgements)."""
    if page[:1] == b"\x0d" and re.search(rb"(order|door|staff|telemetry|alarm)\.[a-z_]+", page):
        return "outbox (freed since)"
    return "freed since"


def wal_commits(database: Path, first: int, last: int) -> list[list[str]]:
    """The commits in WAL frames first+1 .. last (mxFrame numbering), each as the b-trees (tables
    and indexes, from dbstat) of the pages it wrote, one name a page. Read right after they were
    written, before a checkpoint lets the WAL start over."""
    names = btree_names(database)
    commits: list[list[str]] = []
    with open(f"{database}-wal", "rb") as f:
        header = f.read(32)
        page_size = struct.unpack(">I", header[8:12])[0]
        salts = header[16:24]
        current: list[str] = []
        f.seek(32 + first * (24 + page_size))
        for _ in range(first, last):
            frame = f.read(24 + page_size)
            if len(frame) < 24 or frame[8:16] != salts:
                break
            page, commit_size = struct.unpack(">II", frame[:8])
            current.append(names.get(page) or freed_page(frame[24:]))
            if commit_size:
                commits.append(current)
                current = []
    return commits


def commit_cost(folder: Path, commits: int = 100) -> str:
    """What one small commit costs in write_bytes on this disk, as the store makes them (WAL,
    PAGE_SIZE pages): a one-page UPDATE a commit, with synchronous FULL and NORMAL."""
    said = []
    for sync in ("FULL", "NORMAL"):
        path = folder / f"probe-{sync}.db"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {sync}")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t (v) VALUES ('x')")
        os.sync()
        before = write_bytes("self")
        for i in range(commits):
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE t SET v = ? WHERE id = 1", (str(i),))
            db.execute("COMMIT")
        said.append(f"{(write_bytes('self') - before) / commits / 1024:.1f} KiB ({sync})")
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return (f"a commit of one {PAGE_SIZE}-byte page in WAL mode writes {' / '.join(said)}"
            " (write_bytes, 4 KiB OS pages)")


def checkpoint(database: Path) -> int:
    """PRAGMA wal_checkpoint(TRUNCATE) from this process: the bytes it wrote doing so."""
    before = write_bytes("self")
    db = sqlite3.connect(database, timeout=10)
    try:
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        db.close()
    return write_bytes("self") - before


# ---- the processes (simulator/processes.py) ----------------------------------------------

async def settle(pid: int, quiet_s: float = 0.7) -> int:
    """Wait until the daemon has written nothing for `quiet_s`; its write_bytes then."""
    last = write_bytes(pid)
    while True:
        await asyncio.sleep(quiet_s)
        now = write_bytes(pid)
        if now == last:
            return now
        last = now


async def mirror_compressors(rig: ThermalRig, central: Central, session: ClientSession,
                             locker_id: str, seen: Counter[str], last: dict[str, Any]) -> None:
    """The relays are gpiozero mock pins inside the daemon: their state reaches the thermal
    models here through the daemon's heartbeat to central (every heartbeat_s, 60 s by default),
    which costs the daemon nothing it would not do anyway."""
    while True:
        with contextlib.suppress(Exception):
            lockers = await central.admin(session, "GET", "/lockers")
            beat = next((x["heartbeat"] for x in lockers["lockers"] if x["id"] == locker_id),
                        None) if isinstance(lockers, dict) else None
            if beat:
                last.update(beat.get("zones") or {})
            for zone, state in ((beat or {}).get("zones") or {}).items():
                if zone in rig.compressors and state.get("compressor") is not None:
                    on = bool(state["compressor"])
                    if rig.compressors[zone].on != on:
                        seen[f"{zone} {'on' if on else 'off'}"] += 1
                    rig.compressors[zone].switch(on)
        await asyncio.sleep(5)


def coldchain_day() -> Any:
    """bench/coldchain.py, loaded from its file (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_coldchain",
                                                  ROOT / "bench" / "coldchain.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.day_of_zone_loops


async def haccp_day_bytes(parent: Path | None) -> tuple[float, str]:
    """Bytes written by a simulated day of the zone loops (bench/coldchain.py), and its words."""
    day = coldchain_day()
    with tempfile.TemporaryDirectory(prefix="bench-pi-cold-", dir=parent) as tmp, \
            tempfile.TemporaryDirectory(prefix="bench-pi-w1-", dir="/dev/shm") as w1:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            await day(Path(tmp) / "day", Path(w1))
    said = out.getvalue().strip()
    found = re.search(r"([0-9.]+) MB written to disk", said)
    if found is None:
        raise SystemExit(f"bench/coldchain.py said something unexpected: {said!r}")
    return float(found.group(1)) * MB, said


# ---- the benchmark ------------------------------------------------------------------------------

def add_active_orders(config: LockerConfig, codes: PickupCodes, free: dict[str, int]) -> int:
    """300 ready orders (one bag of size M each) before the daemon starts; `free` compartments of
    each zone stay empty. add_ready_order's draw, receive, allocate, activate, in the store."""
    store = Store(config.database)
    try:
        now = time.time()
        sync_compartments(store, config, now)
        per_zone = Counter(c.zone.value for c in config.compartments)
        wanted = [z for z in ZONES for _ in range(per_zone[z] - free[z])]
        for i, zone in enumerate(wanted):
            with store.transaction(now) as tx:
                order_id = f"active-{i:03d}"
                _, digest = draw_code(tx, codes, order_id)
                receive(tx, config, order_id, [parse_bag(f"{zone}:M")], code_digest=digest)
                allocate_order(tx, config, order_id)
                activate(tx, order_id)
        return len(wanted)
    finally:
        store.close()


@dataclass
class Stage:
    """One stage of the orders' life, summed over the waves."""

    written: int = 0
    frames: int = 0
    orders: int = 0  # orders of the waves whose WAL frames were read
    events: Counter[str] = field(default_factory=Counter)
    commits: int = 0
    pages: Counter[str] = field(default_factory=Counter)  # pages written, by b-tree
    shapes: Counter[tuple[str, ...]] = field(default_factory=Counter)  # commits, by b-trees
    shape_pages: Counter[tuple[str, ...]] = field(default_factory=Counter)

    def add(self, written: int, events: Counter[str], orders: int,
            commits: list[list[str]] | None) -> None:
        self.written += written
        self.events += events
        if commits is None:
            return  # the WAL started over after a checkpoint in between: pages not known
        self.orders += orders
        for pages in commits:
            self.commits += 1
            self.frames += len(pages)
            self.pages.update(pages)
            shape = tuple(sorted(set(pages)))
            self.shapes[shape] += 1
            self.shape_pages[shape] += len(pages)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=40,
                        help="orders taken through their whole life (in waves of up to 20)")
    parser.add_argument("--pace", choices=("one", "together"), default="one",
                        help="one: each order received, loaded and collected alone, its events"
                        " acknowledged before the next (as in the field); together: a wave's"
                        " orders at once (door changes and acknowledgements share commits; give"
                        " --auto-close-s 2 so that 20 doors opened at once are all seen open)")
    parser.add_argument("--auto-close-s", type=float, default=AUTO_CLOSE_S,
                        help="the simulated person closes a door this long after it opened")
    parser.add_argument("--idle-s", type=float, default=60.0,
                        help="idle window for the bytes written (seconds)")
    parser.add_argument("--cpu-s", type=float, default=30.0,
                        help="idle CPU window, the start of the idle window (seconds)")
    parser.add_argument("--day-orders", default="100,150",
                        help="orders a day for the day's totals, comma-separated")
    parser.add_argument("--coldchain-mb", type=float, default=None,
                        help="take the HACCP record's MB a day from here instead of running"
                        " bench/coldchain.py's simulated day (about 18 s)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the stores live (default: a new folder under the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    args = parser.parse_args()
    day_orders = [int(x) for x in args.day_orders.split(",") if x.strip()]
    parent = args.dir.resolve() if args.dir else None
    if parent:
        parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-pi-", dir=parent))
    w1_root = Path(tempfile.mkdtemp(prefix="bench-pi-w1-", dir="/dev/shm"))
    began = time.monotonic()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {machine()}; store on {mount_of(folder)}; load average"
          f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    print("disk:", commit_cost(folder))
    central = Central(folder / "central", free_port())
    http_port = free_port()
    # the zones' physics: fresh just under its compressor's cut-in (setpoint 2.5 + 0.5), frozen
    # just under its own (-21 + 0.5), so that each compressor switches on during the run
    rig = ThermalRig(w1_root, {"fresh": ZoneModel.fresh(), "frozen": ZoneModel.frozen()})
    rig.models["fresh"].temp_c, rig.models["frozen"].temp_c = 2.95, -20.55
    for zone, model in rig.models.items():
        model.write_w1_slave(rig.files[zone])
    free = {"ambient": 7, "fresh": 7, "frozen": 6}  # compartments left free for the waves
    # a courier a wave: a TOTP code is accepted once, and waves come faster than its 30 s step
    waves = -(-args.orders // sum(free.values()))
    path = write_config(folder, rig.files, http_port, central.url + "/v1", waves)
    config = load_config(path)
    assert config.central is not None and config.bus is not None
    couriers = [m.id for m in config.staff.members if m.role == "courier"]
    for member in couriers:
        create_secret(config.staff_secret_file(member))
    boards = None
    daemon: Daemon | None = None
    tasks: list[asyncio.Task[None]] = []
    switches: Counter[str] = Counter()
    beat: dict[str, Any] = {}  # the zones as the daemon's last heartbeat told central
    results: dict[str, Any] = {}
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as session:
            # -- provisioning (as locker/demo.py's enrol), 300 ready orders, the processes --------
            await central.start()
            await central.enrol(session, config)
            codes = load_codes(config)
            active = add_active_orders(config, codes, free)
            database = config.database
            boards = await spawn(path, auto_close_s=args.auto_close_s)
            daemon = Daemon(path, boards.port, http_port, options=("--log-format", "json"),
                            env={"GPIOZERO_PIN_FACTORY": "mock"}, start_timeout_s=30,
                            stop_timeout_s=15)
            tasks.append(asyncio.create_task(rig.run(), name="thermal models"))
            ready_s = await daemon.start(session)
            tasks.append(asyncio.create_task(
                mirror_compressors(rig, central, session, config.locker_id, switches, beat)))
            pid = daemon.pid
            print(f"locker: {len(config.compartments)} compartments on {BOARDS} generic boards x"
                  f" {CHANNELS} channels at {BAUD} baud, polled every"
                  f" {config.bus.poll_interval_s} s; zones fresh and frozen regulated (DS18B20"
                  f" files in {w1_root}, compressor relays on mock GPIO"
                  f" {', '.join(str(p) for p in COMPRESSOR_PINS.values())}); {active} active"
                  f" orders; [central] heartbeat every {config.central.heartbeat_s:.0f} s,"
                  f" batches of {config.central.batch_size}")
            print(f"daemon: {shlex.join(['python', *daemon.argv[1:]])}"
                  f" (GPIOZERO_PIN_FACTORY=mock); ready over HTTP {ready_s:.2f} s after its start")
            # the 300 orders' events go to central first
            await until(lambda: count(database, "SELECT COUNT(*) FROM outbox") == 0, 60,
                        "the outbox to empty after the start", 0.1)
            await settle(pid)
            checkpoint(database)
            await asyncio.sleep(2.0)
            rss_idle, _ = memory_kb(pid)
            print(f"\n1. memory: VmRSS {rss_idle / 1024:.1f} MB idle ({rss_split(pid)})")

            # -- 2 and 3a. idle: CPU over the first cpu_s, bytes written over idle_s -------------
            window = max(args.idle_s, args.cpu_s)
            print(f"2./3a. idle for {window:.0f} s (CPU over the first {args.cpu_s:.0f} s, bytes"
                  f" over {args.idle_s:.0f} s, sampled every second) ...", flush=True)
            t0, cpu0, log0 = time.monotonic(), cpu_seconds(pid), daemon.log_bytes
            temps0 = count(database, "SELECT COUNT(*) FROM temperatures")
            samples = [(0.0, write_bytes(pid), temps0)]
            cpu_pct = None
            next_at = t0
            while True:
                next_at += 1.0
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                at = time.monotonic() - t0
                if cpu_pct is None and at >= args.cpu_s - 1e-6:
                    cpu_pct = (cpu_seconds(pid) - cpu0) / at * 100
                if at <= args.idle_s + 1e-6:
                    samples.append((at, write_bytes(pid),
                                    count(database, "SELECT COUNT(*) FROM temperatures")))
                if at >= window - 1e-6:
                    break
            cpu_window = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
            idle_log = (daemon.log_bytes - log0) / (time.monotonic() - t0)
            # leave out each second in which a HACCP record appeared, and its neighbours
            marked: set[int] = set()
            for i in range(1, len(samples)):
                if samples[i][2] != samples[i - 1][2]:
                    marked |= {i - 1, i, i + 1}
            kept_s = kept_b = record_b = 0.0
            for i in range(1, len(samples)):
                span, written = samples[i][0] - samples[i - 1][0], samples[i][1] - samples[i - 1][1]
                if i in marked:
                    record_b += written
                else:
                    kept_s, kept_b = kept_s + span, kept_b + written
            idle_rate = kept_b / kept_s if kept_s else 0.0
            records_idle = samples[-1][2] - temps0
            total_idle = samples[-1][1] - samples[0][1]
            print(f"   CPU {cpu_pct:.2f} % of one core over {args.cpu_s:.0f} s"
                  f" ({cpu_window:.2f} % over the whole {window:.0f} s)")
            print(f"   written {total_idle / 1024:.1f} KiB in {samples[-1][0]:.0f} s;"
                  f" {records_idle} HACCP readings recorded meanwhile"
                  + (f" (the {len(marked & set(range(1, len(samples))))} s around them wrote"
                     f" {record_b / 1024:.1f} KiB, left out here: that is c.)"
                     if records_idle else ""))
            print(f"   idle without the record: {kept_b / 1024:.1f} KiB in {kept_s:.0f} s ="
                  f" {idle_rate * DAY_S / MB:.2f} MB a day; the daemon logged"
                  f" {idle_log * DAY_S / MB:.2f} MB a day to its pipe (not counted)")
            results.update(cpu=cpu_pct, idle_day=idle_rate * DAY_S, record_seen=record_b,
                           records_idle=records_idle)

            # -- 3b. orders through their whole life, in waves -----------------------------------
            free_now = read_only(database, "SELECT zone, size FROM compartments WHERE state ="
                                 " 'free' ORDER BY id")
            wave_size = len(free_now)
            print(f"3b. {args.orders} orders through their life, in waves of up to {wave_size},"
                  f" {'one order at a time' if args.pace == 'one' else 'a wave at once'}"
                  " (central creates -> feed -> courier loads -> doors close -> customer"
                  " collects -> doors close -> events acknowledged) ...", flush=True)
            await settle(pid)
            checkpoint(database)
            start_b = await settle(pid)
            start_t, start_log = time.monotonic(), daemon.log_bytes
            temps_b0 = count(database, "SELECT COUNT(*) FROM temperatures")
            stages = {name: Stage() for name in ("received", "loaded", "collected")}
            done = 0
            wave = 0
            central_codes: dict[str, str] = {}

            central_db = central.data / "central.db"

            def central_arrival() -> int:
                return count(central_db, "SELECT COALESCE(MAX(arrival), 0) FROM events")

            async def measure(name: str, work: Any, orders: int) -> None:
                """Run one stage; then wait until central holds its events and the daemon is
                quiet. Its events are counted at central (all acknowledged by then)."""
                before_b, before_f, arrival = await settle(pid), wal_frames(database), \
                    central_arrival()
                await work()
                await until(lambda: count(database, "SELECT COUNT(*) FROM outbox") == 0,
                            60, "the outbox to empty")
                after_b, after_f = await settle(pid), wal_frames(database)
                kinds = Counter(dict(read_only(central_db, "SELECT kind, COUNT(*) FROM events"
                                               " WHERE arrival > ? GROUP BY kind", (arrival,))))
                commits = (wal_commits(database, before_f, after_f) if after_f >= before_f
                           else None)
                stages[name].add(after_b - before_b, kinds, orders, commits)

            async def one_done(order_id: str, state: str) -> None:
                """--pace one: this order has reached `state` and central holds its events
                before the next one starts, as when orders, couriers' loads and customers come
                one at a time."""
                await until(lambda: count(database, "SELECT COUNT(*) FROM orders WHERE id = ?"
                                          " AND state = ?", (order_id, state)) == 1, 60, state)
                await until(lambda: count(database, "SELECT COUNT(*) FROM outbox") == 0,
                            60, "the outbox to empty")

            while done < args.orders:
                n = min(wave_size, args.orders - done)
                ids = [f"life-{done + i:04d}" for i in range(n)]

                def in_state(state: str, ids: list[str] = ids) -> int:
                    marks = ", ".join("?" * len(ids))
                    return count(database, f"SELECT COUNT(*) FROM orders WHERE state = ? AND id"
                                 f" IN ({marks})", (state, *ids))

                async def create(ids: list[str] = ids) -> None:
                    for order_id, (zone, size) in zip(ids, free_now, strict=False):
                        order = await central.admin(
                            session, "POST", f"/lockers/{config.locker_id}/orders",
                            {"id": order_id, "window_hours": 72,
                             "bags": [{"zone": zone, "size": size}]})
                        central_codes[order_id] = order["code"]
                        if args.pace == "one":
                            await one_done(order_id, "received")
                    await until(lambda: in_state("received") == len(ids), 60, "the feed")

                async def load(ids: list[str] = ids, courier: str = couriers[wave]) -> None:
                    auth = await daemon.login(session, config, courier)
                    for order_id in ids:
                        async with session.post(
                                f"{daemon.url}/api/courier/orders/{order_id}/load",
                                json={"together": True}, headers=auth) as answer:
                            if answer.status != 200:
                                raise SystemExit(f"loading {order_id}: {await answer.text()}")
                        if args.pace == "one":
                            await one_done(order_id, "ready")
                    await until(lambda: in_state("ready") == len(ids), 60, "the loaded orders")
                    async with session.post(f"{daemon.url}/api/staff/logout", headers=auth):
                        pass

                async def collect(ids: list[str] = ids) -> None:
                    for order_id in ids:
                        async with session.post(f"{daemon.url}/api/pickup", json={
                                "code": central_codes[order_id], "screen": "bench"}) as answer:
                            if answer.status != 200:
                                raise SystemExit(f"pickup of {order_id}: {await answer.text()}")
                        if args.pace == "one":
                            await one_done(order_id, "collected")
                    await until(lambda: in_state("collected") == len(ids), 60, "collections")

                await measure("received", create, n)
                await measure("loaded", load, n)
                await measure("collected", collect, n)
                done += n
                wave += 1
            end_b = await settle(pid)
            end_t = time.monotonic()
            tail = checkpoint(database)
            temps_b = count(database, "SELECT COUNT(*) FROM temperatures") - temps_b0
            life_log = daemon.log_bytes - start_log
            rss_end, hwm = memory_kb(pid)
            print(f"   memory at the end: VmRSS {rss_end / 1024:.1f} MB ({rss_split(pid)}), VmHWM"
                  f" {hwm / 1024:.1f} MB")
            results.update(active=active, life_raw=end_b - start_b, life_s=end_t - start_t,
                           tail=tail, temps_b=temps_b, stages=stages, rss_idle=rss_idle,
                           rss_end=rss_end, hwm=hwm, life_log=life_log)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if daemon is not None:
            await daemon.stop()
        await central.stop()
        if boards is not None:
            await boards.stop()
        shutil.rmtree(w1_root, ignore_errors=True)

    # -- 3c. the HACCP record: bench/coldchain.py's simulated day ---------------------------------
    if args.coldchain_mb is None:
        print("3c. bench/coldchain.py's simulated day of the zone loops (about 18 s) ...",
              flush=True)
        haccp_day, said = await haccp_day_bytes(parent)
        print("   coldchain:", said)
    else:
        haccp_day = args.coldchain_mb * MB
        print(f"3c. HACCP record a day: {args.coldchain_mb} MB, as given (--coldchain-mb)")

    # -- the figures ------------------------------------------------------------------------------
    orders = args.orders
    life_s = results["life_s"]
    records = results["temps_b"] / len(COMPRESSOR_PINS)  # both zones record at the same time
    per_record_time = haccp_day / (DAY_S / 300)
    background = results["idle_day"] / DAY_S * life_s + records * per_record_time
    per_order = (results["life_raw"] - background + results["tail"]) / orders
    stages = results["stages"]
    print(f"\n3b. {orders} orders in {life_s:.0f} s: the daemon wrote"
          f" {results['life_raw'] / 1024:.0f} KiB; less idle and HACCP meanwhile"
          f" ({background / 1024:.0f} KiB: {life_s:.0f} s idle,"
          f" {records:.0f} record time(s) at {per_record_time / 1024:.1f} KiB), plus the"
          f" checkpoint of the WAL's rest by this script ({results['tail'] / 1024:.0f} KiB)"
          f" = {per_order / 1024:.1f} KiB an order; it logged"
          f" {results['life_log'] / orders:.0f} B an order to its pipe (not counted)")
    print("   by stage (each with its events sent and acknowledged), an order each: bytes the"
          " daemon wrote; from the WAL itself, commits and pages (1 KiB) written:")
    for name, stage in stages.items():
        known = stage.orders or 1
        print(f"   {name:>9}: {stage.written / orders / 1024:5.1f} KiB written,"
              f" {stage.commits / known:4.1f} commits, {stage.frames / known:5.1f} pages"
              f" (from {stage.orders} of the {orders} orders); events:"
              f" {', '.join(f'{k} {v / orders:g}' for k, v in stage.events.most_common())}")
        print("             pages an order by b-tree: " + ", ".join(
            f"{k} {v / known:.1f}" for k, v in stage.pages.most_common(8)))
        for shape, n in stage.shapes.most_common(5):
            print(f"             {n / known:4.1f} commits an order of"
                  f" {stage.shape_pages[shape] / n:4.1f} pages touching {' + '.join(shape)}")
    rss_idle, rss_end, hwm = results["rss_idle"], results["rss_end"], results["hwm"]
    idle_day = results["idle_day"]
    print(f"\nsummary, next to DESIGN.md section 8 ({BOARDS} boards x {CHANNELS}, 3 zones (2"
          f" regulated), {results['active']} active orders; MB = 10^6 bytes):")
    rows = [
        ("daemon RSS idle / at the end / peak (VmHWM)",
         f"{rss_idle / 1024:.1f} / {rss_end / 1024:.1f} / {hwm / 1024:.1f} MB", TARGETS["rss"]),
        (f"CPU idle, {BOARDS} boards polled every 0.25 s ({args.cpu_s:.0f} s)",
         f"{results['cpu']:.2f} % of one core", TARGETS["cpu"]),
        ("bytes written a day, idle (a)", f"{idle_day / MB:.2f} MB", ""),
        ("bytes written an order, whole life (b)", f"{per_order / 1024:.1f} KiB", ""),
        ("bytes written a day, HACCP record (c, bench/coldchain.py)",
         f"{haccp_day / MB:.2f} MB", ""),
    ]
    for n in day_orders:
        total = idle_day + haccp_day + n * per_order
        rows.append((f"a day with {n} orders: a + c + {n} x b", f"{total / MB:.1f} MB",
                     TARGETS["day"]))
    room = (20 * MB - idle_day - haccp_day) / per_order if per_order > 0 else float("inf")
    rows.append(("orders a day within 20 MB", f"{room:.0f}", ""))
    width = max(len(r[0]) for r in rows)
    for what, measured, target in rows:
        print(f"  {what:<{width}}  {measured:<22} {target}")
    print(f"compressor switches seen through the heartbeats: {dict(switches) or 'none'};"
          " zones at the last heartbeat: " + (", ".join(
              f"{z} {v.get('celsius')} °C compressor {v.get('compressor')}"
              for z, v in sorted(beat.items())) or "none seen") + "; the models at the end: "
          + ", ".join(
              f"{z} {m.temp_c:.2f} °C" for z, m in rig.models.items()))
    if args.keep:
        print(f"stores kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"bench ran {time.monotonic() - began:.0f} s; load average"
          f" {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes share this machine)")


if __name__ == "__main__":
    asyncio.run(main())
