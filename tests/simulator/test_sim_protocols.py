"""The board side of each protocol against the golden frames of lockboard-protocol.md."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locker.domain.config import LockerConfig
from simulator.boards import SimBoard
from simulator.doors import DoorRefused, Doors
from simulator.protocols import (
    PROTOCOLS,
    Request,
    Scanner,
    corrupt,
    generic_take,
    kerong_frame,
    kerong_sum,
    kerong_take,
    winnsen_take,
    xor_all,
)
from tests.support.pty_line import MakeConfig

H = bytes.fromhex


def boards_of(config: LockerConfig) -> tuple[Doors, dict[int, SimBoard]]:
    assert config.bus is not None
    doors = Doors.from_config(config)
    return doors, {b.address: SimBoard(b, doors) for b in config.bus.boards}


def answer(config: LockerConfig, boards: dict[int, SimBoard], frame: bytes) -> bytes | None:
    assert config.bus is not None
    protocol = PROTOCOLS[config.bus.protocol]
    found = list(Scanner(protocol).feed(frame))
    assert len(found) == 1 and isinstance(found[0], Request), found
    return protocol.answer(found[0], boards[found[0].board])


def test_checksums_of_the_documented_frames() -> None:
    assert kerong_sum(H("02 00 31 03")) == 0x36
    assert kerong_sum(H("02 15 31 03")) == 0x4B
    assert xor_all(H("8A 01 01 11")) == 0x9B
    assert xor_all(H("80 01 00 33")) == 0xB2
    assert xor_all(H("80 01 00 00 00 33")) == 0xB2


def test_kerong_golden_unlock_board0_lock1(kerong: LockerConfig) -> None:
    doors, boards = boards_of(kerong)
    # no source reads a reply to 0x31: the board pulses and stays silent
    assert answer(kerong, boards, H("02 00 31 03 36")) is None
    assert doors.times("B0C01", "door", "open")
    # lock 1 popped open, so bit 0 of D1 is clear with bit_set polarity
    assert answer(kerong, boards, H("02 00 30 03 35")) == H("02 00 35 FE FF 00 00 03 37")


def test_kerong_golden_unlock_board1_lock6(kerong: LockerConfig) -> None:
    doors, boards = boards_of(kerong)
    assert answer(kerong, boards, H("02 15 31 03 4B")) is None
    assert answer(kerong, boards, H("02 10 30 03 45")) == H("02 10 35 DF FF 00 00 03 28")
    assert not doors.is_closed("B1C06")
    assert doors.is_closed("B0C06")


def test_kerong_golden_status(kerong: LockerConfig) -> None:
    _, boards = boards_of(kerong)
    assert answer(kerong, boards, H("02 00 30 03 35")) == H("02 00 35 FF FF 00 00 03 38")


def test_kerong_bit_clear_polarity(make_config: MakeConfig) -> None:
    config = make_config("kerong", [(0, 12, "bit_clear")])
    doors, boards = boards_of(config)
    doors.force("B0C09")
    # channels 13-16 are not fitted: 0 whatever the polarity
    reply = answer(config, boards, H("02 00 30 03 35"))
    assert reply == H("02 00 35 00 01 00 00 03") + bytes([kerong_sum(H("02 00 35 00 01 00 00 03"))])


def test_kerong_item_bits_follow_the_goods_on_a_sensing_board_only(
        kerong: LockerConfig) -> None:
    assert kerong.bus is not None
    bus = dataclasses.replace(kerong.bus, boards=(
        dataclasses.replace(kerong.bus.boards[0], item_sensor=True), kerong.bus.boards[1]))
    config = dataclasses.replace(kerong, bus=bus)
    doors, boards = boards_of(config)
    for lock_id in ("B0C02", "B0C09", "B1C01"):
        doors.force(lock_id)
        doors.put(lock_id)
        doors.close(lock_id)
    with pytest.raises(DoorRefused):
        doors.take("B0C02")  # not through a shut door
    body = H("02 00 35 FF FF 02 01 03")  # D3 = lock 2, D4 = lock 9
    assert answer(config, boards, H("02 00 30 03 35")) == body + bytes([kerong_sum(body)])
    # board 1 has no infrared sensors: its goods are not seen
    assert answer(config, boards, H("02 10 30 03 45")) == H("02 10 35 FF FF 00 00 03 48")
    assert [(c.compartment, c.state) for c in doors.history if c.what == "goods"] == [
        ("B0C02", "in"), ("B0C09", "in"), ("B1C01", "in")]


def test_kerong_set_pulse_and_unknown_commands(kerong: LockerConfig) -> None:
    doors, boards = boards_of(kerong)
    body = H("02 10 37 00 64 03")  # 100 x 10 ms, our reading of the 2-byte value
    assert answer(kerong, boards, body + bytes([kerong_sum(body)])) is None
    assert doors.lock("B1C01").pulse_ms == 1000
    assert doors.lock("B0C01").pulse_ms == 100
    assert answer(kerong, boards, kerong_frame(0x00, 0x38)) is None  # unknown: ignored


def test_winnsen_golden_unlock(winnsen: LockerConfig) -> None:
    doors, boards = boards_of(winnsen)
    assert answer(winnsen, boards, H("90 06 05 01 05 03")) == H("90 07 85 01 05 01 03")
    assert not doors.is_closed("B1C05")
    # status: STATUS and LOCK swapped, 01 open
    assert answer(winnsen, boards, H("90 06 12 01 05 03")) == H("90 07 92 01 01 05 03")
    assert answer(winnsen, boards, H("90 06 12 01 06 03")) == H("90 07 92 01 00 06 03")
    # unlocked again within its pulse: cooldown
    assert answer(winnsen, boards, H("90 06 05 01 05 03")) == H("90 07 85 01 05 02 03")


def test_winnsen_jammed_door_still_acknowledges_and_fault_does_not(winnsen: LockerConfig) -> None:
    doors, boards = boards_of(winnsen)
    doors.jam("B1C03")
    assert answer(winnsen, boards, H("90 06 05 01 03 03")) == H("90 07 85 01 03 01 03")
    assert doors.is_closed("B1C03")
    assert answer(winnsen, boards, H("90 06 12 01 03 03")) == H("90 07 92 01 00 03 03")
    doors.lock_fault("B1C04")
    assert answer(winnsen, boards, H("90 06 05 01 04 03")) == H("90 07 85 01 04 00 03")
    assert doors.times("B1C04", "latch", "released") == []


def test_generic_golden_unlock_and_query(generic: LockerConfig) -> None:
    doors, boards = boards_of(generic)
    assert answer(generic, boards, H("80 01 00 33 B2")) == H("80 01 FF FF FF 33 4D")
    assert answer(generic, boards, H("8A 01 01 11 9B")) == H("8A 01 01 11 9B")
    assert not doors.is_closed("B1C01")
    doors.force("B1C09")
    doors.force("B1C24")
    # highest channel group first: S1 = 17-24, S2 = 9-16, S3 = 1-8 with bit 0 = channel 1
    body = H("80 01 7F FE FE 33")
    assert answer(generic, boards, H("80 01 00 33 B2")) == body + bytes([xor_all(body)])


def test_generic_documented_8_channel_reply(generic: LockerConfig) -> None:
    _, boards = boards_of(generic)
    # board 2: 8 channels, bit_clear, all closed -> the verified reply (three status bytes)
    body = H("80 02 00 33")
    reply = answer(generic, boards, body + bytes([xor_all(body)]))
    assert reply == H("80 02 00 00 00 33") + bytes([xor_all(H("80 02 00 00 00 33"))])
    assert H("80 01 00 00 00 33 B2")[2:5] == reply[2:5]


def test_generic_fault_answers_zero(generic: LockerConfig) -> None:
    doors, boards = boards_of(generic)
    doors.lock_fault("B1C02")
    assert answer(generic, boards, H("8A 01 02 11 98")) == H("8A 01 02 00 89")


def test_scanner_resyncs_after_garbage_and_keeps_split_frames(winnsen: LockerConfig) -> None:
    scanner = Scanner(PROTOCOLS["winnsen"])
    out = list(scanner.feed(H("90 90 06 05 FF 00 90 06 05 01")))
    assert out == [H("90 90 06 05 FF 00")]  # junk, and a partial frame kept
    out = list(scanner.feed(H("05 03")))
    assert len(out) == 1 and isinstance(out[0], Request) and out[0].channel == 5


def test_winnsen_validates_every_field() -> None:
    assert winnsen_take(H("90 06 05 01 00 03")).scan.value == "junk"  # lock 0
    assert winnsen_take(H("90 06 05 01 11 03")).scan.value == "junk"  # lock 17
    assert winnsen_take(H("90 06 07 01 01 03")).scan.value == "junk"  # unknown function
    assert winnsen_take(H("90 06 05 01 01 04")).scan.value == "junk"  # bad trailer
    assert winnsen_take(H("90 06 05")).scan.value == "need_more"


def test_corrupt_spoils_the_checksum() -> None:
    good = H("8A 01 01 11 9B")
    assert generic_take(corrupt(good)).scan.value == "junk"
    assert kerong_take(corrupt(H("02 00 31 03 36"))).scan.value == "junk"


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_a_valid_frame_survives_any_garbage_before_it(before: bytes, after: bytes) -> None:
    for name, frame in (
        ("kerong", H("02 15 31 03 4B")),
        ("winnsen", H("90 06 05 01 05 03")),
        ("generic", H("8A 01 01 11 9B")),
    ):
        scanner = Scanner(PROTOCOLS[name])
        # a gap, as a real board sees it: the stale partial frame is dropped before the frame
        list(scanner.feed(before))
        scanner.discard()
        found = [x for x in scanner.feed(frame + after) if isinstance(x, Request)]
        assert found and found[0].raw == frame


def test_the_simulator_never_imports_hardware() -> None:
    """The simulator is the independent reading of the protocol document: no shared codec."""
    import ast
    from pathlib import Path

    import simulator

    for path in Path(simulator.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "hardware" or n.startswith("hardware.") for n in names), path


def test_the_simulator_models_every_protocol_with_the_same_declaration() -> None:
    """Two readings of the document (the codec's and the simulator's) agree on each protocol's
    addresses, channels, bauds and capabilities; a protocol without a board model fails here."""
    from hardware.codecs import BUILT_IN

    assert {name: model.spec for name, model in PROTOCOLS.items()} == {
        spec.name: spec for spec, _ in BUILT_IN
    }


def test_a_protocol_the_simulator_does_not_model_is_a_clear_error() -> None:
    from simulator.protocols import model_for

    with pytest.raises(ValueError, match=r"no board model for protocol 'acme'; it simulates"
                                         r" kerong, winnsen, generic"):
        model_for("acme")
