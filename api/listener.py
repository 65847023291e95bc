"""How the local app meets the network: TLS when it leaves loopback, the Host names it answers
to, the headers every page carries, deadlines on slow clients, and an access log a flood cannot
fill the SD card with.

The touchscreen's browser runs on the Pi and talks to 127.0.0.1; everything here is for the day
the app is reachable from elsewhere (a shop's Wi-Fi, a web page in that browser trying DNS
rebinding, a client that opens connections and never finishes a request). Nothing here decides
what a request may do: that is the handlers' and the domain's business.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from locker.domain.config import HttpConfig
from locker.domain.errors import ConfigError

# the pages load their scripts and styles from /static, fetch /api and stream /api/ops/stream:
# nothing else, from nowhere else, and never inside another site's frame
CONTENT_SECURITY_POLICY = ("default-src 'self'; frame-ancestors 'none'; base-uri 'none';"
                           " form-action 'self'; object-src 'none'")
SAFETY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
REFUSALS_LOGGED_PER_MINUTE = 10


def tls_context(http: HttpConfig) -> ssl.SSLContext | None:
    """The server's TLS context from http.tls_cert and http.tls_key; None when they are unset."""
    if http.tls_cert is None or http.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key)
    except FileNotFoundError as exc:
        raise ConfigError(f"http.tls_cert / http.tls_key: {exc.filename}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"http.tls_cert {http.tls_cert} / http.tls_key {http.tls_key}: not a"
                          f" PEM certificate and its key: {exc}") from None
    return context


def host_name_and_port(host: str) -> tuple[str, str | None]:
    """'[::1]:8080' -> ('[::1]', '8080'), 'localhost' -> ('localhost', None)."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else None
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, None)


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a Host header names this locker: an allowed name without a port matches the name
    on any port, one with a port only that port."""
    host = host.strip().lower()
    name, _ = host_name_and_port(host)
    return any(host == entry or (host_name_and_port(entry)[1] is None and name == entry)
               for entry in allowed)


def check_host(allowed: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware refusing, before any handler runs, a request whose Host is not this locker's:
    a page on another site whose name now points at 127.0.0.1 (DNS rebinding) sends its own
    name, and gets nothing done."""

    @web.middleware
    async def checked(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host", ""), allowed):
            response = web.json_response(
                {"error": "wrong_host", "message": "this locker does not answer to that Host;"
                 " see http.allowed_hosts"}, status=421)
            response.force_close()
            return response
        return await handler(request)

    return checked


async def add_safety_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, pages, files, JSON and refusals alike (an on_response_prepare signal)."""
    response.headers.update(SAFETY_HEADERS)


class RefusalBudget:
    """At most `per_minute` refused requests logged each minute; the rest are counted and said
    in one line when the minute is over."""

    def __init__(self, per_minute: int = REFUSALS_LOGGED_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self.minute_began = time.monotonic()
        self.logged = 0
        self.dropped = 0

    def admit(self, now: float) -> tuple[bool, int]:
        """Whether to log this refusal, and how many the minute that just ended left unlogged."""
        ended = 0
        if now - self.minute_began >= 60.0:
            ended, self.dropped, self.logged, self.minute_began = self.dropped, 0, 0, now
        if self.logged < self.per_minute:
            self.logged += 1
            return True, ended
        self.dropped += 1
        return False, ended


class AccessLog(AbstractAccessLogger):
    """One line per request: who, method, path (never the query string: it may carry a token),
    status, size and time. Refusals (4xx) are sampled by the runner's RefusalBudget, so a
    flood of bad requests writes a few lines a minute, not a hundred megabytes."""

    budget: ClassVar[RefusalBudget]

    def log(self, request: BaseRequest, response: web.StreamResponse, time_s: float) -> None:
        if 400 <= response.status < 500:
            logged, dropped = self.budget.admit(time.monotonic())
            if dropped:
                self.logger.warning("%d refused requests not logged in the last minute",
                                    dropped, extra={"refused_not_logged": dropped})
            if not logged:
                return
        path = request.rel_url.raw_path  # percent-encoded: no newline reaches the log
        self.logger.info("%s %s %s %d %dB %.1fms", request.remote, request.method, path,
                         response.status, response.body_length, time_s * 1000, extra={
                             "remote": request.remote, "method": request.method, "path": path,
                             "status": response.status, "duration_ms": round(time_s * 1000, 1)})


def access_log_class(budget: RefusalBudget) -> type[AccessLog]:
    """An access logger sharing one refusal budget (aiohttp makes one logger per connection;
    the budget is the runner's)."""
    return type("AccessLog", (AccessLog,), {"budget": budget})


def make_runner(app: web.Application, http: HttpConfig, *, access_log: bool = True,
                refusals: RefusalBudget | None = None, shutdown_timeout: float = 5.0
                ) -> web.AppRunner:
    """The runner with the config's deadlines.

    Headers: aiohttp arms its keep-alive timer when a connection opens and again after each
    answer, and closes the connection when it fires while no request's headers are complete;
    with keepalive_timeout = header_timeout_s that is the header deadline (half a request line
    sent slowly is closed then). Bodies: read_json reads under body_timeout_s; a body the
    handler did not read is not waited for (lingering_time 0: the connection closes after the
    answer when the body is incomplete).
    """
    kwargs: dict[str, Any] = {"keepalive_timeout": http.header_timeout_s,
                                 "lingering_time": 0.0}
    if access_log:
        kwargs["access_log_class"] = access_log_class(refusals or RefusalBudget())
    else:
        kwargs["access_log"] = None
    return web.AppRunner(app, shutdown_timeout=shutdown_timeout, **kwargs)


async def start_site(runner: web.AppRunner, http: HttpConfig, port: int | None = None
                     ) -> str:
    """Listen on http.host (HTTPS when the config has a certificate); returns the base URL."""
    site = web.TCPSite(runner, http.host, http.port if port is None else port,
                       ssl_context=tls_context(http))
    await site.start()
    bound = runner.addresses[-1][1] if runner.addresses else port
    host = f"[{http.host}]" if ":" in http.host else http.host
    return f"{http.scheme}://{host}:{bound}"
