"""What a buyer sees, at 1280 px and on a 390 px phone, in Korean and English.

For each language and width: the home page, a restaurant's times, the booking
page, the cart, each PG's payment window (Toss, PortOne V1, PortOne V2,
Bootpay, Stripe; the sandbox's copies) and the paid order's page, each kept as
a screenshot in
``$PGPAY_ARTIFACTS_DIR/e2e/layout/`` for a person to look at. Every page is
checked for what a person would notice first: nothing wider than the screen
(no sideways scrolling at 390 px), the window's own buttons inside the screen,
and Korean text that wraps between words (``word-break: keep-all``), never
inside one.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .pages import first_free_seat, place_order

pytestmark = pytest.mark.e2e

MUG = 4  # demo product: a 9,000 won mug
TEA = 1  # 12,000 won

#: An iPhone's Safari, so the PGs' SDKs take their phone path (PortOne redirects instead of a layer).
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
WIDTHS = {"desktop": 1280, "phone": 390}
LOCALES = {"ko": "ko-KR", "en": "en-US"}

MEASURE = """(root) => {
  const doc = root.ownerDocument || root;
  const html = doc.documentElement;
  const wide = [];
  for (const el of doc.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (box.width && box.right > html.clientWidth + 1 && style.position !== "fixed" && style.visibility !== "hidden") {
      wide.push((el.id ? "#" + el.id : el.tagName.toLowerCase() + "." + [...el.classList].join(".")) + " right=" + Math.round(box.right));
    }
  }
  return {scroll: html.scrollWidth, client: html.clientWidth, wide: wide.slice(0, 5),
          wordBreak: getComputedStyle(doc.body).wordBreak, lang: html.lang};
}"""


def check_layout(target, what: str) -> list[str]:
    """What is wrong with a page: sideways scrolling, or Korean text that may break inside words."""
    measured = target.locator("body").evaluate(MEASURE)
    problems = []
    if measured["scroll"] > measured["client"] or measured["wide"]:
        # Wider than the screen, or cut off at its right edge (in a box that scrolls sideways).
        problems.append(f"{what}: {measured['scroll']} px wide in {measured['client']} px: {measured['wide']}")
    if measured["lang"].startswith("ko") and measured["wordBreak"] != "keep-all":
        problems.append(f"{what}: Korean text breaks inside words (word-break: {measured['wordBreak']})")
    return problems


def outside_the_screen(page, frame_element, button_selector: str, what: str) -> list[str]:
    """A window's button (in an iframe over the page) must be reachable: inside the viewport once scrolled to."""
    button = frame_element.content_frame().locator(button_selector)
    button.scroll_into_view_if_needed()
    box = button.bounding_box()  # relative to the top page's viewport
    viewport = page.viewport_size
    if box is None:
        return [f"{what}: {button_selector} is not shown"]
    inside = (
        0 <= box["y"]
        and box["y"] + box["height"] <= viewport["height"] + 1
        and 0 <= box["x"]
        and box["x"] + box["width"] <= viewport["width"] + 1
    )
    return [] if inside else [f"{what}: {button_selector} at {box} is outside the {viewport} screen"]


@pytest.fixture
def buyer_page(browser, server):
    contexts = []

    def make(lang: str, width: str):
        options = {"locale": LOCALES[lang], "base_url": server.url, "viewport": {"width": WIDTHS[width], "height": 844}}
        if width == "phone":
            options.update(is_mobile=True, has_touch=True, user_agent=PHONE_UA)
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        _name, session_key = server.take_buyer()
        context.add_cookies([{"name": "sessionid", "value": session_key, "url": server.url}])
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("lang", list(LOCALES))
def test_buyer_pages_and_every_pg_window(buyer_page, server, shots, lang, width):
    folder = shots / "layout"
    folder.mkdir(exist_ok=True)
    page = buyer_page(lang, width)
    problems: list[str] = []

    def shot(name: str) -> None:
        problems.extend(check_layout(page, f"{name} ({lang}, {width})"))
        page.screenshot(path=folder / f"{name}-{lang}-{WIDTHS[width]}.png", full_page=True)

    page.goto("/")
    expect(page.locator("#go-restaurants")).to_be_visible()
    shot("home")
    # The booking page (CheckoutMixin's start page).
    seat_id, _free = first_free_seat(page, 1)
    shot("restaurant")
    page.goto(f"/restaurants/seats/{seat_id}/book/")
    expect(page.locator("#book-form")).to_be_visible()
    shot("booking")

    # The cart.
    page.goto("/shop/")
    for product_id in (TEA, MUG):
        with page.expect_navigation():
            page.locator(f"#product-{product_id} .add-to-cart").click()
    page.goto("/shop/cart/")
    page.fill("input[name=recipient]", "김토스" if lang == "ko" else "Kim Toss")
    page.fill("input[name=address]", "서울특별시 강남구 테헤란로 131")
    shot("cart")

    # Each PG's window.
    order_number = place_order(page, {MUG: 1}, "toss")
    page.click("#pay")
    shot("payment-page-toss")
    page.wait_for_load_state("load")
    page.click("#pgpay-toss-pay")
    page.wait_for_url("**/sandbox/toss/pay/**")
    shot("window-toss")
    expect(page.locator("#pay")).to_be_visible()
    page.click("#developer-options summary")  # the faults' long labels, opened
    expect(page.locator("#confirm-fault")).to_be_visible()
    shot("window-toss-developer-options")

    # Paid with Toss: the buyer's order page.
    page.click("#pay")
    page.wait_for_url(re.compile(rf".*/shop/orders/{order_number}/$"))
    expect(page.locator("#order")).to_have_attribute("data-status", "PAID")
    shot("order-paid")
    # Order numbers are random letters: the widest the alphabet allows must fit too (a phone
    # overflowed by one pixel when the invoice link's number happened to be wide).
    page.evaluate("document.querySelector('#invoice-link').textContent = 'W'.repeat(20) + '.pdf'")
    problems.extend(check_layout(page, f"order-paid, widest order number ({lang}, {width})"))
    # The full cancel's confirmation opened in place.
    page.locator(".pgpay-cancel-inline > summary").click()
    expect(page.locator(".pgpay-cancel-inline .pgpay-cancel-confirm")).to_be_visible()
    shot("order-paid-cancel-opened")

    for alias in ("portone", "portone-v2"):
        place_order(page, {MUG: 1}, alias)
        page.click("#pay")
        page.wait_for_load_state("load")
        page.click("#pgpay-portone-pay")
        if width == "phone":  # the phone path: the window is a page of its own
            page.wait_for_url(f"**/sandbox/{alias}/**")
            expect(page.locator("#pay")).to_be_visible()
            shot(f"window-{alias}")
        else:  # a layer (iframe) over the shop's page
            frame = page.locator("#pgpay-portone-frame")
            expect(frame).to_be_visible()
            expect(page.frame_locator("#pgpay-portone-frame").locator("#pay")).to_be_visible()
            problems.extend(outside_the_screen(page, frame.element_handle(), "#pay", f"{alias} window ({lang}, {width})"))
            problems.extend(check_layout(page.frame_locator("#pgpay-portone-frame"), f"{alias} window ({lang}, {width})"))
            shot(f"window-{alias}")

    place_order(page, {MUG: 1}, "bootpay")
    page.click("#pay")
    page.wait_for_load_state("load")
    page.click("#pgpay-bootpay-pay")
    frame = page.locator("iframe[name=pgpay-sandbox-bootpay]")
    expect(page.frame_locator("iframe[name=pgpay-sandbox-bootpay]").locator("#pay")).to_be_visible()
    for button in ("#pay", "#close"):
        problems.extend(outside_the_screen(page, frame.element_handle(), button, f"Bootpay window ({lang}, {width})"))
    problems.extend(check_layout(page.frame_locator("iframe[name=pgpay-sandbox-bootpay]"), f"Bootpay window ({lang}, {width})"))
    shot("window-bootpay")

    place_order(page, {MUG: 1}, "stripe")
    page.click("#pay")
    page.wait_for_url("**/sandbox/stripe/c/pay/cs_test_**")
    expect(page.locator("#pay")).to_be_visible()
    shot("window-stripe")
    assert not problems, "\n".join(problems)
