"""The words of the domain: zones, sizes, and the states of compartments, doors and orders.

Plain enums and value types only; which state may follow which is locker.domain.lifecycle.table's.
The zones are declared here (`ZONES`), not enumerated: a locker may have a zone of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


@dataclass(frozen=True)
class ZoneSpec:
    """Everything the locker knows of a kind of zone, declared once: its name (in the config,
    the store and central's payloads), its default limits (°C; the config may change them), its
    words on the screens and its colour there. The French rules behind the defaults are in the
    README."""

    name: str
    en: str
    fr: str
    colour: str  # CSS colour of its compartments on the screens
    max_c: float
    min_c: float | None = None
    tolerated_max_c: float | None = None  # a short rise up to this is accepted (defrost)
    setpoint_c: float | None = None  # what its compressor holds, if it has one
    defrost_every_h: float | None = None

    def label(self, lang: str) -> str:
        """Its name on a screen in `lang` ("en" or "fr")."""
        return {"en": self.en, "fr": self.fr}[lang]

    @property
    def freezing(self) -> bool:
        """Kept below 0 °C: the screens mark its compartments with a snowflake."""
        return self.max_c < 0


# the zones, in the order allocation, the screens and the record go through them
ZONES: dict[str, ZoneSpec] = {}
_INTERNED: dict[str, Zone] = {}  # one Zone a name, so that `is` compares them as enums did


class _Zones(type):
    """`for zone in Zone` goes through the declared zones; `len(Zone)` counts them."""

    def __iter__(cls) -> Iterator[Zone]:
        return iter([Zone(name) for name in ZONES])

    def __len__(cls) -> int:
        return len(ZONES)


class Zone(str, metaclass=_Zones):
    """The name of a declared zone: a plain string that is known to be one (`Zone("fresh")`
    refuses a name nobody declared). Adding a zone is one `declare_zone()` (and its thermal
    model in the simulator); everything else, from the config to the pages, reads ZONES."""

    __slots__ = ()
    AMBIENT: ClassVar[Zone]
    FRESH: ClassVar[Zone]
    FROZEN: ClassVar[Zone]

    def __new__(cls, name: object) -> Zone:
        if isinstance(name, Zone):
            return name
        if not isinstance(name, str) or name not in ZONES:
            raise ValueError(f"{name!r} is not a zone: {' or '.join(ZONES)}")
        zone = _INTERNED.get(name)
        if zone is None:
            zone = _INTERNED[name] = super().__new__(cls, name)
        return zone

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def spec(self) -> ZoneSpec:
        return ZONES[self.value]

    def __repr__(self) -> str:
        return f"Zone({self.value!r})"


def declare_zone(spec: ZoneSpec) -> Zone:
    """Add a zone (a locker's own, or a test's); its name must be new."""
    if spec.name in ZONES:
        raise ValueError(f"zone {spec.name!r} is declared already")
    ZONES[spec.name] = spec
    return Zone(spec.name)


def forget_zone(name: str) -> None:
    """Take a declared zone away again (a test that declared one cleans up)."""
    ZONES.pop(name, None)
    _INTERNED.pop(name, None)


# arrêté du 21 décembre 2009, annexe I (very perishable chilled food at most +4 °C) and
# Directive 89/108/EEC (deep-frozen at -18 °C or colder, short rises to -15 °C tolerated)
Zone.AMBIENT = declare_zone(ZoneSpec("ambient", "ambient", "ambiant", "#ffb300", max_c=30.0))
Zone.FRESH = declare_zone(ZoneSpec("fresh", "fresh", "frais", "#4fc3ff", max_c=4.0, min_c=0.0,
                                   setpoint_c=2.5))
Zone.FROZEN = declare_zone(ZoneSpec("frozen", "frozen", "surgelé", "#b388ff", max_c=-18.0,
                                    tolerated_max_c=-15.0, setpoint_c=-21.0,
                                    defrost_every_h=6.0))


class Size(StrEnum):
    """Compartment and bag sizes; a bag fits a compartment of its size or larger."""

    S = "S"
    M = "M"
    L = "L"

    @property
    def rank(self) -> int:
        return ("S", "M", "L").index(self.value)

    def fits_in(self, compartment: Size) -> bool:
        return self.rank <= compartment.rank


class CompartmentState(StrEnum):
    FREE = "free"
    RESERVED = "reserved"
    LOADED = "loaded"
    OUT_OF_SERVICE = "out_of_service"


class DoorState(StrEnum):
    """What the locker believes about a door, from the sensor and the commands it sent."""

    LOCKED = "locked"  # closed, no unlock pending
    UNLOCKING = "unlocking"  # unlock authorised and sent, not yet seen open
    OPEN = "open"  # seen open for an authorisation; locked again once seen closed
    JAMMED = "jammed"  # unlocked but never seen open
    FORCED = "forced"  # seen open without an authorisation


# the door states in which a door stands open (authorised or not)
OPEN_DOOR_STATES = (DoorState.OPEN.value, DoorState.FORCED.value)


class OrderState(StrEnum):
    RECEIVED = "received"
    ALLOCATED = "allocated"
    LOADED = "loaded"  # goods inside, not ready yet: a zone out of limits, or a code collision
    READY = "ready"
    COLLECTING = "collecting"  # code accepted, doors opened, not all closed again yet
    COLLECTED = "collected"
    EXPIRED = "expired"
    # the customer took what was released; bags kept back for the cold chain wait for a courier
    WITHHELD = "withheld"
    RECLAIMING = "reclaiming"  # a courier opened its doors to take the goods back
    RECLAIMED = "reclaimed"
    CANCELLED = "cancelled"


class ReturnState(StrEnum):
    """Something a customer hands back at the locker (locker.returns)."""

    OFFERED = "offered"  # the customer may: after a pickup, or with central's return code
    OPENING = "opening"  # a compartment was chosen and its door unlocked for it
    DEPOSITED = "deposited"  # its door opened and closed: the goods wait for a courier
    TAKING_BACK = "taking_back"  # a courier opened it to take the goods
    TAKEN = "taken"
    LAPSED = "lapsed"  # the offer ended unused
    CANCELLED = "cancelled"


class DoorSense(StrEnum):
    """One reading of a door sensor, as a driver reports it."""

    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"  # board offline or never read
