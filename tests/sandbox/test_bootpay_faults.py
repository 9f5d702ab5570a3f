"""Faults of the emulated Bootpay, seen by a client written from bootpay.md and by OUR gateway."""

import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.test import Client

from django_pgpay import payments
from django_pgpay.permissions import buyer_token
from django_pgpay.sandbox import bootpay as emulated
from django_pgpay.sandbox import control
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

from .conftest import AVAILABLE_APPS

sandbox_only = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)
with_shop = pytest.mark.django_db(transaction=True)


def status_of(bootpay, receipt_id):
    return bootpay.receipt(receipt_id).json()["status"]


# --- on the wire ------------------------------------------------------------------------


@sandbox_only
def test_decline_at_confirm(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    control.arm_fault("bootpay", "confirm", "decline")
    reply = bootpay.confirm(made["receipt_id"])
    assert reply.status_code == 400
    assert reply.json() == {"error_code": "RC_CONFIRM_FAILED", "message": "[카드사 거절] 한도가 초과되었습니다.", "pg_error_code": "8326"}
    receipt = bootpay.receipt(made["receipt_id"]).json()
    assert (receipt["status"], receipt["status_locale"]) == (-2, "승인실패")
    assert bootpay.confirm(made["receipt_id"]).json()["error_code"] == "RC_CONFIRM_FAILED"  # final


@sandbox_only
def test_decline_that_leaves_the_receipt_waiting(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    control.arm_fault("bootpay", "confirm", "decline", receipt_status=2, pg_error_code="1512", message="회원사 서비스 개시 안됨")
    reply = bootpay.confirm(made["receipt_id"]).json()
    assert (reply["pg_error_code"], reply["message"]) == ("1512", "회원사 서비스 개시 안됨")
    assert status_of(bootpay, made["receipt_id"]) == 2
    assert bootpay.confirm(made["receipt_id"]).json()["status"] == 1


@sandbox_only
def test_error_before_changes_nothing_error_after_loses_the_answer(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    control.arm_fault("bootpay", "confirm", "error_before")
    reply = bootpay.confirm(made["receipt_id"])
    assert reply.status_code == 500 and reply.json()["error_code"] == "INTERNAL_SERVER_ERROR"
    assert status_of(bootpay, made["receipt_id"]) == 2
    control.arm_fault("bootpay", "confirm", "error_after", status=502, code="PG_SERVER_ERROR", message="PG사 응답 지연")
    reply = bootpay.confirm(made["receipt_id"])
    assert (reply.status_code, reply.json()) == (502, {"error_code": "PG_SERVER_ERROR", "message": "PG사 응답 지연"})
    assert status_of(bootpay, made["receipt_id"]) == 1  # approved all the same


@sandbox_only
def test_malformed_and_late_answers(bootpay, bootpay_paid):
    paid = bootpay_paid()
    control.arm_fault("bootpay", "lookup", "malformed_before")
    reply = bootpay.receipt(paid["receipt_id"])
    assert reply.status_code == 200 and reply.text.startswith("<html>")
    with pytest.raises(ValueError):
        reply.json()
    control.arm_fault("bootpay", "cancel", "timeout_after", delay=1.5)
    bootpay.timeout = 0.5
    with pytest.raises(Exception, match="timed out"):
        bootpay.cancel(paid["receipt_id"], 3000, cancel_id="late")
    bootpay.timeout = 10
    time.sleep(1.2)  # the server finishes its late answer
    assert bootpay.receipt(paid["receipt_id"]).json()["cancelled_price"] == 3000
    again = bootpay.cancel(paid["receipt_id"], 3000, cancel_id="late")  # the retry of the same cancel
    assert again.json()["error_code"] == "RC_CANCEL_FAILED"
    assert bootpay.receipt(paid["receipt_id"]).json()["cancelled_price"] == 3000


@sandbox_only
def test_star_faults_do_not_hit_the_token_call(bootpay, bootpay_paid):
    paid = bootpay_paid()
    control.arm_fault("bootpay", "*", "error_before")
    assert bootpay.token().status_code == 200
    assert bootpay.receipt(paid["receipt_id"]).status_code == 500
    control.arm_fault("bootpay", "token", "error_before", status=503)
    assert bootpay.token().status_code == 503
    assert bootpay.token().status_code == 200


# --- what OUR gateway makes of them --------------------------------------------------------


def return_url(booking, receipt_id):
    return "/pay/bootpay/return/?" + urlencode(
        {"event": "confirm", "receipt_id": receipt_id, "order_id": booking.order_number, "pgpay_t": buyer_token(booking.order_number)}
    )


@pytest.fixture
def authenticated_booking(shop_gateway, make_booking, buyer, live_server):
    """A booking whose buyer authenticated at the sandbox: (booking, receipt_id, client)."""

    def make(amount=10000, method="card", **options):
        shop_gateway(**options)
        booking = make_booking(amount=Decimal(amount), gateway="bootpay")
        made = emulated.authenticate(booking.order_number, amount, method=method, origin=live_server.url)
        client = Client()
        client.force_login(buyer)
        return booking, made["receipt_id"], client

    return make


@with_shop
def test_a_declined_confirm_fails_the_order_and_returns_the_seat(authenticated_booking, seat):
    booking, receipt_id, client = authenticated_booking()
    control.arm_fault("bootpay", "confirm", "decline")
    response = client.get(return_url(booking, receipt_id))
    assert response.status_code == 402
    booking.refresh_from_db()
    assert booking.status == S.FAILED
    assert booking.transactions.get(kind=K.CONFIRM).error_code == "RC_CONFIRM_FAILED"
    seat.refresh_from_db()
    assert seat.remain == 3


@with_shop
@pytest.mark.parametrize(("kind", "params"), [("error_after", {}), ("timeout_after", {"delay": 1.5})])
def test_a_lost_confirm_answer_is_pending_then_paid_by_reconcile(authenticated_booking, kind, params):
    booking, receipt_id, client = authenticated_booking(TIMEOUT=(1, 0.5))
    control.arm_fault("bootpay", "confirm", kind, **params)
    response = client.get(return_url(booking, receipt_id))
    assert response.status_code == 202  # "being processed"
    booking.refresh_from_db()
    assert booking.status != S.PAID and booking.transactions.get(kind=K.CONFIRM).status == T.UNKNOWN
    if kind == "timeout_after":
        time.sleep(1.2)  # the server finishes its late answer
    payments.reconcile(booking)
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert emulated.receipt(receipt_id)["status"] == 1


@with_shop
def test_a_broken_confirm_answer_is_read_from_the_receipt(authenticated_booking):
    booking, receipt_id, client = authenticated_booking()
    control.arm_fault("bootpay", "confirm", "malformed_after")
    assert client.get(return_url(booking, receipt_id)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID


@with_shop
def test_a_refused_cancel_changes_nothing(authenticated_booking):
    booking, receipt_id, client = authenticated_booking()
    client.get(return_url(booking, receipt_id))
    control.arm_fault("bootpay", "cancel", "error_before", status=400, code="RC_CANCEL_FAILED", message="PG사 취소 실패")
    response = client.post(f"/pay/cancel/{booking.order_number}/", {"token": "t1", "full": "1", "confirm": "1"})
    assert response.status_code == 409 and "PG사 취소 실패" in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == S.PAID and emulated.receipt(receipt_id)["cancelled_price"] == 0


@with_shop
def test_the_token_call_fails_and_nothing_was_sent(authenticated_booking):
    booking, receipt_id, client = authenticated_booking(legacy=True)
    control.arm_fault("bootpay", "token", "error_before", status=503)
    response = client.get(return_url(booking, receipt_id))
    assert response.status_code == 503
    booking.refresh_from_db()
    assert booking.status == S.READY
    assert emulated.receipt(receipt_id)["status"] == 2
    assert client.get(return_url(booking, receipt_id)).status_code == 200  # the buyer tries again
    booking.refresh_from_db()
    assert booking.status == S.PAID


@with_shop
def test_an_expired_token_is_fetched_again(authenticated_booking):
    booking, receipt_id, client = authenticated_booking(legacy=True)
    gateway = booking.get_gateway()
    first = gateway.access_token()
    control.advance_clock(minutes=31)  # the sandbox's clock: Bootpay has forgotten the token
    assert client.get(return_url(booking, receipt_id)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert gateway.access_token() != first
