"""The customer's screen on each panel it is laid out for: everything needed inside the viewport,
nothing scrolling, large text and targets, no serious accessibility fault (axe-core); the answer
replacing the keypad with the bank's drawing, each door followed live until all are closed; the
assistance mode speaking, in English and French."""

from __future__ import annotations

from playwright.async_api import Browser, Page, Request, expect

from tests.support.rig import Rig
from tests.support.screens import PANELS, axe, misfits, shot

LONGEST = """() => {  // the longest message in the screen's language, as a refusal shows it
  const names = [...Object.keys(TEXT[lang]).filter((k) => typeof TEXT[lang][k] === "string"),
                 ...Object.keys(TEXT[lang].refusals).map((k) => `refusals.${k}`)];
  const long = names.sort((a, b) => t(b).length - t(a).length)[0];
  tell(long, {s: 30});
  return long;
}"""


async def long_press(page: Page) -> None:
    await page.mouse.move(20, 300)
    await page.mouse.down()
    await page.wait_for_timeout(1500)
    await page.mouse.up()


async def test_the_customer_screen_fits_each_panel_and_follows_the_doors(
        browser: Browser, rig: Rig) -> None:
    for n, (width, height) in enumerate(PANELS):
        order = rig.add(f"o{n}", "ambient:M", "frozen:M")
        size = f"{width}x{height}"
        french = n % 2 == 1  # 1024x600 and 1080x1920 in French, with the assistance on
        context = await browser.new_context(viewport={"width": width, "height": height},
                                            base_url=str(rig.http.make_url("/")).rstrip("/"))
        page = await context.new_page()
        spoken: list[str] = []

        def heard(request: Request, said: list[str] = spoken) -> None:
            if "/api/speech" in request.url:
                said.append(request.url)

        page.on("request", heard)
        await page.goto("/")
        await expect(page.locator("#prompt")).to_have_text("Type or scan your pickup code")
        if french:
            await page.get_by_role("button", name="Français").click()
            await long_press(page)
            await expect(page.locator("body")).to_have_class("kiosk assist")
            await expect(page.locator("#assist")).to_have_attribute("aria-pressed", "true")
            assert any("say=assist_on" in url and "lang=fr" in url for url in spoken), spoken
        await page.evaluate(LONGEST)
        await expect(page.locator("#answer")).not_to_be_empty()
        assert await misfits(page) == [], size
        if n in (0, 3):
            assert await axe(page) == [], size
            await shot(page, f"customer-{size}")
        if n == 0:  # the smallest panel in the other language and assisted too, then back
            await page.get_by_role("button", name="Français").click()
            await page.locator("#assist").click()
            await page.evaluate(LONGEST)
            assert await misfits(page) == [], f"{size} fr, assisted"
            await page.locator("#assist").click()
            await page.get_by_role("button", name="English").click()
        for digit in order.code:
            await page.get_by_role("button", name=digit, exact=True).click()
        await expect(page.locator("#code")).to_have_value(
            f"{order.code[:3]} {order.code[3:7]} {order.code[7:]}")
        await page.locator("#ok").click()
        # the answer replaces the keypad: the doors lit on the drawing, then closed, live
        await expect(page.locator("#result")).to_be_visible()
        await expect(page.locator("#start")).to_be_hidden()
        for cid, _ in order.compartments:
            await expect(page.locator(f'#bank [data-id="{cid}"]')).to_have_attribute(
                "data-state", "opened", timeout=5000)
        frozen = next(cid for cid, _ in order.compartments if cid.startswith("Z"))
        await expect(page.locator(f'#bank [data-id="{frozen}"] .flake')).to_have_count(3)
        await expect(page.locator("#result-note")).to_have_text(
            "Prenez vos courses et refermez les portes." if french
            else "Take your goods and close the doors.")
        assert await misfits(page) == [], size
        if n in (0, 3):
            assert await axe(page) == [], size
            await shot(page, f"customer-opened-{size}")
        for cid, _ in order.compartments:  # the simulated customer closes them after 1 s
            await expect(page.locator(f'#doors [data-id="{cid}"]')).to_have_attribute(
                "data-state", "closed", timeout=5000)
        await expect(page.locator("#result-note")).to_have_text(
            "Toutes les portes sont fermées. Merci !" if french
            else "All doors are closed. Thank you!")
        if french:
            assert any("say=open%2Cdoors%2Cclose" in url for url in spoken), spoken
            assert any("say=done" in url for url in spoken), spoken
            for url in spoken:
                answer = await page.request.get(url)
                assert answer.ok and answer.headers["content-type"] == "audio/wav", url
        if n == 0:  # and back to the start by itself
            await expect(page.locator("#start")).to_be_visible(timeout=8000)
            await expect(page.locator("#code")).to_be_focused()
        await context.close()
        await rig.until(lambda o=order.order_id: rig.order_state(o) == "collected", timeout_s=8)
        # an assisted pickup tells central, so the customer's next orders are loaded low
        told = rig.locker.store.read().all(
            "SELECT order_id FROM outbox WHERE kind = 'order.assistance_used'")
        assert (order.order_id in {r["order_id"] for r in told}) == french, (size, told)
