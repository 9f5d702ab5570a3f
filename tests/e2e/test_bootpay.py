"""Seed 004 on Bootpay, in Chromium: pay in the sandbox's window, then cancel 3,000 of 10,000 and the rest.

The payment page loads the sandbox's stand-in for Bootpay's JS SDK; its
window (an iframe) authenticates the payment and fires the ``confirm``
event; the shop's return view approves it on the server (``POST
/v2/confirm``). The order page's cancel forms go through django-pgpay's cancel
view: each cancel sends a ``cancel_id`` taken from its ledger row, so the
ledger and Bootpay's receipt list the same ids.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from .pages import (
    admin_refund_part,
    booking_card,
    cancel_the_rest,
    confirm_the_cancel,
    first_free_seat,
    open_full_cancel,
    place_order,
    staff_page,
)

pytestmark = pytest.mark.e2e

GIFT_CARD = 7  # demo product: a 10,000 won gift card

WINDOW = "iframe[name=pgpay-sandbox-bootpay]"


def pay_in_the_bootpay_window(page, order_number: str, amount: str) -> None:
    """On the shop's payment page: Pay → the sandbox's Bootpay window → Pay (the SDK's confirm event)."""
    page.click("#pgpay-bootpay-pay")  # enabled once the SDK stand-in has run
    window = page.frame_locator(WINDOW)
    expect(window.locator("#order-id")).to_have_text(order_number)
    expect(window.locator("#amount")).to_contain_text(amount)
    window.locator("#pay").click()


def test_seed_004_cancel_3000_of_10000_then_the_rest(open_page, browser, server, shots):
    page = open_page()
    order_number = place_order(page, {GIFT_CARD: 1}, "bootpay")
    page.click("#pay")
    expect(page.locator("#payment-window")).to_contain_text("Bootpay")
    pay_in_the_bootpay_window(page, order_number, "10,000")
    page.wait_for_url(re.compile(rf".*/shop/orders/{order_number}/$"))
    expect(page.locator("#order")).to_have_attribute("data-status", "PAID")
    page.screenshot(path=shots / "bootpay-1-order-paid.png", full_page=True)

    # Seed 004's first cancel, 3,000 won, through the admin's order page; the rest through the shop's cancel view.
    staff, _staff_id = staff_page(browser, server)
    try:
        order_id = server.value("SELECT id FROM shop_cartorder WHERE order_number = ?", order_number)
        admin_refund_part(staff, "shop/cartorder", order_id, 3000, "부분 취소")
        staff.screenshot(path=shots / "bootpay-2-admin-partial-cancel.png", full_page=True)
    finally:
        staff.context.close()
    page.reload()
    expect(page.locator("#order")).to_have_attribute("data-status", "PARTIAL_CANCELED")
    expect(page.locator("#order-balance")).to_have_text("₩7,000")
    cancel_the_rest(page)
    expect(page.locator("#order")).to_have_attribute("data-status", "CANCELED")
    expect(page.locator("#order-refunded")).to_have_text("₩10,000")
    page.screenshot(path=shots / "bootpay-3-order-cancelled.png", full_page=True)

    status, canceled_at = server.query("SELECT status, canceled_at FROM shop_cartorder WHERE order_number = ?", order_number)[0]
    assert status == "CANCELED" and canceled_at is not None
    cancels = server.query(
        "SELECT t.amount, t.idempotency_key FROM shop_carttransaction t JOIN shop_cartorder o ON o.id = t.order_id"
        " WHERE o.order_number = ? AND t.kind = 'cancel' AND t.status = 'succeeded' ORDER BY t.id",
        order_number,
    )
    assert [amount for amount, _key in cancels] == [3000, 7000]
    # Bootpay's receipt lists both cancels under the cancel_id of their ledger rows.
    at_bootpay = server.value(
        "SELECT json_extract(session, '$.cancels') FROM pgpay_sandbox_sandboxpayment WHERE pg = 'bootpay' AND order_id = ?", order_number
    )
    assert [c["cancel_id"] for c in json.loads(at_bootpay)] == [key for _amount, key in cancels]


def test_a_booking_cancelled_at_bootpay_first_is_cancelled_not_an_error(open_page, server, shots):
    page = open_page("ko-KR")
    seat_id, free = first_free_seat(page, 3)
    page.goto(f"/restaurants/seats/{seat_id}/book/")
    page.check("input[name=gateway][value=bootpay]")
    page.click("#proceed")
    order_number = page.locator("#order-number").inner_text()
    pay_in_the_bootpay_window(page, order_number, "50,000")
    page.wait_for_url(re.compile(r".*/restaurants/bookings/.*"))
    card = booking_card(page, order_number)
    expect(card).to_have_attribute("data-status", "PAID")

    # The payment's own webhook first (queued before any fault is armed): once it is in, a late
    # delivery of it cannot look the receipt up after the cancel below and apply that cancel.
    server.wait_for("SELECT count(*) FROM django_pgpay_webhookevent WHERE order_number = ? AND processed", order_number, expect=1)
    # Bootpay's staff cancel it in their admin; the webhook that would tell the shop is lost.
    receipt_id = server.value("SELECT pg_payment_id FROM restaurants_booking WHERE order_number = ?", order_number)
    # Every webhook of this receipt from now on: a late one of the payment must not use up the fault.
    server.sandbox("POST", "faults", pg="bootpay", operation="webhook", kind="drop", match=receipt_id, times=100)
    server.sandbox("POST", "bootpay/cancel", payment_key=receipt_id)
    # The buyer cancels too: Bootpay answers "already cancelled", the shop looks the receipt up and applies it.
    open_full_cancel(card)
    confirm_the_cancel(page)
    expect(booking_card(page, order_number)).to_have_attribute("data-status", "CANCELED")
    page.screenshot(path=shots / "bootpay-3-booking-cancelled-at-the-pg-ko.png", full_page=True)
    expect(page.locator("#messages")).to_contain_text("결제가 취소되었습니다.")  # "The payment was cancelled.", no error page
    # The shop learnt it from Bootpay's answer and receipt alone (the webhook was dropped).
    assert (
        server.value(
            "SELECT count(*) FROM django_pgpay_webhookevent WHERE order_number = ? AND event_type = 'PAYMENT_CANCELLED'", order_number
        )
        == 0
    )
    rows = server.query(
        "SELECT t.kind, t.status, t.amount FROM restaurants_bookingtransaction t JOIN restaurants_booking b ON b.id = t.order_id"
        " WHERE b.order_number = ? AND t.kind IN ('confirm', 'cancel', 'sync') ORDER BY t.id",
        order_number,
    )
    # Our cancel did nothing at Bootpay (its row failed, CANCEL_ALREADY_DONE); the receipt's cancel was applied.
    assert rows == [("confirm", "succeeded", 50000), ("cancel", "failed", 50000), ("sync", "succeeded", 50000)]
    at_bootpay = server.value(
        "SELECT json_extract(session, '$.cancels') FROM pgpay_sandbox_sandboxpayment WHERE pg = 'bootpay' AND key = ?", receipt_id
    )
    assert [c["by"] for c in json.loads(at_bootpay)] == ["admin"]  # no second refund
    assert (
        server.order("restaurants_booking", order_number)["canceled_amount"] == server.order("restaurants_booking", order_number)["amount"]
    )
    assert server.remain(seat_id) == free  # the place is given back, once
