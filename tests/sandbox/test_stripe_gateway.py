"""OUR StripeGateway, unchanged, against the sandbox (only ``API_BASE`` differs), through the shop's views.

Seed 002's flow: order -> Checkout Session -> paid on the hosted page -> the
return and the signed webhook, applied once -> refunded in part, here and in
the "Dashboard" -> ``charge.refunded`` applied once. Then the unhappy paths
and the faults. The buyer's step on the hosted page is the sandbox's Python
API here; ``test_stripe_browser.py`` does it in Chromium.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from django_pgpay import payments
from django_pgpay.exceptions import GatewayUnavailable
from django_pgpay.gateways.results import CancelRequest
from django_pgpay.sandbox import control
from django_pgpay.sandbox import stripe as emulated
from django_pgpay.sandbox.models import SandboxIdempotency, SandboxPayment, SandboxWebhook
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionSource
from django_pgpay.status import TransactionStatus as T
from tests.testapp.models import CartOrder, Product

from .stripe_helpers import checkout, local, product, sandbox_gateway, shopper  # noqa: F401 - fixtures

# The shop's tables are written too: a full flush between tests.
pytestmark = pytest.mark.django_db(transaction=True)


def ledger(order):
    return [(r.kind, r.status, r.amount) for r in order.transactions.order_by("pk")]


def deliver():
    """The sandbox sends what is pending; returns [(event type, shop's answer)]."""
    return [(r.event_type, r.status_code) for r in control.deliver_webhooks()]


def test_krw_order_paid_returned_webhooked_and_refunded_in_part(sandbox_gateway, shopper, product, staff):
    order, session = checkout(shopper, product)
    assert (session["amount_total"], session["currency"], session["client_reference_id"]) == (15000, "krw", order.order_number)
    assert session["metadata"] == {"order_id": order.order_number}
    order.refresh_from_db()
    assert order.pg_data == {"stripe_session_id": session["id"], "stripe_session_ids": [session["id"]]}

    paid = emulated.pay(session["id"])
    assert paid["outcome"] == "paid"
    done = shopper.get(local(paid["success_url"]))
    assert done.status_code == 200 and b"Payment complete" in done.content
    order.refresh_from_db()
    intent_id = emulated.session_state(session["id"])["payment_intent"]
    assert (order.status, order.pg_payment_id, order.amount, order.method) == (S.PAID, intent_id, Decimal("15000"), "card")
    assert order.receipt_url.startswith("http") and "/sandbox/stripe/receipts/ch_" in order.receipt_url

    # The signed checkout.session.completed arrives after the return: the same payment, applied once.
    assert deliver() == [("checkout.session.completed", 200)]
    # It told the shop nothing new: the webhook log keeps it, the order's ledger needs no row for it.
    assert ledger(order) == [(K.CONFIRM, T.SUCCEEDED, Decimal("15000"))]

    # A partial refund from the shop: POST /v1/refunds with the ledger row's key.
    outcome = payments.cancel(order, "5000", reason="파손", source=TransactionSource.STAFF, actor=staff)
    row = outcome.transaction
    order.refresh_from_db()
    assert (order.status, order.canceled_amount, order.balance) == (S.PARTIAL_CANCELED, Decimal("5000"), Decimal("10000"))
    (refund,) = [r.state for r in SandboxPayment.objects.filter(key__startswith="re_")]
    assert refund["id"] == row.pg_transaction_id and refund["amount"] == 5000
    assert refund["metadata"] == {"idempotency_key": row.idempotency_key, "order_id": order.order_number, "reason": "파손"}
    assert SandboxIdempotency.objects.filter(idempotency_key=row.idempotency_key, status=200).exists()

    # Stripe tells the shop about its own refund: recognised, not counted twice.
    assert deliver() == [("charge.refunded", 200)]
    order.refresh_from_db()
    assert order.canceled_amount == Decimal("5000")

    # A refund made in the Stripe Dashboard arrives as charge.refunded: one sync row, however often it comes.
    control.arm_fault("stripe", "webhook", "duplicate", match="charge.refunded")
    emulated.refund_in_dashboard(intent_id, 2000)
    assert deliver() == [("charge.refunded", 200), ("charge.refunded", 200)]
    order.refresh_from_db()
    assert (order.status, order.canceled_amount, order.balance) == (S.PARTIAL_CANCELED, Decimal("7000"), Decimal("8000"))
    assert [(r.kind, r.status, r.amount) for r in order.transactions.filter(kind=K.SYNC)] == [(K.SYNC, T.SUCCEEDED, Decimal("2000"))]

    # And the rest, in full.
    payments.cancel(order, payments.FULL, reason="전액", source=TransactionSource.STAFF, actor=staff)
    order.refresh_from_db()
    assert (order.status, order.balance) == (S.CANCELED, Decimal("0"))
    assert emulated.payment_intent_state(intent_id)["status"] == "succeeded"
    charge = SandboxPayment.objects.get(key=refund["charge"]).state
    assert (charge["amount_refunded"], charge["refunded"]) == (15000, True)


def test_usd_order_and_the_webhook_first(sandbox_gateway, shopper, settings):
    settings.PGPAY = {**settings.PGPAY, "CURRENCY": "USD"}
    book = Product.objects.create(name="Django 5 By Example", price=Decimal("10.50"))
    order, session = checkout(shopper, book, quantity=2)
    assert (session["amount_total"], session["currency"]) == (2100, "usd")
    paid = emulated.pay(session["id"])
    assert deliver() == [("checkout.session.completed", 200)]
    order.refresh_from_db()
    assert (order.status, order.amount, order.currency) == (S.PAID, Decimal("21.00"), "USD")
    rows = ledger(order)
    done = shopper.get(local(paid["success_url"]))
    assert done.status_code == 200 and b"Payment complete" in done.content
    assert ledger(order) == rows == [(K.CONFIRM, T.SUCCEEDED, Decimal("21.00")), (K.WEBHOOK, T.SUCCEEDED, Decimal("21.00"))]
    payments.cancel(order, "3.50", reason="partial")
    refund = SandboxPayment.objects.get(key__startswith="re_").state
    assert (refund["amount"], refund["currency"]) == (350, "usd")


def test_a_second_click_reuses_the_open_session(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    again, same = checkout(shopper, product)
    assert again.pk == order.pk and same["id"] == session["id"]
    assert SandboxPayment.objects.filter(key__startswith="cs_").count() == 1


def test_declined_then_paid(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    assert emulated.pay(session["id"], card="4000000000000002")["outcome"] == "declined"
    order.refresh_from_db()
    assert order.status == S.READY
    # A look at Stripe now: the Session is open, nothing to apply.
    assert payments.reconcile(order).order.status == S.READY
    paid = emulated.pay(session["id"])
    assert shopper.get(local(paid["success_url"])).status_code == 200
    order.refresh_from_db()
    assert order.status == S.PAID


def test_three_d_secure(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    paid = emulated.pay(session["id"], card="4000002500003155")
    assert paid["outcome"] == "paid"
    shopper.get(local(paid["success_url"]))
    order.refresh_from_db()
    assert order.status == S.PAID


def test_the_cancel_url(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    page = shopper.get(local(session["cancel_url"]))
    assert page.status_code == 200 and b"You closed the payment window" in page.content
    order.refresh_from_db()
    assert order.status == S.READY and emulated.session_state(session["id"])["status"] == "open"


def test_delayed_method_pending_then_paid_by_webhook(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    done = emulated.pay_delayed(session["id"])
    assert shopper.get(local(done["success_url"])).status_code == 202  # being processed
    assert deliver() == [("checkout.session.completed", 200)]
    order.refresh_from_db()
    assert order.status == S.READY
    emulated.settle(session["id"])
    assert deliver() == [("checkout.session.async_payment_succeeded", 200)]
    order.refresh_from_db()
    assert (order.status, order.pg_payment_id) == (S.PAID, emulated.session_state(session["id"])["payment_intent"])


def test_delayed_method_fails(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    emulated.pay_delayed(session["id"])
    emulated.settle(session["id"], succeed=False)
    assert deliver() == [("checkout.session.completed", 200), ("checkout.session.async_payment_failed", 200)]
    order.refresh_from_db()
    # That Session failed; the order stays payable (a new checkout makes a new Session) until its time is up.
    assert order.status == S.READY and not order.transactions.filter(status__in=("pending", "unknown")).exists()


def test_session_expiry_expires_the_order(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    control.advance_clock(seconds=session["expires_at"] - session["created"] + 1)
    # By then the order's own time is up too (a Session lives longer than READY_TIMEOUT).
    CartOrder.objects.filter(pk=order.pk).update(expires_at=order.created)
    # The sandbox's sweep (what its worker does) expires the Session and sends checkout.session.expired.
    assert control.tick() == {"changed": 1, "attempts": 1, "delivered": 1}
    order.refresh_from_db()
    assert order.status == S.EXPIRED


def test_reconcile_expires_the_session_at_stripe(sandbox_gateway, shopper, product, settings):
    order, session = checkout(shopper, product)
    CartOrder.objects.filter(pk=order.pk).update(expires_at=order.created)
    order.refresh_from_db()
    payments.reconcile(order)
    order.refresh_from_db()
    assert order.status == S.EXPIRED
    assert emulated.session_state(session["id"])["status"] == "expired"  # POST /v1/checkout/sessions/{id}/expire
    with pytest.raises(Exception, match="not open"):
        emulated.pay(session["id"])


def test_lost_webhook_and_no_return_found_by_reconcile(sandbox_gateway, shopper, product):
    control.arm_fault("stripe", "webhook", "drop")
    order, session = checkout(shopper, product)
    emulated.pay(session["id"])  # the buyer closes the tab before the redirect
    assert deliver() == []
    payments.reconcile(order, deep=True)
    order.refresh_from_db()
    assert order.status == S.PAID


# --- idempotency, as the gateway meets it -------------------------------------------------------------


def paid_order(shopper, product):
    order, session = checkout(shopper, product)
    paid = emulated.pay(session["id"])
    shopper.get(local(paid["success_url"]))
    order.refresh_from_db()
    assert order.status == S.PAID
    return order


def test_a_repeated_refund_is_replayed_and_a_changed_one_refused(sandbox_gateway, shopper, product):
    order = paid_order(shopper, product)
    snapshot = order.snapshot()

    def request(amount):
        return CancelRequest(
            order=snapshot,
            payment_id=snapshot.payment_id,
            amount=Decimal(amount),
            currency="KRW",
            reason="x",
            idempotency_key=f"{order.order_number}-cancel-k1",
            balance_before=order.balance,
        )

    first = sandbox_gateway.cancel(request(5000))
    again = sandbox_gateway.cancel(request(5000))
    assert again.pg_cancel_id == first.pg_cancel_id and again.amount == Decimal("5000")
    assert SandboxPayment.objects.filter(key__startswith="re_").count() == 1
    with pytest.raises(GatewayUnavailable) as changed:
        sandbox_gateway.cancel(request(4000))
    assert changed.value.code == "idempotency_error" and changed.value.outcome_unknown


# --- faults ----------------------------------------------------------------------------------------------


def test_refund_answer_lost_after_stripe_refunded(sandbox_gateway, shopper, product, settings):
    order = paid_order(shopper, product)
    control.arm_fault("stripe", "cancel", "timeout_after", delay=4)  # past the gateway's 3 s read timeout
    outcome = payments.cancel(order, "5000", reason="lost answer")
    assert outcome.transaction.status == T.UNKNOWN
    order.refresh_from_db()
    assert order.status == S.PAID  # not applied while the outcome is unknown
    # Reconciliation finds the refund by the ledger key in its metadata.
    payments.reconcile(order)
    order.refresh_from_db()
    assert (order.status, order.canceled_amount) == (S.PARTIAL_CANCELED, Decimal("5000"))
    assert ledger(order)[-1] == (K.CANCEL, T.SUCCEEDED, Decimal("5000"))
    assert SandboxPayment.objects.filter(key__startswith="re_").count() == 1


def test_refund_refused_before_stripe_acted(sandbox_gateway, shopper, product):
    order = paid_order(shopper, product)
    control.arm_fault("stripe", "cancel", "error_before", status=503)
    outcome = payments.cancel(order, "5000", reason="5xx")
    assert outcome.transaction.status == T.UNKNOWN
    payments.reconcile(order)
    # Stripe has no refund with the row's key; once nobody can be waiting for it, the row fails.
    assert order.transactions.get(kind=K.CANCEL).status == T.UNKNOWN
    order.transactions.filter(kind=K.CANCEL).update(modified=order.created - timedelta(hours=1))
    payments.reconcile(order)
    order.refresh_from_db()
    assert (order.status, order.canceled_amount) == (S.PAID, Decimal("0"))
    assert order.transactions.get(kind=K.CANCEL).status == T.FAILED
    assert not SandboxPayment.objects.filter(key__startswith="re_").exists()


def test_checkout_fails_cleanly(sandbox_gateway, shopper, product):
    control.arm_fault("stripe", "checkout", "error_before")
    response = shopper.post(f"/shop/{product.pk}/1/stripe/")
    assert response.status_code == 503
    assert not SandboxPayment.objects.filter(key__startswith="cs_").exists()


def test_a_broken_answer_at_the_return_then_the_webhook(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    paid = emulated.pay(session["id"])
    control.arm_fault("stripe", "lookup", "malformed_after", match=session["id"])
    page = shopper.get(local(paid["success_url"]))
    assert page.status_code == 202  # the outcome is unknown: "being processed", never a 500
    order.refresh_from_db()
    assert order.status == S.READY
    assert deliver() == [("checkout.session.completed", 200)]
    order.refresh_from_db()
    assert order.status == S.PAID


@pytest.mark.parametrize("kind", ["stale_signature", "wrong_secret"])
def test_a_badly_signed_webhook_is_refused_then_retried(sandbox_gateway, shopper, product, kind):
    order, session = checkout(shopper, product)
    control.arm_fault("stripe", "webhook", kind)
    emulated.pay(session["id"])
    assert deliver() == [("checkout.session.completed", 400)]
    order.refresh_from_db()
    assert order.status == S.READY
    assert SandboxWebhook.objects.get().status == "pending"  # Stripe retries, signing anew
    assert deliver() == [("checkout.session.completed", 200)]
    order.refresh_from_db()
    assert order.status == S.PAID


def test_out_of_order_events(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    control.arm_fault("stripe", "webhook", "reorder", count=2)
    emulated.pay(session["id"])
    emulated.refund_in_dashboard(session["id"], 1000)
    results = [(r.event_type, r.status_code) for r in control.deliver_due_webhooks()]
    assert [t for t, _ in results] == ["charge.refunded", "checkout.session.completed"]
    control.deliver_webhooks()  # whatever was retried
    order.refresh_from_db()
    assert (order.status, order.canceled_amount) == (S.PARTIAL_CANCELED, Decimal("1000"))


def test_the_buyer_returns_in_another_browser(sandbox_gateway, shopper, product):
    order, session = checkout(shopper, product)
    paid = emulated.pay(session["id"])
    page = Client().get(local(paid["success_url"]))
    assert page.status_code == 200
    order.refresh_from_db()
    assert order.status == S.PAID


def test_checkout_after_the_sandbox_clock_moved(sandbox_gateway, shopper, product):
    """The gateway computes expires_at on its own clock; the sandbox reads it so, and keeps its objects on its clock."""
    control.advance_clock(days=2)
    order, session = checkout(shopper, product)
    assert session["created"] >= control.now().timestamp() - 5
    assert 30 * 60 < session["expires_at"] - session["created"] <= 24 * 3600
    emulated.pay(session["id"])
    payments.reconcile(order, deep=True)
    order.refresh_from_db()
    assert order.status == S.PAID
