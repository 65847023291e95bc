"""The ops page an operator can work with, on 800x480 and 1024x600, in English and on a French
locker (fr-FR, Europe/Paris): the bank drawn as built on one row and reachable by keyboard, a
security alarm that stays until acknowledged with a note, a silent board's doors unknown, the
zone chart with its axes, limits and defrosts, dates in the locker's own locale and zone."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.rig import OPS_TOKEN, Rig
from tests.support.screens import as_built, shot

TEXT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "api/static/ops-text.json").read_text("utf-8"))
SIZES = [(800, 480), (1024, 600)]
LANGS = ["en", "fr"]
SCREENS = pytest.mark.parametrize(("size", "lang"), [(s, lang) for s in SIZES for lang in LANGS],
                                  ids=[f"{w}x{h}-{lang}" for w, h in SIZES for lang in LANGS])
FRENCH_DATE = re.compile(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}")  # fr-FR, 24-hour clock


def locker_in(lang: str) -> Callable[[str], str]:
    """The test locker as built, a French one in Paris for "fr"."""
    def edit(text: str) -> str:
        text = as_built(text)
        if lang == "fr":
            text = text.replace("[locker]\n", '[locker]\nlocale = "fr-FR"\n'
                                'time_zone = "Europe/Paris"\n', 1)
        return text
    return edit


@asynccontextmanager
async def ops_rig(make_rig: Callable[..., AsyncIterator[Rig]], lang: str) -> AsyncIterator[Rig]:
    async for rig in make_rig("kerong", auto_close_s=None, edit=locker_in(lang)):
        yield rig


@asynccontextmanager
async def ops_page(browser: Browser, rig: Rig, size: tuple[int, int], lang: str
                   ) -> AsyncIterator[Page]:
    width, height = size
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        base_url=str(rig.http.make_url("/")).rstrip("/"))
    page = await context.new_page()
    await page.goto("/ops")
    await page.locator("#token").fill(OPS_TOKEN)
    await page.locator("#auth button[type=submit]").click()
    await expect(page.locator("#board")).to_be_visible()
    # a French locker's page starts in French, by itself
    await expect(page.locator("#alarms").locator("..").locator("h2")).to_have_text(
        TEXT[lang]["alarms"])
    try:
        yield page
    finally:
        await context.close()


async def no_sideways_scroll(page: Page) -> None:
    wide = await page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
    past = await page.evaluate("""() => [...document.body.querySelectorAll("*")]
      .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5)
      .map((e) => `${e.tagName}#${e.id}.${e.className.baseVal ?? e.className}`).slice(0, 5)""")
    assert wide <= 0, f"the page scrolls sideways by {wide} px: {past}"


@SCREENS
async def test_a_forced_door_alarm_stays_until_an_operator_acknowledges_it(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]], size: tuple[int, int],
        lang: str) -> None:
    async with ops_rig(make_rig, lang) as rig, ops_page(browser, rig, size, lang) as page:
        rig.boards.force("A2")  # someone forces a door, and closes it again
        alarm = page.locator('#alarms li[data-kind="door_forced"]')
        await expect(alarm).to_have_attribute("data-state", "active", timeout=5000)
        await expect(alarm.locator(".badge")).to_have_text(TEXT[lang]["page"])
        rig.boards.close("A2")
        await rig.until(lambda: rig.locker.store.read().one(
            "SELECT cleared_at FROM alarms WHERE kind = 'door_forced'")["cleared_at"] is not None)
        # the door is shut, the alarm is not over: an operator must have seen it
        await expect(alarm).to_have_attribute("data-state", "awaiting_ack", timeout=5000)
        await expect(alarm).to_contain_text(TEXT[lang]["awaiting_ack"])
        if lang == "fr":
            assert FRENCH_DATE.search(await alarm.text_content() or ""), await alarm.text_content()
        await no_sideways_scroll(page)
        await shot(page, f"ops-alarm-{size[0]}x{size[1]}-{lang}")
        note = alarm.locator("input")
        await note.fill("x")  # too short: refused, nothing changes
        await alarm.locator("button").click()
        await expect(alarm).to_have_attribute("data-state", "awaiting_ack")
        await note.fill("seen on camera: a courier who lost his code")
        await alarm.locator("button").click()
        await expect(alarm).to_have_count(0)
        acked = [e for e in rig.locker.store.events() if e.kind == "alarm.acknowledged"]
        assert len(acked) == 1 and acked[0].payload["note"].startswith("seen on camera")
        assert acked[0].payload["closed"] is True
        assert acked[0].payload["alarm_kind"] == "door_forced"


@SCREENS
async def test_the_bank_as_built_on_one_row_reached_by_keyboard(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]], size: tuple[int, int],
        lang: str) -> None:
    async with ops_rig(make_rig, lang) as rig, ops_page(browser, rig, size, lang) as page:
        boxes = {cid: await page.locator(f'.cell[data-id="{cid}"]').bounding_box()
                 for cid in ("A1", "A2", "F1", "F2", "Z1", "Z2")}
        assert all(boxes.values())
        tops = {level: {round(boxes[f"{z}{level}"]["y"]) for z in "AFZ"} for level in (1, 2)}
        assert all(len(t) == 1 for t in tops.values()), tops  # each level on one row
        assert tops[2].pop() < tops[1].pop()  # level 1 at the bottom
        lefts = [boxes[c]["x"] for c in ("A1", "F1", "Z1")]
        assert lefts == sorted(lefts)  # the columns in order, side by side
        await no_sideways_scroll(page)
        # a compartment out of service says why in words, not in a tooltip
        response = await rig.http.post("/api/ops/compartments/F2/service",
                                       json={"in_service": False, "reason": "seal torn"},
                                       headers={"X-Ops-Token": OPS_TOKEN})
        assert response.status == 200, await response.text()
        await expect(page.locator('.cell[data-id="F2"] .reason')).to_have_text("seal torn")
        # by keyboard alone: Tab to a compartment, Enter chooses it
        await page.locator("#lang-fr").focus()
        for _ in range(6):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.classList.contains('cell')"):
                break
        chosen = await page.evaluate("document.activeElement.dataset.id")
        assert chosen, "no compartment reached by Tab"
        await page.keyboard.press("Enter")
        await expect(page.locator("#selected")).to_have_text(
            TEXT[lang]["compartment"].format(id=chosen))
        await expect(page.locator(f'.cell[data-id="{chosen}"]')).to_have_attribute(
            "aria-pressed", "true")
        await shot(page, f"ops-bank-{size[0]}x{size[1]}-{lang}")


@SCREENS
async def test_a_silent_boards_doors_read_unknown(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]], size: tuple[int, int],
        lang: str) -> None:
    async with ops_rig(make_rig, lang) as rig, ops_page(browser, rig, size, lang) as page:
        await expect(page.locator('.cell[data-id="Z1"]')).to_have_attribute("data-door", "locked")
        rig.boards.set_silent(1)  # Z1 and Z2 are on board 1
        await rig.until(lambda: bool(rig.locker.monitor.offline_boards), timeout_s=10)
        await page.reload()  # the token is kept for the tab: the page opens by itself
        await expect(page.locator("#board")).to_be_visible()
        for cid in ("Z1", "Z2"):
            cell = page.locator(f'.cell[data-id="{cid}"]')
            await expect(cell).to_have_attribute("data-door", "unknown", timeout=5000)
            await expect(cell).to_contain_text(TEXT[lang]["door_unknown"])
        await expect(page.locator('.cell[data-id="A1"]')).to_have_attribute("data-door", "locked")
        await shot(page, f"ops-silent-board-{size[0]}x{size[1]}-{lang}")


@SCREENS
async def test_the_zone_chart_has_axes_limits_and_defrosts(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]], size: tuple[int, int],
        lang: str) -> None:
    async with ops_rig(make_rig, lang) as rig:
        now = rig.locker.clock.now()
        with rig.locker.store.transaction(now) as tx:  # a day of record, a defrost every 6 h
            for i in range(288):
                at, defrost = now - 86400 + (i + 1) * 300, int(i % 72 < 4)
                tx.execute("INSERT INTO temperatures (zone, at, celsius, compressor, defrosting)"
                           " VALUES ('fresh', ?, ?, 0, 0), ('frozen', ?, ?, 0, ?)",
                           (at, 2.5 + (i % 12) / 10, at, -16.0 if defrost else -20.5, defrost))
        async with ops_page(browser, rig, size, lang) as page:
            await expect(page.locator('polyline[data-zone="fresh"]')).to_have_count(1)
            await expect(page.locator('polyline[data-zone="frozen"]')).to_have_count(1)
            # fresh 0 and +4 °C, frozen -18 °C: each limit a dashed line of its zone
            await expect(page.locator('#temps line.limit[data-zone="fresh"]')).to_have_count(2)
            await expect(page.locator('#temps line.limit[data-zone="frozen"]')).to_have_count(1)
            await expect(page.locator("#temps rect.defrost")).to_have_count(16)
            await expect(page.locator("#temps .axis").filter(has_text="°C")).not_to_have_count(0)
            times = page.locator("#temps text.axis").filter(has_text=re.compile(r"^\d{2}:\d{2}$"))
            await expect(times).to_have_count(5)  # the time axis, 24-hour in both locales here
            await expect(page.locator('.zone-now[data-zone="ambient"]')).to_have_text(
                re.compile(TEXT[lang]["not_monitored"]))
            box = await page.locator("#temps svg").bounding_box()
            assert box is not None and box["width"] > 0.8 * size[0] - 100
            await no_sideways_scroll(page)
            await shot(page, f"ops-chart-{size[0]}x{size[1]}-{lang}")
