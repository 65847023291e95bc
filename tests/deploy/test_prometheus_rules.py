"""The Prometheus files of deploy/prometheus/: the fleet's alert rules and the locker's agent.

Prometheus's own promtool checks the rules, runs their unit tests (locker-alerts.test.yml) and
checks the agent-mode config; .ci/run installs it (Debian package prometheus). Then: every rule
says how urgent it is and which locker, every rule fires and stays silent in the unit tests, and
every metric the rules use is one the app serves at /metrics, except the updater's, pending.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from locker.domain.clock import SimClock
from locker.domain.codes import create_keys
from locker.domain.config import load_config
from locker.domain.daemon import Locker
from locker.domain.model import Zone
from locker.domain.ports import BoardCounts
from tests.support.configs import SMALL_CONFIG, write_config
from tests.support.doubles import FakeDriver
from tests.support.paths import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "locker-alerts.yml"
RULE_TESTS = PROMETHEUS / "locker-alerts.test.yml"
AGENT = PROMETHEUS / "agent.yml"
# metrics a rule may use before api/metrics.py serves them, and who will serve them
PENDING = {"locker_update_rollbacks_total": "the updater (issue \"Fleet operations\")"}


def promtool(*args: str) -> str:
    path = shutil.which("promtool")
    assert path, ("promtool is needed: it comes with Debian's prometheus package, which .ci/run"
                  " installs (apt-get install prometheus)")
    result = subprocess.run([path, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    output = promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_the_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))


def test_promtool_accepts_the_agent_config_in_agent_mode() -> None:
    assert "SUCCESS" in promtool("check", "config", "--agent", str(AGENT.relative_to(ROOT)))


def test_the_agent_scrapes_the_locker_and_pushes_with_its_id() -> None:
    agent = yaml.safe_load(AGENT.read_text())
    assert set(agent) == {"global", "scrape_configs", "remote_write"}  # nothing agent mode lacks
    assert "locker_id" in agent["global"]["external_labels"]
    [job] = agent["scrape_configs"]
    assert job["job_name"] == "locker"  # the rules' up{job="locker"}
    assert job["scrape_interval"] == "30s" and job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    pi_config = load_config(ROOT / "deploy" / "locker.toml")
    assert (pi_config.http.host, pi_config.http.port) == ("127.0.0.1", 8080)
    assert agent["global"]["external_labels"]["locker_id"] == pi_config.locker_id
    [remote] = agent["remote_write"]
    assert remote["url"].startswith("https://")
    assert set(remote["basic_auth"]) == {"username", "password_file"}  # no password inline


def test_every_rule_says_how_urgent_and_which_locker() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) >= 11
    for rule in rules():
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        annotations = rule["annotations"]
        for key in ("summary", "description"):
            assert "{{ $labels.locker_id }}" in annotations[key], (rule["alert"], key)


def test_every_rule_fires_and_stays_silent_in_the_unit_tests() -> None:
    suite = yaml.safe_load(RULE_TESTS.read_text())
    assert suite["rule_files"] == [RULES.name]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in suite["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - fired == set(), "rules that never fire in the unit tests"
    assert names - silent == set(), "rules never shown silent in the unit tests"
    assert fired | silent <= names


def metric_names(expr: str) -> set[str]:
    """The locker_* metric names in a PromQL expression (not label names such as locker_id)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return set(re.findall(r"\blocker_[a-z_]+\b", expr))


def test_metric_names_are_read_from_expressions_only() -> None:
    assert metric_names('sum by (locker_id) (locker_ready{locker_id="x"})'
                        ' * on(instance) group_left(locker_id) locker_info') == {
        "locker_ready", "locker_info"}


class BusStandIn(FakeDriver):
    """FakeDriver that tells bus figures, as the RS485 driver does: /metrics has its boards."""

    def bus_telemetry(self) -> Mapping[str, BoardCounts]:
        return {"board 0": BoardCounts(5, 0, 0, True), "board 1": BoardCounts(5, 1, 0, False)}


class Probe:
    """A fresh zone's thermometer and compressor relay."""

    on = False

    async def read_celsius(self) -> float:
        return 3.0

    def switch(self, on: bool) -> None:
        self.on = on


async def served_metrics(tmp_path: Path) -> set[str]:
    """Every sample name GET /metrics serves on a locker with boards, a probe, central, an
    alarm: everything api/metrics.py can say."""
    path = write_config(tmp_path, SMALL_CONFIG + '\n[central]\nurl = "http://127.0.0.1:9/v1"\n'
                        'allow_insecure = true\n')
    config = load_config(path)
    assert config.central is not None
    create_keys(config)
    token = os.open(config.central.token_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(token, b"a-locker-token-of-32-characters!\n")
    os.close(token)
    config.central.command_key_file.write_bytes(
        Ed25519PrivateKey.generate().public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    clock = SimClock(start=1_800_000_000.0)
    probe = Probe()
    locker = Locker(config, BusStandIn([c.id for c in config.compartments]), clock,
                    zones={Zone.FRESH: (probe, probe)})
    async with TestClient(TestServer(create_app(locker))) as http:
        await clock.advance(60)
        with locker.store.transaction(clock.now()) as tx:
            tx.raise_alarm("zone_excursion", "fresh", "a test's excursion")
        response = await http.get("/metrics")
        assert response.status == 200
        text = await response.text()
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


async def test_every_metric_the_rules_use_is_served_at_metrics(tmp_path: Path) -> None:
    used = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert {"locker_zone_temperature_celsius", "locker_board_online",
            "locker_door_openings_total"} <= used  # the parsing finds them
    served = await served_metrics(tmp_path)
    missing = used - served - set(PENDING)
    assert missing == set(), f"the rules use metrics /metrics does not serve: {sorted(missing)}"
