"""Events out: Stripe's envelope, a real Stripe-Signature per attempt, the outbox's faults and retries."""

import json

import pytest

from django_pgpay.sandbox import control
from django_pgpay.sandbox import stripe as emulated
from django_pgpay.sandbox.models import SandboxWebhook

from .conftest import AVAILABLE_APPS
from .stripe_helpers import WEBHOOK_SECRET, signature_ok, stripe_api, stripe_hook, stripe_paid  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


def test_checkout_session_completed_is_signed(stripe_paid, stripe_hook):
    session, _ = stripe_paid(order_id="order-hook-1")
    assert stripe_hook.deliveries == []  # nothing is sent before delivery runs
    (result,) = control.deliver_webhooks()
    assert (result.event_type, result.status_code, result.status) == ("checkout.session.completed", 200, "delivered")
    (delivery,) = stripe_hook.deliveries
    headers = delivery["headers"]
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["User-Agent"].startswith("Stripe/1.0")
    assert signature_ok(delivery["raw"], headers["Stripe-Signature"])
    assert not any(name.lower().startswith("x-sandbox") for name in headers)
    event = delivery["json"]
    assert set(event) == {"id", "object", "api_version", "created", "data", "livemode", "pending_webhooks", "request", "type"}
    assert event["id"].startswith("evt_") and (event["object"], event["type"], event["livemode"]) == (
        "event",
        "checkout.session.completed",
        False,
    )
    assert event["data"]["object"] == emulated.session_state(session["id"])  # the Session, ids not expanded
    assert event["api_version"] == emulated.API_VERSION
    # Pretty-printed like Stripe's: the signature covers these exact bytes, not a re-serialisation.
    assert delivery["raw"].startswith(b'{\n  "id": "evt_')


def test_only_the_subscribed_types_are_sent(stripe_paid, stripe_hook, settings):
    stripe_paid()
    control.deliver_webhooks()
    assert [d["json"]["type"] for d in stripe_hook.deliveries] == ["checkout.session.completed"]
    stripe_hook.reset()
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "STRIPE": {**settings.PGPAY_SANDBOX["STRIPE"], "WEBHOOK_EVENTS": ["*"]}}
    stripe_paid()
    control.deliver_webhooks()
    assert [d["json"]["type"] for d in stripe_hook.deliveries] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


def test_charge_refunded_after_every_refund(stripe_api, stripe_paid, stripe_hook):
    session, _ = stripe_paid(amount=20000)
    stripe_api.refund(session["payment_intent"], 5000, metadata={"idempotency_key": "k-1"})
    emulated.refund_in_dashboard(session["payment_intent"], 3000)
    control.deliver_webhooks()
    refunded = [d["json"] for d in stripe_hook.deliveries if d["json"]["type"] == "charge.refunded"]
    assert [(e["data"]["object"]["amount_refunded"], e["data"]["previous_attributes"]) for e in refunded] == [
        (5000, {"amount_refunded": 0}),
        (8000, {"amount_refunded": 5000}),
    ]
    assert refunded[0]["request"]["id"].startswith("req_") and refunded[1]["request"] == {"id": None, "idempotency_key": None}
    # The Dashboard's refund carries no metadata of ours.
    listed = stripe_api.refunds(session["payment_intent"]).json()["data"]
    assert [r["metadata"] for r in listed] == [{}, {"idempotency_key": "k-1"}]


def test_any_2xx_is_an_ack_and_the_rest_is_retried(stripe_paid, stripe_hook):
    stripe_paid()
    stripe_hook.answer_next(500, 302)
    (first,) = control.deliver_webhooks()
    assert (first.status_code, first.status, first.error) == (500, "pending", "HTTP 500")
    webhook = SandboxWebhook.objects.get()
    assert (webhook.next_attempt_at - webhook.created_at).total_seconds() == pytest.approx(600, abs=1)
    (second,) = control.deliver_webhooks()
    assert (second.status_code, second.status) == (302, "pending")  # a redirect is not followed, not an ack
    stripe_hook.answer_next(204)
    (third,) = control.deliver_webhooks()
    assert (third.status_code, third.status, third.error) == (204, "delivered", "")
    # Every attempt was signed when it was sent, and each signature holds.
    assert all(signature_ok(d["raw"], d["headers"]["Stripe-Signature"]) for d in stripe_hook.deliveries)


def test_rolling_secrets_sign_with_both(stripe_paid, stripe_hook, settings):
    settings.PGPAY_SANDBOX = {
        **settings.PGPAY_SANDBOX,
        "STRIPE": {**settings.PGPAY_SANDBOX["STRIPE"], "WEBHOOK_SECRET": ["whsec_newSecret0000", WEBHOOK_SECRET]},
    }
    stripe_paid()
    control.deliver_webhooks()
    (delivery,) = stripe_hook.deliveries
    header = delivery["headers"]["Stripe-Signature"]
    assert header.count("v1=") == 2
    assert signature_ok(delivery["raw"], header, "whsec_newSecret0000") and signature_ok(delivery["raw"], header, WEBHOOK_SECRET)


def test_stale_and_wrongly_keyed_signatures(stripe_paid, stripe_hook):
    control.arm_fault("stripe", "webhook", "stale_signature", seconds=900)
    control.arm_fault("stripe", "webhook", "wrong_secret")
    stripe_paid()
    stripe_paid()
    control.deliver_webhooks()
    stale, wrong = stripe_hook.deliveries
    t = int(dict(p.split("=", 1) for p in stale["headers"]["Stripe-Signature"].split(","))["t"])
    assert signature_ok(stale["raw"], stale["headers"]["Stripe-Signature"])  # right secret, old time
    assert t <= json.loads(stale["raw"])["created"] - 800
    assert not signature_ok(wrong["raw"], wrong["headers"]["Stripe-Signature"])


def test_duplicate_drop_delay_reorder(stripe_paid, stripe_hook):
    control.arm_fault("stripe", "webhook", "duplicate", match="checkout.session.completed")
    stripe_paid()
    control.deliver_webhooks()
    first, copy = stripe_hook.deliveries
    assert first["json"]["id"] == copy["json"]["id"] and first["raw"] == copy["raw"]
    stripe_hook.reset()
    control.arm_fault("stripe", "webhook", "drop")
    stripe_paid()
    assert control.deliver_webhooks() == [] and SandboxWebhook.objects.filter(status="dropped").count() == 1
    control.arm_fault("stripe", "webhook", "delay", seconds=120)
    stripe_paid()
    assert control.deliver_due_webhooks() == []
    control.advance_clock(seconds=121)
    assert len(control.deliver_due_webhooks()) == 1
    stripe_hook.reset()
    control.arm_fault("stripe", "webhook", "reorder", count=2)
    older, _ = stripe_paid(order_id="order-older")
    newer, _ = stripe_paid(order_id="order-newer")
    control.deliver_due_webhooks()
    assert [d["json"]["data"]["object"]["id"] for d in stripe_hook.deliveries] == [newer["id"], older["id"]]


def test_session_expiry_sends_checkout_session_expired(stripe_api, stripe_hook):
    session = stripe_api.create_session("order-late").json()
    control.advance_clock(hours=24, seconds=1)
    control.tick()
    (delivery,) = stripe_hook.deliveries
    assert delivery["json"]["type"] == "checkout.session.expired"
    assert delivery["json"]["data"]["object"]["id"] == session["id"] and delivery["json"]["data"]["object"]["status"] == "expired"


def test_no_webhook_url_no_webhook_but_the_event_is_kept(stripe_paid, settings):
    assert settings.PGPAY_SANDBOX["STRIPE"]["WEBHOOK_URL"] == ""
    stripe_paid()
    assert SandboxWebhook.objects.count() == 0
    assert [e["pending_webhooks"] for e in emulated.events("checkout.session.completed")] == [0]
