"""Seed 003 on PortOne, in Chromium: prepare → pay in the sandbox's window → verify → PAID, in both shops.

PortOne V1 (iamport) pays a table booking: the booking page offers it, the
payment page registers the amount (``payments/prepare``) before it loads the
sandbox's ``iamport.js``, whose window (an iframe) pays and calls back; the
shop's return view verifies the payment with ``GET /payments/{imp_uid}``.
PortOne V2 pays a cart order the same way with ``PortOne.requestPayment``.
The sandbox's webhooks (V1 re-fetched, V2 signed) arrive afterwards and
change nothing.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .pages import booking_card, first_free_seat, place_order

pytestmark = pytest.mark.e2e

MUG = 4  # demo product: a 9,000 won mug


def pay_in_the_portone_window(page, order_number: str, amount: str) -> None:
    """On the shop's payment page: Pay → the sandbox's PortOne window (an iframe) → Pay."""
    page.click("#pgpay-portone-pay")  # enabled once the SDK stand-in has run
    window = page.frame_locator("#pgpay-portone-frame")
    expect(window.locator("#order-id")).to_have_text(order_number)
    expect(window.locator("#amount")).to_contain_text(amount)
    window.locator("#pay").click()


def test_v1_books_a_table(open_page, server, shots):
    page = open_page()
    seat_id, free = first_free_seat(page, 2)
    page.goto(f"/restaurants/seats/{seat_id}/book/")
    choices = page.locator("#book-form .choices")
    for name in ("Toss Payments", "PortOne", "PortOne V2", "Bootpay"):
        expect(choices).to_contain_text(name)
    expect(choices).not_to_contain_text("Stripe")  # the cart shop's only
    page.check("input[name=gateway][value=portone]")
    page.click("#proceed")
    order_number = page.locator("#order-number").inner_text()
    expect(page.locator("#payment-window")).to_contain_text("PortOne")
    # Prepared: the amount is registered at PortOne before the window opens.
    prepared = server.value("SELECT amount FROM pgpay_sandbox_sandboxprepared WHERE pg = 'portone' AND key = ?", order_number)
    assert prepared == 20000
    pay_in_the_portone_window(page, order_number, "20,000")
    page.wait_for_url(re.compile(r".*/restaurants/bookings/.*"))
    card = booking_card(page, order_number)
    expect(card).to_have_attribute("data-status", "PAID")
    expect(page.locator("#messages")).to_contain_text("Payment complete")
    page.screenshot(path=shots / "portone-v1-booking-paid.png", full_page=True)
    assert server.remain(seat_id) == free - 1
    imp_uid = server.value("SELECT pg_payment_id FROM restaurants_booking WHERE order_number = ?", order_number)
    assert imp_uid.startswith("imp_")
    # The notice_url webhook: re-fetched from PortOne, applied without a second confirm.
    server.wait_for(
        "SELECT count(*) FROM django_pgpay_webhookevent WHERE order_number = ? AND processed AND verified", order_number, expect=1
    )
    confirms = server.value(
        "SELECT count(*) FROM restaurants_bookingtransaction t JOIN restaurants_booking b ON b.id = t.order_id"
        " WHERE b.order_number = ? AND t.kind = 'confirm'",
        order_number,
    )
    assert confirms == 1


def test_v2_pays_a_cart_order(open_page, server, shots):
    page = open_page("ko-KR")
    order_number = place_order(page, {MUG: 1}, "portone-v2")
    page.click("#pay")
    expect(page.locator("#order-pg")).to_have_text("포트원 V2")  # the PG's Korean name on a Korean page
    pay_in_the_portone_window(page, order_number, "9,000")
    page.wait_for_url(re.compile(rf".*/shop/orders/{order_number}/$"))
    expect(page.locator("#order")).to_have_attribute("data-status", "PAID")
    page.screenshot(path=shots / "portone-v2-order-paid-ko.png", full_page=True)
    # V2's webhook is signed (Standard Webhooks) with the made-up secret both sides share.
    server.wait_for(
        "SELECT count(*) FROM django_pgpay_webhookevent WHERE gateway = 'portone-v2' AND order_number = ? AND processed AND verified",
        order_number,
        expect=1,
    )
    assert server.order("shop_cartorder", order_number)["status"] == "PAID"
