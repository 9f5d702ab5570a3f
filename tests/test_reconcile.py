"""settle() / reconcile() / expire() / apply_event(): bringing orders in step with the PG."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from django_pgpay import payments
from django_pgpay.exceptions import OperationRefused
from django_pgpay.gateways.results import CancelRequest, ConfirmRequest
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_grace(settings):
    """Rows count as abandoned at once (instead of after IN_FLIGHT_TIMEOUT)."""
    settings.PGPAY = {**settings.PGPAY, "IN_FLIGHT_TIMEOUT": 0}


def past(order):
    type(order).objects.filter(pk=order.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    order.refresh_from_db()


def test_confirm_timed_out_before_the_pg_acted_is_sent_again_with_the_same_key(make_booking, pg, no_grace):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "timeout_before")
    assert payments.confirm(booking, payment_id=payment_id).pending
    outcome = payments.reconcile(booking)
    assert booking.status == S.PAID, outcome
    keys = [c.idempotency_key for c in pg.calls if c.verb == "confirm"]
    assert len(keys) == 2 and len(set(keys)) == 1
    assert booking.transactions.get().status == T.SUCCEEDED


def test_confirm_timed_out_after_the_pg_approved_becomes_paid(make_booking, pg, no_grace):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "timeout_after")
    payments.confirm(booking, payment_id=payment_id)
    payments.reconcile(booking)
    assert booking.status == S.PAID and pg.count("confirm") == 1


def test_confirm_the_pg_never_approved_expires_and_returns_the_seat(make_booking, pg, no_grace, seat):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "timeout_before")
    payments.confirm(booking, payment_id=payment_id)
    pg.expire(payment_id)  # the PG's 10-minute window passed
    past(booking)
    outcome = payments.reconcile(booking)
    assert booking.status == S.EXPIRED, outcome
    assert booking.transactions.get().status == T.FAILED
    seat.refresh_from_db()
    assert seat.remain == 3
    assert payments.reconcile(booking).replayed  # idempotent
    seat.refresh_from_db()
    assert seat.remain == 3


def test_abandoned_checkout_expires_once(make_booking, seat, pg):
    booking = make_booking()
    assert payments.reconcile(booking).replayed  # not due yet
    past(booking)
    payments.reconcile(booking)
    assert booking.status == S.EXPIRED
    payments.reconcile(booking)
    seat.refresh_from_db()
    assert seat.remain == 3


def test_orders_to_reconcile(make_booking, paid_booking, pg, seat):
    from tests.testapp.models import Booking

    type(seat).objects.filter(pk=seat.pk).update(remain=10)

    fresh = make_booking()
    due = make_booking()
    past(due)
    pending = make_booking()
    pg.fail_next("confirm", "timeout_after")
    payments.confirm(pending, payment_id=pg.authorize(pending.order_number, pending.amount))
    assert set(payments.orders_to_reconcile(Booking)) == {due, pending}
    assert fresh not in payments.orders_to_reconcile(Booking)


def test_webhook_while_confirm_in_flight_pays_once(make_booking, pg, gateway):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "timeout_after")  # the browser's confirm lost its answer
    payments.confirm(booking, payment_id=payment_id)
    event = gateway.verify_webhook(gateway.parse_webhook({}, b'{"payment_id": "%s"}' % payment_id.encode()), booking.snapshot())
    outcome = payments.apply_event(booking, event)
    assert outcome.order.status == S.PAID
    assert payments.apply_event(booking, event).replayed  # the duplicate delivery
    reload = payments.confirm(booking, payment_id=payment_id)  # the browser comes back
    assert reload.replayed and reload.order.status == S.PAID
    assert booking.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == 1
    assert pg.count("confirm") == 1


def test_unverified_event_is_refused(make_booking, gateway, pg):
    booking = make_booking()
    event = gateway.parse_webhook({}, b'{"payment_id": "fake_x"}')
    with pytest.raises(OperationRefused):
        payments.apply_event(booking, event)


def test_event_about_another_orders_payment_changes_nothing(make_booking, paid_booking, gateway, pg):
    victim = make_booking()
    event = gateway.verify_webhook(gateway.parse_webhook({}, b'{"payment_id": "%s"}' % paid_booking.pg_payment_id.encode()), None)
    with pytest.raises(OperationRefused) as info:
        payments.apply_event(victim, event)
    assert info.value.code == "PAYMENT_ORDER_MISMATCH"
    victim.refresh_from_db()
    assert victim.status == S.READY and victim.transactions.count() == 0


def test_cancel_made_in_the_pg_dashboard_is_found_once(paid_booking, pg, seat):
    pg.cancel_at_pg(paid_booking.pg_payment_id, Decimal(5000))
    payments.settle(paid_booking)
    payments.settle(paid_booking)
    assert paid_booking.status == S.PARTIAL_CANCELED and paid_booking.canceled_amount == Decimal(5000)
    assert list(paid_booking.transactions.filter(kind=K.SYNC).values_list("amount", flat=True)) == [Decimal(5000)]
    pg.cancel_at_pg(paid_booking.pg_payment_id)
    payments.settle(paid_booking)
    assert paid_booking.status == S.CANCELED
    seat.refresh_from_db()
    assert seat.remain == 3


def test_money_taken_for_an_expired_order_is_given_back(make_booking, pg, gateway):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    past(booking)
    payments.reconcile(booking)
    assert booking.status == S.EXPIRED
    # The PG approves anyway (a late deposit, a PG without a confirm call).
    gateway.confirm(ConfirmRequest(booking.snapshot(), payment_id, booking.amount, "KRW", "late-key"))
    event = gateway.verify_webhook(gateway.parse_webhook({}, b'{"payment_id": "%s"}' % payment_id.encode()), None)
    payments.apply_event(booking, event)
    payments.apply_event(booking, event)
    assert booking.status == S.EXPIRED
    comp = booking.transactions.get(kind=K.COMPENSATE)
    assert comp.status == T.SUCCEEDED and comp.amount == booking.amount
    assert pg.count("cancel") == 1


def test_second_payment_for_a_paid_order_is_given_back(paid_booking, pg, gateway):
    second = pg.authorize(paid_booking.order_number, paid_booking.amount)
    gateway.confirm(ConfirmRequest(paid_booking.snapshot(), second, paid_booking.amount, "KRW", "second"))
    event = gateway.verify_webhook(gateway.parse_webhook({}, b'{"payment_id": "%s"}' % second.encode()), None)
    payments.apply_event(paid_booking, event)
    assert paid_booking.status == S.PAID and paid_booking.canceled_amount == 0
    comp = paid_booking.transactions.get(kind=K.COMPENSATE)
    assert (comp.pg_payment_id, comp.status) == (second, T.SUCCEEDED)
    assert pg.payments[second].state.value == "canceled"
    assert pg.payments[paid_booking.pg_payment_id].state.value == "approved"


def test_unknown_cancel_the_pg_never_saw_is_failed_by_reconcile(paid_booking, pg, no_grace):
    pg.fail_next("cancel", "timeout_before")
    payments.cancel(paid_booking, "3000", reason="x")
    payments.reconcile(paid_booking)
    row = paid_booking.transactions.get(kind=K.CANCEL)
    assert row.status == T.FAILED and row.error_code == "NOT_APPLIED_AT_PG"
    assert paid_booking.status == S.PAID and paid_booking.canceled_amount == 0


def test_deposit_expiry_of_a_virtual_account(make_booking, pg, seat):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount, virtual_account=True)
    payments.confirm(booking, payment_id=payment_id)
    past(booking)
    pg.payments[payment_id].state = pg.payments[payment_id].state.EXPIRED
    payments.reconcile(booking)
    assert booking.status == S.EXPIRED
    seat.refresh_from_db()
    assert seat.remain == 3


def test_reconcile_does_not_touch_a_pg_that_is_down(make_booking, pg, no_grace):
    from django_pgpay.exceptions import GatewayUnavailable

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "timeout_after")
    payments.confirm(booking, payment_id=payment_id)
    pg.fail_next("lookup", "timeout_before")
    with pytest.raises(GatewayUnavailable):
        payments.reconcile(booking)
    assert booking.transactions.get().status == T.UNKNOWN and booking.status == S.READY


def test_fake_gateway_cancel_request_guard(paid_booking, gateway):
    """The fake behaves like PortOne's checksum: a stale balance is refused."""
    from django_pgpay.exceptions import CancelRefused

    with pytest.raises(CancelRefused):
        gateway.cancel(
            CancelRequest(paid_booking.snapshot(), paid_booking.pg_payment_id, Decimal(1000), "KRW", "x", "k1", balance_before=Decimal(5))
        )


def test_virtual_account_withdrawn_before_the_deposit_is_never_paid(make_booking, pg, seat):
    """A vbank closed at the PG while waiting expires unpaid (WAITING_FOR_DEPOSIT -> EXPIRED), never through PAID."""
    from django_pgpay.signals import payment_confirmed

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount, virtual_account=True)
    payments.confirm(booking, payment_id=payment_id)
    assert booking.status == S.WAITING_FOR_DEPOSIT
    confirmed = []
    receiver = lambda **kw: confirmed.append(kw["order"].order_number)  # noqa: E731
    payment_confirmed.connect(receiver)
    try:
        pg.cancel_at_pg(payment_id)
        payments.settle(booking)
    finally:
        payment_confirmed.disconnect(receiver)
    assert booking.status == S.EXPIRED and booking.canceled_amount == 0 and not booking.is_paid
    assert booking.paid_at is None and confirmed == []
    assert booking.transactions.get(kind="confirm").status == "failed"
    assert booking.transactions.get(kind="withdraw").status == "succeeded"
    seat.refresh_from_db()
    assert seat.remain == 3


#: Reads and writes of reconciling one abandoned checkout (the PG has no payment of it):
#: the order, its rows' facts, the order again, whether a confirm is open, then expire()'s
#: lock, check and two updates (with their savepoints here). Was 18: the row-settling steps
#: locked the order and read its rows again, though the PG reported nothing to settle.
ABANDONED_RECONCILE_QUERIES = 13


def test_reconciling_an_abandoned_checkout_costs_a_bounded_number_of_queries(make_booking, seat, pg, django_assert_max_num_queries):
    booking = make_booking()
    past(booking)
    with django_assert_max_num_queries(ABANDONED_RECONCILE_QUERIES):
        outcome = payments.reconcile(booking)
    assert booking.status == S.EXPIRED and outcome.changes == (f"status {S.EXPIRED}",)
    seat.refresh_from_db()
    assert seat.remain == 3


def test_an_abandoned_checkout_with_a_confirm_gone_silent_is_still_settled(make_booking, seat, pg, no_grace):
    """The short way (the PG reports nothing, no row to settle) is not taken when a confirm went silent."""
    from django_pgpay import ledger

    booking = make_booking()
    # A confirm of a payment the PG has no record of, whose answer never came.
    row = ledger.create(booking, K.CONFIRM, amount=booking.amount, currency="KRW", idempotency_key="silent", pg_payment_id="pay-never-seen")
    past(booking)
    outcome = payments.reconcile(booking)
    row.refresh_from_db()
    assert (row.status, row.error_code) == (T.FAILED, "NOT_FOUND")
    assert booking.status == S.EXPIRED and "confirm not approved at the PG" in outcome.changes
    seat.refresh_from_db()
    assert seat.remain == 3


@pytest.mark.parametrize(
    ("fault", "line", "status"),
    [
        (None, "compensate sent again", T.SUCCEEDED),
        ("timeout_before", "compensate sent again: no answer yet (TIMEOUT); left open for the next reconciliation", T.UNKNOWN),
        ("refuse", "compensate sent again: refused (", T.FAILED),
    ],
)
def test_reconcile_says_what_the_pg_answered_to_a_follow_up_it_sent_again(paid_booking, pg, gateway, no_grace, fault, line, status):
    """A compensating cancel whose answer was lost is sent again; the report says how the PG answered, not only that it was sent."""
    second = pg.authorize(paid_booking.order_number, paid_booking.amount)
    gateway.confirm(ConfirmRequest(paid_booking.snapshot(), second, paid_booking.amount, "KRW", "second"))
    event = gateway.verify_webhook(gateway.parse_webhook({}, b'{"payment_id": "%s"}' % second.encode()), None)
    pg.fail_next("cancel", "timeout_before")
    payments.apply_event(paid_booking, event)
    assert paid_booking.transactions.get(kind=K.COMPENSATE).status == T.UNKNOWN
    if fault:
        pg.fail_next("cancel", fault)
    outcome = payments.reconcile(paid_booking)
    sent = [change for change in outcome.changes if "sent again" in change]
    assert len(sent) == 1 and sent[0].startswith(line), outcome.changes
    first = paid_booking.transactions.filter(kind=K.COMPENSATE).order_by("created", "pk").first()
    assert first.status == status
    assert pg.payments[second].state.value == ("canceled" if status == T.SUCCEEDED else "approved")
    assert paid_booking.status == S.PAID and paid_booking.canceled_amount == 0


# --- the shop's deposit deadline (AbstractOrder.get_deposit_deadline) ---------------------------


@pytest.mark.parametrize(
    ("pg_due", "deadline", "kept"),
    [
        ("week", "hour", "hour"),  # a booking's visit comes before the PG's default week
        ("hour", "week", "hour"),  # the PG's own deadline is the earlier one
        ("week", None, "week"),  # no deadline of the shop's: the PG's, as before
        (None, "hour", "hour"),  # a PG that names none: the shop's
        ("week", "naive hour", "hour"),  # a naive time of the shop's is read in the current time zone, not a TypeError
    ],
)
def test_a_virtual_account_keeps_the_earlier_of_the_pgs_deadline_and_the_shops(make_booking, monkeypatch, pg_due, deadline, kept):
    from django_pgpay import bookkeeping
    from django_pgpay.gateways.results import PaymentResult, PaymentState
    from tests.testapp.models import Booking

    now = timezone.now().replace(microsecond=0)
    times = {"hour": now + datetime.timedelta(hours=1), "week": now + datetime.timedelta(days=7), None: None}
    times["naive hour"] = timezone.make_naive(times["hour"])
    monkeypatch.setattr(Booking, "get_deposit_deadline", lambda self: times[deadline])
    booking = make_booking()
    result = PaymentResult(
        state=PaymentState.WAITING_FOR_DEPOSIT,
        payment_id="va-1",
        order_number=booking.order_number,
        amount=booking.amount,
        currency="KRW",
        expires_at=times[pg_due],
    )
    assert "expires_at" in bookkeeping.merge_payment_fields(booking, result)
    assert booking.expires_at == times[kept]


def test_past_the_shops_deposit_deadline_reconcile_withdraws_the_account_and_frees_the_place(make_booking, pg, seat, monkeypatch):
    """The example's case: a booking paid by bank transfer must be paid before the visit, not by the PG's
    own deadline. Before it reconcile leaves the account open; after it the account is withdrawn at the
    PG (no deposit can arrive) and the booking expires unpaid, its place given back."""
    import time_machine

    from tests.testapp.models import Booking

    deadline = timezone.now().replace(microsecond=0) + datetime.timedelta(hours=1)
    monkeypatch.setattr(Booking, "get_deposit_deadline", lambda self: deadline)
    booking = make_booking()
    payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount, virtual_account=True))
    assert booking.status == S.WAITING_FOR_DEPOSIT and booking.expires_at == deadline
    payments.reconcile(booking)
    assert booking.status == S.WAITING_FOR_DEPOSIT and pg.count("cancel") == 0
    with time_machine.travel(deadline + datetime.timedelta(minutes=1), tick=False):
        payments.reconcile(booking)
    booking.refresh_from_db()
    assert booking.status == S.EXPIRED and booking.paid_at is None and booking.canceled_amount == 0
    assert booking.transactions.get(kind=K.WITHDRAW).status == T.SUCCEEDED and pg.count("cancel") == 1
    seat.refresh_from_db()
    assert seat.remain == 3


@pytest.mark.django_db
def test_a_cancel_the_pg_has_only_requested_stays_open_however_old(pay_booking, pg):
    """PortOne V2 answers a refund to a bank account REQUESTED (it takes days). Reconciliation failed
    the row after IN_FLIGHT_TIMEOUT as unknown to the PG, so the order showed nothing refunded while the
    refund was under way (a review of the non-Toss PGs, 7 December 2026, suspected)."""
    from dataclasses import replace

    from django_pgpay import bookkeeping, ledger
    from django_pgpay.gateways.results import CancelEntry

    booking = pay_booking()
    row = ledger.create(booking, K.CANCEL, amount=Decimal(5000), currency="KRW", idempotency_key="k-requested", status=T.UNKNOWN)
    type(row).objects.filter(pk=row.pk).update(modified=timezone.now() - datetime.timedelta(days=2))
    paid = booking.get_gateway().lookup(payment_id=booking.pg_payment_id)
    requested = replace(paid, pending_cancels=(CancelEntry(pg_cancel_id="cancellation-1", amount=Decimal(5000)),))
    with ledger.atomic(booking):
        locked = ledger.lock_order(booking)
        assert bookkeeping.sync_cancels(locked, requested, source="reconcile", settle_stale=True) == []
    row.refresh_from_db()
    assert row.status == T.UNKNOWN  # still open: the PG has it, not done yet
    with ledger.atomic(booking):
        locked = ledger.lock_order(booking)
        assert bookkeeping.sync_cancels(locked, paid, source="reconcile", settle_stale=True) == ["cancel 5000.000 not found at the PG"]
    row.refresh_from_db()
    assert row.status == T.FAILED and row.error_code == "NOT_APPLIED_AT_PG"  # no longer at the PG at all: failed


def test_portone_v2_reports_requested_cancellations_as_pending():
    from django_pgpay.gateways.portone_v2 import PortOneV2Gateway
    from tests.test_portone_v2_gateway import gateway, v2_fixture

    data = {**v2_fixture("payment_partial_cancelled")}
    data["cancellations"] = [{**data["cancellations"][0], "status": "REQUESTED"}]
    result = gateway().payment(data)
    assert isinstance(gateway(), PortOneV2Gateway)
    assert result.cancels == () and [c.pg_cancel_id for c in result.pending_cancels] == [data["cancellations"][0]["id"]]
