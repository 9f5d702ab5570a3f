"""Refunds from the admin: the full-refund action with its confirmation page, and the partial-refund form."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages

from django_pgpay import payments
from django_pgpay.status import TransactionKind, TransactionSource, TransactionStatus
from tests.testapp.models import BookingTransaction

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/testapp/booking/"


@pytest.fixture
def paid(pay_booking):
    return pay_booking


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def cancels(order):
    return list(BookingTransaction.objects.filter(order=order, kind=TransactionKind.CANCEL).order_by("pk"))


def action(client, orders, **extra):
    return client.post(CHANGELIST, {"action": "refund_in_full", "_selected_action": [o.pk for o in orders], **extra})


# --- full refunds (action) -------------------------------------------------------------


def test_confirmation_page_lists_what_will_and_will_not_be_refunded(admin_client, paid, make_booking, pg):
    one, two = paid(Decimal(20000)), paid(Decimal(12000))
    payments.cancel(two, Decimal(2000), reason="part")
    unpaid = make_booking()
    cancels_before = pg.count("cancel")
    response = action(admin_client, [one, two, unpaid])
    assert response.status_code == 200
    page = response.content.decode()
    refundable = response.context["refundable"]
    assert {o.order_number: amount for o, amount in refundable} == {one.order_number: "20,000 KRW", two.order_number: "10,000 KRW"}
    assert [o.order_number for o, _ in response.context["not_refundable"]] == [unpaid.order_number]
    assert "Awaiting payment: no payment to refund." in page
    assert 'name="csrfmiddlewaretoken"' in page and 'name="post" value="yes"' in page and 'name="reason"' in page
    # Nothing happened yet.
    assert pg.count("cancel") == cancels_before
    one.refresh_from_db()
    assert one.status == "PAID"


def test_confirmed_refund_records_staff_and_reason(admin_client, admin_user, paid, make_booking, seat):
    one, two = paid(), paid()
    unpaid = make_booking()
    token = action(admin_client, [one, two, unpaid]).context["form"]["token"].value()
    response = action(admin_client, [one, two, unpaid], post="yes", reason="가게 사정으로 취소", token=token)
    assert response.status_code == 302
    assert "2 orders refunded in full." in texts(response)
    for order in (one, two):
        order.refresh_from_db()
        assert order.status == "CANCELED" and order.balance == 0
        (row,) = cancels(order)
        assert row.status == TransactionStatus.SUCCEEDED
        assert row.source == TransactionSource.STAFF
        assert row.actor == admin_user
        assert row.reason == "가게 사정으로 취소"
        assert row.amount == Decimal(20000)
    unpaid.refresh_from_db()
    assert unpaid.status == "READY" and cancels(unpaid) == []


def test_resubmitting_the_confirmation_refunds_once(admin_client, paid, pg):
    order = paid()
    token = action(admin_client, [order]).context["form"]["token"].value()
    action(admin_client, [order], post="yes", reason="dup", token=token)
    action(admin_client, [order], post="yes", reason="dup", token=token)
    assert len(cancels(order)) == 1 and pg.count("cancel") == 1


def test_confirmation_without_reason_is_a_400_and_changes_nothing(admin_client, paid, pg):
    order = paid()
    response = action(admin_client, [order], post="yes", reason="  ", token="abc")
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    order.refresh_from_db()
    assert order.status == "PAID" and pg.count("cancel") == 0


def test_pg_refusal_is_shown_as_an_error_message(admin_client, paid, pg):
    refused, fine = paid(), paid()
    pg.fail_next("cancel", "refuse")
    response = action(admin_client, [refused, fine], post="yes", reason="r", token="tok1")
    assert response.status_code == 302
    messages = texts(response)
    errors = [m for m in messages if "refused the refund" in m]
    assert len(errors) == 1 and "code" in errors[0]
    assert "1 order refunded in full." in messages
    statuses = set()
    for order in (refused, fine):
        order.refresh_from_db()
        statuses.add(order.status)
    assert statuses == {"PAID", "CANCELED"}


# --- partial refunds (the order page's form) ----------------------------------------------


def refund(client, order, amount, reason="부분 환불", token="tok"):
    return client.post(f"{CHANGELIST}{order.pk}/refund/", {"amount": amount, "reason": reason, "token": token})


def test_partial_refund_records_staff_and_reason(admin_client, admin_user, paid):
    order = paid()
    response = refund(admin_client, order, "5,000", token="p1")
    assert response.status_code == 302 and response["Location"].endswith(f"/{order.pk}/detail/")
    assert "Refunded 5,000 KRW of order %s." % order.order_number in texts(response)
    order.refresh_from_db()
    assert order.status == "PARTIAL_CANCELED" and order.balance == Decimal(15000)
    (row,) = cancels(order)
    assert (row.amount, row.source, row.actor, row.reason) == (Decimal(5000), "staff", admin_user, "부분 환불")
    # The rest, in a second refund.
    refund(admin_client, order, "15000", token="p2")
    order.refresh_from_db()
    assert order.status == "CANCELED" and len(cancels(order)) == 2


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("20001", "exceeds what is left"),
        ("-1", "Enter an amount in KRW"),
        ("0", "more than zero"),
        ("1,0,0,0", "Enter an amount in KRW"),
        (",", "Enter an amount in KRW"),
        ("12.5", "at most 0 decimals"),
        ("abc", "Enter an amount in KRW"),
        ("1e3", "Enter an amount in KRW"),
        ("", "This field is required."),
    ],
)
def test_bad_partial_amounts_are_refused_and_change_nothing(admin_client, paid, pg, amount, message):
    order = paid()
    response = refund(admin_client, order, amount)
    assert response.status_code == 400
    assert message in response.content.decode()
    order.refresh_from_db()
    assert order.status == "PAID" and order.canceled_amount == 0 and cancels(order) == []
    assert pg.count("cancel") == 0


def test_refund_without_reason_is_refused(admin_client, paid):
    order = paid()
    response = refund(admin_client, order, "1000", reason="")
    assert response.status_code == 400
    order.refresh_from_db()
    assert order.canceled_amount == 0


def test_usd_partial_refund_takes_cents(admin_client, make_booking, pg):
    order = make_booking(amount=Decimal("30.00"), currency="USD")
    payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount, "USD"), amount=order.amount)
    assert refund(admin_client, order, "10.25").status_code == 302
    order.refresh_from_db()
    assert order.balance == Decimal("19.75")
    assert refund(admin_client, order, "1.234").status_code == 400


def test_partial_refund_refused_by_the_pg_is_a_message_not_a_500(admin_client, paid, pg):
    order = paid()
    pg.fail_next("cancel", "refuse")
    response = refund(admin_client, order, "1000")
    assert response.status_code == 302
    (message,) = texts(response)
    assert "refused the refund of order" in message and order.order_number in message
    order.refresh_from_db()
    assert order.status == "PAID" and order.canceled_amount == 0
    (row,) = cancels(order)
    assert row.status == TransactionStatus.FAILED and row.error_code


def test_unanswered_refund_is_a_warning(admin_client, paid, pg):
    order = paid()
    pg.fail_next("cancel", "timeout_after")
    response = refund(admin_client, order, "1000")
    assert response.status_code == 302
    assert any("did not answer" in m for m in texts(response))


def test_refund_of_a_fully_refunded_order_is_refused(admin_client, paid):
    order = paid()
    payments.cancel(order, payments.FULL, reason="all")
    response = refund(admin_client, order, "1")
    assert response.status_code == 400
    assert "nothing left to refund" in response.content.decode()


def test_get_on_the_refund_url_changes_nothing(admin_client, paid, pg):
    order = paid()
    response = admin_client.get(f"{CHANGELIST}{order.pk}/refund/")
    assert response.status_code == 302 and response["Location"].endswith("/detail/")
    assert pg.count("cancel") == 0
