"""What a lock-board protocol declares about itself, and the one registry of those declarations.

Each protocol's codec module (hardware/codecs/) exports a `ProtocolSpec`: its name in the config,
the board addresses it can reach, the locks on one board, its baud rates and its capabilities. The
config check (locker.config), the board driver and the simulator read these declarations instead
of tables of their own, so adding a protocol is one codec module and no edit here (ADR 0001).

Plain data only: this module must never import hardware/ (the domain does not know the codecs);
the codecs register their declarations when hardware.codecs is imported, at composition time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolSpec:
    """One lock-board protocol as the config, the driver and the simulator need to know it."""

    name: str  # `bus.protocol` in the config
    lowest_address: int  # board addresses it can reach, both ends included
    highest_address: int
    channels: int  # most locks one board drives (channels are 1-based, as on the label)
    bauds: tuple[int, ...]  # the line speeds its boards run at
    default_baud: int  # when the config gives none
    # an unlock has no reply of its own: the status read that follows acknowledges it (K)
    ack_is_status_read: bool = False
    # a status read covers one lock, not a whole board (W): one transaction per wired channel
    per_lock_status: bool = False
    # status replies carry item-presence bits (K's infrared beam): `item_sensor` is allowed
    item_bits: bool = False
    # boards can be told their unlock pulse time (K's 0x37; the driver sends it only if asked)
    pulse_time_settable: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"protocol name {self.name!r}: lower case, no spaces around")
        if not 0 <= self.lowest_address <= self.highest_address:
            raise ValueError(f"protocol {self.name}: lowest_address must be <= highest_address")
        if self.channels < 1:
            raise ValueError(f"protocol {self.name}: a board drives at least one channel")
        if self.default_baud not in self.bauds:
            raise ValueError(f"protocol {self.name}: default_baud must be one of its bauds")

    @property
    def addresses(self) -> str:
        """The address range as the messages write it: '0-15'."""
        return f"{self.lowest_address}-{self.highest_address}"

    def reaches(self, address: int) -> bool:
        return self.lowest_address <= address <= self.highest_address


_REGISTERED: dict[str, ProtocolSpec] = {}


def register(spec: ProtocolSpec) -> ProtocolSpec:
    """Make a protocol known to the config check. Registering the same declaration again is a
    no-op; a different declaration under a known name is a bug and raises ValueError."""
    known = _REGISTERED.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(
            f"protocol {spec.name} is declared twice, differently: {known} and {spec}"
        )
    _REGISTERED[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget a protocol (for tests that register one of their own)."""
    _REGISTERED.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered protocols' names, in the order they were registered."""
    return tuple(_REGISTERED)


def lookup(name: str) -> ProtocolSpec:
    """The declaration of a registered protocol; a ValueError naming the known ones if not."""
    spec = _REGISTERED.get(name)
    if spec is None:
        raise ValueError(f"unknown lock-board protocol {name!r}; {known_text()}")
    return spec


def known_text() -> str:
    """How an error about `bus.protocol` says what is allowed."""
    if not _REGISTERED:
        return (
            "no lock-board protocol is registered in this program (its entry point must import"
            " hardware.codecs, or the simulator's board models, before reading a config)"
        )
    return f"bus.protocol must be one of {', '.join(_REGISTERED)}"
