"""The admin pages reworded on 8 December against odd stored data and scoped admins (a review of those changes)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission

from django_pgpay import labels
from django_pgpay.models import WebhookEvent
from django_pgpay.status import OrderStatus as S
from tests.test_admin_wording import webhook_row

pytestmark = pytest.mark.django_db


def change_url(order):
    return f"/admin/{order._meta.app_label}/{order._meta.model_name}/{order.pk}/change/"


@pytest.mark.parametrize("pg_data", [["vbank_account_number"], "T4571337034324", 5])
def test_a_waiting_order_with_odd_pg_data_opens(admin_client, make_booking, pg_data):
    """_deposit_account does (order.pg_data or {}).get(...): a list/str/number pg_data is an AttributeError."""
    booking = make_booking()
    type(booking).objects.filter(pk=booking.pk).update(status=S.WAITING_FOR_DEPOSIT, pg_data=pg_data)
    assert admin_client.get(change_url(booking)).status_code == 200


@pytest.mark.parametrize("pg_data", [["x"], "text", {"vbank_account_number": {"a": [1]}, "vbank_bank_code": ["004"]}])
def test_a_paid_order_with_odd_pg_data_opens(admin_client, pay_booking, pg_data):
    booking = pay_booking()
    type(booking).objects.filter(pk=booking.pk).update(pg_data=pg_data)
    assert admin_client.get(change_url(booking)).status_code == 200


@pytest.mark.parametrize("reason", ["cancel 1.2.3 confirmed", "refund . found at the PG", "status PAID; cancel 5.000.000 confirmed"])
def test_changes_never_raises_on_stored_text(reason):
    """labels.changes() calls Decimal() on the regex's [\\d.]+ : '1.2.3' is InvalidOperation, a 500 on the order page."""
    assert labels.changes(reason)


def test_a_webhook_row_with_an_unreadable_amount_does_not_break_the_order_page(admin_client, pay_booking):
    booking = pay_booking()
    webhook_row(booking, "status PAID; cancel 1.000.0 confirmed", key="wh-odd")
    assert admin_client.get(change_url(booking)).status_code == 200


def test_webhook_row_text_is_escaped(admin_client, pay_booking):
    booking = pay_booking()
    webhook_row(booking, "status <img src=x onerror=alert(1)>; <script>alert(2)</script>", key="wh-xss")
    page = admin_client.get(change_url(booking)).content.decode()
    assert "<script>alert(2)" not in page and "<img src=x" not in page


def test_all_fields_of_an_order_with_an_unknown_currency_open(admin_client, pay_booking):
    booking = pay_booking()
    type(booking).objects.filter(pk=booking.pk).update(currency="ZZZ")
    assert admin_client.get(change_url(booking)).status_code == 200


def test_money_of_a_nan_amount_is_text_not_an_exception():
    """labels.money catches ArithmeticError around quantize, but 'value < 0' on Decimal('NaN') raises outside it.

    PostgreSQL's numeric stores 'NaN'; 'All fields' (shown_amount) and labels.changes go through money().
    """
    assert labels.money(Decimal("NaN"), "KRW")


def test_webhook_page_links_no_order_the_staff_members_admin_does_not_list(client, django_user_model, pay_booking, monkeypatch):
    """order_admin_url checks has_view_or_change_permission(request, order) only, not the admin's get_queryset.

    A shop scoping orders per staff member (a branch's orders only) shows its staff a link to (and the pk of)
    an order its admin hides; the order admin itself 404s/redirects for it.
    """
    booking = pay_booking()
    order_admin = admin.site._registry[type(booking)]
    monkeypatch.setattr(order_admin, "get_queryset", lambda request: type(booking)._default_manager.none())
    clerk = django_user_model.objects.create_user("branch", password="pw", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename__in=["view_webhookevent", "view_booking"]))
    client.force_login(clerk)
    # The order admin itself does not show it to this clerk.
    assert client.get(change_url(booking)).status_code in (302, 404)
    event = WebhookEvent.objects.create(gateway="fake", event_type="PAID", order_number=booking.order_number)
    page = client.get(f"/admin/django_pgpay/webhookevent/{event.pk}/change/").content.decode()
    assert "pgpay-webhook-order" not in page


def test_webhook_page_of_an_unknown_pg_and_odd_number_opens(admin_client):
    # The longest number the log stores (the webhook view cuts it to 64; PostgreSQL and MariaDB refuse more).
    for gateway, number in [("gone-pg", "A" * 64), ("", "x\u202e"), ("fake", "")]:
        event = WebhookEvent.objects.create(gateway=gateway, event_type="PAID", order_number=number)
        assert admin_client.get(f"/admin/django_pgpay/webhookevent/{event.pk}/change/").status_code == 200
