"""The simulator's own parser and frame builders against the shared golden frames.

The same bytes (tests/support/golden_frames.py, with their sources) test our codec in
tests/hardware/test_codecs.py: a bug in one cannot hide behind the same bug in the other.
"""

from __future__ import annotations

from typing import Any

import pytest

from simulator.protocols import (
    Scan,
    generic_status_reply,
    generic_take,
    generic_unlock_reply,
    kerong_status_reply,
    kerong_take,
    winnsen_status_reply,
    winnsen_take,
    winnsen_unlock_reply,
)
from tests.support.golden_frames import GOLDEN_FRAMES

TAKE = {"kerong": kerong_take, "generic": generic_take, "winnsen": winnsen_take}
KERONG_COMMANDS = {0x30: "status", 0x31: "unlock", 0x32: "query_all_boards", 0x37: "set_pulse"}


def H(text: str) -> bytes:
    return bytes.fromhex(text)


def name(frame: dict[str, Any]) -> str:
    return f"{frame['protocol']}: {frame['description']}"


WITH_REQUEST = [f for f in GOLDEN_FRAMES if f["request"]]
WITH_REPLY = [f for f in GOLDEN_FRAMES if f["reply"]]


@pytest.mark.parametrize("frame", WITH_REQUEST, ids=[name(f) for f in WITH_REQUEST])
def test_the_simulator_parses_every_golden_request(frame: dict[str, Any]) -> None:
    raw = H(frame["request"])
    take = TAKE[frame["protocol"]](raw + b"\x00")  # a trailing byte must not matter
    assert take.scan is Scan.FRAME and take.length == len(raw)
    assert take.request is not None
    assert take.request.board == frame["board"]
    if frame["channel"] is not None:
        assert take.request.channel == frame["channel"]
    if frame["protocol"] == "kerong":
        assert take.request.command == KERONG_COMMANDS[raw[2]]


def bit(closed: bool, polarity: str) -> int:
    return int(closed) if polarity == "bit_set" else int(not closed)


@pytest.mark.parametrize("frame", WITH_REPLY, ids=[name(f) for f in WITH_REPLY])
def test_the_simulator_builds_every_golden_reply(frame: dict[str, Any]) -> None:
    reply, expect, polarity = H(frame["reply"]), frame["expect"], frame["polarity"]
    board, channel = frame["board"], frame["channel"]
    protocol = frame["protocol"]
    if "closed" in expect:
        bits = sum(bit(c, polarity) << (ch - 1) for ch, c in expect["closed"].items())
        if protocol == "kerong":
            built = kerong_status_reply(reply[1], bits & 0xFF, bits >> 8 & 0xFF, reply[5],
                                        reply[6])  # D3/D4 infrared bits: not door states
        elif protocol == "generic":
            count = len(reply) - 4
            built = generic_status_reply(board, bytes(
                bits >> (8 * i) & 0xFF for i in reversed(range(count))))
        else:
            [(lock, closed)] = expect["closed"].items()
            built = winnsen_status_reply(board, lock, is_open=not closed)
    elif protocol == "generic":
        built = generic_unlock_reply(board, channel, reply[3])
    else:
        built = winnsen_unlock_reply(board, channel, reply[5])
    assert built == reply
