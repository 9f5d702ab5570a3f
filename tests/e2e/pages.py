"""What a buyer does in the example shop, as Playwright steps shared by the e2e tests."""

from __future__ import annotations

from playwright.sync_api import expect

PASSWORD = "e2e-Password-1"

#: Run in the example project's ``manage.py shell``: a superuser and a session for it.
STAFF_SESSION = """
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
user = get_user_model().objects.filter(username="e2e-staff").first() or get_user_model().objects.create_superuser("e2e-staff", password=None)
session = SessionStore()
session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0], HASH_SESSION_KEY: user.get_session_auth_hash()})
session.create()
print(user.pk, session.session_key)
"""


def sign_up(page, server, prefix: str = "buyer") -> str:
    """Sign up a new buyer through the shop's page (logged in afterwards); returns the user name."""
    username = server.new_username(prefix)
    page.goto("/accounts/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(server.url + "/")
    return username


def first_free_seat(page, restaurant_id: int, remain: int | None = None) -> tuple[int, int]:
    """Open a restaurant's times; ``(seat id, places left)`` of its first free time (with ``remain`` left, if given)."""
    page.goto(f"/restaurants/{restaurant_id}/")
    chips = page.locator("a.time")
    if remain is not None:
        chips = page.locator(f'a.time[data-remain="{remain}"]')
    chip = chips.first
    seat_id = int(chip.get_attribute("id").removeprefix("seat-"))
    return seat_id, int(chip.get_attribute("data-remain"))


def open_payment_window(page) -> None:
    """On the shop's payment page, press Pay: the SDK (the sandbox's stand-in) opens the payment window.

    The button's handler is attached once the SDK script has loaded: wait for
    the page's load event first, as a person's click comes after it.
    """
    page.wait_for_load_state("load")
    page.click("#pgpay-toss-pay")
    page.wait_for_url("**/sandbox/toss/pay/**")


def book_until_sandbox(page, seat_id: int) -> str:
    """Book ``seat_id`` up to the sandbox's payment window; returns the booking's order number."""
    page.goto(f"/restaurants/seats/{seat_id}/book/")
    page.click("#proceed")
    order_number = page.locator("#order-number").inner_text()
    open_payment_window(page)
    expect(page.locator("#order-id")).to_have_text(order_number)
    return order_number


def booking_card(page, order_number: str):
    return page.locator(f"#booking-{order_number}")


def place_order(page, lines: dict[int, int], gateway: str, *, recipient: str = "Kim Buyer") -> str:
    """Put ``{product id: quantity}`` in the cart and place the order, paid with ``gateway``; returns its number.

    The browser ends on the order's page (READY, with its Pay button).
    """
    page.goto("/shop/")
    for product_id, quantity in lines.items():
        card = page.locator(f"#product-{product_id}")
        card.locator("input[name=quantity]").fill(str(quantity))
        with page.expect_navigation():
            card.locator(".add-to-cart").click()
    page.goto("/shop/cart/")
    page.fill("input[name=recipient]", recipient)
    page.fill("input[name=address]", "서울특별시 강남구 테헤란로 131")
    page.check(f"input[name=gateway][value={gateway}]")
    page.click("#place-order")
    expect(page.locator("#order")).to_have_attribute("data-status", "READY")
    return page.locator("#order-number").inner_text()


def open_full_cancel(scope) -> None:
    """The full cancel's button (in ``scope``: a page or a booking's card): it opens its confirmation step in place."""
    scope.locator(".pgpay-cancel-inline > summary").click()


def confirm_the_cancel(page) -> None:
    """The cancel's second step (the page after a typed amount, or the full cancel's opened box): "Refund now"."""
    box = page.locator(".pgpay-cancel-confirm:visible")
    expect(box).to_be_visible()
    with page.expect_navigation():
        box.locator(".pgpay-cancel-button").click()


def refund_part(page, amount: int) -> None:
    """On a paid order's page (cart shop) or in My bookings, give back ``amount`` with the partial cancel form."""
    form = page.locator(".pgpay-cancel-form:has(input[name=amount])")
    form.locator("input[name=amount]").fill(str(amount))
    with page.expect_navigation():
        form.locator(".pgpay-cancel-button").click()
    confirm_the_cancel(page)


def cancel_the_rest(page) -> None:
    """The full cancel: whatever is left of the payment (no page load before "Refund now")."""
    open_full_cancel(page)
    confirm_the_cancel(page)


def staff_page(browser, server, locale: str = "ko-KR", *, width: int = 1400, **context_options):
    """A page of a new browser context logged in to the admin as the superuser ``e2e-staff``.

    Returns ``(page, staff user id)``; close ``page.context`` when done.
    """
    staff_id, session_key = server.manage("shell", "-v", "0", "-c", STAFF_SESSION).stdout.split()
    context = browser.new_context(locale=locale, viewport={"width": width, "height": 1000}, base_url=server.url, **context_options)
    context.set_default_timeout(15_000)
    context.add_cookies([{"name": "sessionid", "value": session_key, "url": server.url}])
    return context.new_page(), staff_id


def admin_refund_part(page, changelist: str, order_id: int, amount: int, reason: str) -> None:
    """On the admin's order page (``/admin/<changelist>/<id>/change/``), give back ``amount``:
    the refund form, then its confirmation step."""
    page.goto(f"/admin/{changelist}/{order_id}/change/")
    page.fill("#id_amount", str(amount))
    page.fill("#id_reason", reason)
    page.click("#pgpay-refund-form button[type=submit]")
    expect(page.locator("#pgpay-confirm-amount")).to_be_visible()
    page.click("#pgpay-confirm-button")
    expect(page.locator("ul.messagelist li.success")).to_be_visible()
