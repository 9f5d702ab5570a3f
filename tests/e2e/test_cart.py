"""The cart shop of seeds 002/003 in Chromium, in Korean: products, cart, order, payment, staff's partial refund, the buyer's cancel."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .pages import admin_refund_part, confirm_the_cancel, open_full_cancel, open_payment_window, sign_up, staff_page

pytestmark = pytest.mark.e2e


def test_cart_order_pay_refund_part_and_cancel_the_rest(open_page, browser, server, shots):
    page = open_page("ko-KR", logged_in=False)
    sign_up(page, server, "shopper")  # the sign-up page, once in the e2e run

    page.goto("/shop/")
    page.screenshot(path=shots / "cart-1-products-ko.png", full_page=True)
    tea, beans = page.locator("#product-1"), page.locator("#product-2")
    tea.locator("input[name=quantity]").fill("2")
    tea.locator(".add-to-cart").click()
    beans.locator(".add-to-cart").click()
    expect(page.locator("#nav-cart")).to_contain_text("3")

    page.goto("/shop/cart/")
    expect(page.locator("#cart-total")).to_have_text("39,000원")  # 2 x 12,000 + 15,000
    page.fill("input[name=recipient]", "김토스")
    page.fill("input[name=phone]", "010-1234-5678")
    page.fill("input[name=address]", "서울특별시 강남구 테헤란로 131")
    page.screenshot(path=shots / "cart-2-cart-ko.png", full_page=True)
    page.click("#place-order")
    page.wait_for_url(re.compile(r".*/shop/orders/[A-Za-z0-9_-]+/$"))
    order_number = page.locator("#order-number").inner_text()
    expect(page.locator("#order")).to_have_attribute("data-status", "READY")
    expect(page.locator("#nav-cart")).to_contain_text("0")

    page.click("#pay")
    expect(page.locator("#order-amount")).to_have_text("39,000원")
    # A cart order keeps the order and its prices; only a booking holds a place.
    expect(page.locator("#payment-window .lead")).to_contain_text("주문과 가격이 그대로 유지됩니다")
    open_payment_window(page)
    expect(page.locator("#amount")).to_contain_text("39,000")
    page.screenshot(path=shots / "cart-3-sandbox-window-ko.png", full_page=True)
    page.click("#pay")
    page.wait_for_url(re.compile(rf".*/shop/orders/{order_number}/$"))
    expect(page.locator("#order")).to_have_attribute("data-status", "PAID")
    expect(page.locator("#order .status")).to_have_text("결제 완료")
    page.screenshot(path=shots / "cart-4-order-paid-ko.png", full_page=True)
    order = server.order("shop_cartorder", order_number)
    assert order["status"] == "PAID" and float(order["amount"]) == 39000

    # A buyer cancels a whole order (CartOrder.buyer_may_cancel_part is False): no amount box on the page.
    expect(page.locator(".pgpay-cancel-form input[name=amount]")).to_have_count(0)
    # The shop's staff give back one box of tea (12,000 won) of the 39,000 in the admin.
    staff, _staff_id = staff_page(browser, server)
    try:
        order_id = server.value("SELECT id FROM shop_cartorder WHERE order_number = ?", order_number)
        admin_refund_part(staff, "shop/cartorder", order_id, 12000, "홍차 품절")
    finally:
        staff.context.close()
    page.reload()
    expect(page.locator("#order")).to_have_attribute("data-status", "PARTIAL_CANCELED")
    expect(page.locator("#order-refunded")).to_have_text("12,000원")
    expect(page.locator("#order-balance")).to_have_text("27,000원")
    page.screenshot(path=shots / "cart-5-order-partly-refunded-ko.png", full_page=True)
    assert float(server.order("shop_cartorder", order_number)["canceled_amount"]) == 12000
    assert (
        server.value("SELECT json_extract(state, '$.balanceAmount') FROM pgpay_sandbox_sandboxpayment WHERE order_id = ?", order_number)
        == 27000
    )
    # The buyer cancels the rest: the full cancel's box states 27,000 won. (Toss refuses a second cancel of
    # one payment within a second, FORBIDDEN_CONSECUTIVE_REQUEST, and so does the sandbox: a person is slower.)
    page.wait_for_timeout(1100)
    open_full_cancel(page)
    expect(page.locator(".pgpay-cancel-confirm:visible")).to_contain_text("27,000")
    confirm_the_cancel(page)
    expect(page.locator("#order")).to_have_attribute("data-status", "CANCELED")
    expect(page.locator("#order-refunded")).to_have_text("39,000원")
    page.screenshot(path=shots / "cart-6-order-cancelled-ko.png", full_page=True)
