"""A protocol is one codec module with its declaration: registering one is all the rest needs.

The fourth protocol here ("acme") is made up and lives in this file only. Registered at test
time, its name and address range are accepted by the config check, its capabilities decide what
the config allows, get_codec builds it and the board driver drives it, with no other file edited
(ADR 0001's checklist).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hardware.boards import BoardLockDriver
from hardware.codecs import (
    BUILT_IN,
    INVALID,
    NEED_MORE,
    Codec,
    Request,
    get_codec,
    protocols,
    register_codec,
    unregister_codec,
)
from hardware.codecs.base import check_board, check_channel, closed_from_bit, doors_only
from locker.domain import lockboards
from locker.domain.config import BoardConfig, load_config
from locker.domain.errors import ConfigError
from locker.domain.lockboards import ProtocolSpec
from tests.support.configs import SMALL_CONFIG, write_config

ACME = ProtocolSpec(
    name="acme",
    lowest_address=100,
    highest_address=120,
    channels=8,
    bauds=(9600, 57600),
    default_baud=57600,
    item_bits=True,
)


class AcmeCodec:
    """`A5 BOARD CH` unlocks and is echoed; `A6 BOARD` reads, `A6 BOARD DOORS ITEMS` answers."""

    name = ACME.name
    protocol = ACME

    def __init__(self, boards: Sequence[BoardConfig] = ()) -> None:
        self.boards = tuple(boards)

    def unlock_requests(self, board: int, channel: int) -> tuple[Request, ...]:
        check_board(board, ACME)
        check_channel(board, channel, ACME)
        return (Request("unlock", board, bytes((0xA5, board, channel)), channel),)

    def status_requests(
        self, board: BoardConfig, channels: tuple[int, ...] | None = None
    ) -> tuple[Request, ...]:
        check_board(board.address, ACME)
        return (Request("status", board.address, bytes((0xA6, board.address))),)

    def frame_at(self, buffer: bytes | bytearray) -> int:
        length = {0xA5: 3, 0xA6: 4}.get(buffer[0])
        if length is None:
            return INVALID
        return NEED_MORE if len(buffer) < length else length

    def answers(self, request: Request, reply: bytes) -> bool:
        head = 0xA5 if request.kind == "unlock" else 0xA6
        return reply[0] == head and reply[1] == request.board

    def check_unlock(self, request: Request, reply: bytes) -> None:
        return None

    def decode_doors(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        states = {ch: closed_from_bit(reply[2] >> (ch - 1) & 1, board) for ch in range(1, 9)}
        return doors_only(states, board)

    def decode_items(self, request: Request, reply: bytes, board: BoardConfig) -> dict[int, bool]:
        return doors_only({ch: bool(reply[3] >> (ch - 1) & 1) for ch in range(1, 9)}, board)

    def pulse_time_request(self, board: int, pulse_ms: int) -> Request:
        raise ValueError(f"board {board}: protocol acme boards keep their own pulse time")


@pytest.fixture
def acme() -> Iterator[ProtocolSpec]:
    register_codec(ACME, AcmeCodec)
    try:
        yield ACME
    finally:
        unregister_codec(ACME.name)


def acme_config(tmp_path: Path, *, first: int = 100, second: int = 101) -> Path:
    text = (SMALL_CONFIG.replace('protocol = "kerong"', 'protocol = "acme"')
            .replace("baud = 19200\n", "")
            .replace("address = 1", f"address = {second}\nitem_sensor = true", 1)
            .replace("address = 0", f"address = {first}")
            .replace("board = 1,", f"board = {second},").replace("board = 0,", f"board = {first},"))
    return write_config(tmp_path, text)


def test_a_registered_fourth_protocol_is_configured_built_and_driven(
    tmp_path: Path, acme: ProtocolSpec
) -> None:
    config = load_config(acme_config(tmp_path))
    assert config.bus is not None
    assert config.bus.protocol == "acme"
    assert config.bus.baud == 57600  # the declaration's default
    assert [b.address for b in config.bus.boards] == [100, 101]
    # its declaration says it reports items: the config lets a board's item_sensor through
    assert {c.id for c in config.compartments if c.item_sensor} == {"F2", "Z1", "Z2"}

    codec = get_codec("acme", config.bus.boards)
    assert isinstance(codec, AcmeCodec) and isinstance(codec, Codec)
    assert codec.boards == config.bus.boards
    assert "acme" in protocols() and "acme" in lockboards.names()

    driver = BoardLockDriver(config.bus, config.compartments)
    assert isinstance(driver.codec, AcmeCodec)
    assert driver.wiring["F2"] == (101, 1)


def test_the_fourth_protocols_address_range_comes_from_its_declaration(
    tmp_path: Path, acme: ProtocolSpec
) -> None:
    with pytest.raises(ConfigError,
                       match=r"bus\.boards\[1\]\.address: protocol acme addresses boards"
                             r" 100-120, not 121"):
        load_config(acme_config(tmp_path, second=121))
    text = acme_config(tmp_path).read_text().replace("[bus]", "[bus]\nbaud = 19200")
    with pytest.raises(ConfigError,
                       match=r"bus\.baud: must be one of 9600, 57600 for protocol acme"):
        load_config(write_config(tmp_path, text))


def test_once_unregistered_it_is_an_unknown_protocol_again(tmp_path: Path) -> None:
    register_codec(ACME, AcmeCodec)
    unregister_codec("acme")
    with pytest.raises(ConfigError,
                       match=r"bus\.protocol: must be one of kerong, winnsen, generic,"
                             r" not 'acme'"):
        load_config(acme_config(tmp_path))
    with pytest.raises(ValueError, match=r"bus\.protocol must be one of kerong, winnsen, generic"):
        get_codec("acme")


def test_a_name_declared_twice_differently_is_refused() -> None:
    kerong = lockboards.lookup("kerong")
    lockboards.register(kerong)  # the same declaration again: nothing happens
    with pytest.raises(ValueError, match="protocol kerong is declared twice, differently"):
        lockboards.register(ProtocolSpec("kerong", 0, 31, 16, (9600,), 9600))
    assert lockboards.lookup("kerong") is kerong


def test_a_declaration_is_checked_when_it_is_made() -> None:
    with pytest.raises(ValueError, match="default_baud must be one of its bauds"):
        ProtocolSpec("acme", 1, 2, 8, (9600,), 19200)
    with pytest.raises(ValueError, match="lowest_address must be <= highest_address"):
        ProtocolSpec("acme", 5, 2, 8, (9600,), 9600)


def test_every_built_in_codec_carries_the_declaration_it_is_registered_under() -> None:
    assert [spec.name for spec, _factory in BUILT_IN] == ["kerong", "winnsen", "generic"]
    for spec, _factory in BUILT_IN:
        assert get_codec(spec.name).protocol is spec
        assert lockboards.lookup(spec.name) == spec


def test_a_program_that_registered_no_protocol_is_told_what_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lockboards, "_REGISTERED", {})
    with pytest.raises(ConfigError, match=r"bus\.protocol: no lock-board protocol is registered"
                                          r" in this program .*import hardware\.codecs"):
        load_config(write_config(tmp_path))
