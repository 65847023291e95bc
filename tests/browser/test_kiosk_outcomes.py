"""The customer's screen tells the truth about every door, on the two landscape panels it is
laid out for, in both languages: a door that opened and closed, one that did not unlock, one
that was unlocked but stayed shut, a bag kept back for the cold chain; the support number on
one line and the order to quote; "done" once every door is closed, then back to the start. And
the code field keeps the focus, an empty OK changes nothing, the keypad is locked while codes
are judged slowly, and the page's labels follow the language."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from locker.domain.model import Zone
from locker.domain.zones import Decision
from tests.support.codes import a_wrong_code
from tests.support.rig import Rig
from tests.support.screens import (
    KIOSK_PHONE,
    KIOSK_TEXT,
    ON_EACH_PANEL,
    as_built,
    kiosk,
    misfits,
    shot,
    type_code,
)

TEXT = KIOSK_TEXT
SCREENS = ON_EACH_PANEL
PHONE = KIOSK_PHONE


def words(lang: str, key: str, **values: object) -> str:
    text: Any = TEXT[lang]
    for part in key.split("."):
        text = text[part]
    return str(text).format(**{"phone": PHONE, "n": 11, **values})


@pytest.fixture
async def quiet_rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    """Doors nobody closes by themselves: the test moves each one."""
    async for rig in make_rig("kerong", auto_close_s=None, edit=as_built):
        yield rig


@SCREENS
async def test_each_door_says_what_became_of_it(browser: Browser, quiet_rig: Rig,
                                                size: tuple[int, int], lang: str) -> None:
    rig = quiet_rig
    order = rig.add("o1", "ambient:S", "fresh:S")  # A1 and F1
    doors = {cid[0]: cid for cid, _ in order.compartments}
    rig.boards.jam(doors["F"])  # unlocked, but its door stays shut (a bag caught in it)
    async with kiosk(browser, rig, size, lang) as page:
        await type_code(page, order.code)
        await expect(page.locator("#doors li")).to_have_count(2)
        state = lambda cid: page.locator(f'#doors li[data-id="{cid}"]')  # noqa: E731
        rig.boards.open(doors["A"])
        await expect(state(doors["A"])).to_have_attribute("data-state", "opened")
        await expect(page.locator(f'#bank [data-id="{doors["A"]}"]')).to_have_attribute(
            "data-state", "opened")
        rig.boards.close(doors["A"])
        await expect(state(doors["A"])).to_have_attribute("data-state", "closed")
        await expect(state(doors["A"])).to_contain_text(TEXT[lang]["closed"])
        # the locker gives up on F1 after doors.open_timeout_s (2 s here): jammed, said so
        await expect(state(doors["F"])).to_have_attribute("data-state", "jammed", timeout=8000)
        note = page.locator("#result-note")
        await expect(note).to_have_text(words(lang, "trouble_jammed", c=doors["F"]))
        await expect(note).to_have_class("bad")
        await expect(page.locator("#result-title")).to_have_text(TEXT[lang]["trouble_title"])
        await expect(page.locator("#result-ref")).to_have_text(words(lang, "reference",
                                                                     order="o1"))
        assert PHONE in (await note.text_content() or "")  # the number never breaks
        assert await misfits(page) == [], size
        await shot(page, f"customer-jammed-{size[0]}x{size[1]}-{lang}")
        # the next customer scans at once: a new code from this screen; Z1's latch does not
        # move and its board's answers are lost, so the locker knows it did not unlock
        other = rig.add("o1b", "frozen:M")
        rig.boards.lock_fault("Z1")
        rig.boards.lose_unlock_replies(1, replies=2)
        await type_code(page, other.code)
        await expect(state("Z1")).to_have_attribute("data-state", "did_not_unlock",
                                                    timeout=5000)
        await expect(state("Z1")).to_contain_text(TEXT[lang]["did_not_unlock"])
        await expect(page.locator('#bank [data-id="Z1"]')).to_have_attribute(
            "data-state", "did_not_unlock")
        await expect(note).to_have_text(words(lang, "trouble_unlock", c="Z1"))
        await expect(page.locator("#result-ref")).to_have_text(words(lang, "reference",
                                                                     order="o1b"))
        assert await misfits(page) == [], size
        await shot(page, f"customer-did-not-unlock-{size[0]}x{size[1]}-{lang}")


@SCREENS
async def test_done_when_every_door_is_closed_then_back_to_the_start(
        browser: Browser, quiet_rig: Rig, size: tuple[int, int], lang: str) -> None:
    rig = quiet_rig
    order = rig.add("o2", "ambient:S", "frozen:M")
    async with kiosk(browser, rig, size, lang) as page:
        await page.locator("#code").fill(order.code)
        await page.locator("#ok").click()
        await expect(page.locator("#result-title")).to_have_text(TEXT[lang]["open_title"])
        await expect(page.locator("#result-note")).to_have_text(TEXT[lang]["close"])
        for cid, _ in order.compartments:
            rig.boards.open(cid)
        for cid, _ in order.compartments:
            rig.boards.close(cid)
        await expect(page.locator("#result-title")).to_have_text(TEXT[lang]["done_title"])
        await expect(page.locator("#result-note")).to_have_text(TEXT[lang]["done"])
        await expect(page.locator("#result-ref")).to_be_hidden()
        assert await misfits(page) == [], size
        await shot(page, f"customer-done-{size[0]}x{size[1]}-{lang}")
        # nothing left for the next person to read: the start again, after a few seconds
        await expect(page.locator("#start")).to_be_visible(timeout=8000)
        await expect(page.locator("#code")).to_be_focused()
        await expect(page.locator("#doors li")).to_have_count(0)


@SCREENS
async def test_the_code_field_keeps_the_focus_and_refusals_say_what_to_do(
        browser: Browser, rig: Rig, size: tuple[int, int], lang: str) -> None:
    order = rig.add("o3", "fresh:S")
    async with kiosk(browser, rig, size, lang) as page:
        wrong = order.code[:-2] + ("0" if order.code[-2] != "0" else "1") + order.code[-1]
        for digit in wrong:  # tapped on the keypad, then OK: the focus goes back to the field
            await page.get_by_role("button", name=digit, exact=True).click()
        await page.locator("#ok").click()
        answer = page.locator("#answer")
        await expect(answer).not_to_be_empty()
        refusal = await answer.text_content()
        assert refusal in (words(lang, "refusals.check_the_code"),
                           words(lang, "refusals.wrong_code"))
        await expect(page.locator("#code")).to_be_focused()
        await page.locator("#ok").click()  # an empty OK (a scan's stray Enter) changes nothing
        await expect(answer).to_have_text(refusal or "")
        await page.keyboard.press("Enter")
        await expect(answer).to_have_text(refusal or "")
        await expect(page.locator("#code")).to_be_focused()
        # the page's own labels follow the language
        assert await page.title() == TEXT[lang]["title"]
        await expect(page.locator("#form")).to_have_attribute("aria-label", TEXT[lang]["keypad"])
        pressed = page.locator(f"#lang-{lang}")
        await expect(pressed).to_have_attribute("aria-pressed", "true")
        await expect(page.locator(f"#lang-{'fr' if lang == 'en' else 'en'}")).to_have_attribute(
            "aria-pressed", "false")
        assert await misfits(page) == [], size
        await type_code(page, order.code)  # a scan after all that lands and opens
        await expect(page.locator("#doors li")).to_have_count(1)


@SCREENS
async def test_the_keypad_is_locked_while_codes_are_judged_slowly(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]], size: tuple[int, int],
        lang: str) -> None:
    def slow_3_s(text: str) -> str:  # 3 s, not 10-30 s, for the test's sake
        return text.replace("first_delay_s = 10", "first_delay_s = 3").replace(
            "max_delay_s = 30", "max_delay_s = 3")

    async for rig in make_rig("kerong", auto_close_s=1.0, edit=slow_3_s):
        order = rig.add("o4", "fresh:S")
        async with kiosk(browser, rig, size, lang) as page:
            for n in range(3):  # a guesser, just before: two free wrong codes, then 3 s
                assert (await rig.pickup(a_wrong_code(order.code), screen=f"x{n}"))[0] == 403
            await page.locator("#code").fill(order.code)
            await page.locator("#ok").click()
            over = page.locator("#wait-over")
            await expect(over).to_be_visible()
            await expect(over).to_contain_text(" s")
            await expect(page.locator("#ok")).to_be_disabled()
            await expect(page.get_by_role("button", name="5", exact=True)).to_be_disabled()
            assert await page.locator("#code").get_attribute("readonly") is not None
            assert await misfits(page) == [], size
            await shot(page, f"customer-slowed-{size[0]}x{size[1]}-{lang}")
            # the kept code goes again by itself when the wait is over, and opens
            await expect(page.locator("#doors li")).to_have_count(1, timeout=10000)
            await page.locator("#back").click()
            await expect(page.locator("#ok")).to_be_enabled()
            await expect(over).to_be_hidden()


@SCREENS
async def test_a_bag_kept_back_for_the_cold_chain_is_explained(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]], size: tuple[int, int],
        lang: str) -> None:
    def withhold(text: str) -> str:
        return as_built(text) + ('\n[coldchain]\non_excursion = "withhold"\n'
                                 "[zones.fresh]\ngrace_s = 0\n")

    async for rig in make_rig("kerong", auto_close_s=1.0, edit=withhold):
        order = rig.add("o5", "ambient:S", "fresh:S")
        fresh = next(cid for cid, _ in order.compartments if cid.startswith("F"))
        # the fresh zone reads 7.5 °C: an excursion at once (grace 0) flags the order
        rig.locker.coldchain.observe(Zone.FRESH, 7.5, Decision(True, False, False, False, ""))
        assert rig.locker.store.read().one("SELECT 1 AS flagged FROM order_flags") is not None
        async with kiosk(browser, rig, size, lang) as page:
            await type_code(page, order.code)
            kept = page.locator(f'#doors li[data-id="{fresh}"]')
            await expect(kept).to_have_attribute("data-state", "kept")
            await expect(kept).to_contain_text(TEXT[lang]["kept"])
            await expect(page.locator(f'#bank [data-id="{fresh}"]')).to_have_attribute(
                "data-state", "kept")
            note = page.locator("#result-note")
            await expect(note).to_contain_text(words(lang, "withheld", c=fresh, peak=7.5, m=0))
            await expect(page.locator("#result-ref")).to_have_text(words(lang, "reference",
                                                                         order="o5"))
            assert await misfits(page) == [], size
            await shot(page, f"customer-kept-back-{size[0]}x{size[1]}-{lang}")
            # the simulated customer closes the ambient door: the order waits for a courier
            await rig.until(lambda r=rig: r.order_state("o5") == "withheld", timeout_s=8)
            assert rig.boards.received(command="unlock")
            assert fresh not in {r.compartment_id for r in rig.locker.store.events()
                                 if r.kind == "door.opened"}
