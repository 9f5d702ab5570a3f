"""Toss webhooks through WebhookView: forged, duplicated, early, failed and retried deliveries."""

import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.test import Client

from django_pgpay import webhooks
from django_pgpay.models import WebhookEvent
from django_pgpay.permissions import buyer_token
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T
from tests.toss_support import BASE, TIMEOUT, fixture

pytestmark = pytest.mark.django_db

URL = "/pay/toss/webhook/"


def status_changed(api, key, **changes):
    """A PAYMENT_STATUS_CHANGED delivery for payment ``key`` as Toss would send it now (or as ``changes`` claim)."""
    data = {k: v for k, v in api.payments[key].items() if not k.startswith("_")}
    data.update(changes)
    return {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2024-06-11T15:14:43.000000", "data": data}


def deliver(body, *, client=None, raw=None):
    client = client or Client(enforce_csrf_checks=True)  # the PG has no CSRF token
    payload = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    return client.post(URL, data=payload, content_type="application/json", HTTP_USER_AGENT="TossPayments", HTTP_COOKIE="sessionid=x")


def confirm_via_return(booking, key):
    query = urlencode(
        {
            "paymentKey": key,
            "orderId": booking.order_number,
            "amount": str(int(booking.amount)),
            "pgpay_t": buyer_token(booking.order_number),
        }
    )
    return Client().get(f"/pay/toss/return/?{query}")


def test_a_forged_webhook_changes_nothing(toss_booking, toss_api, seat):
    booking = toss_booking()
    forged = fixture("webhook_payment_status_changed")
    forged["data"].update(paymentKey="tgen_forged", orderId=booking.order_number, status="DONE")
    response = deliver(forged)
    assert response.status_code == 400
    assert [r.url for r in toss_api.requests] == [f"{BASE}/v1/payments/tgen_forged"]  # verified by a lookup
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.count() == 0
    event = WebhookEvent.objects.get()
    assert (event.gateway, event.event_type, event.order_number, event.verified, event.processed) == (
        "toss",
        "PAYMENT_STATUS_CHANGED",
        booking.order_number,
        False,
        False,
    )
    assert "not verified" in event.error and json.loads(event.body) == forged
    assert event.headers["User-Agent"] == "TossPayments" and "Cookie" not in event.headers
    assert event.remote_addr == "127.0.0.1"


def test_the_body_is_never_trusted_only_toss(toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)  # IN_PROGRESS at Toss
    response = deliver(status_changed(toss_api, key, status="DONE"))  # the body claims DONE
    # Toss says IN_PROGRESS: the claim is not confirmed, so the delivery is refused and changes nothing.
    assert response.status_code == 400
    booking.refresh_from_db()
    assert booking.status == S.READY
    assert booking.transactions.filter(kind=K.CONFIRM).count() == 0
    event = WebhookEvent.objects.get()
    assert event.status == "refused" and not event.processed and "DONE" in event.error


def test_a_body_naming_another_order_is_refused(toss_booking, toss_api):
    paid = toss_booking()
    key = toss_api.authorize(paid)
    confirm_via_return(paid, key)
    victim = toss_booking()
    response = deliver(status_changed(toss_api, key, orderId=victim.order_number))
    assert response.status_code == 400
    victim.refresh_from_db()
    assert victim.status == S.READY and victim.transactions.count() == 0


def test_a_duplicated_webhook_is_applied_once(toss_booking, toss_api, seat):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    confirm_via_return(booking, key)
    toss_api.cancel_in_dashboard(key)
    body = status_changed(toss_api, key)
    first, second = deliver(body), deliver(body)
    assert first.status_code == second.status_code == 200
    assert first.content == b"OK" and first["Content-Type"] == "text/plain"
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    assert booking.transactions.filter(kind=K.SYNC).count() == 1
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1
    one, two = WebhookEvent.objects.order_by("pk")
    assert one.processed and one.verified and two.processed and two.duplicate_of == one
    # Each delivery is verified before it is compared (a forged one must not shadow the real one):
    # the duplicate costs one lookup and is recognised by the state Toss reported.
    assert len(toss_api.sent("lookup")) == 2 and one.event_id == two.event_id
    seat.refresh_from_db()
    assert seat.remain == 3


def test_a_webhook_before_the_browser_returns_leaves_the_order_paid_once(toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    assert deliver(status_changed(toss_api, key)).status_code == 200  # IN_PROGRESS: nothing to apply yet
    booking.refresh_from_db()
    assert booking.status == S.READY
    assert confirm_via_return(booking, key).status_code == 200
    assert deliver(status_changed(toss_api, key)).status_code == 200  # DONE, after the browser
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert booking.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == 1
    assert len(toss_api.sent("confirm")) == 1


def test_a_webhook_settles_a_confirm_whose_answer_was_lost(toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    toss_api.fail_next("confirm", exception=TIMEOUT, after=True)
    assert confirm_via_return(booking, key).status_code == 202
    assert deliver(status_changed(toss_api, key)).status_code == 200  # Toss: DONE
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert confirm_via_return(booking, key).status_code == 200  # the buyer reloads
    assert len(toss_api.sent("confirm")) == 1
    assert [(r.kind, r.status) for r in booking.transactions.order_by("pk")] == [(K.CONFIRM, T.SUCCEEDED), (K.WEBHOOK, T.SUCCEEDED)]


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b'{"eventType": "PAYMENT_STATUS_CHANGED", "data": {"status": "DONE"}}', "\ud800".encode("utf-8", "surrogatepass")],
)
def test_malformed_deliveries_are_400_and_kept(toss, toss_api, raw):
    response = deliver(None, raw=raw)
    assert response.status_code == 400
    event = WebhookEvent.objects.get()
    assert event.error.startswith("malformed") and not event.processed
    assert toss_api.requests == []


def test_unknown_alias_and_wrong_method(toss, toss_api):
    assert Client().post("/pay/nope/webhook/", data=b"{}", content_type="application/json").status_code == 404
    assert Client().get(URL).status_code == 405
    assert not WebhookEvent.objects.exists()


def test_a_failed_handler_is_answered_503_and_can_be_retried(toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    confirm_via_return(booking, key)
    toss_api.cancel_in_dashboard(key, 5000)
    body = status_changed(toss_api, key)
    toss_api.fail_next("lookup", "FAILED_INTERNAL_SYSTEM_PROCESSING")
    response = deliver(body)
    assert response.status_code == 503
    failed = WebhookEvent.objects.get()
    assert not failed.processed and "unavailable" in failed.error
    booking.refresh_from_db()
    assert booking.status == S.PAID

    receipt = webhooks.process(failed)  # a retry from the admin or a shell
    assert receipt.accepted and receipt.event.processed and receipt.event.error == ""
    booking.refresh_from_db()
    assert booking.status == S.PARTIAL_CANCELED and booking.canceled_amount == Decimal(5000)

    assert deliver(body).status_code == 200  # Toss's own retry: a duplicate now
    assert WebhookEvent.objects.order_by("-pk").first().duplicate_of == failed
    assert booking.transactions.filter(kind=K.SYNC).count() == 1


def test_toss_redelivering_after_a_failure_applies_it(toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    confirm_via_return(booking, key)
    toss_api.cancel_in_dashboard(key)
    body = status_changed(toss_api, key)
    toss_api.fail_next("lookup", exception=TIMEOUT)
    assert deliver(body).status_code == 503
    assert deliver(body).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    first, second = WebhookEvent.objects.order_by("pk")
    assert (first.processed, second.processed, second.duplicate_of) == (False, True, None)


def test_deposit_callback_with_the_right_secret_pays_the_order(toss_booking, toss_api, seat):
    booking = toss_booking()
    key = toss_api.authorize(booking, virtual_account=True)
    confirm_via_return(booking, key)
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    toss_api.deposit(key)
    callback = {
        "createdAt": "2024-06-11T17:30:00.000000",
        "secret": toss_api.payments[key]["secret"],
        "status": "DONE",
        "transactionKey": "8B1A2C3D4E5F60718293A4B5C6D7E8F9",
        "orderId": booking.order_number,
    }
    assert deliver(callback).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.paid_at is not None
    event = WebhookEvent.objects.get()
    assert (event.event_type, event.verified, event.processed) == ("DEPOSIT_CALLBACK", True, True)
    assert deliver(callback).status_code == 200  # Toss sends it again: applied once
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1


def test_deposit_callback_with_a_wrong_secret_is_refused_without_asking_toss(toss_booking, toss_api):
    booking = toss_booking()
    key = toss_api.authorize(booking, virtual_account=True)
    confirm_via_return(booking, key)
    before = len(toss_api.requests)
    forged = {"createdAt": "2024-06-11T17:30:00.000000", "secret": "ps_guessed", "status": "DONE", "orderId": booking.order_number}
    assert deliver(forged).status_code == 400
    assert len(toss_api.requests) == before
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    event = WebhookEvent.objects.get()
    assert not event.verified and "secret" in event.error


def test_deposit_callback_for_an_unknown_order_is_refused(toss, toss_api):
    body = {"createdAt": "2024-06-11T17:30:00.000000", "secret": "ps_x", "status": "DONE", "orderId": "NO_SUCH_ORDER_1"}
    assert deliver(body).status_code == 400
    assert toss_api.requests == []


def test_a_withdrawn_virtual_account_expires_unpaid(toss_booking, toss_api, seat):
    booking = toss_booking()
    key = toss_api.authorize(booking, virtual_account=True)
    confirm_via_return(booking, key)
    toss_api.cancel_in_dashboard(key)
    assert deliver(status_changed(toss_api, key)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.EXPIRED and booking.paid_at is None and booking.canceled_amount == 0
    assert booking.transactions.get(kind=K.CONFIRM).status == T.FAILED
    seat.refresh_from_db()
    assert seat.remain == 3


def test_other_event_types_are_acknowledged_and_ignored(toss, toss_api):
    response = deliver({"eventType": "PAYOUT_STATUS_CHANGED", "createdAt": "2024-06-11T00:00:00.000000", "data": {"payoutKey": "p"}})
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.processed and event.error.startswith("ignored")
    assert toss_api.requests == []


def test_a_real_payment_of_an_order_we_do_not_have(toss, toss_api, make_booking):
    stranger = make_booking(order_number="FOREIGN_ORDER_1")
    key = toss_api.authorize(stranger)
    type(stranger).objects.filter(pk=stranger.pk).delete()
    response = deliver(status_changed(toss_api, key))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.verified and event.status == "ignored" and "no order" in event.error
