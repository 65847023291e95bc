"""The screens in a real browser: pickups at the keypad and by scanner, a wrong code, the ops grid
following a door. The courier's and the technician's screens: test_courier.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from playwright.async_api import Browser, Page, Route, expect

from tests.support.codes import a_wrong_code
from tests.support.rig import OPS_TOKEN, Rig
from tests.support.screens import axe, shot


async def test_a_full_pickup_at_the_keypad(page: Page, rig: Rig) -> None:
    order = rig.add("o1", "ambient:M", "fresh:S", "frozen:M")
    await page.goto("/")
    for digit in order.code:
        await page.get_by_role("button", name=digit, exact=True).click()
    await page.locator("#ok").click()
    doors = page.locator("#doors")
    for cid, _ in order.compartments:
        await expect(doors).to_contain_text(cid)
    await expect(page.locator("#result-note")).to_contain_text("close the doors")
    await shot(page, "customer-opened")
    await rig.until(lambda: rig.order_state("o1") == "collected", timeout_s=8)


async def test_a_scanned_code(page: Page, rig: Rig) -> None:
    order = rig.add("o1", "fresh:S")
    await page.goto("/")
    await page.locator("#code").focus()
    # a barcode reader types the QR code's digits quickly and ends with Enter
    await page.keyboard.type(order.code, delay=5)
    await page.keyboard.press("Enter")
    await expect(page.locator("#doors")).to_contain_text(order.compartments[0][0])
    await shot(page, "customer-scanned")


async def test_a_wrong_code_in_french(page: Page, rig: Rig) -> None:
    rig.add("o1", "fresh:S")
    await page.goto("/")
    await page.get_by_role("button", name="Français").click()
    await expect(page.locator("#prompt")).to_have_text("Tapez ou scannez votre code de retrait")
    await page.locator("#code").fill("12345678906")
    await page.locator("#ok").click()
    await expect(page.locator("#answer")).to_contain_text("Ce code n'est pas valable.")
    await shot(page, "customer-wrong-code")
    assert not rig.boards.received(command="unlock")


async def test_a_code_typed_while_codes_are_slowed_is_kept_and_tried_again(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]]) -> None:
    # 3 s, not the default 30 s, for the test's sake: the browser really waits
    def slow_3_s(text: str) -> str:
        return text.replace("first_delay_s = 10", "first_delay_s = 3").replace(
            "max_delay_s = 30", "max_delay_s = 3")

    async for rig in make_rig("kerong", auto_close_s=1.0, edit=slow_3_s):
        order = rig.add("o1", "fresh:S")
        context = await browser.new_context(viewport={"width": 1024, "height": 768},
                                            base_url=str(rig.http.make_url("/")).rstrip("/"))
        page = await context.new_page()
        await page.goto("/")
        await page.locator("#code").fill(order.code)
        for n in range(3):  # a guesser, just before: two free wrong codes, then 3 s
            assert (await rig.pickup(a_wrong_code(order.code), screen=f"x{n}"))[0] == 403
        await page.locator("#ok").click()
        await expect(page.locator("#answer")).to_contain_text("Your code is kept")
        await expect(page.locator("#code")).to_have_value(order.code)
        await shot(page, "customer-code-kept")
        await expect(page.locator("#doors")).to_contain_text(order.compartments[0][0],
                                                             timeout=8000)
        await context.close()


async def test_the_ops_grid_follows_a_door(page: Page, rig: Rig) -> None:
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto("/ops")
    await page.locator("#token").fill(OPS_TOKEN)
    await page.get_by_role("button", name="Open").first.click()
    cell = page.locator('.cell[data-id="A2"]')
    await expect(cell).to_have_attribute("data-door", "locked")
    await expect(page.locator("#live")).to_have_text("live")
    rig.boards.force("A2")  # someone forces a door: the page learns it from the live stream
    await expect(cell).to_have_attribute("data-door", "forced", timeout=5_000)
    await expect(page.locator("#alarms")).to_contain_text("door_forced A2")
    assert await axe(page) == []
    await shot(page, "ops")


async def test_the_ops_page_refuses_a_wrong_token(page: Page, rig: Rig) -> None:
    await page.goto("/ops")
    assert await axe(page) == []
    await page.locator("#token").fill("wrong")
    await page.get_by_role("button", name="Open").first.click()
    await expect(page.locator("#auth-answer")).to_contain_text("X-Ops-Token")


async def test_the_customer_screen_returns_to_the_start_when_idle(
        make_rig: Callable[..., AsyncIterator[Rig]], browser: Browser) -> None:
    async for rig in make_rig("kerong", edit=lambda t: t.replace(
            '[doors]', '[http]\nscreen_idle_s = 1.5\n\n[doors]')):
        context = await browser.new_context(base_url=str(rig.http.make_url("/")).rstrip("/"))
        page = await context.new_page()
        await page.goto("/")
        await page.get_by_role("button", name="Français").click()
        await page.locator("#code").fill("99999999992")
        await page.locator("#ok").click()
        await expect(page.locator("#answer")).not_to_be_empty()
        # nobody touches it: back to an empty screen in English
        await expect(page.locator("#prompt")).to_have_text("Type or scan your pickup code",
                                                           timeout=5_000)
        await expect(page.locator("#answer")).to_be_empty()
        # with the assistance on, three times as long, then back to the start without it
        await page.get_by_role("button", name="Français").click()
        await page.locator("#assist").click()
        await page.wait_for_timeout(3000)
        await expect(page.locator("#prompt")).to_have_text("Tapez ou scannez votre code de retrait")
        await expect(page.locator("#prompt")).to_have_text("Type or scan your pickup code",
                                                           timeout=5_000)
        await expect(page.locator("#assist")).to_have_attribute("aria-pressed", "false")
        await context.close()


async def test_a_technician_action_from_the_ops_page(page: Page, rig: Rig) -> None:
    await page.goto("/ops")
    await page.locator("#token").fill(OPS_TOKEN)
    await page.get_by_role("button", name="Open").first.click()
    await page.locator('.cell[data-id="Z2"]').click()
    await page.locator("#reason").fill("check the seal")
    await page.locator("#open").click()
    await expect(page.locator("#action-answer")).to_have_text("done")
    await expect(page.locator("#events")).to_contain_text("door.opened")
    opened = [e for e in rig.locker.store.events() if e.kind == "door.opened"]
    assert opened[0].compartment_id == "Z2" and opened[0].payload["actor"] == "ops"
    assert opened[0].payload["reason"] == "maintenance: check the seal"


async def test_the_ops_page_charts_the_zone_record(page: Page, rig: Rig) -> None:
    await page.set_viewport_size({"width": 1280, "height": 800})
    now = rig.locker.clock.now()
    with rig.locker.store.transaction(now) as tx:  # a day of HACCP record, as the zone loop writes
        for i in range(288):
            at = now - 86400 + i * 300
            tx.execute("INSERT INTO temperatures (zone, at, celsius, compressor, defrosting)"
                       " VALUES ('fresh', ?, ?, 0, 0), ('frozen', ?, ?, 0, 0)",
                       (at, 2.5 + (i % 12) / 10, at, -20.0 - (i % 6) / 10))
    await page.goto("/ops")
    await page.locator("#token").fill(OPS_TOKEN)
    await page.get_by_role("button", name="Open").first.click()
    await expect(page.locator('polyline[data-zone="fresh"]')).to_have_count(1)
    await expect(page.locator('polyline[data-zone="frozen"]')).to_have_count(1)
    await expect(page.locator('.zone-now[data-zone="frozen"]')).to_contain_text("°C")
    # readable: as tall as it was drawn, its temperature and time axes labelled
    box = await page.locator("#temps svg").bounding_box()
    assert box is not None and box["height"] > 250 and box["width"] > 1000
    await expect(page.locator("#temps .axis").filter(has_text="°C")).not_to_have_count(0)
    await expect(page.locator("#temps .axis").filter(has_text=":")).to_have_count(5)
    await shot(page, "ops-temperatures")


async def test_the_kiosk_says_when_it_asked_and_gives_up_in_time(page: Page, rig: Rig) -> None:
    order = rig.add("o1", "fresh:S")
    asked: list[str | None] = []

    async def faster(route: Route) -> None:  # a short wait, so the test need not sit 10 s
        answer = await route.fetch()
        body = await answer.json()
        await route.fulfill(response=answer, json={**body, "request_timeout_s": 1.5})

    async def lost(route: Route) -> None:  # the request never reaches the locker
        asked.append(route.request.headers.get("x-asked-at"))

    await page.route("**/api/kiosk", faster)
    await page.route("**/api/pickup", lost)
    await page.goto("/")
    # the screen has learnt the locker (its name, clock and the short wait) before the code
    await expect(page.locator("#name")).to_have_text("test-locker")
    await page.locator("#code").fill(order.code)
    await page.locator("#ok").click()
    await expect(page.locator("#answer")).to_have_text(
        "The locker did not answer in time. If no door opened, your code still works:"
        " please try again.", timeout=5000)
    assert asked and asked[0] is not None and abs(float(asked[0]) / 1000 - time.time()) < 5
    await page.unroute("**/api/pickup")
    await page.locator("#code").fill(order.code)
    await page.locator("#ok").click()
    await expect(page.locator("#doors")).to_contain_text(order.compartments[0][0])


async def test_the_kiosk_says_a_code_still_works_when_its_door_cannot_open(
        page: Page, rig: Rig) -> None:
    order = rig.add("o1", "frozen:M")  # board 1
    rig.boards.set_silent(1)
    await rig.until(lambda: bool(rig.locker.monitor.offline_boards))
    await page.goto("/")
    await page.locator("#code").fill(order.code)
    await page.locator("#ok").click()
    await expect(page.locator("#answer")).to_contain_text("your code still works")
    await shot(page, "customer-unavailable")
    assert not rig.boards.received(command="unlock") and rig.order_state("o1") == "ready"
