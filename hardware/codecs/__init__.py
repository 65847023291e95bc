"""Lock-board protocol codecs, one module per protocol, chosen by the config's `bus.protocol`.

Pure byte work only (see base.py): nothing here may open a port, sleep or keep state between calls.
Each codec module exports its declaration (`PROTOCOL`, a locker.domain.lockboards.ProtocolSpec) and
its codec class; BUILT_IN below is the one list of them. Importing this package registers every one,
so the config check knows their names, addresses and capabilities (ADR 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

from hardware.codecs import generic, kerong, winnsen
from hardware.codecs.base import (
    INVALID,
    NEED_MORE,
    Codec,
    CodecFactory,
    Request,
    UnlockRefused,
    extract_frames,
)
from hardware.codecs.generic import GenericCodec
from hardware.codecs.kerong import KerongCodec
from hardware.codecs.winnsen import WinnsenCodec
from locker.domain import lockboards
from locker.domain.config import BoardConfig
from locker.domain.lockboards import ProtocolSpec

__all__ = [
    "BUILT_IN",
    "INVALID",
    "NEED_MORE",
    "Codec",
    "CodecFactory",
    "GenericCodec",
    "KerongCodec",
    "Request",
    "UnlockRefused",
    "WinnsenCodec",
    "extract_frames",
    "get_codec",
    "protocols",
    "register_codec",
    "unregister_codec",
]

# every protocol this program speaks: its declaration and its codec, K first (the default)
BUILT_IN: tuple[tuple[ProtocolSpec, CodecFactory], ...] = (
    (kerong.PROTOCOL, kerong.KerongCodec),
    (winnsen.PROTOCOL, winnsen.WinnsenCodec),
    (generic.PROTOCOL, generic.GenericCodec),
)

_FACTORIES: dict[str, CodecFactory] = {}


def register_codec(spec: ProtocolSpec, factory: CodecFactory) -> None:
    """Make a protocol known to the config check (its declaration) and to get_codec."""
    lockboards.register(spec)
    _FACTORIES[spec.name] = factory


def unregister_codec(name: str) -> None:
    """Forget a protocol registered by register_codec (for tests that bring their own)."""
    _FACTORIES.pop(name, None)
    lockboards.unregister(name)


def protocols() -> tuple[str, ...]:
    """The names get_codec answers to, in the order they were registered."""
    return tuple(_FACTORIES)


def get_codec(name: str, boards: Sequence[BoardConfig] = ()) -> Codec:
    """The codec for a config's `bus.protocol`; `boards` tells G which reply lengths to expect."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(
            f"unknown lock-board protocol {name!r}; bus.protocol must be one of"
            f" {', '.join(_FACTORIES)}"
        )
    codec = factory(boards)
    if codec.protocol.name != name:
        raise ValueError(f"the codec registered as {name!r} declares protocol"
                         f" {codec.protocol.name!r}")
    return codec


for _spec, _factory in BUILT_IN:
    register_codec(_spec, _factory)
