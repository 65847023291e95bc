"""The alarm declaration: every alarm the code raises is declared with its severity, the
Prometheus rules page or ticket it as declared, and a security alarm stays open until an
operator acknowledges it with a note."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from locker.domain import alarms
from locker.domain.errors import Refused
from locker.domain.store import Store
from tests.support.paths import ROOT


def raised_kinds() -> dict[str, str]:
    """Every alarm kind the code raises by name: `raise_alarm("kind", ...)`, and the values of
    module tables of kinds (attempts.ALARMS) and literals returned for a raise (the store's)."""
    found: dict[str, str] = {}
    for path in sorted([*(ROOT / "locker").rglob("*.py"), *(ROOT / "api").rglob("*.py")]):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "raise_alarm" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.setdefault(node.args[0].value, f"{path.relative_to(ROOT)}:{node.lineno}")
    from locker.domain.attempts import ALARMS as SCOPE_ALARMS  # raised by scope, through a table

    for kind in SCOPE_ALARMS.values():
        found.setdefault(kind, "locker/domain/attempts.py ALARMS")
    for kind in ("disk_full", "store_unwritable"):  # locker/domain/daemon.py _unwritable_kind
        found.setdefault(kind, "locker/domain/daemon.py")
    return found


def test_every_alarm_the_code_raises_is_declared() -> None:
    raised = raised_kinds()
    assert len(raised) > 15
    missing = {k: where for k, where in raised.items() if k not in alarms.ALARMS}
    assert missing == {}, f"declare these in locker/domain/alarms.py: {missing}"


def test_the_prometheus_rules_page_and_ticket_each_alarm_as_declared() -> None:
    rules = [rule for group in yaml.safe_load(
        (ROOT / "deploy/prometheus/locker-alerts.yml").read_text("utf-8"))["groups"]
        for rule in group["rules"] if "locker_alarms_open" in rule["expr"]]
    for kind, declared in alarms.ALARMS.items():
        covering = []
        for rule in rules:
            expr = rule["expr"]
            own = f'kind="{kind}"' in expr
            generic = (f'severity="{declared.severity}"' in expr and "kind=" not in expr.replace(
                "kind!~", "").replace("kind!=", "") and kind not in expr)
            if own or generic:
                covering.append(rule)
        assert covering, f"no rule alerts on {kind}"
        for rule in covering:
            assert rule["labels"]["severity"] == declared.severity, (kind, rule["alert"])


def test_a_security_alarm_stays_open_until_acknowledged(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with store.transaction(100.0) as tx:
        tx.raise_alarm("door_forced", "A2", "compartment A2 opened without authorisation")
        tx.raise_alarm("door_left_open", "F1", "F1 open for 3 minutes")
    with store.transaction(102.0) as tx:  # both conditions pass: the doors close
        tx.clear_alarm("door_forced", "A2", "A2 closed")
        tx.clear_alarm("door_left_open", "F1", "F1 closed")
    still = alarms.open_alarms(store.read())
    assert [(a["kind"], a["state"], a["severity"]) for a in still] == [
        ("door_forced", "awaiting_ack", "page")]
    forced = still[0]["id"]
    with pytest.raises(Refused, match="characters"), store.transaction(103.0) as tx:
        alarms.acknowledge(tx, forced, "  ", "ops")
    with pytest.raises(Refused, match="no alarm"), store.transaction(103.0) as tx:
        alarms.acknowledge(tx, 999, "seen on camera", "ops")
    with store.transaction(104.0) as tx:
        answer = alarms.acknowledge(tx, forced, "seen on camera: the courier", "ops:Sam")
    assert answer == {"alarm": forced, "acknowledged": True, "closed": True}
    assert alarms.open_alarms(store.read()) == []
    event = next(e for e in store.events() if e.kind == "alarm.acknowledged")
    assert event.payload["actor"] == "ops:Sam" and event.payload["alarm_kind"] == "door_forced"
    with pytest.raises(Refused, match="already"), store.transaction(105.0) as tx:
        alarms.acknowledge(tx, forced, "again", "ops")


def test_an_undeclared_alarm_is_a_bug(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with pytest.raises(KeyError, match="not declared"), store.transaction(1.0) as tx:
        tx.raise_alarm("made_up", "x", "nothing")
