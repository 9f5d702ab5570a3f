"""The restaurant booking of seeds 000/001 in Chromium, against the example project and its sandbox.

Every test signs up its own buyer and books a seat of its own, so they share
one server without sharing seats.
"""

from __future__ import annotations

import datetime
import json
import re

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from .pages import book_until_sandbox, booking_card, confirm_the_cancel, first_free_seat, open_full_cancel, open_payment_window

pytestmark = pytest.mark.e2e


def test_book_pay_see_paid_cancel_and_the_place_comes_back(open_page, server, shots):
    page = open_page()
    seat_id, free = first_free_seat(page, 1, remain=4)
    order_number = book_until_sandbox(page, seat_id)
    assert server.remain(seat_id) == free - 1  # held while the buyer pays
    page.screenshot(path=shots / "booking-1-sandbox-payment-window.png", full_page=True)

    page.click("#pay")
    page.wait_for_url(re.compile(r".*/restaurants/bookings/.*"))
    card = booking_card(page, order_number)
    expect(card).to_have_attribute("data-status", "PAID")
    expect(card.locator(".status")).to_have_text("Paid")
    expect(page.locator("#messages")).to_contain_text("Payment complete")
    page.screenshot(path=shots / "booking-2-history-paid.png", full_page=True)
    # The buyer's invoice (PDF) from the paid booking's card.
    with page.expect_download() as download:
        card.locator(".invoice-link").click()
    invoice = shots / f"booking-invoice-{order_number}.pdf"
    download.value.save_as(invoice)
    assert download.value.suggested_filename == f"invoice-{order_number}.pdf"
    assert order_number in PdfReader(invoice).pages[0].extract_text()
    # The sandbox's webhook for the payment arrives from its thread and is applied.
    server.wait_for(
        "SELECT count(*) > 0 FROM django_pgpay_webhookevent WHERE order_number = ? AND processed AND verified", order_number, expect=1
    )
    page.goto(f"/restaurants/{1}/")
    expect(page.locator(f"#seat-{seat_id}")).to_have_attribute("data-remain", str(free - 1))

    page.goto("/restaurants/bookings/")
    open_full_cancel(card)  # the confirmation step opens in place: the amount, and nothing left after it
    expect(card.locator(".pgpay-cancel-confirm")).to_contain_text("Left after the refund")
    page.screenshot(path=shots / "booking-3-cancel-confirmation.png", full_page=True)
    confirm_the_cancel(page)
    expect(card).to_have_attribute("data-status", "CANCELED")
    expect(page.locator("#messages")).to_contain_text("The payment was cancelled.")
    page.screenshot(path=shots / "booking-3-history-cancelled.png", full_page=True)
    assert (
        server.order("restaurants_booking", order_number)["canceled_amount"] == server.order("restaurants_booking", order_number)["amount"]
    )

    page.goto("/restaurants/1/")
    expect(page.locator(f"#seat-{seat_id}")).to_have_attribute("data-remain", str(free))
    assert server.remain(seat_id) == free
    page.screenshot(path=shots / "booking-4-seat-back.png", full_page=True)
    # Two webhooks (paid, cancelled), each verified and applied; nothing else.
    server.wait_for("SELECT count(*) FROM django_pgpay_webhookevent WHERE order_number = ? AND processed", order_number, expect=2)
    assert server.value("SELECT count(*) FROM django_pgpay_webhookevent WHERE order_number = ? AND error != ''", order_number) == 0


def test_declined_in_the_window_then_paid_on_the_second_try(open_page, server, shots):
    page = open_page()
    seat_id, free = first_free_seat(page, 3)
    order_number = book_until_sandbox(page, seat_id)

    page.click("#decline")
    expect(page.locator("#payment-failed")).to_contain_text("The card company or the payment provider declined the payment.")
    expect(page.locator("#payment-error-code")).to_have_text("Error code: REJECT_CARD_COMPANY")
    # It says the place is still held, until when, and that nothing was charged.
    expect(page.locator("#payment-retry")).to_contain_text("Nothing was charged, and your order is kept until")
    page.screenshot(path=shots / "decline-1-failed.png", full_page=True)
    # Nothing was charged; the booking still holds its place, so the buyer may pay again.
    assert server.order("restaurants_booking", order_number)["status"] == "READY"
    assert server.remain(seat_id) == free - 1

    page.click("#back")
    card = booking_card(page, order_number)
    expect(card).to_have_attribute("data-status", "READY")
    page.screenshot(path=shots / "decline-2-history-awaiting-payment.png", full_page=True)
    card.get_by_role("button", name="Pay now").click()
    expect(page.locator("#order-number")).to_have_text(order_number)  # the same booking, not a second one
    open_payment_window(page)
    page.click("#pay")
    expect(booking_card(page, order_number)).to_have_attribute("data-status", "PAID")
    page.screenshot(path=shots / "decline-3-paid-on-second-try.png", full_page=True)
    assert server.remain(seat_id) == free - 1
    assert server.value("SELECT count(*) FROM restaurants_booking WHERE seat_id = ?", seat_id) == 1


def test_card_company_declines_at_confirm_the_booking_fails_and_frees_its_place(open_page, server, shots):
    page = open_page()
    seat_id, free = first_free_seat(page, 2, remain=6)
    order_number = book_until_sandbox(page, seat_id)

    page.click("#developer-options summary")
    page.select_option("#confirm-fault", "decline")
    page.click("#pay")
    expect(page.locator("#payment-failed")).to_be_visible()
    expect(page.locator("#payment-failed .pgpay-code")).to_have_text("REJECT_CARD_COMPANY")
    # The page's language first, then Toss's own (Korean) words.
    expect(page.locator("#payment-failed")).to_contain_text("The payment was declined.")
    expect(page.locator("#payment-failed .pgpay-detail")).not_to_be_empty()
    expect(page.locator("#payment-closed")).to_contain_text("This order is closed and its place given back.")
    page.screenshot(path=shots / "decline-at-confirm-1-failed.png", full_page=True)
    assert server.order("restaurants_booking", order_number)["status"] == "FAILED"
    assert server.remain(seat_id) == free

    page.click("#back")
    expect(booking_card(page, order_number)).to_have_attribute("data-status", "FAILED")
    page.screenshot(path=shots / "decline-at-confirm-2-history-failed.png", full_page=True)


def test_lost_confirm_answer_is_resolved_by_pgpay_reconcile(open_page, server, shots):
    page = open_page()
    seat_id, free = first_free_seat(page, 2, remain=2)
    order_number = book_until_sandbox(page, seat_id)
    payment_key = page.url.rstrip("/").rsplit("/", 1)[-1]
    # The PG's webhook for this payment is lost too (control API), so only a lookup can tell.
    server.sandbox("POST", "faults", pg="toss", operation="webhook", kind="drop", match=payment_key)

    # Developer options of the payment window: the sandbox approves, then answers 500.
    page.click("#developer-options summary")
    page.select_option("#confirm-fault", "error_after")
    page.screenshot(path=shots / "lost-answer-1-developer-options.png", full_page=True)
    page.click("#pay")
    expect(page.locator("#payment-pending")).to_be_visible()
    page.screenshot(path=shots / "lost-answer-2-being-processed.png", full_page=True)
    assert server.order("restaurants_booking", order_number)["status"] == "READY"
    assert server.value("SELECT status FROM pgpay_sandbox_sandboxpayment WHERE key = ?", payment_key) == "DONE"

    done = server.manage("pgpay_reconcile")
    assert f"{order_number} [toss]:" in done.stdout and "-> PAID" in done.stdout, done.stdout
    page.goto("/restaurants/bookings/")
    card = booking_card(page, order_number)
    expect(card).to_have_attribute("data-status", "PAID")
    page.screenshot(path=shots / "lost-answer-3-paid-after-reconcile.png", full_page=True)
    assert server.remain(seat_id) == free - 1
    assert server.value("SELECT count(*) FROM django_pgpay_webhookevent WHERE order_number = ?", order_number) == 0
    assert server.value("SELECT status FROM pgpay_sandbox_sandboxwebhook WHERE payment_key = ?", payment_key) == "dropped"


def test_the_last_place_goes_to_one_buyer_and_the_other_sees_sold_out(open_page, server, shots):
    first, second = open_page(), open_page()
    seat_id, free = first_free_seat(first, 1, remain=1)
    assert free == 1
    # Both open the booking page while the place is free ...
    second.goto(f"/restaurants/seats/{seat_id}/book/")
    expect(second.locator("#seat-remain")).to_have_attribute("data-remain", "1")
    # ... the first one takes it ...
    first.goto(f"/restaurants/seats/{seat_id}/book/")
    first.click("#proceed")
    expect(first.locator("#pgpay-toss-pay")).to_be_visible()
    # ... and the second one is told, not charged, and not shown an error page.
    with second.expect_response(lambda r: r.request.method == "POST") as answer:
        second.click("#proceed")
    assert answer.value.status == 409
    expect(second.locator("#sold-out")).to_contain_text("fully booked")
    second.screenshot(path=shots / "sold-out.png", full_page=True)
    assert server.remain(seat_id) == 0
    assert server.value("SELECT count(*) FROM restaurants_booking WHERE seat_id = ?", seat_id) == 1


def test_a_bank_transfer_for_a_booking_is_due_before_the_visit_not_a_week_later(open_page, server, shots):
    """A virtual account chosen in the window: the booking waits for the deposit until two hours before
    its table's time (restaurants.Booking.get_deposit_deadline) when the PG's own deadline is later."""
    page = open_page()
    seat_id, _free = first_free_seat(page, 1)
    order_number = book_until_sandbox(page, seat_id)
    page.click("#virtual-account")
    card = booking_card(page, order_number)
    expect(card).to_have_attribute("data-status", "WAITING_FOR_DEPOSIT")
    expect(card.locator(".virtual-account")).to_be_visible()
    page.screenshot(path=shots / "booking-virtual-account.png", full_page=True)

    def moment(text: str) -> datetime.datetime:
        value = datetime.datetime.fromisoformat(str(text))
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)

    visit = moment(server.value("SELECT datetime FROM restaurants_seat WHERE id = ?", seat_id))
    pg_data = json.loads(server.value("SELECT pg_data FROM restaurants_booking WHERE order_number = ?", order_number))
    pg_due = moment(pg_data["vbank_due_date"])
    due = moment(server.order("restaurants_booking", order_number)["expires_at"])
    assert due == min(visit - datetime.timedelta(hours=2), pg_due)
    assert due < pg_due, "the demo's first free time is within the sandbox's week: the shop's deadline applies"
