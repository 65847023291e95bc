"""Every state an order, a compartment, a door and an authorisation can be in, and what moves it.

One table, `TABLE`: (kind, state, event) -> next state. The lifecycle modules change a state only
through `move()`, which looks the step up here and refuses one that is not in it, so this file is
the whole truth about the locker's states: docs/lifecycle.md draws it (`mermaid()`), and the tests
check that from every state a fault can lead to there is a way back to a safe harbour (an order
ready or collected, or on a courier's list) that needs no technician.

A fault is an event nobody asked for: a power cut, a board that does not answer, a lost
acknowledgement, a jam, a door forced, a clock or a zone that cannot be trusted. Each is marked, so
that the way back from it can be checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from locker.domain.model import CompartmentState, DoorState, OrderState, ReturnState
from locker.domain.store import Tx


class Kind(StrEnum):
    ORDER = "order"
    COMPARTMENT = "compartment"
    DOOR = "door"
    AUTHORISATION = "authorisation"
    RETURN = "return"


class AuthState(StrEnum):
    """Where one authorisation to open one door stands (the `outcome` column, or its absence)."""

    PENDING = "pending"  # committed; the unlock is being sent, no answer yet
    ACKED = "acked"  # the board acknowledged the pulse; the door has not been seen open yet
    OPENED = "opened"  # the door was seen open for it: the only proof of an opening
    SUPERSEDED = "superseded"  # a newer authorisation for the same door took its place
    FAILED = "failed"  # never sent (the board was offline): the lock was not pulsed
    UNCONFIRMED = "unconfirmed"  # sent, never acknowledged: the lock may have pulsed
    JAMMED = "jammed"  # acknowledged, but the door was never seen open
    INTERRUPTED = "interrupted"  # a restart found it unanswered: it is never pulsed again


# an authorisation in one of these may still be answered by its door opening late
LATE_OPENING = (AuthState.UNCONFIRMED, AuthState.JAMMED, AuthState.INTERRUPTED)
WAITING = (AuthState.PENDING, AuthState.ACKED)  # the door may open any moment


@dataclass(frozen=True)
class Step:
    kind: Kind
    source: str
    event: str
    target: str
    fault: bool = False  # nobody asked for it: the way back from its target is checked
    # who or what makes it happen: customer, courier, central, ops (a technician at the screen,
    # the ops page or central, from afar), locker, door, board, clock. Never only someone who
    # must travel to the locker: every way back works from afar or by itself.
    by: str = ""


def _steps(kind: Kind, rows: Iterable[tuple[str, str, str, str]], *, fault: bool = False
           ) -> list[Step]:
    return [Step(kind, source, event, target, fault, by) for source, event, target, by in rows]


OS, CS, DS, AU, RS = OrderState, CompartmentState, DoorState, AuthState, ReturnState

TABLE: tuple[Step, ...] = (
    # --- orders ---------------------------------------------------------------------------------
    *_steps(Kind.ORDER, [
        (OS.RECEIVED, "allocate", OS.ALLOCATED, "courier"),
        (OS.RECEIVED, "change", OS.RECEIVED, "central"),
        (OS.RECEIVED, "cancel", OS.CANCELLED, "central"),
        (OS.ALLOCATED, "allocate", OS.ALLOCATED, "courier"),  # the bags still without a place
        (OS.ALLOCATED, "change", OS.ALLOCATED, "central"),
        (OS.ALLOCATED, "rebag", OS.RECEIVED, "central"),  # new bags before anything went in
        (OS.ALLOCATED, "cancel", OS.CANCELLED, "central"),
        (OS.ALLOCATED, "activate", OS.READY, "locker"),  # every door closed, zones in limits
        (OS.LOADED, "activate", OS.READY, "locker"),
        (OS.LOADED, "change", OS.LOADED, "central"),
        (OS.LOADED, "cancel", OS.CANCELLED, "central"),
        (OS.READY, "accept_code", OS.COLLECTING, "customer"),
        (OS.READY, "expire", OS.EXPIRED, "clock"),
        (OS.READY, "change", OS.READY, "central"),
        (OS.READY, "extend", OS.READY, "central"),
        (OS.READY, "cancel", OS.CANCELLED, "central"),
        (OS.COLLECTING, "all_closed", OS.COLLECTED, "customer"),
        (OS.EXPIRED, "extend", OS.READY, "central"),
        (OS.EXPIRED, "change", OS.EXPIRED, "central"),
        (OS.EXPIRED, "reclaim", OS.RECLAIMING, "courier"),
        (OS.EXPIRED, "cancel", OS.CANCELLED, "central"),
        (OS.RECLAIMING, "reclaim", OS.RECLAIMING, "courier"),
        (OS.RECLAIMING, "all_closed", OS.RECLAIMED, "courier"),
        (OS.CANCELLED, "reclaim", OS.RECLAIMING, "courier"),  # goods were inside
        # [coldchain] on_excursion = "withhold": a bag whose zone went out of its limits while
        # it was inside is not released; the customer takes the rest (or nothing opens), and
        # a courier takes the kept bags back
        (OS.COLLECTING, "collect_rest", OS.WITHHELD, "customer"),
        (OS.READY, "withhold", OS.WITHHELD, "customer"),
        (OS.WITHHELD, "reclaim", OS.RECLAIMING, "courier"),
        (OS.WITHHELD, "cancel", OS.CANCELLED, "central"),
        # central cancelled it while its doors were being opened: the cancel waits for the
        # pickup to end, and takes effect if it ended short
        (OS.COLLECTING, "cancel_later", OS.COLLECTING, "central"),
        (OS.COLLECTING, "cancel", OS.CANCELLED, "central"),
    ]),
    *_steps(Kind.ORDER, [
        # loaded, but a zone is out of its limits, or its code would open another order too
        (OS.ALLOCATED, "hold_loaded", OS.LOADED, "locker"),
        # no door of it was seen open (power cut after the commit, a board that went away)
        (OS.COLLECTING, "interrupt", OS.READY, "locker"),
        # some doors opened and closed, the others never opened: the code opens the rest
        (OS.COLLECTING, "part_collect", OS.READY, "locker"),
        # a door of it opened late (its acknowledgement was lost, or it stuck a moment)
        (OS.READY, "late_opening", OS.COLLECTING, "door"),
        # its doors cannot open for now (board offline, jam, excursion): the window waits
        (OS.READY, "hold", OS.READY, "locker"),
        (OS.READY, "release_hold", OS.READY, "locker"),
        (OS.RECLAIMING, "interrupt", OS.RECLAIMING, "locker"),  # the courier tries again
        # expired on a clock not trusted (or stepped forward wrongly): its window is open
        (OS.EXPIRED, "clock_corrected", OS.READY, "clock"),
    ], fault=True),
    # --- compartments ---------------------------------------------------------------------------
    *_steps(Kind.COMPARTMENT, [
        (CS.FREE, "reserve", CS.RESERVED, "courier"),
        (CS.FREE, "take_out", CS.OUT_OF_SERVICE, "ops"),
        (CS.RESERVED, "load", CS.LOADED, "courier"),
        (CS.RESERVED, "release", CS.FREE, "central"),  # the order changed or went, nothing inside
        (CS.RESERVED, "empty", CS.FREE, "courier"),  # a part-loaded order taken back
        (CS.LOADED, "empty", CS.FREE, "customer"),
        (CS.OUT_OF_SERVICE, "put_back", CS.FREE, "ops"),
        # out of service for a jam, and its door was then seen to open and close: it works
        (CS.OUT_OF_SERVICE, "door_works", CS.FREE, "door"),
        # ... or it opened late for the courier after all: the bags may be in it
        (CS.OUT_OF_SERVICE, "relink", CS.RESERVED, "door"),
    ]),
    *_steps(Kind.COMPARTMENT, [
        (CS.RESERVED, "jam_while_loading", CS.OUT_OF_SERVICE, "door"),  # its bags go elsewhere
    ], fault=True),
    # --- doors ----------------------------------------------------------------------------------
    *_steps(Kind.DOOR, [
        (DS.LOCKED, "unlock", DS.UNLOCKING, "locker"),
        (DS.UNLOCKING, "unlock", DS.UNLOCKING, "locker"),  # a newer authorisation
        (DS.UNLOCKING, "opened", DS.OPEN, "door"),
        (DS.LOCKED, "opened", DS.OPEN, "door"),  # a late answer to an unacknowledged unlock
        (DS.OPEN, "unlock", DS.OPEN, "locker"),  # already open: the opening counts at once
        (DS.OPEN, "closed", DS.LOCKED, "door"),
        (DS.FORCED, "unlock", DS.OPEN, "locker"),
        (DS.FORCED, "closed", DS.LOCKED, "door"),
        (DS.JAMMED, "unlock", DS.UNLOCKING, "locker"),  # tried again
        (DS.JAMMED, "opened", DS.OPEN, "door"),  # it opened after all
        (DS.JAMMED, "put_back", DS.LOCKED, "ops"),
    ]),
    *_steps(Kind.DOOR, [
        (DS.LOCKED, "forced", DS.FORCED, "door"),
        (DS.JAMMED, "forced", DS.FORCED, "door"),
        (DS.UNLOCKING, "unlock_failed", DS.LOCKED, "board"),
        (DS.UNLOCKING, "interrupt", DS.LOCKED, "locker"),
        (DS.UNLOCKING, "open_timeout", DS.JAMMED, "clock"),
    ], fault=True),
    # --- authorisations -------------------------------------------------------------------------
    *_steps(Kind.AUTHORISATION, [
        (AU.PENDING, "ack", AU.ACKED, "board"),
        (AU.PENDING, "opened", AU.OPENED, "door"),
        (AU.ACKED, "opened", AU.OPENED, "door"),
        (AU.PENDING, "supersede", AU.SUPERSEDED, "locker"),
        (AU.ACKED, "supersede", AU.SUPERSEDED, "locker"),
        # the pulse's answer may come after the door was seen open, or after a newer one
        (AU.OPENED, "ack", AU.OPENED, "board"),
        (AU.OPENED, "no_ack", AU.OPENED, "board"),
        (AU.SUPERSEDED, "ack", AU.SUPERSEDED, "board"),
        (AU.SUPERSEDED, "no_ack", AU.SUPERSEDED, "board"),
        (AU.SUPERSEDED, "never_sent", AU.SUPERSEDED, "board"),
        (AU.OPENED, "never_sent", AU.OPENED, "board"),  # the door was open already
        (AU.INTERRUPTED, "ack", AU.INTERRUPTED, "board"),
        (AU.INTERRUPTED, "no_ack", AU.INTERRUPTED, "board"),
        (AU.INTERRUPTED, "never_sent", AU.INTERRUPTED, "board"),
        # the door is the truth: a late opening answers the authorisation it was for
        (AU.UNCONFIRMED, "opened", AU.OPENED, "door"),
        (AU.JAMMED, "opened", AU.OPENED, "door"),
        (AU.INTERRUPTED, "opened", AU.OPENED, "door"),
    ]),
    *_steps(Kind.AUTHORISATION, [
        (AU.PENDING, "never_sent", AU.FAILED, "board"),
        (AU.PENDING, "no_ack", AU.UNCONFIRMED, "board"),
        (AU.PENDING, "interrupt", AU.INTERRUPTED, "locker"),
        # a restart found the door shut: pulsed or not, nobody watched it; never again
        (AU.ACKED, "interrupt", AU.INTERRUPTED, "locker"),
        (AU.ACKED, "open_timeout", AU.JAMMED, "clock"),
    ], fault=True),
    # --- returns (locker.returns) ---------------------------------------------------------------
    *_steps(Kind.RETURN, [
        (RS.OFFERED, "open", RS.OPENING, "customer"),  # a compartment of its zone unlocks
        (RS.OFFERED, "lapse", RS.LAPSED, "clock"),
        (RS.OFFERED, "cancel", RS.CANCELLED, "central"),
        (RS.OPENING, "deposit", RS.DEPOSITED, "customer"),  # its door opened and closed again
        # closed again reading empty (an item sensor): nothing was put in, the offer stands
        (RS.OPENING, "nothing_inside", RS.OFFERED, "customer"),
        (RS.DEPOSITED, "take_back", RS.TAKING_BACK, "courier"),
        (RS.TAKING_BACK, "all_closed", RS.TAKEN, "courier"),
    ]),
    *_steps(Kind.RETURN, [
        # its door never opened (it did not unlock, jammed, a power cut): the offer stands, the
        # compartment is free again, and the customer may try again
        (RS.OPENING, "not_opened", RS.OFFERED, "locker"),
        (RS.TAKING_BACK, "interrupt", RS.DEPOSITED, "locker"),  # the courier tries again
    ], fault=True),
)

NEXT: dict[tuple[Kind, str, str], str] = {}
for _step in TABLE:
    _key = (_step.kind, str(_step.source), _step.event)
    if _key in NEXT:
        raise AssertionError(f"two steps from {_key}")
    NEXT[_key] = str(_step.target)

STATES: dict[Kind, tuple[str, ...]] = {
    Kind.ORDER: tuple(OrderState),
    Kind.COMPARTMENT: tuple(CompartmentState),
    Kind.DOOR: tuple(DoorState),
    Kind.AUTHORISATION: tuple(AuthState),
    Kind.RETURN: tuple(ReturnState),
}
INITIAL: dict[Kind, str] = {
    Kind.ORDER: OrderState.RECEIVED,
    Kind.COMPARTMENT: CompartmentState.FREE,
    Kind.DOOR: DoorState.LOCKED,
    Kind.AUTHORISATION: AuthState.PENDING,
    Kind.RETURN: ReturnState.OFFERED,
}
# where a thing may rest for good; every other state has a way out
FINAL: dict[Kind, frozenset[str]] = {
    Kind.ORDER: frozenset({OrderState.COLLECTED, OrderState.RECLAIMED, OrderState.CANCELLED}),
    Kind.COMPARTMENT: frozenset(),
    Kind.DOOR: frozenset(),
    Kind.AUTHORISATION: frozenset({AuthState.OPENED, AuthState.SUPERSEDED, AuthState.FAILED,
                                   *LATE_OPENING}),
    Kind.RETURN: frozenset({ReturnState.TAKEN, ReturnState.LAPSED, ReturnState.CANCELLED}),
}
# an order in one of these is where a customer or courier can act on it without a technician
HARBOURS = frozenset({OrderState.READY, OrderState.COLLECTED, OrderState.RECLAIMED,
                      # a courier's `to_reclaim` list
                      OrderState.EXPIRED, OrderState.RECLAIMING, OrderState.CANCELLED,
                      OrderState.WITHHELD})
# a return in one of these waits for the customer (offered) or a courier (deposited), or is done
RETURN_HARBOURS = frozenset({ReturnState.OFFERED, ReturnState.DEPOSITED, *FINAL[Kind.RETURN]})
# the code of an order in one of these opens nothing any more: the card keeps no digest of it
CODE_SPENT = frozenset({*FINAL[Kind.ORDER], OrderState.WITHHELD})


class IllegalTransition(AssertionError):
    """A use case asked for a step the table does not have: a bug, never bad input."""


def next_state(kind: Kind, state: str, event: str) -> str:
    target = NEXT.get((kind, str(state), event))
    if target is None:
        raise IllegalTransition(f"{kind.value}: no step from {state!r} on {event!r}")
    return target


# where each kind keeps its state
_COLUMN = {Kind.ORDER: ("orders", "state"), Kind.COMPARTMENT: ("compartments", "state"),
           Kind.DOOR: ("compartments", "door"), Kind.RETURN: ("returns", "state")}


def move(tx: Tx, kind: Kind, subject: str | int, state: str, event: str) -> str:
    """Take one step of the table for one order, compartment or door; returns the new state.

    The row is written only if it is still in `state` (a step decided on a stale read changes
    nothing and raises). Authorisations are moved by lifecycle.door, which writes their columns.
    """
    target = next_state(kind, state, event)
    table, column = _COLUMN[kind]
    extra = ", door_changed_at = :now" if kind is Kind.DOOR and target != state else ""
    if kind is Kind.ORDER and target in CODE_SPENT:
        # a finished order's code opens nothing, so the card keeps nothing of it but, for a
        # collected one, 16 bits to answer "already used" (10^10 / 2^16 codes share a tag)
        extra = (", used_tag = CASE WHEN :target IN ('collected', 'withheld')"
                 " THEN coalesce(substr(code_digest, 1, 4), used_tag) ELSE used_tag END,"
                 " code_digest = NULL")
    changed = tx.execute(
        f"UPDATE {table} SET {column} = :target, updated_at = :now{extra}"
        f" WHERE id = :id AND {column} = :state",
        {"target": target, "now": tx.now, "id": subject, "state": str(state)})
    if not changed:
        raise IllegalTransition(f"{kind.value} {subject} is no longer {state!r}")
    return target


def mermaid(kind: Kind) -> str:
    """The state diagram of one kind, from the table (faults as dotted arrows)."""
    lines = ["stateDiagram-v2", f"    [*] --> {INITIAL[kind]}"]
    for step in TABLE:
        if step.kind is kind:
            arrow = "-->"
            label = f"{step.event}{' (fault)' if step.fault else ''}"
            lines.append(f"    {step.source} {arrow} {step.target}: {label}")
    lines.extend(f"    {state} --> [*]" for state in sorted(FINAL[kind]))
    return "\n".join(lines)


if __name__ == "__main__":  # print the diagrams for docs/lifecycle.md
    for _kind in Kind:
        print(f"## {_kind.value.capitalize()}s\n\n```mermaid\n{mermaid(_kind)}\n```\n")
