import itertools
from decimal import Decimal

import pytest

from django_pgpay import bookkeeping, payments
from django_pgpay.exceptions import InvalidTransition
from django_pgpay.status import TERMINAL_STATUSES, TRANSITIONS, OrderStatus, can_transition

S = OrderStatus

ALLOWED = {
    (S.READY, S.PAID),
    (S.READY, S.WAITING_FOR_DEPOSIT),
    (S.READY, S.FAILED),
    (S.READY, S.EXPIRED),
    (S.WAITING_FOR_DEPOSIT, S.PAID),
    (S.WAITING_FOR_DEPOSIT, S.EXPIRED),
    (S.WAITING_FOR_DEPOSIT, S.FAILED),
    (S.PAID, S.PARTIAL_CANCELED),
    (S.PAID, S.CANCELED),
    # A bank reversed the deposit (Toss DONE -> WAITING_FOR_DEPOSIT).
    (S.PAID, S.WAITING_FOR_DEPOSIT),
    (S.PARTIAL_CANCELED, S.PARTIAL_CANCELED),
    (S.PARTIAL_CANCELED, S.CANCELED),
}


def test_the_table_is_exactly_the_documented_one():
    assert set(TRANSITIONS) == set(S.values)
    for source, target in itertools.product(S.values, S.values):
        assert can_transition(source, target) == ((source, target) in ALLOWED), (source, target)
    assert TERMINAL_STATUSES == {S.CANCELED, S.FAILED, S.EXPIRED}


@pytest.mark.django_db
@pytest.mark.parametrize("source, target", sorted(set(itertools.product(S.values, S.values)) - ALLOWED))
def test_illegal_transitions_raise_and_change_nothing(make_booking, seat, source, target):
    from django.db import transaction

    from tests.testapp.models import Booking

    booking = make_booking()
    Booking.objects.filter(pk=booking.pk).update(status=source)
    seat.refresh_from_db()
    remain = seat.remain
    with pytest.raises(InvalidTransition) as info:
        with transaction.atomic():
            locked = Booking.objects.select_for_update().get(pk=booking.pk)
            bookkeeping.transition(locked, target)
    assert info.value.source == source and info.value.target == target
    booking.refresh_from_db()
    seat.refresh_from_db()
    assert booking.status == source
    assert booking.paid_at is None and booking.canceled_at is None
    assert seat.remain == remain


@pytest.mark.django_db(transaction=True)
def test_transition_needs_an_atomic_block(make_booking):
    booking = make_booking()
    with pytest.raises(RuntimeError):
        bookkeeping.transition(booking, S.EXPIRED)
    booking.refresh_from_db()
    assert booking.status == S.READY


@pytest.mark.django_db(transaction=True)
def test_transitions_stamp_times_and_signal_after_commit(make_booking, pg):
    from django.db import transaction

    from django_pgpay.signals import order_status_changed, payment_canceled, payment_confirmed
    from tests.testapp.models import Booking

    seen = []

    def on_status(sender, order, old_status, new_status, **kw):
        seen.append(("status", sender, old_status, new_status, transaction.get_connection().in_atomic_block))

    def on_paid(sender, order, transaction, **kw):
        seen.append(("paid", order.order_number, transaction.kind))

    def on_cancel(sender, order, transaction, amount, **kw):
        seen.append(("canceled", order.order_number, amount))

    order_status_changed.connect(on_status)
    payment_confirmed.connect(on_paid)
    payment_canceled.connect(on_cancel)
    try:
        booking = make_booking()
        payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount))
        assert booking.paid_at is not None and booking.canceled_at is None
        payments.cancel(booking, Decimal(5000), reason="partial")
        first_cancel = booking.canceled_at
        assert first_cancel is not None
        payments.cancel(booking, payments.FULL, reason="rest")
        assert booking.canceled_at >= first_cancel
        assert Booking.objects.get(pk=booking.pk).status == S.CANCELED
    finally:
        order_status_changed.disconnect(on_status)
        payment_confirmed.disconnect(on_paid)
        payment_canceled.disconnect(on_cancel)
    assert seen == [
        ("status", Booking, S.READY, S.PAID, False),
        ("paid", booking.order_number, "confirm"),
        ("status", Booking, S.PAID, S.PARTIAL_CANCELED, False),
        ("canceled", booking.order_number, Decimal(5000)),
        ("status", Booking, S.PARTIAL_CANCELED, S.CANCELED, False),
        ("canceled", booking.order_number, Decimal(15000)),
    ]


@pytest.mark.django_db(transaction=True)
def test_signals_are_not_sent_when_the_transaction_rolls_back(make_booking):
    from django.db import transaction

    from django_pgpay.signals import order_status_changed
    from tests.testapp.models import Booking

    seen = []
    receiver = lambda **kw: seen.append(kw["new_status"])  # noqa: E731
    order_status_changed.connect(receiver)
    booking = make_booking()
    try:
        with pytest.raises(ZeroDivisionError):
            with transaction.atomic():
                locked = Booking.objects.select_for_update().get(pk=booking.pk)
                bookkeeping.transition(locked, S.EXPIRED)
                1 / 0
    finally:
        order_status_changed.disconnect(receiver)
    assert seen == []
    booking.refresh_from_db()
    assert booking.status == S.READY
