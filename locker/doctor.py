"""`locker doctor`: checks that this machine can run the locker, and prints one row per check.

For the technician at a new or misbehaving Pi: the config, the secrets (present, mode 600), the
store (opens, schema, integrity, outbox), the serial port, every lock board answering and every
door sensor reading, the GPIO pins, the zone probes, the clock and the free disk. Each row is OK,
WARN (works, but look at it), FAIL (the locker cannot work like this) or SKIP (not checked, because
something it needs failed); the command exits 1 when any row FAILs, else 0.

It talks to the hardware through the daemon's own code (hardware.bus with the protocol's codec,
hardware.gpio, hardware.probes, hardware.modbus), so a board that answers here answers the daemon.

What it must never do:
- pulse a lock, or switch a relay on: it only reads (relays are claimed at their safe value, off);
- share the RS485 line with a running daemon: it opens the port exclusively (as the daemon does)
  and says so when it cannot;
- create or migrate the store, or write a secret: it reports, `locker init` and the daemon repair;
- stop at the first failure: every check runs that can, each failure is one row saying what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from api.central import load_token
from locker.domain.backup import rolling_backup
from locker.domain.codes import load_box_key, load_digest_key, load_ops_token
from locker.domain.commands import load_command_key
from locker.domain.config import BoardWiring, BusConfig, LockerConfig, ZoneLimits, load_config
from locker.domain.datadir import (
    check_before_open,
    identity_file,
    outbox_seq,
    read_marks,
    stored_identity,
)
from locker.domain.errors import ConfigError, LockerError
from locker.domain.haccp import load_record_key
from locker.domain.model import DoorSense, Zone
from locker.domain.staff import load_secret
from locker.domain.store import SCHEMA_VERSION, Store

Result = Literal["OK", "WARN", "FAIL", "SKIP"]

PLAUSIBLE_AFTER = 1_735_689_600  # 2025-01-01T00:00:00Z: a Pi without RTC boots in 1970
DISK_FAIL_BYTES = 100 * 1000 * 1000
DISK_WARN_BYTES = 500 * 1000 * 1000
OUTBOX_WARN_SHARE = 0.8  # of central.outbox_max_events

TERMINATION_HINT = (
    "check its address switches (set to {address}), its power, the RS485 cable (A/B not swapped,"
    " GND) and the 120 Ω termination at both ends of the line"
)


@dataclass(frozen=True)
class Row:
    """One line of the report."""

    check: str
    result: Result
    detail: str


class _Quiet:
    """A HardwareListener that ignores everything: the doctor reads doors, it does not watch."""

    def door_sensed(self, compartment_id: str, sense: DoorSense) -> None:
        pass

    def item_sensed(self, compartment_id: str, occupied: bool) -> None:
        pass

    def board_offline(self, board: str, reason: str) -> None:
        pass

    def board_online(self, board: str) -> None:
        pass


# --- checks that need no hardware ---------------------------------------------------------------


def check_secrets(config: LockerConfig) -> list[Row]:
    rows: list[Row] = []
    try:
        load_digest_key(config.digest_key_file)
        load_box_key(config.box_key_file)
    except ConfigError as exc:
        rows.append(Row("code keys", "FAIL", str(exc)))
    else:
        rows.append(Row("code keys", "OK", f"{config.digest_key_file}, {config.box_key_file}"
                                           " (mode 600)"))
    if not config.record_key_file.exists():
        rows.append(Row("record key", "WARN", f"{config.record_key_file} is missing: the daemon"
                        " makes it at its start; give central its public half"
                        " (locker haccp key)"))
    else:
        try:
            load_record_key(config.record_key_file)
        except ConfigError as exc:
            rows.append(Row("record key", "FAIL", str(exc)))
        else:
            rows.append(Row("record key", "OK", f"{config.record_key_file}: signs the HACCP"
                            " record's days and the certificates"))

    path = config.ops_token_file
    try:
        token = load_ops_token(path)
    except ConfigError as exc:  # the daemon refuses to start with it
        rows.append(Row("ops token", "FAIL", str(exc)))
    else:
        if token is None:
            rows.append(Row("ops token", "WARN", f"{path}: missing; the ops page refuses"
                                                 " everyone. `locker init` creates it"))
        else:
            rows.append(Row("ops token", "OK", f"{path} (mode 600)"))

    for member in config.staff.members:
        check = f"staff secret {member.id}"
        path = config.staff_secret_file(member.id)
        if not path.exists():
            rows.append(Row(check, "WARN", f"{path}: missing; {member.role} {member.id} cannot"
                                           f" log in. Run: locker staff-secret --id {member.id}"))
            continue
        try:
            load_secret(path)
        except ConfigError as exc:  # the daemon refuses to start with it
            rows.append(Row(check, "FAIL", str(exc)))
        else:
            rows.append(Row(check, "OK", f"{path} (mode 600)"))

    if config.central is not None:
        try:
            load_token(config.central.token_file)
        except ConfigError as exc:
            rows.append(Row("central token", "FAIL", str(exc)))
        else:
            rows.append(Row("central token", "OK", f"{config.central.token_file} (mode 600)"))
        try:
            load_command_key(config.central.command_key_file)
        except ConfigError as exc:
            rows.append(Row("command key", "FAIL", str(exc)))
        else:
            rows.append(Row("command key", "OK",
                            f"{config.central.command_key_file} (Ed25519 public key)"))
    return rows


def check_store(config: LockerConfig) -> Row:
    """Identity, schema, full integrity and outbox, read without creating or migrating."""
    path = config.database
    try:
        expected = check_before_open(path)
    except LockerError as exc:
        return Row("store", "FAIL", str(exc))
    if not path.exists():
        return Row("store", "WARN", f"{path}: no store yet; `locker init` creates it (the daemon"
                                    " too, at its first start)")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=10.0)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            # the whole check (the daemon's start runs the quick one, within a time budget)
            problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
            has_outbox = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").fetchone()
            outbox = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
                         ) if has_outbox else 0
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Row("store", "FAIL", f"{path}: cannot read the store ({exc}); restore a backup"
                                    " or move it away and let `locker init` make a new one")
    if problems != ["ok"]:
        return Row("store", "FAIL", f"{path}: PRAGMA integrity_check found damage:"
                                    f" {'; '.join(problems)}; restore a backup")
    if version > SCHEMA_VERSION:
        return Row("store", "FAIL", f"{path}: schema version {version} is newer than this"
                                    f" software's ({SCHEMA_VERSION}); run the newer version or"
                                    " restore a backup")
    depth = f"outbox {outbox} event{'s' if outbox != 1 else ''}"
    if version < SCHEMA_VERSION:
        return Row("store", "WARN", f"{path}: schema version {version}, this software"
                                    f" {SCHEMA_VERSION} (the daemon migrates it at its next"
                                    f" start); quick_check ok, {depth}")
    try:
        store = Store(path)  # opens as the daemon does (WAL, pragmas); nothing to migrate
        try:
            found = stored_identity(store.read())
            seq = outbox_seq(store.read())
        finally:
            store.close()
    except LockerError as exc:
        return Row("store", "FAIL", str(exc))
    if expected is not None and (found is None or found.store_id != expected.store_id):
        return Row("store", "FAIL", f"{path}: not the store {identity_file(path).name} names"
                                    f" ({expected.store_id}); restore a backup of this locker")
    if found is not None and found.locker_id != config.locker_id:
        return Row("store", "FAIL", f"{path}: the store of locker {found.locker_id}, not"
                                    f" {config.locker_id}")
    marks = read_marks(path)
    if seq < marks.outbox_seq:
        return Row("store", "FAIL", f"{path}: events up to {seq}, but the marks beside it saw"
                                    f" {marks.outbox_seq}: the store went back (docs/"
                                    "operations.md, 'The store went back')")
    backup = rolling_backup(path)
    kept = "no rolling backup yet"
    if backup.exists():
        when = time.localtime(backup.stat().st_mtime)
        kept = f"rolling backup {time.strftime('%Y-%m-%d %H:%M', when)}"
    detail = (f"{path}: schema version {version}, integrity_check ok, {depth},"
              f" store {found.store_id if found else '(no identity yet)'}, {kept}")
    bound = config.central.outbox_max_events if config.central is not None else None
    if bound is not None and outbox >= OUTBOX_WARN_SHARE * bound:
        return Row("store", "WARN", f"{detail}, near its bound of {bound}: is central reachable?")
    return Row("store", "OK", detail)


def check_clock(now: float | None = None) -> Row:
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    if now < PLAUSIBLE_AFTER:
        return Row("clock", "FAIL", f"the clock reads {stamp}, before 2025: set the time (a Pi"
                                    " has no battery clock; it needs NTP at boot). Pickup"
                                    " windows and the HACCP record depend on it")
    if shutil.which("timedatectl") is None:
        return Row("clock", "WARN", f"{stamp}; cannot tell whether it is synchronised (no"
                                    " timedatectl here)")
    try:
        done = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Row("clock", "WARN", f"{stamp}; cannot tell whether it is synchronised ({exc})")
    answer = done.stdout.strip()
    if done.returncode != 0 or answer not in ("yes", "no"):
        why = (done.stderr.strip().splitlines() or [answer or f"exit {done.returncode}"])[0]
        return Row("clock", "WARN", f"{stamp}; cannot tell whether it is synchronised"
                                    f" (timedatectl: {why})")
    if answer == "no":
        return Row("clock", "WARN", f"{stamp}; not synchronised: check the network and"
                                    " `timedatectl timesync-status`")
    return Row("clock", "OK", f"{stamp}, synchronised (NTP)")


def check_disk(data_dir: Path) -> Row:
    where = data_dir
    while not where.exists() and where != where.parent:
        where = where.parent  # data_dir itself may not exist before `locker init`
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return Row("free disk", "FAIL", f"{data_dir}: cannot tell ({exc})")
    detail = f"{free / 1e6:,.0f} MB free on the filesystem of {data_dir}"
    if free < DISK_FAIL_BYTES:
        return Row("free disk", "FAIL", f"{detail} (under {DISK_FAIL_BYTES // 1_000_000} MB: the"
                                        " store cannot grow; free some space)")
    if free < DISK_WARN_BYTES:
        return Row("free disk", "WARN", f"{detail} (under {DISK_WARN_BYTES // 1_000_000} MB)")
    return Row("free disk", "OK", detail)


# --- hardware -----------------------------------------------------------------------------------


def check_serial_port(bus: BusConfig) -> Row:
    """The device exists and opens exclusively at the configured baud, 8N1; then it is closed."""
    import serial  # type: ignore[import-untyped]

    port = bus.port
    if not os.path.exists(port):
        return Row("serial port", "FAIL", f"{port} does not exist: plug in the RS485 adapter, or"
                                          " fix bus.port (ls /dev/serial/by-id/ names adapters"
                                          " by their serial number)")
    try:
        line = serial.Serial(port, baudrate=bus.baud, bytesize=serial.EIGHTBITS,
                             parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_ONE,
                             xonxoff=False, rtscts=False, timeout=0, exclusive=True)
    except serial.SerialException as exc:
        code = exc.errno
        if code in (errno.EACCES, errno.EPERM):
            return Row("serial port", "FAIL", f"{port}: permission denied; add this user to the"
                                              " dialout group (sudo usermod -aG dialout $USER,"
                                              " then log in again)")
        if code in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively" in str(exc):
            return Row("serial port", "FAIL", f"{port} is held by another program (the locker"
                                              " daemon?); stop it first (sudo systemctl stop"
                                              " locker): the doctor must not share the bus")
        if code == errno.ENOTTY or "Inappropriate ioctl" in str(exc):
            return Row("serial port", "FAIL", f"{port} is not a serial device; fix bus.port")
        return Row("serial port", "FAIL", f"{port}: cannot open it ({exc})")
    except (OSError, ValueError) as exc:
        return Row("serial port", "FAIL", f"{port}: cannot open it ({exc})")
    line.close()
    return Row("serial port", "OK", f"{port} opens exclusively at {bus.baud} baud 8N1")


@dataclass
class BoardReading:
    address: int
    answered: bool
    doors: dict[str, DoorSense]  # the compartments wired to it; UNKNOWN where nothing was read


async def read_boards(config: LockerConfig, bus: BusConfig) -> tuple[list[BoardReading], int]:
    """Every board's door status, read once through the daemon's bus and codec.

    Returns the readings and the bytes the line dropped as noise. Raises HardwareError if the port
    does not open.
    """
    from hardware import factory
    from hardware.bus import Priority

    line, codec = factory.bus_line(bus)
    await line.open()
    readings: list[BoardReading] = []
    try:
        for board in bus.boards:
            wired = {c.wiring.channel: c.id for c in config.compartments
                     if isinstance(c.wiring, BoardWiring) and c.wiring.board == board.address}
            doors = dict.fromkeys(wired.values(), DoorSense.UNKNOWN)
            answered = True
            # a board with nothing wired is still asked, on its first channel
            for request in codec.status_requests(board, tuple(sorted(wired)) or (1,)):
                try:
                    reply = await line.request((request,), Priority.READ)
                    if reply is None:
                        raise LockerError(f"{request.where}: no reply")
                    states = codec.decode_doors(request, reply, board)
                except (LockerError, ValueError):
                    answered = False
                    break  # one timeout per board is enough
                for channel, closed in states.items():
                    if channel in wired:
                        doors[wired[channel]] = DoorSense.CLOSED if closed else DoorSense.OPEN
            readings.append(BoardReading(board.address, answered, doors))
    finally:
        noise = line.dropped_bytes + line.stats.discarded_frames
        await line.close()
    return readings, noise


def board_rows(bus: BusConfig, readings: Sequence[BoardReading], noise: int) -> list[Row]:
    rows: list[Row] = []
    silent = [r for r in readings if not r.answered]
    for reading in readings:
        name = f"board {reading.address}"
        counts = Counter(reading.doors.values())
        if reading.answered:
            if reading.doors:
                detail = (f"answers: {counts[DoorSense.CLOSED]} door"
                          f"{'s' if counts[DoorSense.CLOSED] != 1 else ''} closed,"
                          f" {counts[DoorSense.OPEN]} open")
            else:
                detail = "answers (no compartment is wired to it)"
            rows.append(Row(name, "OK", detail))
            continue
        detail = f"no answer: {TERMINATION_HINT.format(address=reading.address)}"
        if len(silent) == len(readings):
            detail += (f". No board answers: check that bus.protocol ({bus.protocol}) and"
                       f" bus.baud ({bus.baud}) match the boards, and the adapter")
        if noise:
            detail += f"; {noise} bytes of noise on the line (wrong baud or protocol?)"
        rows.append(Row(name, "FAIL", detail))
    return rows


def door_row(where: str, doors: Mapping[str, DoorSense], *, silent: bool = False,
             all_open_hint: str = "") -> Row | None:
    """One summary row for the door sensors of one board (or of the GPIO bank)."""
    if not doors:
        return None
    check = f"doors {where}"
    unknown = [cid for cid, sense in doors.items() if sense is DoorSense.UNKNOWN]
    opened = [cid for cid, sense in doors.items() if sense is DoorSense.OPEN]
    closed = len(doors) - len(unknown) - len(opened)
    if unknown:
        why = f" ({where} does not answer)" if silent else ""
        detail = f"no reading for {', '.join(unknown)}{why}"
        if opened:
            detail += f"; open: {', '.join(opened)}"
        return Row(check, "FAIL", detail)
    if opened:
        detail = (f"door {opened[0]} open" if len(opened) == 1
                  else f"doors {', '.join(opened)} open")
        if closed == 0 and len(opened) > 1 and all_open_hint:
            detail += f" (every door reads open: {all_open_hint})"
        else:
            detail += f"; {closed} closed"
        return Row(check, "WARN", detail)
    return Row(check, "OK", f"{closed} closed")


async def check_gpio(config: LockerConfig) -> list[Row]:
    """Claim every lock relay (off) and reed switch, read the doors once, release them all."""
    from hardware import factory

    assert config.gpio is not None
    driver = factory.gpio_driver(config, config.gpio)
    count = len(driver.compartment_ids)
    try:
        with warnings.catch_warnings():  # gpiozero warns for each pin library it falls back from
            warnings.simplefilter("ignore")
            await driver.start(_Quiet())
    except LockerError as exc:
        return [Row("gpio", "FAIL", _gpio_failure(exc))]
    try:
        doors = await driver.read_doors()
    finally:
        await driver.stop()
    rows = [Row("gpio", "OK", f"{count} lock relay{'s' if count != 1 else ''} (off) and {count}"
                              f" reed switch{'es' if count != 1 else ''} claimed")]
    row = door_row("gpio", doors, all_open_hint="check the reed switches' common ground wire")
    if row is not None:
        rows.append(row)
    return rows


def _gpio_failure(exc: BaseException) -> str:
    if type(exc.__cause__).__name__ == "BadPinFactory":
        return (f"no GPIO on this machine (gpiozero: {exc.__cause__}); off a Raspberry Pi,"
                " set GPIOZERO_PIN_FACTORY=mock to run the other checks")
    return str(exc)


def check_compressors(config: LockerConfig) -> list[Row]:
    """Claim each zone's compressor relay at its safe value (off) and release it."""
    from hardware import factory

    rows: list[Row] = []
    for zone, limits in config.zones.items():
        if limits.compressor_pin is None:
            continue
        check = f"compressor {zone.value}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                relay = factory.compressor(limits.compressor_pin)
        except LockerError as exc:
            rows.append(Row(check, "FAIL", _gpio_failure(exc)))
            continue
        relay.close()
        rows.append(Row(check, "OK", f"GPIO{limits.compressor_pin} claimed (relay off)"))
    return rows


def _limits(limits: ZoneLimits) -> str:
    low = "" if limits.min_c is None else f"{limits.min_c:g}"
    return f"{low}..{limits.max_c:g} °C" if low else f"at most {limits.max_c:g} °C"


def temperature_row(check: str, zone: Zone, limits: ZoneLimits, celsius: float,
                    source: str) -> Row:
    reading = f"{celsius:.1f} °C ({source})"
    if limits.min_c is not None and celsius < limits.min_c:
        return Row(check, "WARN", f"{reading}, below {zone.value}'s {_limits(limits)}")
    if celsius > limits.max_c:
        detail = f"{reading}, above {zone.value}'s {_limits(limits)}"
        if limits.tolerated_max_c is not None and celsius <= limits.tolerated_max_c:
            detail += f" (within the {limits.tolerated_max_c:g} °C tolerated during a defrost)"
        return Row(check, "WARN", detail)
    return Row(check, "OK", f"{reading}, within {_limits(limits)}")


async def check_probes(config: LockerConfig) -> list[Row]:
    from hardware import factory

    rows: list[Row] = []
    for zone, limits in config.zones.items():
        check = f"probe {zone.value}"
        if limits.probe is not None:
            try:
                celsius = await factory.probe(limits.probe).read_celsius()
            except LockerError as exc:
                rows.append(Row(check, "FAIL", str(exc)))
            else:
                rows.append(temperature_row(check, zone, limits, celsius, "DS18B20"))
        elif limits.modbus is not None:
            m = limits.modbus
            source = f"Modbus {m.port} slave {m.slave}"
            try:
                controller = factory.modbus_controller(m)
            except ValueError as exc:
                rows.append(Row(check, "FAIL", f"{source}: {exc}"))
                continue
            try:
                await controller.connect()
                celsius = await controller.read_celsius()
            except LockerError as exc:
                rows.append(Row(check, "FAIL", str(exc)))
            else:
                rows.append(temperature_row(check, zone, limits, celsius, source))
            finally:
                controller.close()
    return rows


async def check_hardware(config: LockerConfig) -> list[Row]:
    rows: list[Row] = []
    bus = config.bus
    if bus is not None:
        port = check_serial_port(bus)
        rows.append(port)
        if port.result != "OK":
            rows += [Row(f"board {b.address}", "SKIP", "not checked: the serial port did not"
                                                       " open") for b in bus.boards]
        else:
            try:
                readings, noise = await read_boards(config, bus)
            except LockerError as exc:
                rows.append(Row("boards", "FAIL", str(exc)))
            else:
                rows += board_rows(bus, readings, noise)
                for reading in readings:
                    row = door_row(f"board {reading.address}", reading.doors,
                                   silent=not reading.answered,
                                   all_open_hint="is door_closed_when right for this board, or"
                                                 " its sensor cable loose?")
                    if row is not None:
                        rows.append(row)
    if config.gpio is not None:
        rows += await _guard("gpio", check_gpio(config))
    rows += check_compressors(config)
    rows += await _guard("probes", check_probes(config))
    return rows


async def _guard(check: str, job: Awaitable[list[Row]]) -> list[Row]:
    """Run one check; a bug in it is one FAIL row, never the end of the report."""
    try:
        return await job
    except Exception as exc:
        return [_broken(check, exc)]


def _broken(check: str, exc: Exception) -> Row:
    return Row(check, "FAIL", f"the check itself failed ({type(exc).__name__}: {exc})")


# --- the report ---------------------------------------------------------------------------------


async def diagnose(config_path: Path, serial_port: str | None = None) -> list[Row]:
    """Every check, in order; never raises for what it finds."""
    rows: list[Row] = []
    try:
        config = load_config(config_path, port=serial_port)
    except ConfigError as exc:
        rows.append(Row("config", "FAIL", str(exc)))
        for check in ("secrets", "store", "hardware", "free disk"):
            rows.append(Row(check, "SKIP", "not checked: it needs the config"))
        rows.append(check_clock())
        return rows
    wiring = (f"{len(config.bus.boards)} {config.bus.protocol} board"
              f"{'s' if len(config.bus.boards) != 1 else ''} at {config.bus.baud} baud"
              if config.bus is not None else "GPIO")
    rows.append(Row("config", "OK", f"{config.path}: locker {config.locker_id},"
                                    f" {len(config.compartments)} compartments on {wiring}"))
    try:
        rows += check_secrets(config)
    except Exception as exc:
        rows.append(_broken("secrets", exc))
    try:
        rows.append(check_store(config))
    except Exception as exc:
        rows.append(_broken("store", exc))
    rows += await _guard("hardware", check_hardware(config))
    rows.append(check_clock())
    rows.append(check_disk(config.data_dir))
    return rows


def render(rows: Sequence[Row], width: int | None = None) -> str:
    """An aligned table; details wrap under their column when a width is given (a terminal)."""
    check_w = max(len("CHECK"), *(len(r.check) for r in rows))
    result_w = len("RESULT")
    indent = check_w + 2 + result_w + 2
    lines = [f"{'CHECK':<{check_w}}  {'RESULT':<{result_w}}  DETAIL"]
    for row in rows:
        head = f"{row.check:<{check_w}}  {row.result:<{result_w}}  "
        if width is None or width - indent < 30:
            lines.append(head + row.detail)
            continue
        wrapped = textwrap.wrap(row.detail, width - indent) or [""]
        lines.append(head + wrapped[0])
        lines += [" " * indent + more for more in wrapped[1:]]
    counts = Counter(r.result for r in rows)
    summary = ", ".join(f"{counts[k]} {k}" for k in ("FAIL", "WARN", "SKIP", "OK") if counts[k])
    verdict = "the locker cannot run like this" if counts["FAIL"] else "nothing fails"
    lines += ["", f"{summary}: {verdict}"]
    return "\n".join(lines)


def run_doctor(config_path: Path, *, serial_port: str | None = None,
               verbose: bool = False) -> int:
    """Print the report; 1 when a check FAILs, else 0."""
    if not verbose:  # each row says what went wrong; the drivers' log lines would repeat it
        for name in ("hardware", "pymodbus"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    rows = asyncio.run(diagnose(config_path, serial_port))
    width = None
    with contextlib.suppress(OSError, ValueError):
        if sys.stdout.isatty():
            width = shutil.get_terminal_size().columns
    print(render(rows, width), flush=True)
    return 1 if any(r.result == "FAIL" for r in rows) else 0
