"""A real browser (Debian's chromium, driven by Playwright) against the daemon's own HTTP server,
with the real board driver on the simulated boards' pseudo-terminal. Each test saves a
screenshot in tests/screenshots/."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.support.rig import Rig
from tests.support.screens import as_built

CHROMIUM = os.environ.get("LOCKER_CHROMIUM", "/usr/bin/chromium")
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


@pytest.fixture
async def rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    async for r in make_rig("kerong", auto_close_s=1.0, edit=as_built):
        yield r


@pytest.fixture
async def page(browser: Browser, rig: Rig) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1024, "height": 768},
                                        base_url=str(rig.http.make_url("/")).rstrip("/"))
    page = await context.new_page()
    yield page
    await context.close()
