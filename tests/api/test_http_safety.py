"""The local app is safe by default, over real HTTP: loopback unless TLS and allow_remote say
otherwise, only its own Host names, safety headers on every answer, deadlines on slow clients,
a sampled access log, and no secret in any field of any log line."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import ipaddress
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.app import create_app
from api.listener import SAFETY_HEADERS, RefusalBudget, host_allowed, make_runner, start_site
from locker.domain.clock import SimClock
from locker.domain.codes import create_keys, create_private_file
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import Locker
from locker.domain.errors import ConfigError
from locker.domain.logs import JsonFormatter, Redact
from locker.domain.orders import add_ready_order, parse_bag
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver

OPS_TOKEN = "ops-token-for-the-log-test-0123456789"


def locker_config(tmp_path: Path, http: str) -> LockerConfig:
    config = load_config(write_config(tmp_path, SMALL_CONFIG + "\n[http]\n" + http + "\n"))
    create_keys(config)
    return config


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "locker.crt", folder / "locker.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


@contextlib.asynccontextmanager
async def serving(config: LockerConfig, refusals: RefusalBudget | None = None
                  ) -> AsyncIterator[tuple[int, Locker, FakeDriver]]:
    """The daemon's own runner and site (as `locker run` starts them) on a free port."""
    driver = FakeDriver([c.id for c in config.compartments])
    locker = Locker(config, driver, SimClock())
    runner = make_runner(create_app(locker), config.http, refusals=refusals)
    await runner.setup()
    try:
        url = await start_site(runner, config.http, port=0)
        yield int(url.rsplit(":", 1)[1]), locker, driver
    finally:
        await runner.cleanup()


# -- 1. loopback unless TLS and allow_remote -----------------------------------------------------


@pytest.mark.parametrize(("http", "expected"), [
    ('host = "0.0.0.0"', r"http\.tls_cert: host '0\.0\.0\.0' is not loopback: serve it over TLS"),
    ('host = "192.168.1.20"\ntls_cert = "c.pem"\ntls_key = "k.pem"',
     r"http\.allow_remote: host '192\.168\.1\.20' is not loopback: set allow_remote = true"),
    ('host = "0.0.0.0"\nallow_remote = true', r"http\.tls_cert: host '0\.0\.0\.0' is not"),
    ('tls_cert = "c.pem"', r"http\.tls_key: TLS needs both tls_cert and tls_key"),
    ('allowed_hosts = ["localhost", 3]', r"http\.allowed_hosts: must be an array of non-empty"),
    ("header_timeout_s = 0", r"http\.header_timeout_s: must be between 0\.1 and 300"),
])
def test_a_listener_beyond_loopback_needs_tls_and_allow_remote(tmp_path: Path, http: str,
                                                               expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write_config(tmp_path, SMALL_CONFIG + "\n[http]\n" + http + "\n"))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_neither(tmp_path: Path, host: str) -> None:
    config = load_config(write_config(tmp_path, SMALL_CONFIG + f'\n[http]\nhost = "{host}"\n'))
    assert config.http.scheme == "http" and not config.http.allow_remote


async def test_an_https_listener_with_a_self_signed_certificate_answers(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config = locker_config(tmp_path, f'host = "0.0.0.0"\nallow_remote = true\n'
                                     f'tls_cert = "{cert.name}"\ntls_key = "{key.name}"\n'
                                     'allowed_hosts = ["localhost", "127.0.0.1"]')
    trust = ssl.create_default_context(cafile=str(cert))
    async with serving(config) as (port, _locker, _driver), ClientSession() as session:
        async with session.get(f"https://127.0.0.1:{port}/api/health", ssl=trust) as answer:
            assert answer.status == 200 and (await answer.json())["ready"] is True
        async with session.get(f"https://localhost:{port}/", ssl=trust) as answer:
            assert answer.status == 200
        with pytest.raises(Exception):  # noqa: B017 (plain HTTP to the TLS port: no answer)
            async with session.get(f"http://127.0.0.1:{port}/api/health") as answer:
                await answer.read()


def test_a_bad_certificate_is_a_clear_error_at_start(tmp_path: Path) -> None:
    from api.listener import tls_context

    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("nor a key")
    config = locker_config(tmp_path, 'tls_cert = "c.pem"\ntls_key = "k.pem"')
    with pytest.raises(ConfigError, match=r"http\.tls_cert .*c\.pem / http\.tls_key .*not a PEM"):
        tls_context(config.http)


# -- 2. the Host header ---------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8080", True), ("localhost", True), ("LOCALHOST:1", True), ("[::1]:8080", True),
    ("[::1]", True), ("evil.example", False), ("evil.example:8080", False), ("", False),
    ("127.0.0.1.nip.io", False), ("localhost.evil.example:80", False),
])
def test_the_default_host_names(host: str, allowed: bool) -> None:
    assert host_allowed(host, ("localhost", "127.0.0.1", "[::1]")) is allowed


def test_an_allowed_name_with_a_port_allows_that_port_only() -> None:
    assert host_allowed("locker.lan:8443", ("locker.lan:8443",))
    assert not host_allowed("locker.lan:8080", ("locker.lan:8443",))


async def test_a_request_for_another_host_is_421_and_opens_nothing(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0")
    async with serving(config) as (port, locker, driver), ClientSession() as session:
        added = add_ready_order(locker.store, config, locker.codes, locker.clock.now(), "o1",
                                [parse_bag("fresh:S")])
        url = f"http://127.0.0.1:{port}/api/pickup"
        async with session.post(url, json={"code": added.code},
                                headers={"Host": "rebound.evil.example"}) as answer:
            assert answer.status == 421
            assert (await answer.json())["error"] == "wrong_host"
        assert driver.unlocked == []
        async with session.post(url, json={"code": added.code},
                                headers={"Host": f"localhost:{port}"}) as answer:
            assert answer.status == 200
        assert driver.unlocked


async def test_a_request_without_a_host_header_is_refused(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0")
    async with serving(config) as (port, _locker, _driver):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/health HTTP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.0 421")


# -- 3. safety headers ---------------------------------------------------------------------------


async def test_every_answer_carries_the_safety_headers(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0")
    async with serving(config) as (port, _locker, _driver), ClientSession() as session:
        base = f"http://127.0.0.1:{port}"
        for method, path, headers, status in [
                ("GET", "/", {}, 200), ("GET", "/static/kiosk.js", {}, 200),
                ("GET", "/api/health", {}, 200), ("GET", "/api/nothing-here", {}, 404),
                ("POST", "/api/pickup", {}, 400), ("GET", "/api/ops/state", {}, 503),
                ("GET", "/", {"Host": "evil.example"}, 421)]:
            async with session.request(method, base + path, headers=headers) as answer:
                assert answer.status == status, path
                for name, value in SAFETY_HEADERS.items():
                    assert answer.headers.get(name) == value, (path, name)
        assert "frame-ancestors 'none'" in SAFETY_HEADERS["Content-Security-Policy"]


def test_the_pages_need_no_inline_script_or_style() -> None:
    """The CSP allows scripts and styles from /static only: an inline one would not run."""
    static = Path(__file__).resolve().parents[2] / "api" / "static"
    for page in static.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", text), page.name
        assert all('src="/static/' in tag for tag in text.split("<script")[1:]), page.name


# -- 4. slow clients -----------------------------------------------------------------------------


async def closed_after(port: int, sent: bytes, limit_s: float) -> tuple[float, bytes]:
    """Send `sent`, then nothing: how long until the server closes, and what it said."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    writer.write(sent)
    try:
        answer = await asyncio.wait_for(reader.read(), limit_s)
    finally:
        writer.close()
    return time.monotonic() - began, answer


async def test_half_a_header_is_closed_after_header_timeout_s(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0\nheader_timeout_s = 0.5")
    async with serving(config) as (port, _locker, _driver):
        took, answer = await closed_after(port, b"GET /api/health HTTP/1.1\r\nHost: 127.0", 5)
        assert answer == b"" and 0.4 < took < 2.0
        took, _ = await closed_after(port, b"", 5)  # a connection that never says anything
        assert 0.4 < took < 2.0


async def test_half_a_body_is_408_after_body_timeout_s_and_closed(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0\nbody_timeout_s = 0.5\nheader_timeout_s = 5")
    async with serving(config) as (port, locker, driver):
        add_ready_order(locker.store, config, locker.codes, locker.clock.now(), "o1",
                        [parse_bag("fresh:S")])
        head = (f"POST /api/pickup HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n")
        took, answer = await closed_after(port, head.encode() + b'{"code": "12', 5)
        assert answer.startswith(b"HTTP/1.1 408") and b"slow_body" in answer
        assert 0.4 < took < 2.0
        assert driver.unlocked == []


async def test_a_body_nobody_reads_is_not_waited_for(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0\nbody_timeout_s = 5\nheader_timeout_s = 5")
    async with serving(config) as (port, _locker, _driver):
        head = (f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Length: 1000\r\n\r\n")
        took, answer = await closed_after(port, head.encode() + b"x" * 10, 5)
        assert answer.startswith(b"HTTP/1.1 200") and took < 2.0


# -- 5. and 6. the access log --------------------------------------------------------------------


@contextlib.contextmanager
def json_log(redact: Redact) -> Iterator[io.StringIO]:
    """Every record of every logger, as the daemon writes them under systemd."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(redact)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def access_lines(out: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "aiohttp.access"]


async def test_a_flood_of_refused_requests_writes_a_few_lines(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0")
    budget = RefusalBudget()
    with json_log(Redact()) as out:
        async with serving(config, budget) as (port, _locker, _driver), ClientSession() as s:
            for _ in range(5):
                async with s.get(f"http://127.0.0.1:{port}/api/health") as answer:
                    assert answer.status == 200
            for index in range(2000):
                async with s.get(f"http://127.0.0.1:{port}/api/nope-{index}") as answer:
                    assert answer.status == 404
            budget.minute_began -= 60  # the minute is over: the next refusal says how many
            async with s.post(f"http://127.0.0.1:{port}/api/pickup", json={}) as answer:
                assert answer.status == 400
    lines = access_lines(out)
    assert len(lines) < 20
    assert sum(line.get("status") == 200 for line in lines) == 5  # accepted: every one
    assert lines[-2]["msg"] == "1990 refused requests not logged in the last minute"
    assert lines[-1]["status"] == 400


async def test_no_token_reaches_any_field_of_the_log(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0")
    create_private_file(config.ops_token_file, OPS_TOKEN)
    redact = Redact([OPS_TOKEN])
    with json_log(redact) as out:
        async with serving(config) as (port, _locker, _driver), ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            for path in (f"/api/ops/state?token={OPS_TOKEN}", f"/api/nope?t={OPS_TOKEN}",
                         f"/api/health?{OPS_TOKEN}"):
                async with session.get(base + path, headers={
                        "X-Ops-Token": OPS_TOKEN, "Authorization": f"Bearer {OPS_TOKEN}",
                        "Referer": f"http://x/?{OPS_TOKEN}"}) as answer:
                    await answer.read()
        # and whatever a logger is handed: arguments, extra fields, aiohttp's request line
        log = logging.getLogger("locker.test")
        log.info("token %s", OPS_TOKEN, extra={"first_request_line": f"GET /?t={OPS_TOKEN}",
                                               "headers": {"X-Ops-Token": OPS_TOKEN},
                                               "tokens": [OPS_TOKEN.encode()]})
        try:
            raise ValueError(f"bad token {OPS_TOKEN}")
        except ValueError:
            log.exception("failed")
    text = out.getvalue()
    assert OPS_TOKEN not in text
    assert text.count("[redacted]") >= 4
    paths = [line["path"] for line in access_lines(out)]
    assert paths == ["/api/ops/state", "/api/nope", "/api/health"]  # no query string


# -- 7. identifiers over HTTP --------------------------------------------------------------------


async def test_a_screen_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    config = locker_config(tmp_path, "port = 0")
    async with serving(config) as (port, _locker, driver), ClientSession() as session:
        for body in ({"code": "12345678906", "screen": "front\n"},
                     {"staff": "courier-1", "code": "123456", "screen": "front\n"}):
            path = "/api/pickup" if "staff" not in body else "/api/staff/login"
            async with session.post(f"http://127.0.0.1:{port}{path}", json=body) as answer:
                assert answer.status == 400, path
        assert driver.unlocked == []
