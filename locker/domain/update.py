"""Remote updates, the decisions: which version is newer, what central asked for and when, when
the locker is quiet enough to restart, and the update's state between two processes.

An update crosses process boundaries: the running version installs the new one into the other
slot and exits; systemd runs the boot guard (deploy/locker-boot), then the new version; the new
version proves itself or the guard brings the old one back. They talk through one small JSON file
in data_dir, `update-state.json`, always replaced whole (write, fsync, rename), in one of these
shapes:

    {"trying": "1.4.0", "from": "1.3.2", "from_slot": "a", "to_slot": "b", ...}
        the running version wrote it just before switching `current`; the guard counts the new
        version's starts in "boots"; the new version deletes the file once it is good
    {"rolling_back": ..., "reason": ...}   the guard is bringing the old slot back (a power cut
        in the middle makes the next start finish the job)
    {"rolled_back": "1.4.0", "reason": ..., "from": "1.3.2", ...}
        the old version, once up again, tells central (`update.rolled_back`) and deletes it

Nothing here downloads, verifies or installs anything (api/updater.py does, with python-tuf, and
locker/slots.py), and nothing here imports an I/O library.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from locker.domain.errors import LockerError
from locker.domain.model import DoorState, OrderState
from locker.domain.store import Store, Tx

VERSION = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")
RESTART_EXIT_CODE = 75  # EX_TEMPFAIL; the unit's RestartForceExitStatus=75 starts us again
STATE_FILE = "update-state.json"
WANTED_KEY = "update.wanted"  # what central last asked for (meta, JSON)
ROLLBACKS_KEY = "update.rollbacks"  # how many updates rolled back on this locker, ever
MAX_WINDOW_S = 90 * 86400.0  # a rollout window reaching further than this is a mistake
# what a customer does at the screen: a code typed (refused or accepted)
CUSTOMER_EVENTS = ("security.code_refused", "order.collecting")
# orders whose open doors are a transaction in flight (someone is taking or putting goods)
IN_FLIGHT_ORDERS = (OrderState.COLLECTING.value, OrderState.RECLAIMING.value,
                    OrderState.ALLOCATED.value)


class UpdateRefused(LockerError):
    """This version will not be installed: `reason` is one word for central's dashboards."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RepositoryUnavailable(LockerError):
    """The update repository could not be reached (or answered 404 or 5xx): try again later."""


class BadVersion(LockerError, ValueError):
    """Not a version this locker can compare: X.Y.Z, three numbers."""


def parse_version(text: object) -> tuple[int, int, int]:
    if not isinstance(text, str):
        raise BadVersion(f"a version is a string X.Y.Z, not {text!r:.40}")
    match = VERSION.fullmatch(text)
    if match is None:
        raise BadVersion(f"{text[:40]!r} is not a version X.Y.Z (three numbers, no leading 0)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def wheel_name(version: str) -> str:
    """A version's wheel, which is also its target path in the update repository."""
    return f"locker_controller-{version}-py3-none-any.whl"


def is_newer(candidate: str, running: str) -> bool:
    """True only when `candidate` is strictly newer; a running version we cannot read (a
    development build) is treated as 0.0.0."""
    try:
        current = parse_version(running)
    except BadVersion:
        current = (0, 0, 0)
    return parse_version(candidate) > current


# -- what central asked for ---------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """One announcement: this version, inside this rollout window (unix seconds, either open)."""

    version: str
    not_before: float | None = None
    not_after: float | None = None
    nonce: str = ""
    announced_at: float = 0.0

    def window(self, now: float) -> str:
        """"wait" before the window, "passed" after it, "open" inside it."""
        if self.not_after is not None and now > self.not_after:
            return "passed"
        if self.not_before is not None and now < self.not_before:
            return "wait"
        return "open"


def check_window(args: dict[str, Any], now: float) -> tuple[float | None, float | None]:
    """The rollout window of an `update` command, checked: numbers, in order, not absurd."""
    bounds: list[float | None] = []
    for name in ("not_before", "not_after"):
        value = args.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            raise ValueError(f"{name} must be a unix time (a number) or null")
        bounds.append(None if value is None else float(value))
    not_before, not_after = bounds
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise ValueError("not_after must come after not_before")
    if not_after is not None and not_after <= now:
        raise ValueError("the rollout window has already ended")
    if max(b for b in (not_before, not_after, now) if b is not None) > now + MAX_WINDOW_S:
        raise ValueError("a rollout window ends at most 90 days ahead")
    return not_before, not_after


def want(tx: Tx, wanted: Wanted) -> None:
    """Record what central asked for; a newer announcement replaces an older one."""
    tx.set_meta(WANTED_KEY, json.dumps(asdict(wanted), sort_keys=True))


def wanted(store: Store) -> Wanted | None:
    raw = store.meta(WANTED_KEY)
    if raw is None:
        return None
    try:
        fields = json.loads(raw)
        return Wanted(**fields)
    except (ValueError, TypeError):
        return None  # written by a version that knew another shape: forget it


def forget(tx: Tx, version: str | None = None) -> None:
    """Drop what central asked for (only if it is still `version`, when given)."""
    raw = tx.meta(WANTED_KEY)
    if raw is None:
        return
    if version is not None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            if json.loads(raw)["version"] != version:
                return
    tx.set_meta(WANTED_KEY, None)


# -- when may the locker restart ----------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """What would be interrupted by a restart right now."""

    staff_sessions: int  # couriers and technicians logged in (and not idle past the timeout)
    doors_in_flight: tuple[str, ...]  # compartments being unlocked, or open for a pickup/loading
    customer_idle_s: float | None  # since a customer last typed a code (None: not since start)


def doors_in_flight(store: Store, now: float, recent_s: float) -> tuple[str, ...]:
    """Doors an unlock is on its way to, and doors open (for less than `recent_s`: longer is an
    alarm, not a transaction) of an order being collected, loaded or reclaimed."""
    rows = store.read().all(
        "SELECT c.id FROM compartments c WHERE c.door = ? OR (c.door = ? AND"
        " c.door_changed_at >= ? AND EXISTS (SELECT 1 FROM order_compartments oc"
        " JOIN orders o ON o.id = oc.order_id WHERE oc.compartment_id = c.id"
        " AND oc.closed_at IS NULL AND o.state IN (?, ?, ?))) ORDER BY c.id",
        (DoorState.UNLOCKING.value, DoorState.OPEN.value, now - recent_s, *IN_FLIGHT_ORDERS))
    return tuple(str(r["id"]) for r in rows)


def restart_verdict(activity: Activity, *, customer_quiet_s: float, local_hour: int,
                    quiet_hour: int | None) -> tuple[bool, str]:
    """May the locker restart now, and why (not)?

    Never while a door transaction is in flight: a restart then would leave a customer in front
    of a door whose opening nobody records. Otherwise when nobody is at the locker (no staff
    session, no code typed for `customer_quiet_s`), or at the quiet hour whoever is there: a
    locker that is never idle still updates, at the hour the operator chose.
    """
    if activity.doors_in_flight:
        return False, f"doors in use: {', '.join(activity.doors_in_flight[:6])}"
    if quiet_hour is not None and local_hour == quiet_hour:
        return True, f"quiet hour ({quiet_hour:02d}:00)"
    if activity.staff_sessions:
        return False, f"{activity.staff_sessions} staff session(s) open"
    if activity.customer_idle_s is not None and activity.customer_idle_s < customer_quiet_s:
        return False, f"a customer typed a code {activity.customer_idle_s:.0f} s ago"
    return True, "nobody at the locker"


# -- the state file -----------------------------------------------------------------------------


def read_state(path: Path) -> dict[str, Any] | None:
    """The update in progress, if any; a file that is not a JSON object counts as none."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the file whole: written beside it, flushed to the card, renamed over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(state, file, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    sync_dir(path.parent)


def clear_state(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sync_dir(path.parent)


def sync_dir(folder: Path) -> None:
    """Make a rename or an unlink in `folder` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def role(state: dict[str, Any] | None, running: str) -> str:
    """What the starting daemon must do about the state file.

    "candidate": it is the version being tried, and must prove itself before the deadline;
    "rolled_back": the guard brought it back after a failed update, central must hear of it;
    "guard_failed": the guard began a rollback and did not finish it (the file is left for its
    next run); "stale": an attempt that is not about this process (an update interrupted before
    the switch, or a guard that did not run); "none": no update in progress.
    """
    if not state:
        return "none"
    if "rolled_back" in state or ("rolling_back" in state and state.get("from") == running):
        return "rolled_back"
    if "rolling_back" in state:
        return "guard_failed"
    if "trying" in state:
        return "candidate" if state["trying"] == running else "stale"
    return "stale"


def pin_import_paths() -> None:
    """Resolve the `current` symlink in sys.path once, at start.

    systemd starts slots/current/bin/python, so the import paths run through the `current`
    link. An update switches that link before this process exits; a module imported lazily after
    the switch would come from the new version. Resolving the paths now keeps this process on
    the slot it started from.
    """
    sys.path[:] = [os.path.realpath(p) if p else p for p in sys.path]
