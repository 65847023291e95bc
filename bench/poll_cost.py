"""CPU per poll transaction and per housekeeping pass, measured inside one process.

The simulated boards run in their own process on a pseudo-terminal (as in
bench/unlock_latency.py); this process runs the daemon's Locker (store, door monitor,
housekeeping) around the real BoardLockDriver, without the HTTP app. Two phases, idle:

1. the driver and its listener (the DoorMonitor) alone: CPU / status transactions;
2. the whole Locker (polls and the per-second housekeeping): what it adds per second.

CPU is time.process_time() of this process (every thread). `--profile` runs phase 1 again under
cProfile and prints where the time went. Prints figures, asserts nothing.

    python bench/poll_cost.py [--boards 8] [--orders 300] [--seconds 20] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hardware.boards import BoardLockDriver  # noqa: E402
from locker.domain import lockboards  # noqa: E402
from locker.domain.codes import create_keys, load_codes  # noqa: E402
from locker.domain.config import load_config  # noqa: E402
from locker.domain.daemon import Locker, sync_compartments  # noqa: E402
from locker.domain.orders import add_ready_order, parse_bag  # noqa: E402
from locker.domain.tasks import cancel_and_wait  # noqa: E402
from simulator.control import spawn  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from unlock_latency import write_config  # noqa: E402


def sleeps() -> int:
    """How many times the event loop's thread has blocked so far (its voluntary context
    switches): each is one wake-up, the dearest thing a transaction does."""
    for line in Path("/proc/thread-self/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


async def idle(driver: BoardLockDriver, seconds: float) -> tuple[float, int, int]:
    """CPU seconds, status transactions and the loop's wake-ups over `seconds` of idle
    polling."""
    tx0, cpu0, woke0 = driver.bus.stats.tx_frames, time.process_time(), sleeps()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(seconds)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    n = max(1, driver.bus.stats.tx_frames - tx0)
    print(f"    user {(r1.ru_utime - r0.ru_utime) / n * 1e6:.0f} µs, system"
          f" {(r1.ru_stime - r0.ru_stime) / n * 1e6:.0f} µs a transaction")
    return (time.process_time() - cpu0, driver.bus.stats.tx_frames - tx0,
            sleeps() - woke0)


async def wakeup_cost(seconds: float = 3.0, sleep_s: float = 0.002) -> float:
    """CPU seconds of one bare asyncio timer wakeup (a 2 ms sleep) on this machine, now: the
    floor under every transaction, which needs at least two (the inter-frame gap, the reply)."""
    n, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        await asyncio.sleep(sleep_s)
        n += 1
    return (time.process_time() - cpu0) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="kerong", choices=("kerong", "generic"))
    parser.add_argument("--boards", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--orders", type=int, default=100, help="ready orders in the store")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--profile", action="store_true", help="cProfile phase 1 and print it")
    args = parser.parse_args()
    baud = lockboards.lookup(args.protocol).default_baud
    folder = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    path = write_config(folder, args.protocol, args.boards, args.channels, baud, 0)
    boards = await spawn(path, auto_close_s=0.3)
    config = load_config(path, port=boards.port)
    create_keys(config)
    try:
        locker = Locker(config, BoardLockDriver(config.bus, config.compartments))
        sync_compartments(locker.store, config, time.time())
        codes = load_codes(config)
        bags = [parse_bag(f"{c.zone.value}:M") for c in config.compartments][: args.orders]
        for i, bag in enumerate(bags):
            add_ready_order(locker.store, config, codes, time.time(), f"p{i}", [bag])
        driver = locker.driver
        assert isinstance(driver, BoardLockDriver)
        began = time.perf_counter()
        await locker.start()
        ready_s = time.perf_counter() - began
        await asyncio.sleep(1.0)
        # phase 2 first: the whole Locker as the daemon runs it (minus the HTTP app)
        whole, _, _ = await idle(driver, args.seconds)
        # phase 1: housekeeping stopped, the driver and its listener (the door monitor) alone
        await cancel_and_wait([locker._housekeeping])
        cpu, transactions, woke = await idle(driver, args.seconds)
        per_tx_us = cpu / max(1, transactions) * 1e6
        print(f"protocol {args.protocol}, {args.boards} boards, {len(bags)} ready orders,"
              f" {transactions / args.seconds:.1f} status transactions a second")
        print(f"  CPU per poll transaction (driver + door monitor): {per_tx_us:.0f} µs"
              f" (target: at most 100 µs); the event loop woke {woke / max(1, transactions):.2f}"
              " times a transaction")
        print(f"  whole locker idle: {whole / args.seconds * 100:.2f} % of one core"
              f" (polling alone {cpu / args.seconds * 100:.2f} %; target: under 0.5 %)")
        house_us = (whole - cpu) / args.seconds * 1e6
        print(f"  housekeeping: about {house_us:.0f} µs of CPU a second (the difference)")
        print(f"  start to ready: {ready_s:.3f} s (store, compartments, every board read,"
              " reconcile; target: under 0.5 s plus bus time)")
        floor_us = await wakeup_cost() * 1e6
        # a poll's waits are a reply's wire time (about 5 ms at 19200 baud); on a virtual
        # machine a wake-up after a longer sleep costs more, with no work done at all
        long_us = await wakeup_cost(sleep_s=0.005) * 1e6
        print(f"  a bare wake-up after a 5 ms sleep: {long_us:.0f} µs of CPU")
        print(f"  this machine's floor now: {floor_us:.0f} µs of CPU per asyncio timer wakeup;"
              f" a transaction blocks at least twice (the gap, the reply): {2 * floor_us:.0f} µs")
        if args.profile:
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            _, n, _ = await idle(driver, args.seconds)
            profile.disable()
            print(f"  profile of {n} transactions (cProfile, CPU time, top 25 by own time):")
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        await locker.stop()
    finally:
        await boards.stop()


if __name__ == "__main__":
    asyncio.run(main())
