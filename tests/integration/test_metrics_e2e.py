"""GET /metrics on the daemon with its real board driver, through the pseudo-terminal to the
simulated boards: transactions counted per board as they poll, a silenced board's timeouts and
its offline state, a customer's pickup counted per zone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.support.rig import Rig

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(rig: Rig) -> Samples:
    response = await rig.http.get("/metrics")
    assert response.status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def bus(samples: Samples, board: str, outcome: str) -> float:
    return samples[("locker_bus_transactions_total", (("board", board), ("outcome", outcome)))]


def online(samples: Samples, board: str) -> float:
    return samples[("locker_board_online", (("board", board),))]


async def wait_for(rig: Rig, check: Callable[[Samples], bool], timeout_s: float = 5.0
                   ) -> Samples:
    """Scrape until check(samples) holds, while the boards are polled; the last scrape."""
    samples: Samples = {}
    try:
        async with asyncio.timeout(timeout_s):
            while not check(samples := await scrape(rig)):
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"never held within {timeout_s} s; last scrape: {samples}") from None
    return samples


async def test_polling_counts_transactions_per_board(rig: Rig) -> None:
    first = await scrape(rig)
    assert online(first, "board 0") == 1 and online(first, "board 1") == 1
    later = await wait_for(rig, lambda s: all(
        bus(s, b, "ok") >= bus(first, b, "ok") + 10 for b in ("board 0", "board 1")))
    for board in ("board 0", "board 1"):
        assert bus(later, board, "failed") == 0  # no unlock to refuse, no port lost
        # a late reply on a loaded machine may cost a timeout, never a board
        assert bus(later, board, "timeout") < bus(later, board, "ok") / 10
    # the counts are the wire's: every ok transaction put at least one frame on it
    polled = [r for r in rig.driver.history() if r.direction == "tx" and r.board == 0]
    assert len(polled) >= bus(later, "board 0", "ok")


async def test_a_silent_board_times_out_and_goes_offline_while_the_other_polls_on(
        rig: Rig) -> None:
    before = await wait_for(rig, lambda s: bus(s, "board 1", "ok") > 0)
    rig.boards.set_silent(1)
    offline = await wait_for(rig, lambda s: online(s, "board 1") == 0)
    assert bus(offline, "board 1", "timeout") >= rig.driver.bus_config.offline_after
    assert offline[("locker_alarms_open", (("kind", "board_offline"), ("severity", "page")))] == 1
    assert online(offline, "board 0") == 1
    # offline, it is only probed now and then: its timeouts keep growing, slowly, and board 0's
    # polls go on unharmed
    later = await wait_for(rig, lambda s: bus(s, "board 1", "timeout")
                           > bus(offline, "board 1", "timeout"))
    assert bus(later, "board 0", "ok") > bus(before, "board 0", "ok")
    assert online(later, "board 0") == 1
    stuck = bus(later, "board 1", "ok")
    rig.boards.answer(1)
    back = await wait_for(rig, lambda s: online(s, "board 1") == 1)
    assert bus(back, "board 1", "ok") > stuck
    assert back[("locker_alarms_open", (("kind", "board_offline"), ("severity", "page")))] == 0


async def test_a_pickup_through_the_boards_counts_customer_openings(rig: Rig) -> None:
    order = rig.add("o1", "ambient:M", "frozen:M")
    status, body = await rig.pickup(order.code)
    assert status == 200, body
    await rig.until(lambda: rig.order_state("o1") == "collected")
    samples = await scrape(rig)
    for zone in ("ambient", "frozen"):
        assert samples[("locker_door_openings_total",
                        (("actor_kind", "customer"), ("zone", zone)))] == 1
    assert samples[("locker_door_openings_total",
                    (("actor_kind", "customer"), ("zone", "fresh")))] == 0
    assert samples[("locker_orders", (("state", "collected"),))] == 1
