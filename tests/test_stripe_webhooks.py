"""Stripe webhooks through WebhookView: signatures made by the official library, forged, stale and misdirected deliveries."""

import datetime
import json

import pytest
import requests
from django.test import Client
from django.utils import timezone
from django.utils import timezone as django_timezone

from django_pgpay import webhooks
from django_pgpay.models import WebhookEvent
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from tests.stripe_support import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET, signed

pytestmark = pytest.mark.django_db

URL = "/pay/stripe/webhook/"


def post(body: bytes, header: str | None):
    client = Client(enforce_csrf_checks=True)  # Stripe has no CSRF token
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    return client.post(
        URL, data=body, content_type="application/json", HTTP_USER_AGENT="Stripe/1.0 (+https://stripe.com/docs/webhooks)", **extra
    )


@pytest.fixture
def checkout(stripe_booking, stripe_api):
    """A READY booking with an open Checkout Session, as the checkout view leaves it."""
    from django_pgpay.gateways.results import CheckoutUrls

    def make():
        booking = stripe_booking()
        result = booking.get_gateway().checkout(
            booking.snapshot(), CheckoutUrls("http://testserver/pay/stripe/return/", "http://testserver/pay/stripe/fail/")
        )
        type(booking).objects.filter(pk=booking.pk).update(pg_data=dict(result.pg_data))
        booking.refresh_from_db()
        return booking, stripe_api.sessions[result.pg_data["stripe_session_id"]]

    return make


def test_a_delivery_signed_by_the_official_library_pays_the_order(checkout, stripe_api, seat):
    booking, session = checkout()
    intent_id = stripe_api.pay(session["id"])
    body, header = stripe_api.event("checkout.session.completed", session)
    calls = len(stripe_api.requests)
    response = post(body, header)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    # Signed: trusted as sent; one fetch of the Session, with its Charge, for the method and receipt.
    (fetch,) = stripe_api.requests[calls:]
    assert fetch.method == "GET" and f"/v1/checkout/sessions/{session['id']}?" in fetch.url and "latest_charge" in fetch.url
    booking.refresh_from_db()
    assert (booking.status, booking.pg_payment_id, booking.paid_at is not None) == (S.PAID, intent_id, True)
    assert booking.method == "card" and booking.receipt_url.startswith("https://")
    event = WebhookEvent.objects.get()
    assert (event.gateway, event.event_type, event.order_number, event.payment_id) == (
        "stripe",
        "checkout.session.completed",
        booking.order_number,
        intent_id,
    )
    assert event.event_id == json.loads(body)["id"] and event.verified and event.processed
    assert event.headers["Stripe-Signature"] == header and event.body == body.decode()
    seat.refresh_from_db()
    assert seat.remain == 2


def test_a_signed_session_event_still_pays_when_its_charge_cannot_be_fetched(checkout, stripe_api, seat):
    booking, session = checkout()
    intent_id = stripe_api.pay(session["id"])
    body, header = stripe_api.event("checkout.session.completed", session)
    stripe_api.fail_next("session", status=500, exception=requests.ConnectionError("Stripe is away"))
    response = post(body, header)
    assert response.status_code == 200
    booking.refresh_from_db()
    # Applied as the signed event says; only the Charge's details are missing.
    assert (booking.status, booking.pg_payment_id, booking.method, booking.receipt_url) == (S.PAID, intent_id, "", "")
    assert WebhookEvent.objects.get().processed


@pytest.mark.parametrize(
    "sign",
    [
        pytest.param(lambda body: signed(body, secret="whsec_someoneElsesEndpoint")[1], id="wrong secret"),
        pytest.param(lambda body: signed(body, timestamp=int(timezone.now().timestamp()) - 301)[1], id="expired"),
        pytest.param(lambda body: signed(body)[1][:-8] + "deadbeef", id="forged"),
        pytest.param(lambda body: None, id="no header"),
    ],
)
def test_bad_signatures_are_400_and_change_nothing(checkout, stripe_api, seat, sign):
    booking, session = checkout()
    stripe_api.pay(session["id"])
    body, _ = stripe_api.event("checkout.session.completed", session)
    calls = len(stripe_api.requests)
    response = post(body, sign(body))
    assert response.status_code == 400
    assert len(stripe_api.requests) == calls
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.count() == 0 and booking.pg_payment_id == ""
    event = WebhookEvent.objects.get()
    assert not event.verified and not event.processed and "Stripe-Signature" in event.error
    seat.refresh_from_db()
    assert seat.remain == 2


def test_a_forged_body_under_a_real_signature_is_refused(checkout, stripe_api):
    booking, session = checkout()
    body, header = stripe_api.event("checkout.session.completed", {**session, "status": "complete", "payment_status": "paid"})
    tampered = body.replace(b'"amount_total": 20000', b'"amount_total": 100')
    assert tampered != body
    assert post(tampered, header).status_code == 400
    booking.refresh_from_db()
    assert booking.status == S.READY


def test_the_old_secret_is_accepted_while_rolling(settings, checkout, stripe_api):
    gateways = settings.PGPAY["GATEWAYS"]
    stripe = {**gateways["stripe"], "OPTIONS": {**gateways["stripe"]["OPTIONS"], "WEBHOOK_SECRETS": [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET]}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**gateways, "stripe": stripe}}
    booking, session = checkout()
    stripe_api.pay(session["id"])
    assert post(*stripe_api.event("checkout.session.completed", session, secret=OLD_WEBHOOK_SECRET)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_a_duplicated_event_is_applied_once(checkout, stripe_api):
    booking, session = checkout()
    stripe_api.pay(session["id"])
    body, header = stripe_api.event("checkout.session.completed", session)
    first = post(body, header)
    _, again = signed(body)  # Stripe's retry: the same event, signed anew
    second = post(body, again)
    assert first.status_code == second.status_code == 200
    one, two = WebhookEvent.objects.order_by("pk")
    assert two.duplicate_of == one and two.processed
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1
    assert booking.transactions.filter(kind=K.CONFIRM).count() == 1


def test_a_failed_delivery_can_be_processed_from_the_log_hours_later(checkout, stripe_api, monkeypatch):
    booking, session = checkout()
    intent_id = stripe_api.pay(session["id"])
    post(*stripe_api.event("checkout.session.completed", session))
    refund = stripe_api.refund_in_dashboard(intent_id, 5000)
    body, header = stripe_api.event("charge.refunded", stripe_api.charges[refund["charge"]])
    stripe_api.fail_next("intent", "api_error")
    assert post(body, header).status_code == 503  # Stripe could not be asked for the refunds
    failed = WebhookEvent.objects.get(event_type="charge.refunded")
    assert failed.verified is False and not failed.processed

    later = timezone.now() + datetime.timedelta(hours=3)
    monkeypatch.setattr(django_timezone, "now", lambda: later)
    with pytest.raises(Exception, match="old"):
        booking.get_gateway().parse_webhook(failed.headers, body)  # as a new delivery it would be stale now
    receipt = webhooks.process(failed)  # from the admin or a shell: checked against its arrival
    assert receipt.accepted, receipt.event.error
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, 5000)


def test_an_expired_current_session_of_an_order_whose_time_is_up_expires_it(checkout, stripe_api, seat):
    booking, session = checkout()
    type(booking).objects.filter(pk=booking.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    stripe_api.time_out(session["id"])
    assert post(*stripe_api.event("checkout.session.expired", session)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.EXPIRED
    seat.refresh_from_db()
    assert seat.remain == 3


def test_an_expired_session_leaves_an_order_with_time_left_payable(checkout, stripe_api, seat):
    """The buyer may still pay (a new checkout makes a new Session): the order waits for its own expiry."""
    booking, session = checkout()
    stripe_api.time_out(session["id"])
    assert post(*stripe_api.event("checkout.session.expired", session)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.READY
    seat.refresh_from_db()
    assert seat.remain == 2


def test_an_expired_session_the_order_replaced_changes_nothing(checkout, stripe_api, stripe, seat):
    booking, old = checkout()
    stripe_api.time_out(old["id"])
    from django_pgpay.gateways.results import CheckoutUrls

    result = stripe.checkout(booking.snapshot(), CheckoutUrls("http://testserver/r/", "http://testserver/f/"))
    type(booking).objects.filter(pk=booking.pk).update(pg_data=dict(result.pg_data))
    assert result.pg_data["stripe_session_id"] != old["id"]
    response = post(*stripe_api.event("checkout.session.expired", old))
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.READY  # its current Session is still open
    seat.refresh_from_db()
    assert seat.remain == 2


@pytest.mark.parametrize("event_type", ["payment_intent.succeeded", "customer.created", "checkout.session.completed"])
def test_events_that_are_not_about_our_orders_are_acknowledged(stripe, stripe_api, event_type):
    from tests.stripe_support import fixture

    obj = {"object": "customer", "id": "cus_1"} if event_type == "customer.created" else fixture("payment_intent")
    if event_type == "checkout.session.completed":
        obj = {**fixture("checkout_session"), "client_reference_id": None, "metadata": {}}  # a Payment Link's
    response = post(*signed({**fixture("event"), "type": event_type, "data": {"object": obj}}))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.processed and event.error.startswith("ignored")
    assert stripe_api.requests == []


def test_a_real_payment_of_an_order_we_do_not_have(stripe, stripe_api):
    from tests.stripe_support import fixture

    obj = {**fixture("checkout_session"), "status": "complete", "payment_status": "paid", "client_reference_id": "FOREIGN_ORDER_1"}
    response = post(*signed({**fixture("event"), "data": {"object": obj}}))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.verified and event.status == "ignored" and "no order" in event.error


def test_wrong_method_and_unknown_alias(stripe, stripe_api):
    assert Client().get(URL).status_code == 405
    assert Client().post("/pay/nope/webhook/", data=b"{}", content_type="application/json").status_code == 404
    assert not WebhookEvent.objects.exists()
