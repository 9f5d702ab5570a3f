"""The official ``stripe`` library against the sandbox: proof that it speaks Stripe's wire format.

``stripe.StripeClient(key, base_addresses={"api": url})`` is the only change
from talking to Stripe; the library encodes, authenticates, retries and
raises exactly as it would against api.stripe.com.
"""

import pytest
import stripe

from django_pgpay.sandbox import control
from django_pgpay.sandbox import stripe as emulated

from .conftest import AVAILABLE_APPS
from .stripe_helpers import SECRET_KEY, WEBHOOK_SECRET, stripe_hook  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


@pytest.fixture
def client(sandbox_url):
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": sandbox_url + "/stripe"}, max_network_retries=0)


def create_session(client, order_id="order-sdk-1", **extra):
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "client_reference_id": order_id,
            "line_items": [{"price_data": {"currency": "krw", "product_data": {"name": "장고 책"}, "unit_amount": 15000}, "quantity": 1}],
            "success_url": "https://shop.example/pay/stripe/return/?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://shop.example/pay/stripe/fail/",
            "metadata": {"order_id": order_id},
            "payment_intent_data": {"metadata": {"order_id": order_id}},
            **extra,
        }
    )


def test_create_retrieve_and_refund_with_the_official_library(client):
    session = create_session(client)
    assert isinstance(session, stripe.checkout.Session)
    assert session.id.startswith("cs_test_") and session.status == "open" and session.amount_total == 15000
    assert session.url.endswith(f"/sandbox/stripe/c/pay/{session.id}")
    assert session.last_response.headers["Request-Id"].startswith("req_")

    assert emulated.pay(session.id)["outcome"] == "paid"
    paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent", "payment_intent.latest_charge"]})
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert isinstance(paid.payment_intent, stripe.PaymentIntent) and isinstance(paid.payment_intent.latest_charge, stripe.Charge)
    assert paid.payment_intent.latest_charge.amount == 15000
    intent_id = paid.payment_intent.id

    refund = client.v1.refunds.create(
        params={"payment_intent": intent_id, "amount": 5000, "metadata": {"order_id": "order-sdk-1"}},
        options={"idempotency_key": "sdk-refund-1"},
    )
    assert isinstance(refund, stripe.Refund)
    assert (refund.amount, refund.status, refund.payment_intent, refund.metadata["order_id"]) == (
        5000,
        "succeeded",
        intent_id,
        "order-sdk-1",
    )
    again = client.v1.refunds.create(
        params={"payment_intent": intent_id, "amount": 5000, "metadata": {"order_id": "order-sdk-1"}},
        options={"idempotency_key": "sdk-refund-1"},
    )
    assert again.id == refund.id and again.last_response.headers["Idempotent-Replayed"] == "true"

    listed = client.v1.refunds.list(params={"payment_intent": intent_id})
    assert [r.id for r in listed.data] == [refund.id]
    found = client.v1.payment_intents.search(params={"query": "metadata['order_id']:'order-sdk-1'"})
    assert [i.id for i in found.data] == [intent_id]
    assert client.v1.payment_intents.retrieve(intent_id).latest_charge == paid.payment_intent.latest_charge.id
    expired = client.v1.checkout.sessions.expire(create_session(client, "order-sdk-2").id)
    assert expired.status == "expired"


def test_errors_become_the_librarys_exceptions(client, sandbox_url):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_nothing")
    assert (missing.value.http_status, missing.value.code, missing.value.param) == (404, "resource_missing", "session")
    assert missing.value.request_id.startswith("req_")
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_test_notTheSandboxesKey0000", base_addresses={"api": sandbox_url + "/stripe"}).v1.checkout.sessions.list()
    session = create_session(client)
    emulated.pay(session.id)
    intent_id = emulated.session_state(session.id)["payment_intent"]
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 20000})
    assert too_much.value.code == "amount_too_large"
    client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 100}, options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 200}, options={"idempotency_key": "k"})
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        create_session(client, "order-x", colour="blue")
    assert unknown.value.code == "parameter_unknown"


def test_the_librarys_retry_gets_the_answer_a_5xx_lost(sandbox_url):
    """The library retries a 5xx with the same Idempotency-Key: the refund happens once, the caller sees it."""
    retrying = stripe.StripeClient(SECRET_KEY, base_addresses={"api": sandbox_url + "/stripe"}, max_network_retries=2)
    session = create_session(retrying, "order-retry")
    emulated.pay(session.id)
    intent_id = emulated.session_state(session.id)["payment_intent"]
    control.arm_fault("stripe", "cancel", "error_after")
    refund = retrying.v1.refunds.create(params={"payment_intent": intent_id, "amount": 3000})
    assert refund.amount == 3000 and refund.last_response.headers["Idempotent-Replayed"] == "true"
    assert emulated.payment_intent_state(intent_id)["id"] == intent_id
    assert [e["data"]["object"]["amount"] for e in emulated.events("refund.created")] == [3000]


def test_construct_event_accepts_the_sandboxs_webhooks(client, stripe_hook):
    session = create_session(client, "order-hook")
    emulated.pay(session.id)
    emulated.refund_in_dashboard(session.id, 4000)
    results = control.deliver_webhooks()
    assert [r.event_type for r in results] == ["checkout.session.completed", "charge.refunded"]
    assert all(r.status_code == 200 for r in results)
    completed, refunded = (
        stripe.Webhook.construct_event(d["raw"], d["headers"]["Stripe-Signature"], WEBHOOK_SECRET) for d in stripe_hook.deliveries
    )
    assert isinstance(completed, stripe.Event) and completed.type == "checkout.session.completed"
    assert completed.data.object.id == session.id and completed.data.object.payment_status == "paid"
    assert refunded.type == "charge.refunded" and refunded.data.object.amount_refunded == 4000
    assert refunded.data.previous_attributes.amount_refunded == 0
    # A secret the sandbox does not sign with is refused by the library.
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            stripe_hook.deliveries[0]["raw"], stripe_hook.deliveries[0]["headers"]["Stripe-Signature"], "whsec_other"
        )


@pytest.mark.parametrize("kind", ["stale_signature", "wrong_secret"])
def test_signature_faults_are_refused_by_the_library(client, stripe_hook, kind):
    control.arm_fault("stripe", "webhook", kind)
    session = create_session(client, "order-forged")
    emulated.pay(session.id)
    control.deliver_webhooks()
    (delivery,) = stripe_hook.deliveries
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery["raw"], delivery["headers"]["Stripe-Signature"], WEBHOOK_SECRET)
