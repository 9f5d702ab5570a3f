"""A stateful property test of DESIGN.md's invariants.

Random checkouts, payments (some tampered), confirms with injected faults,
partial and full cancels (some with lost answers), cancels in the PG's
dashboard, duplicated and late webhooks and expiry run against the fake PG;
after reconciliation every order must satisfy the invariants.
"""

import datetime
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from django_pgpay import payments
from django_pgpay.conf import get_gateway
from django_pgpay.exceptions import PgPayError
from django_pgpay.gateways.fake import fake_pg
from django_pgpay.gateways.results import PaymentState
from django_pgpay.status import OPEN_TRANSACTION_STATUSES, PAID_STATUSES
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

FAULTS = st.sampled_from([None, None, None, "timeout_before", "timeout_after", "connect_error", "decline", "server_error_after"])
CANCEL_FAULTS = st.sampled_from([None, None, None, "timeout_before", "timeout_after", "refuse", "connect_error"])
SEATS = 1000


class PaymentMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    @initialize()
    def setup(self):
        from tests.testapp.models import Restaurant, Seat

        self.pg = fake_pg("fake")
        self.pg.reset()
        self.gateway = get_gateway("fake")
        table = Restaurant.objects.create(name="r").table_set.create(price=1000)
        self.seat = Seat.objects.create(table=table, datetime=timezone.now(), remain=SEATS)
        self.created = []

    def booking(self, pk):
        from tests.testapp.models import Booking

        return Booking.objects.get(pk=pk)

    @rule(target=orders, amount=st.integers(min_value=100, max_value=5_000_000))
    def checkout(self, amount):
        from tests.testapp.models import Booking

        booking = Booking(seat=self.seat, amount=Decimal(amount))
        assert booking.reserve()
        booking.save()
        self.created.append(booking.pk)
        return booking.pk

    @rule(order=orders, fault=FAULTS, tamper=st.booleans(), vbank=st.booleans(), claim=st.booleans())
    def pay(self, order, fault, tamper, vbank, claim):
        booking = self.booking(order)
        paid = booking.amount + (1 if tamper else 0)
        payment_id = self.pg.authorize(booking.order_number, paid, virtual_account=vbank)
        if fault:
            self.pg.fail_next("confirm", fault)
        try:
            payments.confirm(booking, payment_id=payment_id, amount=paid if claim else None, wait=0)
        except PgPayError:
            pass
        self.pg.faults.clear()

    @rule(order=orders)
    def reload_return_page(self, order):
        booking = self.booking(order)
        if booking.pg_payment_id:
            try:
                payments.confirm(booking, payment_id=booking.pg_payment_id, wait=0)
            except PgPayError:
                pass

    @rule(order=orders, percent=st.integers(min_value=1, max_value=100), fault=CANCEL_FAULTS, full=st.booleans())
    def cancel(self, order, percent, fault, full):
        booking = self.booking(order)
        amount = None if full else max(Decimal(1), (booking.balance * percent / 100).quantize(Decimal(1)))
        if fault:
            self.pg.fail_next("cancel", fault)
        try:
            payments.cancel(booking, amount, reason="property test")
        except PgPayError:
            pass
        self.pg.faults.clear()

    @rule(order=orders, percent=st.integers(min_value=1, max_value=100))
    def dashboard_cancel(self, order, percent):
        booking = self.booking(order)
        payment = self.pg.payments.get(self.pg.by_order.get(booking.order_number, ""))
        if payment is not None and payment.state in (PaymentState.APPROVED, PaymentState.PARTIAL_CANCELED):
            balance = payment.amount - payment.canceled_amount
            self.pg.cancel_at_pg(payment.payment_id, max(Decimal(1), (balance * percent / 100).quantize(Decimal(1))))

    @rule(order=orders)
    def deposit(self, order):
        booking = self.booking(order)
        payment = self.pg.payments.get(self.pg.by_order.get(booking.order_number, ""))
        if payment is not None and payment.state == PaymentState.WAITING_FOR_DEPOSIT:
            self.pg.deposit(payment.payment_id)

    @rule(order=orders, times=st.integers(min_value=1, max_value=3))
    def webhook(self, order, times):
        booking = self.booking(order)
        payment_id = self.pg.by_order.get(booking.order_number)
        if not payment_id:
            return
        event = self.gateway.parse_webhook({}, (f'{{"payment_id": "{payment_id}"}}').encode())
        for _ in range(times):
            try:
                verified = self.gateway.verify_webhook(event, booking.snapshot())
                payments.apply_event(self.booking(order), verified)
            except PgPayError:
                pass

    @rule(order=orders)
    def time_passes(self, order):
        booking = self.booking(order)
        type(booking).objects.filter(pk=order).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
        try:
            payments.reconcile(self.booking(order))
        except PgPayError:
            pass

    @invariant()
    def amounts_stay_within_bounds(self):
        if not hasattr(self, "seat"):
            return
        from tests.testapp.models import Booking

        for booking in Booking.objects.filter(pk__in=self.created):
            assert 0 <= booking.canceled_amount <= booking.amount
            assert booking.balance == booking.amount - booking.canceled_amount

    def teardown(self):
        if not hasattr(self, "seat"):
            return
        from tests.testapp.models import Booking

        self.pg.faults.clear()
        with override_settings(
            PGPAY={
                "DEFAULT_GATEWAY": "fake",
                "GATEWAYS": {"fake": {"CLASS": "django_pgpay.gateways.fake.FakeGateway"}},
                "IN_FLIGHT_TIMEOUT": 0,
            }
        ):
            for _ in range(2):
                for booking in Booking.objects.filter(pk__in=self.created):
                    payments.reconcile(booking, deep=True)
        holders = 0
        for booking in Booking.objects.filter(pk__in=self.created):
            check_order(booking, self.pg)
            if booking.status in (S.READY, S.WAITING_FOR_DEPOSIT, S.PAID, S.PARTIAL_CANCELED):
                holders += 1
        self.seat.refresh_from_db()
        assert self.seat.remain == SEATS - holders, "stock must come back exactly once"


def check_order(booking, pg):
    rows = list(booking.transactions.all())
    assert not [r for r in rows if r.status in OPEN_TRANSACTION_STATUSES], f"{booking}: open rows after reconciliation"
    confirms = [r for r in rows if r.kind == K.CONFIRM and r.status == T.SUCCEEDED]
    pg_payment = pg.payments.get(booking.pg_payment_id) if booking.pg_payment_id else None
    if booking.status in PAID_STATUSES:
        assert len(confirms) == 1, f"{booking}: {len(confirms)} succeeded confirms"
        assert confirms[0].amount == booking.amount and confirms[0].currency == booking.currency
        assert pg_payment is not None and pg_payment.state.is_paid
        cancelled = sum((r.amount for r in rows if r.kind in (K.CANCEL, K.SYNC) and r.status == T.SUCCEEDED), Decimal(0))
        assert cancelled == booking.canceled_amount == pg_payment.canceled_amount
        assert (booking.status == S.CANCELED) == (booking.balance == 0)
    elif booking.status == S.WAITING_FOR_DEPOSIT:
        # An issued account is not money: its confirm row waits for the deposit.
        waiting = [r for r in rows if r.kind == K.CONFIRM and r.status == T.WAITING]
        assert not confirms and len(waiting) == 1 and pg_payment.state == PaymentState.WAITING_FOR_DEPOSIT
    else:
        # A confirm row is succeeded only when money was taken (DESIGN.md).
        assert not confirms, f"{booking}: unpaid order with a succeeded confirm"
    # No money is kept for an order that was not sold as priced.
    if booking.status in (S.FAILED, S.EXPIRED, S.READY):
        for payment in pg.payments.values():
            if payment.order_number == booking.order_number and payment.state.is_paid:
                assert payment.amount - payment.canceled_amount == 0, f"{booking}: {payment.payment_id} kept money"
    # Every cancel sent to the PG has a ledger row with its key.
    keys = {r.idempotency_key for r in rows}
    for call in pg.calls:
        if (
            call.verb in ("confirm", "cancel")
            and call.payment_id
            and pg.payments.get(call.payment_id)
            and pg.payments[call.payment_id].order_number == booking.order_number
        ):
            sent = call.idempotency_key
            assert sent in keys or any(k.startswith(sent + "-x") for k in keys), f"{booking}: {sent} has no ledger row"


@pytest.mark.django_db
def test_invariants_hold_after_any_sequence():
    run_state_machine_as_test(
        PaymentMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
