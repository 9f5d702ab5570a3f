"""``manage.py demo_check``: prove the demo is set up, without serving it (``make demo-check``, CI).

Through Django's test client: every page renders, the admin logs in (with
``DEMO_ADMIN_PASSWORD`` when set), a booking takes a place and shows the PG's
payment window loading the sandbox's SDK, a second click reuses the booking,
the last place of a seat goes to one buyer and the next one gets the sold-out
page (409), and a cart becomes an order with its payment window. Paying needs
the server (the gateway calls the sandbox over HTTP), which the browser tests
and ``make demo`` cover.

Everything runs in one transaction that is rolled back, so the check leaves
no trace in the database it runs against.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test import Client
from django.urls import reverse

from restaurants.models import Booking, Restaurant, Seat
from shop.models import CartOrder, Product


class Check:
    """Collects what was checked; fails loudly on the first thing that is wrong."""

    def __init__(self, out):
        self.out = out
        self.count = 0

    def page(self, client: Client, url: str, *, status: int = 200, method: str = "get", contains: str = "", **data):
        response = getattr(client, method)(url, data or None, HTTP_ACCEPT_LANGUAGE="en")
        if response.status_code != status:
            raise CommandError(f"{method.upper()} {url}: HTTP {response.status_code}, expected {status}")
        if contains and contains not in response.content.decode("utf-8"):
            raise CommandError(f"{method.upper()} {url}: {contains!r} is not on the page")
        self.count += 1
        return response

    def true(self, condition: bool, what: str) -> None:
        if not condition:
            raise CommandError(what)
        self.count += 1


class Command(BaseCommand):
    help = "Check the demo without serving it: pages, admin login, booking, sold out, cart (rolled back)."

    def handle(self, *args, **options):
        if not Seat.objects.upcoming().exists() or not Product.objects.exists():
            raise CommandError("No demo data: run manage.py demo_data first.")
        check = Check(self.stdout)
        with transaction.atomic():
            self.run(check)
            transaction.set_rollback(True)
        self.stdout.write(f"Demo check: {check.count} checks passed (pages, admin, booking, sold out, cart); nothing was kept.")

    def run(self, check: Check) -> None:
        anonymous = Client(HTTP_HOST="127.0.0.1")
        restaurant = Restaurant.objects.first()
        check.page(anonymous, "/", contains="Hansang Market")
        check.page(anonymous, reverse("restaurants:list"), contains=restaurant.name)
        check.page(anonymous, reverse("restaurants:detail", args=[restaurant.pk]), contains=restaurant.name)
        check.page(anonymous, reverse("shop:products"), contains=Product.objects.first().name)
        check.page(anonymous, reverse("shop:cart"))
        check.page(anonymous, reverse("login"))
        check.page(anonymous, reverse("signup"))
        check.page(anonymous, reverse("restaurants:history"), status=302)
        if settings.SANDBOX:
            check.page(anonymous, "/sandbox/", contains="Toss Payments")
            check.page(anonymous, "/sandbox/toss/js/v2/standard", contains="TossPayments")

        admin = Client(HTTP_HOST="127.0.0.1")
        password = os.environ.get("DEMO_ADMIN_PASSWORD")
        if password:
            check.true(admin.login(username="admin", password=password), "the admin cannot log in with DEMO_ADMIN_PASSWORD")
        else:
            admin.force_login(get_user_model().objects.filter(is_superuser=True).first() or self.superuser())
        for url in ("/admin/", "/admin/restaurants/booking/", "/admin/shop/cartorder/", "/admin/django_pgpay/webhookevent/", "/admin/restaurants/seat/"):
            check.page(admin, url)

        users = get_user_model().objects
        first, second = Client(HTTP_HOST="127.0.0.1"), Client(HTTP_HOST="127.0.0.1")
        first.force_login(users.create_user("demo-check-1", password=None))
        second.force_login(users.create_user("demo-check-2", password=None))

        # Booking: GET changes nothing; POST takes one place and shows the payment window.
        seat = Seat.objects.upcoming().filter(capacity__gt=1, remain__gt=1).select_related("table").first()
        book = reverse("restaurants:book", args=[seat.pk])
        check.page(first, book, contains="Proceed to payment")
        check.true(Seat.objects.get(pk=seat.pk).remain == seat.remain, "GET of the booking page took a place")
        window = check.page(first, book, method="post", contains="pgpay-toss-pay", gateway="toss")
        sdk = settings.PGPAY["GATEWAYS"]["toss"]["OPTIONS"].get("JS_SDK_URL", "https://js.tosspayments.com/v2/standard")
        check.true(sdk in window.content.decode(), f"the payment window does not load {sdk}")
        check.true(Seat.objects.get(pk=seat.pk).remain == seat.remain - 1, "booking did not take exactly one place")
        check.page(first, book, method="post", gateway="toss")
        check.true(Seat.objects.get(pk=seat.pk).remain == seat.remain - 1, "a second click took a second place")
        check.true(Booking.objects.filter(seat=seat, status="READY").count() == 1, "a second click made a second booking")
        check.page(first, reverse("restaurants:history"), contains=Booking.objects.get(seat=seat).order_number)

        # The admin: the booking as streamed CSV (BOM, Hangul) and its order page.
        booking = Booking.objects.get(seat=seat)
        exported = admin.post("/admin/restaurants/booking/", {"action": "export_csv", "_selected_action": [booking.pk]})
        text = b"".join(exported.streaming_content).decode("utf-8") if exported.streaming else ""
        check.true(
            text.startswith("\ufeff") and booking.order_number in text and seat.table.restaurant.name in text,
            "the admin's CSV export lacks the BOM, the booking or its restaurant",
        )
        check.page(admin, f"/admin/restaurants/booking/{booking.pk}/detail/", contains=booking.order_number)

        # The last place: one buyer gets it, the next one the sold-out page (409), nothing taken.
        last = Seat.objects.upcoming().filter(capacity=1, remain=1).first()
        check.true(last is not None, "no single-place seat in the demo data")
        check.page(first, reverse("restaurants:book", args=[last.pk]), method="post", gateway="toss")
        check.page(second, reverse("restaurants:book", args=[last.pk]), method="post", status=409, contains="fully booked", gateway="toss")
        check.true(Seat.objects.get(pk=last.pk).remain == 0, "the last place was not taken exactly once")

        # Cart: add, order, pay page.
        product = Product.objects.first()
        check.page(first, reverse("shop:cart-add", args=[product.pk]), method="post", status=302, quantity="2")
        check.page(first, reverse("shop:cart"), contains=product.name)
        created = check.page(
            first, reverse("shop:order-create"), method="post", status=302, recipient="Kim", address="Seoul", phone="", gateway="toss"
        )
        order = CartOrder.objects.get(user__username="demo-check-1")
        check.true(created["Location"] == order.get_absolute_url(), "placing the order did not lead to its page")
        check.true(order.amount == product.price * 2 and order.lines.count() == 1, "the order's amount or lines are wrong")
        check.page(first, order.get_absolute_url(), contains=order.order_number)
        check.page(first, reverse("shop:pay", args=[order.order_number]), method="post", contains="pgpay-toss-pay")
        check.page(second, order.get_absolute_url(), status=404)

    @staticmethod
    def superuser():
        return get_user_model().objects.create_superuser("demo-check-admin", password=None)
