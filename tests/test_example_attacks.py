"""The example project under an attack review (7 December 2026): what a newcomer copies must hold.

Driven in process on the example's own settings and SQLite file
(:func:`tests.test_example_project.example_shell`). Each check failed before
its fix: a 500 on a 4,301-digit quantity, an order URL that took a NUL (a 500
on PostgreSQL), one cart placed twice by a double click, the buyer holding the
last place told "sold out" once the hold lapsed, a deposit refunded in full
after the meal, a deleted product counted in the cart for good.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.test_example_project import SETTINGS, example_shell

pytestmark = [
    pytest.mark.skipif(not SETTINGS.exists(), reason="no example_project/ here (the sdist leaves it out)"),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the example runs on its own SQLite file whatever the suite's database"),
]

ATTACKS = r"""
import datetime, json, re
from urllib.parse import urlsplit
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from restaurants.models import Booking, Seat
from shop.models import CartOrder, Product

call_command("migrate", interactive=False, verbosity=0)
call_command("demo_data", days=1, verbosity=0)
host = urlsplit(settings.SITE_URL).netloc
report = {}

def client_of(name):
    client = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="en", raise_request_exception=False)
    client.force_login(get_user_model().objects.create_user(name))
    return client

def hidden(page, form_id):
    form = re.search(rf'<form[^>]*id="{form_id}".*?</form>', page, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))

# 1. Thousands of digits in a quantity.
buyer = client_of("attacker")
tea, beans = Product.objects.filter(is_active=True).order_by("pk")[:2]
digits = "1" * 4301
report["huge"] = [buyer.post(reverse(name, args=[tea.pk]), {"quantity": digits}).status_code for name in ("shop:cart-add", "shop:cart-update")]
report["huge_cart"] = dict(buyer.session.get("cart", {}))

# 2. A NUL in an order's URL never reaches the database.
def resolves(path):
    try:
        resolve(path)
        return True
    except Resolver404:
        return False
report["nul"] = [resolves("/shop/orders/ab\x00cd/"), resolves("/shop/orders/ab\x00cd/pay/"), resolves("/shop/orders/abcdef/")]

# 3. "Place order" twice with one form: the second (its session read before the first emptied the
# cart, here the product put back) lands on the first order.
buyer.post(reverse("shop:cart-add", args=[tea.pk]), {"quantity": "2"})
form = {**hidden(buyer.get(reverse("shop:cart")).content.decode(), "order-form"), "recipient": "Kim", "address": "Seoul", "phone": "", "gateway": "toss"}
first = buyer.post(reverse("shop:order-create"), form)
buyer.post(reverse("shop:cart-add", args=[beans.pk]), {"quantity": "1"})
second = buyer.post(reverse("shop:order-create"), form)
orders = list(CartOrder.objects.filter(user__username="attacker"))
report["place_twice"] = {
    "token": "pgpay_form" in form,
    "orders": len(orders),
    "same_page": first["Location"] == second["Location"] == orders[0].get_absolute_url(),
    "cart_kept": dict(buyer.session.get("cart", {})) == {str(beans.pk): 1},
}

# 4. The buyer holding the last place comes back after the hold lapsed (reconciliation has not run).
seat = Seat.objects.upcoming().filter(remain__gt=0).order_by("pk").first()
Seat.objects.filter(pk=seat.pk).update(capacity=1, remain=1)
holder = client_of("holder")
url = reverse("restaurants:book", args=[seat.pk])
page = holder.get(url).content.decode()
fields = {**hidden(page, "book-form"), "gateway": "toss"}
report["hold"] = [holder.post(url, fields).status_code]
Booking.objects.filter(user__username="holder").update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
again = holder.post(url, {**hidden(holder.get(url).content.decode(), "book-form"), "gateway": "toss"})
booking = Booking.objects.get(user__username="holder")
report["hold"] += [again.status_code, Booking.objects.filter(user__username="holder").count(), booking.expires_at > timezone.now()]

# 5. A paid booking whose time has passed: no cancel button, and the buyer's cancel is refused.
diner = client_of("diner")
past = Seat.objects.create(table=seat.table, datetime=timezone.now() - datetime.timedelta(hours=3), capacity=2, remain=1)
paid = Booking.objects.create(user=get_user_model().objects.get(username="diner"), seat=past, amount=seat.table.price,
                              gateway="toss", status="PAID", paid_at=timezone.now() - datetime.timedelta(days=1), pg_payment_id="tviva_past")
history = diner.get(reverse("restaurants:history")).content.decode()
refused = diner.post(reverse("django_pgpay:cancel", args=["restaurants.booking", paid.order_number]), {"full": "1", "confirm": "1", "token": "t1"})
paid.refresh_from_db()
report["after_the_meal"] = {
    "form": f"/pay/cancel/restaurants.booking/{paid.order_number}/" in history,
    "note": f'id="cancel-closed-{paid.order_number}"' in history,
    "status": refused.status_code,
    "says": "too late to cancel" in refused.content.decode(),
    "order": paid.status,
}

# 6. A product deleted while in the cart: dropped from the count, its line removable.
shopper = client_of("shopper")
shopper.post(reverse("shop:cart-add", args=[tea.pk]), {"quantity": "3"})
session = shopper.session
session["cart"] = {**session["cart"], "999999": 2}
session.save()
report["stale"] = {"before": "Cart 5" in shopper.get(reverse("shop:products")).content.decode()}
shopper.get(reverse("shop:cart"))
report["stale"]["after"] = "Cart 3" in shopper.get(reverse("shop:products")).content.decode()
session = shopper.session
session["cart"] = {**session["cart"], "999999": 2}
session.save()
report["stale"]["remove"] = shopper.post(reverse("shop:cart-update", args=[999999]), {"quantity": "0"}).status_code
report["stale"]["left"] = dict(shopper.session.get("cart", {})) == {str(tea.pk): 3}
report["stale"]["unknown"] = shopper.post(reverse("shop:cart-update", args=[888888]), {"quantity": "0"}).status_code

# 7. The seat admin's date hierarchy with a year no calendar has (Django: OverflowError, a 500).
staff = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="en", raise_request_exception=False)
staff.force_login(get_user_model().objects.create_superuser("seat-admin", password="pw"))
report["date_hierarchy"] = [
    staff.get("/admin/restaurants/seat/", query).status_code
    for query in ({"datetime__year": "99999999999"}, {"datetime__year": "2026", "datetime__month": "99999999999"})
]
print(json.dumps(report))
"""


def test_the_example_shop_holds_under_the_attack_reviews_findings(tmp_path):
    report = example_shell(tmp_path / "attacks.sqlite3", ATTACKS)
    assert report["huge"] == [302, 302] and report["huge_cart"] == {}
    assert report["nul"] == [False, False, True]
    assert report["place_twice"] == {"token": True, "orders": 1, "same_page": True, "cart_kept": True}
    assert report["hold"] == [200, 200, 1, True]
    assert report["after_the_meal"] == {"form": False, "note": True, "status": 409, "says": True, "order": "PAID"}
    assert report["stale"] == {"before": True, "after": True, "remove": 302, "left": True, "unknown": 404}
    assert report["date_hierarchy"] == [302, 302]  # Django's "?e=1", not a 500
