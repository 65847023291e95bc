"""Lock-board protocol codecs, one module per protocol, chosen by the config's `bus.protocol`.

Pure byte work only (see base.py): nothing here may open a port, sleep or keep state between calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from hardware.codecs.base import (
    INVALID,
    NEED_MORE,
    Codec,
    Request,
    UnlockRefused,
    extract_frames,
)
from hardware.codecs.generic import GenericCodec
from hardware.codecs.kerong import KerongCodec
from hardware.codecs.winnsen import WinnsenCodec
from locker.config import BoardConfig

__all__ = [
    "INVALID",
    "NEED_MORE",
    "PROTOCOLS",
    "Codec",
    "GenericCodec",
    "KerongCodec",
    "Request",
    "UnlockRefused",
    "WinnsenCodec",
    "extract_frames",
    "get_codec",
]

PROTOCOLS = ("kerong", "winnsen", "generic")


def get_codec(name: str, boards: Sequence[BoardConfig] = ()) -> Codec:
    """The codec for a config's `bus.protocol`; `boards` tells G which reply lengths to expect."""
    if name == "kerong":
        return KerongCodec()
    if name == "winnsen":
        return WinnsenCodec()
    if name == "generic":
        return GenericCodec(boards)
    raise ValueError(
        f"unknown lock-board protocol {name!r}; bus.protocol must be one of {', '.join(PROTOCOLS)}"
    )
