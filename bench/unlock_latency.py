"""Code accepted -> unlock frame on the wire, while every board is polled; and the daemon's RSS.

Three processes, as on a real locker: the simulated boards (their own process, on a
pseudo-terminal, pacing the line at the configured baud), the daemon (`locker run`, a
subprocess), and this script acting as the touchscreen over HTTP. For each pickup:

    t0      = just before this script sends POST /api/pickup (so HTTP is counted against us)
    t_wire  = when the simulator's line model puts the unlock frame's last byte on the wire

Both are CLOCK_MONOTONIC (perf_counter_ns), comparable across processes on one machine.
The bus floor is the unlock frame's own time plus one status transaction in flight (request,
board turnaround, reply) and the protocol's 3.5-character gap after it, at the configured baud;
anything above it is ours. The simulator's timers wake up to ~2 ms late; that lateness is
measured and shown apart. CPU is the daemon's utime + stime from /proc: per poll transaction
(idle CPU over the status requests the boards received meanwhile) and per pickup (HTTP to
pulses, the idle rate taken off). Prints figures, asserts nothing.

    python bench/unlock_latency.py [--protocol kerong] [--boards 8] [--pickups 120]
    python bench/unlock_latency.py --cpu-quota 25   # the daemon capped at 25 % of one core,
                                                    # a CPU hog on every core beside it
    python bench/unlock_latency.py --scale          # p99 and RSS by orders in store x boards
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientSession

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from locker.domain import lockboards  # noqa: E402
from locker.domain.codes import PickupCodes, create_keys, load_codes  # noqa: E402
from locker.domain.config import LockerConfig, load_config  # noqa: E402
from locker.domain.daemon import sync_compartments  # noqa: E402
from locker.domain.lifecycle.order import cancel, draw_code  # noqa: E402
from locker.domain.orders import AddedOrder, add_ready_order, parse_bag, receive  # noqa: E402
from locker.domain.store import Store  # noqa: E402
from simulator.control import spawn  # noqa: E402

# bytes of an unlock request and of a status transaction (request + reply) per protocol
# (generic: for boards of up to 24 channels; computed from --channels below)
FRAMES = {"kerong": (5, 5 + 9), "generic": (5, 5 + 7), "winnsen": (6, 6 + 7)}
TURNAROUND_S = 0.001  # the simulated board's turnaround (simulator default)
ZONES = ("ambient", "fresh", "frozen")


def write_config(folder: Path, protocol: str, boards: int, channels: int, baud: int,
                 http_port: int) -> Path:
    first = 1 if protocol == "generic" else 0
    lines = []
    for b in range(boards):
        for ch in range(1, channels + 1):
            zone = ZONES[(b * channels + ch) % 3]
            lines.append(f'  {{ id = "B{b}C{ch:02d}", zone = "{zone}", size = "M",'
                         f" board = {first + b}, channel = {ch} }},")
    board_tables = "\n".join(f"[[bus.boards]]\naddress = {first + b}\nchannels = {channels}\n"
                             for b in range(boards))
    text = f"""
[locker]
id = "bench"
data_dir = "data"
[http]
port = {http_port}
[bus]
port = "/dev/null"
protocol = "{protocol}"
baud = {baud}
poll_interval_s = 0.25
{board_tables}
[layout]
compartments = [
{chr(10).join(lines)}
]
"""
    path = folder / "bench.toml"
    path.write_text(text)
    return path


def rss_kb(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]



@dataclass
class Run:
    """One daemon's figures."""

    ready_s: float
    ready_log: str
    floor_ms: float
    latencies_ms: list[float]
    sim_late_ms: list[float]
    rss_kb: int
    hwm_kb: int
    idle_cpu_pct: float
    cpu_per_poll_us: float
    cpu_per_pickup_us: float
    orders: int
    active: int


def fill_store(store: Store, config: LockerConfig, codes: PickupCodes, total: int,
               active: int) -> list[AddedOrder]:
    """`active` ready orders (one bag each) and `total - active` finished ones, as months of
    operation leave them: received and cancelled through the lifecycle, in one transaction."""
    now = time.time()
    bag = parse_bag("ambient:M")
    with store.transaction(now) as tx:
        for i in range(total - active):
            order_id = f"old{i}"
            _, digest = draw_code(tx, codes, order_id)
            receive(tx, config, order_id, [bag], code_digest=digest)
            cancel(tx, order_id, "bench", "history")
    bags = [parse_bag(f"{c.zone.value}:M") for c in config.compartments][:active]
    return [add_ready_order(store, config, codes, now, f"b{i}", [b]) for i, b in enumerate(bags)]


def cgroup_for_quota(percent: float) -> tuple[Path | None, str]:
    """A CPU cgroup capped at `percent` of one core, or None and the reason it cannot be made.

    cgroup v2 (`cpu.max`) where the cpu controller is on the unified hierarchy; else v1's CFS
    bandwidth (`cpu.cfs_quota_us`, the same scheduler mechanism), as root.
    """
    quota_us, period_us = int(percent * 1000), 100_000
    root = Path("/sys/fs/cgroup")
    if os.geteuid() != 0:
        return None, "cgroups are written as root here (no systemd to delegate them); run as root"
    try:
        controllers = root / "cgroup.controllers"  # absent on a v1 or hybrid mount
        if controllers.exists() and "cpu" in controllers.read_text().split():
            (root / "cgroup.subtree_control").write_text("+cpu")
            group = root / f"bench-unlock-{os.getpid()}"
            group.mkdir()
            (group / "cpu.max").write_text(f"{quota_us} {period_us}")
            return group, f"cgroup v2 {group}/cpu.max = {quota_us} {period_us}"
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").exists():
            group = v1 / f"bench-unlock-{os.getpid()}"
            group.mkdir()
            (group / "cpu.cfs_period_us").write_text(str(period_us))
            (group / "cpu.cfs_quota_us").write_text(str(quota_us))
            return group, (f"cgroup v1 {group}: cpu.cfs_quota_us {quota_us} per"
                           f" cpu.cfs_period_us {period_us} (no cpu controller on cgroup v2 here)")
    except OSError as exc:
        return None, f"cannot make a CPU cgroup: {exc}"
    return None, "no cgroup CPU controller is mounted (neither v2 cpu.max nor v1 cpu)"


def hogs() -> list[subprocess.Popen[bytes]]:
    """One busy loop per core, beside the daemon, at the same priority."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 1)]


def status_requests(frames: list[dict[str, object]]) -> int:
    return sum(1 for f in frames if f["direction"] == "rx" and f["command"] == "status")


async def run(args: argparse.Namespace, boards_n: int, orders_total: int, pickups: int,
              idle_s: float, cgroup: Path | None = None, hog: bool = False) -> Run:
    baud = lockboards.lookup(args.protocol).default_baud
    folder = Path(tempfile.mkdtemp(prefix="bench-unlock-"))
    path = write_config(folder, args.protocol, boards_n, args.channels, baud, args.http_port)
    config = load_config(path)
    create_keys(config)
    codes = load_codes(config)
    compartments = len(config.compartments)
    active = min(args.orders or compartments, compartments, orders_total or compartments)
    store = Store(config.database)
    sync_compartments(store, config, time.time())
    added = fill_store(store, config, codes, max(orders_total, active), active)
    boards = await spawn(path, auto_close_s=0.3)
    hogging: list[subprocess.Popen[bytes]] = []
    if hog and os.geteuid() == 0:  # the simulator stands for hardware: the hog must not slow it
        os.setpriority(os.PRIO_PROCESS, boards.process.pid, -10)

    def enter_cgroup() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    daemon = subprocess.Popen(
        [sys.executable, "-m", "locker.cli", "run", "--config", str(path),
         "--serial-port", boards.port],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, preexec_fn=enter_cgroup)
    ready_log = ""
    try:
        async with ClientSession() as http:
            url = f"http://127.0.0.1:{args.http_port}"
            started = time.monotonic()
            while True:
                try:
                    async with http.get(f"{url}/api/health") as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() - started > 60 or daemon.poll() is not None:
                    raise SystemExit("the daemon did not become ready")
                await asyncio.sleep(0.05)
            ready_s = time.monotonic() - started
            if hog:
                hogging = hogs()
            await asyncio.sleep(1.0)
            frames_before = (await boards.client.history())["frames_next"]
            idle_from = cpu_seconds(daemon.pid)
            await asyncio.sleep(idle_s)
            idle_cpu_s = cpu_seconds(daemon.pid) - idle_from
            idle_history = await boards.client.history(frames_since=frames_before)
            polls = status_requests(idle_history["frames"])
            rss, _ = rss_kb(daemon.pid)
            rng = random.Random(1)
            sent: list[int] = []
            frames_before = idle_history["frames_next"]
            busy_from, busy_t0 = cpu_seconds(daemon.pid), time.monotonic()
            for order in added[:pickups]:
                await asyncio.sleep(rng.uniform(0.0, 0.25))  # land at any phase of the polls
                t0 = time.perf_counter_ns()
                async with http.post(f"{url}/api/pickup",
                                     json={"code": order.code, "screen": "bench"}) as r:
                    if r.status != 200:
                        raise SystemExit(f"pickup failed: {r.status} {await r.text()}")
                sent.append(t0)
            await asyncio.sleep(0.5)
            busy_cpu_s = cpu_seconds(daemon.pid) - busy_from
            busy_s = time.monotonic() - busy_t0
            history = await boards.client.history(frames_since=frames_before)
        for process in hogging:
            process.kill()
        frames = history["frames"]
        unlock_at = [i for i, f in enumerate(frames)
                     if f["direction"] == "rx" and f["command"] == "unlock"]
        if len(unlock_at) != len(sent):
            raise SystemExit(f"{len(sent)} pickups but {len(unlock_at)} unlock frames seen")
        latencies_ms, sim_late_ms = [], []
        for t0, i in zip(sent, unlock_at, strict=True):
            unlock = frames[i]
            latencies_ms.append(((unlock.get("wire_end_ns") or unlock["t_ns"]) - t0) / 1e6)
            # the simulator's own timer slop: how late it delivered the reply the daemon was
            # waiting for (a real board is not late); the daemon cannot write before it
            replies = [f for f in frames[:i] if f["direction"] == "tx" and f["t_ns"] >= t0]
            late = [(f["t_ns"] - f["wire_end_ns"]) / 1e6 for f in replies if f.get("wire_end_ns")]
            sim_late_ms.append(max([0.0, *late]))
        unlock_bytes, status_bytes = FRAMES[args.protocol]
        if args.protocol == "generic":  # its reply grows with the channels: 4 + max(3, ch/8)
            status_bytes = 5 + 4 + max(3, -(-args.channels // 8))
        byte_s = 10 / baud
        gap_s = 3.5 * byte_s  # the protocol's silence between frames
        floor_ms = (unlock_bytes * byte_s + status_bytes * byte_s + TURNAROUND_S + gap_s) * 1000
        _, hwm = rss_kb(daemon.pid)
        idle_rate = idle_cpu_s / idle_s
        pickup_cpu_s = max(0.0, busy_cpu_s - idle_rate * busy_s) / max(1, len(sent))
        return Run(ready_s, ready_log, floor_ms, latencies_ms, sim_late_ms, rss, hwm,
                   idle_rate * 100, idle_cpu_s / max(1, polls) * 1e6, pickup_cpu_s * 1e6,
                   max(orders_total, active), active)
    finally:
        for process in hogging:
            process.kill()
        daemon.terminate()
        try:
            _, err = daemon.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, err = daemon.communicate()
        for line in err.splitlines():
            if "ready in" in line:
                print("daemon:", line.split(": ", 1)[-1])
        store.close()
        await boards.stop()
        shutil.rmtree(folder, ignore_errors=True)


def report(args: argparse.Namespace, result: Run, target_ms: float) -> None:
    lat, ours = result.latencies_ms, [
        a - b for a, b in zip(result.latencies_ms, result.sim_late_ms, strict=True)]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    o50, o99 = percentile(ours, 50), percentile(ours, 99)
    floor = result.floor_ms
    print(f"unlock latency over {len(lat)} pickups (code POSTed -> last byte on the wire):")
    print(f"  as measured:                p50 {p50:.2f} ms   p99 {p99:.2f} ms"
          f"   max {max(lat):.2f} ms")
    print(f"  less the simulator's lateness: p50 {o50:.2f} ms   p99 {o99:.2f} ms"
          f"   (its reply timers ran late by p99 {percentile(result.sim_late_ms, 99):.2f} ms)")
    print(f"  bus floor {floor:.2f} ms (unlock + one status transaction + turnaround +"
          " 3.5-character gap)")
    print(f"  p99 above the floor: {p99 - floor:.2f} ms as measured, {o99 - floor:.2f} ms ours"
          f" (target: within {target_ms:g} ms); p99 / floor = {p99 / floor:.2f} as measured,"
          f" {o99 / floor:.2f} ours")
    print(f"daemon CPU: {result.cpu_per_poll_us:.0f} µs per poll transaction (target: at most"
          f" 100 µs), {result.cpu_per_pickup_us / 1000:.2f} ms per pickup (HTTP to pulses)")
    print(f"daemon CPU idle, {args.boards} boards polled every 0.25 s:"
          f" {result.idle_cpu_pct:.2f} % of one core (target: under 0.5 %)")
    print(f"daemon RSS {result.rss_kb / 1024:.1f} MB idle with {result.active} active orders"
          f" ({result.orders} in the store), peak {result.hwm_kb / 1024:.1f} MB"
          " (target: under 45 MB)")
    print(f"start to ready (as seen over HTTP, incl. interpreter start): {result.ready_s:.2f} s")


async def scale(args: argparse.Namespace) -> None:
    """p99 and RSS by orders in the store and boards on the bus: flat in one, linear in the
    other."""
    print(f"protocol {args.protocol}, {args.channels} channels a board, active orders = one per"
          f" compartment up to 300, the rest finished; {args.pickups} pickups a run")
    print("| orders in store | boards | p99 | p99 ours | floor | p99/floor | CPU/poll"
          " | CPU/pickup | idle CPU | RSS idle | peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for orders in (300, 3_000, 30_000):
        for boards_n in (1, 8, 16):
            r = await run(args, boards_n, orders, args.pickups, args.idle_s)
            ours = [a - b for a, b in zip(r.latencies_ms, r.sim_late_ms, strict=True)]
            p99 = percentile(r.latencies_ms, 99)
            print(f"| {r.orders:,} | {boards_n} | {p99:.2f} ms | {percentile(ours, 99):.2f} ms"
                  f" | {r.floor_ms:.2f} ms | {p99 / r.floor_ms:.2f}"
                  f" | {r.cpu_per_poll_us:.0f} µs | {r.cpu_per_pickup_us / 1000:.2f} ms"
                  f" | {r.idle_cpu_pct:.2f} % | {r.rss_kb / 1024:.1f} MB"
                  f" | {r.hwm_kb / 1024:.1f} MB |", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="kerong", choices=sorted(FRAMES))
    parser.add_argument("--boards", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--orders", type=int, default=0,
                        help="active orders to hold (default: one per compartment)")
    parser.add_argument("--history", type=int, default=0,
                        help="finished orders in the store besides the active ones")
    parser.add_argument("--pickups", type=int, default=120)
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU sample length")
    parser.add_argument("--http-port", type=int, default=18080)
    parser.add_argument("--cpu-quota", type=float, default=0.0, metavar="PERCENT",
                        help="cap the daemon at PERCENT of one core, a CPU hog beside it")
    parser.add_argument("--scale", action="store_true",
                        help="the table: 300 / 3,000 / 30,000 orders x 1 / 8 / 16 boards")
    args = parser.parse_args()
    if args.scale:
        if not args.pickups or args.pickups == 120:
            args.pickups = 60
        await scale(args)
        return
    cgroup = None
    if args.cpu_quota:
        cgroup, how = cgroup_for_quota(args.cpu_quota)
        if cgroup is None:
            print(f"--cpu-quota {args.cpu_quota:g}: skipped: {how}")
            return
        print(f"daemon capped at {args.cpu_quota:g} % of one core: {how};"
              f" {os.cpu_count()} CPU hogs beside it (the simulator at nice -10)")
    try:
        active = args.orders or args.boards * args.channels
        result = await run(args, args.boards, active + args.history, args.pickups, args.idle_s,
                           cgroup, hog=bool(args.cpu_quota))
        print(f"protocol {args.protocol}, {args.boards} boards x {args.channels} channels,"
              f" {result.active} active orders, {result.orders} in the store")
        report(args, result, 2.0 if args.cpu_quota else 1.0)
        if cgroup is not None:
            stat = dict(line.split() for line in (cgroup / "cpu.stat").read_text().splitlines())
            print(f"cgroup: throttled in {stat.get('nr_throttled', '?')} of"
                  f" {stat.get('nr_periods', '?')} periods of 100 ms")
    finally:
        if cgroup is not None:
            cgroup.rmdir()


if __name__ == "__main__":
    asyncio.run(main())
