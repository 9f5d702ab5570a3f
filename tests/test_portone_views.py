"""Seed 003's flow through our views, with PortOne mocked: prepare, pay, verify, cancel with checksums (V1 and V2)."""

import json
import re
import threading
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection, connections
from django.test import Client

from django_pgpay import payments
from django_pgpay.permissions import buyer_token
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T
from tests.portone_support import CHANNEL_KEY, IMP_SECRET, MERCHANT_CODE, STORE_ID, TIMEOUT, V1_BASE, V2_AUTH, V2_BASE
from tests.testapp.models import Booking, Seat

pytestmark = pytest.mark.django_db


def v1_return(booking, imp_uid, **extra):
    return "/pay/portone/return/?" + urlencode(
        {"imp_uid": imp_uid, "merchant_uid": booking.order_number, "pgpay_t": buyer_token(booking.order_number), **extra}
    )


def v2_return(booking, **extra):
    return "/pay/portone-v2/return/?" + urlencode(
        {"paymentId": booking.order_number, "pgpay_t": buyer_token(booking.order_number), **extra}
    )


def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def checkout(client, seat, alias):
    """Start page, then the POST that creates the booking and renders the payment window: the window's params."""
    start = client.get(f"/book/{seat.pk}/{alias}/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', start.content.decode()).group(1)
    page = client.post(f"/book/{seat.pk}/{alias}/", {"csrfmiddlewaretoken": token})
    assert page.status_code == 200
    html = page.content.decode()
    params = json.loads(re.search(r'<script id="pgpay-portone-params" type="application/json">(.*?)</script>', html, re.S).group(1))
    return html, params


def ledger(order):
    return [(r.kind, r.status, r.amount) for r in order.transactions.order_by("pk")]


def cancel(client, booking, **fields):
    whole = {} if "amount" in fields else {"full": "1"}
    return client.post(f"/pay/cancel/{booking.order_number}/", {"next": "/history/", **fields, **whole, "confirm": "1"})


# --- V1: the seed flow ------------------------------------------------------------------------


def test_seed_003_prepare_pay_verify_paid_then_cancel(buyer, seat, portone_api):
    client = csrf_client(buyer)
    html, params = checkout(client, seat, "portone")
    booking = Booking.objects.get()
    assert (booking.status, booking.gateway, booking.amount) == (S.READY, "portone", Decimal(20000))

    # 1. The amount is registered with PortOne before the window opens.
    token_request, prepare = portone_api.requests
    assert token_request.url == f"{V1_BASE}/users/getToken"
    assert prepare.method == "POST" and prepare.url == f"{V1_BASE}/payments/prepare"
    assert json.loads(prepare.body) == {"merchant_uid": booking.order_number, "amount": 20000, "currency": "KRW"}
    assert prepare.headers["Authorization"] == portone_api.tokens[0]
    assert booking.pg_data["portone_v1_prepared"] == "20000 KRW"

    # 2. The page hands IMP.request_pay the order, and no secret.
    assert '<script src="https://cdn.iamport.kr/v1/iamport.js"></script>' in html
    assert "window.IMP.init(params.merchantCode)" in html and "window.IMP.request_pay(params.request, backToShop)" in html
    assert IMP_SECRET not in html and portone_api.tokens[0] not in html
    assert (
        params["merchantCode"] == MERCHANT_CODE
        and params["returnUrl"] == f"http://testserver/pay/portone/return/?pgpay_t={buyer_token(booking.order_number)}"
    )
    assert params["request"]["channelKey"] == CHANNEL_KEY and params["request"]["merchant_uid"] == booking.order_number
    assert params["request"]["amount"] == 20000 and params["request"]["m_redirect_url"] == params["returnUrl"]
    assert params["request"]["notice_url"] == "http://testserver/pay/portone/webhook/"

    # 3. The buyer pays; the callback (or m_redirect_url) brings imp_uid back; we verify with PortOne.
    imp_uid = portone_api.pay(booking)
    done = client.get(v1_return(booking, imp_uid))
    assert done.status_code == 200 and b"Payment complete" in done.content
    (lookup,) = portone_api.sent("lookup")
    assert lookup.method == "GET" and lookup.url == f"{V1_BASE}/payments/{imp_uid}"
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == imp_uid and booking.paid_at is not None
    assert booking.method == "card" and booking.receipt_url.startswith("https://iniweb.inicis.com/")
    row = booking.transactions.get(kind=K.CONFIRM)
    assert (row.status, row.amount, row.pg_payment_id) == (T.SUCCEEDED, Decimal(20000), imp_uid)
    assert row.response["card_number"] == "***"

    # 4. A reload shows success again without asking PortOne.
    assert client.get(v1_return(booking, imp_uid)).status_code == 200
    assert len(portone_api.sent("lookup")) == 1

    # 5. Cancel from the history page: the checksum is the balance PortOne must still hold.
    response = cancel(client, booking, csrfmiddlewaretoken=client.cookies["csrftoken"].value, token="t1")
    assert response.status_code == 302
    (request,) = portone_api.sent("cancel")
    assert json.loads(request.body) == {"imp_uid": imp_uid, "checksum": 20000, "reason": "Cancelled by the customer"}
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and booking.balance == 0 and portone_api.balance(imp_uid) == 0
    assert ledger(booking) == [(K.CONFIRM, T.SUCCEEDED, Decimal(20000)), (K.CANCEL, T.SUCCEEDED, Decimal(20000))]
    assert (
        booking.transactions.get(kind=K.CANCEL).pg_transaction_id == portone_api.payments[imp_uid]["cancel_history"][0]["cancellation_id"]
    )
    seat.refresh_from_db()
    assert seat.remain == 3
    assert len(portone_api.sent("token")) == 1


def test_a_hundred_payments_in_a_row_cost_one_token_request(buyer, seat, portone_api):
    """The official client fetches a token per call; ours reuses one until shortly before it expires."""
    Seat.objects.filter(pk=seat.pk).update(remain=100)
    client = logged_in(buyer)
    for _ in range(100):
        client.post(f"/book/{seat.pk}/portone/", {"pgpay_another": "1"})  # the same seat again, on purpose
        booking = Booking.objects.get(status=S.READY)
        response = client.get(v1_return(booking, portone_api.pay(booking)))
        assert response.status_code == 200
    assert Booking.objects.filter(status=S.PAID).count() == 100
    assert len(portone_api.sent("prepare")) == 100 and len(portone_api.sent("lookup")) == 100
    assert len(portone_api.sent("token")) == 1


def test_the_tampered_amount_of_seed_003_ends_failed_with_one_compensating_cancel(buyer, seat, portone_api):
    """The browser paid 100 for a 20000 order; PortOne reports 100: the order fails and the 100 goes back once."""
    client = csrf_client(buyer)
    checkout(client, seat, "portone")
    booking = Booking.objects.get()
    imp_uid = portone_api.pay(booking, amount=100, ignore_prepare=True)

    response = client.get(v1_return(booking, imp_uid))
    assert response.status_code == 400
    assert b"The payment was not accepted and is being cancelled." in response.content
    booking.refresh_from_db()
    assert booking.status == S.FAILED and booking.paid_at is None and booking.pg_payment_id == imp_uid
    assert ledger(booking) == [(K.CONFIRM, T.FAILED, Decimal(100)), (K.COMPENSATE, T.SUCCEEDED, Decimal(100))]
    assert booking.transactions.get(kind=K.CONFIRM).error_code == "AMOUNT_MISMATCH"
    (request,) = portone_api.sent("cancel")
    assert json.loads(request.body) == {"imp_uid": imp_uid, "checksum": 100, "reason": "amount mismatch"}
    assert portone_api.payments[imp_uid]["status"] == "cancelled" and portone_api.balance(imp_uid) == 0
    seat.refresh_from_db()
    assert seat.remain == 3

    # A reload, the webhook and a reconcile neither pay the order nor cancel twice.
    reload = client.get(v1_return(booking, imp_uid))
    assert reload.status_code == 409 and b"Payment complete" not in reload.content
    Client().post(
        "/pay/portone/webhook/",
        data=json.dumps({"imp_uid": imp_uid, "merchant_uid": booking.order_number, "status": "paid"}),
        content_type="application/json",
    )
    payments.reconcile(booking, deep=True)
    booking.refresh_from_db()
    assert booking.status == S.FAILED and len(portone_api.sent("cancel")) == 1


def test_prepare_blocks_a_window_with_another_amount(buyer, seat, portone_api):
    client = logged_in(buyer)
    client.post(f"/book/{seat.pk}/portone/")
    booking = Booking.objects.get()
    with pytest.raises(AssertionError, match="blocks"):
        portone_api.pay(booking, amount=100)  # what PortOne does with the registration


def test_a_second_checkout_of_the_same_order_registers_nothing_again(buyer, seat, portone_api):
    client = logged_in(buyer)
    client.post(f"/book/{seat.pk}/portone/")
    client.post(f"/book/{seat.pk}/portone/")
    assert Booking.objects.count() == 1 and len(portone_api.sent("prepare")) == 1


def test_a_prepare_portone_refuses_is_a_clear_page_not_a_500(buyer, seat, portone_api):
    portone_api.fail_next("prepare", status=500, body={"code": -1, "message": "server error", "response": None})
    response = logged_in(buyer).post(f"/book/{seat.pk}/portone/")
    assert response.status_code == 503
    assert Booking.objects.get().status == S.READY  # the buyer may try again


# --- V1: returns that are not a payment ----------------------------------------------------------


def test_a_closed_window_shows_our_message_and_changes_nothing(portone_booking, portone_api, buyer):
    booking = portone_booking()
    query = {"error_code": "F400", "error_msg": "<b>call 010-0000-0000</b>"}
    response = logged_in(buyer).get(v1_return(booking, "imp_000000000001", **query))
    assert response.status_code == 200 and b"You closed the payment window before paying." in response.content
    assert b"call 010" not in response.content
    booking.refresh_from_db()
    assert booking.status == S.READY and portone_api.requests == []


@pytest.mark.parametrize("query", [{"merchant_uid": "ORDER_1"}, {"imp_uid": "imp_1"}, {"imp_uid": "imp_1", "merchant_uid": "../../etc"}])
def test_bad_returns_are_4xx_without_portone_calls(portone_booking, portone_api, buyer, query):
    portone_booking()
    response = logged_in(buyer).get("/pay/portone/return/?" + urlencode(query))
    assert response.status_code in (400, 404) and portone_api.requests == []


def test_a_forged_imp_uid_is_not_found_and_changes_nothing(portone_booking, portone_api, buyer):
    booking = portone_booking()
    response = logged_in(buyer).get(v1_return(booking, "imp_forged"))
    assert response.status_code == 404
    booking.refresh_from_db()
    assert booking.status == S.READY
    # PortOne knows no such payment: one lookup, and nothing in the order's ledger (issue #13, point 7).
    assert booking.transactions.count() == 0 and len(portone_api.sent("lookup")) == 1


def test_another_orders_payment_does_not_pay_this_order(portone_booking, portone_api, buyer):
    paid_elsewhere = portone_booking()
    imp_uid = portone_api.pay(paid_elsewhere)
    victim = portone_booking()
    response = logged_in(buyer).get(v1_return(victim, imp_uid))
    assert response.status_code == 400
    victim.refresh_from_db()
    assert victim.status == S.READY and not victim.transactions.filter(status=T.SUCCEEDED).exists()
    assert portone_api.sent("cancel") == []


def test_a_test_channel_payment_does_not_pay_a_real_order(portone_booking, portone_api, buyer):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking, sandbox=True)
    response = logged_in(buyer).get(v1_return(booking, imp_uid))
    assert response.status_code == 404  # PortOne's lookup hides it
    booking.refresh_from_db()
    assert booking.status == S.READY


def test_test_channels_pay_with_include_sandbox(portone_booking, portone_api, buyer, settings):
    gateways = {**settings.PGPAY["GATEWAYS"]}
    gateways["portone"] = {**gateways["portone"], "OPTIONS": {**gateways["portone"]["OPTIONS"], "INCLUDE_SANDBOX": True}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}
    booking = portone_booking()
    imp_uid = portone_api.pay(booking, sandbox=True)
    assert logged_in(buyer).get(v1_return(booking, imp_uid)).status_code == 200
    assert "include_sandbox=true" in portone_api.sent("lookup")[0].url
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_data["portone_sandbox"] is True


def test_a_window_not_paid_yet_shows_pending(portone_booking, portone_api, buyer):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking, status="ready")
    response = logged_in(buyer).get(v1_return(booking, imp_uid))
    assert response.status_code == 202
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.get().status == T.UNKNOWN


def test_a_failed_payment_leaves_the_order_payable(portone_booking, portone_api, buyer, seat):
    """PortOne approves in its window: a declined attempt is one attempt, the buyer may pay again
    with the same order (it expires when its time is up). Issue #12 case 9, #13 point 4."""
    booking = portone_booking()
    imp_uid = portone_api.pay(booking, status="failed")
    response = logged_in(buyer).get(v1_return(booking, imp_uid))
    assert response.status_code == 402
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.get().status == T.FAILED
    seat.refresh_from_db()
    assert seat.remain == 2
    retry = portone_api.pay(booking)
    assert logged_in(buyer).get(v1_return(booking, retry)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == retry


def test_a_virtual_account_waits_for_the_deposit(portone_booking, portone_api, buyer):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking, vbank=True)
    response = logged_in(buyer).get(v1_return(booking, imp_uid))
    assert response.status_code == 200 and b"T0309260000123" in response.content
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT and booking.paid_at is None
    assert booking.expires_at.timestamp() == 1718722799


# --- V1: cancels and their checksums --------------------------------------------------------------


@pytest.fixture
def paid_portone_booking(portone_booking, portone_api, buyer):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking)
    assert logged_in(buyer).get(v1_return(booking, imp_uid)).status_code == 200
    booking.refresh_from_db()
    return booking


def test_partial_cancels_each_carry_the_balance_before_them(buyer, paid_portone_booking, portone_api, seat):
    booking = paid_portone_booking
    client = logged_in(buyer)
    for amount, status in [("5000", S.PARTIAL_CANCELED), ("5,000", S.PARTIAL_CANCELED), ("10000", S.CANCELED)]:
        assert cancel(client, booking, amount=amount).status_code == 302
        booking.refresh_from_db()
        assert booking.status == status
    imp_uid = booking.pg_payment_id
    assert [json.loads(r.body) for r in portone_api.sent("cancel")] == [
        {"imp_uid": imp_uid, "amount": 5000, "checksum": 20000, "reason": "Cancelled by the customer"},
        {"imp_uid": imp_uid, "amount": 5000, "checksum": 15000, "reason": "Cancelled by the customer"},
        {"imp_uid": imp_uid, "checksum": 10000, "reason": "Cancelled by the customer"},
    ]
    ids = [c["cancellation_id"] for c in portone_api.payments[imp_uid]["cancel_history"]]
    assert list(booking.transactions.filter(kind=K.CANCEL).order_by("pk").values_list("pg_transaction_id", flat=True)) == ids
    assert booking.canceled_amount == booking.amount
    seat.refresh_from_db()
    assert seat.remain == 3


def test_a_checksum_mismatch_is_refused_and_changes_nothing_until_reconciled(buyer, paid_portone_booking, portone_api):
    """Someone gave 3000 back in PortOne's console: our checksum (20000) no longer matches, PortOne refuses."""
    booking = paid_portone_booking
    imp_uid = booking.pg_payment_id
    portone_api.cancel_in_console(imp_uid, 3000)
    client = logged_in(buyer)
    response = cancel(client, booking, amount="5000", token="t1")
    assert response.status_code == 409 and "[checksum]" in response.content.decode()
    (request,) = portone_api.sent("cancel")
    assert json.loads(request.body)["checksum"] == 20000
    assert portone_api.balance(imp_uid) == 17000  # nothing more went back
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.canceled_amount == 0
    assert booking.transactions.get(kind=K.CANCEL).status == T.FAILED

    payments.reconcile(booking, deep=True)  # finds the console's cancel
    booking.refresh_from_db()
    assert booking.status == S.PARTIAL_CANCELED and booking.canceled_amount == Decimal(3000)
    assert cancel(client, booking, amount="5000", token="t2").status_code == 302
    assert json.loads(portone_api.sent("cancel")[-1].body)["checksum"] == 17000
    booking.refresh_from_db()
    assert booking.canceled_amount == Decimal(8000) and portone_api.balance(imp_uid) == 12000


def test_a_payment_cancelled_in_the_console_is_applied_when_we_cancel(buyer, paid_portone_booking, portone_api, seat):
    booking = paid_portone_booking
    portone_api.cancel_in_console(booking.pg_payment_id)
    response = cancel(logged_in(buyer), booking, token="t1")
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and booking.canceled_amount == booking.amount
    assert [(r.kind, r.status) for r in booking.transactions.filter(kind__in=[K.CANCEL, K.SYNC]).order_by("pk")] == [
        (K.CANCEL, T.FAILED),
        (K.SYNC, T.SUCCEEDED),
    ]
    seat.refresh_from_db()
    assert seat.remain == 3


def test_a_lost_cancel_answer_is_settled_by_a_lookup_never_a_second_cancel(buyer, paid_portone_booking, portone_api):
    booking = paid_portone_booking
    portone_api.fail_next("cancel", exception=TIMEOUT, after=True)
    cancel(logged_in(buyer), booking, amount="5000", token="t1")
    row = booking.transactions.get(kind=K.CANCEL)
    assert row.status == T.UNKNOWN
    payments.reconcile(booking)
    row.refresh_from_db()
    booking.refresh_from_db()
    assert row.status == T.SUCCEEDED and booking.status == S.PARTIAL_CANCELED and booking.canceled_amount == Decimal(5000)
    assert len(portone_api.sent("cancel")) == 1


def test_reconcile_finds_a_payment_whose_return_never_came(portone_booking, portone_api):
    booking = portone_booking()
    portone_api.pay(booking)  # paid, but the buyer closed the tab before the callback ran
    booking.expires_at = booking.created  # due
    booking.save(update_fields=["expires_at"])
    payments.reconcile(booking)
    booking.refresh_from_db()
    assert booking.status == S.PAID
    # Every attempt of the order is listed (a second tab's payment must not be missed).
    assert portone_api.sent("lookup")[0].url == f"{V1_BASE}/payments/findAll/{booking.order_number}?page=1&limit=100"


# --- V2 -------------------------------------------------------------------------------------------


def test_v2_pre_register_pay_verify_paid_then_cancel(buyer, seat, portone_v2_api):
    client = csrf_client(buyer)
    html, params = checkout(client, seat, "portone-v2")
    booking = Booking.objects.get()
    (pre,) = portone_v2_api.requests
    assert pre.url == f"{V2_BASE}/payments/{booking.order_number}/pre-register"
    assert pre.headers["Authorization"] == V2_AUTH
    assert json.loads(pre.body) == {"storeId": STORE_ID, "totalAmount": 20000, "currency": "KRW"}
    assert '<script src="https://cdn.portone.io/v2/browser-sdk.js"></script>' in html
    assert "window.PortOne.requestPayment(params.request)" in html
    request = params["request"]
    assert (request["storeId"], request["channelKey"], request["paymentId"], request["totalAmount"]) == (
        STORE_ID,
        CHANNEL_KEY,
        booking.order_number,
        20000,
    )
    assert (
        request["redirectUrl"]
        == params["returnUrl"]
        == f"http://testserver/pay/portone-v2/return/?pgpay_t={buyer_token(booking.order_number)}"
    )
    assert request["noticeUrls"] == ["http://testserver/pay/portone-v2/webhook/"]

    portone_v2_api.pay(booking)
    assert client.get(v2_return(booking)).status_code == 200
    (lookup,) = portone_v2_api.sent("lookup")
    assert lookup.url == f"{V2_BASE}/payments/{booking.order_number}?storeId={STORE_ID}"
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == booking.order_number and booking.method == "card"

    client.post(
        f"/pay/cancel/{booking.order_number}/",
        {"amount": "5000", "token": "a", "csrfmiddlewaretoken": client.cookies["csrftoken"].value, "confirm": "1"},
    )
    client.post(
        f"/pay/cancel/{booking.order_number}/",
        {"token": "b", "csrfmiddlewaretoken": client.cookies["csrftoken"].value, "full": "1", "confirm": "1"},
    )
    assert [json.loads(r.body) for r in portone_v2_api.sent("cancel")] == [
        {"storeId": STORE_ID, "reason": "Cancelled by the customer", "amount": 5000, "currentCancellableAmount": 20000},
        {"storeId": STORE_ID, "reason": "Cancelled by the customer", "currentCancellableAmount": 15000},
    ]
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and portone_v2_api.balance(booking.order_number) == 0
    ids = [c["id"] for c in portone_v2_api.payments[booking.order_number]["cancellations"]]
    assert list(booking.transactions.filter(kind=K.CANCEL).order_by("pk").values_list("pg_transaction_id", flat=True)) == ids


def test_v2_tampered_amount_ends_failed_with_one_compensating_cancel(buyer, portone_v2_booking, portone_v2_api, seat):
    booking = portone_v2_booking()
    portone_v2_api.pay(booking, amount=100)
    client = logged_in(buyer)
    assert client.get(v2_return(booking)).status_code == 400
    booking.refresh_from_db()
    assert booking.status == S.FAILED
    assert ledger(booking) == [(K.CONFIRM, T.FAILED, Decimal(100)), (K.COMPENSATE, T.SUCCEEDED, Decimal(100))]
    (request,) = portone_v2_api.sent("cancel")
    assert json.loads(request.body) == {"storeId": STORE_ID, "reason": "amount mismatch", "currentCancellableAmount": 100}
    assert client.get(v2_return(booking)).status_code == 409
    assert len(portone_v2_api.sent("cancel")) == 1
    seat.refresh_from_db()
    assert seat.remain == 3


def test_v2_consistency_broken_is_refused(buyer, portone_v2_booking, portone_v2_api):
    booking = portone_v2_booking()
    portone_v2_api.pay(booking)
    client = logged_in(buyer)
    client.get(v2_return(booking))
    payment = portone_v2_api.payments[booking.order_number]
    payment["amount"]["cancelled"] = 1000  # given back elsewhere
    response = cancel(client, booking, amount="5000", token="t1")
    assert response.status_code == 409
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.transactions.get(kind=K.CANCEL).error_code == "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN"


def test_v2_failure_on_return_and_test_channels(buyer, portone_v2_booking, portone_v2_api):
    booking = portone_v2_booking()
    client = logged_in(buyer)
    response = client.get(v2_return(booking, code="FAILURE_TYPE_PG", message="거절"))
    assert response.status_code == 200 and b"The card company or the payment provider declined the payment." in response.content
    portone_v2_api.pay(booking, test_channel=True)
    assert client.get(v2_return(booking)).status_code == 404
    booking.refresh_from_db()
    assert booking.status == S.READY


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB")
def test_the_callback_the_redirect_and_the_webhook_at_once_pay_the_order_once(buyer, portone_booking, portone_api, seat):
    """PC callback, mobile m_redirect_url and PortOne's webhook may all arrive together: one confirm, one on_paid."""
    booking = portone_booking()
    imp_uid = portone_api.pay(booking)
    barrier = threading.Barrier(4)
    statuses = []

    def run(request):
        try:
            barrier.wait()
            statuses.append(request())
        finally:
            connections.close_all()

    def back():
        return logged_in(buyer).get(v1_return(booking, imp_uid)).status_code

    def webhook():
        body = json.dumps({"imp_uid": imp_uid, "merchant_uid": booking.order_number, "status": "paid"})
        return Client().post("/pay/portone/webhook/", data=body, content_type="application/json").status_code

    threads = [threading.Thread(target=run, args=(f,)) for f in (back, back, webhook, webhook)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200, 200, 200, 200]
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert booking.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == 1
    assert not booking.transactions.filter(status__in=[T.PENDING, T.UNKNOWN]).exists()
    seat.refresh_from_db()
    assert seat.remain == 2  # reserved once, never released
    assert len(portone_api.sent("token")) == 1
