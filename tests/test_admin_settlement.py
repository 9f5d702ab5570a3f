"""The admin's settlement page (정산): range, PG and model choices, figures, CSV, permissions."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from django_pgpay import payments
from tests.testapp.models import BookingTransaction, CartOrder

pytestmark = pytest.mark.django_db

URL = "/admin/testapp/booking/settlement/"


def staff_with(django_user_model, username, *codenames):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def day_of_sales(pay_booking, pg):
    """Today: two bookings paid (20,000원, 30,000원), 5,000원 refunded; a cart order paid 8,000원."""
    one, two = pay_booking(Decimal(20000)), pay_booking(Decimal(30000))
    payments.cancel(one, Decimal(5000), reason="part")
    cart = CartOrder.objects.create(amount=Decimal(8000))
    payments.confirm(cart, payment_id=pg.authorize(cart.order_number, cart.amount), amount=cart.amount)
    return one, two, cart


def test_the_page_shows_totals_by_pg_and_by_day(admin_client, day_of_sales):
    response = admin_client.get(URL)
    assert response.status_code == 200
    result = response.context["settlement"]
    (total,) = result.totals
    assert (total.payment_count, total.paid, total.refunded, total.net) == (3, Decimal(58000), Decimal(5000), Decimal(53000))
    assert (total.supply, total.vat) == (Decimal(48182), Decimal(4818))
    page = response.content.decode()
    assert "₩58,000" in page and "₩53,000" in page and "₩4,818" in page and "Fake PG" in page
    assert 'id="pgpay-settlement-csv"' in page
    korean = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "정산" in korean and "58,000원" in korean and "순매출" in korean and "공급가액" in korean


def test_one_model_or_one_pg(admin_client, day_of_sales):
    result = admin_client.get(URL, {"model": "testapp.cartorder"}).context["settlement"]
    assert [t.paid for t in result.totals] == [Decimal(8000)]
    result = admin_client.get(URL, {"gateway": "fake"}).context["settlement"]
    assert [t.paid for t in result.totals] == [Decimal(58000)]


def test_a_range_without_sales(admin_client, day_of_sales):
    response = admin_client.get(URL, {"since": "2020-01-01", "until": "2020-01-31"})
    assert response.status_code == 200 and 'id="pgpay-settlement-empty"' in response.content.decode()


def test_the_csv_matches_the_page(admin_client, day_of_sales):
    today = timezone.localdate().isoformat()
    response = admin_client.get(URL, {"since": today, "until": today, "format": "csv"}, HTTP_ACCEPT_LANGUAGE="ko")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="settlement-{today.replace("-", "")}-{today.replace("-", "")}.csv"'
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert rows[0] == [
        "날짜", "PG", "결제대행사 별칭", "통화", "결제 건수", "결제 금액", "환불 건수", "환불 금액", "순매출",
        "공급가액", "부가세", "자동 반환", "자동 반환 금액",
    ]  # fmt: skip
    assert rows[1:] == [[today, "가짜 PG (테스트용)", "fake", "KRW", "3", "58000", "1", "5000", "53000", "48182", "4818", "0", "0"]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "2026-02-01", "until": "2026-01-01"}, "The end of the range is before its start."),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "Choose at most 400 days."),
        # Days at the calendar's ends: the range's end + 1 day, or its start - 6 days, overflowed (a 500).
        ({"since": "9999-12-25", "until": "9999-12-31"}, "Ensure this value is less than or equal to 9998-12-31."),
        ({"until": "0001-01-03"}, "Ensure this value is greater than or equal to 1900-01-01."),
        ({"since": "0001-01-01", "until": "0001-01-01"}, "Ensure this value is greater than or equal to 1900-01-01."),
        ({"since": "yesterday"}, "Enter a valid date."),
        ({"gateway": "nope"}, "Select a valid choice."),
        ({"model": "auth.user"}, "Select a valid choice."),
    ],
)
def test_bad_ranges_are_a_400_with_the_reason(admin_client, day_of_sales, query, message):
    response = admin_client.get(URL, query)
    assert response.status_code == 400 and message in response.content.decode()
    assert admin_client.get(URL, {**query, "format": "csv"}).status_code == 400


def test_figures_come_from_the_ledger_not_the_orders(admin_client, day_of_sales):
    one, _two, _cart = day_of_sales
    # An order edited by hand says more was refunded; the ledger did not move: the settlement follows the ledger.
    type(one).objects.filter(pk=one.pk).update(canceled_amount=Decimal(20000), status="CANCELED")
    (total,) = admin_client.get(URL).context["settlement"].totals
    assert total.refunded == Decimal(5000)
    # A cancel the ledger records on another day moves that day's figures.
    yesterday = timezone.now() - datetime.timedelta(days=1)
    BookingTransaction.objects.filter(order=one, kind="cancel").update(completed_at=yesterday)
    result = admin_client.get(URL).context["settlement"]
    assert [(line.day, line.refunded) for line in result.lines] == [
        (timezone.localdate(yesterday), Decimal(5000)),
        (timezone.localdate(), Decimal(0)),
    ]


def test_the_changelist_links_to_it(admin_client):
    assert URL in admin_client.get("/admin/testapp/booking/").content.decode()


def test_settlement_needs_the_view_permission(client, django_user_model, day_of_sales):
    client.force_login(staff_with(django_user_model, "nobody"))
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"format": "csv"}).status_code == 403
    # With the view permission of bookings only, cart orders stay out of it.
    client.force_login(staff_with(django_user_model, "booker", "view_booking"))
    response = client.get(URL)
    assert response.status_code == 200
    assert [t.paid for t in response.context["settlement"].totals] == [Decimal(50000)]
    assert client.get(URL, {"model": "testapp.cartorder"}).status_code == 400
    assert URL in client.get("/admin/testapp/booking/").content.decode()


def test_a_custom_settlement_permission(client, django_user_model, day_of_sales, monkeypatch):
    from django.contrib import admin

    from tests.testapp.models import Booking

    for model in (Booking, CartOrder):
        monkeypatch.setattr(admin.site.get_model_admin(model), "settlement_permission", "testapp.delete_booking")
    client.force_login(staff_with(django_user_model, "viewer", "view_booking", "view_cartorder"))
    assert client.get(URL).status_code == 403
    assert URL not in client.get("/admin/testapp/booking/").content.decode()
    client.force_login(staff_with(django_user_model, "accountant", "view_booking", "delete_booking"))
    assert client.get(URL).status_code == 200


def test_staff_see_the_money_of_the_orders_their_admin_shows_them(client, django_user_model, pay_booking, buyer, other_buyer, monkeypatch):
    """An attack review (7 December 2026): an admin scoping its orders (one branch's, one tenant's)
    still showed every order's money in the settlement."""
    from django.contrib import admin

    from tests.testapp.models import Booking

    model_admin = admin.site._registry[Booking]
    base = type(model_admin).get_queryset
    monkeypatch.setattr(type(model_admin), "get_queryset", lambda self, request: base(self, request).filter(user__username="buyer"))
    mine = pay_booking(Decimal(20000))
    theirs = pay_booking(Decimal(500000), user=other_buyer)
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_booking"))
    client.force_login(clerk)
    listing = client.get("/admin/testapp/booking/").content.decode()
    assert mine.order_number in listing and theirs.order_number not in listing
    page = client.get("/admin/testapp/booking/settlement/?format=csv")
    text = b"".join(page.streaming_content).decode("utf-8-sig")
    assert "20000" in text and "500000" not in text and "520000" not in text
