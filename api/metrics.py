"""Prometheus metrics for the locker at GET /metrics on the local app (prometheus-client).

One collector per app, in the app's own CollectorRegistry (never the process-wide default one:
several apps may run in one process, as in the tests), evaluated at scrape time from the locker's
state, its store and its driver. The only state kept here are the counters fed by the events the
store tells its listeners after each commit (door openings, code failures): they count since this
process started, and Prometheus's rate() handles the reset a restart brings.

What it must never do: put a pickup code, a staff code, a token, an order id or a staff id into a
label or a value. Labels are low-cardinality by construction: zones, who opened (a kind, not a
person), board names from the config, alarm kinds and order states from our own code.

Why /metrics needs no token: the app listens on localhost by default (`[http] host`), where a
Prometheus server or agent on the Pi itself scrapes it, and the figures carry no secret and no
personal data. Asking for the ops token instead would put a credential that can open doors into
every scrape config. A locker whose app is reachable from the shop's network (an `http.host`
other than 127.0.0.1) shows these figures to that network too, with the rest of the app: put a
reverse proxy in front that restricts /metrics (TLS, basic auth or an allow-list of the
scraper's address), or firewall the port, rather than binding the app to 0.0.0.0 as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from api.central import CENTRAL
from locker import __version__
from locker.domain.alarms import ALARMS, OPEN_SQL
from locker.domain.daemon import Locker
from locker.domain.model import OrderState
from locker.domain.ports import BusTelemetry
from locker.domain.sync import DROPPED, outage_since
from locker.domain.update import ROLLBACKS_KEY

# who opened a door, as the authorisation's actor says ("courier:c-17" -> "courier"); "forced"
# for an opening nobody authorised
PERSON_KINDS = ("customer", "courier", "technician", "central", "ops")
ACTOR_KINDS = (*PERSON_KINDS, "forced")
DUTY_WINDOW_S = 3600.0
# refusals the throttle counts as wrong codes: a guess, not a used or expired code
PICKUP_FAILURES = ("wrong_code",)
STAFF_FAILURES = ("wrong_code", "replayed")

Events = list[tuple[str, dict[str, object]]]


def actor_kind(actor: object) -> str:
    """The kind of who authorised an opening, never who it was: "other" for anything unknown."""
    kind = str(actor).split(":", 1)[0]
    return kind if kind in PERSON_KINDS else "other"


class EventCounts:
    """Counters fed by the store's listeners (locker.store.listeners), since start."""

    def __init__(self, locker: Locker) -> None:
        self.zone_of = {c.id: c.zone.value for c in locker.config.compartments}
        zones = sorted(set(self.zone_of.values()))
        # every known series exists from the start at 0, so rate() sees the first opening
        self.door_openings: dict[tuple[str, str], int] = {
            (zone, kind): 0 for zone in zones for kind in ACTOR_KINDS}
        self.code_failures: dict[str, int] = {"pickup": 0, "staff": 0}

    def __call__(self, events: Events) -> None:
        for kind, fields in events:
            if kind == "door.opened":
                self._opened(fields, actor_kind(fields.get("actor")))
            elif kind == "door.forced":
                self._opened(fields, "forced")
            elif kind == "security.code_refused" and fields.get("reason") in PICKUP_FAILURES:
                self.code_failures["pickup"] += 1
            elif kind == "security.login_refused" and fields.get("reason") in STAFF_FAILURES:
                self.code_failures["staff"] += 1

    def _opened(self, fields: dict[str, object], kind: str) -> None:
        zone = self.zone_of.get(str(fields.get("compartment_id")), "unknown")
        key = (zone, kind)
        self.door_openings[key] = self.door_openings.get(key, 0) + 1


class LockerCollector(Collector):
    """Everything /metrics says, read when Prometheus scrapes."""

    def __init__(self, locker: Locker, counts: EventCounts,
                 last_answer: Callable[[], float | None] = lambda: None) -> None:
        self.locker = locker
        self.counts = counts
        self.last_answer = last_answer  # when central last answered (clock.now()), if synced

    def collect(self) -> Iterator[Metric]:
        yield from self._locker()
        yield from self._events()
        yield from self._bus()
        yield from self._zones()
        yield from self._outbox()
        yield from self._central()
        yield from self._store()
        yield from self._updates()

    def _locker(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("locker_info", "The locker's software version and id (always 1).",
                                 labels=["version", "locker_id"])
        info.add_metric([__version__, self.locker.config.locker_id], 1)
        yield info
        yield GaugeMetricFamily("locker_ready", "1 once the doors are reconciled and codes are"
                                " accepted, 0 while starting or stopping.",
                                value=1 if self.locker.ready else 0)

    def _events(self) -> Iterator[Metric]:
        openings = CounterMetricFamily(
            "locker_door_openings_total",
            "Doors seen opening since the daemon started, by zone and by who authorised the"
            " opening (customer, courier, technician, central, ops; forced: nobody did).",
            labels=["zone", "actor_kind"])
        for (zone, kind), n in sorted(self.counts.door_openings.items()):
            openings.add_metric([zone, kind], n)
        yield openings
        failures = CounterMetricFamily(
            "locker_code_failures_total",
            "Wrong secrets since the daemon started: pickup codes that match no order (kind"
            " pickup), wrong or replayed courier/technician codes (kind staff).",
            labels=["kind"])
        for kind, n in sorted(self.counts.code_failures.items()):
            failures.add_metric([kind], n)
        yield failures

    def _bus(self) -> Iterator[Metric]:
        driver = self.locker.driver
        if not isinstance(driver, BusTelemetry):
            return  # GPIO: no bus
        boards = driver.bus_telemetry()
        transactions = CounterMetricFamily(
            "locker_bus_transactions_total",
            "RS485 transactions that went to the wire, per board, by outcome: ok; timeout (no"
            " answer after the retries); failed (a refused unlock, the port lost). Requests"
            " refused at once while a board is offline are not counted.",
            labels=["board", "outcome"])
        online = GaugeMetricFamily("locker_board_online",
                                   "1 while the lock board answers, 0 once it is marked offline.",
                                   labels=["board"])
        for name, board in sorted(boards.items()):
            transactions.add_metric([name, "ok"], board.ok)
            transactions.add_metric([name, "timeout"], board.timeouts)
            transactions.add_metric([name, "failed"], board.failures)
            online.add_metric([name], 1 if board.online else 0)
        yield transactions
        yield online

    def _zones(self) -> Iterator[Metric]:
        celsius = GaugeMetricFamily("locker_zone_temperature_celsius",
                                    "The zone's last probe reading (absent while the probe"
                                    " cannot be read).", labels=["zone"])
        setpoint = GaugeMetricFamily("locker_zone_setpoint_celsius", "The zone's setpoint.",
                                     labels=["zone"])
        compressor = GaugeMetricFamily("locker_compressor_on",
                                       "1 while the zone's compressor relay is on (absent for a"
                                       " zone regulated by its own controller).", labels=["zone"])
        duty = GaugeMetricFamily(
            "locker_compressor_duty_ratio",
            "Fraction of the zone's HACCP records (one every 5 min) of the last hour in which"
            " the compressor was on: a sampled duty cycle, read from the store at scrape time"
            " (so it survives a restart); absent for a zone regulated by its own controller.",
            labels=["zone"])
        on_seconds = CounterMetricFamily(
            "locker_compressor_on_seconds",
            "Seconds the zone's compressor relay has been on since the daemon started:"
            " rate() of it is the duty cycle at any resolution.", labels=["zone"])
        for zone, seconds in sorted(self.locker.compressor_on_s.items()):
            on_seconds.add_metric([zone], seconds)
        relay_zones: list[str] = []
        for zone, state in sorted(self.locker.zone_state.items()):
            if state.get("celsius") is not None:
                celsius.add_metric([zone], float(state["celsius"]))
            if state.get("setpoint_c") is not None:
                setpoint.add_metric([zone], float(state["setpoint_c"]))
            if state.get("compressor") is not None:
                compressor.add_metric([zone], 1 if state["compressor"] else 0)
                relay_zones.append(zone)
        if relay_zones:
            since = self.locker.clock.now() - DUTY_WINDOW_S
            marks = ", ".join("?" * len(relay_zones))
            for row in self.locker.store.read().all(
                    "SELECT zone, AVG(compressor) AS duty FROM temperatures"
                    f" WHERE at >= ? AND zone IN ({marks}) GROUP BY zone",
                    (since, *relay_zones)):
                duty.add_metric([row["zone"]], float(row["duty"]))
        yield from (celsius, setpoint, compressor, duty, on_seconds)

    def _outbox(self) -> Iterator[Metric]:
        store = self.locker.store
        row = store.read().one("SELECT COUNT(*) AS depth, MIN(at) AS oldest_at FROM outbox")
        depth = row["depth"] if row else 0
        oldest = row["oldest_at"] if row else None
        yield GaugeMetricFamily("locker_outbox_events",
                                "Events waiting in the outbox for central to acknowledge them.",
                                value=depth)
        yield GaugeMetricFamily(
            "locker_outbox_oldest_age_seconds",
            "Age of the oldest event waiting in the outbox (0 when it is empty).",
            value=max(0.0, self.locker.clock.now() - oldest) if oldest is not None else 0.0)
        yield CounterMetricFamily(
            "locker_outbox_dropped_total",
            "Telemetry and cold-chain events dropped from the full outbox, ever (kept in the"
            " store, so it survives restarts); order, door, alarm and security events never are.",
            value=int(store.meta(DROPPED) or 0))

    def _central(self) -> Iterator[Metric]:
        if self.locker.config.central is None:
            return  # a locker on its own: no sync to watch
        yield GaugeMetricFamily(
            "locker_central_reachable",
            "1 while central answers, 0 during an outage (counted from its last answer).",
            value=0 if outage_since(self.locker.store) is not None else 1)
        last = self.last_answer()
        if last is not None:
            yield GaugeMetricFamily(
                "locker_central_last_answer_age_seconds",
                "Seconds since central last answered any call (pull, push or heartbeat): the"
                " sync lag.", value=max(0.0, self.locker.clock.now() - last))

    def _store(self) -> Iterator[Metric]:
        read = self.locker.store.read()
        alarms = GaugeMetricFamily(
            "locker_alarms_open",
            "Alarms open, by kind and severity (locker/domain/alarms.py): raised and not cleared,"
            " or a security alarm not acknowledged yet; kinds ever raised on this locker stay"
            " at 0 once closed.", labels=["kind", "severity"])
        for row in read.all(f"SELECT kind, SUM({OPEN_SQL}) AS n FROM alarms"
                            " GROUP BY kind ORDER BY kind"):
            alarms.add_metric([row["kind"], severity_of(row["kind"])], row["n"])
        yield alarms
        orders = GaugeMetricFamily("locker_orders", "Orders in the store, by state.",
                                   labels=["state"])
        counted = {r["state"]: r["n"] for r in read.all(
            "SELECT state, COUNT(*) AS n FROM orders GROUP BY state")}
        for state in OrderState:
            orders.add_metric([state.value], counted.get(state.value, 0))
        yield orders

    def _updates(self) -> Iterator[Metric]:
        if self.locker.config.update is None:
            return  # updated by hand: nothing to roll back
        yield CounterMetricFamily(
            "locker_update_rollbacks_total",
            "Remote updates that did not prove themselves and were rolled back, ever (kept in"
            " the store, so it survives the restart that a rollback is).",
            value=int(self.locker.store.meta(ROLLBACKS_KEY) or 0))


def severity_of(kind: str) -> str:
    found = ALARMS.get(kind)
    return found.severity if found else "ticket"


METRICS = web.AppKey("metrics", CollectorRegistry)


async def serve_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application, locker: Locker) -> None:
    """GET /metrics, with a registry of its own and counters listening to the locker's events."""
    counts = EventCounts(locker)
    locker.store.listeners.append(counts)

    def last_answer() -> float | None:
        return app[CENTRAL].last_answer if CENTRAL in app else None

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LockerCollector(locker, counts, last_answer))
    app[METRICS] = registry
    app.router.add_get("/metrics", serve_metrics)
