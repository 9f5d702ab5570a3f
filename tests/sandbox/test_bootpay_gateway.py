"""OUR BootpayGateway, unchanged, against the emulated Bootpay over a real socket (no browser).

Only ``API_BASE`` and ``JS_SDK_URL`` differ from a shop talking to Bootpay. The
buyer's window is played by :func:`django_pgpay.sandbox.bootpay.authenticate`;
the browser tests drive the real window.
"""

import re
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.test import Client

from django_pgpay import payments
from django_pgpay.exceptions import CancelRefused, PgPayDeprecationWarning
from django_pgpay.gateways.results import CancelRequest, RefundAccount
from django_pgpay.permissions import buyer_token
from django_pgpay.sandbox import bootpay as emulated
from django_pgpay.sandbox import control
from django_pgpay.sandbox.models import SandboxPayment
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = pytest.mark.django_db(transaction=True)


def return_url(booking, receipt_id, event="confirm"):
    return "/pay/bootpay/return/?" + urlencode(
        {"event": event, "receipt_id": receipt_id, "order_id": booking.order_number, "pgpay_t": buyer_token(booking.order_number)}
    )


def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def cancel_form(client, booking, *, partial=False):
    """The fields of the booking's cancel form on the history page (the full or the partial one)."""
    page = client.get("/history/").content.decode()
    block = page.split(f'id="booking-{booking.order_number}"', 1)[1].split("</li>", 1)[0]
    forms = re.findall(r"<form.*?</form>", block, re.S)
    form = next(f for f in forms if ('name="amount"' in f) == partial)
    action = re.search(r'action="([^"]+)"', form).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    return action, fields


def sandbox_cancels(receipt_id):
    """The cancels the emulated Bootpay carried out for ``receipt_id`` (its own record)."""
    return SandboxPayment.objects.get(pg="bootpay", key=receipt_id).session.get("cancels", [])


@pytest.fixture
def paid_booking_at_sandbox(shop_gateway, make_booking, buyer, live_server):
    """Seed 004's payment through our return view: 10,000 won, approved by the server at the sandbox."""

    def make(amount=10000, method="card", **gateway_options):
        shop_gateway(**gateway_options)
        booking = make_booking(amount=Decimal(amount), gateway="bootpay")
        made = emulated.authenticate(booking.order_number, amount, method=method, order_name="한우집 예약", origin=live_server.url)
        client = Client()
        client.force_login(buyer)
        response = client.get(return_url(booking, made["receipt_id"]))
        assert response.status_code == 200, response.content
        booking.refresh_from_db()
        return booking

    return make


def test_confirm_through_the_return_view(paid_booking_at_sandbox):
    booking = paid_booking_at_sandbox()
    assert booking.status == S.PAID and booking.paid_at is not None
    receipt = emulated.receipt(booking.pg_payment_id)
    assert receipt["status"] == 1 and receipt["order_id"] == booking.order_number
    assert booking.method == "카드" and booking.receipt_url == receipt["receipt_url"]
    (row,) = booking.transactions.filter(kind=K.CONFIRM)
    assert (row.status, row.amount, row.pg_payment_id) == (T.SUCCEEDED, Decimal(10000), booking.pg_payment_id)


def test_legacy_keys_with_a_token_that_expires_midway(paid_booking_at_sandbox):
    booking = paid_booking_at_sandbox(legacy=True)
    assert booking.status == S.PAID
    gateway = booking.get_gateway()
    first = gateway.access_token()
    emulated.expire_tokens()  # the token dies before the gateway thought it would
    outcome = payments.cancel(booking, Decimal(3000), reason="부분 취소", source="staff")
    assert outcome.order.status == S.PARTIAL_CANCELED
    assert gateway.access_token() != first  # fetched again after Bootpay's 401 TOKEN_KEY_INVALID


def test_seed_004_partial_cancel_then_the_rest(paid_booking_at_sandbox, buyer, seat):
    """3,000 of 10,000, then the rest, through the cancel view: both cancel_ids in the ledger and at Bootpay."""
    booking = paid_booking_at_sandbox()
    client = csrf_client(buyer)
    action, fields = cancel_form(client, booking, partial=True)
    assert client.post(action, {**fields, "amount": "3,000", "reason": "부분 취소", "confirm": "1"}).status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount, booking.balance) == (S.PARTIAL_CANCELED, Decimal(3000), Decimal(7000))
    action, fields = cancel_form(client, booking)
    assert client.post(action, {**fields, "confirm": "1"}).status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount, booking.balance) == (S.CANCELED, Decimal(10000), 0)
    assert booking.canceled_at is not None
    rows = list(booking.transactions.filter(kind=K.CANCEL).order_by("pk"))
    assert [(r.status, r.amount) for r in rows] == [(T.SUCCEEDED, Decimal(3000)), (T.SUCCEEDED, Decimal(7000))]
    at_bootpay = sandbox_cancels(booking.pg_payment_id)
    assert [c["cancel_id"] for c in at_bootpay] == [r.idempotency_key for r in rows] == [r.pg_transaction_id for r in rows]
    assert [c["price"] for c in at_bootpay] == [3000, 7000]
    assert [c["username"] for c in at_bootpay] == ["buyer", "buyer"]
    assert emulated.receipt(booking.pg_payment_id)["cancelled_price"] == 10000
    seat.refresh_from_db()
    assert seat.remain == 3


def test_a_repeated_partial_cancel_refunds_once(paid_booking_at_sandbox, buyer):
    booking = paid_booking_at_sandbox()
    client = csrf_client(buyer)
    action, fields = cancel_form(client, booking, partial=True)
    assert client.post(action, {**fields, "amount": "3000", "confirm": "1"}).status_code == 302
    assert client.post(action, {**fields, "amount": "3000", "confirm": "1"}).status_code == 302  # the same form again
    booking.refresh_from_db()
    assert booking.canceled_amount == Decimal(3000)
    assert len(sandbox_cancels(booking.pg_payment_id)) == 1
    assert emulated.receipt(booking.pg_payment_id)["cancelled_price"] == 3000


def test_the_same_cancel_id_sent_twice_to_bootpay_refunds_once(paid_booking_at_sandbox):
    """Below the ledger: the gateway itself sends one cancel_id twice; Bootpay refuses the second."""
    booking = paid_booking_at_sandbox()
    gateway = booking.get_gateway()
    snapshot = booking.snapshot()
    request = CancelRequest(
        order=snapshot,
        payment_id=booking.pg_payment_id,
        amount=Decimal(3000),
        currency="KRW",
        reason="부분 취소",
        idempotency_key=f"{booking.order_number}-cancel-same",
        balance_before=Decimal(10000),
        requested_by="staff",
    )
    assert gateway.cancel(request).payment.canceled_amount == Decimal(3000)
    again = gateway.cancel(request)  # refused by Bootpay; the receipt shows this very cancel: done, not refused
    assert (again.pg_cancel_id, again.amount, again.payment.canceled_amount) == (request.idempotency_key, Decimal(3000), Decimal(3000))
    assert emulated.receipt(booking.pg_payment_id)["cancelled_price"] == 3000
    assert len(sandbox_cancels(booking.pg_payment_id)) == 1


def test_two_partial_cancels_over_the_price_the_second_is_refused_before_bootpay(paid_booking_at_sandbox, buyer):
    booking = paid_booking_at_sandbox()
    client = csrf_client(buyer)
    action, fields = cancel_form(client, booking, partial=True)
    assert client.post(action, {**fields, "amount": "6000", "confirm": "1"}).status_code == 302
    action, fields = cancel_form(client, booking, partial=True)
    refused = client.post(action, {**fields, "amount": "6000", "confirm": "1"})
    assert refused.status_code == 409 and "exceeds what is left to cancel (₩4,000)".encode() in refused.content
    assert len(sandbox_cancels(booking.pg_payment_id)) == 1


@pytest.mark.parametrize("amount", ["", "3000"])
def test_cancelled_in_bootpays_admin_leaves_the_order_canceled(paid_booking_at_sandbox, buyer, seat, amount):
    booking = paid_booking_at_sandbox()
    emulated.cancel_at_pg(booking.pg_payment_id)  # Bootpay's admin, before the shop asks
    client = csrf_client(buyer)
    action, fields = cancel_form(client, booking, partial=bool(amount))
    response = client.post(action, {**fields, "amount": amount, "confirm": "1"}, follow=True)
    assert response.status_code == 200 and "The payment was cancelled." in response.content.decode()
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount, booking.balance) == (S.CANCELED, Decimal(10000), 0)
    assert booking.canceled_at is not None
    assert booking.transactions.get(kind=K.CANCEL).status == T.FAILED  # our request gave nothing back
    assert booking.transactions.get(kind=K.SYNC).amount == Decimal(10000)
    assert [c["by"] for c in sandbox_cancels(booking.pg_payment_id)] == ["admin"]
    seat.refresh_from_db()
    assert seat.remain == 3


def test_a_partial_cancel_in_bootpays_admin_is_found_by_reconcile(paid_booking_at_sandbox):
    booking = paid_booking_at_sandbox()
    emulated.cancel_at_pg(booking.pg_payment_id, 4000)
    payments.reconcile(booking, deep=True)
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(4000))


def test_partial_cancels_when_bootpay_keeps_status_1(paid_booking_at_sandbox, bootpay_settings):
    bootpay_settings(PARTIAL_CANCEL_STATUS=1)
    booking = paid_booking_at_sandbox()
    payments.cancel(booking, Decimal(3000), reason="부분 취소", source="staff")
    booking.refresh_from_db()
    assert emulated.receipt(booking.pg_payment_id)["status"] == 1
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(3000))
    payments.cancel(booking, payments.FULL, reason="나머지", source="staff")
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and emulated.receipt(booking.pg_payment_id)["status"] == 20


def test_a_lost_cancel_answer_is_settled_by_a_lookup_never_resent(paid_booking_at_sandbox):
    booking = paid_booking_at_sandbox()
    control.arm_fault("bootpay", "cancel", "error_after")
    outcome = payments.cancel(booking, Decimal(3000), reason="부분 취소", source="staff")
    assert outcome.pending
    row = booking.transactions.get(kind=K.CANCEL)
    assert row.status == T.UNKNOWN
    payments.reconcile(booking)
    row.refresh_from_db()
    booking.refresh_from_db()
    assert row.status == T.SUCCEEDED and booking.canceled_amount == Decimal(3000)
    assert len(sandbox_cancels(booking.pg_payment_id)) == 1


def test_a_tampered_price_is_approved_then_given_back(shop_gateway, make_booking, buyer, seat, live_server):
    shop_gateway()
    booking = make_booking(amount=Decimal(20000), gateway="bootpay")
    # The buyer changed the price in the browser: Bootpay authenticates 100 won.
    made = emulated.authenticate(booking.order_number, 100, origin=live_server.url)
    client = Client()
    client.force_login(buyer)
    response = client.get(return_url(booking, made["receipt_id"]))
    assert response.status_code == 400
    booking.refresh_from_db()
    assert booking.status == S.FAILED
    receipt = emulated.receipt(made["receipt_id"])
    assert (receipt["status"], receipt["cancelled_price"]) == (20, 100)  # the compensating cancel
    seat.refresh_from_db()
    assert seat.remain == 3


def test_virtual_account_then_deposit_webhook(paid_booking_at_sandbox, seat):
    booking = paid_booking_at_sandbox(30000, "vbank")
    assert booking.status == S.WAITING_FOR_DEPOSIT and booking.paid_at is None
    assert booking.pg_data["vbank_account_number"] == emulated.receipt(booking.pg_payment_id)["vbank_data"]["bank_account"]
    control.deliver_webhooks()  # PAYMENT_VIRTUAL_ACCOUNT_ISSUED
    emulated.deposit(booking.pg_payment_id)
    results = control.deliver_webhooks()  # PAYMENT_COMPLETED to the shop's webhook view
    assert [(r.event_type, r.delivered) for r in results] == [("PAYMENT_COMPLETED", True)]
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.paid_at is not None


def test_a_virtual_account_refund_needs_the_buyers_account(paid_booking_at_sandbox):
    booking = paid_booking_at_sandbox(30000, "vbank")
    emulated.deposit(booking.pg_payment_id)
    payments.reconcile(booking, deep=True)
    booking.refresh_from_db()
    assert booking.status == S.PAID
    with pytest.raises(CancelRefused):
        payments.cancel(booking, Decimal(10000), reason="환불", source="staff")
    account = RefundAccount(bank="004", number="1234567890", holder="김부트")
    payments.cancel(booking, Decimal(10000), reason="환불", source="staff", refund_account=account)
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(10000))
    # The old pg_data convention still works, with a deprecation warning.
    booking.pg_data = {**booking.pg_data, "bootpay_refund": {"bank_account": "1234567890", "bank_username": "김부트", "bank_code": "004"}}
    booking.save(update_fields=["pg_data"])
    with pytest.warns(PgPayDeprecationWarning, match="bootpay_refund"):
        payments.cancel(booking, Decimal(5000), reason="환불", source="staff")
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(15000))
