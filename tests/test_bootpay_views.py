"""Seed 004 through our views, with Bootpay mocked: checkout, return (server approval) and cancel."""

import json
import re
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.test import Client

from django_pgpay import payments
from django_pgpay.permissions import buyer_token
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T
from tests.bootpay_support import BASE, BASIC, CLIENT_KEY, LEGACY, SECRET_KEY, TIMEOUT
from tests.testapp.models import Booking

pytestmark = pytest.mark.django_db


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


def ledger(order):
    return [(r.kind, r.status, r.amount) for r in order.transactions.order_by("pk")]


@pytest.fixture
def paid_bootpay_booking(bootpay_booking, bootpay_api, buyer):
    """Seed 004's payment: 10,000 won, approved by the server."""
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    client = Client()
    client.force_login(buyer)
    assert client.get(return_url(booking, receipt_id)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == receipt_id
    return booking


# --- checkout -----------------------------------------------------------------------------


def test_checkout_page_hands_the_sdk_its_parameters(buyer, seat, bootpay):
    client = csrf_client(buyer)
    start = client.get(f"/book/{seat.pk}/bootpay/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', start.content.decode()).group(1)
    page = client.post(f"/book/{seat.pk}/bootpay/", {"csrfmiddlewaretoken": token})
    assert page.status_code == 200
    booking = Booking.objects.get()
    html = page.content.decode()
    assert '<script src="https://js.bootpay.co.kr/bootpay-5.1.4.min.js"></script>' in html
    assert "Bootpay.requestPayment(params.request)" in html
    params = json.loads(re.search(r'<script id="pgpay-bootpay-params" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert params["request"]["client_key"] == CLIENT_KEY and SECRET_KEY not in html and BASIC.split()[1] not in html
    assert params["request"]["order_id"] == booking.order_number and params["request"]["price"] == 20000
    assert params["request"]["extra"] == {"separately_confirmed": True}
    token = buyer_token(booking.order_number)
    assert params["return_url"] == f"http://testserver/pay/bootpay/return/?pgpay_t={token}"
    assert params["fail_url"] == f"http://testserver/pay/bootpay/fail/?pgpay_t={token}"


# --- the return URL: server approval ---------------------------------------------------------


def test_confirm_through_the_return_view(client, buyer, bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    client.force_login(buyer)
    response = client.get(return_url(booking, receipt_id))
    assert response.status_code == 200 and b"Payment complete" in response.content
    (request,) = bootpay_api.sent("confirm")
    assert request.url == f"{BASE}/confirm" and request.body == f'{{"receipt_id": "{receipt_id}"}}'.encode()
    assert request.headers["Authorization"] == BASIC
    assert bootpay_api.sent("lookup") == []  # the confirm's reply was a settled receipt
    booking.refresh_from_db()
    assert (booking.status, booking.pg_payment_id, booking.method) == (S.PAID, receipt_id, "카드")
    assert booking.paid_at is not None and booking.receipt_url.startswith("https://door.bootpay.co.kr/")
    row = booking.transactions.get()
    assert (row.kind, row.status, row.amount, row.pg_payment_id) == (K.CONFIRM, T.SUCCEEDED, Decimal(10000), receipt_id)

    again = client.get(return_url(booking, receipt_id))  # a reload
    assert again.status_code == 200 and len(bootpay_api.sent("confirm")) == 1


def test_legacy_keys_confirm_with_a_cached_token(client, settings, bootpay_booking, bootpay_api):
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "bootpay": LEGACY}}
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    assert client.get(return_url(booking, receipt_id)).status_code == 200
    payments.cancel(booking, Decimal(3000), reason="부분 취소")
    assert len(bootpay_api.sent("token")) == 1
    assert {r.headers["Authorization"] for r in bootpay_api.requests if "token" not in r.url} == {f"Bearer {bootpay_api.tokens[0]}"}
    booking.refresh_from_db()
    assert booking.status == S.PARTIAL_CANCELED


def test_a_tampered_price_is_approved_by_bootpay_then_given_back(client, buyer, bootpay_booking, bootpay_api, seat):
    """The buyer changed the price in the browser: Bootpay approves what was authorised, we refuse and refund it."""
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking, amount=100)
    client.force_login(buyer)
    response = client.get(return_url(booking, receipt_id))
    assert response.status_code == 400 and b"does not match the order" in response.content
    booking.refresh_from_db()
    assert booking.status == S.FAILED
    (cancel,) = bootpay_api.sent("cancel")
    body = json.loads(cancel.body)
    compensation = booking.transactions.get(kind=K.COMPENSATE)
    assert body == {
        "receipt_id": receipt_id,
        "cancel_id": compensation.idempotency_key,
        "cancel_username": "system",
        "cancel_message": "amount mismatch",
    }
    assert compensation.status == T.SUCCEEDED and bootpay_api.status(receipt_id) == 20
    seat.refresh_from_db()
    assert seat.remain == 3


@pytest.mark.parametrize("event", ["done", "issued"])
def test_a_pg_without_separate_approval_is_looked_up(client, buyer, bootpay_booking, bootpay_api, event):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking, status=1)  # the PG approved it already (PayApp, Payletter ...)
    client.force_login(buyer)
    response = client.get(return_url(booking, receipt_id, event=event))
    assert response.status_code == 200
    assert [r.method for r in bootpay_api.requests] == ["POST", "GET"]  # refused confirm, then the receipt
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert ledger(booking) == [(K.CONFIRM, T.SUCCEEDED, Decimal(10000))]


def test_a_declined_approval_fails_the_order_and_returns_the_seat(client, buyer, bootpay_booking, bootpay_api, seat):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    bootpay_api.fail_next("confirm", "RC_CONFIRM_FAILED")
    client.force_login(buyer)
    response = client.get(return_url(booking, receipt_id))
    assert response.status_code == 402 and "회원사 서비스 개시 안됨" in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == S.FAILED and booking.transactions.get().error_code == "RC_CONFIRM_FAILED"
    seat.refresh_from_db()
    assert seat.remain == 3


def test_a_lost_confirm_answer_is_pending_then_looked_up(client, buyer, bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    bootpay_api.fail_next("confirm", exception=TIMEOUT, after=True)
    client.force_login(buyer)
    assert client.get(return_url(booking, receipt_id)).status_code == 202
    assert ledger(booking) == [(K.CONFIRM, T.UNKNOWN, Decimal(10000))]
    assert client.get(return_url(booking, receipt_id)).status_code == 200  # the reload settles it by a lookup
    booking.refresh_from_db()
    assert booking.status == S.PAID and len(bootpay_api.sent("confirm")) == 1


@pytest.mark.parametrize(
    "url, text",
    [
        ("/pay/bootpay/fail/?event=cancel&order_id={order}", "You closed the payment window"),
        (
            "/pay/bootpay/fail/?event=error&order_id={order}&message=%3Cb%3Ecall+us%3C%2Fb%3E",
            "The payment was stopped before it was approved.",
        ),
        ("/pay/bootpay/return/?event=cancel&order_id={order}", "You closed the payment window"),  # redirect mode
    ],
)
def test_a_closed_or_failed_window_changes_nothing(client, buyer, bootpay_booking, bootpay_api, url, text):
    booking = bootpay_booking()
    response = client.get(url.format(order=booking.order_number))
    assert response.status_code == 200 and text in response.content.decode() and "call us" not in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == S.READY and bootpay_api.requests == []


@pytest.mark.parametrize(
    "query",
    [
        {"event": "confirm", "receipt_id": "r1", "order_id": "NO_SUCH_ORDER_1"},
        {"event": "confirm", "order_id": "ORDER_1"},
        {"event": "confirm", "receipt_id": "r1", "order_id": "../../etc"},
        {"event": "surprise", "receipt_id": "r1", "order_id": "ORDER_1"},
    ],
)
def test_bad_returns_are_4xx_without_bootpay_calls(client, bootpay_booking, bootpay_api, query):
    bootpay_booking()
    response = client.get("/pay/bootpay/return/?" + urlencode(query))
    assert response.status_code in (400, 404) and bootpay_api.requests == []


def test_virtual_account_return_shows_the_account_then_the_deposit_webhook_pays(client, buyer, bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking, virtual_account=True)
    client.force_login(buyer)
    response = client.get(return_url(booking, receipt_id))
    assert response.status_code == 200 and b"56211105948412" in response.content
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT and booking.paid_at is None


# --- cancel: seed 004 -------------------------------------------------------------------------


def test_seed_004_partial_cancel_then_the_rest(buyer, paid_bootpay_booking, bootpay_api, seat):
    """3,000 of a 10,000 payment, then the rest: two cancel_ids in the ledger, the order CANCELED."""
    booking = paid_bootpay_booking
    client = csrf_client(buyer)

    action, fields = cancel_form(client, booking, partial=True)
    assert client.post(action, {**fields, "amount": "3,000", "reason": "부분 취소", "confirm": "1"}).status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount, booking.balance) == (S.PARTIAL_CANCELED, Decimal(3000), Decimal(7000))
    assert "Part of the payment was cancelled." in client.get("/history/").content.decode()

    action, fields = cancel_form(client, booking)  # the full form: whatever is left
    assert client.post(action, {**fields, "confirm": "1"}).status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount, booking.balance) == (S.CANCELED, Decimal(10000), 0)
    assert booking.canceled_at is not None

    first, second = (json.loads(r.body) for r in bootpay_api.sent("cancel"))
    rows = list(booking.transactions.filter(kind=K.CANCEL).order_by("pk"))
    assert first == {
        "receipt_id": booking.pg_payment_id,
        "cancel_id": rows[0].idempotency_key,
        "cancel_username": "buyer",
        "cancel_message": "부분 취소",
        "cancel_price": 3000,
    }
    assert second == {  # no cancel_price: Bootpay cancels the remainder
        "receipt_id": booking.pg_payment_id,
        "cancel_id": rows[1].idempotency_key,
        "cancel_username": "buyer",
        "cancel_message": "Cancelled by the customer",
    }
    assert [(r.status, r.amount) for r in rows] == [(T.SUCCEEDED, Decimal(3000)), (T.SUCCEEDED, Decimal(7000))]
    assert [r.pg_transaction_id for r in rows] == [r.idempotency_key for r in rows]  # each cancel_id, as Bootpay knows it
    assert rows[0].idempotency_key != rows[1].idempotency_key
    assert all(r.idempotency_key.startswith(f"{booking.order_number}-cancel-") for r in rows)
    assert bootpay_api.receipts[booking.pg_payment_id]["cancelled_price"] == 10000
    seat.refresh_from_db()
    assert seat.remain == 3  # released once, when nothing was left
    assert "pgpay-cancel-form" not in client.get("/history/").content.decode()


def test_staff_cancel_sends_their_name(refund_staff, paid_bootpay_booking, bootpay_api):
    client = Client()
    client.force_login(refund_staff)
    assert (
        client.post(f"/pay/cancel/{paid_bootpay_booking.order_number}/", {"amount": "3000", "token": "s1", "confirm": "1"}).status_code
        == 302
    )
    body = json.loads(bootpay_api.sent("cancel")[0].body)
    assert (body["cancel_username"], body["cancel_message"], body["cancel_price"]) == ("refunds", "Cancelled by staff", 3000)


def test_a_repeated_partial_cancel_refunds_once(buyer, paid_bootpay_booking, bootpay_api):
    """A double-clicked form: the same token, so the same ledger row and cancel_id; Bootpay is called once."""
    client = csrf_client(buyer)
    action, fields = cancel_form(client, paid_bootpay_booking, partial=True)
    first = client.post(action, {**fields, "amount": "3000", "confirm": "1"})
    second = client.post(action, {**fields, "amount": "3000", "confirm": "1"})
    assert first.status_code == second.status_code == 302
    assert len(bootpay_api.sent("cancel")) == 1
    paid_bootpay_booking.refresh_from_db()
    assert paid_bootpay_booking.canceled_amount == Decimal(3000)
    assert bootpay_api.receipts[paid_bootpay_booking.pg_payment_id]["cancelled_price"] == 3000
    (row,) = paid_bootpay_booking.transactions.filter(kind=K.CANCEL)
    assert row.idempotency_key == f"{paid_bootpay_booking.order_number}-cancel-{fields['token']}"


def test_two_partial_cancels_over_the_price_the_second_is_refused_before_bootpay(buyer, paid_bootpay_booking, bootpay_api):
    client = csrf_client(buyer)
    action, fields = cancel_form(client, paid_bootpay_booking, partial=True)
    assert client.post(action, {**fields, "amount": "6000", "confirm": "1"}).status_code == 302
    action, fields = cancel_form(client, paid_bootpay_booking, partial=True)
    refused = client.post(action, {**fields, "amount": "6000", "confirm": "1"})
    assert refused.status_code == 409 and "exceeds what is left to cancel (₩4,000)".encode() in refused.content
    assert len(bootpay_api.sent("cancel")) == 1
    paid_bootpay_booking.refresh_from_db()
    assert (paid_bootpay_booking.status, paid_bootpay_booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(6000))
    assert paid_bootpay_booking.transactions.filter(kind=K.CANCEL).count() == 1


@pytest.mark.parametrize(
    "answer",
    [
        ("RC_CANCEL_FAILED", 400, "기취소된 건입니다."),  # seed 004's wording, with a code we do not know
        ("CANCEL_ALREADY_DONE", 400, "이미 취소된 결제건입니다."),
    ],
)
@pytest.mark.parametrize("amount", ["", "3000"])
def test_cancelling_what_bootpay_already_cancelled_leaves_the_order_canceled(
    buyer, paid_bootpay_booking, bootpay_api, seat, answer, amount
):
    """Seed 004: "기취소된 건입니다" (cancelled at the PG already) is no error page: the order follows Bootpay."""
    booking = paid_bootpay_booking
    bootpay_api.already_cancelled = answer
    bootpay_api.cancel_at_bootpay(booking.pg_payment_id)  # the PG's nightly cancel of test payments, or its dashboard
    client = csrf_client(buyer)
    action, fields = cancel_form(client, booking, partial=bool(amount))
    response = client.post(action, {**fields, "amount": amount, "confirm": "1"}, follow=True)
    assert response.status_code == 200 and "The payment was cancelled." in response.content.decode()
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount, booking.balance) == (S.CANCELED, Decimal(10000), 0)
    assert booking.canceled_at is not None
    cancel_row = booking.transactions.get(kind=K.CANCEL)
    assert (cancel_row.status, cancel_row.error_code) == (T.FAILED, answer[0])  # our request gave nothing back
    sync = booking.transactions.get(kind=K.SYNC)
    assert (sync.status, sync.amount) == (T.SUCCEEDED, Decimal(10000))  # Bootpay's cancel, recorded once
    seat.refresh_from_db()
    assert seat.remain == 3


def test_a_refused_cancel_changes_nothing(buyer, paid_bootpay_booking, bootpay_api):
    bootpay_api.fail_next("cancel", "RC_CANCEL_FAILED", message="PG사 취소 실패")
    client = Client(HTTP_ACCEPT_LANGUAGE="ko")
    client.force_login(buyer)
    response = client.post(f"/pay/cancel/{paid_bootpay_booking.order_number}/", {"token": "t1", "full": "1", "confirm": "1"})
    assert response.status_code == 409 and "PG사 취소 실패" in response.content.decode()
    paid_bootpay_booking.refresh_from_db()
    assert paid_bootpay_booking.status == S.PAID and paid_bootpay_booking.canceled_amount == 0
    assert paid_bootpay_booking.transactions.get(kind=K.CANCEL).status == T.FAILED


def test_a_lost_cancel_answer_is_settled_by_a_lookup_never_resent(buyer, paid_bootpay_booking, bootpay_api):
    bootpay_api.fail_next("cancel", exception=TIMEOUT, after=True)
    client = Client()
    client.force_login(buyer)
    client.post(f"/pay/cancel/{paid_bootpay_booking.order_number}/", {"amount": "3000", "token": "t1", "confirm": "1"})
    row = paid_bootpay_booking.transactions.get(kind=K.CANCEL)
    assert row.status == T.UNKNOWN
    payments.reconcile(paid_bootpay_booking)
    row.refresh_from_db()
    paid_bootpay_booking.refresh_from_db()
    assert row.status == T.SUCCEEDED and paid_bootpay_booking.canceled_amount == Decimal(3000)
    assert len(bootpay_api.sent("cancel")) == 1


def test_a_virtual_account_is_withdrawn_in_full_only(client, buyer, bootpay_booking, bootpay_api, seat):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking, virtual_account=True)
    client.force_login(buyer)
    client.get(return_url(booking, receipt_id))
    partial = client.post(f"/pay/cancel/{booking.order_number}/", {"amount": "3000", "token": "p1", "confirm": "1"})
    assert partial.status_code == 409 and bootpay_api.sent("cancel") == []
    assert client.post(f"/pay/cancel/{booking.order_number}/", {"token": "f1", "full": "1", "confirm": "1"}).status_code == 302
    assert "cancel_price" not in json.loads(bootpay_api.sent("cancel")[0].body)
    booking.refresh_from_db()
    assert booking.status == S.EXPIRED and booking.paid_at is None and booking.canceled_amount == 0
    seat.refresh_from_db()
    assert seat.remain == 3


def test_the_checkout_and_a_closed_window_speak_korean(buyer, seat, bootpay_booking, bootpay):
    client = Client(HTTP_ACCEPT_LANGUAGE="ko")
    client.force_login(buyer)
    page = client.post(f"/book/{seat.pk}/bootpay/").content.decode()
    assert "결제하기" in page and "결제를 승인하는 중입니다…" in page and "결제창을 열 수 없습니다. 다시 시도해 주세요." in page
    booking = Booking.objects.get()
    closed = client.get(f"/pay/bootpay/fail/?event=cancel&order_id={booking.order_number}").content.decode()
    assert "결제를 마치기 전에 결제창을 닫았습니다." in closed and "다시 시도할 수 있습니다" not in closed
