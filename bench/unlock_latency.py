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
measured and shown apart. Prints figures, asserts nothing.

    python bench/unlock_latency.py [--protocol kerong] [--boards 8] [--pickups 120]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from locker.codes import create_keys, load_codes  # noqa: E402
from locker.config import load_config  # noqa: E402
from locker.orders import add_ready_order, parse_bag  # noqa: E402
from locker.store import Store  # noqa: E402
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="kerong", choices=sorted(FRAMES))
    parser.add_argument("--boards", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--orders", type=int, default=0,
                        help="active orders to hold (default: one per compartment)")
    parser.add_argument("--pickups", type=int, default=120)
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU sample length")
    parser.add_argument("--http-port", type=int, default=18080)
    args = parser.parse_args()
    baud = 19200 if args.protocol == "kerong" else 9600
    folder = Path(tempfile.mkdtemp(prefix="bench-unlock-"))
    path = write_config(folder, args.protocol, args.boards, args.channels, baud, args.http_port)
    config = load_config(path)
    create_keys(config)
    codes = load_codes(config)
    orders = args.orders or len(config.compartments)
    store = Store(config.database)
    boards = await spawn(path, auto_close_s=0.3)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "locker.cli", "run", "--config", str(path),
         "--serial-port", boards.port],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
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
                if time.monotonic() - started > 20 or daemon.poll() is not None:
                    raise SystemExit("the daemon did not become ready")
                await asyncio.sleep(0.05)
            ready_s = time.monotonic() - started
            # the daemon created the compartments at start; fill them with orders
            bags = [parse_bag(f"{c.zone.value}:M") for c in config.compartments][:orders]
            added = []
            for i, bag in enumerate(bags):
                added.append(add_ready_order(store, config, codes, time.time(), f"b{i}", [bag]))
            print(f"protocol {args.protocol} at {baud} baud, {args.boards} boards,"
                  f" {len(config.compartments)} compartments, {len(added)} active orders")
            await asyncio.sleep(1.0)
            idle_from = cpu_seconds(daemon.pid)
            await asyncio.sleep(args.idle_s)
            idle_cpu = (cpu_seconds(daemon.pid) - idle_from) / args.idle_s * 100
            rss, _ = rss_kb(daemon.pid)
            rng = random.Random(1)
            sent: list[int] = []
            frames_before = (await boards.client.history())["frames_next"]
            for order in added[: args.pickups]:
                await asyncio.sleep(rng.uniform(0.0, 0.25))  # land at any phase of the polls
                t0 = time.perf_counter_ns()
                async with http.post(f"{url}/api/pickup",
                                     json={"code": order.code, "screen": "bench"}) as r:
                    if r.status != 200:
                        raise SystemExit(f"pickup failed: {r.status} {await r.text()}")
                sent.append(t0)
            await asyncio.sleep(0.5)
            history = await boards.client.history(frames_since=frames_before)
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
        ours_ms = [lat - late for lat, late in zip(latencies_ms, sim_late_ms, strict=True)]
        unlock_bytes, status_bytes = FRAMES[args.protocol]
        if args.protocol == "generic":  # its reply grows with the channels: 4 + max(3, ch/8)
            status_bytes = 5 + 4 + max(3, -(-args.channels // 8))
        byte_s = 10 / baud
        gap_s = 3.5 * byte_s  # the protocol's silence between frames
        floor_ms = (unlock_bytes * byte_s + status_bytes * byte_s + TURNAROUND_S + gap_s) * 1000
        _, hwm = rss_kb(daemon.pid)
        p50, p99 = percentile(latencies_ms, 50), percentile(latencies_ms, 99)
        o50, o99 = percentile(ours_ms, 50), percentile(ours_ms, 99)
        print(f"unlock latency over {len(latencies_ms)} pickups (code POSTed -> last byte on the"
              " wire):")
        print(f"  as measured:                p50 {p50:.2f} ms   p99 {p99:.2f} ms"
              f"   max {max(latencies_ms):.2f} ms")
        print(f"  less the simulator's lateness: p50 {o50:.2f} ms   p99 {o99:.2f} ms"
              f"   (its reply timers ran late by p99 {percentile(sim_late_ms, 99):.2f} ms)")
        print(f"  bus floor {floor_ms:.2f} ms (unlock {unlock_bytes} B + one status transaction"
              f" {status_bytes} B + {TURNAROUND_S * 1000:.0f} ms turnaround + 3.5-character gap,"
              f" at {baud} baud)")
        print(f"  p99 above the floor: {p99 - floor_ms:.2f} ms as measured,"
              f" {o99 - floor_ms:.2f} ms ours (target: within 2 ms)")
        print(f"daemon RSS {rss / 1024:.1f} MB idle with {len(added)} active orders,"
              f" peak {hwm / 1024:.1f} MB (target: under 60 MB)")
        print(f"daemon CPU idle, {args.boards} boards polled every 0.25 s: {idle_cpu:.2f} %"
              " of one core (target: under 3 %)")
        print(f"start to ready (as seen over HTTP, incl. interpreter start): {ready_s:.2f} s")
    finally:
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


if __name__ == "__main__":
    asyncio.run(main())
