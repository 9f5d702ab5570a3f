"""The gateway contract: the same assertions for every PG, its real gateway against the sandbox over a socket.

Per PG (the ``pg`` fixture: the real five and the test-only Mini PG):

- a paid payment is confirmed (or, where the PG has no confirm call, looked up) with amount, currency, status;
- a tampered amount never pays: ``payments.confirm`` refuses it and no money stays held at the PG;
- a partial cancel, then a full one, leave the balance right at the PG and in the gateway's answers;
- an over-cancel is CancelRefused and changes nothing at the PG;
- the same cancel sent twice (same idempotency key / cancel id / checksum) refunds once;
- an unknown payment id is NotFound;
- a webhook the sandbox sends parses into a ParsedWebhook naming the payment; a forged one is refused where the PG signs.

A PG that cannot do something is skipped with the capability that says so; nothing is weakened per PG.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from django_pgpay import payments
from django_pgpay.exceptions import (
    AmountMismatch,
    CancelRefused,
    GatewayError,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    WebhookVerificationError,
)
from django_pgpay.gateways.results import CancelRequest, ConfirmRequest, ParsedWebhook, PaymentState
from django_pgpay.sandbox import control
from tests.sandbox.conftest import AVAILABLE_APPS

from .conftest import deliveries

sandbox_only = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


def confirm(pg, order):
    """The buyer pays ``order`` in the sandbox; the shop's confirm (or lookup) follows."""
    payment_id = pg.authorize(order)
    request = ConfirmRequest(
        order=order, payment_id=payment_id, amount=order.amount, currency="KRW", idempotency_key=f"{order.order_number}-confirm"
    )
    return pg.gateway.confirm(request)


def cancel(pg, order, result, amount, balance_before, key):
    """One cancel; the sandbox clock moves 2 s first (Toss refuses a second cancel of a payment within a second)."""
    control.advance_clock(seconds=2)
    request = CancelRequest(
        order=order,
        payment_id=result.payment_id,
        amount=Decimal(amount),
        currency="KRW",
        reason="contract",
        idempotency_key=key,
        balance_before=Decimal(balance_before),
    )
    return pg.gateway.cancel(request)


def needs(pg, capability: str):
    if not pg.gateway.capabilities()[capability]:
        pytest.skip(f"{pg.gateway.pg_name}: capabilities()[{capability!r}] is False")


@sandbox_only
def test_a_paid_payment_is_confirmed_with_amount_currency_and_status(pg, order):
    snapshot = order(Decimal(15000))
    result = confirm(pg, snapshot)
    assert (result.state, result.amount, result.currency, result.order_number) == (
        PaymentState.APPROVED,
        Decimal(15000),
        "KRW",
        snapshot.order_number,
    )
    looked_up = pg.gateway.lookup(payment_id=result.payment_id)
    assert (looked_up.state, looked_up.amount, looked_up.canceled_amount, looked_up.payment_id) == (
        PaymentState.APPROVED,
        Decimal(15000),
        Decimal(0),
        result.payment_id,
    )


@pytest.mark.django_db(transaction=True)
def test_a_tampered_amount_never_pays(pg, make_booking):
    """The order says 20,000 won; the buyer's window paid 15,000. The order is not paid and no money stays at the PG."""
    booking = make_booking(amount=Decimal(20000), gateway=pg.alias)
    tampered = replace(booking.snapshot(), amount=Decimal(15000))
    payment_id = pg.authorize(tampered)
    with pytest.raises((AmountMismatch, PaymentDeclined, InvalidRequest)):  # ours, or the PG's refusal
        payments.confirm(booking, payment_id=payment_id)
    booking.refresh_from_db()
    assert not booking.is_paid
    at_pg = pg.gateway.lookup(payment_id=booking.pg_payment_id or payment_id)
    assert not at_pg.state.is_paid or at_pg.balance == 0, f"{at_pg.state} with {at_pg.balance} held at the PG"


@sandbox_only
def test_partial_then_full_cancel_leave_the_balance_right(pg, order):
    needs(pg, "supports_partial_cancel")
    snapshot = order()
    paid = confirm(pg, snapshot)
    first = cancel(pg, snapshot, paid, 3000, 10000, f"{snapshot.order_number}-c1")
    assert first.amount == Decimal(3000)
    after = pg.gateway.lookup(payment_id=paid.payment_id)
    assert (after.state, after.canceled_amount, after.balance) == (PaymentState.PARTIAL_CANCELED, Decimal(3000), Decimal(7000))
    rest = cancel(pg, snapshot, paid, 7000, 7000, f"{snapshot.order_number}-c2")
    assert rest.amount == Decimal(7000)
    final = pg.gateway.lookup(payment_id=paid.payment_id)
    assert (final.state, final.canceled_amount, final.balance) == (PaymentState.CANCELED, Decimal(10000), Decimal(0))
    assert len(pg.refunds(paid.payment_id)) == 2


@sandbox_only
def test_an_over_cancel_is_refused_and_changes_nothing(pg, order):
    needs(pg, "supports_partial_cancel")
    snapshot = order()
    paid = confirm(pg, snapshot)
    cancel(pg, snapshot, paid, 3000, 10000, f"{snapshot.order_number}-c1")
    with pytest.raises(CancelRefused):
        cancel(pg, snapshot, paid, 8000, 7000, f"{snapshot.order_number}-c2")
    after = pg.gateway.lookup(payment_id=paid.payment_id)
    assert (after.state, after.canceled_amount) == (PaymentState.PARTIAL_CANCELED, Decimal(3000))
    assert len(pg.refunds(paid.payment_id)) == 1


@sandbox_only
def test_the_same_cancel_twice_refunds_once(pg, order):
    needs(pg, "supports_idempotency_key")
    snapshot = order()
    paid = confirm(pg, snapshot)
    first = cancel(pg, snapshot, paid, 4000, 10000, f"{snapshot.order_number}-same")
    try:
        again = cancel(pg, snapshot, paid, 4000, 10000, f"{snapshot.order_number}-same")
    except GatewayError as refused:  # a PG may refuse the repeat (PortOne's checksum): then it must say nothing moved
        assert not getattr(refused, "outcome_unknown", False), refused
    else:
        assert again.amount == first.amount == Decimal(4000)
    assert len(pg.refunds(paid.payment_id)) == 1
    assert pg.gateway.lookup(payment_id=paid.payment_id).canceled_amount == Decimal(4000)


@sandbox_only
def test_an_unknown_payment_id_is_not_found(pg):
    with pytest.raises(NotFound):
        pg.gateway.lookup(payment_id=pg.unknown_id)


def parsed_webhooks(pg) -> list[ParsedWebhook]:
    control.deliver_webhooks()
    now = timezone.now()
    return [pg.gateway.parse_received_webhook(headers, body, received_at=now) for headers, body in deliveries()]


@sandbox_only
def test_a_webhook_the_sandbox_sends_parses_and_names_the_payment(pg, order):
    snapshot = order()
    paid = confirm(pg, snapshot)
    cancel(pg, snapshot, paid, 10000, 10000, f"{snapshot.order_number}-c1")
    events = parsed_webhooks(pg)
    assert events, f"{pg.alias}: the sandbox sent no webhook"
    assert all(isinstance(event, ParsedWebhook) and event.event_id and event.event_type for event in events)
    named = [e for e in events if e.payment_id in (paid.payment_id, snapshot.order_number) or e.order_number == snapshot.order_number]
    assert len(named) == len(events), [(e.event_type, e.payment_id, e.order_number) for e in events]
    # Signed: proven by the signature. Unsigned: never trusted as sent, only after verify_webhook's lookup.
    assert all(event.verified == pg.gateway.capabilities()["signs_webhooks"] for event in events)
    verified = pg.gateway.verify_webhook(named[-1], replace(snapshot, payment_id=paid.payment_id))
    assert verified.verified and verified.payment is not None and verified.payment.payment_id == paid.payment_id


@sandbox_only
def test_a_forged_webhook_is_refused(pg, order):
    needs(pg, "signs_webhooks")
    snapshot = order()
    confirm(pg, snapshot)
    control.deliver_webhooks()
    headers, body = deliveries()[-1]
    # The payment named (or, where the body names the order only, its amount) changed; the signature kept.
    forged = body.replace(snapshot.order_number.encode(), b"order-" + b"f" * (len(snapshot.order_number) - 6), 1)
    assert forged != body
    now = timezone.now()
    with pytest.raises(WebhookVerificationError):
        pg.gateway.parse_received_webhook(headers, forged, received_at=now)
    with pytest.raises(WebhookVerificationError):
        pg.gateway.parse_received_webhook({k: v for k, v in headers.items() if "signature" not in k.lower()}, body, received_at=now)
    with pytest.raises(WebhookVerificationError):  # a copy replayed a day later (PGs that sign a timestamp), or unsigned
        pg.gateway.parse_received_webhook(headers, forged, received_at=now + timedelta(days=1))
