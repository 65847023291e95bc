"""The words of the domain: zones, sizes, and the states of compartments, doors and orders.

Plain enums and value types only; which state may follow which is locker.lifecycle.table's.
"""

from __future__ import annotations

from enum import StrEnum


class Zone(StrEnum):
    AMBIENT = "ambient"
    FRESH = "fresh"
    FROZEN = "frozen"


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
