"""``manage.py demo_check``: prove the demo is set up, without serving it (``make demo-check``, CI).

Through Django's test client: the sample orders (``demo_orders``) agree with
the sandbox (a deep reconcile of each changes nothing), every page renders,
the admin logs in (with ``DEMO_ADMIN_PASSWORD`` when set; so does the demo
buyer, who sees their bookings), a booking takes a place and shows the PG's
payment window loading the sandbox's SDK, a second click reuses the booking,
the last place of a seat goes to one buyer and the next one gets the sold-out
page (409), a cart becomes an order with its payment window, and every PG each
shop offers opens its payment page (Toss, PortOne V1/V2 and Bootpay: the
window's page with the PG's SDK; Stripe: a redirect to the Checkout page,
which renders too). Paying needs the buyer's browser, which the e2e tests
and ``make demo`` cover.

Gateways call the sandbox over HTTP (PortOne's ``payments/prepare``,
Stripe's Checkout Session ...): while the check runs, calls to this server's
own address (``settings.SITE_URL``) are answered in process by the same test
client (:func:`example_project.inprocess.served_in_process`); anything else would go out as usual.

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

from django_pgpay import conf
from example_project.inprocess import served_in_process
from example_project.management.commands.demo_orders import BUYER
from example_project.payment import offered_aliases


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
        with transaction.atomic(), served_in_process(settings.SITE_URL):
            self.samples(check)
            self.run(check)
            self.every_pg(check)
            transaction.set_rollback(True)
        pgs = ", ".join(conf.gateway_aliases())
        self.stdout.write(
            f"Demo check: {check.count} checks passed (pages, admin, booking, sold out, cart, payment pages of {pgs}); nothing was kept."
        )

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
            # The demo buyer (demo_orders) logs in with the same password and sees their sample bookings.
            sample = Booking.objects.filter(user__username=BUYER).order_by("pk").first()
            if sample is not None:
                buyer = Client(HTTP_HOST="127.0.0.1")
                check.true(buyer.login(username=BUYER, password=password), f"{BUYER} cannot log in with DEMO_ADMIN_PASSWORD")
                check.page(buyer, reverse("restaurants:history"), contains=sample.order_number)
        else:
            admin.force_login(get_user_model().objects.filter(is_superuser=True).first() or self.superuser())
        for url in (
            "/admin/",
            "/admin/restaurants/booking/",
            "/admin/shop/cartorder/",
            "/admin/django_pgpay/webhookevent/",
            "/admin/restaurants/seat/",
        ):
            check.page(admin, url)

        users = get_user_model().objects
        first, second = Client(HTTP_HOST="127.0.0.1"), Client(HTTP_HOST="127.0.0.1")
        first.force_login(users.create_user("demo-check-1", password=None))
        second.force_login(users.create_user("demo-check-2", password=None))

        # Booking: GET changes nothing; POST takes one place and shows the payment window.
        seat = Seat.objects.upcoming().filter(capacity__gt=1, remain__gt=1, bookings=None).select_related("table").first()
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
        check.page(admin, f"/admin/restaurants/booking/{booking.pk}/change/", contains=booking.order_number)

        # Once paid, the buyer downloads the invoice from "My bookings" and the admin merges invoices.
        self.invoices(check, admin, first, booking)

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

    def every_pg(self, check: Check) -> None:
        """Each PG each shop offers opens its payment page: a table booking and a cart order per PG."""
        buyer = Client(HTTP_HOST="127.0.0.1")
        buyer.force_login(get_user_model().objects.create_user("demo-check-pgs", password=None))
        seats = Seat.objects.upcoming().filter(remain__gt=0).select_related("table").order_by("pk")
        for alias, seat in zip(offered_aliases("restaurants"), seats, strict=False):
            book = reverse("restaurants:book", args=[seat.pk])
            check.page(buyer, book, contains=f'value="{alias}"')  # the booking page offers it
            self.payment_page(check, buyer, alias, buyer.post(book, {"gateway": alias}, HTTP_ACCEPT_LANGUAGE="en"))
            check.true(
                Booking.objects.get(seat=seat, user__username="demo-check-pgs").gateway == alias, f"{alias}: the booking is not {alias}'s"
            )
        # A PG the booking shop does not offer (Stripe) is not taken from a forged form: the default is.
        for alias in [a for a in conf.gateway_aliases() if a not in offered_aliases("restaurants")]:
            seat = seats.exclude(bookings__user__username="demo-check-pgs").first()
            buyer.post(reverse("restaurants:book", args=[seat.pk]), {"gateway": alias})
            taken = Booking.objects.get(seat=seat, user__username="demo-check-pgs").gateway
            check.true(taken != alias and taken in offered_aliases("restaurants"), f"the booking shop took {alias}")
        product = Product.objects.first()
        check.page(buyer, reverse("shop:cart-add", args=[product.pk]), method="post", status=302, quantity="1")
        cart = check.page(buyer, reverse("shop:cart"))
        for alias in offered_aliases("shop"):
            check.true(f'value="{alias}"' in cart.content.decode(), f"the cart does not offer {alias}")
        for alias in offered_aliases("shop"):
            check.page(buyer, reverse("shop:cart-add", args=[product.pk]), method="post", status=302, quantity="1")
            check.page(buyer, reverse("shop:order-create"), method="post", status=302, recipient="Kim", address="Seoul", gateway=alias)
            order = CartOrder.objects.filter(user__username="demo-check-pgs").latest("pk")
            check.true(order.gateway == alias, f"{alias}: the order is not {alias}'s")
            self.payment_page(check, buyer, alias, buyer.post(reverse("shop:pay", args=[order.order_number]), HTTP_ACCEPT_LANGUAGE="en"))

    @staticmethod
    def payment_page(check: Check, buyer: Client, alias: str, response) -> None:
        """The PG's payment window (its SDK and Pay button), or its hosted page (Stripe) after a redirect."""
        options = settings.PGPAY["GATEWAYS"][alias]["OPTIONS"]
        if response.status_code == 302:  # a hosted page: Stripe Checkout
            target = response["Location"]
            check.true(target.startswith(settings.SITE_URL + "/sandbox/") or alias not in settings.SANDBOX_GATEWAYS, f"{alias}: {target}")
            if alias in settings.SANDBOX_GATEWAYS:
                check.page(buyer, target.removeprefix(settings.SITE_URL), contains="SANDBOX")
            return
        page = response.content.decode()
        check.true(response.status_code == 200 and "pgpay-pay-button" in page, f"{alias}: no payment window (HTTP {response.status_code})")
        sdk = options.get("JS_SDK_URL", "")
        check.true(not sdk or sdk in page, f"{alias}: the payment window does not load {sdk}")

    @staticmethod
    def invoices(check: Check, admin: Client, buyer: Client, booking) -> None:
        """PDF invoices (when WeasyPrint is installed): the buyer's link and download, the admin action."""
        from django.utils import timezone

        from django_pgpay.admin import invoices_module

        if invoices_module() is None:
            return
        from io import BytesIO

        from pypdf import PdfReader

        # Stands for a confirmed payment (the whole check is rolled back).
        Booking.objects.filter(pk=booking.pk).update(status="PAID", paid_at=timezone.now(), pg_payment_id="demo-check", method="카드")
        url = reverse("django_pgpay:invoice", args=[booking._meta.label_lower, booking.order_number])  # what the page links
        check.page(buyer, reverse("restaurants:history"), contains=url)
        pdf = check.page(buyer, url).content
        text = PdfReader(BytesIO(pdf)).pages[0].extract_text()
        check.true(
            booking.order_number in text and booking.seat.table.restaurant.name in text,
            "the buyer's invoice lacks the order or its restaurant",
        )
        merged = admin.post("/admin/restaurants/booking/", {"action": "invoice_pdf", "_selected_action": [booking.pk]})
        check.true(
            merged.get("Content-Type") == "application/pdf" and len(PdfReader(BytesIO(merged.content)).pages) == 1,
            "the admin's invoice action gave no PDF",
        )

    @staticmethod
    def samples(check: Check) -> None:
        """The sample orders (``manage.py demo_orders``) agree with the sandbox: looking each up at its PG changes nothing."""
        from django_pgpay import payments

        orders = [*Booking.objects.filter(user__username=BUYER), *CartOrder.objects.filter(user__username=BUYER)]
        for order in orders:
            outcome = payments.reconcile(order, deep=True)
            check.true(not outcome.changes, f"sample order {order.order_number}: its PG says otherwise ({', '.join(outcome.changes)})")
        statuses = sorted(order.status for order in orders)
        check.true(
            not orders or statuses == sorted(["PAID", "PAID", "PARTIAL_CANCELED", "CANCELED", "WAITING_FOR_DEPOSIT", "READY"]),
            f"the sample orders are {statuses}",
        )

    @staticmethod
    def superuser():
        return get_user_model().objects.create_superuser("demo-check-admin", password=None)
