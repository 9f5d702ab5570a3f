"""Chromium on the emulated Stripe Checkout page, between the shop's views and OUR StripeGateway.

The shop's checkout (``CartCheckoutView``) redirects to ``session.url`` on the
sandbox; the buyer types a test card; the page sends the browser back to the
shop's return URL with ``{CHECKOUT_SESSION_ID}`` filled in.
"""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from django_pgpay import payments
from django_pgpay.sandbox import control
from django_pgpay.sandbox import stripe as emulated
from django_pgpay.status import OrderStatus as S
from tests.testapp.models import CartOrder

from .stripe_helpers import product, sandbox_gateway  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def buy(live_server, sandbox_gateway, product, buyer, client, page):
    """Log the buyer in, open the shop's checkout and press "Proceed to payment": the browser is on Stripe's page."""
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])

    def go(target=page, quantity=1):
        target.goto(f"{live_server.url}/shop/{product.pk}/{quantity}/stripe/")
        target.click("form.pgpay-checkout-start button")  # "Proceed to payment", in any language
        target.wait_for_url("**/sandbox/stripe/c/pay/cs_test_**")
        return CartOrder.objects.order_by("-pk").first()

    return go


def fill_card(page, number, email="buyer@example.com"):
    page.fill("#email", email)
    page.fill("#card-number", number)
    page.fill("#card-expiry", "12 / 34")
    page.fill("#card-cvc", "123")
    page.fill("#card-name", "Park Stripe")


def test_pay_by_card_then_refund_in_part(buy, page, artifacts):
    order = buy(quantity=2)
    expect(page.locator("#sandbox-banner")).to_contain_text("SANDBOX")
    expect(page.locator("#total")).to_have_text("₩30,000")
    expect(page.locator("#line-items")).to_contain_text("장고 책 × 2 (₩15,000)")
    page.screenshot(path=artifacts / "stripe-checkout-en.png", full_page=True)
    fill_card(page, "4242 4242 4242 4242")
    page.click("#pay")
    page.wait_for_url("**/pay/stripe/return/**")
    session_id = order.pg_data["stripe_session_id"]
    assert f"session_id={session_id}" in page.url and "{CHECKOUT_SESSION_ID}" not in page.url
    expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
    page.screenshot(path=artifacts / "stripe-return-paid.png", full_page=True)
    order.refresh_from_db()
    assert (order.status, order.amount, order.method) == (S.PAID, Decimal("30000"), "card")

    payments.cancel(order, "10000", reason="한 권 반품")
    assert [(r.event_type, r.status_code) for r in control.deliver_webhooks()] == [
        ("checkout.session.completed", 200),
        ("charge.refunded", 200),
    ]
    order.refresh_from_db()
    assert (order.status, order.balance) == (S.PARTIAL_CANCELED, Decimal("20000"))
    page.goto(order.receipt_url)
    expect(page.locator("#receipt-refunded")).to_have_text("₩10,000")
    page.screenshot(path=artifacts / "stripe-receipt.png", full_page=True)


def test_declined_card_stays_on_the_page(buy, page, artifacts):
    order = buy()
    fill_card(page, "4000 0000 0000 0002")
    page.click("#pay")
    expect(page.locator("#error")).to_have_text("Your card was declined.")
    page.screenshot(path=artifacts / "stripe-declined.png", full_page=True)
    order.refresh_from_db()
    assert order.status == S.READY
    fill_card(page, "4242424242424242")
    page.click("#pay")
    page.wait_for_url("**/pay/stripe/return/**")
    order.refresh_from_db()
    assert order.status == S.PAID


def test_invalid_card_number_is_caught_on_the_page(buy, page):
    buy()
    fill_card(page, "4242 4242 4242 4241")
    page.click("#pay")
    expect(page.locator("#error")).to_have_text("Your card number is invalid.")
    assert "invalid" in page.get_attribute("#card-number", "class")
    assert emulated.events() == []  # nothing reached Stripe's objects


def test_three_d_secure(buy, page, artifacts):
    order = buy()
    fill_card(page, "4000 0025 0000 3155")
    page.click("#pay")
    page.wait_for_url("**/authenticate")
    page.screenshot(path=artifacts / "stripe-3ds.png", full_page=True)
    page.click("#fail")
    expect(page.locator("#error")).to_contain_text("unable to authenticate")
    fill_card(page, "4000 0025 0000 3155")
    page.click("#pay")
    page.wait_for_url("**/authenticate")
    page.click("#complete")
    page.wait_for_url("**/pay/stripe/return/**")
    order.refresh_from_db()
    assert order.status == S.PAID


def test_back_to_the_shop(buy, page, artifacts):
    order = buy()
    page.click("#cancel")
    page.wait_for_url("**/pay/stripe/fail/**")
    expect(page.locator("body")).to_contain_text("You closed the payment window before paying")
    page.screenshot(path=artifacts / "stripe-cancel.png", full_page=True)
    order.refresh_from_db()
    assert order.status == S.READY


def test_delayed_method_then_the_webhook(buy, page):
    order = buy()
    page.click("#delayed summary")
    page.fill("#account-holder", "Park Stripe")
    page.select_option("#delayed-outcome", "manual")
    page.fill("#delayed-email", "buyer@example.com")
    page.click("#pay-delayed")
    page.wait_for_url("**/pay/stripe/return/**")
    expect(page.locator("body")).to_contain_text("being processed")
    emulated.settle(order.pg_data["stripe_session_id"])
    control.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == S.PAID


def test_page_in_korean(buy, browser, live_server, client, artifacts):
    context = browser.new_context(locale="ko-KR", extra_http_headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    buy(page)
    expect(page.locator("#sandbox-banner")).to_contain_text("샌드박스")
    expect(page.locator("#pay")).to_have_text("₩15,000 결제")
    page.screenshot(path=artifacts / "stripe-checkout-ko.png", full_page=True)
    fill_card(page, "4000 0000 0000 9995")
    page.click("#pay")
    expect(page.locator("#error")).to_have_text("카드 잔액이 부족합니다.")
    context.close()


def test_expired_session_page(buy, page):
    order = buy()
    url = page.url
    emulated.expire(order.pg_data["stripe_session_id"])
    page.goto(url)
    expect(page.locator("#closed-reason")).to_have_text("This Checkout Session has expired.")
    expect(page.locator("#pay")).to_have_count(0)


def test_dashboard_refund_button(buy, page, sandbox_url, artifacts):
    order = buy()
    fill_card(page, "4242 4242 4242 4242")
    page.click("#pay")
    page.wait_for_url("**/pay/stripe/return/**")
    control.deliver_webhooks()
    page.goto(sandbox_url + "/")
    row = page.locator("#stripe-sessions tr", has_text=order.order_number)
    expect(row).to_contain_text("complete / paid")
    row.locator("input[name=amount]").fill("4000")
    # (A full-page screenshot between fill and click makes Chromium drop the submit: take it afterwards.)
    with page.expect_navigation():
        row.locator("button[value=refund]").click()
    expect(page.locator("#stripe-sessions tr", has_text=order.order_number)).to_contain_text("₩4,000")
    page.screenshot(path=artifacts / "stripe-dashboard.png", full_page=True)
    assert [(r.event_type, r.status_code) for r in control.deliver_webhooks()] == [("charge.refunded", 200)]
    order.refresh_from_db()
    assert (order.status, order.canceled_amount) == (S.PARTIAL_CANCELED, Decimal("4000"))
