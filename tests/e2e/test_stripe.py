"""Seed 002's shop on Stripe Checkout, in Chromium: cart → order → the sandbox's Checkout page → PAID → a partial refund.

The shop's order page posts to its checkout view, which creates a Checkout
Session at the sandbox and redirects to ``session.url``; the buyer pays by
card and comes back to the shop's return URL, while the sandbox's webhook
thread posts ``checkout.session.completed`` (signed) to ``/pay/stripe/webhook/``.
Whichever of the two arrives first pays the order; the other changes nothing:
one confirm in the ledger either way. Each ordering is forced once: the
webhook is held back on the sandbox clock (return first), or the browser's
return request is held until the webhook has paid the order (webhook first).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .pages import admin_refund_part, place_order, staff_page

pytestmark = pytest.mark.e2e

#: Demo products: 1 = green tea 12,000 won, 2 = coffee beans 15,000 won.
TEA, BEANS = 1, 2


def pay_by_card(page, number: str = "4242 4242 4242 4242") -> None:
    """On the order's page: Pay → the sandbox's Stripe Checkout page → a test card → Pay."""
    page.click("#pay")  # django-pgpay's CheckoutMixin: creates the Checkout Session, redirects to its url
    page.wait_for_url("**/sandbox/stripe/c/pay/cs_test_**")
    expect(page.locator("#sandbox-banner")).to_be_visible()
    page.fill("#email", "buyer@example.com")
    page.fill("#card-number", number)
    page.fill("#card-expiry", "12 / 34")
    page.fill("#card-cvc", "123")
    page.fill("#card-name", "Kim Buyer")
    page.click("#pay")


def ledger(server, order_number: str) -> list[tuple[str, str, float]]:
    return server.query(
        "SELECT t.kind, t.status, t.amount FROM shop_carttransaction t JOIN shop_cartorder o ON o.id = t.order_id"
        " WHERE o.order_number = ? AND t.kind IN ('confirm', 'cancel') ORDER BY t.id",
        order_number,
    )


def processed_webhooks(server, order_number: str, event_type: str) -> int:
    return server.value(
        "SELECT count(*) FROM django_pgpay_webhookevent WHERE gateway = 'stripe' AND order_number = ? AND event_type = ? AND processed",
        order_number,
        event_type,
    )


def test_return_first_then_the_webhook_then_a_partial_refund(open_page, browser, server, shots):
    page = open_page("en-US")
    order_number = place_order(page, {TEA: 2, BEANS: 1}, "stripe")  # 39,000 won
    expect(page.locator("#pay-form")).to_contain_text("Stripe")
    # The session's "completed" webhook waits on the sandbox clock: the return comes first.
    server.sandbox(
        "POST", "faults", pg="stripe", operation="webhook", kind="delay", match="checkout.session.completed", params={"seconds": 3600}
    )
    pay_by_card(page)
    page.wait_for_url(re.compile(rf".*/shop/orders/{order_number}/$"))
    expect(page.locator("#order")).to_have_attribute("data-status", "PAID")
    expect(page.locator("#messages")).to_contain_text("Payment complete")
    page.screenshot(path=shots / "stripe-1-paid-by-the-return.png", full_page=True)

    # The webhook, now: verified, logged, changes nothing.
    delivered = server.sandbox("POST", "webhooks/deliver")["results"]
    assert ("checkout.session.completed", 200) in [(r["event_type"], r["status_code"]) for r in delivered]
    assert processed_webhooks(server, order_number, "checkout.session.completed") == 1
    assert ledger(server, order_number) == [("confirm", "succeeded", 39000)]

    # Seed 002's refund of part of the order, from the admin's order page.
    staff, _staff_id = staff_page(browser, server, locale="en-US")
    try:
        order_id = server.value("SELECT id FROM shop_cartorder WHERE order_number = ?", order_number)
        admin_refund_part(staff, "shop/cartorder", order_id, 12000, "one tea out of stock")
        expect(staff.locator("#pgpay-ledger")).to_contain_text("one tea out of stock")
        staff.screenshot(path=shots / "stripe-2-admin-partial-refund.png", full_page=True)
    finally:
        staff.context.close()
    page.reload()
    expect(page.locator("#order")).to_have_attribute("data-status", "PARTIAL_CANCELED")
    expect(page.locator("#order-refunded")).to_have_text("₩12,000")
    expect(page.locator("#order-balance")).to_have_text("₩27,000")
    page.screenshot(path=shots / "stripe-3-refunded-in-part.png", full_page=True)
    # Stripe's charge.refunded comes back by webhook: applied once, no second refund.
    server.wait_for(
        "SELECT count(*) FROM django_pgpay_webhookevent WHERE gateway = 'stripe' AND order_number = ? AND event_type = 'charge.refunded' AND processed",
        order_number,
        expect=1,
    )
    assert ledger(server, order_number) == [("confirm", "succeeded", 39000), ("cancel", "succeeded", 12000)]
    assert server.order("shop_cartorder", order_number)["status"] == "PARTIAL_CANCELED"
    assert float(server.order("shop_cartorder", order_number)["canceled_amount"]) == 12000


def test_webhook_first_then_the_return(open_page, server, shots):
    page = open_page("ko-KR")
    order_number = place_order(page, {BEANS: 1}, "stripe")  # 15,000 won

    def after_the_webhook(route):
        # The buyer's return reaches the shop only once the webhook has paid the order.
        server.wait_for("SELECT status FROM shop_cartorder WHERE order_number = ?", order_number, expect="PAID", timeout=15)
        route.continue_()

    page.route(re.compile(r".*/shop/pay/stripe/return/.*"), after_the_webhook)
    pay_by_card(page)
    page.wait_for_url(re.compile(rf".*/shop/orders/{order_number}/$"))
    expect(page.locator("#order")).to_have_attribute("data-status", "PAID")
    page.screenshot(path=shots / "stripe-4-paid-by-the-webhook-ko.png", full_page=True)
    # The webhook view marks its delivery processed just after the order is PAID: wait for it.
    server.wait_for(
        "SELECT count(*) FROM django_pgpay_webhookevent WHERE gateway = 'stripe' AND order_number = ? AND event_type = 'checkout.session.completed' AND processed",
        order_number,
        expect=1,
    )
    assert ledger(server, order_number) == [("confirm", "succeeded", 15000)]
