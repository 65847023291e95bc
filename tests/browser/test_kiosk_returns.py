"""Returns on the customer's screen, on both landscape panels and in both languages: after a
pickup "Return something" asks what is handed back and the compartment for it opens, its door
followed live until "thank you"; a return code typed at the keypad goes straight to the question
with only what the code is for; a compartment that stays shut says so, and "Try again" opens
another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from locker.domain.lifecycle import returns as returns_life
from tests.support.codes import code_no
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


@pytest.fixture
async def quiet_rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    async for rig in make_rig("kerong", auto_close_s=None, edit=as_built):
        yield rig


def deposited(rig: Rig) -> list[dict[str, Any]]:
    return [e.payload for e in rig.locker.store.events() if e.kind == "order.return_deposited"]


async def pull(rig: Rig, cid: str) -> None:
    """The customer pulls the door once its latch let go."""
    await rig.until(lambda: not rig.boards.doors.lock(cid).latch_engaged)
    rig.boards.open(cid)


async def door_state(page: Page, cid: str, state: str, timeout: float = 5000) -> None:
    await expect(page.locator(f'#doors li[data-id="{cid}"]')).to_have_attribute(
        "data-state", state, timeout=timeout)


@SCREENS
async def test_after_a_pickup_the_customer_hands_back_crates(
        browser: Browser, quiet_rig: Rig, size: tuple[int, int], lang: str) -> None:
    rig = quiet_rig
    order = rig.add("o1", "fresh:S")
    [(bag, _)] = order.compartments
    async with kiosk(browser, rig, size, lang) as page:
        await type_code(page, order.code)
        offer = page.locator("#return-start")
        await expect(offer).to_be_visible()
        await expect(offer).to_have_text(TEXT[lang]["return_start"])
        await pull(rig, bag)
        rig.boards.close(bag)
        await door_state(page, bag, "closed")
        assert await misfits(page) == [], size
        await shot(page, f"customer-return-offer-{size[0]}x{size[1]}-{lang}")
        await offer.click()
        await expect(page.locator("#return-question")).to_have_text(TEXT[lang]["return_question"])
        kinds = page.locator("#kinds button")
        await expect(kinds).to_have_text([TEXT[lang]["kinds"][k] for k in (
            "crates", "ambient_item", "fresh_item", "frozen_item")])
        assert await misfits(page) == [], size
        await shot(page, f"customer-return-what-{size[0]}x{size[1]}-{lang}")
        await kinds.first.click()
        await expect(page.locator("#result-title")).to_have_text(TEXT[lang]["return_title"])
        await expect(page.locator("#result-note")).to_have_text(TEXT[lang]["return_close"])
        await expect(page.locator("#return-start")).to_be_hidden()
        await pull(rig, "A1")  # the smallest ambient compartment for crates
        await door_state(page, "A1", "opened")
        assert await misfits(page) == [], size
        await shot(page, f"customer-return-open-{size[0]}x{size[1]}-{lang}")
        rig.boards.close("A1")
        await door_state(page, "A1", "closed")
        await expect(page.locator("#result-note")).to_have_text(TEXT[lang]["return_done"])
        await expect(page.locator("#result-title")).to_have_text(TEXT[lang]["done_title"])
        assert [(d["compartment"], d["what"]) for d in deposited(rig)] == [("A1", "crates")]
        # then back to the start by itself, nothing of it left on the page
        await expect(page.locator("#prompt")).to_be_visible(timeout=10_000)
        assert await page.locator("#doors li").count() == 0


@SCREENS
async def test_a_return_code_asks_only_what_it_is_for_and_a_shut_door_can_be_tried_again(
        browser: Browser, quiet_rig: Rig, size: tuple[int, int], lang: str) -> None:
    rig = quiet_rig
    code = code_no(5150)
    with rig.locker.store.transaction(rig.locker.clock.now()) as tx:
        returns_life.offer(tx, "o7", source="code", kind="fresh_item",
                           code_digest=rig.locker.codes.digest(code),
                           expires_at=rig.locker.clock.now() + 3600)
    rig.boards.jam("F2")  # the smallest fresh compartment unlocks but its door stays shut
    async with kiosk(browser, rig, size, lang) as page:
        await type_code(page, code)
        await expect(page.locator("#return-answer")).to_have_text(
            TEXT[lang]["return_code_intro"])
        kinds = page.locator("#kinds button")
        await expect(kinds).to_have_text([TEXT[lang]["kinds"]["fresh_item"]])
        await kinds.click()
        # the locker gives up on F2 after doors.open_timeout_s (2 s here)
        await door_state(page, "F2", "jammed", timeout=8000)
        note = page.locator("#result-note")
        await expect(note).to_have_text(TEXT[lang]["return_trouble"].format(c="F2", phone=PHONE))
        again = page.locator("#return-again")
        await expect(again).to_be_visible()
        assert await misfits(page) == [], size
        await shot(page, f"customer-return-jammed-{size[0]}x{size[1]}-{lang}")
        await again.click()  # F2 given back (its door jammed), the offer stands: F1 opens
        await pull(rig, "F1")
        await door_state(page, "F1", "opened")
        rig.boards.close("F1")
        await expect(note).to_have_text(TEXT[lang]["return_done"])
        assert [(d["compartment"], d["source"]) for d in deposited(rig)] == [("F1", "code")]
        await type_code(page, code)  # spent now
        await expect(page.locator("#return-answer, #answer").filter(
            has_text=TEXT[lang]["refusals"]["return_used"].format(phone=PHONE))).to_have_count(1)
