"""Cancel and refund tokens that differ only in letter case are the same token, on every database.

MariaDB and MySQL compare the ledger's ``idempotency_key`` without case (a ``*_ci`` collation),
its unique index too. A cancel with the token ``abc`` and then one with ``ABC`` found the first
row in SQL there, was told "not this token" by the Python check, and wrote a row whose key the
unique index held already: an IntegrityError, a 500 (attack review). Tokens are now compared
without case everywhere: ``ABC`` after ``abc`` is a replay (the same amount) or the
``TOKEN_REUSED`` refusal (another amount), on SQLite and PostgreSQL as on MariaDB.
"""

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from django_pgpay import ledger, payments
from django_pgpay.exceptions import NotCancelable
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = pytest.mark.django_db


def logged_in(user):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def cancel_rows(order):
    return [(r.status, r.amount) for r in order.transactions.filter(kind=K.CANCEL).order_by("pk")]


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- payments.cancel ---------------------------------------------------------------------------


def test_a_token_differing_only_in_case_with_another_amount_is_token_reused(paid_booking, pg):
    first = payments.cancel(paid_booking, "1000", reason="r", source="staff", idempotency_key="abc")
    assert first.transaction.idempotency_key == f"{paid_booking.order_number}-cancel-abc"
    with pytest.raises(NotCancelable) as info:
        payments.cancel(paid_booking, "2000", reason="r", source="staff", idempotency_key="ABC")
    assert info.value.code == "TOKEN_REUSED"
    paid_booking.refresh_from_db()
    assert paid_booking.canceled_amount == Decimal(1000) and paid_booking.balance == Decimal(19000)
    assert cancel_rows(paid_booking) == [(T.SUCCEEDED, Decimal(1000))] and pg.count("cancel") == 1


def test_a_token_differing_only_in_case_with_the_same_amount_is_a_replay(paid_booking, pg):
    first = payments.cancel(paid_booking, "1000", reason="r", source="staff", idempotency_key="AbC")
    again = payments.cancel(paid_booking, "1000", reason="r", source="staff", idempotency_key="aBc")
    assert again.replayed and again.transaction.pk == first.transaction.pk
    assert first.transaction.idempotency_key == f"{paid_booking.order_number}-cancel-abc"  # stored in lower case
    paid_booking.refresh_from_db()
    assert paid_booking.canceled_amount == Decimal(1000) and pg.count("cancel") == 1


def test_a_key_stored_in_upper_case_before_the_fix_is_still_found(paid_booking, pg):
    """A row written before keys were lower-cased: found by its token in any case (SQL ``__iexact``)."""
    old = ledger.create(
        paid_booking,
        K.CANCEL,
        amount=Decimal(1000),
        currency="KRW",
        idempotency_key=f"{paid_booking.order_number}-cancel-OLD",
        status=T.FAILED,
        error_code="DECLINED",
    )
    with pytest.raises(NotCancelable) as info:
        payments.cancel(paid_booking, "2000", reason="r", source="staff", idempotency_key="old")
    assert info.value.code == "TOKEN_REUSED"
    with pytest.raises(Exception) as replayed:  # the same amount: the failed row's error again
        payments.cancel(paid_booking, "1000", reason="r", source="staff", idempotency_key="Old")
    assert not isinstance(replayed.value, NotCancelable)
    assert list(paid_booking.transactions.filter(kind=K.CANCEL)) == [old] and pg.count("cancel") == 0


def test_a_released_key_is_matched_without_case_too(paid_booking, pg):
    """A failed row whose key was released (``<key>-x<pk>``) does not stop the token's retry, in any case."""
    row = ledger.create(
        paid_booking,
        K.CANCEL,
        amount=Decimal(1000),
        currency="KRW",
        idempotency_key=f"{paid_booking.order_number}-cancel-abc-x1",
        status=T.FAILED,
    )
    assert ledger.has_key(row, f"{paid_booking.order_number}-cancel-ABC")
    outcome = payments.cancel(paid_booking, "1000", reason="r", source="staff", idempotency_key="ABC")
    assert not outcome.replayed and outcome.transaction.pk != row.pk
    paid_booking.refresh_from_db()
    assert paid_booking.canceled_amount == Decimal(1000) and pg.count("cancel") == 1


def test_the_withdrawal_of_a_virtual_account_replays_a_token_differing_only_in_case(make_booking, pg):
    booking = make_booking()
    payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount, virtual_account=True))
    first = payments.cancel(booking, payments.FULL, reason="r", idempotency_key="vaTok")
    assert first.transaction.kind == K.WITHDRAW and booking.status == "EXPIRED"
    calls = len(pg.calls)
    again = payments.cancel(booking, payments.FULL, reason="r", idempotency_key="VATOK")
    # The same row on every database (PostgreSQL used to answer with no row, MariaDB with this one).
    assert again.replayed and again.transaction is not None and again.transaction.pk == first.transaction.pk
    assert booking.transactions.filter(kind=K.WITHDRAW).count() == 1 and len(pg.calls) == calls


# --- the buyer's (or staff's) cancel view --------------------------------------------------------


@pytest.mark.parametrize("role", ["buyer", "refund_staff"])
def test_the_cancel_view_refuses_a_token_differing_only_in_case_for_another_amount(role, request, paid_booking, pg):
    client = logged_in(request.getfixturevalue(role))
    url = f"/pay/cancel/{paid_booking.order_number}/"
    amount = "20000" if role == "buyer" else "1000"  # a buyer of a booking cancels in full only
    assert client.post(url, {"token": "abc", "amount": amount, "confirm": "1"}).status_code == 302
    second = client.post(url, {"token": "ABC", "amount": "2000", "confirm": "1"})
    assert second.status_code == 409, second.status_code  # TOKEN_REUSED, the buyer's too (whose first cancel took everything)
    paid_booking.refresh_from_db()
    assert paid_booking.canceled_amount == Decimal(amount)
    assert cancel_rows(paid_booking) == [(T.SUCCEEDED, Decimal(amount))] and pg.count("cancel") == 1


def test_the_cancel_view_replays_a_token_differing_only_in_case_for_the_same_amount(refund_staff, paid_booking, pg):
    client = logged_in(refund_staff)
    url = f"/pay/cancel/{paid_booking.order_number}/"
    assert client.post(url, {"token": "abc", "amount": "1000", "confirm": "1"}).status_code == 302
    second = client.post(url, {"token": "ABC", "amount": "1000", "confirm": "1"})
    assert second.status_code == 302, second.status_code
    paid_booking.refresh_from_db()
    assert paid_booking.canceled_amount == Decimal(1000) and pg.count("cancel") == 1


# --- the admin ----------------------------------------------------------------------------------


def test_the_admin_refund_form_refuses_a_token_differing_only_in_case_for_another_amount(admin_client, paid_booking, pg):
    admin_client.raise_request_exception = False
    url = f"/admin/testapp/booking/{paid_booking.pk}/refund/"
    first = admin_client.post(url, {"amount": "1000", "reason": "r", "token": "tokenabc", "confirm": "yes"})
    assert first.status_code == 302, first.status_code
    second = admin_client.post(url, {"amount": "2000", "reason": "r", "token": "TOKENABC", "confirm": "yes"})
    assert second.status_code == 400, second.status_code
    assert "already used for another amount" in second.content.decode()
    paid_booking.refresh_from_db()
    assert paid_booking.canceled_amount == Decimal(1000)
    assert cancel_rows(paid_booking) == [(T.SUCCEEDED, Decimal(1000))] and pg.count("cancel") == 1


def test_the_admin_refund_in_full_action_replays_a_token_differing_only_in_case(admin_client, pay_booking, pg):
    admin_client.raise_request_exception = False
    order = pay_booking()
    data = {"action": "refund_in_full", "_selected_action": [order.pk], "post": "yes", "reason": "r"}
    first = admin_client.post("/admin/testapp/booking/", {**data, "token": "bulkTok"})
    assert first.status_code == 302, first.status_code
    second = admin_client.post("/admin/testapp/booking/", {**data, "token": "BULKTOK"})
    assert second.status_code == 302, second.status_code
    assert "1 order was already refunded by this form (it was sent twice); nothing more was done." in texts(second)
    order.refresh_from_db()
    assert order.canceled_amount == Decimal(20000) and order.balance == 0
    assert cancel_rows(order) == [(T.SUCCEEDED, Decimal(20000))] and pg.count("cancel") == 1
