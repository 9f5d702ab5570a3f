"""A buyer's lists of bookings and orders show 20 at a time, and the older ones are one click away.

Regression: both views paginated by 20 but their pages had no links, so a buyer's 21st and older
bookings (and orders) could not be reached, nor cancelled.
"""

from __future__ import annotations

from playwright.sync_api import expect

MAKE = """
from django.contrib.auth import get_user_model
from restaurants.models import Booking, Seat
from shop.models import CartOrder
user = get_user_model().objects.get(username={name!r})
seat = Seat.objects.order_by("pk").first()
for n in range(21):
    Booking.objects.create(user=user, seat=seat, amount=30000, order_name=f"booking {{n}}", gateway="toss", status="EXPIRED")
    CartOrder.objects.create(user=user, amount=12000, order_name=f"order {{n}}", gateway="toss", status="EXPIRED", recipient="r", address="a")
"""


def test_the_21st_booking_and_order_are_on_a_second_page(open_page, server, shots):
    page = open_page("ko-KR")
    page.goto("/restaurants/bookings/")
    name = page.locator("#nav-user").inner_text()
    server.manage("shell", "-c", MAKE.format(name=name))
    oldest_booking = server.value(
        "SELECT order_number FROM restaurants_booking WHERE order_name = 'booking 0' AND user_id = "
        "(SELECT id FROM auth_user WHERE username = ?)",
        name,
    )
    oldest_order = server.value(
        "SELECT order_number FROM shop_cartorder WHERE order_name = 'order 0' AND user_id = (SELECT id FROM auth_user WHERE username = ?)",
        name,
    )

    for path, cards, oldest in (
        ("/restaurants/bookings/", "#bookings > .card", oldest_booking),
        ("/shop/orders/", "#orders > .card", oldest_order),
    ):
        page.goto(path)
        expect(page.locator(cards)).to_have_count(20)
        expect(page.locator("#pager")).to_contain_text("2쪽 중 1쪽")  # "page 1 of 2"
        expect(page.locator(f"[id$='{oldest}']")).to_have_count(0)
        page.locator("#pager a[rel=next]").click()
        expect(page.locator(cards)).to_have_count(1)
        expect(page.locator(f"[id$='{oldest}']")).to_have_count(1)
        expect(page.locator("#pager a[rel=prev]")).to_be_visible()
    page.screenshot(path=shots / "orders-page-2-ko.png", full_page=True)
