"""A real browser (Debian's chromium, driven by Playwright) against the daemon's own HTTP server,
with the real board driver on the simulated boards' pseudo-terminal. Each test saves a
screenshot in tests/screenshots/."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.integration.conftest import Rig, make_rig  # noqa: F401  (fixtures)

CHROMIUM = os.environ.get("LOCKER_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()


def as_built(text: str) -> str:
    """The small test locker as a bank is built: a column a zone, two levels."""
    for cid, column, level in [("A1", 1, 1), ("A2", 1, 2), ("F1", 2, 1), ("F2", 2, 2),
                               ("Z1", 3, 1), ("Z2", 3, 2)]:
        text = re.sub(rf'(\{{ id = "{cid}",[^}}]*?)(, level = \d+)? \}}',
                      rf"\1, column = {column}, level = {level} }}", text)
    return text


@pytest.fixture
async def rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in make_rig("kerong", auto_close_s=1.0, edit=as_built):
        yield r


@pytest.fixture
async def page(browser: Browser, rig: Rig) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1024, "height": 768},
                                        base_url=str(rig.http.make_url("/")).rstrip("/"))
    page = await context.new_page()
    yield page
    await context.close()


async def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # tests only: never served by the daemon
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
