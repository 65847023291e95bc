"""The boards as their own process: prints its port, answers over the pty, obeys its API."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from simulator.control import ControlError, spawn
from tests.support.pty_line import PtyClient

H = bytes.fromhex
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "locker.toml"


async def test_separate_process_answers_and_moves_doors(tmp_path: Path) -> None:
    link = str(tmp_path / "ttyLOCK")
    sim = await spawn(EXAMPLE, link=link)
    line = PtyClient(link)
    try:
        assert sim.port.startswith("/dev/")
        # generic protocol, board 1 of 24 channels, every door closed (bit_set)
        assert await line.transact(H("80 01 00 33 B2"), 7) == H("80 01 FF FF FF 33 4D")
        assert await line.transact(H("8A 01 01 11 9B"), 5) == H("8A 01 01 11 9B")
        a01 = await sim.client.compartment("A01")
        assert (a01["door"], a01["latch"]) == ("open", "released")

        await sim.client.close("A01")
        await sim.client.force("A02")
        assert await line.transact(H("80 01 00 33 B2"), 7) == H("80 01 FF FF FD 33 4F")
        await sim.client.jam("A03")
        assert (await sim.client.compartment("A03"))["jammed"] is True
        with pytest.raises(ControlError) as refused:
            await sim.client.open("A04")  # latched: a person cannot pull it open
        assert refused.value.status == 409

        await sim.client.silent(1)
        assert await line.transact(H("80 01 00 33 B2"), 7, timeout_s=0.1) == b""
        await sim.client.answer(1)
        await sim.client.corrupt(1)
        bad = await line.transact(H("80 01 00 33 B2"), 7)
        assert len(bad) == 7 and bad[6] != 0x4F
        noise = await sim.client.noise(4)
        assert await line.read(4) == noise

        history = await sim.client.history()
        doors = [(c["compartment"], c["what"], c["state"], c["cause"]) for c in history["doors"]]
        assert ("A01", "door", "open", "board") in doors
        assert ("A01", "door", "closed", "person") in doors
        assert ("A02", "door", "open", "force") in doors
        assert any(
            f["direction"] == "rx" and f["data"] == "8a 01 01 11 9b" for f in history["frames"]
        )
    finally:
        line.close()
        code = await sim.stop()
    assert code == 0
    assert not Path(link).is_symlink()


async def test_sigint_also_stops_it_cleanly() -> None:
    sim = await spawn(EXAMPLE, pace=False)
    await sim.client.close_session()
    sim.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(sim.process.wait(), 5) == 0
