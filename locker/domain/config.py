"""Reads and checks the locker's TOML config; every mistake names the file, the key and why.

A config is checked whole at start, before anything touches the hardware: unknown keys, wrong
types, values out of range, a channel or pin used twice (as gpiozero refuses a pin claimed twice),
a compartment on a board that is not declared. It never does I/O beyond reading the file.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import math
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from locker.domain import lockboards
from locker.domain.errors import ConfigError
from locker.domain.model import Size, Zone

# identifiers name files and URL paths: ASCII only (str.isalnum() takes "²" and "ａ"), matched
# whole (fullmatch: a pattern's "$" would let "x\n" through)
LOCKER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
STAFF_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
LOCALE = re.compile(r"[a-z]{2,3}(-[A-Z]{2})?")  # the screens' dates and words: fr-FR, en-GB
COMPARTMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MAX_CONFIG_BYTES = 1 << 20  # a locker with thousands of compartments fits in a tenth of this


@dataclass(frozen=True)
class BoardConfig:
    """One lock board on the RS485 bus."""

    address: int
    channels: int = 16
    # which bit value means "door closed": sources disagree, installations differ
    door_closed_when: Literal["bit_set", "bit_clear"] = "bit_set"
    # the board also reports whether each compartment holds something (Kerong's infrared bits)
    item_sensor: bool = False

    @property
    def name(self) -> str:
        return f"board {self.address}"


@dataclass(frozen=True)
class BusConfig:
    """The RS485 line, its protocol and the boards daisy-chained on it."""

    port: str
    protocol: str  # the name of a registered lock-board protocol (locker.domain.lockboards)
    baud: int
    boards: tuple[BoardConfig, ...]
    poll_interval_s: float = 0.25
    timeout_s: float = 0.2
    retries: int = 2
    offline_after: int = 3
    pulse_ms: int = 500
    retry_offline_s: float = 5.0

    def board(self, address: int) -> BoardConfig:
        for board in self.boards:
            if board.address == address:
                return board
        raise KeyError(address)


@dataclass(frozen=True)
class GpioConfig:
    """Relays and reed switches wired straight to the Pi, for a small locker."""

    pulse_ms: int = 500
    debounce_ms: int = 50
    relay_active_high: bool = True


@dataclass(frozen=True)
class BoardWiring:
    board: int
    channel: int  # 1-based, as printed on the board's label


@dataclass(frozen=True)
class GpioWiring:
    lock_pin: int
    door_pin: int
    item_pin: int | None = None  # an item-presence sensor, if the compartment has one


@dataclass(frozen=True)
class CompartmentConfig:
    id: str
    zone: Zone
    size: Size
    wiring: BoardWiring | GpioWiring
    column: int = 1
    level: int = 1  # 1 is the bottom row, reachable from a wheelchair
    # it says whether it holds something (its board's item bits or its item_pin): set from the
    # wiring once the boards are known
    item_sensor: bool = False

    @property
    def location(self) -> str:
        return f"column {self.column}, level {self.level}"


@dataclass(frozen=True)
class ModbusZone:
    """A refrigeration controller on Modbus RTU that regulates the zone itself."""

    port: str
    baud: int = 9600
    slave: int = 1
    temperature: int = 256  # register addresses: Dixell's by default
    setpoint: int = 768
    alarms: int = 1280
    scale: float = 0.1
    input_registers: bool = False


@dataclass(frozen=True)
class ZoneLimits:
    min_c: float | None
    max_c: float
    tolerated_max_c: float | None = None
    grace_s: float = 900.0  # out of limits longer than this is an excursion
    # regulation, for a zone with a probe and a compressor (ambient has neither by default)
    setpoint_c: float | None = None
    hysteresis_c: float = 1.0
    min_off_s: float = 180.0
    defrost_every_h: float | None = None
    defrost_min: float = 20.0
    probe: Path | None = None  # the DS18B20's w1_slave file
    compressor_pin: int | None = None  # GPIO of the compressor relay
    modbus: ModbusZone | None = None  # or a controller that regulates the zone itself
    probe_calibrated: str | None = None  # the probe's last calibration, YYYY-MM-DD


def default_limits() -> dict[Zone, ZoneLimits]:
    """Every declared zone's limits as its declaration gives them (locker.domain.model.ZONES)."""
    return {zone: ZoneLimits(min_c=zone.spec.min_c, max_c=zone.spec.max_c,
                             tolerated_max_c=zone.spec.tolerated_max_c,
                             setpoint_c=zone.spec.setpoint_c,
                             defrost_every_h=zone.spec.defrost_every_h) for zone in Zone}


@dataclass(frozen=True)
class CodePolicy:
    pickup_window_hours: float = 72.0
    # a window held while the order's doors cannot open (the locker's fault) waits at most this
    max_hold_hours: float = 24.0


@dataclass(frozen=True)
class ThrottlePolicy:
    """Guessing defence (locker.domain.throttle): wrong codes slow the locker down, up to a cap."""

    free_wrong_codes: int = 2  # recent wrong codes that cost no delay: a customer's own slips
    first_delay_s: float = 1.0  # the delay after the first one past those, doubling each time
    max_delay_s: float = 30.0  # the longest wait before a code is judged
    forget_per_hour: float = 30.0  # recent wrong codes forgotten an hour
    alarm_failures: int = 10
    alarm_window_s: float = 600.0


# the lockout throttle's keys, and what replaced each (an old config gets told, not a typo)
OLD_THROTTLE_KEYS = {
    "screen_capacity": "nothing (a screen is named by the client; the locker counts for all)",
    "screen_refill_per_hour": "nothing (a screen is named by the client; the locker counts"
                              " for all)",
    "global_capacity": "free_wrong_codes and first_delay_s",
    "global_refill_per_hour": "forget_per_hour",
    "lockout_base_s": "first_delay_s",
    "lockout_max_s": "max_delay_s",
}


@dataclass(frozen=True)
class ColdChainPolicy:
    # a bag whose zone went out of its limits while it was inside: "warn" opens it and tells
    # the customer; "withhold" keeps it back (the rest opens) for a courier to take back
    on_excursion: Literal["warn", "withhold"] = "warn"


@dataclass(frozen=True)
class ReturnsPolicy:
    """What customers may hand back at the locker (locker.returns)."""

    enabled: bool = True
    offer_s: float = 300.0  # after a pickup, the screen offers a return for this long
    code_days: float = 14.0  # central's return code works this long after the order came
    take_back_within_h: float = 24.0  # a return waiting longer for a courier is an alarm


@dataclass(frozen=True)
class DoorPolicy:
    open_timeout_s: float = 15.0  # unlocked but not seen open by then: jammed
    left_open_alarm_s: float = 180.0


@dataclass(frozen=True)
class StaffMember:
    """A courier or technician; the TOTP secret is in data_dir/staff/<id>.secret."""

    id: str
    name: str
    role: Literal["courier", "technician"]


@dataclass(frozen=True)
class StaffPolicy:
    idle_timeout_s: float = 120.0
    members: tuple[StaffMember, ...] = ()


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, an IPv6 one bare or in brackets) is this machine
    only: anything else is reachable from the shop's network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HttpConfig:
    """The local app's listener. Loopback by default: the touchscreen's browser runs on the Pi;
    listening on the shop's network needs TLS and an explicit allow_remote."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 4096
    screen_idle_s: float = 45.0  # the customer's screen goes back to the start after this
    # a request the daemon could not start acting on this long after it arrived does nothing
    stale_request_s: float = 5.0
    tls_cert: Path | None = None  # PEM certificate chain: the app then serves HTTPS only
    tls_key: Path | None = None  # its private key (PEM)
    allow_remote: bool = False  # the operator's yes to a host other than loopback
    # the Host headers answered (DNS rebinding): a name without a port matches any port
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    header_timeout_s: float = 10.0  # a connection's request line and headers must arrive by then
    body_timeout_s: float = 10.0  # and a request's body within this of its headers

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"


@dataclass(frozen=True)
class CentralConfig:
    """Where central is and how the sync loop behaves (docs/central.md)."""

    url: str  # base URL of the locker calls, e.g. https://central.example.com/v1
    token_file: Path  # the locker's bearer token
    command_key_file: Path  # central's Ed25519 public key (PEM): commands must verify against it
    ca_file: Path | None = None  # trust this CA instead of the system's
    allow_insecure: bool = False  # http:// accepted (a test bench, the demo); never in a shop
    # a long poll and a heartbeat cost ~450 B and ~700 B on the wire over TLS: these periods
    # keep an idle locker near 0.6 MB a day (docs/performance.md, "Bytes on the network")
    poll_wait_s: float = 120.0
    batch_size: int = 100
    heartbeat_s: float = 300.0
    request_timeout_s: float = 10.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 300.0
    outage_alarm_s: float = 300.0
    offline_hold_h: float = 72.0  # windows ending offline are held at most this long
    outbox_max_events: int = 50_000
    remote_opens_burst: int = 3
    remote_opens_per_hour: float = 6.0


@dataclass(frozen=True)
class UpdateConfig:
    """Remote updates (README, "Updates"): where the slots are, whom to trust, when to restart."""

    slots_dir: Path  # holds the slots a and b (virtual environments) and the `current` link
    trusted_root: Path  # the update repository's root metadata (TUF), installed with the locker
    repository_url: str  # the TUF repository: metadata/ and targets/ under it
    quiet_hour: int | None = None  # local hour at which a busy locker restarts anyway
    health_deadline_s: float = 300.0  # a new version must prove itself within this
    max_boots: int = 3  # starts a new version gets before the old one comes back
    customer_quiet_s: float = 60.0  # no restart this soon after a customer typed a code
    min_free_mb: float = 50.0  # an update that would leave less free disk is refused
    retry_s: float = 300.0  # a download that failed for want of a network is retried after this


@dataclass(frozen=True)
class ClockPolicy:
    """How far the wall clock is trusted (a Pi has no real-time clock)."""

    unsynchronised_alarm_s: float = 600.0  # not synchronised this long: an alarm
    trust_after_step_s: float = 3600.0  # after a forward step nothing expires this long,
    # unless the clock is seen synchronised sooner


@dataclass(frozen=True)
class StorePolicy:
    keep_finished_days: float = 30.0  # finished orders and cleared alarms, then forgotten
    min_free_mb: float = 50.0  # less free space in data_dir than this: a warning alarm
    backup_every_h: float = 24.0  # the rolling backup in data_dir/backups (0: none)


@dataclass(frozen=True)
class LockerConfig:
    path: Path
    locker_id: str
    name: str
    support_phone: str
    data_dir: Path
    compartments: tuple[CompartmentConfig, ...]
    bus: BusConfig | None
    gpio: GpioConfig | None
    zones: Mapping[Zone, ZoneLimits] = field(default_factory=default_limits)
    codes: CodePolicy = CodePolicy()
    throttle: ThrottlePolicy = ThrottlePolicy()
    doors: DoorPolicy = DoorPolicy()
    coldchain: ColdChainPolicy = ColdChainPolicy()
    returns: ReturnsPolicy = ReturnsPolicy()
    http: HttpConfig = HttpConfig()
    staff: StaffPolicy = StaffPolicy()
    central: CentralConfig | None = None  # None: orders come from the CLI only
    store: StorePolicy = StorePolicy()
    clock: ClockPolicy = ClockPolicy()
    update: UpdateConfig | None = None  # None: this locker is updated by hand
    locale: str = "en-GB"  # how the operators' page writes dates, and its first language
    time_zone: str = "UTC"  # the locker's own time zone (IANA), for the dates it shows

    @property
    def keep_finished_days(self) -> float:
        return self.store.keep_finished_days

    @property
    def database(self) -> Path:
        return self.data_dir / "locker.db"

    @property
    def digest_key_file(self) -> Path:
        """The key the store's code digests are made with (rotated by `locker rotate-keys`)."""
        return self.data_dir / "code-digest.key"

    @property
    def box_key_file(self) -> Path:
        """The private half of the key central seals each order's code to."""
        return self.data_dir / "code-box.key"

    @property
    def record_key_file(self) -> Path:
        """The locker's own Ed25519 key: it signs the HACCP record's daily heads and each
        order's cold-chain certificate (central has the public half)."""
        return self.data_dir / "record.key"

    @property
    def ops_token_file(self) -> Path:
        return self.data_dir / "ops.token"

    def staff_secret_file(self, staff_id: str) -> Path:
        return self.data_dir / "staff" / f"{staff_id}.secret"

    def compartment(self, compartment_id: str) -> CompartmentConfig:
        for compartment in self.compartments:
            if compartment.id == compartment_id:
                return compartment
        raise KeyError(compartment_id)


_T = TypeVar("_T")
_REQUIRED: Any = object()


class _Table:
    """One TOML table being read: typed getters that remember which keys were used."""

    def __init__(self, file: Path, where: str, data: Mapping[str, Any]) -> None:
        self.file, self.where, self.data = file, where, data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, why: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.key(name)}: {why}")

    def _get(self, name: str, default: Any, kinds: tuple[type, ...], what: str) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is _REQUIRED:
                raise self.error(name, f"is required ({what})")
            return default
        value = self.data[name]
        # bool is an int in Python; TOML keeps them apart, and so do we
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(name, f"must be {what}, not {value!r}")
        if not isinstance(value, kinds):
            raise self.error(name, f"must be {what}, not {type(value).__name__} {value!r}")
        return value

    def text(self, name: str, default: Any = _REQUIRED) -> str:
        value: str = self._get(name, default, (str,), "a string")
        if not value.strip():
            raise self.error(name, "must not be empty")
        return value

    def integer(self, name: str, default: Any = _REQUIRED, lo: int | None = None,
            hi: int | None = None) -> int:
        value: int = self._get(name, default, (int,), "an integer")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(name, f"must be between {lo} and {hi}, not {value}")
        return value

    def number(self, name: str, default: Any = _REQUIRED, lo: float | None = None,
              hi: float | None = None) -> float:
        value = float(self._get(name, default, (int, float), "a number"))
        if not math.isfinite(value):  # nan passes every comparison below
            raise self.error(name, f"must be a finite number, not {value}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(name, f"must be between {lo} and {hi}, not {value}")
        return value

    def optional_float(self, name: str) -> float | None:
        return None if name not in self.data else self.number(name)

    def texts(self, name: str, default: Any = _REQUIRED) -> list[str]:
        values: list[Any] = self._get(name, default, (list,), "an array of strings")
        for value in values:
            if not isinstance(value, str) or not value.strip():
                raise self.error(name, f"must be an array of non-empty strings, not {value!r}")
        return values

    def flag(self, name: str, default: Any = _REQUIRED) -> bool:
        value: bool = self._get(name, default, (bool,), "true or false")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def table(self, name: str, required: bool = False) -> _Table | None:
        raw = self._get(name, _REQUIRED if required else None, (dict,), "a table")
        return None if raw is None else _Table(self.file, self.key(name), raw)

    def tables(self, name: str) -> list[_Table]:
        raw = self._get(name, [], (list,), "an array of tables")
        tables = []
        for index, item in enumerate(raw):
            where = f"{self.key(name)}[{index}]"
            if not isinstance(item, dict):
                raise ConfigError(f"{self.file}: {where}: must be a table, not {item!r}")
            tables.append(_Table(self.file, where, item))
        return tables

    def retired(self, name: str, why: str) -> None:
        """A key an older version read: refused with what replaced it, never silently kept."""
        if name in self.data:
            raise self.error(name, f"no longer used: {why}; remove it")

    def replaced(self, old_keys: Mapping[str, str], why: str) -> None:
        """Refuse a key that no longer means anything, saying what replaced it."""
        for name in sorted(set(self.data) & set(old_keys)):
            raise self.error(name, f"no longer used ({why}); replaced by {old_keys[name]}")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key (a typo? see the config reference in README)")


def _enum(table: _Table, name: str, kind: Callable[[str], _T], choices: tuple[str, ...]) -> _T:
    return kind(table.choice(name, choices))


def _board(table: _Table, spec: lockboards.ProtocolSpec) -> BoardConfig:
    board = BoardConfig(
        address=table.integer("address"),
        channels=table.integer("channels", min(16, spec.channels), lo=1),
        door_closed_when="bit_clear" if table.choice(
            "door_closed_when", ("bit_set", "bit_clear"), "bit_set"
        ) == "bit_clear" else "bit_set",
        item_sensor=table.flag("item_sensor", False),
    )
    table.done()
    return board


def _protocol(table: _Table) -> lockboards.ProtocolSpec:
    """The declaration of `bus.protocol`, from the protocols the codecs registered."""
    name = table.text("protocol")
    try:
        return lockboards.lookup(name)
    except ValueError:
        known = lockboards.names()
        raise table.error("protocol", f"must be one of {', '.join(known)}, not {name!r}"
                          if known else lockboards.known_text()) from None


def _bus(table: _Table) -> BusConfig:
    spec = _protocol(table)
    protocol = spec.name
    baud = table.integer("baud", spec.default_baud)
    if baud not in spec.bauds:
        raise table.error("baud", f"protocol {protocol} runs at {spec.bauds[0]} baud only"
                          if len(spec.bauds) == 1 else
                          f"must be one of {', '.join(map(str, spec.bauds))} for protocol"
                          f" {protocol}, not {baud}")
    boards = [_board(t, spec) for t in table.tables("boards")]
    if not boards:
        raise table.error("boards", "declare at least one [[bus.boards]]")
    seen: set[int] = set()
    for index, board in enumerate(boards):
        where = f"{table.file}: bus.boards[{index}]"
        if board.address in seen:
            raise ConfigError(f"{where}.address: board {board.address} declared twice")
        seen.add(board.address)
        if not spec.reaches(board.address):
            raise ConfigError(
                f"{where}.address: protocol {protocol} addresses boards {spec.addresses},"
                f" not {board.address}"
            )
        if board.item_sensor and not spec.item_bits:
            with_bits = [n for n in lockboards.names() if lockboards.lookup(n).item_bits]
            raise ConfigError(
                f"{where}.item_sensor: protocol {protocol} boards report no item presence"
                f" (only {', '.join(with_bits)}'s item bits do); remove item_sensor"
                if with_bits else
                f"{where}.item_sensor: protocol {protocol} boards report no item presence;"
                " remove item_sensor"
            )
        if board.channels > spec.channels:
            raise ConfigError(
                f"{where}.channels: protocol {protocol} drives at most {spec.channels} channels"
                f" on one board, not {board.channels}"
            )
    bus = BusConfig(
        port=table.text("port"),
        protocol=protocol,
        baud=baud,
        boards=tuple(boards),
        poll_interval_s=table.number("poll_interval_s", 0.25, lo=0.01, hi=60),
        timeout_s=table.number("timeout_s", 0.2, lo=0.01, hi=5),
        retries=table.integer("retries", 2, lo=0, hi=10),
        offline_after=table.integer("offline_after", 3, lo=1, hi=100),
        pulse_ms=table.integer("pulse_ms", 500, lo=100, hi=5000),
        retry_offline_s=table.number("retry_offline_s", 5.0, lo=0.1, hi=3600),
    )
    table.done()
    return bus


def _compartment(table: _Table) -> CompartmentConfig:
    wiring: BoardWiring | GpioWiring
    if "board" in table.data or "channel" in table.data:
        wiring = BoardWiring(table.integer("board", lo=0),
                             table.integer("channel", lo=1))
    elif "lock_pin" in table.data or "door_pin" in table.data:
        wiring = GpioWiring(table.integer("lock_pin", lo=0, hi=27),
                            table.integer("door_pin", lo=0, hi=27),
                            table.integer("item_pin", lo=0, hi=27)
                            if "item_pin" in table.data else None)
    else:
        raise ConfigError(
            f"{table.file}: {table.where}: give either board + channel or lock_pin + door_pin"
        )
    if "item_pin" in table.data and isinstance(wiring, BoardWiring):
        raise table.error("item_pin", "a compartment on a board gets its item sensor from the"
                          " board: set item_sensor = true on its [[bus.boards]] instead")
    if "board" in table.data and ("lock_pin" in table.data or "door_pin" in table.data):
        raise table.error("lock_pin", "a compartment is wired to a board or to GPIO, not both")
    compartment_id = table.text("id")
    if not COMPARTMENT_ID.fullmatch(compartment_id):
        raise table.error("id", "use at most 32 letters, digits, '-', '_' and '.', starting with a"
                          " letter or a digit")
    compartment = CompartmentConfig(
        id=compartment_id,
        zone=_enum(table, "zone", Zone, tuple(z.value for z in Zone)),
        size=_enum(table, "size", Size, tuple(s.value for s in Size)),
        wiring=wiring,
        column=table.integer("column", 1, lo=1, hi=99),
        level=table.integer("level", 1, lo=1, hi=20),
        item_sensor=isinstance(wiring, GpioWiring) and wiring.item_pin is not None,
    )
    table.done()
    return compartment


def _check_wiring(file: Path, compartments: list[CompartmentConfig], bus: BusConfig | None,
                  gpio: GpioConfig | None) -> None:
    ids: dict[str, int] = {}
    channels: dict[tuple[int, int], str] = {}
    pins: dict[int, str] = {}
    kinds = {type(c.wiring) for c in compartments}
    if len(kinds) > 1:
        raise ConfigError(f"{file}: layout.compartments: mixes board and GPIO wiring; pick one")
    for index, c in enumerate(compartments):
        where = f"{file}: layout.compartments[{index}]"
        if c.id in ids:
            raise ConfigError(f"{where}.id: {c.id!r} already used by compartments[{ids[c.id]}]")
        ids[c.id] = index
        if isinstance(c.wiring, BoardWiring):
            if bus is None:
                raise ConfigError(f"{where}: wired to a board but there is no [bus] table")
            try:
                board = bus.board(c.wiring.board)
            except KeyError:
                raise ConfigError(
                    f"{where}.board: board {c.wiring.board} is not declared in [[bus.boards]]"
                ) from None
            if c.wiring.channel > board.channels:
                raise ConfigError(
                    f"{where}.channel: board {board.address} has {board.channels} channels,"
                    f" not {c.wiring.channel}"
                )
            key = (c.wiring.board, c.wiring.channel)
            if key in channels:
                raise ConfigError(
                    f"{where}.channel: board {key[0]} channel {key[1]} already drives"
                    f" compartment {channels[key]}"
                )
            channels[key] = c.id
        else:
            if gpio is None:
                raise ConfigError(f"{where}: wired to GPIO pins but there is no [gpio] table")
            for pin in (c.wiring.lock_pin, c.wiring.door_pin, c.wiring.item_pin):
                if pin is None:
                    continue
                if pin in pins:
                    raise ConfigError(
                        f"{where}: GPIO pin {pin} already used by compartment {pins[pin]}"
                    )
                pins[pin] = c.id


def _calibrated(sub: _Table) -> str:
    """The probe's last calibration date, as the certificates print it."""
    text = sub.text("probe_calibrated")
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise sub.error("probe_calibrated", "the probe's last calibration, YYYY-MM-DD") from None
    if len(text) != 10:
        raise sub.error("probe_calibrated", "the probe's last calibration, YYYY-MM-DD")
    return text


def _zones(table: _Table | None) -> dict[Zone, ZoneLimits]:
    zones = default_limits()
    if table is None:
        return zones
    for zone in Zone:
        sub = table.table(zone.value)
        if sub is None:
            continue
        base = zones[zone]
        probe = sub.text("probe", "") if "probe" in sub.data else None
        modbus_t = sub.table("modbus")
        modbus = None
        if modbus_t is not None:
            modbus = ModbusZone(
                port=modbus_t.text("port"),
                baud=modbus_t.integer("baud", 9600, lo=1200, hi=115200),
                slave=modbus_t.integer("slave", 1, lo=1, hi=247),
                temperature=modbus_t.integer("temperature", 256, lo=0, hi=65535),
                setpoint=modbus_t.integer("setpoint", 768, lo=0, hi=65535),
                alarms=modbus_t.integer("alarms", 1280, lo=0, hi=65535),
                scale=modbus_t.number("scale", 0.1, lo=0.001, hi=100),
                input_registers=modbus_t.flag("input_registers", False),
            )
            modbus_t.done()
        limits = ZoneLimits(
            min_c=sub.optional_float("min_c") if "min_c" in sub.data else base.min_c,
            max_c=sub.number("max_c", base.max_c, lo=-40, hi=40),
            tolerated_max_c=(
                sub.optional_float("tolerated_max_c")
                if "tolerated_max_c" in sub.data
                else base.tolerated_max_c
            ),
            grace_s=sub.number("grace_s", base.grace_s, lo=0, hi=86400),
            setpoint_c=(sub.number("setpoint_c", lo=-40, hi=40) if "setpoint_c" in sub.data
                        else base.setpoint_c),
            hysteresis_c=sub.number("hysteresis_c", base.hysteresis_c, lo=0.1, hi=10),
            min_off_s=sub.number("min_off_s", base.min_off_s, lo=0, hi=3600),
            defrost_every_h=(sub.number("defrost_every_h", lo=1, hi=48)
                             if "defrost_every_h" in sub.data else base.defrost_every_h),
            defrost_min=sub.number("defrost_min", base.defrost_min, lo=1, hi=120),
            probe=(table.file.parent / probe) if probe else None,
            compressor_pin=(sub.integer("compressor_pin", lo=0, hi=27)
                            if "compressor_pin" in sub.data else None),
            modbus=modbus,
            probe_calibrated=_calibrated(sub) if "probe_calibrated" in sub.data else None,
        )
        if modbus is not None and (limits.probe is not None or limits.compressor_pin is not None):
            raise sub.error("modbus", "a zone is regulated by a Modbus controller or by a probe"
                            " and a compressor relay, not both")
        if (limits.probe is None) != (limits.compressor_pin is None):
            raise sub.error("probe" if limits.probe is None else "compressor_pin",
                            "a regulated zone needs both probe and compressor_pin")
        if limits.setpoint_c is not None and not (
                (limits.min_c is None or limits.min_c < limits.setpoint_c)
                and limits.setpoint_c < limits.max_c):
            raise sub.error("setpoint_c", f"must lie inside the zone's limits"
                            f" ({limits.min_c} .. {limits.max_c})")
        if limits.min_c is not None and limits.min_c >= limits.max_c:
            raise sub.error("min_c", f"must be below max_c ({limits.max_c})")
        sub.done()
        zones[zone] = limits
    table.done()
    return zones


def _staff(table: _Table | None) -> StaffPolicy:
    if table is None:
        return StaffPolicy()
    members: list[StaffMember] = []
    seen: set[str] = set()
    for member in table.tables("members"):
        staff_id = member.text("id")
        if not STAFF_ID.fullmatch(staff_id):
            raise member.error("id", "use at most 32 letters, digits, '-', '_' and '.'")
        if staff_id in seen:
            raise member.error("id", f"{staff_id!r} declared twice")
        seen.add(staff_id)
        role: Literal["courier", "technician"] = (
            "technician" if member.choice("role", ("courier", "technician")) == "technician"
            else "courier")
        members.append(StaffMember(staff_id, member.text("name", staff_id), role))
        member.done()
    policy = StaffPolicy(
        idle_timeout_s=table.number("idle_timeout_s", 120.0, lo=10, hi=3600),
        members=tuple(members),
    )
    table.done()
    return policy


def _http(table: _Table, base: Path) -> HttpConfig:
    d = HttpConfig()
    host = table.text("host", d.host)
    cert, key = (table.text(name) if name in table.data else None
                 for name in ("tls_cert", "tls_key"))
    if (cert is None) != (key is None):
        raise table.error("tls_key" if key is None else "tls_cert",
                          "TLS needs both tls_cert and tls_key")
    allow_remote = table.flag("allow_remote", False)
    if not is_loopback(host):
        # a listener on the shop's network is open to every phone on its Wi-Fi: never in clear,
        # never by a typo
        if cert is None:
            raise table.error("tls_cert", f"host {host!r} is not loopback: serve it over TLS"
                              " (give tls_cert and tls_key), or listen on 127.0.0.1")
        if not allow_remote:
            raise table.error("allow_remote", f"host {host!r} is not loopback: set"
                              " allow_remote = true to answer other machines, or listen on"
                              " 127.0.0.1")
    own = [f"[{host}]" if ":" in host and not host.startswith("[") else host]
    allowed = table.texts("allowed_hosts", [*LOOPBACK_NAMES, *own])
    http = HttpConfig(
        host=host,
        port=table.integer("port", d.port, lo=0, hi=65535),
        max_body_bytes=table.integer("max_body_bytes", d.max_body_bytes, lo=256, hi=1 << 20),
        screen_idle_s=table.number("screen_idle_s", d.screen_idle_s, lo=1, hi=3600),
        stale_request_s=table.number("stale_request_s", d.stale_request_s, lo=1, hi=60),
        tls_cert=(base / cert).resolve() if cert else None,
        tls_key=(base / key).resolve() if key else None,
        allow_remote=allow_remote,
        allowed_hosts=tuple(dict.fromkeys(h.strip().lower() for h in allowed)),
        header_timeout_s=table.number("header_timeout_s", d.header_timeout_s, lo=0.1, hi=300),
        body_timeout_s=table.number("body_timeout_s", d.body_timeout_s, lo=0.1, hi=300),
    )
    table.done()
    return http


def _central(table: _Table | None, data_dir: Path, base: Path) -> CentralConfig | None:
    if table is None:
        return None
    url = table.text("url").rstrip("/")
    if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
        raise table.error("url", f"must be https://host/... (or http:// on a test bench), not"
                                 f" {url!r}")
    allow_insecure = table.flag("allow_insecure", False)
    if url.startswith("http://") and not allow_insecure:
        # in clear, anyone on the shop's network reads the locker's token and feeds it orders
        raise table.error("url", f"{url!r} is not https: use https://, or on a test bench set"
                                 " central.allow_insecure = true")
    ca = table.text("ca_file") if "ca_file" in table.data else None
    d = CentralConfig(url, Path(), Path())
    central = CentralConfig(
        url=url,
        allow_insecure=allow_insecure,
        token_file=data_dir / table.text("token_file", "central.token"),
        command_key_file=data_dir / table.text("command_key_file", "central-commands.pub"),
        ca_file=(base / ca).resolve() if ca else None,
        poll_wait_s=table.number("poll_wait_s", d.poll_wait_s, lo=0, hi=300),
        batch_size=table.integer("batch_size", d.batch_size, lo=1, hi=500),
        heartbeat_s=table.number("heartbeat_s", d.heartbeat_s, lo=1, hi=3600),
        request_timeout_s=table.number("request_timeout_s", d.request_timeout_s, lo=1, hi=120),
        backoff_min_s=table.number("backoff_min_s", d.backoff_min_s, lo=0.05, hi=60),
        backoff_max_s=table.number("backoff_max_s", d.backoff_max_s, lo=0.1, hi=3600),
        outage_alarm_s=table.number("outage_alarm_s", d.outage_alarm_s, lo=1, hi=86400),
        offline_hold_h=table.number("offline_hold_h", d.offline_hold_h, lo=0, hi=24 * 30),
        outbox_max_events=table.integer("outbox_max_events", d.outbox_max_events, lo=100,
                                        hi=10_000_000),
        remote_opens_burst=table.integer("remote_opens_burst", d.remote_opens_burst, lo=1,
                                         hi=100),
        remote_opens_per_hour=table.number("remote_opens_per_hour", d.remote_opens_per_hour,
                                           lo=0.01, hi=3600),
    )
    if central.backoff_max_s < central.backoff_min_s:
        raise table.error("backoff_max_s", "must not be below backoff_min_s")
    table.done()
    return central


def _update(table: _Table | None, base: Path, central: CentralConfig | None
            ) -> UpdateConfig | None:
    if table is None:
        return None
    if central is None:
        raise table.error("slots_dir", "updates are announced by central: add a [central] table")
    url = table.text("repository_url", central.url + "/updates").rstrip("/")
    if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
        raise table.error("repository_url", f"must be https://host/... (or http:// on a test"
                                            f" bench), not {url!r}")
    if url.startswith("http://") and not central.allow_insecure:
        raise table.error("repository_url", f"{url!r} is not https: use https://, or on a test"
                                            " bench set central.allow_insecure = true")
    d = UpdateConfig(Path(), Path(), "")
    quiet_hour = table.integer("quiet_hour", -1, lo=-1, hi=23)
    update = UpdateConfig(
        slots_dir=(base / table.text("slots_dir", "/opt/locker/slots")).resolve(),
        trusted_root=(base / table.text("trusted_root", "update-root.json")).resolve(),
        repository_url=url,
        quiet_hour=None if quiet_hour < 0 else quiet_hour,
        health_deadline_s=table.number("health_deadline_s", d.health_deadline_s, lo=1,
                                       hi=86400),
        max_boots=table.integer("max_boots", d.max_boots, lo=1, hi=20),
        customer_quiet_s=table.number("customer_quiet_s", d.customer_quiet_s, lo=0, hi=3600),
        min_free_mb=table.number("min_free_mb", d.min_free_mb, lo=0, hi=1e12),
        retry_s=table.number("retry_s", d.retry_s, lo=0.1, hi=86400),
    )
    table.done()
    return update


def load_config(path: str | Path, *, port: str | None = None) -> LockerConfig:
    """Read and check a config file. `port` overrides bus.port (the simulator's pty)."""
    file = Path(path)
    try:
        if not file.is_file():  # a FIFO or /dev/zero would never end
            raise ConfigError(f"{file}: no such config file" if not file.exists()
                              else f"{file}: not a regular file")
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{file}: {file.stat().st_size} bytes; a config is at most"
                              f" {MAX_CONFIG_BYTES} bytes")
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except RecursionError:  # thousands of nested arrays
        raise ConfigError(f"{file}: nested too deeply to be a locker's config") from None
    root = _Table(file, "", raw)
    base = file.resolve().parent

    locker = root.table("locker", required=True)
    assert locker is not None
    locker_id = locker.text("id")
    if not LOCKER_ID.fullmatch(locker_id):
        raise locker.error("id", "use at most 64 letters, digits, '-', '_' and '.'")
    data_dir = (base / locker.text("data_dir", "var")).resolve()
    locker.retired("secret_file", "pickup codes are random now and no code generator is kept"
                   " (docs/adr/0008); the code keys are data_dir/code-digest.key and"
                   " code-box.key, made by `locker init`")
    name = locker.text("name", locker_id)
    support_phone = locker.text("support_phone", "the number on the locker")
    locale = locker.text("locale", "en-GB")
    if not LOCALE.fullmatch(locale):
        raise locker.error("locale", f"a language tag such as fr-FR or en-GB, not {locale!r}")
    time_zone = locker.text("time_zone", "UTC")
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise locker.error("time_zone", f"an IANA time zone such as Europe/Paris, not"
                           f" {time_zone!r}") from None
    locker.done()

    bus_table = root.table("bus")
    bus = _bus(bus_table) if bus_table is not None else None
    if bus is not None and port is not None:
        bus = BusConfig(**{**bus.__dict__, "port": port})
    gpio_table = root.table("gpio")
    gpio = None
    if gpio_table is not None:
        gpio = GpioConfig(
            pulse_ms=gpio_table.integer("pulse_ms", 500, lo=100, hi=5000),
            debounce_ms=gpio_table.integer("debounce_ms", 50, lo=0, hi=1000),
            relay_active_high=gpio_table.flag("relay_active_high", True),
        )
        gpio_table.done()

    layout = root.table("layout", required=True)
    assert layout is not None
    compartments = [_compartment(t) for t in layout.tables("compartments")]
    layout.done()
    if not compartments:
        raise layout.error("compartments", "declare at least one compartment")
    _check_wiring(file, compartments, bus, gpio)
    if bus is not None:
        sensing = {b.address for b in bus.boards if b.item_sensor}
        compartments = [
            dataclasses.replace(c, item_sensor=True)
            if isinstance(c.wiring, BoardWiring) and c.wiring.board in sensing else c
            for c in compartments]

    codes_t = root.table("codes")
    codes = CodePolicy()
    if codes_t is not None:
        codes_t.retired("digits", "every code has 10 random digits and a check digit"
                                  " (docs/adr/0008)")
        codes = CodePolicy(
            pickup_window_hours=codes_t.number("pickup_window_hours", 72.0, lo=0.1, hi=24 * 30),
            max_hold_hours=codes_t.number("max_hold_hours", 24.0, lo=0, hi=24 * 30),
        )
        codes_t.done()

    throttle_t = root.table("throttle")
    throttle = ThrottlePolicy()
    if throttle_t is not None:
        throttle_t.replaced(OLD_THROTTLE_KEYS, "wrong codes now slow the locker down instead of"
                            " locking it out (README, Guessing a code)")
        d = ThrottlePolicy()
        throttle = ThrottlePolicy(
            free_wrong_codes=throttle_t.integer("free_wrong_codes", d.free_wrong_codes,
                                                lo=0, hi=1000),
            first_delay_s=throttle_t.number("first_delay_s", d.first_delay_s, lo=0.1, hi=3600),
            max_delay_s=throttle_t.number("max_delay_s", d.max_delay_s, lo=1, hi=3600),
            forget_per_hour=throttle_t.number("forget_per_hour", d.forget_per_hour,
                                              lo=0.01, hi=36000),
            alarm_failures=throttle_t.integer("alarm_failures", d.alarm_failures, lo=1, hi=10000),
            alarm_window_s=throttle_t.number("alarm_window_s", d.alarm_window_s, lo=1, hi=86400),
        )
        if throttle.first_delay_s > throttle.max_delay_s:
            raise throttle_t.error("first_delay_s", f"must not be over max_delay_s"
                                   f" ({throttle.max_delay_s:g})")
        throttle_t.done()

    doors_t = root.table("doors")
    doors = DoorPolicy()
    if doors_t is not None:
        doors = DoorPolicy(
            open_timeout_s=doors_t.number("open_timeout_s", 15.0, lo=1, hi=600),
            left_open_alarm_s=doors_t.number("left_open_alarm_s", 180.0, lo=5, hi=86400),
        )
        doors_t.done()

    coldchain_t = root.table("coldchain")
    coldchain = ColdChainPolicy()
    if coldchain_t is not None:
        on_excursion: Literal["warn", "withhold"] = (
            "withhold" if coldchain_t.choice("on_excursion", ("warn", "withhold"), "warn")
            == "withhold" else "warn")
        coldchain = ColdChainPolicy(on_excursion=on_excursion)
        coldchain_t.done()

    returns_t = root.table("returns")
    returns = ReturnsPolicy()
    if returns_t is not None:
        r = ReturnsPolicy()
        returns = ReturnsPolicy(
            enabled=returns_t.flag("enabled", r.enabled),
            offer_s=returns_t.number("offer_s", r.offer_s, lo=10, hi=3600),
            code_days=returns_t.number("code_days", r.code_days, lo=0.01, hi=365),
            take_back_within_h=returns_t.number("take_back_within_h", r.take_back_within_h,
                                                lo=0.1, hi=24 * 30),
        )
        returns_t.done()

    http_t = root.table("http")
    http = HttpConfig() if http_t is None else _http(http_t, base)

    staff = _staff(root.table("staff"))
    zones = _zones(root.table("zones"))
    central = _central(root.table("central"), data_dir, base)
    update = _update(root.table("update"), base, central)
    store_t = root.table("store")
    store = StorePolicy()
    if store_t is not None:
        store = StorePolicy(
            keep_finished_days=store_t.number("keep_finished_days", 30.0, lo=0.01, hi=3650),
            min_free_mb=store_t.number("min_free_mb", 50.0, lo=0, hi=1_000_000),
            backup_every_h=store_t.number("backup_every_h", 24.0, lo=0, hi=24 * 365),
        )
        store_t.done()
    clock_t = root.table("clock")
    clock = ClockPolicy()
    if clock_t is not None:
        clock = ClockPolicy(
            unsynchronised_alarm_s=clock_t.number("unsynchronised_alarm_s", 600.0, lo=0,
                                                  hi=7 * 86400),
            trust_after_step_s=clock_t.number("trust_after_step_s", 3600.0, lo=0,
                                              hi=7 * 86400),
        )
        clock_t.done()
    root.done()
    return LockerConfig(
        path=file, locker_id=locker_id, name=name, support_phone=support_phone,
        data_dir=data_dir, compartments=tuple(compartments),
        bus=bus, gpio=gpio, zones=zones, codes=codes, throttle=throttle, doors=doors,
        coldchain=coldchain, returns=returns, http=http, staff=staff, central=central,
        store=store, clock=clock, update=update, locale=locale, time_zone=time_zone,
    )
