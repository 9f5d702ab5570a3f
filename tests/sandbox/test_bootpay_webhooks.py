"""Webhooks of the emulated Bootpay: the Receipt plus webhook_type, retried until the shop answers 200 {"success": true}."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from django_pgpay import payments
from django_pgpay.models import WebhookEvent
from django_pgpay.sandbox import bootpay as emulated
from django_pgpay.sandbox import control
from django_pgpay.sandbox.models import SandboxWebhook
from django_pgpay.status import OrderStatus as S

from .conftest import AVAILABLE_APPS
from .test_bootpay_gateway import paid_booking_at_sandbox  # noqa: F401 (a fixture)

sandbox_only = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)
with_shop = pytest.mark.django_db(transaction=True)


@sandbox_only
def test_each_change_sends_the_receipt_with_its_webhook_type(bootpay, bootpay_hook, bootpay_paid):
    paid = bootpay_paid(10000)
    bootpay.cancel(paid["receipt_id"], 3000, cancel_id="a")
    bootpay.cancel(paid["receipt_id"], cancel_id="b")
    issued = bootpay_paid(30000, "vbank")
    emulated.deposit(issued["receipt_id"])
    results = control.deliver_webhooks()
    assert [r.event_type for r in results] == [
        "PAYMENT_COMPLETED",
        "PAYMENT_PARTIAL_CANCELLED",
        "PAYMENT_CANCELLED",
        "PAYMENT_VIRTUAL_ACCOUNT_ISSUED",
        "PAYMENT_COMPLETED",
    ]
    assert all(r.delivered for r in results)
    bodies = bootpay_hook.bodies()
    assert [(b["webhook_type"], b["status"], b["cancelled_price"]) for b in bodies] == [
        ("PAYMENT_COMPLETED", 1, 0),
        ("PAYMENT_PARTIAL_CANCELLED", 20, 3000),
        ("PAYMENT_CANCELLED", 20, 10000),
        ("PAYMENT_VIRTUAL_ACCOUNT_ISSUED", 5, 0),
        ("PAYMENT_COMPLETED", 1, 0),
    ]
    completed = {k: v for k, v in bodies[0].items() if k != "webhook_type"}
    assert completed == paid  # the Receipt as the API returned it, nothing less
    assert bodies[3]["vbank_data"]["bank_account"]
    delivery = bootpay_hook.deliveries[0]
    assert delivery["headers"]["Content-Type"] == "application/json"
    assert json.loads(delivery["raw"]) == bodies[0]


@sandbox_only
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"OK"),  # the legacy v1 answer
        (200, b'{"status": 200}'),  # "HTTP 200이라도 실패로 간주"
        (200, b'{"success": "true"}'),
        (200, b""),
        (201, b'{"success": true}'),
        (500, b'{"success": true}'),
    ],
)
def test_anything_but_200_with_success_true_is_retried(bootpay_hook, bootpay_paid, status, body):
    bootpay_hook.reply_next((status, body))
    bootpay_paid()
    (first,) = control.deliver_webhooks()
    assert not first.delivered and first.status == "pending"
    webhook = SandboxWebhook.objects.get()
    assert webhook.attempts == 1 and webhook.last_status_code == status
    assert webhook.next_attempt_at - webhook.delivery_attempts.get().at == timedelta(minutes=1)
    assert control.deliver_due_webhooks() == []  # not before its time
    control.advance_clock(minutes=1, seconds=1)
    (second,) = control.deliver_due_webhooks()
    assert second.delivered
    assert [d["answered"] for d in bootpay_hook.deliveries] == [status, 200]
    assert bootpay_hook.deliveries[0]["raw"] == bootpay_hook.deliveries[1]["raw"]  # the same body again


@sandbox_only
def test_retries_grow_and_stop_after_ten(bootpay_hook, bootpay_paid):
    bootpay_hook.reply_next(*[(200, b"OK")] * 11)
    bootpay_paid()
    gaps = []
    for _attempt in range(11):
        webhook = SandboxWebhook.objects.get()
        control.deliver_webhooks()
        webhook.refresh_from_db()
        if webhook.next_attempt_at:
            gaps.append(webhook.next_attempt_at - webhook.delivery_attempts.last().at)
    webhook.refresh_from_db()
    assert (webhook.status, webhook.attempts) == ("failed", 11)
    assert [g.total_seconds() / 60 for g in gaps] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


@sandbox_only
def test_the_number_of_retries_is_a_setting(bootpay_hook, bootpay_paid, bootpay_settings):
    bootpay_settings(WEBHOOK_RETRIES=2)
    bootpay_hook.reply_next(*[(500, b"")] * 3)
    bootpay_paid()
    for _attempt in range(3):
        control.deliver_webhooks()
    assert SandboxWebhook.objects.get().status == "failed"
    assert len(bootpay_hook.deliveries) == 3


@with_shop
def test_our_webhook_view_acknowledges_at_once(paid_booking_at_sandbox):  # noqa: F811
    booking = paid_booking_at_sandbox()
    (delivery,) = control.deliver_webhooks()
    assert (delivery.event_type, delivery.status_code, delivery.delivered) == ("PAYMENT_COMPLETED", 200, True)
    assert SandboxWebhook.objects.get().attempts == 1
    event = WebhookEvent.objects.get()
    assert event.event_type == "PAYMENT_COMPLETED"
    booking.refresh_from_db()
    assert booking.status == S.PAID


@with_shop
def test_cancels_in_bootpays_admin_reach_the_order_by_webhook(paid_booking_at_sandbox, seat):  # noqa: F811
    booking = paid_booking_at_sandbox()
    control.deliver_webhooks()
    emulated.cancel_at_pg(booking.pg_payment_id, 3000)
    emulated.cancel_at_pg(booking.pg_payment_id, 2000)
    results = control.deliver_webhooks()
    assert [(r.event_type, r.delivered) for r in results] == [("PAYMENT_PARTIAL_CANCELLED", True)] * 2
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(5000))
    emulated.cancel_at_pg(booking.pg_payment_id)
    control.deliver_webhooks()
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.CANCELED, Decimal(10000))
    seat.refresh_from_db()
    assert seat.remain == 3


@with_shop
def test_duplicated_and_reordered_webhooks_are_applied_once(paid_booking_at_sandbox):  # noqa: F811
    booking = paid_booking_at_sandbox()
    control.deliver_webhooks()
    control.arm_fault("bootpay", "webhook", "duplicate", copies=2)
    emulated.cancel_at_pg(booking.pg_payment_id, 3000)
    control.arm_fault("bootpay", "webhook", "reorder", count=2)
    emulated.cancel_at_pg(booking.pg_payment_id, 1000)
    emulated.cancel_at_pg(booking.pg_payment_id, 1000)
    results = control.deliver_webhooks()
    assert len(results) == 5 and all(r.delivered for r in results)
    bodies = [json.loads(w.body)["cancelled_price"] for w in SandboxWebhook.objects.filter(pk__in=[r.webhook_id for r in results])]
    assert sorted(bodies) == [3000, 3000, 3000, 4000, 5000]
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(5000))
    # Each delivery is verified by a lookup: the first one already sees all 5,000; nothing is counted twice.
    assert [row.amount for row in booking.transactions.filter(kind="sync")] == [Decimal(5000)]


@with_shop
def test_a_lost_webhook_is_found_by_reconcile(paid_booking_at_sandbox):  # noqa: F811
    booking = paid_booking_at_sandbox()
    control.deliver_webhooks()
    control.arm_fault("bootpay", "webhook", "drop")
    emulated.cancel_at_pg(booking.pg_payment_id)
    assert control.deliver_webhooks() == []
    booking.refresh_from_db()
    assert booking.status == S.PAID
    payments.reconcile(booking, deep=True)
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
