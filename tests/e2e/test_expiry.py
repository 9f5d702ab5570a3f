"""An abandoned checkout: the buyer opens the payment window and walks away; pgpay_reconcile expires it.

This module's server holds an unpaid booking for one second only
(``PGPAY_READY_TIMEOUT=1`` from the environment); ``pgpay_reconcile`` runs as
its own process on the same database, as cron would run it.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect

from .pages import book_until_sandbox, booking_card, first_free_seat

pytestmark = pytest.mark.e2e

SERVER_ENV = {"PGPAY_READY_TIMEOUT": "1"}


def test_abandoned_checkout_expires_and_gives_the_place_back(open_page, server, shots):
    page = open_page()
    seat_id, free = first_free_seat(page, 1, remain=4)
    order_number = book_until_sandbox(page, seat_id)
    assert server.remain(seat_id) == free - 1
    page.screenshot(path=shots / "abandoned-1-payment-window-left-open.png", full_page=True)

    # The buyer leaves without paying; the hold runs out (one second here) ...
    page.goto("/restaurants/bookings/")
    expect(booking_card(page, order_number)).to_have_attribute("data-status", "READY")
    # SQLite keeps UTC without an offset.
    expires_at = datetime.fromisoformat(server.order("restaurants_booking", order_number)["expires_at"]).replace(tzinfo=timezone.utc)
    time.sleep(max(0.0, expires_at.timestamp() - time.time() + 0.05))

    # ... and the next reconcile run (cron) expires the booking: the PG has no payment for it.
    done = server.manage("pgpay_reconcile")
    assert f"{order_number} [toss]:" in done.stdout and "-> EXPIRED" in done.stdout, done.stdout
    assert server.remain(seat_id) == free

    page.reload()
    card = booking_card(page, order_number)
    expect(card).to_have_attribute("data-status", "EXPIRED")
    expect(card.locator(".status")).to_have_text("Expired")
    page.screenshot(path=shots / "abandoned-2-history-expired.png", full_page=True)
    page.goto("/restaurants/1/")
    expect(page.locator(f"#seat-{seat_id}")).to_have_attribute("data-remain", str(free))
