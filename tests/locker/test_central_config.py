"""The [central] table of the config, the locker's central token file, the TLS context and the
retry backoff: every mistake is refused at start with the file, the key and why."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.central import Backoff, load_token, tls_context
from locker.domain.config import CentralConfig, load_config
from locker.domain.errors import ConfigError
from tests.support.configs import SMALL_CONFIG, write_config

TOKEN = "tok_" + "a1B2c3D4e5F6g7H8i9J0" * 2  # 44 printable characters, no spaces


def with_central(tmp_path: Path, table: str) -> Path:
    return write_config(tmp_path, SMALL_CONFIG + "\n[central]\n" + table + "\n")


# -- the [central] table -------------------------------------------------------------------------


def test_no_central_table_means_no_sync(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path)).central is None


def test_only_a_url_gives_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(with_central(tmp_path, 'url = "https://central.example.com/v1/"'))
    central = config.central
    assert central is not None
    data_dir = (tmp_path / "data").resolve()
    assert config.data_dir == data_dir
    assert central.url == "https://central.example.com/v1"  # the trailing slash goes
    assert central.token_file == data_dir / "central.token"
    assert central.command_key_file == data_dir / "central-commands.pub"
    assert central.ca_file is None  # the system's CAs
    defaults = CentralConfig("x", Path(), Path())
    for name in ("poll_wait_s", "batch_size", "heartbeat_s", "request_timeout_s",
                 "backoff_min_s", "backoff_max_s", "outage_alarm_s", "offline_hold_h",
                 "outbox_max_events", "remote_opens_burst", "remote_opens_per_hour"):
        assert getattr(central, name) == getattr(defaults, name), name
    assert (central.poll_wait_s, central.heartbeat_s, central.batch_size,
            central.outbox_max_events) == (120.0, 300.0, 100, 50_000)


def test_with_the_defaults_a_dead_link_fails_a_call_before_the_outage_alarm_is_due() -> None:
    """The long poll and the heartbeat were made rare to save bytes; an outage is still counted
    from a failed call, so each loop must fail (give up its wait) before outage_alarm_s."""
    defaults = CentralConfig("x", Path(), Path())
    assert defaults.poll_wait_s + defaults.request_timeout_s < defaults.outage_alarm_s
    assert defaults.heartbeat_s <= defaults.outage_alarm_s


def test_files_are_placed_where_the_docs_say(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """token_file and command_key_file live in data_dir; ca_file is relative to the config's
    folder, wherever the daemon was started from."""
    folder = tmp_path / "etc"
    folder.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = with_central(folder, '\n'.join([
        'url = "http://127.0.0.1:9000/v1"', "allow_insecure = true",
        'token_file = "secrets/central.token"',
        'command_key_file = "keys/central.pub"',
        'ca_file = "certs/central-ca.pem"']))
    config = load_config(path)
    central = config.central
    assert central is not None
    data_dir = (folder / "data").resolve()
    assert central.token_file == data_dir / "secrets" / "central.token"
    assert central.command_key_file == data_dir / "keys" / "central.pub"
    assert central.ca_file == (folder / "certs" / "central-ca.pem").resolve()
    assert central.ca_file.is_absolute()
    assert not str(central.ca_file).startswith(str(elsewhere.resolve()))


def test_tuned_values_are_read(tmp_path: Path) -> None:
    central = load_config(with_central(tmp_path, '\n'.join([
        'url = "https://c.example.com/v1"', "poll_wait_s = 30", "batch_size = 500",
        "backoff_min_s = 2", "backoff_max_s = 2", "outbox_max_events = 100",
        "remote_opens_burst = 1"]))).central
    assert central is not None
    assert (central.poll_wait_s, central.batch_size, central.backoff_min_s,
            central.backoff_max_s, central.outbox_max_events, central.remote_opens_burst) == (
        30.0, 500, 2.0, 2.0, 100, 1)


URL = 'url = "https://central.example.com/v1"'


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("poll_wait_s = 5", r"central\.url: is required"),
        ('url = ""', r"central\.url: must not be empty"),
        ('url = "central.example.com/v1"', r"central\.url: must be https://host"),
        ('url = "ftp://central.example.com/v1"', r"central\.url: must be https://host"),
        ('url = "https://"', r"central\.url: must be https://host"),
        ("url = 443", r"central\.url: must be a string, not int 443"),
        ('url = "http://central.example.com/v1"',
         r"central\.url: 'http://central\.example\.com/v1' is not https: use https://, or on a"
         r" test bench set central\.allow_insecure = true"),
        ('url = "http://central.example.com/v1"\nallow_insecure = "yes"',
         r"central\.allow_insecure: must be true or false"),
        (URL + '\ncafile = "ca.pem"', r"central\.cafile: unknown key"),
        (URL + "\npoll_wait_s = 301",
         r"central\.poll_wait_s: must be between 0 and 300, not 301"),
        (URL + "\npoll_wait_s = -1", r"central\.poll_wait_s: must be between 0 and 300"),
        (URL + "\nbatch_size = 0", r"central\.batch_size: must be between 1 and 500, not 0"),
        (URL + "\nbatch_size = 501", r"central\.batch_size: must be between 1 and 500"),
        (URL + "\nbatch_size = 2.5", r"central\.batch_size: must be an integer, not float"),
        (URL + "\nbackoff_min_s = 5\nbackoff_max_s = 2",
         r"central\.backoff_max_s: must not be below backoff_min_s"),
        (URL + "\nbackoff_min_s = 0", r"central\.backoff_min_s: must be between 0\.05 and 60"),
        (URL + "\noutbox_max_events = 10",
         r"central\.outbox_max_events: must be between 100 and 10000000, not 10"),
        (URL + '\nremote_opens_burst = "3"',
         r"central\.remote_opens_burst: must be an integer, not str '3'"),
        (URL + "\nremote_opens_burst = true",
         r"central\.remote_opens_burst: must be an integer, not True"),
        (URL + '\nheartbeat_s = "60"', r"central\.heartbeat_s: must be a number, not str"),
        (URL + '\nca_file = ""', r"central\.ca_file: must not be empty"),
        (URL + "\nca_file = 1", r"central\.ca_file: must be a string, not int"),
        (URL + "\ntoken_file = false", r"central\.token_file: must be a string, not False"),
    ],
)
def test_a_wrong_central_table_names_the_key_and_the_reason(tmp_path: Path, table: str,
                                                             expected: str) -> None:
    path = with_central(tmp_path, table)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_central_must_be_a_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'central = "https://c.example.com"\n' + SMALL_CONFIG)
    with pytest.raises(ConfigError, match=r"central: must be a table"):
        load_config(path)


# -- the token file ------------------------------------------------------------------------------


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def test_a_token_is_read_from_a_private_file_and_stripped(tmp_path: Path) -> None:
    assert load_token(private(tmp_path / "central.token", f"  {TOKEN}\n")) == TOKEN


def test_a_missing_token_file_says_what_to_put_there(tmp_path: Path) -> None:
    path = tmp_path / "central.token"
    with pytest.raises(ConfigError, match="no central token") as caught:
        load_token(path)
    assert str(path) in str(caught.value) and "mode 600" in str(caught.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_token_others_can_read_is_refused_with_the_chmod_hint(tmp_path: Path,
                                                                 mode: int) -> None:
    path = private(tmp_path / "central.token", TOKEN)
    os.chmod(path, mode)
    with pytest.raises(ConfigError, match="readable by other users") as caught:
        load_token(path)
    assert f"chmod 600 {path}" in str(caught.value)


@pytest.mark.parametrize("text", ["", "short-token", "x" * 23, "a" * 12 + " " + "b" * 12,
                                  "a" * 20 + "\x07" + "b" * 10])
def test_what_is_not_a_token_is_refused(tmp_path: Path, text: str) -> None:
    path = private(tmp_path / "central.token", text)
    with pytest.raises(ConfigError, match="not a central token") as caught:
        load_token(path)
    assert str(path) in str(caught.value)


def test_a_token_that_is_not_ascii_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "central.token"
    path.write_bytes("jeton-é".encode() * 8)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="cannot read the central token"):
        load_token(path)


# -- TLS -----------------------------------------------------------------------------------------


def central_config(url: str, ca_file: Path | None = None) -> CentralConfig:
    return CentralConfig(url, Path("token"), Path("key"), ca_file=ca_file)


def test_plain_http_has_no_tls_context() -> None:
    assert tls_context(central_config("http://127.0.0.1:9000/v1")) is None


def test_https_verifies_the_certificate_and_the_host_name() -> None:
    import ssl

    context = tls_context(central_config("https://central.example.com/v1"))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_a_ca_file_that_cannot_be_loaded_is_a_config_error(tmp_path: Path,
                                                           content: str | None) -> None:
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_text(content)
    with pytest.raises(ConfigError, match="cannot load the CA for central") as caught:
        tls_context(central_config("https://central.example.com/v1", ca))
    assert str(ca) in str(caught.value)


# -- backoff -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(low=st.floats(0.05, 60), spread=st.floats(1, 100), failures=st.integers(1, 60),
       seed=st.integers(0, 2**32))
def test_backoff_delays_stay_between_low_and_high(low: float, spread: float, failures: int,
                                                  seed: int) -> None:
    random.seed(seed)
    high = low * spread
    backoff = Backoff(low, high)
    for n in range(1, failures + 1):
        delay = backoff.next_delay()
        assert low <= delay <= high
        assert delay <= low * 2 ** n + 1e-9  # full jitter under an exponential ceiling


def test_backoff_grows_to_its_ceiling_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    random.seed(1234)
    backoff = Backoff(0.5, 300.0)
    means = []
    for _ in range(12):  # the average delay over many draws at each failure count
        draws = []
        for _ in range(400):
            saved = backoff.failures
            draws.append(backoff.next_delay())
            backoff.failures = saved
        backoff.failures += 1
        means.append(sum(draws) / len(draws))
    uncapped, capped = means[:9], means[9:]  # 0.5 * 2 ** 9 = 256 < 300 <= 0.5 * 2 ** 10
    assert uncapped == sorted(uncapped) and uncapped[0] < 1.0
    assert all(130 < m < 170 for m in capped)  # full jitter over [0.5, 300]: about 150 s

    # the ceiling itself: with uniform() answering its upper bound, the delays double, then cap
    monkeypatch.setattr(random, "uniform", lambda a, b: b)
    backoff = Backoff(0.5, 300.0)
    delays = [backoff.next_delay() for _ in range(15)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays == sorted(delays) and delays[-1] == 300.0
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_backoff_of_a_locker_offline_long_enough_for_a_thousand_failures() -> None:
    """At backoff_max_s = 300, about 1024 failures in a row is a weekend offline. The config
    reads every number as a float, so the ceiling low * 2 ** failures must not overflow."""
    backoff = Backoff(1.0, 300.0)
    backoff.failures = 1100
    assert 1.0 <= backoff.next_delay() <= 300.0
    backoff = Backoff(0.05, 0.3)
    assert all(0.05 <= backoff.next_delay() <= 0.3 for _ in range(5000))
