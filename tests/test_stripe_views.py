"""Seed 002's shop flow through our views with Stripe mocked: order -> Checkout -> paid (webhook or return, once) -> refunded."""

import datetime
import json
import threading
from decimal import Decimal
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from django_pgpay import payments
from django_pgpay.exceptions import CancelRefused
from django_pgpay.gateways.stripe import PG_DATA_SESSIONS, StripeGateway
from django_pgpay.gateways.stripe_objects import PG_DATA_SESSION
from django_pgpay.models import WebhookEvent
from django_pgpay.permissions import buyer_token
from django_pgpay.signals import payment_confirmed
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionSource
from django_pgpay.status import TransactionStatus as T
from tests.stripe_support import AUTH, TIMEOUT
from tests.testapp.models import CartOrder, Product

pytestmark = pytest.mark.django_db

WEBHOOK = "/pay/stripe/webhook/"


@pytest.fixture
def book(db):
    return Product.objects.create(name="Django 5 By Example", price=Decimal("10.50"))


@pytest.fixture
def krw_book(db):
    return Product.objects.create(name="장고 책", price=Decimal("15000"))


@pytest.fixture
def usd(settings):
    settings.PGPAY = {**settings.PGPAY, "CURRENCY": "USD"}


@pytest.fixture
def confirmed():
    """Orders announced by ``payment_confirmed`` (sent on commit: run the steps under ``committed``)."""
    seen = []

    def receiver(sender, order, **kwargs):
        seen.append(order.order_number)

    payment_confirmed.connect(receiver)
    yield seen
    payment_confirmed.disconnect(receiver)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``with committed():`` runs the on-commit callbacks of the steps inside (the test's transaction never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def buyer_client(user):
    client = Client()
    client.force_login(user)
    return client


def checkout(client, product, quantity=1):
    """POST the shop's checkout: the browser is sent to Stripe's hosted page."""
    # The same product again after paying is on purpose here (a buyer who paid for it is asked first).
    response = client.post(f"/shop/{product.pk}/{quantity}/stripe/", {"pgpay_another": "1"})
    assert response.status_code == 302, response.content
    order = CartOrder.objects.order_by("-pk").first()
    return order, response["Location"]


def back_from_stripe(client, api, order):
    """Stripe redirects the buyer to success_url with ``{CHECKOUT_SESSION_ID}`` filled in."""
    session = api.session_of(order)
    return client.get(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))


def deliver(api, event_type, obj, **sign):
    body, header = api.event(event_type, obj, **sign)
    return Client(enforce_csrf_checks=True).post(WEBHOOK, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def form(request):
    return dict(parse_qsl(request.body if isinstance(request.body, str) else request.body.decode(), keep_blank_values=True))


def ledger(order):
    return [(r.kind, r.status, r.amount) for r in order.transactions.order_by("pk")]


# --- the seed flow ----------------------------------------------------------------------------------


def test_usd_order_paid_by_webhook_first_then_the_return_then_refunded_in_part(buyer, staff, book, usd, stripe_api, confirmed, committed):
    client = buyer_client(buyer)
    order, location = checkout(client, book)
    (create,) = stripe_api.sent("create")
    session = stripe_api.session_of(order)
    assert location == session["url"] and location.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    sent = form(create)
    assert create.headers["Authorization"] == AUTH
    assert sent["line_items[0][price_data][unit_amount]"] == "1050"  # USD 10.50 -> 1050 cents
    assert sent["line_items[0][price_data][currency]"] == "usd"
    assert sent["line_items[0][price_data][product_data][name]"] == "Django 5 By Example"
    assert (
        sent["client_reference_id"] == sent["metadata[order_id]"] == sent["payment_intent_data[metadata][order_id]"] == order.order_number
    )
    token = buyer_token(order.order_number)
    assert (
        sent["success_url"]
        == f"http://testserver/pay/stripe/return/?pgpay_t={token}&order_id={order.order_number}&session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert (
        sent["cancel_url"] == f"http://testserver/pay/stripe/fail/?pgpay_t={token}&order_id={order.order_number}&code=PAY_PROCESS_CANCELED"
    )
    order.refresh_from_db()
    assert (order.status, order.amount, order.currency) == (S.READY, Decimal("10.50"), "USD")
    assert order.pg_data == {"stripe_session_id": session["id"], "stripe_session_ids": [session["id"]]}

    intent_id = stripe_api.pay(session["id"])
    with committed():
        response = deliver(stripe_api, "checkout.session.completed", session)
    assert response.status_code == 200 and json.loads(response.content) == {"received": True}
    # A signed event is applied as sent, after one fetch of its Session for the Charge's method and receipt.
    assert len(stripe_api.sent("session")) == 1
    order.refresh_from_db()
    assert (order.status, order.pg_payment_id, order.method) == (S.PAID, intent_id, "card")
    assert order.receipt_url.startswith("https://")

    with committed():
        done = back_from_stripe(client, stripe_api, order)
    assert done.status_code == 200 and b"Payment complete" in done.content
    assert len(stripe_api.sent("session")) == 1  # the return is the same payment: replayed, Stripe not asked again
    assert ledger(order) == [(K.CONFIRM, T.SUCCEEDED, Decimal("10.50")), (K.WEBHOOK, T.SUCCEEDED, Decimal("10.50"))]
    assert confirmed == [order.order_number]

    outcome = payments.cancel(order, "3.50", reason="파손된 책", source=TransactionSource.STAFF, actor=staff)
    (refund,) = stripe_api.sent("refund")
    row = outcome.transaction
    assert form(refund) == {
        "payment_intent": intent_id,
        "amount": "350",
        "metadata[idempotency_key]": row.idempotency_key,
        "metadata[order_id]": order.order_number,
        "metadata[reason]": "파손된 책",
    }
    assert refund.headers["Idempotency-Key"] == row.idempotency_key
    order.refresh_from_db()
    assert (order.status, order.canceled_amount, order.balance) == (S.PARTIAL_CANCELED, Decimal("3.50"), Decimal("7.00"))
    assert (row.kind, row.status, row.amount) == (K.CANCEL, T.SUCCEEDED, Decimal("3.50"))
    assert row.pg_transaction_id.startswith("re_")

    # Stripe tells us about our own refund: recognised by its id, not counted twice.
    charge = stripe_api.charges[stripe_api.intents[intent_id]["latest_charge"]]
    assert deliver(stripe_api, "charge.refunded", charge).status_code == 200
    order.refresh_from_db()
    assert order.canceled_amount == Decimal("3.50") and not order.transactions.filter(kind=K.SYNC).exists()


def test_krw_order_paid_by_the_return_first_then_the_webhook(buyer, krw_book, stripe_api, confirmed, committed):
    client = buyer_client(buyer)
    order, _ = checkout(client, krw_book)
    assert form(stripe_api.sent("create")[0])["line_items[0][price_data][unit_amount]"] == "15000"  # KRW is zero-decimal
    session = stripe_api.session_of(order)
    intent_id = stripe_api.pay(session["id"])

    with committed():
        done = back_from_stripe(client, stripe_api, order)
    assert done.status_code == 200 and b"Payment complete" in done.content
    (retrieve,) = stripe_api.sent("session")
    assert urlsplit(retrieve.url).path == f"/v1/checkout/sessions/{session['id']}"
    order.refresh_from_db()
    assert (order.status, order.pg_payment_id, order.amount) == (S.PAID, intent_id, Decimal(15000))
    assert order.method == "card" and order.receipt_url.startswith("https://pay.stripe.com/receipts/")
    row = order.transactions.get(kind=K.CONFIRM)
    assert row.idempotency_key == payments.confirm_key(order.order_number, session["id"]) and row.pg_payment_id == intent_id

    with committed():
        assert deliver(stripe_api, "checkout.session.completed", session).status_code == 200
        assert back_from_stripe(client, stripe_api, order).status_code == 200  # a reload
    assert len(stripe_api.sent("session")) == 1
    # The webhook told the shop nothing new: the log keeps it, the order's ledger does not.
    assert ledger(order) == [(K.CONFIRM, T.SUCCEEDED, Decimal(15000))]
    assert WebhookEvent.objects.get(event_type="checkout.session.completed").status == "applied"
    assert confirmed == [order.order_number]

    payments.cancel(order, 5000, reason="부분 환불")
    assert form(stripe_api.sent("refund")[0])["amount"] == "5000"
    order.refresh_from_db()
    assert (order.status, order.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(5000))
    payments.cancel(order, payments.FULL, reason="나머지 환불")
    assert form(stripe_api.sent("refund")[1])["amount"] == "10000"
    order.refresh_from_db()
    assert (order.status, order.canceled_amount, order.balance) == (S.CANCELED, Decimal(15000), 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB")
def test_return_and_webhook_at_the_same_instant_pay_once(buyer, krw_book, stripe_api):
    confirmed = []
    payment_confirmed.connect(lambda sender, order, **kw: confirmed.append(order.order_number), weak=False, dispatch_uid="stripe-race")
    try:
        orders = []
        for _round in range(3):
            client = buyer_client(buyer)
            order, _ = checkout(client, krw_book)
            session = stripe_api.session_of(order)
            stripe_api.pay(session["id"])
            body, header = stripe_api.event("checkout.session.completed", session)
            barrier = threading.Barrier(2)
            statuses = []

            def browser():
                try:
                    barrier.wait()
                    statuses.append(back_from_stripe(client, stripe_api, order).status_code)
                finally:
                    connections.close_all()

            def stripe_server():
                try:
                    barrier.wait()
                    statuses.append(
                        Client().post(WEBHOOK, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header).status_code
                    )
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=browser), threading.Thread(target=stripe_server)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert sorted(statuses) == [200, 200]
            order.refresh_from_db()
            assert order.status == S.PAID
            assert order.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == 1
            assert not order.transactions.filter(status__in=(T.PENDING, T.UNKNOWN)).exists()
            orders.append(order.order_number)  # the next round's checkout makes a new order: this one is paid
        assert sorted(confirmed) == sorted(orders)
    finally:
        payment_confirmed.disconnect(dispatch_uid="stripe-race")


# --- the return and cancel URLs -------------------------------------------------------------------------


def test_the_cancel_url_shows_our_message_and_keeps_the_order(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    response = client.get(stripe_api.session_of(order)["cancel_url"])
    assert response.status_code == 200 and b"You closed the payment window" in response.content
    order.refresh_from_db()
    assert order.status == S.READY and order.transactions.count() == 0
    assert stripe_api.sent("session") == []


def test_a_paid_session_of_another_order_on_the_return_is_refused(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    paid, _ = checkout(client, book)
    stripe_api.pay(stripe_api.session_of(paid)["id"])
    other, _ = checkout(client, book, quantity=2)
    response = client.get(f"/pay/stripe/return/?order_id={other.order_number}&session_id={stripe_api.session_of(paid)['id']}")
    assert response.status_code == 400 and b"belongs to another order" in response.content
    other.refresh_from_db()
    assert other.status == S.READY and other.pg_payment_id == ""
    assert other.transactions.count() == 0  # another order's payment: nothing written into this one
    assert stripe_api.sent("refund") == []


@pytest.mark.parametrize("session_id", ["cs_test_doesNotExist", "{CHECKOUT_SESSION_ID}"])
def test_bad_session_ids_on_the_return(buyer, book, usd, stripe_api, session_id):
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    response = client.get(f"/pay/stripe/return/?order_id={order.order_number}&session_id={session_id}")
    assert response.status_code in (400, 404)
    order.refresh_from_db()
    assert order.status == S.READY


def test_an_open_session_on_the_return_is_pending_until_paid(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    session = stripe_api.session_of(order)
    assert back_from_stripe(client, stripe_api, order).status_code == 202  # not paid yet
    stripe_api.pay(session["id"])
    assert deliver(stripe_api, "checkout.session.completed", session).status_code == 200
    order.refresh_from_db()
    assert order.status == S.PAID
    assert [(r.kind, r.status) for r in order.transactions.order_by("pk")] == [(K.CONFIRM, T.SUCCEEDED), (K.WEBHOOK, T.SUCCEEDED)]


def test_checkout_reuses_the_open_session(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    order, first = checkout(client, book)
    again, second = checkout(client, book)
    assert again == order and first == second
    assert len(stripe_api.sent("create")) == 1 and len(stripe_api.sent("session")) == 1


def test_checkout_again_after_paying_goes_to_the_return(buyer, book, usd, stripe_api):
    """The buyer paid but closed the tab before the return, and no webhook came yet."""
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    stripe_api.pay(stripe_api.session_of(order)["id"])
    _, location = checkout(client, book)
    assert location.startswith("http://testserver/pay/stripe/return/")
    assert client.get(location).status_code == 200
    order.refresh_from_db()
    assert order.status == S.PAID and len(stripe_api.sent("create")) == 1


# --- money the shop must not keep ---------------------------------------------------------------------------


def test_an_expired_checkout_is_closed_at_stripe_and_cannot_be_paid(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    session = stripe_api.session_of(order)
    CartOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    order.refresh_from_db()
    outcome = payments.reconcile(order)
    assert order.status == S.EXPIRED and "status EXPIRED" in outcome.changes
    (expire,) = stripe_api.sent("expire")
    assert urlsplit(expire.url).path == f"/v1/checkout/sessions/{session['id']}/expire"
    assert session["status"] == "expired"
    # Stripe reports the expiry: nothing more to do.
    assert deliver(stripe_api, "checkout.session.expired", session).status_code == 200
    order.refresh_from_db()
    assert order.status == S.EXPIRED


def expire_leaving_the_session_open(order):
    """``payments.expire`` as if Stripe had not closed the Session (say its expire call was lost).

    ``expire`` closes the order's Sessions first, so a buyer cannot pay an
    expired order through it; these tests give back a payment that still
    reaches one (the Session was open when the order expired).
    """
    with mock.patch.object(StripeGateway, "abandon"):
        payments.expire(order)


def test_a_payment_for_an_order_that_expired_meanwhile_is_given_back(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    session = stripe_api.session_of(order)
    expire_leaving_the_session_open(order)  # the order gave up just before the buyer paid
    intent_id = stripe_api.pay(session["id"])
    assert deliver(stripe_api, "checkout.session.completed", session).status_code == 200
    order.refresh_from_db()
    assert order.status == S.EXPIRED
    (refund,) = stripe_api.sent("refund")
    row = order.transactions.get(kind=K.COMPENSATE)
    assert form(refund)["payment_intent"] == intent_id and form(refund)["amount"] == "1050"
    assert refund.headers["Idempotency-Key"] == row.idempotency_key and row.status == T.SUCCEEDED
    assert stripe_api.charges[stripe_api.intents[intent_id]["latest_charge"]]["refunded"]


def test_the_return_after_expiry_looks_the_payment_up_and_gives_it_back(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    expire_leaving_the_session_open(order)
    stripe_api.pay(stripe_api.session_of(order)["id"])
    response = back_from_stripe(client, stripe_api, order)
    assert response.status_code in (200, 409)
    assert len(stripe_api.sent("refund")) == 1
    order.refresh_from_db()
    assert order.status == S.EXPIRED


def test_an_amount_stripe_charged_that_the_order_did_not_ask_for_is_refunded(buyer, book, usd, stripe_api):
    client = buyer_client(buyer)
    order, _ = checkout(client, book)
    session = stripe_api.session_of(order)
    session.update(amount_total=100, amount_subtotal=100)  # a tampered price at Stripe
    stripe_api.pay(session["id"])
    response = back_from_stripe(client, stripe_api, order)
    assert response.status_code == 400 and b"does not match" in response.content
    order.refresh_from_db()
    assert order.status == S.FAILED
    assert form(stripe_api.sent("refund")[0])["amount"] == "100"


# --- refunds the answer of which was lost, made in the Dashboard, or refused -------------------------------------


@pytest.fixture
def paid_order(buyer, krw_book, stripe_api):
    return _paid_order(buyer_client(buyer), krw_book, stripe_api)


def test_a_refund_whose_answer_was_lost_is_found_by_its_key_not_sent_again(paid_order, stripe_api):
    stripe_api.fail_next("refund", exception=TIMEOUT, after=True)
    outcome = payments.cancel(paid_order, 4000, reason="x")
    assert outcome.pending and outcome.transaction.status == T.UNKNOWN
    payments.reconcile(paid_order)
    row = paid_order.transactions.get(kind=K.CANCEL)
    assert row.status == T.SUCCEEDED and row.pg_transaction_id.startswith("re_")
    assert len(stripe_api.sent("refund")) == 1
    assert (paid_order.status, paid_order.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(4000))
    assert not paid_order.transactions.filter(kind=K.SYNC).exists()


def test_a_dashboard_refund_reaches_the_ledger_once(paid_order, stripe_api):
    refund = stripe_api.refund_in_dashboard(paid_order.pg_payment_id, 6000)
    charge = stripe_api.charges[refund["charge"]]
    first = deliver(stripe_api, "charge.refunded", charge)
    second = deliver(stripe_api, "charge.refunded", charge)  # another event about the same refund
    assert first.status_code == second.status_code == 200
    paid_order.refresh_from_db()
    assert (paid_order.status, paid_order.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(6000))
    sync = paid_order.transactions.get(kind=K.SYNC)
    assert (sync.amount, sync.pg_transaction_id, sync.source) == (Decimal(6000), refund["id"], TransactionSource.WEBHOOK)
    payments.reconcile(paid_order, deep=True)
    assert paid_order.transactions.filter(kind=K.SYNC).count() == 1 and paid_order.canceled_amount == Decimal(6000)


def test_a_refund_beyond_what_stripe_has_left_is_refused_and_changes_nothing(paid_order, stripe_api):
    stripe_api.refund_in_dashboard(paid_order.pg_payment_id, 12000)  # no webhook reached us
    with pytest.raises(CancelRefused) as info:
        payments.cancel(paid_order, 5000, reason="x")
    assert info.value.code == "amount_too_large"
    paid_order.refresh_from_db()
    assert (paid_order.status, paid_order.canceled_amount) == (S.PAID, 0)
    assert paid_order.transactions.get(kind=K.CANCEL).status == T.FAILED


def test_a_refund_of_a_payment_stripe_already_refunded_applies_what_stripe_says(paid_order, stripe_api):
    stripe_api.refund_in_dashboard(paid_order.pg_payment_id)
    outcome = payments.cancel(paid_order, payments.FULL, reason="x")
    assert outcome.transaction.status == T.FAILED  # our request did nothing ...
    paid_order.refresh_from_db()
    assert (paid_order.status, paid_order.canceled_amount) == (S.CANCELED, Decimal(15000))  # ... but the order follows Stripe
    assert paid_order.transactions.get(kind=K.SYNC).amount == Decimal(15000)


def test_a_double_submitted_refund_is_made_once(paid_order, stripe_api):
    first = payments.cancel(paid_order, 1000, reason="x", idempotency_key="form-1")
    again = payments.cancel(paid_order, 1000, reason="x", idempotency_key="form-1")
    assert again.replayed and again.transaction == first.transaction
    assert len(stripe_api.sent("refund")) == 1


# --- delayed payment methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("succeed", [True, False])
def test_a_delayed_payment_is_pending_until_stripe_settles_it(buyer, krw_book, stripe_api, succeed):
    client = buyer_client(buyer)
    order, _ = checkout(client, krw_book)
    session = stripe_api.session_of(order)
    stripe_api.pay(session["id"], delayed=True)
    assert deliver(stripe_api, "checkout.session.completed", session).status_code == 200
    assert back_from_stripe(client, stripe_api, order).status_code == 202
    order.refresh_from_db()
    assert order.status == S.READY
    stripe_api.settle_delayed(session["id"], succeed=succeed)
    event = "checkout.session.async_payment_succeeded" if succeed else "checkout.session.async_payment_failed"
    assert deliver(stripe_api, event, session).status_code == 200
    order.refresh_from_db()
    # A failed debit ends that Session; the order stays payable (a new checkout, a new Session) until its time is up.
    assert order.status == (S.PAID if succeed else S.READY)
    assert order.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == (1 if succeed else 0)
    assert not order.transactions.filter(status__in=(T.PENDING, T.UNKNOWN)).exists()


# --- attack review of 7 December 2026 (helper, report-only): Sessions left open ----------------


def test_a_buyer_switching_pg_closes_the_stripe_session_of_the_order_given_up(buyer, krw_book, stripe_api):
    """The Stripe order expired at the switch and its Session stayed open: the buyer paid it in the first tab."""
    client = buyer_client(buyer)
    assert client.post(f"/shop/{krw_book.pk}/1/stripe/", {"pgpay_another": "1"}).status_code == 302
    stripe_order = CartOrder.objects.get()
    session_id = stripe_order.pg_data[PG_DATA_SESSION]
    assert client.post(f"/shop/{krw_book.pk}/1/fake/", {"pgpay_another": "1"}).status_code == 200
    stripe_order.refresh_from_db()
    assert stripe_order.status == S.EXPIRED
    assert stripe_api.sessions[session_id]["status"] == "expired"  # nothing left to pay in the first tab
    assert len(stripe_api.sent("expire")) == 1


def test_switching_pg_after_paying_in_the_first_tab_keeps_the_stripe_order(buyer, krw_book, stripe_api):
    client = buyer_client(buyer)
    client.post(f"/shop/{krw_book.pk}/1/stripe/", {"pgpay_another": "1"})
    stripe_order = CartOrder.objects.get()
    stripe_api.pay(stripe_order.pg_data[PG_DATA_SESSION])  # paid, its return and webhook still on the way
    response = client.post(f"/shop/{krw_book.pk}/1/fake/", {"pgpay_another": "1"})
    stripe_order.refresh_from_db()
    assert stripe_order.status == S.READY  # not expired under a payment; the lookup will apply it
    assert CartOrder.objects.count() == 1 and response.status_code in (200, 302, 409)
    payments.reconcile(stripe_order, deep=True)
    stripe_order.refresh_from_db()
    assert stripe_order.status == S.PAID


def test_switching_pg_while_stripe_is_down_changes_nothing(buyer, krw_book, stripe_api):
    client = buyer_client(buyer)
    client.post(f"/shop/{krw_book.pk}/1/stripe/", {"pgpay_another": "1"})
    stripe_order = CartOrder.objects.get()
    stripe_api.fail_next("expire", exception=requests.ConnectionError("Stripe is down"))
    response = client.post(f"/shop/{krw_book.pk}/1/fake/", {"pgpay_another": "1"})
    assert response.status_code == 503
    stripe_order.refresh_from_db()
    assert stripe_order.status == S.READY and CartOrder.objects.count() == 1  # its Session may be open: the order stays


def two_tabs_at_once(buyer, product, monkeypatch):
    """Two checkouts of one order at once (two tabs, a double click on two workers): the order and both Sessions."""
    tab1, tab2 = buyer_client(buyer), buyer_client(buyer)
    url = f"/shop/{product.pk}/1/stripe/"
    real_call = StripeGateway._call
    state = {"nested": False, "tab2": None}

    def interleaved(self, verb, method, path, **kwargs):
        # Tab 1 has read the order and is about to make its Session: tab 2's whole checkout runs now.
        if verb == "checkout" and not state["nested"]:
            state["nested"] = True
            state["tab2"] = tab2.post(url, {"pgpay_another": "1"})
        return real_call(self, verb, method, path, **kwargs)

    monkeypatch.setattr(StripeGateway, "_call", interleaved)
    first = tab1.post(url, {"pgpay_another": "1"})
    monkeypatch.setattr(StripeGateway, "_call", real_call)
    assert first.status_code == 302 and state["tab2"].status_code == 302
    return CartOrder.objects.get(), first["Location"], state["tab2"]["Location"]


def test_two_checkouts_of_one_order_at_once_both_sessions_are_remembered(buyer, krw_book, stripe_api, monkeypatch):
    """The slower checkout's pg_data overwrote the other's Session, which could still be paid.

    With its return and webhook lost, reconcile never found it: the order expired with the
    buyer's 15,000 won at Stripe.
    """
    order, url1, url2 = two_tabs_at_once(buyer, krw_book, monkeypatch)
    by_url = {s["url"]: sid for sid, s in stripe_api.sessions.items()}
    session1, session2 = by_url[url1], by_url[url2]
    assert session1 != session2
    assert {session1, session2} <= set(order.pg_data[PG_DATA_SESSIONS])
    # The buyer pays in tab 2; no return, no webhook. Reconcile after the hold finds the payment.
    stripe_api.pay(session2)
    CartOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    order.refresh_from_db()
    payments.reconcile(order)
    order.refresh_from_db()
    assert order.status == S.PAID and not stripe_api.sent("refund")


def test_an_order_given_up_closes_every_session_its_checkouts_opened(buyer, krw_book, stripe_api, monkeypatch):
    order, url1, url2 = two_tabs_at_once(buyer, krw_book, monkeypatch)
    CartOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    order.refresh_from_db()
    payments.reconcile(order)
    order.refresh_from_db()
    assert order.status == S.EXPIRED
    assert len(order.pg_data[PG_DATA_SESSIONS]) == 2
    assert all(stripe_api.sessions[s]["status"] == "expired" for s in order.pg_data[PG_DATA_SESSIONS])


# --- a refund Stripe accepted and later failed (attack review of 7 December 2026) ------------------


def _pending_refunds(stripe_api):
    original = stripe_api._make_refund

    def pending_refund(intent, amount, metadata):
        refund = original(intent, amount, metadata)
        refund["status"] = "pending"  # accepted, not yet carried out (normal for many methods)
        return refund

    stripe_api._make_refund = pending_refund


def _refund_fails_at_stripe(stripe_api, refund):
    """Days later Stripe reports the refund failed (a closed card): the money is back in the shop's balance."""
    refund["status"] = "failed"
    refund["failure_reason"] = "expired_or_canceled_card"
    charge = stripe_api.charges[refund["charge"]]
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = False


def _paid_order(client, krw_book, stripe_api):
    order, _ = checkout(client, krw_book)
    stripe_api.pay(stripe_api.session_of(order)["id"])
    assert back_from_stripe(client, stripe_api, order).status_code == 200
    order.refresh_from_db()
    assert order.status == S.PAID
    return order


def test_a_refund_that_failed_at_stripe_after_it_was_accepted_needs_attention(
    buyer, krw_book, stripe_api, django_capture_on_commit_callbacks, admin_client
):
    """It stayed 'refunded' for ever: CANCELED, 15,000 given back, nothing needing attention, the buyer unpaid."""
    from django_pgpay.signals import payment_needs_attention

    order = _paid_order(buyer_client(buyer), krw_book, stripe_api)
    _pending_refunds(stripe_api)
    payments.cancel(order, payments.FULL, reason="buyer asked")
    (refund,) = stripe_api.refunds.values()
    _refund_fails_at_stripe(stripe_api, refund)
    told = []
    payment_needs_attention.connect(lambda **kw: told.append(kw["reason"]), weak=False, dispatch_uid="t-refund-failed")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            outcome = payments.reconcile(order, deep=True)
    finally:
        payment_needs_attention.disconnect(dispatch_uid="t-refund-failed")
    order.refresh_from_db()
    row = order.transactions.get(kind=K.CANCEL)
    assert row.status == T.ATTENTION and row.error_code == "REFUND_FAILED" and "expired_or_canceled_card" in row.error_message
    assert outcome.changes == (f"refund {row.amount} failed at the PG",) and len(told) == 1 and "failed" in told[0]
    # The order stays cancelled (its stock was given back); its total is what the shop owes or gave back.
    assert order.status == S.CANCELED and order.canceled_amount == Decimal(15000)
    assert payments.reconcile(order, deep=True).changes == ()  # once
    page = admin_client.get(f"/admin/testapp/cartorder/{order.pk}/change/")
    assert page.context["banners"][0].level == "error"
    assert "the PG reports that a refund of ₩15,000 failed after it was made" in page.context["banners"][0].message

    # Staff refund again in Stripe's Dashboard: reconcile finds it and the row is settled.
    stripe_api.refund_in_dashboard(row.pg_payment_id)
    outcome = payments.reconcile(order, deep=True)
    order.refresh_from_db()
    row.refresh_from_db()
    assert row.status == T.FAILED and order.canceled_amount == Decimal(15000) and order.status == S.CANCELED
    assert order.transactions.get(kind=K.SYNC).status == T.SUCCEEDED
    assert not order.transactions.filter(status=T.ATTENTION).exists()


def test_a_failed_partial_refund_leaves_the_rest_refundable_and_the_books_consistent(buyer, krw_book, stripe_api):
    order = _paid_order(buyer_client(buyer), krw_book, stripe_api)
    _pending_refunds(stripe_api)
    payments.cancel(order, "5000", reason="one item", source=TransactionSource.STAFF)
    (refund,) = stripe_api.refunds.values()
    _refund_fails_at_stripe(stripe_api, refund)
    payments.reconcile(order, deep=True)
    order.refresh_from_db()
    assert order.status == S.PARTIAL_CANCELED and order.canceled_amount == Decimal(5000)
    # The rest can still be refunded through the shop; the failed 5,000 stays owed (needs attention).
    payments.cancel(order, payments.FULL, reason="the rest", source=TransactionSource.STAFF)
    order.refresh_from_db()
    assert order.status == S.CANCELED and order.canceled_amount == Decimal(15000)
    assert order.transactions.filter(status=T.ATTENTION, error_code="REFUND_FAILED").count() == 1


def test_stripes_refund_failed_event_is_applied_at_once(buyer, krw_book, stripe_api):
    order = _paid_order(buyer_client(buyer), krw_book, stripe_api)
    _pending_refunds(stripe_api)
    payments.cancel(order, payments.FULL, reason="buyer asked")
    (refund,) = stripe_api.refunds.values()
    _refund_fails_at_stripe(stripe_api, refund)
    assert deliver(stripe_api, "charge.refund.updated", refund).status_code == 200
    row = order.transactions.get(kind=K.CANCEL)
    assert row.status == T.ATTENTION and row.error_code == "REFUND_FAILED"


# --- a review of this session's own fixes (7 December 2026, helper, report-only) ----------------


def test_a_failed_refund_given_back_in_two_dashboard_refunds_settles_without_breaking_the_books(buyer, krw_book, stripe_api):
    """Given back as 5,000 + 10,000, the sync rows were added on top of the failed 15,000 (30,000 of 15,000):
    LEDGER_INCONSISTENT at every reconcile and webhook of the order."""
    order = _paid_order(buyer_client(buyer), krw_book, stripe_api)
    _pending_refunds(stripe_api)
    payments.cancel(order, payments.FULL, reason="buyer asked")
    (refund,) = stripe_api.refunds.values()
    _refund_fails_at_stripe(stripe_api, refund)
    payments.reconcile(order, deep=True)
    row = order.transactions.get(kind=K.CANCEL)
    stripe_api.refund_in_dashboard(row.pg_payment_id, 5000)
    outcome = payments.reconcile(order, deep=True)
    assert outcome.error is None
    row.refresh_from_db()
    order.refresh_from_db()
    assert (row.status, row.amount) == (T.ATTENTION, Decimal(10000)) and order.canceled_amount == Decimal(15000)  # 10,000 still owed
    stripe_api.refund_in_dashboard(row.pg_payment_id, 10000)
    outcome = payments.reconcile(order, deep=True)
    order.refresh_from_db()
    assert outcome.error is None and not order.transactions.filter(status=T.ATTENTION).exists()
    assert order.status == S.CANCELED and order.canceled_amount == Decimal(15000)
    assert sorted(order.transactions.filter(kind=K.SYNC, status=T.SUCCEEDED).values_list("amount", flat=True)) == [5000, 10000]
    # The failed 15,000 stays in the ledger as two failed parts, each settled by a refund made again.
    assert sum(order.transactions.filter(kind=K.CANCEL, status=T.FAILED).values_list("amount", flat=True)) == 15000


def test_a_compensating_refund_that_fails_later_needs_attention(buyer, krw_book, stripe_api, monkeypatch):
    """Two tabs both paid; the second payment was given back and Stripe then failed that refund: the buyer
    had paid twice and nothing said so."""
    order, _url1, _url2 = two_tabs_at_once(buyer, krw_book, monkeypatch)
    first, second = order.pg_data[PG_DATA_SESSIONS]
    _pending_refunds(stripe_api)
    stripe_api.pay(first)
    stripe_api.pay(second)
    payments.reconcile(order, deep=True)
    (refund,) = stripe_api.refunds.values()
    _refund_fails_at_stripe(stripe_api, refund)
    assert deliver(stripe_api, "charge.refund.updated", refund).status_code == 200
    row = order.transactions.get(kind=K.COMPENSATE)
    assert row.status == T.ATTENTION and row.error_code == "REFUND_FAILED"
    assert len(stripe_api.refunds) == 1  # not sent again by itself (the same card would refuse it)
    payments.reconcile(order, deep=True)
    row.refresh_from_db()
    assert row.status == T.ATTENTION


def test_a_buyer_whose_delayed_payment_failed_can_switch_pg(buyer, krw_book, stripe_api):
    """Stripe leaves such a Session complete and unpaid: closing it raised CHECKOUT_COMPLETED, and every
    other PG's form sent the buyer back to the failed Stripe return, the place held until the hold lapsed."""
    client = buyer_client(buyer)
    assert client.post(f"/shop/{krw_book.pk}/1/stripe/", {"pgpay_another": "1"}).status_code == 302
    stripe_order = CartOrder.objects.get()
    session_id = stripe_order.pg_data[PG_DATA_SESSION]
    stripe_api.pay(session_id, delayed=True)
    stripe_api.settle_delayed(session_id, succeed=False)
    response = client.post(f"/shop/{krw_book.pk}/1/fake/", {"pgpay_another": "1"})
    assert response.status_code == 200  # the other PG's window
    stripe_order.refresh_from_db()
    assert stripe_order.status == S.EXPIRED and CartOrder.objects.filter(gateway="fake", status=S.READY).count() == 1


def test_switching_pg_calls_stripe_outside_the_checkouts_transaction(buyer, krw_book, stripe_api, monkeypatch):
    """Closing every remembered Session (two calls each) ran under the buyer's row lock: with six Sessions
    and Stripe answering in a second, the buyer's other tab waited 10.8 s."""
    client = buyer_client(buyer)
    client.post(f"/shop/{krw_book.pk}/1/stripe/", {"pgpay_another": "1"})
    stripe_order = CartOrder.objects.get()
    for _ in range(3):  # the page left open too long: a new Session each time
        stripe_api.time_out(stripe_order.pg_data[PG_DATA_SESSION])
        client.post(f"/shop/{krw_book.pk}/1/stripe/", {"pgpay_another": "1"})
        stripe_order.refresh_from_db()
    assert len(stripe_order.pg_data[PG_DATA_SESSIONS]) == 4
    real_call = StripeGateway._call
    events = []

    def watched(self, verb, method, path, **kwargs):
        events.append("stripe")
        return real_call(self, verb, method, path, **kwargs)

    def locks(execute, sql, params, many, context):
        # A row lock (SQLite has none, so there: the first write, the order given up).
        if "FOR UPDATE" in sql or sql.lstrip().upper().startswith(("UPDATE", "INSERT")):
            events.append("lock")
        return execute(sql, params, many, context)

    monkeypatch.setattr(StripeGateway, "_call", watched)
    with connection.execute_wrapper(locks):
        assert client.post(f"/shop/{krw_book.pk}/1/fake/", {"pgpay_another": "1"}).status_code == 200
    # Every Stripe call before the first row lock: a read of each closed Session, a read and an expire of the open one.
    assert events[:5] == ["stripe"] * 5 and "stripe" not in events[5:] and "lock" in events, events
    stripe_order.refresh_from_db()
    assert stripe_order.status == S.EXPIRED


def test_a_session_another_tab_made_during_the_switch_is_closed_too(buyer, krw_book, stripe_api, monkeypatch):
    """A review of the latest fixes (7 December 2026): while tab 1's switch closed the Stripe order's
    Sessions (before its locks), tab 2 came back to that order and made Session S2; tab 1 then expired the
    order without closing again, and S2 stayed payable on an EXPIRED order."""
    tab1, tab2 = buyer_client(buyer), buyer_client(buyer)
    stripe_url, fake_url = f"/shop/{krw_book.pk}/1/stripe/", f"/shop/{krw_book.pk}/1/fake/"
    assert tab1.post(stripe_url, {"pgpay_another": "1"}).status_code == 302
    order = CartOrder.objects.get()
    real_close = StripeGateway._close
    state = {"tab2": None}

    def close(self, session_id):
        closed = real_close(self, session_id)
        if state["tab2"] is None:  # tab 1's switch has read the order: tab 2's checkout runs now
            state["tab2"] = tab2.post(stripe_url, {"pgpay_another": "1"})
        return closed

    monkeypatch.setattr(StripeGateway, "_close", close)
    assert tab1.post(fake_url, {"pgpay_another": "1"}).status_code == 200
    monkeypatch.setattr(StripeGateway, "_close", real_close)
    assert state["tab2"].status_code == 302
    order.refresh_from_db()
    statuses = {s: stripe_api.sessions[s]["status"] for s in order.pg_data[PG_DATA_SESSIONS]}
    assert order.status == S.EXPIRED and len(statuses) == 2 and set(statuses.values()) == {"expired"}, statuses


def test_an_order_paid_while_its_window_was_made_is_shown_as_paid_not_given_up(buyer, krw_book, stripe_api, monkeypatch):
    """The form posted again while its open Session was paid and the webhook applied: the buyer was told
    "This order was given up meanwhile ... start again" about the order they had just paid."""
    client = buyer_client(buyer)
    url = f"/shop/{krw_book.pk}/1/stripe/"
    assert client.post(url, {"pgpay_another": "1"}).status_code == 302
    order = CartOrder.objects.get()
    session_id = stripe_api.session_of(order)["id"]
    real_call = StripeGateway._call
    done = []

    def call(self, verb, method, path, **kwargs):
        reply = real_call(self, verb, method, path, **kwargs)
        if verb == "lookup" and "checkout/sessions" in path and not done:  # the checkout read the open Session
            done.append(1)
            stripe_api.pay(session_id)
            assert deliver(stripe_api, "checkout.session.completed", stripe_api.sessions[session_id]).status_code == 200
        return reply

    monkeypatch.setattr(StripeGateway, "_call", call)
    response = client.post(url, {"pgpay_another": "1"})
    monkeypatch.setattr(StripeGateway, "_call", real_call)
    order.refresh_from_db()
    assert order.status == S.PAID and done
    assert b"given up" not in response.content and response.status_code in (302, 409)
    assert not stripe_api.sent("refund")


def test_an_order_paid_meanwhile_has_its_other_windows_closed(buyer, krw_book, stripe_api, monkeypatch):
    """A last review (7 December 2026): two tabs made S_old and S_cur; a third post reused S_cur while
    S_old was paid and its webhook applied. The "paid already" answer left S_cur open: tab 2 could pay
    it, a second charge (refunded later)."""
    order, _url1, _url2 = two_tabs_at_once(buyer, krw_book, monkeypatch)
    current = order.pg_data[PG_DATA_SESSION]
    older = next(s for s in order.pg_data[PG_DATA_SESSIONS] if s != current)
    real_call = StripeGateway._call
    done = []

    def call(self, verb, method, path, **kwargs):
        reply = real_call(self, verb, method, path, **kwargs)
        if verb == "lookup" and current in path and not done:  # the checkout is reusing S_cur
            done.append(1)
            stripe_api.pay(older)
            assert deliver(stripe_api, "checkout.session.completed", stripe_api.sessions[older]).status_code == 200
        return reply

    monkeypatch.setattr(StripeGateway, "_call", call)
    response = buyer_client(buyer).post(f"/shop/{krw_book.pk}/1/stripe/", {"pgpay_another": "1"})
    monkeypatch.setattr(StripeGateway, "_call", real_call)
    order.refresh_from_db()
    assert done and order.status == S.PAID and response.status_code in (302, 409)
    assert stripe_api.sessions[current]["status"] == "expired"  # nothing left to pay in tab 2
