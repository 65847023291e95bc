"""Fuzzing every input boundary of the locker: nothing anyone sends may crash the daemon.

Issue "Reliability", point 4. Each fuzz is a hypothesis test with a bounded number of examples
(`deadline=None`: some examples wait for line time); the rig of each (a Locker, an HTTP server, a
pseudo-terminal) is built once per test and driven example by example on its own event loop.

1. The local HTTP API (`api.app.create_app`), every route: pickup, staff login, logout and
   session, the courier's orders/load/open/reclaim, the technician's compartments and
   open/service, the ops endpoints with and without `X-Ops-Token`, the kiosk's info and pages,
   the staff's pages, health and /metrics. Bodies are arbitrary
   JSON values (recursive), objects with the route's own fields holding well- and ill-typed
   values, raw binary, huge strings around the body limit, unicode, 1e308/NaN/Infinity and
   numbers as strings, arrays nested up to the body limit; content types right and wrong; path
   parameters with slashes, dots, percent-encoding and unicode; credentials absent, garbage,
   misspelt or valid. After every request: no 5xx; every 4xx is a JSON problem with "error" and
   "message"; /api/health still answers 200; and a door was unlocked (the stand-in driver's
   `unlocked` list grew) only by a request that carried valid credentials for that route (or a
   live pickup code) and answered 200 naming exactly those doors. A second fuzz writes requests
   as raw bytes, with header values no client library would send (obs-text, bytes that are not
   UTF-8, empty values, duplicates) in Authorization, Content-Type, X-Ops-Token, Expect,
   Content-Encoding, Range and others: no 5xx, JSON problems from the app, no door opened.
2. Central's payloads. (a) Feed answers (`locker.domain.feed.parse_feed` then `Inbox.apply`) mixing
   well-formed orders (random bags, sizes, zones, versions, sealed codes, states, windows of 0,
   negative, huge, NaN hours), malformed items, commands with random bodies and signatures, and
   commands correctly signed with the test key carrying random actions and arguments; item and
   answer cursors in and out of order; whole answers of any shape; between them, couriers load
   orders and the clock moves, so orders change while ready, loaded or being collected.
   parse_feed raises only BadPayload, Inbox.apply never
   raises, and afterwards the store holds its invariants: a reserved or loaded compartment
   belongs to an existing order, no two orders share a sequence or a code digest, no finished
   order keeps one, the stored cursor never goes back. (b) The answer readers of api/central.py,
   `_acked` and `_heartbeat_answer`, given any JSON value, raise nothing but `Garbled`.
3. The serial line, through the real pseudo-terminal and the real bus: the BoardLockDriver runs
   against the simulated boards while random byte strings are injected as noise (at once, and
   inside the reply window of the next requests) and replies are corrupted, with doors forced
   open or closed in between, for each of the three protocols. Afterwards the driver reads every
   door as the simulator has it, the domain (its listener) was told exactly that, and no unlock
   ever went on the wire. (The pure codec fuzz is tests/hardware/test_codecs.py.)

The bugs this fuzzing found are each reproduced by a test of its own below ("Bugs the fuzzing
found"), and fixed; the one left is aiohttp's (a strict xfail), and only that input class is left
out of the strategies. Run with `pytest -s` to see how many inputs each boundary was given
(docs/reliability.md quotes these counts).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import secrets
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyotp
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from yarl import URL

from api.app import create_app
from api.central import CentralLink, Garbled, _acked, _heartbeat_answer
from hardware.boards import BoardLockDriver
from hardware.codecs import get_codec
from hardware.codecs.base import extract_frames
from locker.domain.clock import SimClock
from locker.domain.codes import (
    CODE_DIGITS,
    box_public_key,
    create_keys,
    create_private_file,
    load_box_key,
    seal,
)
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.errors import LockerError
from locker.domain.feed import BadPayload, parse_feed
from locker.domain.model import DoorSense
from locker.domain.orders import add_order_to_load, add_ready_order, parse_bag
from locker.domain.staff import Session, create_secret, load_secret
from locker.domain.sync import cursor as stored_cursor
from simulator.boards import SimulatedBoards
from tests.support.central import CENTRAL, KEY, central_config
from tests.support.codes import code_no
from tests.support.configs import SMALL_CONFIG, config_text, write_config
from tests.support.doubles import FakeDriver

T = TypeVar("T")

# inputs tried per boundary, printed at the end of the module (pytest -s)
COUNTS: Counter[str] = Counter()

OPS_TOKEN = "fuzz-ops-token-0123456789abcdef"
OTHER_KEY = Ed25519PrivateKey.generate()
LOCKER_ID = "test-locker"
COMPARTMENTS = ("A1", "A2", "F1", "F2", "Z1", "Z2")
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.data_too_large,
                                                  HealthCheck.filter_too_much])
# wide throttles: the fuzz must reach the code lookups, not spend its examples on 429s
ROOMY_THROTTLE = SMALL_CONFIG.replace("free_wrong_codes = 2", "free_wrong_codes = 1000")


def teardown_module() -> None:
    print("\n\nfuzz inputs tried per boundary (tests/reliability/test_fuzz.py):")
    for boundary, n in sorted(COUNTS.items()):
        print(f"  {boundary:<40} {n:>6}")
    print(f"  {'total':<40} {sum(COUNTS.values()):>6}")


class LoopRunner:
    """An event loop of the test's own: hypothesis calls the example body synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(timeout_s):
                return await coro
        return self.loop.run_until_complete(bounded())

    def close(self) -> None:
        loop = self.loop
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# -- JSON values -----------------------------------------------------------------------------

# integers beyond the float range (~1.8e308) too: they once crashed central's readers
INTS = st.integers(min_value=-(10**400), max_value=10**400)
SPECIAL = st.sampled_from([
    0, -1, 1, -0.0, 1e308, -1e308, 5e-324, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, 10**300,
    float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", "-Infinity", "1e308", "1e999",
    "0x10", "", " ", "\x00", "\t\n", "null", "true", "[]", "{}", "🔓", "é", "\u202e\u200b",
    "A1", "../../etc/passwd", "%2F", "a/b", "'; DROP TABLE orders; --", "\\ud800", "𝟙𝟚𝟛",
])
# with lone surrogates ("\ud800", valid JSON): they once reached SQLite and made a 500
TEXT = st.text(max_size=40) | st.sampled_from(["\ud800", "abc\udfff", "\udc80x"])
SCALARS = st.none() | st.booleans() | INTS | st.floats() | TEXT | SPECIAL
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=25,
)


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)  # NaN and Infinity as Python (and JS) write them


# == 1. the local HTTP API ===================================================================

@dataclass(frozen=True)
class Route:
    name: str
    method: str
    template: str
    fields: dict[str, str]  # the body's fields and what they hold
    needs: frozenset[str]  # credentials that authorise it; empty: anyone
    unlocks: bool = False


STAFF = frozenset({"courier", "technician"})
ROUTES = (
    Route("pickup", "POST", "/api/pickup", {"code": "code", "screen": "screen"}, frozenset(),
          unlocks=True),
    Route("staff_login", "POST", "/api/staff/login",
          {"staff": "staff", "code": "totp", "screen": "screen"}, frozenset()),
    Route("staff_logout", "POST", "/api/staff/logout", {}, STAFF),
    Route("staff_session", "GET", "/api/staff/session", {}, STAFF),
    Route("staff_touch", "POST", "/api/staff/session", {}, STAFF),
    Route("courier_orders", "GET", "/api/courier/orders", {}, STAFF),
    Route("courier_order", "GET", "/api/courier/orders/{order}", {}, STAFF),
    Route("courier_load", "POST", "/api/courier/orders/{order}/load", {"together": "bool"},
          STAFF, unlocks=True),
    Route("courier_open", "POST", "/api/courier/orders/{order}/open",
          {"compartment": "compartment"}, STAFF, unlocks=True),
    Route("courier_reclaim", "POST", "/api/courier/orders/{order}/reclaim", {}, STAFF,
          unlocks=True),
    Route("technician_compartments", "GET", "/api/technician/compartments", {},
          frozenset({"technician"})),
    Route("technician_open", "POST", "/api/technician/compartments/{compartment}/open",
          {"reason": "reason"}, frozenset({"technician"}), unlocks=True),
    Route("technician_service", "POST", "/api/technician/compartments/{compartment}/service",
          {"in_service": "bool", "reason": "reason"}, frozenset({"technician"})),
    Route("ops_state", "GET", "/api/ops/state", {}, frozenset({"ops"})),
    Route("ops_stream", "GET", "/api/ops/stream", {}, frozenset({"ops"})),
    Route("ops_open", "POST", "/api/ops/compartments/{compartment}/open", {"reason": "reason"},
          frozenset({"ops"}), unlocks=True),
    Route("ops_service", "POST", "/api/ops/compartments/{compartment}/service",
          {"in_service": "bool", "reason": "reason"}, frozenset({"ops"})),
    Route("ops_throttle", "GET", "/api/ops/throttle", {}, frozenset({"ops"})),
    Route("ops_throttle_clear", "POST", "/api/ops/throttle/clear", {"reason": "reason"},
          frozenset({"ops"})),
    Route("kiosk_info", "GET", "/api/kiosk", {}, frozenset()),
    Route("kiosk_doors", "GET", "/api/kiosk/doors", {}, frozenset()),
    Route("speech", "GET", "/api/speech", {}, frozenset()),
    Route("health", "GET", "/api/health", {}, frozenset()),
    Route("metrics", "GET", "/metrics", {}, frozenset()),
    Route("kiosk", "GET", "/", {}, frozenset()),
    Route("courier_page", "GET", "/courier", {}, frozenset()),
    Route("technician_page", "GET", "/technician", {}, frozenset()),
    Route("ops_page", "GET", "/ops", {}, frozenset()),
    Route("static", "GET", "/static/screens.css", {}, frozenset()),
)
ORDER_IDS = ("r1", "r2", "l1", "l2", "nope", "R1", "r1 ", "r1\x00")


@dataclass(frozen=True)
class LiveCode:
    """A placeholder for a pickup code only known at run time (a live order's), in some form."""

    pick: int
    form: str  # plain, spaced, dashed, padded, wrong_digit, short


def _render_code(live: list[str], ref: LiveCode) -> str:
    code = live[ref.pick % len(live)] if live else "00000000000"
    if ref.form == "spaced":
        return f"{code[:4]} {code[4:]}"
    if ref.form == "dashed":
        return f"{code[:4]}-{code[4:]}"
    if ref.form == "padded":
        return f"\t {code}\r\n"
    if ref.form == "wrong_digit":
        return code[:-1] + str((int(code[-1]) + 1) % 10)
    if ref.form == "short":
        return code[:-1]
    return code


@dataclass(frozen=True)
class Existing:
    """A placeholder for an id only known at run time: an order in some state, or a compartment
    waiting for the courier loading it."""

    what: str  # to_load, allocated, ready, any, waiting_compartment
    pick: int


EXISTING_ORDER = st.builds(Existing, st.sampled_from(["to_load", "allocated", "ready", "any"]),
                           st.integers(0, 3))
EXISTING_QUERIES = {
    "to_load": "SELECT id FROM orders WHERE state IN ('received', 'allocated') ORDER BY id",
    "allocated": "SELECT id FROM orders WHERE state = 'allocated' ORDER BY id",
    "ready": "SELECT id FROM orders WHERE state = 'ready' ORDER BY id",
    "any": "SELECT id FROM orders ORDER BY id",
    "waiting_compartment": "SELECT oc.compartment_id AS id FROM order_compartments oc JOIN orders"
                           " o ON o.id = oc.order_id WHERE o.state = 'allocated' AND"
                           " oc.closed_at IS NULL ORDER BY oc.compartment_id",
}

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "code": st.builds(LiveCode, st.integers(0, 7), st.sampled_from(
        ["plain", "plain", "spaced", "dashed", "padded", "wrong_digit", "short"]))
    | st.text("0123456789", min_size=7, max_size=9) | st.text("0123456789 -\t", max_size=12),
    "totp": st.text("0123456789", min_size=5, max_size=7) | st.just(" 123456 "),
    "screen": st.sampled_from(["front", "back", "a", "x" * 32, "x" * 33, "Front", "../etc",
                               "front\n", "-a", "_", "écran"]),
    "staff": st.sampled_from(["courier-1", "tech-1", "ops", "", "courier-1 ", "COURIER-1"]),
    "bool": st.booleans(),
    "compartment": st.sampled_from(COMPARTMENTS) | st.sampled_from(["a1", "A9", "", " A1"])
    | st.builds(Existing, st.just("waiting_compartment"), st.integers(0, 3)),
    "reason": st.sampled_from(["fix the hinge", "fix the hinge", "ab", "abc", "   abc   ",
                               "x" * 200, "x" * 201,
                               "🔧🔧🔧", "\x00\x00\x00"]),
}


@st.composite
def bodies(draw: st.DrawFn, route: Route) -> tuple[str, Any]:
    """(kind, body): `body` is a Python value to send as JSON ("json"), or raw bytes."""
    kind = draw(st.sampled_from(["fields"] * 6 + ["json", "binary", "huge", "nested",
                                                   "numbers", "text", "empty", "none"]))
    if kind == "fields":
        optional = {name: FIELD_VALUES[what] | JSON for name, what in route.fields.items()}
        obj = draw(st.fixed_dictionaries({}, optional=optional))
        if draw(st.integers(0, 5)) == 0:
            obj[draw(TEXT)] = draw(JSON)
        return "json", obj
    if kind == "json":
        return "json", draw(JSON)
    if kind == "binary":
        return "raw", draw(st.binary(max_size=600))
    if kind == "huge":
        size = draw(st.sampled_from([4000, 4085, 4086, 4096, 4097, 5000, 70_000, 1_100_000]))
        char = draw(st.sampled_from(["1", "x", "é", "🔓", "\\u0000"]))
        key = draw(st.sampled_from([*route.fields, "code", "x"]))
        return "raw", f'{{"{key}": "'.encode() + (char * size).encode()[:size] + b'"}'
    if kind == "nested":
        depth = draw(st.integers(1, 2100))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = draw(st.sampled_from(["", "1", "null"])) if opener == "[" else "1"
        return "raw", (opener * depth + inner + closer * depth).encode()
    if kind == "numbers":
        key = draw(st.sampled_from([*route.fields, "code"]))
        number = draw(st.sampled_from(["1e308", "-1e308", "1e999", "NaN", "Infinity",
                                       "-Infinity", "-0", "0.0000001", "1" * 400, "1e-400",
                                       "12345678906", '"NaN"', '"1e308"']))
        return "raw", f'{{"{key}": {number}}}'.encode()
    if kind == "text":
        encoding = draw(st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-8-sig"]))
        return "raw", dumps(draw(JSON)).encode(encoding)
    if kind == "empty":
        return "raw", b""
    return "none", None


CONTENT_TYPES = st.sampled_from([
    "application/json"] * 6 + ["application/json; charset=utf-8", "application/JSON",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/octet-stream", "application/json-patch+json", "json", None])
PARAM = (EXISTING_ORDER | EXISTING_ORDER | st.sampled_from([*ORDER_IDS, *COMPARTMENTS])
         | st.sampled_from(["a/b", "../..", "..", ".", "%", "%2F", "A1/../Z1", "é", "🔓",
                            "\x00", " ", "a?b", "a#b", "x" * 300])
         | st.text(min_size=1, max_size=30))
RAW_PARAM = st.text("%0123456789ABCDEFabcdef.-_~", min_size=1, max_size=12)  # sent as it is
AUTH = st.sampled_from(["none", "garbage", "courier", "courier", "technician", "technician",
                        "bearer_typo",
                        "bare_token", "courier_spaced"])
OPS = st.sampled_from(["none", "garbage", "ops", "ops", "ops_typo", "ops_padded"])


@dataclass(frozen=True)
class HttpInput:
    route: Route
    params: dict[str, tuple[bool, Any]]  # name: (sent as it is, value or Existing)
    body_kind: str
    body: Any
    content_type: str | None
    auth: str
    ops: str
    garbage: str


# what a well-meaning client sends: the skeleton of a valid request, mutated (or not) once
GOOD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "code": st.builds(LiveCode, st.integers(0, 7), st.sampled_from(["plain", "spaced",
                                                                    "dashed", "padded"])),
    "totp": st.text("0123456789", min_size=6, max_size=6),
    "screen": st.sampled_from(["front", "back"]),
    "staff": st.sampled_from(["courier-1", "tech-1"]),
    "bool": st.booleans(),
    "compartment": st.builds(Existing, st.just("waiting_compartment"), st.integers(0, 3)),
    "reason": st.sampled_from(["fix the hinge", "customer stuck, ticket 4411"]),
}
GOOD_PARAMS = {"order": st.builds(Existing, st.sampled_from(["to_load", "allocated", "ready"]),
                                  st.integers(0, 3)),
               "compartment": st.sampled_from(COMPARTMENTS)}


@st.composite
def http_inputs(draw: st.DrawFn) -> HttpInput:
    # the routes that open doors come up three times as often as the others
    route = draw(st.sampled_from([*ROUTES, *[r for r in ROUTES if r.unlocks] * 2]))
    # header values: no CR/LF/NUL (the client refuses them before the wire); bytes that are not
    # UTF-8 go through the raw-header fuzz below
    garbage = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60))
    params: dict[str, tuple[bool, Any]] = {}
    names = [n for n in ("order", "compartment") if "{" + n + "}" in route.template]
    if draw(st.integers(0, 2)) == 0:  # nearly valid
        params = {name: (False, draw(GOOD_PARAMS[name])) for name in names}
        body: Any = {name: draw(GOOD_VALUES[what]) for name, what in route.fields.items()}
        auth = "technician" if "technician" in route.needs else draw(
            st.sampled_from(["courier", "courier_spaced", "technician"]))
        given = HttpInput(route, params, "json", body, "application/json", auth, "ops", garbage)
        mutation = draw(st.sampled_from(["none", "none", "drop", "junk", "auth", "ops", "type"]))
        if mutation == "drop" and body:
            body.pop(draw(st.sampled_from(sorted(body))))
        elif mutation == "junk" and body:
            body[draw(st.sampled_from(sorted(body)))] = draw(JSON)
        elif mutation == "auth":
            given = dataclasses.replace(given, auth=draw(AUTH))
        elif mutation == "ops":
            given = dataclasses.replace(given, ops=draw(OPS))
        elif mutation == "type":
            given = dataclasses.replace(given, content_type=draw(CONTENT_TYPES))
        return given
    for name in names:
        raw = draw(st.integers(0, 5)) == 0
        value = draw(RAW_PARAM if raw else PARAM)
        # CONTRACT GAP (test_router_errors_under_api_are_json_problems): a parameter holding
        # '{' or '}' matches no route (aiohttp's `[^{}/]+`), a text/plain 404
        text = "" if isinstance(value, Existing) else value
        assume(not {"{", "}"} & set(urllib.parse.unquote(text) if raw else text))
        params[name] = (raw, value)
    kind, body = draw(bodies(route))
    return HttpInput(route, params, kind, body, draw(CONTENT_TYPES), draw(AUTH), draw(OPS),
                     garbage)


class HttpRig:
    """The locker with the stand-in driver behind the real aiohttp app on a loopback port."""

    def __init__(self, folder: Path) -> None:
        self.runner = LoopRunner()
        config = load_config(write_config(folder, ROOMY_THROTTLE))
        create_keys(config)
        for member in config.staff.members:
            create_secret(config.staff_secret_file(member.id))
        create_private_file(config.ops_token_file, OPS_TOKEN)
        self.config = config
        self.driver = FakeDriver([c.id for c in config.compartments])
        self.clock = SimClock()
        self.locker = Locker(config, self.driver, self.clock)
        self.live_codes: dict[str, str] = {}  # code: order id, for orders ready to collect
        self.tokens: dict[str, str] = {}
        self.serial = 0
        self.statuses: Counter[int] = Counter()
        self.opened_by: Counter[str] = Counter()  # doors opened, by route
        self.runner.run(self._start())

    async def _start(self) -> None:
        self.http = TestClient(TestServer(create_app(self.locker)))
        await self.http.start_server()
        self.base = f"http://{self.http.server.host}:{self.http.server.port}"
        for member in self.config.staff.members:
            totp = pyotp.TOTP(load_secret(self.config.staff_secret_file(member.id)), digits=6,
                              interval=30)
            response = await self.http.post("/api/staff/login", json={
                "staff": member.id, "code": totp.at(self.clock.now())})
            assert response.status == 200, await response.text()
            self.tokens[member.role] = (await response.json())["token"]
        self.top_up()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.run(self.http.close())
        self.runner.close()

    def top_up(self) -> None:
        """Keep a live pickup code and an order to load around, room allowing."""
        now = self.clock.now()
        try:
            if len(self.live_codes) < 2:
                self.serial += 1
                added = add_ready_order(self.locker.store, self.config, self.locker.codes, now,
                                        f"r{self.serial}", [parse_bag("fresh:S")])
                self.live_codes[added.code] = added.order_id
            row = self.locker.store.read().one(
                "SELECT COUNT(*) AS n FROM orders WHERE state IN ('received', 'allocated')")
            if row is not None and row["n"] == 0:
                self.serial += 1
                add_order_to_load(self.locker.store, self.config, self.locker.codes, now,
                                  f"l{self.serial}", [parse_bag("ambient:M")])
        except LockerError:
            pass  # no room left: the fuzz goes on with what there is

    def keep_sessions(self) -> None:
        """A fuzzed logout may have ended a session: mint it again (sessions live in memory)."""
        members = {m.role: m for m in self.config.staff.members}
        for role, token in list(self.tokens.items()):
            if token not in self.locker.staff.sessions:
                fresh = secrets.token_urlsafe(24)
                self.locker.staff.sessions[fresh] = Session(fresh, members[role], "front",
                                                            self.clock.monotonic())
                self.tokens[role] = fresh

    def headers(self, given: HttpInput) -> tuple[dict[str, str], set[str]]:
        """The request's headers and the credentials among them that are valid."""
        headers: dict[str, str] = {}
        valid: set[str] = set()
        courier, tech = self.tokens["courier"], self.tokens["technician"]
        auth = {"none": None, "garbage": given.garbage, "courier": f"Bearer {courier}",
                "technician": f"Bearer {tech}", "bearer_typo": f"bearer {courier}",
                "bare_token": courier, "courier_spaced": f"Bearer   {courier}  "}[given.auth]
        if auth is not None:
            headers["Authorization"] = auth
        if given.auth in ("courier", "courier_spaced"):
            valid.add("courier")
        elif given.auth == "technician":
            valid |= {"technician", "courier"}  # a technician may do what a courier does
        ops = {"none": None, "garbage": given.garbage, "ops": OPS_TOKEN,
               "ops_typo": OPS_TOKEN[:-1], "ops_padded": f" {OPS_TOKEN}\t"}[given.ops]
        if ops is not None:
            headers["X-Ops-Token"] = ops
        if given.ops in ("ops", "ops_padded"):  # HTTP drops whitespace around a header value
            valid.add("ops")
        if given.content_type is not None:
            headers["Content-Type"] = given.content_type
        return headers, valid

    def body_bytes(self, given: HttpInput) -> bytes | None:
        if given.body_kind == "none":
            return None
        if given.body_kind == "raw":
            assert isinstance(given.body, bytes)
            return given.body
        live = list(self.live_codes)

        def render(value: Any) -> Any:
            if isinstance(value, LiveCode):
                return _render_code(live, value)
            if isinstance(value, Existing):
                return self.existing(value)
            if isinstance(value, dict):
                return {k: render(v) for k, v in value.items()}
            if isinstance(value, list):
                return [render(v) for v in value]
            return value

        return dumps(render(given.body)).encode()

    def existing(self, ref: Existing) -> str:
        rows = self.locker.store.read().all(EXISTING_QUERIES[ref.what])
        return str(rows[ref.pick % len(rows)]["id"]) if rows else "none-yet"

    def path(self, given: HttpInput) -> str:
        path = given.route.template
        for name, (raw, ref) in given.params.items():
            value = self.existing(ref) if isinstance(ref, Existing) else ref
            path = path.replace("{" + name + "}",
                                value if raw else urllib.parse.quote(value, safe=""))
        return path

    def pickup_code(self, body: bytes | None) -> str | None:
        """The live code this pickup request carried, if it carried one (the test's own view)."""
        try:
            sent = json.loads(body or b"")
        except (ValueError, RecursionError):
            return None
        code = sent.get("code") if isinstance(sent, dict) else None
        if not isinstance(code, str):
            return None
        digits = "".join(ch for ch in code if ch not in " -\t\r\n")
        return digits if digits in self.live_codes else None

    async def send(self, given: HttpInput) -> None:
        headers, valid = self.headers(given)
        body = self.body_bytes(given)
        path = self.path(given)
        unlocked_before = len(self.driver.unlocked)
        skip = ["Content-Type"] if given.content_type is None else []
        session: ClientSession = self.http.session
        async with session.request(given.route.method, URL(self.base + path, encoded=True),
                                   data=body, headers=headers,
                                   skip_auto_headers=skip) as response:
            status = response.status
            if response.content_type == "text/event-stream":  # the ops page's or the kiosk's
                assert status == 200 and ("ops" in valid or given.route.name == "kiosk_doors")
                first = await response.content.readline()
                assert first.startswith((b": connected", b"data: "))
                answer: Any = None
            else:
                raw = await response.read()
                answer = json.loads(raw) if response.content_type == "application/json" else raw
        where = f"{given.route.method} {path} -> {status}: {answer!r:.300}"
        self.statuses[status] += 1
        assert status < 500, where
        if 400 <= status < 500:
            assert response.content_type == "application/json", where
            assert isinstance(answer, dict), where
            assert isinstance(answer.get("error"), str) and answer["error"], where
            assert isinstance(answer.get("message"), str) and answer["message"], where
        if given.route.needs and not (given.route.needs & valid):
            # credentials are checked before anything else: no body is even read without them
            assert status in (401, 403), where
        opened_now = self.driver.unlocked[unlocked_before:]
        if opened_now:
            code = self.pickup_code(body) if given.route.name == "pickup" else None
            authorised = given.route.unlocks and (
                bool(given.route.needs & valid) if given.route.needs else code is not None)
            assert authorised, f"a door opened for an unauthorised request: {where}"
            assert status == 200, where
            assert sorted(opened_now) == sorted(d["compartment"] for d in answer["opened"])
            self.opened_by[given.route.name] += len(opened_now)
            if code is not None:
                del self.live_codes[code]
            for compartment in opened_now:  # the person opens the door and closes it again
                self.driver.open(compartment)
                self.driver.close(compartment)
        health = await self.http.get("/api/health")
        assert health.status == 200, await health.text()
        assert (await health.json())["ready"] is True


def test_http_api_survives_any_request(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path)
    try:
        @settings(max_examples=300, **FAST)
        @given(given=http_inputs())
        def one_request(given: HttpInput) -> None:
            COUNTS["http api requests"] += 1
            rig.keep_sessions()
            rig.top_up()
            rig.runner.run(rig.send(given))

        one_request()
        print(f"\nhttp api: answers by status {dict(sorted(rig.statuses.items()))}; doors"
              f" opened by authorised requests {dict(sorted(rig.opened_by.items()))}")
        assert rig.locker.ready
    finally:
        rig.close()


# header values as bytes on the wire: anything HTTP's parser takes (visible ASCII, space, tab,
# obs-text 0x80-0xFF), so every answer comes from the app and not from the parser
HEADER_VALUE = st.binary(max_size=80).map(
    lambda raw: bytes(c for c in raw if c == 9 or 0x20 <= c <= 0x7E or c >= 0x80).strip())
HEADER_NAMES = st.sampled_from([b"Authorization", b"Content-Type", b"X-Ops-Token", b"Cookie",
                                b"Accept", b"Accept-Language", b"X-Forwarded-For", b"Origin",
                                b"Content-Encoding", b"Expect", b"Range", b"If-None-Match"])


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def raw_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    headers = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(HEADER_NAMES)
        value = draw(HEADER_VALUE | st.sampled_from([b"gzip", b"deflate", b"br", b"identity",
                                                     b"100-continue", b"bytes=0-1",
                                                     b"application/json"]))
        # UPSTREAM BUG (test_non_utf8_bytes_in_expect_*): Expect stays UTF-8 here
        assume(name != b"Expect" or _utf8(value))
        headers.append((name, value))
    return headers


async def _raw_exchange(rig: HttpRig, request: bytes) -> tuple[int, bytes, bytes]:
    """One request as raw bytes on a fresh connection: (status, head, body)."""
    reader, writer = await asyncio.open_connection(rig.http.server.host, rig.http.server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def test_http_api_survives_any_header_bytes(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path)
    try:
        @settings(max_examples=250, **FAST)
        @given(route=st.sampled_from([r for r in ROUTES
                                      if r.name not in ("ops_stream", "kiosk_doors")]),
               headers=raw_headers(), body=st.sampled_from([b"", b"{}", b'{"code": "12345678906"}',
                                                            b'{"reason": "fix the hinge"}',
                                                            b"\x1f\x8b\x08\x00garbage"]))
        def one_request(route: Route, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            COUNTS["http api raw header sets"] += 1
            path = route.template.replace("{order}", "r1").replace("{compartment}", "A1")
            request = (f"{route.method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
                       + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
                       + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                       + body)
            unlocked = len(rig.driver.unlocked)
            status, head, answer = rig.runner.run(_raw_exchange(rig, request))
            where = f"{request[:300]!r} -> {head[:200]!r} {answer[:200]!r}"
            assert status < 500, where
            # aiohttp answers these itself, before the app: 417 for an Expect it does not know;
            # its HTTP parser's refusals (a duplicate Content-Type, a body that does not inflate
            # as Content-Encoding says) come as HTTP/1.0 text/plain
            by_aiohttp = status == 417 or head.startswith(b"HTTP/1.0 ")
            # (the pages and /static are files: a Range they cannot satisfy is a plain 416)
            if 400 <= status < 500 and not by_aiohttp and path.startswith("/api/"):
                assert b"application/json" in head.lower(), where
                problem = json.loads(answer)
                assert problem["error"] and problem["message"], where
            assert len(rig.driver.unlocked) == unlocked, where  # valid credentials never sent

        one_request()
        assert rig.runner.run(rig.http.get("/api/health")).status == 200
    finally:
        rig.close()


# == 2. central's payloads ===================================================================

ORDER_ID_POOL = tuple(f"{letter}-{n}" for letter in "AB" for n in range(1, 11))
ZONES = st.sampled_from(["ambient", "fresh", "frozen"])
SIZES = st.sampled_from(["S", "M", "L"])


@st.composite
def good_bags(draw: st.DrawFn) -> list[dict[str, str]]:
    return [{"zone": draw(ZONES), "size": draw(SIZES)} for _ in range(draw(st.integers(1, 3)))]


@st.composite
def bad_bags(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["json", "empty", "many", "fields"]))
    if kind == "json":
        return draw(JSON)
    if kind == "empty":
        return []
    if kind == "many":
        return [{"zone": "fresh", "size": "S"}] * draw(st.sampled_from([32, 33, 1000]))
    out: list[Any] = draw(good_bags())
    bag = dict(out[0])
    change = draw(st.sampled_from(["zone", "size", "extra", "drop"]))
    if change == "zone":
        bag["zone"] = draw(st.sampled_from(["warm", "Fresh", None, 1]) | JSON)
    elif change == "size":
        bag["size"] = draw(st.sampled_from(["XL", "m", "", 1]) | JSON)
    elif change == "extra":
        bag["weight"] = 3
    else:
        bag.pop(draw(st.sampled_from(["zone", "size"])))
    out[0] = bag
    return out


# what each field of an order may hold instead of a good value
BAD_ORDER_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["", "../x", "é", "a" * 65, "A 1", None, 7]) | JSON,
    "version": st.sampled_from([0, -1, 2**53, 2**53 + 1, 10**300, True, 1.0, "2"]) | JSON,
    "code": st.sampled_from(["", "not base64!", "QUJD", "A" * 201, None, 7, True]) | JSON,
    "state": st.sampled_from(["lost", "Active", "", None]) | JSON,
    "window_hours": st.sampled_from([0, -1, -0.0, 1e-9, 720.000001, 721, 1e308, 10**300,
                                     float("nan"), float("inf"), float("-inf"), "72", None,
                                     True]) | st.floats() | JSON,
    "accessible": st.sampled_from(["yes", 0, 1, None]) | JSON,
    "bags": bad_bags(),
}


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed order, then as many as three of its fields spoilt (often none)."""
    order: dict[str, Any] = {
        "id": draw(st.sampled_from(ORDER_ID_POOL)),
        "version": draw(st.integers(1, 6)),
        "code": code_no(draw(st.integers(1, 40))),  # sealed to the locker as it is fed
        "state": draw(st.sampled_from(["active"] * 4 + ["cancelled"])),
        "window_hours": draw(st.sampled_from([0.001, 0.5, 1, 24, 72, 720])
                             | st.floats(0.01, 720)),
        "accessible": draw(st.booleans()),
        "bags": draw(good_bags()),
    }
    changes = st.lists(st.sampled_from([*BAD_ORDER_FIELDS, "extra", "drop"]), max_size=3)
    for change in draw(st.just([]) | st.just([]) | changes):
        if change == "extra":
            order["price"] = 12
        elif change == "drop":
            order.pop(draw(st.sampled_from(sorted(order))), None)
        else:
            order[change] = draw(BAD_ORDER_FIELDS[change])
    return order


@dataclass(frozen=True)
class When:
    """A time relative to the locker's clock, fixed only when the example runs."""

    offset_s: float


@dataclass(frozen=True)
class Signed:
    """A command to sign with `key` at run time: body fields (When resolved), or a raw text."""

    fields: dict[str, Any] | None
    text: str | None
    key: str  # central, other, none (a random signature), garbage


GOOD_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "compartment": st.sampled_from(COMPARTMENTS),
    "reason": st.sampled_from(["customer stuck, ticket 4411", "door check"]),
    "in_service": st.booleans(),
    "order": st.sampled_from(ORDER_ID_POOL),
    "hours": st.sampled_from([0.5, 24, 720]) | st.floats(0.01, 720),
    "zone": st.sampled_from(["fresh", "frozen"]),
    "celsius": st.floats(-30, 10),
    "version": st.sampled_from(["0.5.0", "1.0.0"]),
}
BAD_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "compartment": st.sampled_from(["A9", "", "x" * 201, None]),
    "reason": st.sampled_from(["ab", "", "x" * 200, "x" * 201, None]),
    "in_service": st.sampled_from(["true", 1, None]),
    "order": st.sampled_from(["nope", "", None]),
    "hours": st.sampled_from([0, -1, 721, 1e308, float("nan"), float("inf"), True, "24"])
    | st.floats(),
    "zone": st.sampled_from(["ambient", "warm", None, ["fresh"], {"zone": "fresh"}]),
    "celsius": st.sampled_from([1e308, -1e308, 10**300, 10**400, float("nan"), float("inf"),
                                True, "4", None]) | st.floats(),
    "version": st.sampled_from(["", "v1", "1.0", "../../1.0.0", None, 1, "1.0.0" * 50]),
}
BAD_COMMAND_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "locker_id": st.sampled_from(["other-locker", "", None, "TEST-LOCKER"]),
    "nonce": st.sampled_from(["n" * 32, "short", "x" * 129, 12345678901234567890, None]),
    "issued_at": st.builds(When, st.sampled_from([59.0, 61.0, 3600.0, -86400.0]))
    | st.builds(When, st.floats(-3 * 86400, 3 * 86400)) | SCALARS,
    "expires_at": st.builds(When, st.sampled_from([-1.0, 0.0, 86399.0, 86401.0, 2 * 86400.0]))
    | st.builds(When, st.floats(-3 * 86400, 3 * 86400)) | SCALARS,
    "action": st.sampled_from(["open_all", "", None, "OPEN_COMPARTMENT", [], {}]) | SCALARS,
}
ACTION_ARGS = {
    "open_compartment": ("compartment", "reason"),
    "set_in_service": ("compartment", "in_service", "reason"),
    "cancel_order": ("order", "reason"),
    "extend_window": ("order", "hours", "reason"),
    "set_setpoint": ("zone", "celsius"),
    "update": ("version",),  # refused here: the test locker has no [update] table
}


@st.composite
def commands(draw: st.DrawFn) -> Signed:
    """A command central could send, then perhaps spoilt: its key, its text, a field, its args."""
    action = draw(st.sampled_from(sorted(ACTION_ARGS)))
    args: Any = {name: draw(GOOD_ARGS[name]) for name in ACTION_ARGS[action]}
    fields: dict[str, Any] = {
        "locker_id": LOCKER_ID, "nonce": draw(st.text("0123456789abcdef", min_size=16,
                                                      max_size=40)),
        "issued_at": When(draw(st.sampled_from([0.0, -10.0, -299.0]))),
        "expires_at": When(draw(st.sampled_from([300.0, 60.0, 3600.0]))),
        "action": action, "args": args,
    }
    key = "central"
    change = draw(st.sampled_from(["none"] * 4 + ["key", "text", "field", "arg", "args"]))
    if change == "key":
        key = draw(st.sampled_from(["other", "none", "garbage"]))
    elif change == "text":  # a signed text that is not a command at all
        # deeper than Python's recursion limit too: it once crashed the verifier
        depth = draw(st.integers(1, 300) | st.just(1500))
        text = draw(st.sampled_from(["", "null", "[]", "{", "\x00", "{}", "[" * depth + "]" * depth,
                                     dumps(draw(JSON))]))
        return Signed(None, text, draw(st.sampled_from(["central", "other"])))
    elif change == "field":
        name = draw(st.sampled_from([*sorted(fields), "surprise"]))
        if draw(st.booleans()) and name in fields:
            fields.pop(name)
        else:
            fields[name] = draw(BAD_COMMAND_FIELDS.get(name, JSON))
    elif change == "arg":
        name = draw(st.sampled_from([*sorted(args), "extra"]))
        if draw(st.booleans()) and name in args:
            args.pop(name)
        else:
            args[name] = draw(BAD_ARGS.get(name, JSON))
    elif change == "args":
        fields["args"] = draw(JSON)
    return Signed(fields, None, key)


@dataclass(frozen=True)
class Numbered:
    """An item's or an answer's cursor: the next one, an offset from the stored one, or raw."""

    how: str  # next, offset, raw
    value: Any = 0


NEXT = Numbered("next")


@st.composite
def cursors(draw: st.DrawFn) -> Numbered:
    """Mostly the next cursor; sometimes one out of order, or not a cursor at all."""
    odd = draw(st.integers(0, 19))
    if odd == 0:
        return Numbered("raw", draw(SCALARS))
    if odd == 1:
        return Numbered("offset", draw(st.sampled_from([-3, -1, 0, 2, 6, 2**53])))
    return NEXT


@st.composite
def feed_items(draw: st.DrawFn) -> tuple[Numbered, Any]:
    kind = draw(st.sampled_from(["order"] * 5 + ["signed"] * 3 + ["command", "junk"]))
    if kind == "order":
        item: Any = {"type": "order", "order": draw(orders())}
    elif kind == "signed":
        item = {"type": "command", "command": draw(commands())}
    elif kind == "command":
        item = {"type": "command", "command": draw(
            st.fixed_dictionaries({"body": TEXT | JSON, "signature": TEXT | JSON})
            | st.dictionaries(TEXT, JSON, max_size=3) | JSON)}
    else:
        item = draw(JSON | st.fixed_dictionaries({"type": TEXT | JSON}))
    if isinstance(item, dict) and draw(st.integers(0, 12)) == 0:
        item["extra"] = draw(JSON)
    return draw(cursors()), item


@dataclass(frozen=True)
class FeedStep:
    kind: str  # feed, load, advance, frame
    items: list[tuple[Numbered, Any]] = field(default_factory=list)
    top: Numbered = Numbered("next")
    order: str = ""
    seconds: float = 0.0
    frame: Any = None  # a whole answer, not built from items


STEPS = st.one_of(
    st.builds(FeedStep, st.just("feed"), st.lists(feed_items(), max_size=6),
              cursors()),
    st.builds(FeedStep, st.just("feed"), st.lists(feed_items(), max_size=6)),
    st.builds(FeedStep, st.just("load"), order=st.sampled_from(ORDER_ID_POOL)),
    st.builds(FeedStep, st.just("advance"), seconds=st.sampled_from([1.0, 5.0, 30.0])),
    st.builds(FeedStep, st.just("frame"), frame=JSON | st.fixed_dictionaries(
        {"cursor": SCALARS, "items": JSON}) | st.fixed_dictionaries(
        {"cursor": SCALARS, "items": st.lists(JSON, max_size=3)}, optional={"more": JSON})),
)


class CentralRig:
    """A locker with a [central] table, on the stand-in driver and a simulated clock."""

    def __init__(self, folder: Path) -> None:
        self.runner = LoopRunner()
        config = central_config(folder)
        self.config = config
        self.clock = SimClock(start=1_800_000_000.0)
        self.driver = FakeDriver([c.id for c in config.compartments])
        self.locker = Locker(config, self.driver, self.clock)
        self.runner.run(self.locker.start())
        self.cursor = 0
        self.outcomes: Counter[str] = Counter()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.run(self.locker.stop())
        self.runner.close()

    def resolve(self, value: Any) -> Any:
        now = self.clock.now()
        if isinstance(value, When):
            return now + value.offset_s
        if isinstance(value, Signed):
            if value.fields is not None:
                text = dumps({k: self.resolve(v) for k, v in value.fields.items()})
            else:
                assert value.text is not None
                text = value.text
            if value.key == "garbage":
                signature = "not base64!"
            elif value.key == "none":
                signature = base64.b64encode(secrets.token_bytes(64)).decode()
            else:
                key = KEY if value.key == "central" else OTHER_KEY
                signature = base64.b64encode(key.sign(text.encode())).decode()
            return {"body": text, "signature": signature}
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    @staticmethod
    def number(spec: Numbered, after: int, index: int) -> Any:
        if spec.how == "next":
            return after + index
        if spec.how == "offset":
            return after + spec.value
        return spec.value

    async def step(self, step: FeedStep) -> None:
        if step.kind == "advance":
            await self.clock.advance(step.seconds)
            return
        if step.kind == "load":  # a courier loads it, so orders reach ready and beyond
            try:
                result = await self.locker.courier.load("courier:courier-1", step.order)
            except LockerError:
                return
            for door in result.opened:
                self.driver.open(door.compartment_id)
                self.driver.close(door.compartment_id)
            return
        after = stored_cursor(self.locker.store)
        if step.kind == "frame":
            body = step.frame
        else:
            items = []
            for index, (spec, item) in enumerate(step.items, start=1):
                resolved = self.resolve(item)
                if isinstance(resolved, dict):
                    resolved = {"cursor": self.number(spec, after, index), **resolved}
                items.append(resolved)
            body = {"cursor": self.number(step.top, after, len(items)) if step.top.how != "next"
                    else after + len(items), "items": items}
        body = seal_plain_codes(json.loads(dumps(body)), self.locker.codes.box_public)
        COUNTS["central feed answers"] += 1
        try:
            cursor, parsed = parse_feed(body, after)
        except BadPayload:
            self.outcomes["bad_payload"] += 1
            return
        COUNTS["central feed items applied"] += len(parsed)
        applied = await self.locker.inbox.apply(cursor, parsed)  # type: ignore[union-attr]
        self.outcomes.update(applied.outcomes)

    def check_invariants(self) -> None:
        read = self.locker.store.read()
        orphans = read.all(
            "SELECT c.id, c.state, c.order_id FROM compartments c LEFT JOIN orders o"
            " ON o.id = c.order_id WHERE c.state IN ('reserved', 'loaded') AND o.id IS NULL")
        assert orphans == [], orphans
        shared = read.all("SELECT sequence, COUNT(*) AS n FROM orders GROUP BY sequence"
                          " HAVING n > 1")
        assert shared == [], shared
        same_code = read.all("SELECT code_digest, COUNT(*) AS n FROM orders"
                             " WHERE code_digest IS NOT NULL GROUP BY code_digest HAVING n > 1")
        assert same_code == [], same_code
        kept = read.all("SELECT id FROM orders WHERE code_digest IS NOT NULL"
                        " AND state IN ('collected', 'reclaimed', 'cancelled')")
        assert kept == [], f"finished orders still hold a code digest: {kept}"
        cursor = stored_cursor(self.locker.store)
        assert cursor >= self.cursor, f"the cursor went back from {self.cursor} to {cursor}"
        self.cursor = cursor


def test_central_feed_answers_never_break_the_store(tmp_path: Path) -> None:
    rig = CentralRig(tmp_path)
    try:
        @settings(max_examples=250, **FAST)
        @given(steps=st.lists(STEPS, min_size=1, max_size=4))
        def some_answers(steps: list[FeedStep]) -> None:
            COUNTS["central feed examples (1-4 steps)"] += 1
            for step in steps:
                rig.runner.run(rig.step(step))
                rig.check_invariants()

        some_answers()
        # the fuzz reached every kind of outcome, not only refusals of the frame
        print(f"\ncentral feed outcomes: {dict(sorted(rig.outcomes.items()))}")
        assert rig.outcomes["received"] > 0 and rig.outcomes["bad_payload"] > 0
        assert rig.outcomes["done"] + rig.outcomes["failed"] > 0
    finally:
        rig.close()


# a whole answer of either call, from anything JSON to almost the right shape
ANSWERS = (JSON
           | st.fixed_dictionaries({"acked": JSON | st.lists(TEXT | SCALARS, max_size=5)},
                                   optional={"extra": JSON})
           | st.fixed_dictionaries({"server_time": SCALARS | JSON},
                                   optional={"events_seq": SCALARS | JSON, "extra": JSON}))


@settings(max_examples=300, **FAST)
@given(answer=ANSWERS)
def test_central_answer_readers_raise_only_garbled(answer: Any) -> None:
    COUNTS["central events/heartbeat answers"] += 1
    answer = json.loads(dumps(answer))
    for read in (_acked, _heartbeat_answer):
        try:
            value = read(answer)
        except Garbled:
            continue
        if read is _acked:
            assert isinstance(value, list) and all(isinstance(i, str) for i in value)
        else:
            server_time, events_seq = value
            assert isinstance(server_time, float)
            assert events_seq is None or (type(events_seq) is int and 0 <= events_seq <= 2**53)


# == 3. the serial line ======================================================================

@dataclass
class Heard:
    """A HardwareListener that only writes down what the driver tells it."""

    doors: list[tuple[str, DoorSense]] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)

    def door_sensed(self, compartment_id: str, sense: DoorSense) -> None:
        self.doors.append((compartment_id, sense))

    def board_offline(self, board: str, reason: str) -> None:
        self.offline.append(board)

    def board_online(self, board: str) -> None:
        pass


class SerialRig:
    def __init__(self, folder: Path, protocol: str) -> None:
        self.runner = LoopRunner()
        path = folder / f"{protocol}.toml"
        path.write_text(config_text(protocol))
        base = load_config(path)
        self.boards = SimulatedBoards(base, auto_close_s=None)
        self.runner.run(self.boards.start())
        config: LockerConfig = dataclasses.replace(
            base, bus=dataclasses.replace(base.bus, port=self.boards.port))  # type: ignore[arg-type]
        assert config.bus is not None
        self.codec = get_codec(config.bus.protocol, config.bus.boards)
        self.heard = Heard()

        async def start() -> BoardLockDriver:
            assert config.bus is not None
            driver = BoardLockDriver(config.bus, config.compartments)
            await driver.start(self.heard)
            return driver

        self.driver = self.runner.run(start())
        self.in_window: list[bytes] = []
        self.boards.frame_listeners.append(self._request_seen)

    def _request_seen(self, record: Any) -> None:
        """Noise in the reply window: written as the board gets a request, before its reply."""
        if record.direction == "rx" and self.in_window:
            self.boards.inject_noise(self.in_window.pop(0))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.run(self.driver.stop())
        with contextlib.suppress(Exception):
            self.runner.run(self.boards.stop())
        self.runner.close()

    def is_a_frame(self, noise: bytes) -> bool:
        """Noise holding a whole well-formed frame is a board's answer as far as anyone can tell
        (right checksum, right shape): those are left out, they are not noise."""
        frames, _ = extract_frames(self.codec, bytearray(noise))
        return bool(frames)

    async def until(self, check: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not check():
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def one(self, now: list[bytes], window: list[bytes], corrupt: int,
                  open_doors: set[str], gap_s: float) -> None:
        for compartment in COMPARTMENTS:  # people (and crowbars) move the doors meanwhile
            if compartment in open_doors:
                self.boards.force(compartment)
            else:
                self.boards.close(compartment)
        corrupted_before = sum(1 for f in self.boards.sent() if "corrupted" in f.note)
        self.in_window = list(window)
        self.boards.corrupt_next_replies(corrupt)
        for chunk in now:
            self.boards.inject_noise(chunk)
            await asyncio.sleep(gap_s)
        await self.until(lambda: not self.in_window, "the noise in reply windows")
        await self.until(
            lambda: sum(1 for f in self.boards.sent() if "corrupted" in f.note)
            >= corrupted_before + corrupt, "the corrupted replies")
        await self.until(lambda: not any(h.offline for h in self.driver.bus.health.values()),
                         "every board back online")
        read = await self.driver.read_doors()
        expected = {cid: DoorSense.OPEN if cid in open_doors else DoorSense.CLOSED
                    for cid in COMPARTMENTS}
        simulated = {cid: DoorSense.OPEN if lock["door"] == "open" else DoorSense.CLOSED
                     for cid, lock in self.boards.doors.state().items() if cid in expected}
        assert simulated == expected
        assert dict(read) == expected, f"the driver read {dict(read)}"
        assert {cid: self.driver.doors[cid] for cid in COMPARTMENTS} == expected
        heard = {cid: DoorSense.CLOSED for cid in COMPARTMENTS}  # the baseline, not reported
        heard.update(dict(self.heard.doors))
        assert heard == expected, "the domain was told something else than the doors are"
        assert not self.boards.received(command="unlock"), "an unlock went on the wire"
        assert not [c for c in self.boards.doors.history if c.what == "unlock"]
        assert not [f for f in self.driver.history() if f.direction == "tx" and f.kind == "unlock"]


NOISE = st.binary(min_size=1, max_size=48) | st.sampled_from([
    b"\x02", b"\x02\x00\x35", b"\x90\x06\x00", b"\x80\x01\x00\x33", b"\x8a\x01",
    b"\x00" * 32, b"\xff" * 32, b"\x02\x03" * 8, b"\x03"])


@pytest.mark.parametrize("protocol", ["kerong", "winnsen", "generic"])
def test_noise_and_corrupt_replies_on_the_serial_line(tmp_path: Path, protocol: str) -> None:
    rig = SerialRig(tmp_path, protocol)
    try:
        @settings(max_examples=16, **FAST)
        @given(now=st.lists(NOISE, max_size=4), window=st.lists(NOISE, max_size=3),
               corrupt=st.integers(0, 5), open_doors=st.sets(st.sampled_from(COMPARTMENTS)),
               gap_s=st.sampled_from([0.0, 0.002, 0.02]))
        def noisy_line(now: list[bytes], window: list[bytes], corrupt: int,
                       open_doors: set[str], gap_s: float) -> None:
            assume(not any(rig.is_a_frame(chunk) for chunk in [*now, *window]))
            COUNTS[f"serial line ({protocol}) noise bursts"] += len(now) + len(window)
            COUNTS[f"serial line ({protocol}) corrupted replies"] += corrupt
            COUNTS[f"serial line ({protocol}) examples"] += 1
            rig.runner.run(rig.one(now, window, corrupt, open_doors, gap_s))

        noisy_line()
        stats = rig.driver.bus.stats
        print(f"\nserial line ({protocol}): {rig.driver.bus.dropped_bytes} bytes dropped as noise,"
              f" {stats.discarded_frames} frames discarded, {stats.timeouts} timeouts,"
              f" {stats.retries} retries, {len(rig.heard.offline)} boards offline")
    finally:
        rig.close()


# == Bugs the fuzzing found ==================================================================
# Each reproduced on its own, and fixed; the one left (strict xfail) is aiohttp's, upstream.


def _http_rig_call(tmp_path: Path, call: Callable[[HttpRig], Awaitable[T]]) -> T:
    rig = HttpRig(tmp_path)
    try:
        return rig.runner.run(call(rig))
    finally:
        rig.close()


async def _status_of(response: Any) -> tuple[int, str]:
    await response.read()
    return response.status, response.content_type


def test_a_lone_surrogate_in_a_staff_login_is_a_400_not_a_500(tmp_path: Path) -> None:
    async def call(rig: HttpRig) -> tuple[int, str]:
        response = await rig.http.post("/api/staff/login",
                                       data=b'{"staff": "\\ud800", "code": "123456"}',
                                       headers={"Content-Type": "application/json"})
        return await _status_of(response)

    assert _http_rig_call(tmp_path, call) == (400, "application/json")


def test_a_lone_surrogate_in_a_technician_reason_is_a_400_not_a_500(tmp_path: Path) -> None:
    async def call(rig: HttpRig) -> tuple[int, str]:
        response = await rig.http.post(
            "/api/technician/compartments/A1/open", data=b'{"reason": "abc\\ud800"}',
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {rig.tokens['technician']}"})
        assert rig.driver.unlocked == []
        return await _status_of(response)

    assert _http_rig_call(tmp_path, call) == (400, "application/json")


def test_non_utf8_bytes_in_x_ops_token_are_a_401_not_a_500(tmp_path: Path) -> None:
    async def call(rig: HttpRig) -> bytes:
        reader, writer = await asyncio.open_connection(rig.http.server.host,
                                                       rig.http.server.port)
        writer.write(b"GET /api/ops/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"X-Ops-Token: \xff\xfe\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        return answer

    assert _http_rig_call(tmp_path, call).startswith(b"HTTP/1.1 401 ")


@pytest.mark.xfail(strict=True, reason=(
    "UPSTREAM BUG (aiohttp 3.14.5): an Expect header holding bytes that are not UTF-8 makes"
    " aiohttp's _default_expect_handler (web_urldispatcher.py) build HTTPExpectationFailed with"
    " the header's surrogate-escaped text, whose encoding raises UnicodeEncodeError: 500. It runs"
    " before the app's middlewares; create_app could pass its own expect_handler"))
def test_non_utf8_bytes_in_expect_are_a_417_not_a_500(tmp_path: Path) -> None:
    async def call(rig: HttpRig) -> int:
        status, _, _ = await _raw_exchange(rig, b"POST /api/pickup HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           b"Expect: \x80\r\nContent-Length: 0\r\n"
                                           b"Connection: close\r\n\r\n")
        return status

    assert _http_rig_call(tmp_path, call) == 417


def test_router_errors_under_api_are_json_problems(tmp_path: Path) -> None:
    async def call(rig: HttpRig) -> list[tuple[int, str]]:
        answers = []
        for method, path in [("GET", "/api/nope"), ("PUT", "/api/pickup"),
                             ("POST", "/api/courier/orders/a/b/load"),
                             ("POST", "/api/courier/orders//load"),
                             ("POST", "/api/courier/orders/%7B/load")]:
            answers.append(await _status_of(await rig.http.request(method, path)))
        return answers

    answers = _http_rig_call(tmp_path, call)
    assert all(ctype == "application/json" for _, ctype in answers), answers


def _window_order(hours: Any) -> dict[str, Any]:
    return {"cursor": 1, "items": [{"cursor": 1, "type": "order", "order": {
        "id": "A-1", "version": 1, "code": "c" * 80, "state": "active", "window_hours": hours,
        "accessible": False, "bags": [{"zone": "fresh", "size": "S"}]}}]}


def test_huge_integers_in_central_json_are_a_bad_item() -> None:
    """The answer is well framed; the one order in it is refused, and stepped over."""
    _, items = parse_feed(json.loads(json.dumps(_window_order(10**400))), 0)
    assert items[0].problem is not None and "out of range" in items[0].problem


def test_huge_integers_in_central_json_are_garbled_heartbeats() -> None:
    with pytest.raises(Garbled):
        _heartbeat_answer(json.loads('{"server_time": 1' + "0" * 400 + "}"))


def _signed_command(body: str) -> dict[str, Any]:
    return {"body": body, "signature": base64.b64encode(KEY.sign(body.encode())).decode()}


def _apply_one_command(tmp_path: Path, body: Callable[[float], str]) -> dict[str, int]:
    rig = CentralRig(tmp_path)
    try:
        async def apply() -> dict[str, int]:
            after = stored_cursor(rig.locker.store)
            item = {"cursor": after + 1, "type": "command",
                    "command": _signed_command(body(rig.clock.now()))}
            cursor, items = parse_feed({"cursor": after + 1, "items": [item]}, after)
            return (await rig.locker.inbox.apply(cursor, items)).outcomes  # type: ignore[union-attr]
        return rig.runner.run(apply())
    finally:
        rig.close()


def _command_body(now: float, *, issued: Any = None, action: Any = "cancel_order",
                  args: dict[str, Any] | None = None) -> str:
    return json.dumps({"locker_id": LOCKER_ID, "nonce": secrets.token_hex(16),
                       "issued_at": now if issued is None else issued, "expires_at": now + 300,
                       "action": action, "args": args or {"order": "A-1", "reason": "test"}})


def test_huge_integers_in_central_json_are_a_refused_command(tmp_path: Path) -> None:
    outcomes = _apply_one_command(tmp_path, lambda now: _command_body(now, issued=10**400))
    assert outcomes == {"malformed": 1}


def test_huge_integers_in_central_json_crash_a_setpoint_command(tmp_path: Path) -> None:
    outcomes = _apply_one_command(tmp_path, lambda now: _command_body(
        now, action="set_setpoint", args={"zone": "fresh", "celsius": 10**400}))
    assert outcomes == {"failed": 1}


def test_a_deeply_nested_signed_command_body_is_refused(tmp_path: Path) -> None:
    outcomes = _apply_one_command(tmp_path, lambda now: "[" * 1500 + "]" * 1500)
    assert outcomes == {"malformed": 1}


def test_an_unhashable_action_is_a_refused_command(tmp_path: Path) -> None:
    outcomes = _apply_one_command(tmp_path, lambda now: _command_body(now, action=[]))
    assert outcomes == {"unknown_action": 1}


def seal_plain_codes(body: Any, box_key: str) -> Any:
    """A feed answer with each order's plain 11-digit code sealed to the locker, as central
    does; anything else (a spoilt code, a spoilt answer) is left as it is."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return body
    items = []
    for item in body["items"]:
        order = item.get("order") if isinstance(item, dict) else None
        if isinstance(order, dict) and isinstance(order.get("code"), str) and len(
                order["code"]) == CODE_DIGITS and order["code"].isdigit():
            item = {**item, "order": {**order, "code": seal(box_key, order["code"])}}
        items.append(item)
    return {**body, "items": items}


class StubCentral:
    """Central as far as the locker's three calls go, answering what a test sets."""

    def __init__(self) -> None:
        self.feed: bytes | None = None  # the feed's answer while the locker is behind `top`
        self.top = 0
        self.garbage: bytes | None = None  # when set, every call gets this
        self.box_key = ""  # the locker's: plain codes in the feed are sealed to it

    async def answer(self, request: web.Request) -> web.Response:
        if self.garbage is not None:
            return web.Response(body=self.garbage, content_type="application/json")
        if request.path.endswith("/feed"):
            after = int(request.query.get("after", "0"))
            if self.feed is not None and after < self.top:
                sealed = seal_plain_codes(json.loads(self.feed), self.box_key)
                return web.Response(body=json.dumps(sealed).encode(),
                                    content_type="application/json")
            await asyncio.sleep(0.05)
            return web.json_response({"cursor": after, "items": []})
        if request.path.endswith("/events"):
            sent = await request.json()
            return web.json_response({"acked": [e["id"] for e in sent["events"]]})
        return web.json_response({"server_time": 1_800_000_000.0})


def _with_stub_central(tmp_path: Path, central: StubCentral,
                       check: Callable[[Locker, CentralLink], T]) -> T:
    """Run a locker syncing with `central` a little while, then `check` it (loops still on)."""
    runner = LoopRunner()

    async def scenario() -> T:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", central.answer)
        server = TestServer(app)
        await server.start_server()
        text = SMALL_CONFIG + CENTRAL.replace(
            "http://127.0.0.1:9/v1", f"http://{server.host}:{server.port}/v1") + (
            "poll_wait_s = 1\nbackoff_min_s = 0.05\nbackoff_max_s = 0.1\n")
        config = central_config(tmp_path, text)
        central.box_key = box_public_key(load_box_key(config.box_key_file))
        create_private_file(config.central.token_file, "t" * 32)
        locker = Locker(config, FakeDriver(list(COMPARTMENTS)), SimClock())
        await locker.start()
        link = CentralLink(locker)
        await link.start()
        try:
            await asyncio.sleep(0.6)  # a dozen calls of each loop at this backoff
            ended = [t.get_name() for t in link._tasks if t.done()]
            assert ended == [], f"these sync loops ended: {ended}"
            return check(locker, link)
        finally:
            await link.stop()
            await locker.stop()
            await server.close()

    try:
        return runner.run(scenario())
    finally:
        runner.close()


def test_a_deeply_nested_central_answer_raises_the_protocol_alarm(tmp_path: Path) -> None:
    central = StubCentral()
    central.garbage = b"[" * 100_000

    def alarms(locker: Locker, link: CentralLink) -> list[Any]:
        return locker.store.read().all("SELECT kind FROM alarms WHERE cleared_at IS NULL")

    assert {"kind": "central_protocol"} in _with_stub_central(tmp_path, central, alarms)


def _good_order(order_id: str, code: int) -> dict[str, Any]:
    return {"id": order_id, "version": 1, "code": code_no(code), "state": "active",
            "window_hours": 24, "accessible": False, "bags": [{"zone": "fresh", "size": "S"}]}


POISON = {
    "order window_hours 10**400": lambda now: {"type": "order", "order": {
        **_good_order("A-1", 1), "window_hours": 10**400}},
    "command issued_at 10**400": lambda now: {"type": "command", "command": _signed_command(
        _command_body(now, issued=10**400))},
    "command body nested 1500 deep": lambda now: {"type": "command", "command": _signed_command(
        "[" * 1500 + "]" * 1500)},
    "command action []": lambda now: {"type": "command", "command": _signed_command(
        _command_body(now, action=[]))},
}


@pytest.mark.parametrize("poison", sorted(POISON))
def test_one_poisoned_feed_item_does_not_block_the_feed(tmp_path: Path, poison: str) -> None:
    central = StubCentral()
    now = 1_800_000_000.0  # the locker's SimClock
    items = [{"cursor": 1, **POISON[poison](now)},
             {"cursor": 2, "type": "order", "order": _good_order("A-2", 2)}]
    central.feed = json.dumps({"cursor": 2, "items": items}).encode()
    central.top = 2

    def arrived(locker: Locker, link: CentralLink) -> tuple[int, list[Any]]:
        return stored_cursor(locker.store), locker.store.read().all(
            "SELECT id FROM orders WHERE id = 'A-2'")

    assert _with_stub_central(tmp_path, central, arrived) == (2, [{"id": "A-2"}])


def test_a_malformed_feed_item_is_stepped_over(tmp_path: Path) -> None:
    """The control for the test above: the same feed with an item that is merely malformed."""
    central = StubCentral()
    items = [{"cursor": 1, "type": "order", "order": {**_good_order("A-1", 1), "window_hours": 0}},
             {"cursor": 2, "type": "order", "order": _good_order("A-2", 2)}]
    central.feed = json.dumps({"cursor": 2, "items": items}).encode()
    central.top = 2

    def arrived(locker: Locker, link: CentralLink) -> tuple[int, list[Any]]:
        return stored_cursor(locker.store), locker.store.read().all(
            "SELECT id FROM orders WHERE id = 'A-2'")

    assert _with_stub_central(tmp_path, central, arrived) == (2, [{"id": "A-2"}])
