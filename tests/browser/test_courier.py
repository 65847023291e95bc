"""The courier's and the technician's screens in a real browser (Debian's chromium) against the
real daemon on simulated boards, on the locker's panels (800x480, 1024x600), in English and in
French, and a loading on a phone (390x844). Faults are made in the simulator (a jammed door, a latch
that does not move with its board's answers lost), never mocked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from locker.domain.orders import add_order_to_load, parse_bag
from locker.domain.staff import load_secret
from tests.support.configs import with_item_sensors
from tests.support.rig import Rig
from tests.support.screens import as_built, axe, misfits, shot

SIZES = [(800, 480), (1024, 600)]  # the locker's panels, every test in both languages
LANGS = ["en", "fr"]
SCREENS = pytest.mark.parametrize(("size", "lang"), [(s, lang) for s in SIZES for lang in LANGS],
                                  ids=[f"{w}x{h}-{lang}" for w, h in SIZES for lang in LANGS])
# a courier's phone too, for the loading with a jam (the suite's time goes to the panels)
WITH_PHONE = pytest.mark.parametrize(
    ("size", "lang"), [*[(s, lang) for s in SIZES for lang in LANGS], ((390, 844), "fr")],
    ids=[*[f"{w}x{h}-{lang}" for w, h in SIZES for lang in LANGS], "390x844-fr"])
# the words a courier must read, in each language (the catalogue must say these)
WORDS = {
    "en": {
        "title": "Courier", "technician": "Technician", "languages": "Language",
        "id": "Your staff id", "code": "Code from your phone", "log_in": "Log in",
        "open_all": "Open all doors", "one_by_one": "One by one", "take_back": "Open and take back",
        "under_way": "Being loaded at another screen",
        "nothing_to_load": "Nothing to load.", "nothing_to_reclaim": "Nothing to take back.",
        "unlocking": "A1: unlocking…", "jammed_use": "A1 jammed: use A2",
        "load_open": "A2 open: put the goods in, close the door",
        "load_closed": "A2 closed: loaded",
        "ready": "Done: order o7 is loaded and ready for the customer.",
        "not_opened": "F2: not opened yet", "did_not_unlock": "F2 did not unlock: try again",
        "try_again": "Try again", "open": "Open",
        "reclaim_open": "F2 open: take the goods out, close the door",
        "reclaim_closed": "F2 closed: empty",
        "reclaimed": "Done: order o9 is taken back; its compartments are empty.",
        "no_room": "No room for order big: nothing free for frozen L",
        "session_ends": "you will be logged out in", "session_ended": "Your session ended",
        "open_it": "Open A1", "need_reason": "Say why first",
        "tech_open": "A1 open: close the door",
        "tech_closed": "A1 closed", "take_out": "Take out of service",
        "put_back": "Put back in service", "taken_out": "Z1 is out of service.",
        "put_back_done": "Z1 is back in service.", "nothing_attention": "Nothing needs attention.",
        "reason": "Why (required)", "out_of_service": "Z1: out of service: broken hinge",
        "reads_empty": "A1 reads empty: put the bag in", "open_again": "Open again",
        "goods_title": "Goods to take back", "goods_out": "Open and take out",
        "goods_line": "A1 holds goods but no order: left behind or forgotten",
    },
    "fr": {
        "title": "Livreur", "technician": "Technicien", "languages": "Langue",
        "id": "Votre identifiant", "code": "Code de votre téléphone", "log_in": "Se connecter",
        "open_all": "Ouvrir toutes les portes", "one_by_one": "Une par une",
        "take_back": "Ouvrir et reprendre",
        "under_way": "En cours de chargement sur un autre écran",
        "nothing_to_load": "Rien à charger.", "nothing_to_reclaim": "Rien à reprendre.",
        "unlocking": "A1 : déverrouillage…", "jammed_use": "A1 bloqué : utilisez A2",
        "load_open": "A2 ouvert : déposez les courses, fermez la porte",
        "load_closed": "A2 fermé : chargé",
        "ready": "Terminé : la commande o7 est chargée et prête pour le client.",
        "not_opened": "F2 : pas encore ouvert",
        "did_not_unlock": "F2 ne s'est pas déverrouillé : réessayez",
        "try_again": "Réessayer", "open": "Ouvrir",
        "reclaim_open": "F2 ouvert : reprenez les courses, fermez la porte",
        "reclaim_closed": "F2 fermé : vide",
        "reclaimed": "Terminé : la commande o9 est reprise ; ses casiers sont vides.",
        "no_room": "Pas de place pour la commande big : rien de libre pour surgelé L",
        "session_ends": "vous serez déconnecté dans", "session_ended": "Votre session a pris fin",
        "open_it": "Ouvrir A1", "need_reason": "Dites d'abord pourquoi",
        "tech_open": "A1 ouvert : fermez la porte", "tech_closed": "A1 fermé",
        "take_out": "Mettre hors service", "put_back": "Remettre en service",
        "taken_out": "Z1 est hors service.", "put_back_done": "Z1 est de nouveau en service.",
        "nothing_attention": "Rien à surveiller.", "reason": "Pourquoi (obligatoire)",
        "out_of_service": "Z1 : hors service : broken hinge",
        "reads_empty": "A1 semble vide : déposez le sac", "open_again": "Rouvrir",
        "goods_title": "Courses à reprendre", "goods_out": "Ouvrir et vider",
        "goods_line": "A1 contient des courses mais aucune commande : oubliées ou laissées",
    },
}
LANG_NAMES = {"en": "English", "fr": "Français"}


@pytest.fixture
async def quiet_rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    """The test locker as built; nobody closes the doors but the test."""
    async for rig in make_rig("kerong", auto_close_s=None, edit=as_built):
        yield rig


@pytest.fixture
async def patient_rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    """As quiet_rig, with doors given 6 s to open before they count as jammed: an unlock whose
    answers are lost is told (after 1.5 s) well before, however busy the machine."""
    def patient(text: str) -> str:
        return as_built(text).replace("open_timeout_s = 2", "open_timeout_s = 6")

    async for rig in make_rig("kerong", auto_close_s=None, edit=patient):
        yield rig


@asynccontextmanager
async def screen(browser: Browser, rig: Rig, size: tuple[int, int], lang: str,
                 path: str = "/courier") -> AsyncIterator[Page]:
    """A fresh browser on the screen at this size, its language chosen and checked."""
    width, height = size
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        base_url=str(rig.http.make_url("/")).rstrip("/"))
    page = await context.new_page()
    try:
        await page.goto(path)
        await page.get_by_role("button", name=LANG_NAMES[lang], exact=True).click()
        await chosen_language(page, lang, "technician" if path == "/technician" else "title")
        yield page
    finally:
        await context.close()


async def chosen_language(page: Page, lang: str, title: str) -> None:
    """The language buttons say which is on; the page's language, title and labels follow."""
    words = WORDS[lang]
    for other in LANGS:
        await expect(page.locator(f"#lang-{other}")).to_have_attribute(
            "aria-pressed", "true" if other == lang else "false")
    await expect(page.locator("html")).to_have_attribute("lang", lang)
    await expect(page).to_have_title(words[title])
    await expect(page.locator(".langs")).to_have_attribute("aria-label", words["languages"])


async def log_in(page: Page, rig: Rig, lang: str, staff: str = "courier-1",
                 offset_steps: int = 0) -> None:
    secret = load_secret(rig.config.staff_secret_file(staff))
    code = pyotp.TOTP(secret).at(rig.locker.clock.now() + 30 * offset_steps)
    await page.get_by_label(WORDS[lang]["id"]).fill(staff)
    await page.get_by_label(WORDS[lang]["code"]).fill(code)
    await page.get_by_role("button", name=WORDS[lang]["log_in"], exact=True).click()


def to_load(rig: Rig, order_id: str, *bags: str) -> None:
    add_order_to_load(rig.locker.store, rig.config, rig.locker.codes, rig.locker.clock.now(),
                      order_id, [parse_bag(b) for b in bags])


async def fits(page: Page) -> None:
    """Nothing sticks out sideways, text and targets are large enough, axe finds nothing."""
    await page.evaluate("scrollTo(0, 0)")  # misfits() measures from the top of the page
    found = await misfits(page, scrolls=True)
    assert found == [], "\n".join(found)
    assert await axe(page) == []


@WITH_PHONE
async def test_a_jam_while_loading_says_where_the_bags_go(
        browser: Browser, quiet_rig: Rig, size: tuple[int, int], lang: str) -> None:
    rig, words = quiet_rig, WORDS[lang]
    to_load(rig, "o7", "ambient:M")  # the allocator's choice: A1, the smallest that fits
    rig.boards.jam("A1")  # a bag caught in the frame: the latch pulses, the door stays shut
    async with screen(browser, rig, size, lang) as page:
        await fits(page)
        await log_in(page, rig, lang)
        row = page.locator('#to-load tr[data-order="o7"]')
        await expect(row).to_contain_text("o7")
        await expect(page.locator("#to-reclaim-empty")).to_have_text(words["nothing_to_reclaim"])
        await fits(page)
        await row.get_by_role("button", name=words["open_all"]).click()
        # being loaded here: out of the list, which says so in a sentence
        await expect(page.locator('#to-load tr[data-order="o7"]')).to_have_count(0)
        await expect(page.locator("#to-load-empty")).to_have_text(words["nothing_to_load"])
        panel = page.locator('.progress[data-order="o7"]')
        a1 = panel.locator('tr[data-id="A1"]')
        await expect(a1).to_contain_text(words["unlocking"])
        await expect(panel.locator('.bank g[data-id="A1"]')).to_have_attribute("data-state",
                                                                              "opening")
        # the door never opens: the locker gives its bag A2 and opens it, and says so
        await expect(panel.locator(".notes")).to_have_text(words["jammed_use"], timeout=6000)
        await expect(a1).to_contain_text(words["jammed_use"])
        await expect(panel.locator('.bank g[data-id="A1"]')).to_have_attribute("data-state",
                                                                              "stuck")
        await expect(panel.locator('tr[data-id="A2"]')).to_contain_text(words["load_open"])
        await expect(panel.locator('.bank g[data-id="A2"]')).to_have_attribute("data-state",
                                                                              "opened")
        await fits(page)
        await shot(page, f"courier-jam-{size[0]}x{size[1]}-{lang}")
        # another courier's phone meanwhile: the order is there, its buttons off
        async with screen(browser, rig, size, lang) as other:
            await log_in(other, rig, lang, offset_steps=1)  # the next code: one works once
            elsewhere = other.locator('#to-load tr[data-order="o7"]')
            await expect(elsewhere).to_contain_text(words["under_way"])
            for name in (words["open_all"], words["one_by_one"]):
                await expect(elsewhere.get_by_role("button", name=name)).to_be_disabled()
            await fits(other)
        rig.boards.close("A2")
        await expect(panel.locator('tr[data-id="A2"]')).to_contain_text(words["load_closed"])
        await expect(panel.locator(".state")).to_have_text(words["ready"])
        await expect(panel.locator(".notes")).to_have_text(words["jammed_use"])  # still said
        await expect(panel.locator('.bank g[data-id="A2"]')).to_have_attribute("data-state",
                                                                              "closed")
        assert rig.order_state("o7") == "ready"
        await fits(page)


@SCREENS
async def test_one_door_at_a_time_and_a_door_that_did_not_unlock(
        browser: Browser, patient_rig: Rig, size: tuple[int, int], lang: str) -> None:
    rig, words = patient_rig, WORDS[lang]
    to_load(rig, "o8", "fresh:S", "frozen:M")  # F2 and Z1, both on board 1
    async with screen(browser, rig, size, lang) as page:
        await log_in(page, rig, lang)
        await page.locator('#to-load tr[data-order="o8"]').get_by_role(
            "button", name=words["one_by_one"]).click()
        panel = page.locator('.progress[data-order="o8"]')
        f2, z1 = panel.locator('tr[data-id="F2"]'), panel.locator('tr[data-id="Z1"]')
        await expect(f2).to_contain_text(words["not_opened"])
        # the same drawing as the customer's: the order's doors lit, the frozen one's flake
        await expect(panel.locator(".bank g.lit")).to_have_count(2)
        await expect(panel.locator('.bank g.lit.frozen[data-id="Z1"] .flake')).to_have_count(3)
        await expect(page.locator('#to-load tr[data-order="o8"]')).to_have_count(0)
        await fits(page)
        # F2's latch does not move and its board's answers are lost: it did not unlock
        rig.boards.lock_fault("F2")
        rig.boards.lose_unlock_replies(1, replies=2)
        await f2.get_by_role("button", name=words["open"]).click()
        await expect(f2).to_contain_text(words["did_not_unlock"], timeout=5000)
        await expect(panel.locator('.bank g[data-id="F2"]')).to_have_attribute("data-state",
                                                                              "stuck")
        await fits(page)
        await shot(page, f"courier-did-not-unlock-{size[0]}x{size[1]}-{lang}")
        rig.boards.lock_fault("F2", False)
        await f2.get_by_role("button", name=words["try_again"]).click()
        await expect(f2).to_have_attribute("data-step", "open")
        rig.boards.close("F2")
        await expect(f2).to_have_attribute("data-step", "closed")
        await z1.get_by_role("button", name=words["open"]).click()
        await expect(z1).to_have_attribute("data-step", "open")
        rig.boards.close("Z1")
        await expect(panel.locator(".state")).to_have_text(
            words["ready"].replace("o7", "o8"))
        assert rig.order_state("o8") == "ready"


@SCREENS
async def test_taking_back_an_expired_order_and_an_order_that_does_not_fit(
        browser: Browser, quiet_rig: Rig, size: tuple[int, int], lang: str) -> None:
    rig, words = quiet_rig, WORDS[lang]
    rig.add("o9", "fresh:S", hours=0.001)  # ready, its window 3.6 s long
    to_load(rig, "big", "frozen:L", "frozen:L", "frozen:L")
    await rig.until(lambda: rig.order_state("o9") == "expired", timeout_s=8)
    async with screen(browser, rig, size, lang) as page:
        await log_in(page, rig, lang)
        # an order with no room: the refusal in the screen's language, nothing reserved
        await page.locator('#to-load tr[data-order="big"]').get_by_role(
            "button", name=words["open_all"]).click()
        await expect(page.locator("#answer")).to_contain_text(words["no_room"])
        assert rig.order_state("big") == "received"
        await page.locator('#to-reclaim tr[data-order="o9"]').get_by_role(
            "button", name=words["take_back"]).click()
        await expect(page.locator("#to-reclaim-empty")).to_have_text(words["nothing_to_reclaim"])
        panel = page.locator('.progress[data-order="o9"]')
        await expect(panel.locator('tr[data-id="F2"]')).to_contain_text(words["reclaim_open"])
        await fits(page)
        await shot(page, f"courier-reclaim-{size[0]}x{size[1]}-{lang}")
        rig.boards.close("F2")
        await expect(panel.locator('tr[data-id="F2"]')).to_contain_text(words["reclaim_closed"])
        await expect(panel.locator(".state")).to_have_text(words["reclaimed"])
        assert rig.order_state("o9") == "reclaimed"
        await fits(page)


@SCREENS
async def test_a_session_nobody_touches_returns_to_the_login_by_itself(
        browser: Browser, make_rig: Callable[..., AsyncIterator[Rig]], size: tuple[int, int],
        lang: str) -> None:
    def idle_10_s(text: str) -> str:  # the shortest the config takes
        return as_built(text).replace("idle_timeout_s = 60", "idle_timeout_s = 10")

    async for rig in make_rig("kerong", auto_close_s=None, edit=idle_10_s):
        words = WORDS[lang]
        async with screen(browser, rig, size, lang) as page:
            await log_in(page, rig, lang)
            await expect(page.locator("#work")).to_be_visible()
            # nobody touches it: a warning counts down, then the login is back
            await expect(page.locator("#session-note")).to_contain_text(words["session_ends"])
            await fits(page)
            await expect(page.locator("#login")).to_be_visible(timeout=15_000)
            await expect(page.locator("#work")).to_be_hidden()
            await expect(page.locator("#login-answer")).to_contain_text(words["session_ended"])
            assert await page.evaluate("sessionStorage.getItem('staff-session')") is None
            await fits(page)
            await shot(page, f"courier-session-ended-{size[0]}x{size[1]}-{lang}")


@SCREENS
async def test_a_technician_opens_and_takes_out_of_service_on_their_own_screen(
        browser: Browser, quiet_rig: Rig, size: tuple[int, int], lang: str) -> None:
    rig, words = quiet_rig, WORDS[lang]
    async with screen(browser, rig, size, lang) as page:
        await log_in(page, rig, lang, staff="tech-1")
        await expect(page).to_have_url(re.compile(r"/technician$"))
        await chosen_language(page, lang, "technician")  # the choice follows to the next page
        bank = page.locator("#bank")
        await expect(bank.locator("g.every")).to_have_count(6)
        await expect(bank.locator('g[data-id="A1"]')).to_have_attribute("data-state", "free")
        await expect(page.locator("#attention-empty")).to_have_text(words["nothing_attention"])
        await fits(page)
        await bank.locator('g[data-id="A1"]').click()
        await expect(bank.locator('g[data-id="A1"]')).to_have_attribute("aria-pressed", "true")
        await expect(page.get_by_label(words["reason"])).to_be_visible()
        # no reason, no opening
        await page.get_by_role("button", name=words["open_it"], exact=True).click()
        await expect(page.locator("#action-answer")).to_contain_text(words["need_reason"])
        assert not rig.boards.received(command="unlock")
        await page.get_by_label(words["reason"]).fill("check the latch")
        await page.get_by_role("button", name=words["open_it"], exact=True).click()
        await expect(page.locator("#action-answer")).to_contain_text(words["tech_open"])
        await expect(bank.locator('g[data-id="A1"]')).to_have_attribute("data-state", "opened")
        await fits(page)
        await shot(page, f"technician-{size[0]}x{size[1]}-{lang}")
        rig.boards.close("A1")
        await expect(page.locator("#action-answer")).to_have_text(words["tech_closed"])
        opened = [e for e in rig.locker.store.events() if e.kind == "door.opened"]
        assert opened[0].payload["actor"] == "technician:tech-1"
        assert opened[0].payload["reason"] == "maintenance: check the latch"
        # out of service and back, each with a reason
        await bank.locator('g[data-id="Z1"]').click()
        await page.get_by_label(words["reason"]).fill("broken hinge")
        await page.get_by_role("button", name=words["take_out"]).click()
        await expect(page.locator("#action-answer")).to_have_text(words["taken_out"])
        await expect(bank.locator('g[data-id="Z1"]')).to_have_attribute("data-state", "out")
        await expect(page.locator("#attention")).to_contain_text(words["out_of_service"])
        await page.get_by_role("button", name=words["put_back"]).click()
        await expect(page.locator("#action-answer")).to_contain_text(words["need_reason"])
        await page.get_by_label(words["reason"]).fill("hinge replaced")
        await page.get_by_role("button", name=words["put_back"]).click()
        await expect(page.locator("#action-answer")).to_have_text(words["put_back_done"])
        await expect(bank.locator('g[data-id="Z1"]')).to_have_attribute("data-state", "free")
        kinds = [(e.kind, e.payload.get("reason")) for e in rig.locker.store.events()
                 if e.kind.startswith("compartment.")]
        assert kinds[-2:] == [("compartment.out_of_service", "broken hinge"),
                              ("compartment.in_service", "hinge replaced")]
        await fits(page)


async def test_a_courier_at_the_technicians_screen_goes_to_the_orders(
        browser: Browser, quiet_rig: Rig) -> None:
    async with screen(browser, quiet_rig, (390, 844), "en", path="/technician") as page:
        await fits(page)
        await log_in(page, quiet_rig, "en")
        await expect(page).to_have_url(re.compile(r"/courier$"))
        await expect(page.locator("#to-load-empty")).to_have_text(WORDS["en"]["nothing_to_load"])
        # and the locker refuses a courier the technician's calls whatever the screen does
        token = await page.evaluate("JSON.parse(sessionStorage.getItem('staff-session')).token")
        answer = await quiet_rig.http.get("/api/technician/compartments",
                                          headers={"Authorization": f"Bearer {token}"})
        assert (answer.status, (await answer.json())["error"]) == (403, "role")


@pytest.fixture
async def sensing_rig(make_rig: Callable[..., AsyncIterator[Rig]]) -> AsyncIterator[Rig]:
    """The test locker as built, with item sensors; nobody closes the doors but the test."""
    async for rig in make_rig("kerong", auto_close_s=None,
                              edit=lambda text: with_item_sensors(as_built(text))):
        yield rig


async def shut(rig: Rig, cid: str) -> None:
    """A person pushes the door shut once it stands open and its latch's pulse is over."""
    await rig.until(lambda: rig.boards.doors.lock(cid).door_open
                    and rig.boards.doors.lock(cid).latch_engaged)
    rig.boards.close(cid)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_door_shut_on_nothing_and_goods_left_behind(
        browser: Browser, sensing_rig: Rig, lang: str) -> None:
    rig, words = sensing_rig, WORDS[lang]
    code = add_order_to_load(rig.locker.store, rig.config, rig.locker.codes,
                             rig.locker.clock.now(), "o7", [parse_bag("ambient:M")])  # A1
    async with screen(browser, rig, (800, 480), lang) as page:
        await log_in(page, rig, lang)
        await expect(page.locator("#goods-section")).to_be_hidden()
        await page.locator('#to-load tr[data-order="o7"]').get_by_role(
            "button", name=words["open_all"]).click()
        await shut(rig, "A1")  # nothing put in
        panel = page.locator('.progress[data-order="o7"]')
        a1 = panel.locator('tr[data-id="A1"]')
        await expect(a1).to_contain_text(words["reads_empty"])
        await expect(panel.locator(".notes")).to_have_text(words["reads_empty"])
        await fits(page)
        await shot(page, f"courier-reads-empty-{lang}")
        await a1.get_by_role("button", name=words["open_again"]).click()
        await rig.until(lambda: len(rig.boards.doors.times("A1", "door", "open")) == 2)
        rig.boards.put("A1")
        await shut(rig, "A1")
        await expect(panel.locator(".state")).to_have_text(words["ready"])
        await expect(a1).to_contain_text(words["load_closed"].replace("A2", "A1"))

        # the customer takes nothing: the bag goes on the list of goods to take out
        assert (await rig.pickup(code))[0] == 200
        await rig.until(lambda: len(rig.boards.doors.times("A1", "door", "open")) == 3)
        await shut(rig, "A1")
        goods = page.locator('#goods tr[data-compartment="A1"]')
        await expect(page.locator("#goods-title")).to_have_text(words["goods_title"])
        await expect(goods).to_contain_text(words["goods_line"], timeout=6000)
        await fits(page)
        await goods.get_by_role("button", name=words["goods_out"]).click()
        await rig.until(lambda: len(rig.boards.doors.times("A1", "door", "open")) == 4)
        rig.boards.take("A1")
        await shut(rig, "A1")
        await expect(page.locator("#goods-section")).to_be_hidden(timeout=6000)


RETURN_WORDS = {
    "en": {"returns_title": "Customers' returns to take back",
           "return_line": "A1: crates or bags, handed back for order o5",
           "return_out": "Open and take out"},
    "fr": {"returns_title": "Retours des clients à reprendre",
           "return_line": "A1 : des caisses ou des sacs, rendu pour la commande o5",
           "return_out": "Ouvrir et reprendre"},
}


@pytest.mark.parametrize("lang", LANGS)
async def test_a_customers_return_is_on_the_couriers_list_until_taken_out(
        browser: Browser, quiet_rig: Rig, lang: str) -> None:
    rig, words = quiet_rig, RETURN_WORDS[lang]
    order = rig.add("o5", "fresh:S")
    status, body = await rig.pickup(order.code)
    assert status == 200, body
    offer = body["return_offer"]
    assert isinstance(offer, dict)
    handed = await rig.http.post("/api/returns", json={"offer": offer["offer"],
                                                       "kind": "crates"})
    assert handed.status == 200, await handed.text()
    assert (await handed.json())["compartment"] == "A1"
    for cid in ("F2", "A1"):  # the customer's bag out, the crates in
        await rig.until(lambda: not rig.boards.doors.lock(cid).latch_engaged)  # noqa: B023
        rig.boards.open(cid)
        await shut(rig, cid)
    async with screen(browser, rig, (800, 480), lang) as page:
        await log_in(page, rig, lang)
        line = page.locator('#returns tr[data-compartment="A1"]')
        await expect(page.locator("#returns-title")).to_have_text(words["returns_title"])
        await expect(line).to_contain_text(words["return_line"], timeout=6000)
        await fits(page)
        await shot(page, f"courier-returns-{lang}")
        await line.get_by_role("button", name=words["return_out"]).click()
        await rig.until(lambda: len(rig.boards.doors.times("A1", "door", "open")) == 2)
        await shut(rig, "A1")
        await expect(page.locator("#returns-section")).to_be_hidden(timeout=6000)
    assert "return.taken_back" in rig.kinds()
