"""A collected order's cold-chain certificate: its figures, its signature, its page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from locker.cli import main
from locker.domain import certificates, haccp
from locker.domain.certificate_html import render_html
from locker.domain.clock import SimClock
from locker.domain.daemon import Locker
from locker.domain.orders import add_ready_order, parse_bag
from tests.support.doubles import FakeDriver


def readings(locker: Locker, start: float, values: list[float | None], zone: str = "fresh",
             defrost_at: tuple[int, ...] = ()) -> None:
    key = haccp.load_record_key(locker.config.record_key_file)
    for i, celsius in enumerate(values):
        with locker.store.transaction(start + i * 300) as tx:
            haccp.record(tx, key, locker.config.locker_id, zone, celsius, True,
                         i in defrost_at, 0)


async def test_the_certificate_says_what_the_bag_lived_through_and_is_signed(
        rig: tuple[Locker, FakeDriver, SimClock]) -> None:
    locker, driver, clock = rig
    start = clock.now()
    added = add_ready_order(locker.store, locker.config, locker.codes, start, "o1",
                            [parse_bag("fresh:M")])
    # two hours at 3 °C, with ten minutes at 5.5 °C (two readings) and one probe fault
    values: list[float | None] = [3.0] * 24
    values[6] = values[7] = 5.5
    values[10] = None
    readings(locker, start + 1, values)
    clock.step(24 * 300 + 60)
    result = await locker.pickup.collect(added.code)
    (door,) = result.opened
    driver.open(door.compartment_id)
    driver.close(door.compartment_id)
    collected = [e for e in locker.store.events() if e.kind == "order.collected"]
    assert len(collected) == 1
    sent = collected[0].payload["certificate"]
    body, signature = sent["certificate"], sent["signature"]
    public = haccp.load_record_key(locker.config.record_key_file).public_key()
    assert haccp.signed(public, body.encode("utf-8"), signature)
    assert not haccp.signed(public, body.replace("5.5", "4.5").encode("utf-8"), signature)
    data = json.loads(body)
    assert data["order"] == "o1" and data["final"] and data["locker"] == locker.config.locker_id
    (part,) = data["compartments"]
    assert part["compartment"] == door.compartment_id and part["zone"] == "fresh"
    assert part["readings"] == 24 and part["probe_faults"] == 1
    assert part["min_c"] == 3.0 and part["max_c"] == 5.5
    assert part["mean_c"] == pytest.approx((21 * 3.0 + 11.0) / 23, abs=0.01)
    assert part["minutes_above"] == 10.0 and part["minutes_below"] == 0.0
    assert part["door_openings"] == 1  # the pickup's
    assert part["limits"] == {"min_c": 0.0, "max_c": 4.0, "tolerated_max_c": None}
    assert len(part["curve"]) == 24 and part["curve"][10] == [3001, None]
    assert data["record"]["first_row"] == 1 and data["record"]["last_row"] == 24
    # kept with the order: the command prints this very text
    assert certificates.kept(locker.store.read(), "o1") == certificates.Certificate(body,
                                                                                    signature)
    page = render_html(certificates.Certificate(body, signature))
    assert "<polyline" in page and "outside its limits for 10 min" in page
    assert "limit 4 °C" in page and "last calibrated: not recorded" in page


async def test_a_frozen_bag_counts_defrosts_and_tolerates_their_short_rise(
        rig: tuple[Locker, FakeDriver, SimClock]) -> None:
    locker, _, clock = rig
    start = clock.now()
    add_ready_order(locker.store, locker.config, locker.codes, start, "o2",
                    [parse_bag("frozen:S")])
    values: list[float | None] = [-20.0] * 12
    values[3], values[4] = -16.0, -14.0  # a defrost's rise, then one above the tolerated -15
    readings(locker, start + 1, values, zone="frozen", defrost_at=(3, 4))
    clock.step(12 * 300)
    certificate = certificates.provisional(locker.store.read(), locker.config, "o2",
                                           clock.now())
    (part,) = certificate.data["compartments"]
    assert not certificate.data["final"]
    assert part["defrosts"] == 1 and part["minutes_above"] == 5.0 and part["max_c"] == -14.0


async def test_a_long_stay_keeps_the_curve_short(rig: tuple[Locker, FakeDriver, SimClock]
                                                 ) -> None:
    """Three days inside: every reading counts in the figures, the curve keeps the warmest of
    each stretch, so the certificate stays a few kilobytes for central."""
    locker, _, clock = rig
    start = clock.now()
    add_ready_order(locker.store, locker.config, locker.codes, start, "o3",
                    [parse_bag("fresh:M")])
    values: list[float | None] = [3.0] * (3 * 288)
    values[500] = 4.6
    readings(locker, start + 1, values)
    clock.step(3 * 86400)
    certificate = certificates.provisional(locker.store.read(), locker.config, "o3",
                                           clock.now())
    (part,) = certificate.data["compartments"]
    assert part["readings"] == 864 and part["max_c"] == 4.6
    assert len(part["curve"]) <= certificates.CURVE_POINTS
    assert max(v for _, v in part["curve"]) == 4.6
    assert len(certificate.body) < 8000


async def test_the_command_prints_it_and_writes_the_page(
        rig: tuple[Locker, FakeDriver, SimClock], config_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    locker, _, clock = rig
    add_ready_order(locker.store, locker.config, locker.codes, clock.now(), "o4",
                    [parse_bag("fresh:M")])
    readings(locker, clock.now() + 1, [3.0] * 6)
    clock.step(1800)
    page = tmp_path / "o4.html"
    assert main(["haccp", "certificate", "--config", str(config_path), "o4",
                 "--html", str(page)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(printed["certificate"])["order"] == "o4" and printed["signature"]
    assert "Cold-chain certificate, order o4" in page.read_text()
    assert main(["haccp", "certificate", "--config", str(config_path), "nope"]) == 2
