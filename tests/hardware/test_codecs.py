"""Codec tests: every golden frame, then the frame extractor under noise (with hypothesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.codecs import (
    BUILT_IN,
    Codec,
    UnlockRefused,
    extract_frames,
    generic,
    get_codec,
    kerong,
    winnsen,
)
from hardware.codecs.base import MAX_BUFFER
from locker.domain.config import BoardConfig
from tests.support.golden_frames import GOLDEN_FRAMES


def _board(frame: dict[str, Any]) -> BoardConfig:
    closed = frame["expect"].get("closed", {})
    channels = max([*closed, 16 if frame["protocol"] != "generic" else 8, frame["channel"] or 0])
    if frame["protocol"] == "winnsen":
        channels = 16
    return BoardConfig(frame["board"], channels, frame["polarity"])


def _ids(frame: dict[str, Any]) -> str:
    return f"{frame['protocol']}: {frame['description'][:50]}"


@pytest.mark.parametrize("frame", GOLDEN_FRAMES, ids=_ids)
def test_golden_request(frame: dict[str, Any]) -> None:
    codec = get_codec(frame["protocol"])
    board, channel, want = frame["board"], frame["channel"], frame["request"]
    request_bytes = bytes.fromhex(want)
    if "query all boards" in frame["description"]:
        return  # lkaas-kerong's 0x32: a golden frame for the simulator, never sent by our driver
    if "pulse time" in frame["description"]:
        assert kerong.pulse_time_frame(board, 500) == request_bytes
        return
    if channel is not None and (frame["reply"] is None or "ack" in frame["expect"]):
        requests = codec.unlock_requests(board, channel)
    else:
        requests = codec.status_requests(_board(frame), (channel,) if channel else None)
    assert requests[0].frame == request_bytes


@pytest.mark.parametrize("frame", [f for f in GOLDEN_FRAMES if f["reply"]], ids=_ids)
def test_golden_reply(frame: dict[str, Any]) -> None:
    board = _board(frame)
    codec = get_codec(frame["protocol"], (board,))
    reply = bytes.fromhex(frame["reply"])
    # the extractor finds exactly this frame, alone and inside noise
    frames, dropped = extract_frames(codec, bytearray(reply))
    assert (frames, dropped) == ([reply], 0)
    frames, dropped = extract_frames(codec, bytearray(b"\xff\x00\x13" + reply + b"\x55"))
    assert frames == [reply]
    channel = frame["channel"]
    if "ack" in frame["expect"]:
        request = codec.unlock_requests(frame["board"], channel)[-1]
        assert codec.answers(request, reply)
        if frame["expect"]["ack"] == "ok":
            codec.check_unlock(request, reply)
        else:
            with pytest.raises(UnlockRefused, match=f"board {frame['board']} channel {channel}"):
                codec.check_unlock(request, reply)
    else:
        request = codec.status_requests(board, (channel,) if channel else None)[0]
        assert codec.answers(request, reply)
        assert codec.decode_doors(request, reply, board) == frame["expect"]["closed"]
        # the item bits: only K has them; W and G report none
        if "items" in frame["expect"]:
            assert codec.decode_items(request, reply, board) == frame["expect"]["items"]
        elif frame["protocol"] != "kerong":
            assert codec.decode_items(request, reply, board) == {}


def test_kerong_item_bits_stop_at_the_board_s_channels() -> None:
    board = BoardConfig(0, 12, item_sensor=True)
    reply = kerong.status_reply(0, 0xFFFF, infrared=0xF801)  # spare bits 12-16 set
    request = kerong.KerongCodec().status_requests(board)[0]
    assert kerong.KerongCodec().decode_items(request, reply, board) == {
        ch: ch in (1, 12) for ch in range(1, 13)}


def test_every_protocol_has_golden_frames() -> None:
    assert {f["protocol"] for f in GOLDEN_FRAMES} == {spec.name for spec, _ in BUILT_IN}


def test_every_protocol_has_its_section_in_the_protocols_doc() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocols.md").read_text()
    headings = [line for line in doc.splitlines() if line.startswith("## Protocol ")]
    for spec, _ in BUILT_IN:
        assert any(f'(`protocol = "{spec.name}"`)' in h for h in headings), spec.name


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"bus\.protocol must be one of kerong, winnsen, generic"):
        get_codec("modbus")


def test_kerong_unlock_is_confirmed_by_a_status_read() -> None:
    requests = get_codec("kerong").unlock_requests(3, 16)
    assert [r.kind for r in requests] == ["unlock", "status"]
    assert requests[0].frame == bytes.fromhex("02 3F 31 03 75") and not requests[0].expects_reply


def test_replies_from_another_board_or_channel_do_not_answer() -> None:
    k = get_codec("kerong")
    status = k.status_requests(BoardConfig(0))[0]
    assert not k.answers(status, kerong.status_reply(1, 0xFFFF))
    w = get_codec("winnsen")
    unlock = w.unlock_requests(1, 5)[0]
    assert not w.answers(unlock, winnsen.unlock_reply(1, 6, 1))
    assert not w.answers(unlock, winnsen.status_reply(1, 5, 1))
    g = get_codec("generic", (BoardConfig(1, 24),))
    assert not g.answers(g.unlock_requests(1, 2)[0], generic.unlock_reply(1, 3))
    assert not g.answers(g.status_requests(BoardConfig(1, 24))[0], generic.query_reply(2, 0, 3))


@pytest.mark.parametrize(
    ("protocol", "board", "channel", "message"),
    [
        ("kerong", 16, 1, "boards 0-15"),
        ("kerong", 0, 17, "channels 1-16"),
        ("kerong", 0, 0, "channels 1-16"),
        ("generic", 0, 1, "boards 1-31"),
        ("generic", 1, 51, "channels 1-50"),
        ("winnsen", 1, 17, "channels 1-16"),
    ],
)
def test_out_of_range_addresses_are_refused(
    protocol: str, board: int, channel: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        get_codec(protocol).unlock_requests(board, channel)


def test_kerong_never_builds_unlock_all() -> None:
    codec = get_codec("kerong")
    frames = [r.frame for b in range(16) for c in range(1, 17) for r in codec.unlock_requests(b, c)]
    assert all(f[2] != 0x33 for f in frames)


# --- the extractor ---------------------------------------------------------------------------


def _sample_frames(protocol: str) -> list[bytes]:
    if protocol == "kerong":
        return [kerong.status_reply(b, b * 0x1111) for b in range(4)]
    if protocol == "generic":
        return [generic.query_reply(b, 0xA5A5A5, 3) for b in (1, 2)] + [generic.unlock_reply(1, 5)]
    return [winnsen.unlock_reply(1, 5, 1), winnsen.status_reply(2, 16, 0)]


def _codec(protocol: str) -> Codec:
    return get_codec(protocol, (BoardConfig(1, 24), BoardConfig(2, 24)))


@pytest.mark.parametrize("protocol", ["kerong", "winnsen", "generic"])
def test_frame_split_across_reads(protocol: str) -> None:
    codec, frame = _codec(protocol), _sample_frames(protocol)[0]
    buffer = bytearray()
    found: list[bytes] = []
    for byte in frame:
        buffer.append(byte)
        frames, dropped = extract_frames(codec, buffer)
        assert dropped == 0
        found += frames
    assert found == [frame] and not buffer


@pytest.mark.parametrize("protocol", ["kerong", "winnsen", "generic"])
def test_bad_checksum_or_field_costs_one_frame_only(protocol: str) -> None:
    codec = _codec(protocol)
    good = _sample_frames(protocol)
    bad = bytearray(good[0])
    bad[-2 if protocol == "winnsen" else -1] ^= 0x5A  # W has no checksum: break the status byte
    frames, dropped = extract_frames(codec, bytearray(bytes(bad) + b"".join(good[1:])))
    assert frames == good[1:]
    assert dropped == len(bad)


def test_buffer_of_noise_is_bounded() -> None:
    codec = get_codec("kerong")
    buffer = bytearray(b"\x02\x00\x35" + b"\x00" * 10)  # may wait for more, never grows forever
    for _ in range(1000):
        buffer += b"\x02"
        extract_frames(codec, buffer)
    assert len(buffer) <= MAX_BUFFER


PROTOCOLS = st.sampled_from(["kerong", "winnsen", "generic"])


@settings(max_examples=300, deadline=None)
@given(protocol=PROTOCOLS, noise=st.lists(st.binary(max_size=40), max_size=8))
def test_random_bytes_never_raise(protocol: str, noise: list[bytes]) -> None:
    codec = _codec(protocol)
    buffer = bytearray()
    for chunk in noise:
        buffer += chunk
        frames, dropped = extract_frames(codec, buffer)
        for frame in frames:
            assert codec.frame_at(frame) == len(frame)  # whatever comes out is a whole frame
        assert dropped >= 0


@settings(max_examples=300, deadline=None)
@given(
    protocol=PROTOCOLS,
    data=st.data(),
)
def test_frames_embedded_in_noise_are_found(protocol: str, data: st.DataObject) -> None:
    """Noise that cannot start a frame never hides the valid frames around it."""
    codec = _codec(protocol)
    heads = {"kerong": {0x02}, "generic": {0x80, 0x8A}, "winnsen": {0x90}}[protocol]
    noise_byte = st.integers(0, 255).filter(lambda b: b not in heads)
    frames = data.draw(st.lists(st.sampled_from(_sample_frames(protocol)), min_size=1, max_size=5))
    stream = bytearray()
    for frame in frames:
        stream += bytes(data.draw(st.lists(noise_byte, max_size=12)))
        stream += frame
    stream += bytes(data.draw(st.lists(noise_byte, max_size=12)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    buffer = bytearray()
    found: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:  # delivered in arbitrary pieces, as a serial port does
        buffer += stream[start:cut]
        start = cut
        found += extract_frames(codec, buffer)[0]
    assert found == frames
