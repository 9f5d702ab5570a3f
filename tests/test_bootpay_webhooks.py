"""Bootpay webhooks through WebhookView: the required answer, duplicates, partial cancels, forgeries, retries."""

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
from tests.bootpay_support import BASE, TIMEOUT, fixture

pytestmark = pytest.mark.django_db

URL = "/pay/bootpay/webhook/"
SUCCESS = {"success": True}


def notify(api, receipt_id, **changes):
    """A webhook for ``receipt_id`` as Bootpay would send it now (or as ``changes`` claim)."""
    receipt = {k: v for k, v in api.receipts[receipt_id].items() if not k.startswith("_")}
    status, cancelled = receipt["status"], receipt["cancelled_price"]
    if status == 20 or cancelled:
        kind = "PAYMENT_CANCELLED" if cancelled >= receipt["price"] else "PAYMENT_PARTIAL_CANCELLED"
    else:
        kind = {1: "PAYMENT_COMPLETED", 5: "PAYMENT_VIRTUAL_ACCOUNT_ISSUED"}.get(status, "")
    body = {k: receipt[k] for k in fixture("webhook_payment_completed") if k in receipt}
    body.update({"webhook_type": kind, **changes})
    return body


def deliver(body, *, raw=None, addr="127.0.0.1"):
    client = Client(enforce_csrf_checks=True)  # Bootpay has no CSRF token
    payload = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    return client.post(URL, data=payload, content_type="application/json", HTTP_USER_AGENT="Bootpay-Webhook", REMOTE_ADDR=addr)


def acked(response) -> bool:
    """What Bootpay counts as delivered: HTTP 200 and the body {"success": true}."""
    return response.status_code == 200 and response["Content-Type"] == "application/json" and json.loads(response.content) == SUCCESS


def confirm_via_return(booking, receipt_id):
    query = urlencode(
        {"event": "confirm", "receipt_id": receipt_id, "order_id": booking.order_number, "pgpay_t": buyer_token(booking.order_number)}
    )
    return Client().get(f"/pay/bootpay/return/?{query}")


def test_an_applied_webhook_and_its_duplicate_are_both_answered_success(bootpay_booking, bootpay_api, seat):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    confirm_via_return(booking, receipt_id)
    bootpay_api.cancel_at_bootpay(receipt_id)
    body = notify(bootpay_api, receipt_id)
    first, second = deliver(body), deliver(body)
    assert acked(first) and acked(second)
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and booking.canceled_at is not None
    assert booking.transactions.filter(kind=K.SYNC).count() == 1
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1
    one, two = WebhookEvent.objects.order_by("pk")
    assert (one.processed, one.verified, one.event_type, one.payment_id) == (True, True, "PAYMENT_CANCELLED", receipt_id)
    assert two.processed and two.duplicate_of == one
    # Verified before compared: the duplicate costs one lookup, and is recognised by the state Bootpay reported.
    assert len(bootpay_api.sent("lookup")) == 2 and one.event_id == two.event_id
    seat.refresh_from_db()
    assert seat.remain == 3


def test_two_partial_cancels_are_two_webhooks_not_one(bootpay_booking, bootpay_api):
    """Same receipt, same status and webhook_type: only cancelled_price tells them apart."""
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    confirm_via_return(booking, receipt_id)
    bootpay_api.cancel_at_bootpay(receipt_id, 3000)
    assert acked(deliver(notify(bootpay_api, receipt_id)))
    bootpay_api.cancel_at_bootpay(receipt_id, 2000)
    second = notify(bootpay_api, receipt_id)
    assert second["webhook_type"] == "PAYMENT_PARTIAL_CANCELLED" and second["status"] == 20
    assert acked(deliver(second)) and acked(deliver(second))
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(5000))
    assert sorted(r.amount for r in booking.transactions.filter(kind=K.SYNC)) == [Decimal(2000), Decimal(3000)]
    events = list(WebhookEvent.objects.order_by("pk"))
    assert [e.duplicate_of_id for e in events] == [None, None, events[1].pk]


def test_failures_are_not_answered_success_so_bootpay_retries(bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    confirm_via_return(booking, receipt_id)
    bootpay_api.cancel_at_bootpay(receipt_id, 3000)
    body = notify(bootpay_api, receipt_id)
    bootpay_api.fail_next("lookup", exception=TIMEOUT)
    failed = deliver(body)
    assert failed.status_code == 503 and not acked(failed) and failed.content == b""
    event = WebhookEvent.objects.get()
    assert not event.processed and event.status == "failed" and "unavailable" in event.error
    booking.refresh_from_db()
    assert booking.status == S.PAID

    retried = deliver(body)  # Bootpay's retry (up to 10 by default)
    assert acked(retried)
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(3000))
    assert webhooks.process(event).accepted  # the stored failure, processed again from a shell: applied once
    assert booking.transactions.filter(kind=K.SYNC).count() == 1


def test_a_forged_webhook_changes_nothing_and_is_not_acknowledged(bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    forged = {**fixture("webhook_payment_completed"), "receipt_id": "forged0000000000000000aa", "order_id": booking.order_number}
    response = deliver(forged)
    assert response.status_code == 400 and not acked(response)
    assert [r.url for r in bootpay_api.requests] == [f"{BASE}/receipt/forged0000000000000000aa?lookup_user_data=false"]
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.count() == 0
    event = WebhookEvent.objects.get()
    assert "not verified" in event.error and event.headers["User-Agent"] == "Bootpay-Webhook"


def test_the_body_is_never_trusted_only_bootpay(bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)  # status 2 at Bootpay
    response = deliver(notify(bootpay_api, receipt_id, status=1, webhook_type="PAYMENT_COMPLETED"))
    # Bootpay says 2 (awaiting approval), the body 1: refused, nothing applied, not acknowledged.
    assert response.status_code == 400 and not acked(response)
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.filter(kind=K.CONFIRM).count() == 0
    assert WebhookEvent.objects.get().status == "refused"


def test_a_body_naming_another_order_is_refused(bootpay_booking, bootpay_api):
    paid = bootpay_booking()
    receipt_id = bootpay_api.authorize(paid)
    confirm_via_return(paid, receipt_id)
    victim = bootpay_booking()
    response = deliver(notify(bootpay_api, receipt_id, order_id=victim.order_number))
    assert response.status_code == 400
    victim.refresh_from_db()
    assert victim.status == S.READY and victim.transactions.count() == 0


def test_a_webhook_after_the_browser_leaves_the_order_paid_once(bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    assert confirm_via_return(booking, receipt_id).status_code == 200
    assert acked(deliver(notify(bootpay_api, receipt_id)))
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert booking.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == 1
    assert len(bootpay_api.sent("confirm")) == 1


def test_a_webhook_settles_a_confirm_whose_answer_was_lost(bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking)
    bootpay_api.fail_next("confirm", exception=TIMEOUT, after=True)
    assert confirm_via_return(booking, receipt_id).status_code == 202
    assert acked(deliver(notify(bootpay_api, receipt_id)))
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert [(r.kind, r.status) for r in booking.transactions.order_by("pk")] == [(K.CONFIRM, T.SUCCEEDED), (K.WEBHOOK, T.SUCCEEDED)]


def test_a_virtual_account_sends_two_webhooks_issue_then_deposit(bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking, virtual_account=True)
    confirm_via_return(booking, receipt_id)
    issued = notify(bootpay_api, receipt_id)
    assert issued["webhook_type"] == "PAYMENT_VIRTUAL_ACCOUNT_ISSUED" and acked(deliver(issued))
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    bootpay_api.deposit(receipt_id)
    assert acked(deliver(notify(bootpay_api, receipt_id)))
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.paid_at is not None
    assert [e.event_type for e in WebhookEvent.objects.order_by("pk")] == ["PAYMENT_VIRTUAL_ACCOUNT_ISSUED", "PAYMENT_COMPLETED"]


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"status": 1}', "\ud800".encode("utf-8", "surrogatepass")])
def test_malformed_deliveries_are_400_and_kept(bootpay, bootpay_api, raw):
    response = deliver(None, raw=raw)
    assert response.status_code == 400 and not acked(response)
    assert WebhookEvent.objects.get().error.startswith("malformed") and bootpay_api.requests == []


def test_other_products_are_acknowledged_and_ignored(bootpay, bootpay_api):
    response = deliver({"receipt_id": "6667ea2ed01c7e001d7c2f99", "status": 11, "webhook_type": "BILLING_KEY_ISSUED"})
    assert acked(response)
    event = WebhookEvent.objects.get()
    assert event.processed and event.error.startswith("ignored") and bootpay_api.requests == []


@pytest.fixture
def allowlisted(settings, bootpay):
    gateways = {**settings.PGPAY["GATEWAYS"]}
    gateways["bootpay"] = {**gateways["bootpay"], "OPTIONS": {**gateways["bootpay"]["OPTIONS"], "WEBHOOK_ALLOWED_IPS": True}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}


def test_the_source_allowlist_refuses_other_addresses_before_anything_else(allowlisted, bootpay_booking, bootpay_api):
    booking = bootpay_booking()
    receipt_id = bootpay_api.authorize(booking, status=1)
    body = notify(bootpay_api, receipt_id)
    refused = deliver(body, addr="198.51.100.7")
    assert refused.status_code == 403 and not acked(refused) and bootpay_api.requests == []
    assert WebhookEvent.objects.get().error == "refused source: 198.51.100.7 is not in WEBHOOK_ALLOWED_IPS"
    assert acked(deliver(body, addr="223.130.82.41"))
    booking.refresh_from_db()
    assert booking.status == S.PAID
