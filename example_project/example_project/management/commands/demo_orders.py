"""``manage.py demo_orders``: a buyer's sample orders in the statuses a shop sees, for the admin to work on.

So that the admin of a fresh ``make demo`` has orders to export, print and
refund: a demo buyer's bookings and cart orders, paid, partly refunded (a cart
order), refunded, waiting for a bank transfer, and one still open. Each is made the
way a buyer makes it, through the shop's own views and the sandbox's Toss (the
checkout, the SDK's window and its Pay or "virtual account" button, the return
URL that confirms, the cancel form's two steps), with the PG calls answered in
this process
(:func:`example_project.inprocess.served_in_process`) and the sandbox's
webhooks delivered to the shop after each step, as the PG sends them. The
shop's ledgers and the sandbox's records agree: looking the orders up at the
PG changes nothing (``manage.py demo_check`` proves it).

Idempotent: when the demo buyer has orders already, nothing is added. Needs the
sandbox (``EXAMPLE_SANDBOX``) and ``manage.py demo_data`` first.

The demo buyer logs in with the demo admin's password, read as
``scripts/demo.sh`` reads it: ``DEMO_ADMIN_PASSWORD`` (``make demo`` exports
it), else the file it is kept in (``DEMO_PASSWORD_FILE``, default
``example_project/.demo-admin-password``). Set on every run, so it follows the
admin's; with neither, the buyer's password is left as it is (none, as made).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test import Client, override_settings
from django.urls import reverse
from restaurants.models import Booking, Seat
from shop.models import CartOrder, Product

from django_pgpay import payments
from django_pgpay.sandbox.toss import sdk_payload
from django_pgpay.status import TransactionSource
from example_project.inprocess import served_in_process
from example_project.payment import offered_aliases

#: The demo buyer's username (their password is the demo admin's: :func:`demo_password`).
BUYER = "demo-buyer"


def demo_password() -> str | None:
    """The demo admin's password, as ``scripts/demo.sh`` has it: ``DEMO_ADMIN_PASSWORD``, else the file it keeps it in."""
    given = os.environ.get("DEMO_ADMIN_PASSWORD")
    if given:
        return given
    kept = Path(os.environ.get("DEMO_PASSWORD_FILE") or Path(settings.BASE_DIR) / ".demo-admin-password")
    try:
        password = kept.read_text("utf-8").rstrip("\n")  # as the shell's $(<file) reads it
    except OSError:
        return None
    return password or None


class Command(BaseCommand):
    help = "Add a demo buyer's sample orders (paid, refunded, waiting for a transfer, open), made through the shop and the sandbox."

    def handle(self, *args, **options):
        if not getattr(settings, "SANDBOX", False) or "django_pgpay.sandbox" not in settings.INSTALLED_APPS:
            self.stdout.write("Sample orders: none (the payment sandbox is off).")
            return
        offered = all("toss" in offered_aliases(shop) for shop in ("restaurants", "shop"))
        if not offered or "toss" not in getattr(settings, "SANDBOX_GATEWAYS", ()):
            # Paid with the sandbox's Toss in both shops only: Toss's own test environment would need
            # the network and a browser.
            self.stdout.write("Sample orders: none (Toss is not on the sandbox in both shops).")
            return
        seats = list(Seat.objects.upcoming().filter(remain__gt=0).select_related("table__restaurant").order_by("datetime", "pk"))
        if len(seats) < 4 or not Product.objects.exists():
            raise CommandError("No demo data: run manage.py demo_data first.")
        buyer, _created = get_user_model().objects.get_or_create(
            username=BUYER, defaults={"first_name": "김지민", "email": "jimin@example.com"}
        )
        # To see the samples from the buyer's side (My bookings, My orders): the admin's password, on every run.
        password = demo_password()
        if password:
            buyer.set_password(password)
            buyer.save(update_fields=["password"])
        login = f"log in as {BUYER} with the admin's password" if password else f"{BUYER}'s password not set (no DEMO_ADMIN_PASSWORD)"
        if Booking.objects.filter(user=buyer).exists() or CartOrder.objects.filter(user=buyer).exists():
            self.stdout.write("Sample orders: kept (the demo buyer has orders).")
            return
        # A different restaurant or time for each booking, in the order they are made.
        picked = list({seat.table.restaurant_id: seat for seat in reversed(seats)}.values())
        picked += [seat for seat in seats if seat not in picked]
        host = urlsplit(settings.SITE_URL).netloc
        client = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="ko")
        client.force_login(buyer)
        # No delivery thread in a command: each step's webhooks are sent by deliver() after it.
        sandbox = {**settings.PGPAY_SANDBOX, "WEBHOOKS": {**settings.PGPAY_SANDBOX.get("WEBHOOKS", {}), "DELIVERY": "manual"}}
        self.delivered = 0
        with override_settings(PGPAY_SANDBOX=sandbox), served_in_process(settings.SITE_URL):
            made = self.make(client, picked)
        summary = ", ".join(f"{count} {status}" for status, count in sorted(made.items()))
        self.stdout.write(f"Sample orders of {BUYER}: {summary}; {self.delivered} webhooks delivered; {login}.")

    def make(self, client: Client, seats: list) -> dict[str, int]:
        """The orders; returns how many ended in each status."""
        paid = self.book(client, seats[0], button="pay")
        refunded = self.book(client, seats[1], button="pay")
        self.cancel(client, refunded)
        waiting = self.book(client, seats[2], button="virtual_account")
        open_booking = self.book(client, seats[3])  # the buyer opened the window and left
        products = list(Product.objects.order_by("pk")[:2])
        cart = self.cart_and_pay(client, products)
        # Part of a cart order given back by the shop's staff (a buyer cancels a whole order:
        # CartOrder.buyer_may_cancel_part), as the admin's refund form does it.
        partly = self.cart_and_pay(client, products[:1])
        payments.cancel(partly, partly.amount // 2, reason="원두 품절", source=TransactionSource.STAFF)
        self.deliver()
        self.deliver()
        orders = [paid, refunded, waiting, open_booking, cart, partly]
        for order in orders:
            order.refresh_from_db()
        expected = ["PAID", "CANCELED", "WAITING_FOR_DEPOSIT", "READY", "PAID", "PARTIAL_CANCELED"]
        found = [order.status for order in orders]
        if found != expected:
            raise CommandError(f"the sample orders ended {found}, not {expected}")
        return dict(Counter(found))

    # --- a buyer's steps ------------------------------------------------------------

    def book(self, client: Client, seat, *, button: str | None = None) -> Booking:
        """The booking page's Pay (the place is taken, the payment window opens), then ``button`` in the window, if any."""
        response = client.post(reverse("restaurants:book", args=[seat.pk]), {"gateway": "toss"})
        params = self.window_params(response, f"booking seat {seat.pk}")
        if button:
            self.pay(client, params, button=button)
        return Booking.objects.filter(user__username=BUYER, seat=seat).latest("pk")

    def cart_and_pay(self, client: Client, products) -> CartOrder:
        for quantity, product in enumerate(products, start=1):
            self.expect(client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": str(quantity)}), 302, "adding to the cart")
        created = client.post(
            reverse("shop:order-create"),
            {"recipient": "김지민", "address": "서울특별시 마포구 월드컵북로 396", "phone": "010-1234-5678", "gateway": "toss"},
        )
        self.expect(created, 302, "placing the cart's order")
        order = CartOrder.objects.filter(user__username=BUYER).latest("pk")
        response = client.post(reverse("shop:pay", args=[order.order_number]))
        self.pay(client, self.window_params(response, f"order {order.order_number}"))
        return order

    def pay(self, client: Client, params: dict, *, button: str = "pay") -> None:
        """What the sandbox's SDK and its window's button do, then the return to the shop (which confirms)."""
        payload = sdk_payload(params)
        opened = client.post("/sandbox/toss/checkout", {"payload": json.dumps(payload)})
        self.expect(opened, 303, "opening the sandbox's payment window")
        window = urlsplit(opened["Location"]).path
        self.expect(client.get(window), 200, "the sandbox's payment window")
        paid = client.post(window, {"action": button})
        location = paid.get("Location", "")
        if paid.status_code != 302 or "paymentKey=" not in location:
            raise CommandError(f"the sandbox's window did not pay (HTTP {paid.status_code}, {location!r})")
        parts = urlsplit(location)
        returned = client.get(f"{parts.path}?{parts.query}")
        if returned.status_code >= 400:
            raise CommandError(f"the shop's return page answered HTTP {returned.status_code}")
        self.deliver()

    def cancel(self, client: Client, order) -> None:
        """The full cancel form's second step (the buyer confirmed)."""
        fields = {"token": uuid.uuid4().hex[:24], "confirm": "1", "reason": "일정이 바뀌었습니다", "full": "1"}
        url = reverse("django_pgpay:cancel", args=[order._meta.label_lower, order.order_number])
        self.expect(client.post(url, fields), 302, f"cancelling {order.order_number}")
        self.deliver()

    def deliver(self) -> None:
        """The sandbox's webhooks of the last step, to the shop's webhook URL (answered in this process)."""
        from django_pgpay.sandbox import webhooks

        results = webhooks.deliver()
        refused = [r for r in results if not r.delivered]
        if refused:
            raise CommandError(
                f"the shop refused the sandbox's webhook {refused[0].event_type} (HTTP {refused[0].status_code}: {refused[0].error})"
            )
        self.delivered += len(results)

    # --- checks -------------------------------------------------------------------------

    @staticmethod
    def window_params(response, what: str) -> dict:
        found = re.search(r'<script id="pgpay-toss-params" type="application/json">(.*?)</script>', response.content.decode(), re.S)
        if response.status_code != 200 or not found:
            raise CommandError(f"{what}: no Toss payment window (HTTP {response.status_code})")
        return json.loads(found.group(1))

    @staticmethod
    def expect(response, status: int, what: str) -> None:
        if response.status_code != status:
            raise CommandError(f"{what}: HTTP {response.status_code}, expected {status}")
