"""The seed tutorial's flow through our views, with Toss mocked: checkout, return (confirm) and cancel."""

import copy
import datetime
import json
import re
import threading
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from django_pgpay import checkout_forms, payments
from django_pgpay.permissions import buyer_token
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T
from tests.testapp.models import Booking
from tests.toss_support import AUTH, BASE, CLIENT_KEY, SECRET_KEY, TIMEOUT

pytestmark = pytest.mark.django_db

#: SQL queries of one confirm through ReturnView (session and user included); docs/views.rst states it.
CONFIRM_QUERIES = 16
#: A buyer's confirmed full cancel (the form's second step), PG call and the savepoints of the test's transaction included.
CANCEL_QUERIES = 16  # was 21, then 18: the URL names the order model (one lookup), and the answer is recorded with the order's cancels read with the row (one read)


def return_url(booking, key, amount=None):
    amount = booking.amount if amount is None else amount
    return "/pay/toss/return/?" + urlencode(
        {"paymentKey": key, "orderId": booking.order_number, "amount": str(int(amount)), "pgpay_t": buyer_token(booking.order_number)}
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


# --- the seed flow ----------------------------------------------------------------------


def test_book_pay_confirm_history_cancel(buyer, seat, toss_api):
    """Seed 001 then 000: book -> pay -> confirm -> history shows PAID -> cancel -> CANCELED, seat back."""
    client = csrf_client(buyer)
    start = client.get(f"/book/{seat.pk}/toss/")
    assert start.status_code == 200 and not Booking.objects.exists()  # GET changes nothing
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', start.content.decode()).group(1)

    page = client.post(f"/book/{seat.pk}/toss/", {"csrfmiddlewaretoken": token})
    assert page.status_code == 200
    # Never from the cache: the back button after paying showed a window ready to pay a paid order.
    assert "no-store" in page["Cache-Control"] and "no-cache" in page["Cache-Control"]
    booking = Booking.objects.get()
    assert (booking.status, booking.gateway, booking.user, booking.amount) == (S.READY, "toss", buyer, Decimal(20000))
    seat.refresh_from_db()
    assert seat.remain == 2
    html = page.content.decode()
    assert '<script src="https://js.tosspayments.com/v2/standard"></script>' in html
    assert "TossPayments(params.clientKey).payment(" in html and ".requestPayment(request)" in html
    params = json.loads(re.search(r'<script id="pgpay-toss-params" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert params["clientKey"] == CLIENT_KEY and SECRET_KEY not in html
    assert params["orderId"] == booking.order_number and params["amount"] == {"currency": "KRW", "value": 20000}
    token = buyer_token(booking.order_number)
    assert params["successUrl"] == f"http://testserver/pay/toss/return/?pgpay_t={token}"
    assert params["failUrl"] == f"http://testserver/pay/toss/fail/?pgpay_t={token}"

    # The buyer pays in Toss's window, which redirects to successUrl.
    key = toss_api.authorize(booking)
    done = client.get(params["successUrl"] + "&" + urlencode({"paymentKey": key, "orderId": booking.order_number, "amount": "20000"}))
    assert done.status_code == 200 and b"Payment complete" in done.content
    (request,) = toss_api.sent("confirm")
    row = booking.transactions.get(kind=K.CONFIRM)
    assert request.url == f"{BASE}/v1/payments/confirm"
    assert request.body == f'{{"paymentKey": "{key}", "orderId": "{booking.order_number}", "amount": 20000}}'.encode()
    assert request.headers["Authorization"] == AUTH
    assert request.headers["Idempotency-Key"] == row.idempotency_key == payments.confirm_key(booking.order_number, key)
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == key and booking.paid_at is not None
    assert booking.method == "카드" and booking.receipt_url.startswith("https://dashboard.tosspayments.com/")

    history = client.get("/history/").content.decode()
    assert '<span class="status-code">PAID</span>' in history and '<span class="status">Paid</span>' in history

    action, fields = cancel_form(client, booking)
    assert action == f"/pay/cancel/testapp.booking/{booking.order_number}/"  # the model named: one lookup
    response = client.post(action, {**fields, "confirm": "1"})
    assert response.status_code == 302 and response["Location"] == "/history/"
    (request,) = toss_api.sent("cancel")
    cancel_row = booking.transactions.get(kind=K.CANCEL)
    assert request.url == f"{BASE}/v1/payments/{key}/cancel"
    assert json.loads(request.body) == {"cancelReason": "Cancelled by the customer"}  # no cancelAmount: in full
    assert request.headers["Idempotency-Key"] == cancel_row.idempotency_key
    assert cancel_row.idempotency_key == f"{booking.order_number}-cancel-{fields['token']}"
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and booking.canceled_at is not None and booking.balance == 0
    seat.refresh_from_db()
    assert seat.remain == 3
    history = client.get("/history/").content.decode()
    assert "The payment was cancelled." in history and '<span class="status-code">CANCELED</span>' in history
    assert "pgpay-cancel-form" not in history


def test_confirm_costs_a_bounded_number_of_queries(client, buyer, toss_booking, toss_api, django_assert_max_num_queries):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    client.force_login(buyer)
    with django_assert_max_num_queries(CONFIRM_QUERIES):
        response = client.get(return_url(booking, key))
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_cancel_costs_a_bounded_number_of_queries(buyer, paid_toss_booking, toss_api, django_assert_max_num_queries, seat):
    booking = paid_toss_booking
    client = csrf_client(buyer)
    action, fields = cancel_form(client, booking)
    with django_assert_max_num_queries(CANCEL_QUERIES):
        response = client.post(action, {**fields, "confirm": "1"})
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    assert len(toss_api.sent("cancel")) == 1


# --- the return URL ---------------------------------------------------------------------


def test_tampered_amount_is_refused_before_any_toss_call(client, buyer, toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking, amount=100)
    client.force_login(buyer)
    response = client.get(return_url(booking, key, amount=100))
    assert response.status_code == 400
    assert b"does not match the order" in response.content
    assert toss_api.requests == []
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.count() == 0


@pytest.mark.parametrize(
    "query",
    [
        {"paymentKey": "tgen_x", "orderId": "NO_SUCH_ORDER_1", "amount": "20000"},
        {"paymentKey": "tgen_x", "orderId": "../../etc", "amount": "20000"},
        {"paymentKey": "tgen_x", "orderId": "ORDER_1", "amount": "20,000"},
        {"orderId": "ORDER_1", "amount": "20000"},
    ],
)
def test_bad_returns_are_4xx_without_toss_calls(client, buyer, toss_booking, toss_api, query):
    toss_booking()
    client.force_login(buyer)
    response = client.get("/pay/toss/return/?" + urlencode(query))
    assert response.status_code in (400, 404)
    assert toss_api.requests == []


def test_an_order_of_another_gateway_is_not_found_on_the_toss_return(client, buyer, make_booking, toss_api):
    booking = make_booking()  # pays through the fake gateway
    response = client.get(return_url(booking, "tgen_x"))
    assert response.status_code == 404 and toss_api.requests == []
    assert client.get("/pay/nope/return/?paymentKey=x&orderId=y&amount=1").status_code == 404


def test_reload_after_success_shows_success_again(client, buyer, toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    client.force_login(buyer)
    first = client.get(return_url(booking, key))
    again = client.get(return_url(booking, key))
    assert first.status_code == again.status_code == 200
    assert b"Payment complete" in again.content
    assert len(toss_api.sent("confirm")) == 1
    assert ledger(booking) == [(K.CONFIRM, T.SUCCEEDED, Decimal(20000))]


def test_decline_shows_failure_and_returns_the_seat(client, buyer, toss_booking, toss_api, seat):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    toss_api.fail_next("confirm", "REJECT_CARD_COMPANY")
    client.force_login(buyer)
    response = client.get(return_url(booking, key))
    assert response.status_code == 402
    page = response.content.decode()
    # In the page's language first (English here), then Toss's own words, which are Korean only.
    assert page.index("The payment was declined.") < page.index("결제 승인이 거절되었습니다")
    booking.refresh_from_db()
    assert booking.status == S.FAILED
    assert booking.transactions.get().error_code == "REJECT_CARD_COMPANY"
    seat.refresh_from_db()
    assert seat.remain == 3
    # A reload does not call Toss again.
    assert client.get(return_url(booking, key)).status_code in (402, 409)
    assert len(toss_api.sent("confirm")) == 1


def test_already_processed_payment_is_answered_by_a_lookup(client, buyer, toss_booking, toss_api):
    """Toss approved this payment already (another tab, a crashed process): look it up, do not fail."""
    booking = toss_booking()
    key = toss_api.authorize(booking)
    toss_api.payments[key].update(status="DONE", approvedAt="2024-06-11T15:14:42+09:00")
    client.force_login(buyer)
    response = client.get(return_url(booking, key))
    assert response.status_code == 200
    assert [r.method for r in toss_api.requests] == ["POST", "GET"]
    assert toss_api.requests[1].url == f"{BASE}/v1/payments/{key}"
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_lost_confirm_answer_shows_pending_then_the_reload_looks_it_up(client, buyer, toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    toss_api.fail_next("confirm", exception=TIMEOUT, after=True)
    client.force_login(buyer)
    response = client.get(return_url(booking, key))
    assert response.status_code == 202 and b"being confirmed" in response.content
    assert ledger(booking) == [(K.CONFIRM, T.UNKNOWN, Decimal(20000))]
    again = client.get(return_url(booking, key))
    assert again.status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID
    # The reload looked the payment up; it did not confirm blindly with a new key.
    confirms = toss_api.sent("confirm")
    assert {r.headers["Idempotency-Key"] for r in confirms} == {booking.transactions.get().idempotency_key}


def test_fail_url_shows_our_message_not_the_query_text(client, buyer, toss_booking, toss_api):
    booking = toss_booking()
    query = urlencode(
        {"code": "PAY_PROCESS_CANCELED", "message": "<b>call 010-0000-0000 for a refund</b>", "orderId": booking.order_number}
    )
    response = client.get(f"/pay/toss/fail/?{query}")
    assert response.status_code == 200
    text = response.content.decode()
    assert "You closed the payment window" in text and "call 010" not in text
    booking.refresh_from_db()
    assert booking.status == S.READY and toss_api.requests == []


def test_fail_url_tells_the_buyer_the_order_is_still_held_and_no_one_else(buyer, other_buyer, toss_booking, toss_api):
    """Closed or declined in the window: the buyer reads that the order is kept, and until when.

    The fail URL names the order; the page shows it only to whoever may view it (a stranger with
    the same URL reads the message alone), writes nothing and calls no PG.
    """
    booking = toss_booking(expires_at=timezone.now() + datetime.timedelta(minutes=30))
    query = urlencode({"code": "REJECT_CARD_COMPANY", "message": "declined", "orderId": booking.order_number})
    mine, stranger = Client(), Client()
    mine.force_login(buyer)
    stranger.force_login(other_buyer)
    page = mine.get(f"/pay/toss/fail/?{query}")
    assert page.status_code == 200
    assert "Your order is kept until" in page.content.decode()
    other = stranger.get(f"/pay/toss/fail/?{query}")
    assert other.status_code == 200
    assert "The card company or the payment provider declined the payment." in other.content.decode()
    assert "Your order is kept until" not in other.content.decode()
    booking.refresh_from_db()
    assert booking.status == S.READY and ledger(booking) == [] and toss_api.requests == []


def test_return_in_another_browser_confirms_but_shows_no_details(toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    response = Client().get(return_url(booking, key))  # not logged in
    assert response.status_code == 200
    assert booking.order_number.encode() not in response.content
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_virtual_account_return_shows_the_account(client, buyer, toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking, virtual_account=True)
    client.force_login(buyer)
    response = client.get(return_url(booking, key))
    assert response.status_code == 200 and b"X6505636518308" in response.content
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT and booking.paid_at is None
    assert booking.expires_at == datetime.datetime(2024, 6, 18, 14, 59, 59, tzinfo=datetime.timezone.utc)
    assert booking.pg_data["toss_secret_sha256"] and toss_api.payments[key]["secret"] not in json.dumps(booking.pg_data)
    assert toss_api.payments[key]["secret"] not in json.dumps(booking.transactions.get().response)


# --- cancel -------------------------------------------------------------------------------


@pytest.fixture
def paid_toss_booking(toss_booking, toss_api, buyer):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    client = Client()
    client.force_login(buyer)
    assert client.get(return_url(booking, key)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID
    return booking


def test_partial_cancels_down_to_zero(buyer, paid_toss_booking, toss_api, seat):
    booking = paid_toss_booking
    client = csrf_client(buyer)
    for amount, status in [("5000", S.PARTIAL_CANCELED), ("5,000", S.PARTIAL_CANCELED), ("10000", S.CANCELED)]:
        action, fields = cancel_form(client, booking, partial=True)
        assert client.post(action, {**fields, "amount": amount, "confirm": "1"}).status_code == 302
        booking.refresh_from_db()
        assert booking.status == status
    requests_ = toss_api.sent("cancel")
    assert [json.loads(r.body) for r in requests_] == [
        {"cancelReason": "Cancelled by the customer", "cancelAmount": 5000},
        {"cancelReason": "Cancelled by the customer", "cancelAmount": 5000},
        {"cancelReason": "Cancelled by the customer"},  # the last one is the whole balance
    ]
    rows = list(booking.transactions.filter(kind=K.CANCEL).order_by("pk"))
    assert [r.headers["Idempotency-Key"] for r in requests_] == [r.idempotency_key for r in rows]
    assert [(r.status, r.amount) for r in rows] == [
        (T.SUCCEEDED, Decimal(5000)),
        (T.SUCCEEDED, Decimal(5000)),
        (T.SUCCEEDED, Decimal(10000)),
    ]
    assert booking.canceled_amount == booking.amount and booking.canceled_at is not None
    seat.refresh_from_db()
    assert seat.remain == 3  # released once, when nothing was left
    assert "pgpay-cancel-form" not in client.get("/history/").content.decode()


def test_double_submit_refunds_once(buyer, paid_toss_booking, toss_api):
    client = csrf_client(buyer)
    action, fields = cancel_form(client, paid_toss_booking, partial=True)
    first = client.post(action, {**fields, "amount": "3000", "confirm": "1"})
    second = client.post(action, {**fields, "amount": "3000", "confirm": "1"})
    assert first.status_code == second.status_code == 302
    assert len(toss_api.sent("cancel")) == 1
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.canceled_amount == Decimal(3000)


@pytest.mark.parametrize(
    "amount, status, code",
    [
        ("-1000", 400, b"must be positive"),
        ("0", 409, b"must be positive"),
        ("20001", 409, b"exceeds"),
        ("1e3", 400, b"not a number of KRW"),
        ("10.5", 400, b"without a decimal point"),
        # A European thousands separator, or a slip: refused, never read as 1 won.
        ("1.000", 400, b"without a decimal point"),
        ("1.0", 400, b"without a decimal point"),
        ("1,000.000", 400, b"without a decimal point"),
        ("1,0,0,0", 400, b"not a number of KRW"),
        (",", 400, b"not a number of KRW"),
        ("", 400, b"Enter the amount"),
        ("\u00a0", 400, b"not a number of KRW"),
        ("\u3000", 400, b"not a number of KRW"),
    ],
)
def test_bad_refund_amounts_are_refused_and_change_nothing(buyer, paid_toss_booking, toss_api, amount, status, code):
    """Issue #13, point 2: an amount that cannot be read is a 400 that says why, never "everything"."""
    client = csrf_client(buyer)
    action, fields = cancel_form(client, paid_toss_booking, partial=True)
    for step in ({}, {"confirm": "1"}):
        response = client.post(action, {**fields, "amount": amount, **step})
        assert response.status_code == status and code in response.content
    assert toss_api.sent("cancel") == []
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.status == S.PAID and paid_toss_booking.transactions.filter(kind=K.CANCEL).count() == 0


def test_not_cancelable_says_so_in_korean(buyer, toss_booking, toss_api):
    booking = toss_booking()  # READY: nothing to cancel
    client = Client(HTTP_ACCEPT_LANGUAGE="ko")
    client.force_login(buyer)
    response = client.post(f"/pay/cancel/{booking.order_number}/", {"token": "abc123", "full": "1", "confirm": "1"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "결제되지 않은 주문이라 환불할 금액이 없습니다." in page and "취소되지 않았습니다" in page
    assert toss_api.requests == []


def test_a_second_tabs_cancel_form_says_the_order_is_cancelled_already(buyer, paid_toss_booking, toss_api):
    """Two tabs of the history page: the first cancels; the second's "Refund now" is a 409 that says
    why (already cancelled in full), names the order and its status now, and refunds nothing more."""
    first, second = csrf_client(buyer), csrf_client(buyer)
    tab_one, tab_two = cancel_form(first, paid_toss_booking), cancel_form(second, paid_toss_booking)
    assert tab_one[1]["token"] != tab_two[1]["token"]  # each rendering has its own token
    assert first.post(tab_one[0], tab_one[1]).status_code == 302
    response = second.post(tab_two[0], tab_two[1])
    assert response.status_code == 409
    page = response.content.decode()
    assert "This order was already cancelled in full. Nothing more was refunded." in page
    assert paid_toss_booking.order_number in page and "Cancelled" in page  # the status as it is now
    assert len(toss_api.sent("cancel")) == 1
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.status == S.CANCELED
    assert ledger(paid_toss_booking).count((K.CANCEL, T.SUCCEEDED, paid_toss_booking.amount)) == 1


def test_another_users_order_is_404(other_buyer, paid_toss_booking, toss_api):
    client = Client()
    client.force_login(other_buyer)
    assert client.post(f"/pay/cancel/{paid_toss_booking.order_number}/").status_code == 404
    assert client.post("/pay/cancel/NO_SUCH_ORDER_1/").status_code == 404
    assert toss_api.sent("cancel") == []
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.status == S.PAID


@pytest.mark.parametrize(
    ("who", "model"),
    [
        *[("buyer", m) for m in ("testapp.cartorder", "auth.user", "nosuch.model", "testapp", "testapp.booking.x", "%00")],
        ("other_buyer", "testapp.booking"),  # the right model: the owner check is still there
    ],
)
def test_a_cancel_url_naming_another_model_or_someone_elses_order_is_404(request, who, model, paid_toss_booking, toss_api):
    """The model in ``cancel/<model>/<number>/`` is where the order is looked for, and only there."""
    client = Client()
    client.force_login(request.getfixturevalue(who))
    response = client.post(f"/pay/cancel/{model}/{paid_toss_booking.order_number}/", {"token": "t1", "full": "1", "confirm": "1"})
    assert response.status_code == 404
    assert toss_api.sent("cancel") == []
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.status == S.PAID and paid_toss_booking.transactions.filter(kind=K.CANCEL).count() == 0


def test_a_view_limited_to_some_order_models_refuses_the_others_in_its_url(buyer, paid_toss_booking, toss_api, rf):
    """``CancelView.as_view(order_models=[...])`` mounted with a ``model`` argument: another order model is a 404."""
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore
    from django.http import Http404

    from django_pgpay.views import CancelView

    def post(view, model):
        request = rf.post("/", {"token": "t1", "full": "1", "confirm": "1"})
        request.user, request.session = buyer, SessionStore()
        request._messages = FallbackStorage(request)
        request._dont_enforce_csrf_checks = True
        return view(request, model=model, order_number=paid_toss_booking.order_number)

    with pytest.raises(Http404):
        post(CancelView.as_view(order_models=["testapp.CartOrder"]), "testapp.booking")
    assert toss_api.sent("cancel") == []
    assert post(CancelView.as_view(order_models=["testapp.Booking"]), "TestApp.Booking").status_code == 302
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.status == S.CANCELED and len(toss_api.sent("cancel")) == 1


def test_the_confirmation_page_posts_back_to_the_url_it_was_asked_from(buyer, paid_toss_booking, toss_api):
    """The partial form's URL names the model; the second step goes there too (one lookup again)."""
    client = csrf_client(buyer)
    action, fields = cancel_form(client, paid_toss_booking, partial=True)
    assert action == f"/pay/cancel/testapp.booking/{paid_toss_booking.order_number}/"
    page = client.post(action, {**fields, "amount": "5000"}).content.decode()
    (second,) = [f for f in re.findall(r"<form.*?</form>", page, re.S) if 'name="confirm"' in f]
    assert f'action="{action}"' in second
    # Through the URL without the model, the second step comes back there.
    bare = f"/pay/cancel/{paid_toss_booking.order_number}/"
    page = client.post(bare, {**fields, "amount": "5000"}).content.decode()
    assert f'action="{bare}"' in page
    assert toss_api.sent("cancel") == []


def test_get_on_cancel_leads_back_and_changes_nothing(buyer, other_buyer, paid_toss_booking, toss_api, monkeypatch):
    # Reached by GET after a login (the form posted with the session expired) or a language switch
    # on the confirmation page: it was the browser's blank 405, a dead end.
    url = f"/pay/cancel/testapp.booking/{paid_toss_booking.order_number}/"
    client = Client()
    client.force_login(buyer)
    assert client.get(url)["Location"] == "/"  # no get_absolute_url: the view's success_url, or /
    monkeypatch.setattr(Booking, "get_absolute_url", lambda self: f"/history/#booking-{self.order_number}", raising=False)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/history/#booking-{paid_toss_booking.order_number}"
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"] and "next=" in anonymous["Location"]
    stranger = Client()
    stranger.force_login(other_buyer)
    assert stranger.get(url).status_code == 404  # someone else's order: not revealed
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.status == S.PAID and toss_api.sent("cancel") == []


def test_cancel_needs_login_and_csrf(buyer, paid_toss_booking, toss_api):
    anonymous = Client().post(f"/pay/cancel/{paid_toss_booking.order_number}/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert csrf_client(buyer).post(f"/pay/cancel/{paid_toss_booking.order_number}/").status_code == 403
    assert toss_api.sent("cancel") == []


def test_staff_without_the_refund_permission_cannot_cancel(staff, paid_toss_booking, toss_api):
    """Issue #13, point 1: is_staff alone grants nothing."""
    client = Client()
    client.force_login(staff)
    response = client.post(f"/pay/cancel/{paid_toss_booking.order_number}/", {"amount": "1000", "confirm": "1"})
    assert response.status_code == 404 and toss_api.sent("cancel") == []
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.canceled_amount == 0


def test_staff_may_cancel_a_buyers_order(staff, paid_toss_booking, toss_api):
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="change_booking"))
    client = Client()
    client.force_login(staff)
    response = client.post(
        f"/pay/cancel/{paid_toss_booking.order_number}/",
        {"amount": "1000", "reason": "좌석 변경", "next": "https://evil.example/", "confirm": "1"},
    )
    assert response.status_code == 302 and response["Location"] == "/"  # an off-site next is ignored
    row = paid_toss_booking.transactions.get(kind=K.CANCEL)
    assert (row.source, row.actor, row.reason) == ("staff", staff, "좌석 변경")
    assert json.loads(toss_api.sent("cancel")[0].body) == {"cancelReason": "좌석 변경", "cancelAmount": 1000}


def test_toss_refusing_a_cancel_changes_nothing(buyer, paid_toss_booking, toss_api):
    toss_api.fail_next("cancel", "NOT_CANCELABLE_PAYMENT")
    client = Client()
    client.force_login(buyer)
    response = client.post(f"/pay/cancel/{paid_toss_booking.order_number}/", {"token": "t1", "full": "1", "confirm": "1"})
    assert response.status_code == 409 and "취소 할 수 없는 결제 입니다." in response.content.decode()
    paid_toss_booking.refresh_from_db()
    assert paid_toss_booking.status == S.PAID and paid_toss_booking.canceled_amount == 0
    assert paid_toss_booking.transactions.get(kind=K.CANCEL).status == T.FAILED


def test_cancel_whose_answer_is_lost_is_pending_and_never_resent_blindly(buyer, paid_toss_booking, toss_api, settings):
    toss_api.fail_next("cancel", exception=TIMEOUT, after=True)
    client = Client()
    client.force_login(buyer)
    response = client.post(
        f"/pay/cancel/{paid_toss_booking.order_number}/", {"token": "t1", "next": "/history/", "full": "1", "confirm": "1"}, follow=True
    )
    assert b"being processed" in response.content
    row = paid_toss_booking.transactions.get(kind=K.CANCEL)
    assert row.status == T.UNKNOWN
    # A second click is refused while the first is open (no second refund).
    again = client.post(f"/pay/cancel/{paid_toss_booking.order_number}/", {"token": "t2", "full": "1", "confirm": "1"})
    assert again.status_code in (302, 409)
    payments.reconcile(paid_toss_booking)
    row.refresh_from_db()
    paid_toss_booking.refresh_from_db()
    assert row.status == T.SUCCEEDED and paid_toss_booking.status == S.CANCELED
    assert len(toss_api.sent("cancel")) == 1
    assert toss_api.payments[paid_toss_booking.pg_payment_id]["balanceAmount"] == 0


def test_cancel_of_a_virtual_account_payment(client, buyer, toss_booking, toss_api, seat):
    booking = toss_booking()
    key = toss_api.authorize(booking, virtual_account=True)
    client.force_login(buyer)
    client.get(return_url(booking, key))
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    partial = client.post(f"/pay/cancel/{booking.order_number}/", {"amount": "5000", "token": "p1", "confirm": "1"})
    assert partial.status_code == 409 and b"only be cancelled in full" in partial.content
    assert toss_api.sent("cancel") == []
    full = client.post(f"/pay/cancel/{booking.order_number}/", {"token": "f1", "full": "1", "confirm": "1"})
    assert full.status_code == 302
    assert json.loads(toss_api.sent("cancel")[0].body) == {"cancelReason": "Cancelled by the customer"}
    booking.refresh_from_db()
    # The account is withdrawn: nothing was paid, nothing refunded; the order expires unpaid.
    assert booking.status == S.EXPIRED and booking.paid_at is None and toss_api.status(key) == "CANCELED"
    assert booking.canceled_amount == 0 and booking.transactions.get(kind="withdraw").status == T.SUCCEEDED
    seat.refresh_from_db()
    assert seat.remain == 3


# --- checkout -----------------------------------------------------------------------------


@pytest.mark.parametrize("emptied", [False, True])
def test_checkout_reuses_the_buyers_ready_order(buyer, seat, toss, caplog, emptied):
    """``emptied``: the lock rows missing (the table emptied by hand, a restored dump): the buyer's checkouts fall
    back on their user row, as before checkout_locks named a slot per user. The fallback read the request's lazy
    user's class as the model (a 500) until a browser test met it."""
    from django_pgpay.models import CheckoutLock

    if emptied:
        CheckoutLock.objects.all().delete()
    client = Client()
    client.force_login(buyer)
    first = client.post(f"/book/{seat.pk}/toss/")
    second = client.post(f"/book/{seat.pk}/toss/")
    assert first.status_code == second.status_code == 200
    assert Booking.objects.count() == 1
    seat.refresh_from_db()
    assert seat.remain == 2
    assert ("has no row" in caplog.text) == emptied


def start_form(client, seat, alias="toss"):
    """The checkout start page's form fields (csrf token and the page load's checkout token)."""
    page = client.get(f"/book/{seat.pk}/{alias}/").content.decode()
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def pay_and_return(client, booking, toss_api):
    key = toss_api.authorize(booking)
    assert client.get(return_url(booking, key)).status_code in (200, 302)
    booking.refresh_from_db()
    assert booking.status == S.PAID
    return key


def assert_shown_the_paid_booking(response, seat, remain=2):
    """The form posted again after paying: the paid booking is shown (409), nothing more booked or reserved."""
    assert response.status_code == 409 and b"This was paid already. Nothing more was charged." in response.content
    assert b"<h1>Already paid</h1>" in response.content and b"Something went wrong" not in response.content
    assert list(Booking.objects.values_list("status", flat=True)) == [S.PAID]
    seat.refresh_from_db()
    assert seat.remain == remain


def test_the_start_form_posted_again_after_paying_starts_no_second_order(buyer, seat, toss, toss_api):
    """The back button after paying (or a stale tab) posts the same start form again: it shows the
    paid order (409 here: the test app's Booking has no get_absolute_url) and reserves nothing; the
    page loaded anew (a new token) books again, as a buyer who means it does."""
    client = csrf_client(buyer)
    page = client.get(f"/book/{seat.pk}/toss/").content.decode()
    # The form posts to its page's URL with a marker: the POST does not make the browser drop the page
    # it came from, so the back button shows that page (with this token) rather than a new one.
    assert f'action="/book/{seat.pk}/toss/?pgpay_checkout=1"' in page and "pgpay-paid-already" not in page
    fields = start_form(client, seat)
    assert re.fullmatch(r"t[0-9a-f]{10,12}_[0-9a-f]{24}", fields["pgpay_form"])
    assert client.post(f"/book/{seat.pk}/toss/?pgpay_checkout=1", fields).status_code == 200
    booking = Booking.objects.get()
    pay_and_return(client, booking, toss_api)
    again = client.post(f"/book/{seat.pk}/toss/?pgpay_checkout=1", fields)
    assert_shown_the_paid_booking(again, seat)
    # A page loaded anew (after the payment): the buyer is asked first, and nothing is reserved ...
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=2)):
        fresh = start_form(client, seat)
        asked = client.post(f"/book/{seat.pk}/toss/?pgpay_checkout=1", fresh)
    page = asked.content.decode()
    assert asked.status_code == 200 and "You have paid for this already" in page and f"Order {booking.order_number} is paid" in page
    assert Booking.objects.count() == 1 and "pgpay-toss-params" not in page
    # ... whose page posts the same form with pgpay_another=1 (and a new CSRF token): a second booking, on purpose.
    again = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    assert again["pgpay_another"] == "1" and again["pgpay_form"] == fresh["pgpay_form"]
    assert f'action="/book/{seat.pk}/toss/?pgpay_checkout=1"' in page
    assert client.post(f"/book/{seat.pk}/toss/?pgpay_checkout=1", again).status_code == 200
    assert sorted(Booking.objects.values_list("status", flat=True)) == [S.PAID, S.READY]
    seat.refresh_from_db()
    assert seat.remain == 1


@pytest.mark.parametrize("who", ["buyer", "guest"])
def test_a_tab_left_open_while_the_buyer_paid_in_another_starts_nothing(who, buyer, seat, toss, toss_api):
    """Tab C was loaded and never posted; the buyer booked and paid in tab A. C's form comes from before that
    booking existed: it shows the paid booking (its page never said it was paid). A guest's session knows the
    order the other tab started."""
    client, url = (
        (csrf_client(buyer), f"/book/{seat.pk}/toss/") if who == "buyer" else (Client(enforce_csrf_checks=True), f"/guest/{seat.pk}/toss/")
    )
    form = start_form if who == "buyer" else guest_form
    stale = form(client, seat)
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=5)):
        assert client.post(url, form(client, seat)).status_code == 200
        pay_and_return(client, Booking.objects.get(), toss_api)
        assert client.post(url, stale).status_code == 409
    assert Booking.objects.count() == 1


def test_every_tab_that_came_back_to_the_order_knows_it_was_paid(buyer, seat, toss, toss_api):
    """Two tabs, two page loads: the second tab's POST reuses the READY order and records its token,
    so after paying in either, neither tab's form starts a second order."""
    client = csrf_client(buyer)
    first, second = start_form(client, seat), start_form(client, seat)
    assert first["pgpay_form"] != second["pgpay_form"]
    assert client.post(f"/book/{seat.pk}/toss/", first).status_code == 200
    assert client.post(f"/book/{seat.pk}/toss/", second).status_code == 200
    booking = Booking.objects.get()
    pay_and_return(client, booking, toss_api)
    for fields in (first, second):
        assert client.post(f"/book/{seat.pk}/toss/", fields).status_code == 409
    assert Booking.objects.count() == 1


@pytest.mark.parametrize("token", ["", "short", "x" * 65, "bad token with spaces!!", "\x00" * 20, "A" * 20 + "\n"])
def test_a_missing_or_malformed_checkout_token_is_a_checkout_as_before(buyer, seat, toss, toss_api, token):
    """Forms of templates without the tag (or a token that is not one): no refusal, no 500; a buyer who has paid
    for the same thing is asked before another order is started."""
    client = csrf_client(buyer)
    fields = {**start_form(client, seat), "pgpay_form": token}
    assert client.post(f"/book/{seat.pk}/toss/", fields).status_code == 200
    booking = Booking.objects.get()
    assert "pgpay_forms" not in booking.pg_data
    pay_and_return(client, booking, toss_api)
    # Not known to be stale: the buyer who has paid for it is asked, nothing is reserved.
    asked = client.post(f"/book/{seat.pk}/toss/", fields)
    assert asked.status_code == 200 and b"You have paid for this already" in asked.content
    assert Booking.objects.count() == 1
    assert client.post(f"/book/{seat.pk}/toss/", {**fields, "pgpay_another": "1"}).status_code == 200
    assert Booking.objects.count() == 2


def test_the_checkout_token_tag_continues_a_given_order(buyer, seat, toss):
    from django.template import Context, Template

    client = csrf_client(buyer)
    fields = start_form(client, seat)
    client.post(f"/book/{seat.pk}/toss/", fields)
    booking = Booking.objects.get()
    assert booking.pg_data["pgpay_forms"] == [fields["pgpay_form"]]
    rendered = Template("{% load pgpay %}{% pgpay_checkout_token order %}|{% pgpay_checkout_token %}").render(Context({"order": booking}))
    own, fresh = rendered.split("|")
    # The order's own token (made by the server from its number, whether or not a form recorded one) ...
    assert own == f'<input type="hidden" name="pgpay_form" value="{checkout_forms.order_token(booking.order_number)}">'
    assert fields["pgpay_form"] not in fresh and 'name="pgpay_form"' in fresh


def test_a_page_made_after_the_booking_but_before_its_payment_is_stale(buyer, seat, toss, toss_api):
    """The back button shows the newest copy of the page in the browser, whichever tab made it: a page made
    after the booking was created but before it was paid never said it was paid (browser walk, 7 December)."""
    client = csrf_client(buyer)
    assert client.post(f"/book/{seat.pk}/toss/", start_form(client, seat)).status_code == 200
    booking = Booking.objects.get()
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=5)):
        between = start_form(client, seat)  # another tab, before paying
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=10)):
        pay_and_return(client, booking, toss_api)
        assert client.post(f"/book/{seat.pk}/toss/", between).status_code == 409
    assert Booking.objects.count() == 1


def test_pay_now_on_a_stale_list_of_an_order_without_tokens_starts_nothing(buyer, seat, toss, toss_api):
    """A READY order no form recorded a token on (made before the tokens, or by a form without the tag): its
    "Pay now" posts the order's own token, so once it is paid a stale "Pay now" shows it."""
    client = csrf_client(buyer)
    assert client.post(f"/book/{seat.pk}/toss/", {**start_form(client, seat), "pgpay_form": ""}).status_code == 200
    booking = Booking.objects.get()
    assert "pgpay_forms" not in booking.pg_data
    pay_now = {**start_form(client, seat), "pgpay_form": checkout_forms.token_for(booking)}
    pay_and_return(client, booking, toss_api)
    assert client.post(f"/book/{seat.pk}/toss/", pay_now).status_code == 409
    assert Booking.objects.count() == 1


def window_order_id(response) -> str | None:
    """The ``orderId`` of the Toss payment window a checkout answered with (None: no window)."""
    found = re.search(r'<script id="pgpay-toss-params" type="application/json">(.*?)</script>', response.content.decode(), re.S)
    return json.loads(found.group(1))["orderId"] if found else None


def guest_form(client, seat):
    """The start form of the checkout that takes buyers without an account (``allow_anonymous``)."""
    page = client.get(f"/guest/{seat.pk}/toss/").content.decode()
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def test_a_buyer_without_an_account_is_not_charged_twice_by_the_same_form(seat, toss, toss_api):
    """allow_anonymous: the order used to be new on every POST, so the back button after paying (the same form
    posted again) booked and charged again. The form's token and the browser's session now find the order."""
    client = Client(enforce_csrf_checks=True)
    fields = guest_form(client, seat)
    assert client.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", fields).status_code == 200
    booking = Booking.objects.get()
    assert booking.user is None and client.session["pgpay_orders"] == [booking.order_number]
    # A double click that came second: the same READY booking, one place held.
    assert client.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", fields).status_code == 200
    assert Booking.objects.count() == 1
    pay_and_return(client, booking, toss_api)
    # The back button after paying: nothing more is booked or charged (no order page to send a guest to: 409).
    again = client.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", fields)
    assert_shown_the_paid_booking(again, seat)
    # The same form from another browser (no session): its token still finds the paid order.
    elsewhere = Client(enforce_csrf_checks=True)
    copied = {**guest_form(elsewhere, seat), "pgpay_form": fields["pgpay_form"]}
    assert elsewhere.post(f"/guest/{seat.pk}/toss/", copied).status_code == 409
    # A page loaded anew in this browser: asked first; "another one" books a second place on purpose.
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=2)):
        fresh = guest_form(client, seat)
        asked = client.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", fresh)
        assert asked.status_code == 200 and b"You have paid for this already" in asked.content
        assert Booking.objects.count() == 1
        assert client.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", {**fresh, "pgpay_another": "1"}).status_code == 200
    assert sorted(Booking.objects.values_list("status", flat=True)) == [S.PAID, S.READY]
    # Another guest's fresh page is theirs alone: a booking of their own, no question.
    other = Client(enforce_csrf_checks=True)
    assert other.post(f"/guest/{seat.pk}/toss/", guest_form(other, seat)).status_code == 200
    assert Booking.objects.filter(status=S.READY).count() == 2
    seat.refresh_from_db()
    assert seat.remain == 0


def test_a_guest_without_a_token_or_a_session_entry_books_as_before(seat, toss):
    """Nothing to know the buyer by (a form without the tag, a new browser): a new booking, no question asked."""
    for _ in range(2):
        client = Client(enforce_csrf_checks=True)
        assert client.post(f"/guest/{seat.pk}/toss/", {**guest_form(client, seat), "pgpay_form": ""}).status_code == 200
    assert Booking.objects.filter(user=None, status=S.READY).count() == 2


def test_a_guest_cannot_reach_another_guests_order_with_a_token_of_their_choosing(seat, toss):
    """Attack review: the token was matched as text against the whole pg_data, so a token naming one of its keys
    (``stripe_session_ids``, ``portone_v1_prepared``) took over every guest's order for the same seat."""
    a = Client(enforce_csrf_checks=True)
    assert a.post(f"/guest/{seat.pk}/toss/", guest_form(a, seat)).status_code == 200
    theirs = Booking.objects.get()
    Booking.objects.filter(pk=theirs.pk).update(pg_data={**theirs.pg_data, "portone_v1_prepared": True, "stripe_session_ids": ["cs_1"]})
    for chosen in ("portone_v1_prepared", "stripe_session_ids", "pgpay_forms_pgpay_forms", theirs.pg_data["pgpay_forms"][0][:20]):
        b = Client(enforce_csrf_checks=True)
        page = b.post(f"/guest/{seat.pk}/toss/", {**guest_form(b, seat), "pgpay_form": chosen})
        assert page.status_code in (200, 409) and theirs.order_number not in page.content.decode()
    theirs.refresh_from_db()
    assert theirs.status == S.READY and theirs.pg_data["pgpay_forms"] == [theirs.pg_data["pgpay_forms"][0]]


@pytest.mark.parametrize("who", ["guest", "buyer"])
def test_a_made_up_token_naming_an_impossible_moment_is_no_500(who, buyer, seat, toss, toss_api):
    """``tffffffffffff_...`` names the year 10889: datetime refused it (a 500 for any visitor)."""
    client = Client(enforce_csrf_checks=True)
    url = f"/guest/{seat.pk}/toss/"
    if who == "buyer":
        client.force_login(buyer)
        assert client.post(url, guest_form(client, seat)).status_code == 200
        pay_and_return(client, Booking.objects.get(), toss_api)
    made_up = {**guest_form(client, seat), "pgpay_form": "tffffffffffff_" + "0" * 24}
    assert client.post(url, made_up).status_code == 200  # a booking (guest), or the question (the buyer paid)


def test_a_guest_who_paid_then_logged_in_is_not_charged_again_by_the_same_form(buyer, seat, toss, toss_api):
    client = Client(enforce_csrf_checks=True)
    fields = guest_form(client, seat)
    assert client.post(f"/guest/{seat.pk}/toss/", fields).status_code == 200
    pay_and_return(client, Booking.objects.get(), toss_api)
    client.force_login(buyer)  # the session keeps what the guest started
    again = client.post(f"/guest/{seat.pk}/toss/", {**fields, "csrfmiddlewaretoken": guest_form(client, seat)["csrfmiddlewaretoken"]})
    assert_shown_the_paid_booking(again, seat)


def test_a_buyer_who_paid_then_logged_out_is_not_charged_again_by_the_same_form(buyer, seat, toss, toss_api):
    client = Client(enforce_csrf_checks=True)
    client.force_login(buyer)
    fields = guest_form(client, seat)
    assert client.post(f"/guest/{seat.pk}/toss/", fields).status_code == 200
    pay_and_return(client, Booking.objects.get(), toss_api)
    client.logout()  # the session is gone; the page in the back button still holds the form's token
    again = client.post(f"/guest/{seat.pk}/toss/", {**guest_form(client, seat), "pgpay_form": fields["pgpay_form"]})
    assert_shown_the_paid_booking(again, seat)


def test_a_guest_order_found_by_its_token_is_remembered_in_the_new_session(seat, toss, toss_api):
    """The session was lost with the tab still open: the form found its READY order by the token, but the new
    session did not know it, so after paying another page of the session booked again without asking."""
    client = Client(enforce_csrf_checks=True)
    fields = guest_form(client, seat)
    assert client.post(f"/guest/{seat.pk}/toss/", fields).status_code == 200
    client.cookies.pop("sessionid")
    assert client.post(f"/guest/{seat.pk}/toss/", fields).status_code == 200
    booking = Booking.objects.get()
    assert client.session["pgpay_orders"] == [booking.order_number]
    pay_and_return(client, booking, toss_api)
    with time_machine.travel(timezone.now() - datetime.timedelta(seconds=5)):
        older = guest_form(client, seat)  # a page of this session made before the payment: stale
    assert client.post(f"/guest/{seat.pk}/toss/", older).status_code == 409
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=2)):
        asked = client.post(f"/guest/{seat.pk}/toss/", guest_form(client, seat))
    assert asked.status_code == 200 and b"You have paid for this already" in asked.content
    assert Booking.objects.count() == 1


def test_a_payment_window_left_open_after_paying_elsewhere_says_paid_not_failed(client, buyer, toss_booking, toss_api):
    """Tab A's window of an order paid in tab B: the PG refuses (DUPLICATED_ORDER_ID) and sends the buyer to the
    fail URL, which said "Payment not completed" of a paid order (a buyer would pay again)."""
    booking = toss_booking()
    client.force_login(buyer)
    pay_and_return(client, booking, toss_api)
    fail = "/pay/toss/fail/?" + urlencode({"code": "DUPLICATED_ORDER_ID", "message": "x", "orderId": booking.order_number})
    page = client.get(fail)
    assert page.status_code == 200 and b"This was paid already. Nothing more was charged." in page.content
    assert b"<h1>Already paid</h1>" in page.content and b"Payment not completed" not in page.content
    # Someone else with the link learns nothing of the order.
    assert b"already" not in Client().get(fail).content


def test_a_lapsed_hold_is_renewed_not_doubled(buyer, seat, toss):
    """Issue #12 (lapsed hold): a buyer whose hold lapsed (reconcile has not run yet) checks out
    again: the old order is reused with a fresh hold, not a second place taken."""
    client = Client()
    client.force_login(buyer)
    client.post(f"/book/{seat.pk}/toss/")
    Booking.objects.update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    assert client.post(f"/book/{seat.pk}/toss/").status_code == 200
    booking = Booking.objects.get()
    assert booking.status == S.READY and booking.expires_at > timezone.now()
    seat.refresh_from_db()
    assert seat.remain == 2


def test_a_lapsed_hold_on_the_last_place_is_not_sold_out_to_its_buyer(buyer, seat, toss):
    """Issue #12 (lapsed hold): on the last place the returning buyer is not told "sold out"."""
    seat.remain = 1
    seat.save()
    client = Client()
    client.force_login(buyer)
    assert client.post(f"/book/{seat.pk}/toss/").status_code == 200
    Booking.objects.update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    again = client.post(f"/book/{seat.pk}/toss/")
    assert again.status_code == 200 and Booking.objects.count() == 1
    seat.refresh_from_db()
    assert seat.remain == 0


def test_reconcile_does_not_expire_a_hold_its_buyer_renewed(buyer, seat, toss, toss_api):
    client = Client()
    client.force_login(buyer)
    client.post(f"/book/{seat.pk}/toss/")
    booking = Booking.objects.get()
    Booking.objects.update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    booking.refresh_from_db()  # reconcile read the order as due ...
    client.post(f"/book/{seat.pk}/toss/")  # ... while its buyer came back
    payments.expire(booking, only_if_due=True)
    booking.refresh_from_db()
    assert booking.status == S.READY


def test_switching_pg_keeps_one_seat(buyer, seat, toss):
    """A buyer who opens Toss's window, then picks another PG, holds one seat, not two."""
    client = Client()
    client.force_login(buyer)
    assert client.post(f"/book/{seat.pk}/toss/").status_code == 200
    assert client.post(f"/book/{seat.pk}/fake/").status_code == 200
    seat.refresh_from_db()
    assert seat.remain == 2
    first, second = Booking.objects.order_by("pk")
    assert (first.gateway, first.status) == ("toss", S.EXPIRED)
    assert (second.gateway, second.status) == ("fake", S.READY)
    # Back to Toss: again one seat held; the fake order is given up once.
    assert client.post(f"/book/{seat.pk}/toss/").status_code == 200
    assert client.post(f"/book/{seat.pk}/toss/").status_code == 200
    seat.refresh_from_db()
    assert seat.remain == 2
    assert [(b.gateway, b.status) for b in Booking.objects.order_by("pk")] == [
        ("toss", S.EXPIRED),
        ("fake", S.EXPIRED),
        ("toss", S.READY),
    ]


def test_sold_out_is_a_clear_page_not_a_500(buyer, other_buyer, seat, toss):
    type(seat).objects.filter(pk=seat.pk).update(remain=0)
    client = Client()
    client.force_login(buyer)
    response = client.post(f"/book/{seat.pk}/toss/")
    assert response.status_code == 409 and b"Sold out." in response.content
    assert b"Nothing was reserved and nothing was charged." in response.content
    assert b'href="/"' in response.content  # the library's page leads back to the shop
    assert not Booking.objects.exists()


def test_checkout_needs_a_login(seat, toss):
    response = Client().post(f"/book/{seat.pk}/toss/")
    assert response.status_code == 302 and not Booking.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB")
def test_concurrent_checkouts_of_one_buyer_hold_one_seat(buyer, seat, toss):
    barrier = threading.Barrier(6)
    statuses = []

    def body():
        try:
            client = Client()
            client.force_login(buyer)
            barrier.wait()
            statuses.append(client.post(f"/book/{seat.pk}/toss/").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200] * 6
    assert Booking.objects.count() == 1
    seat.refresh_from_db()
    assert seat.remain == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB")
def test_a_guests_form_clicked_three_times_at_once_holds_one_seat(seat, toss, monkeypatch):
    """allow_anonymous: a guest has no user row to lock, so the same form posted at the same instant (a double
    or triple click on a first checkout, no session yet) reserved a place and opened a window per post. The
    posts now queue on a lock named after the form's token (checkout_locks) and come back to one booking."""
    from django_pgpay import checkout_locks
    from django_pgpay.models import CheckoutLock

    checkout_locks.write_slots()  # migration 0006 writes them; an earlier transactional test's flush emptied the table
    reserve = Booking.reserve

    def slow_reserve(self):
        taken = reserve(self)
        time.sleep(0.3)  # the first post is still inside its transaction when the others arrive
        return taken

    monkeypatch.setattr(Booking, "reserve", slow_reserve)
    browser = Client()
    fields = guest_form(browser, seat)
    barrier = threading.Barrier(3)
    answers = []

    def body():
        try:
            client = Client()
            client.cookies = copy.deepcopy(browser.cookies)  # one browser: the same cookies (no session yet)
            barrier.wait()
            response = client.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", fields)
            answers.append((response.status_code, window_order_id(response)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    booking = Booking.objects.get()
    assert answers == [(200, booking.order_number)] * 3
    assert booking.user is None and booking.status == S.READY
    seat.refresh_from_db()
    assert seat.remain == 2
    assert CheckoutLock.objects.count() == checkout_locks.SLOTS  # a checkout never writes the table


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB")
def test_guests_double_clicking_side_by_side_each_hold_one_seat(seat, toss):
    """Five guests each posting their own form twice at the same instant, three rounds: every post a 200, one
    booking per form. A first version of the lock inserted and deleted a row per checkout, and on MariaDB
    different guests' upserts deadlocked on each other's deleted rows (a 500; an attack review's test)."""
    from django_pgpay import checkout_locks

    checkout_locks.write_slots()
    seat.remain = 100
    seat.save()
    answers = []
    for _ in range(3):
        browsers = [Client() for _ in range(5)]
        forms = [guest_form(browser, seat) for browser in browsers]
        for browser, fields in zip(browsers, forms):  # each form posted once already (the slots are in use)
            browser.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", fields)
        jobs = [(browser, fields) for browser, fields in zip(browsers, forms) for _ in range(2)]
        barrier = threading.Barrier(len(jobs))

        def body(browser, fields):
            try:
                client = Client(raise_request_exception=False)
                client.cookies = copy.deepcopy(browser.cookies)
                barrier.wait()
                answers.append(client.post(f"/guest/{seat.pk}/toss/?pgpay_checkout=1", fields).status_code)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=body, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert answers == [200] * 30
    assert Booking.objects.count() == 15
    seat.refresh_from_db()
    assert seat.remain == 85


def test_a_return_view_mounted_for_one_alias(rf, buyer, toss_booking, toss_api):
    from django_pgpay.views import ReturnView

    booking = toss_booking()
    key = toss_api.authorize(booking)
    request = rf.get(return_url(booking, key))
    request.user = buyer
    response = ReturnView.as_view(gateway_alias="toss", order_models=["testapp.Booking"])(request)
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_checkout_urls_of_the_shops_own_views_carry_the_buyer_token(rf, make_booking):
    from django_pgpay.permissions import BUYER_TOKEN_PARAM, buyer_token
    from django_pgpay.views import checkout_urls

    booking = make_booking()
    token = f"{BUYER_TOKEN_PARAM}={buyer_token(booking.order_number)}"
    urls = checkout_urls(rf.get("/"), booking, return_url_name="django_pgpay:fail", fail_url_name="django_pgpay:return")
    assert urls.success_url == f"http://testserver/pay/{booking.gateway}/fail/?{token}"
    assert urls.fail_url == f"http://testserver/pay/{booking.gateway}/return/?{token}"
    assert urls.attempt_url.endswith(f"/attempt/?{token}") and "?" not in urls.webhook_url


def test_a_checkout_whose_return_url_lost_the_buyer_token_is_logged(buyer, seat, toss_api, caplog, monkeypatch):
    # The example shop's own return URLs once dropped it: a buyer back without their session was
    # refused (NOT_THE_BUYER) and the Toss payment never confirmed.
    from dataclasses import replace

    from tests.testapp.views import BookingView

    original = BookingView.get_checkout_urls
    monkeypatch.setattr(
        BookingView, "get_checkout_urls", lambda self, order: replace(original(self, order), success_url="http://testserver/r/")
    )
    client = Client()
    client.force_login(buyer)
    assert client.post(f"/book/{seat.pk}/toss/").status_code == 200
    assert "the return URL has no buyer token (pgpay_t)" in caplog.text
