"""DS18B20Probe on w1_slave files in tmp_path: good readings, every fault, the rate limit, fuzzing.

Real-world sample: `3f 01 00 00 7f ff 7f 10 e8 t=19937` is the test data of ladecadence/EkiGo
(testdata/ds18b20test.txt, commit dd456aa8); its CRC e8 was checked by computation. Values from
the DS18B20 datasheet's temperature table: +85 °C = 0x0550, -55 °C = 0xFC90, -0.5 °C = 0xFFF8.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.probes import DS18B20Probe, ProbeFault, dallas_crc8
from locker.domain.errors import HardwareError, LockerError
from simulator.thermal import ZoneModel

EKIGO = "3f 01 00 00 7f ff 7f 10 e8 : crc=e8 YES\n3f 01 00 00 7f ff 7f 10 e8 t=19937\n"


def w1_file(
    milli_c: int, *, raw: int | None = None, verdict: str = "YES", crc: int | None = None
) -> str:
    """A w1_slave file built by hand; raw is the scratchpad's 1/16 °C value (None: from milli_c)."""
    raw = round(milli_c * 16 / 1000) if raw is None else raw
    body = bytes([raw & 0xFF, (raw >> 8) & 0xFF, 0x4B, 0x46, 0x7F, 0xFF, 0x10 - (raw & 0xF), 0x10])
    crc = dallas_crc8(body) if crc is None else crc
    pad = " ".join(f"{b:02x}" for b in [*body, crc])
    return f"{pad} : crc={crc:02x} {verdict}\n{pad} t={milli_c}\n"


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def mono() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def probe_at(tmp_path: Path, mono: FakeMonotonic) -> Callable[[str], DS18B20Probe]:
    path = tmp_path / "28-0000072e8a52" / "w1_slave"
    path.parent.mkdir()

    def make(content: str) -> DS18B20Probe:
        path.write_text(content, encoding="ascii")
        return DS18B20Probe(path, monotonic=mono)

    return make


def write(probe: DS18B20Probe, content: str | bytes) -> None:
    if isinstance(content, str):
        content = content.encode("ascii")
    probe.path.write_bytes(content)


def test_crc8_on_known_scratchpads() -> None:
    assert dallas_crc8(bytes.fromhex("72014b467fff0e10")) == 0x57  # the brief's example
    assert dallas_crc8(bytes.fromhex("3f0100007fff7f10")) == 0xE8  # ladecadence/EkiGo
    assert dallas_crc8(bytes.fromhex("3f0100007fff7f10e8")) == 0  # over all 9 bytes: zero
    assert dallas_crc8(b"") == 0


async def test_reads_the_brief_sample_and_a_real_world_file(
    probe_at: Callable[..., DS18B20Probe],
) -> None:
    probe = probe_at(
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
    )
    assert await probe.read_celsius() == pytest.approx(23.125)
    assert probe.last_good_celsius == pytest.approx(23.125)
    assert await probe_at(EKIGO).read_celsius() == pytest.approx(19.937)


@pytest.mark.parametrize("milli_c", [3000, 0, -500, -18500, -20062, -55000, 125000, 84937])
async def test_good_readings_including_negative(
    probe_at: Callable[..., DS18B20Probe], milli_c: int
) -> None:
    assert await probe_at(w1_file(milli_c)).read_celsius() == pytest.approx(milli_c / 1000)


async def test_negative_scratchpad_bytes_are_the_datasheets(
    probe_at: Callable[..., DS18B20Probe],
) -> None:
    assert w1_file(-18500).startswith("d8 fe ")
    assert w1_file(-55000).startswith("90 fc ")
    assert w1_file(-500).startswith("f8 ff ")
    assert await probe_at(w1_file(-18500)).read_celsius() == -18.5


async def test_missing_file_is_an_unplugged_probe(tmp_path: Path) -> None:
    path = tmp_path / "28-000000000001" / "w1_slave"
    with pytest.raises(ProbeFault, match="unplugged") as caught:
        await DS18B20Probe(path).read_celsius()
    assert str(path) in str(caught.value)
    assert "pull-up" in str(caught.value)
    assert isinstance(caught.value, HardwareError) and isinstance(caught.value, LockerError)


async def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "w1_slave"
    path.mkdir()  # reading a directory is an OSError other than FileNotFoundError
    with pytest.raises(ProbeFault, match="cannot be read"):
        await DS18B20Probe(path).read_celsius()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (w1_file(3000, verdict="NO"), "kernel's CRC check failed"),
        (w1_file(3000, crc=0x00), "Dallas/Maxim CRC-8"),
        ("00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n", "all zeros"),
        (w1_file(85000), "power-on reset"),
        (w1_file(-127000, raw=-127 * 16), "does not answer"),
        (w1_file(-55062, raw=-881), "outside the DS18B20's range"),
        (w1_file(125062, raw=2001), "outside the DS18B20's range"),
        ("", "0 lines"),
        ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n", "1 lines"),
        ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57\n", "second line"),
        (
            "72 01 4b 46 7f ff 0e 10 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
            "first line",
        ),
        ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23.1\n", "second"),
        (
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n73 01 4b 46 7f ff 0e 10 57 t=23125\n",
            "different",
        ),
        (
            "72 01 4b 46 7f ff 0e 10 57 : crc=56 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
            "9th byte",
        ),
        (EKIGO + "extra\n", "3 lines"),
    ],
)
async def test_faults(probe_at: Callable[..., DS18B20Probe], content: str, match: str) -> None:
    probe = probe_at(content)
    with pytest.raises(ProbeFault, match=match) as caught:
        await probe.read_celsius()
    assert str(probe.path) in str(caught.value)
    assert probe.last_good_celsius is None


async def test_not_ascii(probe_at: Callable[..., DS18B20Probe]) -> None:
    probe = probe_at(EKIGO)
    write(probe, b"\xff\xfe garbage")
    with pytest.raises(ProbeFault, match="not ASCII"):
        await probe.read_celsius()


async def test_rate_limit_rejects_a_jump_and_keeps_the_last_good_reading(
    probe_at: Callable[..., DS18B20Probe], mono: FakeMonotonic
) -> None:
    probe = probe_at(w1_file(3000))
    assert await probe.read_celsius() == 3.0
    mono.t += 2.0  # 0.5 °C/s * 2 s (+ one 1/16 °C step) allowed
    write(probe, w1_file(4000))
    assert await probe.read_celsius() == 4.0
    mono.t += 2.0
    write(probe, w1_file(9000))  # +5 °C in 2 s
    with pytest.raises(ProbeFault, match=r"faster than 0\.5 °C/s"):
        await probe.read_celsius()
    assert probe.last_good_celsius == 4.0  # the bad reading did not replace it
    mono.t += 1.0
    write(probe, w1_file(3500))  # compared with 4.0 three seconds ago: fine
    assert await probe.read_celsius() == 3.5


async def test_rate_limit_tolerates_one_step_of_flicker_and_grows_with_time(
    probe_at: Callable[..., DS18B20Probe], mono: FakeMonotonic
) -> None:
    probe = probe_at(w1_file(3000))
    await probe.read_celsius()
    write(probe, w1_file(3062))  # no time passed, one 1/16 °C step
    assert await probe.read_celsius() == pytest.approx(3.062)
    write(probe, w1_file(10000))
    with pytest.raises(ProbeFault):
        await probe.read_celsius()
    mono.t += 20.0  # a probe really moved: accepted once the allowance has grown enough
    assert await probe.read_celsius() == 10.0


async def test_a_fault_after_a_good_reading_keeps_it(probe_at: Callable[..., DS18B20Probe]) -> None:
    probe = probe_at(w1_file(-18500))
    await probe.read_celsius()
    probe.path.unlink()
    with pytest.raises(ProbeFault, match="unplugged"):
        await probe.read_celsius()
    assert probe.last_good_celsius == -18.5


def test_rejects_a_nonsense_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_rate_c_per_s"):
        DS18B20Probe(tmp_path / "w1_slave", max_rate_c_per_s=0)


async def test_reads_the_simulated_zone(tmp_path: Path) -> None:
    """The simulator's own CRC and file format agree with the driver's, written separately."""
    path = tmp_path / "28-00000000beef" / "w1_slave"
    zone = ZoneModel.frozen()
    for temp_c in (-20.0, -18.53, 3.0, 0.0, -0.01, 24.9):
        zone.temp_c = temp_c
        zone.write_w1_slave(path)
        probe = DS18B20Probe(path)  # a fresh probe: no rate limit between these jumps
        assert await probe.read_celsius() == pytest.approx(temp_c, abs=1 / 16)
    zone.probe_unplugged = True
    zone.write_w1_slave(path)
    with pytest.raises(ProbeFault, match="unplugged"):
        await DS18B20Probe(path).read_celsius()


def _mutations() -> st.SearchStrategy[bytes]:
    """Near-valid files (a good file with a few characters replaced, cut or added) and noise."""
    good = w1_file(-18500).encode()

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            action = draw(st.sampled_from(["replace", "delete", "insert"]))
            char = draw(st.sampled_from(b"0123456789abcdef -=:\nYESNOt\x00\xff"))
            if action == "replace":
                data[i] = char
            elif action == "delete":
                del data[i]
            else:
                data.insert(i, char)
        return bytes(data)

    lines = st.lists(
        st.text(alphabet="0123456789abcdefABCDEF :=-tcrYESNO\n", max_size=60), max_size=3
    )
    return st.one_of(
        st.binary(max_size=200), mutate(), lines.map(lambda xs: "\n".join(xs).encode())
    )


@settings(max_examples=300, deadline=None)
@given(content=_mutations())
def test_any_file_content_raises_only_probe_fault(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("w1") / "w1_slave"
    path.write_bytes(content)
    try:
        value = asyncio.run(DS18B20Probe(path).read_celsius())
    except ProbeFault:
        return
    assert -55.0 <= value <= 125.0 and value != 85.0
