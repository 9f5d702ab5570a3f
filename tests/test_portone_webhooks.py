"""PortOne webhooks through WebhookView: V1 verified by a lookup, V2 by its signature and then a lookup; logged and de-duplicated."""

import json
import time
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
from tests.portone_support import TIMEOUT, V1_BASE, V2_BASE

pytestmark = pytest.mark.django_db

V1_URL = "/pay/portone/webhook/"
V2_URL = "/pay/portone-v2/webhook/"


def deliver_v1(body: dict, *, form: bool = False):
    client = Client(enforce_csrf_checks=True)  # PortOne has no CSRF token
    if form:
        return client.post(V1_URL, data=urlencode(body), content_type="application/x-www-form-urlencoded")
    return client.post(V1_URL, data=json.dumps(body), content_type="application/json")


def deliver_v2(headers: dict, body: bytes):
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    return Client(enforce_csrf_checks=True).post(V2_URL, data=body, content_type="application/json", **extra)


def notification(booking, imp_uid, status="paid", **extra):
    return {"imp_uid": imp_uid, "merchant_uid": booking.order_number, "status": status, **extra}


# --- V1 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [False, True])
def test_a_payment_notified_before_the_browser_returns_is_paid_once(portone_booking, portone_api, buyer, form):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking)
    response = deliver_v1(notification(booking, imp_uid), form=form)
    assert response.status_code == 200 and response.content == b"OK"
    assert [r.url for r in portone_api.sent("lookup")] == [f"{V1_BASE}/payments/{imp_uid}"]
    booking.refresh_from_db()
    assert booking.status == S.PAID
    event = WebhookEvent.objects.get()
    assert (event.gateway, event.event_type, event.payment_id, event.order_number, event.verified, event.processed) == (
        "portone",
        "paid",
        imp_uid,
        booking.order_number,
        True,
        True,
    )
    # The browser's return then shows success without asking PortOne again.
    client = Client()
    client.force_login(buyer)
    back = client.get(
        "/pay/portone/return/?"
        + urlencode({"imp_uid": imp_uid, "merchant_uid": booking.order_number, "pgpay_t": buyer_token(booking.order_number)})
    )
    assert back.status_code == 200 and len(portone_api.sent("lookup")) == 1
    assert [(r.kind, r.status) for r in booking.transactions.order_by("pk")] == [(K.CONFIRM, T.SUCCEEDED), (K.WEBHOOK, T.SUCCEEDED)]


def test_a_forged_notification_changes_nothing(portone_booking, portone_api):
    booking = portone_booking()
    response = deliver_v1(notification(booking, "imp_forged"))
    assert response.status_code == 400
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.count() == 0
    event = WebhookEvent.objects.get()
    assert not event.verified and not event.processed and "not verified" in event.error


def test_the_body_is_never_trusted_only_portone(portone_booking, portone_api):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking, status="ready")  # the window is open, nothing paid
    # The body claims "paid", PortOne says "ready": refused (400), nothing applied.
    assert deliver_v1(notification(booking, imp_uid, "paid")).status_code == 400
    booking.refresh_from_db()
    assert booking.status == S.READY and not booking.transactions.filter(kind=K.CONFIRM).exists()
    assert WebhookEvent.objects.get().status == "refused"


def test_a_body_naming_another_order_is_refused(portone_booking, portone_api):
    paid = portone_booking()
    imp_uid = portone_api.pay(paid)
    victim = portone_booking()
    assert deliver_v1(notification(victim, imp_uid)).status_code == 400
    victim.refresh_from_db()
    assert victim.status == S.READY and victim.transactions.count() == 0


def test_a_repeated_notification_is_applied_once(portone_booking, portone_api):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking)
    first = deliver_v1(notification(booking, imp_uid))
    second = deliver_v1(notification(booking, imp_uid), form=True)  # same change, other encoding
    assert first.status_code == second.status_code == 200
    # Each delivery is verified (looked up) before it is compared: a forged one cannot shadow the real one.
    assert len(portone_api.sent("lookup")) == 2
    one, two = WebhookEvent.objects.order_by("pk")
    assert two.duplicate_of == one and one.event_id == two.event_id


def test_a_virtual_account_deposit_pays_the_order(portone_booking, portone_api, buyer):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking, vbank=True)
    assert deliver_v1(notification(booking, imp_uid, "ready")).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    portone_api.deposit(imp_uid)
    assert deliver_v1(notification(booking, imp_uid, "paid")).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.paid_at is not None
    assert WebhookEvent.objects.filter(duplicate_of__isnull=False).count() == 0


def test_cancels_in_the_console_are_recorded_once(portone_booking, portone_api):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking)
    deliver_v1(notification(booking, imp_uid))
    entry = portone_api.cancel_in_console(imp_uid, 5000)
    body = notification(booking, imp_uid, "cancelled", cancellation_id=entry["cancellation_id"])
    assert deliver_v1(body).status_code == 200
    assert deliver_v1(body).status_code == 200  # delivered twice
    booking.refresh_from_db()
    assert booking.status == S.PARTIAL_CANCELED and booking.canceled_amount == Decimal(5000)
    (sync,) = booking.transactions.filter(kind=K.SYNC)
    assert (sync.amount, sync.pg_transaction_id) == (Decimal(5000), entry["cancellation_id"])
    entry = portone_api.cancel_in_console(imp_uid)
    assert deliver_v1(notification(booking, imp_uid, "cancelled", cancellation_id=entry["cancellation_id"])).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and booking.canceled_amount == booking.amount


def test_portone_unreachable_is_503_and_the_retry_applies_it(portone_booking, portone_api):
    booking = portone_booking()
    imp_uid = portone_api.pay(booking)
    portone_api.fail_next("lookup", exception=TIMEOUT)  # a read timeout is not retried here
    assert deliver_v1(notification(booking, imp_uid)).status_code == 503
    booking.refresh_from_db()
    assert booking.status == S.READY
    assert deliver_v1(notification(booking, imp_uid)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID


@pytest.mark.parametrize("raw", [b"", b"{oops", b'{"status": "paid"}'])
def test_malformed_notifications_are_400(portone_api, raw):
    response = Client().post(V1_URL, data=raw, content_type="application/json")
    assert response.status_code == 400 and portone_api.requests == []
    assert WebhookEvent.objects.get().error.startswith("malformed")


# --- V2 -------------------------------------------------------------------------------------------


def test_a_signed_v2_webhook_is_verified_then_the_payment_fetched(portone_v2_booking, portone_v2_api):
    booking = portone_v2_booking()
    portone_v2_api.pay(booking)
    headers, body = portone_v2_api.webhook(booking.order_number, msg_id="msg_01")
    response = deliver_v2(headers, body)
    assert response.status_code == 200
    assert [r.url for r in portone_v2_api.sent("lookup")] == [
        f"{V2_BASE}/payments/{booking.order_number}?storeId=store-00000000-0000-4000-8000-000000000000"
    ]
    booking.refresh_from_db()
    assert booking.status == S.PAID
    event = WebhookEvent.objects.get()
    assert (event.event_id, event.event_type, event.verified, event.processed) == ("portone-v2-msg_01", "Transaction.Paid", True, True)
    assert event.headers["Webhook-Id"] == "msg_01"

    # PortOne retries the same message (re-signed): a duplicate, not looked up again.
    headers, body = portone_v2_api.webhook(booking.order_number, msg_id="msg_01")
    assert deliver_v2(headers, body).status_code == 200
    assert len(portone_v2_api.sent("lookup")) == 1
    assert WebhookEvent.objects.order_by("pk").last().duplicate_of == event


@pytest.mark.parametrize(
    "spoil",
    [
        lambda h, b: (h, b.replace(b"Transaction.Paid", b"Transaction.Cancelled")),
        lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    ],
)
def test_a_forged_v2_webhook_is_refused_without_asking_portone(portone_v2_booking, portone_v2_api, spoil):
    booking = portone_v2_booking()
    portone_v2_api.pay(booking)
    headers, body = spoil(*portone_v2_api.webhook(booking.order_number))
    assert deliver_v2(headers, body).status_code == 400
    assert portone_v2_api.requests == []
    booking.refresh_from_db()
    assert booking.status == S.READY


def test_a_replayed_old_v2_webhook_is_refused(portone_v2_booking, portone_v2_api):
    booking = portone_v2_booking()
    portone_v2_api.pay(booking)
    headers, body = portone_v2_api.webhook(booking.order_number, timestamp=int(time.time()) - 600)
    response = deliver_v2(headers, body)
    assert response.status_code == 400 and portone_v2_api.requests == []
    assert "too old" in WebhookEvent.objects.get().error


def test_v2_events_without_a_payment_are_acknowledged(portone_v2_api):
    headers, body = portone_v2_api.webhook("", kind="BillingKey.Issued")
    assert deliver_v2(headers, body).status_code == 200
    event = WebhookEvent.objects.get()
    assert event.processed and event.error.startswith("ignored")


def test_a_v2_cancellation_webhook_records_the_cancel(portone_v2_booking, portone_v2_api, buyer):
    booking = portone_v2_booking()
    portone_v2_api.pay(booking)
    deliver_v2(*portone_v2_api.webhook(booking.order_number))
    payment = portone_v2_api.payments[booking.order_number]
    cancellation = {
        "status": "SUCCEEDED",
        "id": "cancellation-console-1",
        "totalAmount": 20000,
        "taxFreeAmount": 0,
        "vatAmount": 1818,
        "reason": "콘솔 취소",
        "requestedAt": "2024-06-11T09:00:00Z",
        "cancelledAt": "2024-06-11T09:00:01Z",
    }
    payment.update(status="CANCELLED", cancellations=[cancellation], cancelledAt=cancellation["cancelledAt"])
    payment["amount"]["cancelled"] = 20000
    assert deliver_v2(*portone_v2_api.webhook(booking.order_number, "Transaction.Cancelled")).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    assert booking.transactions.get(kind=K.SYNC).pg_transaction_id == "cancellation-console-1"


def test_a_stored_v2_delivery_can_be_processed_again_while_its_signature_is_fresh(portone_v2_booking, portone_v2_api):
    booking = portone_v2_booking()
    portone_v2_api.pay(booking)
    for _ in range(3):  # a 502 to a GET is retried twice by GatewayHttp
        portone_v2_api.fail_next("lookup", status=502, body=None)
    assert deliver_v2(*portone_v2_api.webhook(booking.order_number)).status_code == 503
    event = WebhookEvent.objects.get()
    assert not event.processed
    receipt = webhooks.process(event)  # the stored headers (Django's Webhook-Id spelling) still verify
    assert receipt.status == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID
