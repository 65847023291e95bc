"""End to end, on one machine, as on a Pi: the reference central publishes version N+1 of this
tree (built by `locker release` code, signed, served over HTTP); the locker running N from slot
a (a process, on the simulated boards, under a supervisor loop standing in for systemd) updates
into slot b, restarts, proves itself and says so; pickups work before and after. Then N+2, built
from a copy of the tree whose central link never gets through, is tried and rolled back to N+1
by the locker itself, and central hears `update.rolled_back`.

It measures what docs/operations.md reports: from "central announces" to "locker back in
service", and how long the locker does not answer during an update."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from locker.domain.update import RESTART_EXIT_CODE, STATE_FILE
from tests.support.update_site import Site, Supervisor, site
from tests.support.updates import N1, N2, N


async def watch(s: Site, version: str, timeout_s: float = 30.0) -> tuple[float, float]:
    """Poll /api/health every 50 ms until `version` answers; returns when it did and the
    longest stretch without an answer (the seconds the locker was out of service)."""
    gap, last_ok = 0.0, time.monotonic()
    async with asyncio.timeout(timeout_s):
        while True:
            health = await s.health()
            now = time.monotonic()
            if health is not None:
                gap = max(gap, now - last_ok)
                last_ok = now
                if health["version"] == version and health["ready"]:
                    return now, gap
            await asyncio.sleep(0.05)


async def test_update_to_n_plus_1_then_n_plus_2_fails_and_rolls_back_by_itself(
        tmp_path: Path, wheels: dict[str, Path]) -> None:
    async with site(tmp_path, wheels, deadline_s=8.0) as s:
        supervisor = Supervisor(tmp_path, s.path, s.serial)
        supervisor.start()
        try:
            await s.in_service(N)
            codes = await s.orders_ready(**{"K-1": "ambient:M", "K-2": "frozen:M",
                                            "K-3": "fresh:S"})
            await s.pickup("K-1", codes["K-1"])  # on N

            s.publish(N1)
            announced = await s.announce(N1)
            back, out_of_service = await watch(s, N1)
            succeeded = await s.event("update.succeeded", version=N1)
            assert succeeded["payload"]["from_version"] == N
            assert os.readlink(s.slots / "current") == "b"
            assert not (s.config.data_dir / STATE_FILE).exists()
            assert not list(s.config.data_dir.glob("store-before-*"))
            await s.pickup("K-2", codes["K-2"])  # on N+1

            s.publish(N2)
            await s.announce(N2)
            rolled_back = await s.event("update.rolled_back", timeout_s=60, version=N2)
            assert "deadline" in rolled_back["payload"]["reason"]
            assert rolled_back["payload"]["running"] == N1
            assert rolled_back["payload"]["store"] == "kept"  # N+2 did not migrate it
            assert os.readlink(s.slots / "current") == "b"  # N+1's slot again
            await s.in_service(N1)
            async with s.session.get(f"{s.url}/metrics") as answer:
                assert "locker_update_rollbacks_total 1.0" in await answer.text()
            await s.pickup("K-3", codes["K-3"])  # on N+1, after the rollback
            kinds = [e["kind"] for e in await s.events()]
            assert kinds.count("update.succeeded") == 1 and "update.refused" not in kinds
            # N -> N+1 (75), N+1 -> N+2 (75), N+2 gives up at its deadline (75)
            assert supervisor.exit_codes()[:3] == [RESTART_EXIT_CODE] * 3
            figures = {"announce_to_in_service_s": round(back - announced, 2),
                       "out_of_service_s": round(out_of_service, 2),
                       "switch_to_good_s": succeeded["payload"]["seconds"]}
            print(f"update figures: {json.dumps(figures)}")  # docs/operations.md
            assert figures["announce_to_in_service_s"] < 20
        finally:
            await supervisor.stop()
