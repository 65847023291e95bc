"""The screens in a real browser: the small test locker laid out as a bank is built, a screenshot
saved in tests/screenshots/, axe-core's verdict, what does not fit the viewport, and the
customer's screen at a size and in a language."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.paths import ROOT
from tests.support.rig import Rig

KIOSK_TEXT: dict[str, Any] = json.loads(
    (ROOT / "api" / "static" / "kiosk-text.json").read_text("utf-8"))
KIOSK_PHONE = "0800\u00a0000\u00a0000"  # the test locker's support number, as the screen writes it
# the customer's screen on the locker's two landscape panels, in both languages
PANEL_SIZES = [(800, 480), (1024, 600)]
LANGS = ["en", "fr"]
ON_EACH_PANEL = pytest.mark.parametrize(
    ("size", "lang"), [(s, lang) for s in PANEL_SIZES for lang in LANGS],
    ids=[f"{w}x{h}-{lang}" for w, h in PANEL_SIZES for lang in LANGS])

SHOTS = ROOT / "tests" / "screenshots"


def as_built(text: str) -> str:
    """The small test locker as a bank is built: a column a zone, two levels."""
    for cid, column, level in [("A1", 1, 1), ("A2", 1, 2), ("F1", 2, 1), ("F2", 2, 2),
                               ("Z1", 3, 1), ("Z2", 3, 2)]:
        text = re.sub(rf'(\{{ id = "{cid}",[^}}]*?)(, level = \d+)? \}}',
                      rf"\1, column = {column}, level = {level} }}", text)
    return text


async def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


AXE = ROOT / "tests" / "browser" / "vendor" / "axe.min.js"  # tests only: never served by the daemon
# the screen sizes the customer's screen is laid out for: kiosk panels, landscape and portrait
PANELS = [(800, 480), (1024, 600), (1280, 800), (1080, 1920)]


async def axe(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.evaluate(AXE.read_text("utf-8"))  # through the driver: not an inline script
    found = await page.evaluate("""async () => (await axe.run(document,
        {resultTypes: ["violations"]})).violations
        .filter((v) => ["serious", "critical"].includes(v.impact))
        .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)""")
    return list(found)


async def misfits(page: Page, *, scrolls: bool = False) -> list[str]:
    """What does not fit the viewport: a page that scrolls (with `scrolls`: sideways), a
    visible element outside the viewport or overflowing its box, text under 18 px, a target under
    48 px."""
    found = await page.evaluate("""(scrolls) => {
      const W = innerWidth, H = scrolls ? Infinity : innerHeight, bad = [];
      const root = document.scrollingElement;
      if (root.scrollWidth > W || root.scrollHeight > H) {
        bad.push(`page scrolls: ${root.scrollWidth}x${root.scrollHeight}`);
      }
      for (const el of document.body.querySelectorAll("*")) {
        const r = el.getBoundingClientRect(), css = getComputedStyle(el);
        const hidden = !r.width || !r.height || css.visibility === "hidden";
        if (hidden || el.closest("svg") && el.tagName !== "svg") continue;
        const name = `${el.tagName.toLowerCase()}#${el.id}.${el.className.baseVal ?? el.className}`
          + ` "${(el.textContent || "").trim().slice(0, 30)}"`;
        if (r.left < -0.5 || r.top < -0.5 || r.right > W + 0.5 || r.bottom > H + 0.5) {
          bad.push(`outside: ${name}`);
        }
        const over = el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1;
        if (el.clientHeight && over) bad.push(`overflows: ${name}`);
        const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (text && parseFloat(css.fontSize) < 18) bad.push(`text ${css.fontSize}: ${name}`);
        if (el.matches("button, input, a") && (r.width < 48 || r.height < 48)) {
          bad.push(`target ${r.width}x${r.height}: ${name}`);
        }
      }
      return bad;
    }""", scrolls)
    return list(found)


@asynccontextmanager
async def kiosk(browser: Browser, rig: Rig, size: tuple[int, int], lang: str
                ) -> AsyncIterator[Page]:
    """The customer's screen in a fresh browser at `size`, in `lang` (chosen and checked)."""
    width, height = size
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        base_url=str(rig.http.make_url("/")).rstrip("/"))
    page = await context.new_page()
    await page.goto("/")
    await expect(page.locator("#prompt")).to_have_text(KIOSK_TEXT["en"]["prompt"])
    if lang == "fr":
        await page.get_by_role("button", name="Français").click()
    await expect(page.locator("#prompt")).to_have_text(KIOSK_TEXT[lang]["prompt"])
    try:
        yield page
    finally:
        await context.close()


async def type_code(page: Page, code: str) -> None:
    """As a barcode reader does: digits and Enter, wherever the focus was."""
    await page.keyboard.type(code, delay=5)
    await page.keyboard.press("Enter")
