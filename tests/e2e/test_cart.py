"""The cart shop of seeds 002/003 in Chromium, in Korean: products, cart, order, payment, partial refund."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .pages import confirm_the_cancel, open_payment_window, sign_up

pytestmark = pytest.mark.e2e


def test_cart_order_pay_and_refund_part(open_page, server, shots):
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

    # Give back one box of tea (12,000 won) of the 39,000.
    page.locator(".pgpay-cancel-form:has(input[name=amount]) input[name=amount]").fill("12000")
    page.locator(".pgpay-cancel-form:has(input[name=amount]) .pgpay-cancel-button").click()
    expect(page.locator(".pgpay-cancel-confirm")).to_contain_text("27,000")  # what is left after it
    confirm_the_cancel(page)
    expect(page.locator("#order")).to_have_attribute("data-status", "PARTIAL_CANCELED")
    expect(page.locator("#order-refunded")).to_have_text("12,000원")
    expect(page.locator("#order-balance")).to_have_text("27,000원")
    page.screenshot(path=shots / "cart-5-order-partly-refunded-ko.png", full_page=True)
    assert float(server.order("shop_cartorder", order_number)["canceled_amount"]) == 12000
    assert (
        server.value("SELECT json_extract(state, '$.balanceAmount') FROM pgpay_sandbox_sandboxpayment WHERE order_id = ?", order_number)
        == 27000
    )
