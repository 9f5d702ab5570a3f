"""Races between real database connections (PostgreSQL and MariaDB; SQLite has no row locks).

The fake PG sleeps inside every call so that the operations really overlap.
"""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from django_pgpay import payments
from django_pgpay.exceptions import NotCancelable, OperationInProgress, PgPayError
from django_pgpay.signals import order_status_changed
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.concurrency,
    pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB"),
]


def run_together(n, target):
    """Start ``n`` threads at the same instant; return what each returned or raised."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def body(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture
def transitions():
    seen = []
    receiver = lambda **kw: seen.append((kw["order"].order_number, kw["old_status"], kw["new_status"]))  # noqa: E731
    order_status_changed.connect(receiver)
    yield seen
    order_status_changed.disconnect(receiver)


def test_many_confirms_of_one_payment_pay_once(make_booking, pg, transitions):
    from tests.testapp.models import Booking

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.latency = 0.3
    results = run_together(8, lambda i: payments.confirm(Booking.objects.get(pk=booking.pk), payment_id=payment_id, wait=10))
    assert all(not isinstance(r, BaseException) for r in results), results
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert transitions == [(booking.order_number, S.READY, S.PAID)]
    assert booking.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == 1
    assert booking.transactions.count() == 1
    assert pg.count("confirm") == 1
    assert sum(1 for r in results if not r.replayed) == 1


def test_confirm_racing_cancel(make_booking, pg):
    from tests.testapp.models import Booking

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.latency = 0.2

    def act(i):
        fresh = Booking.objects.get(pk=booking.pk)
        if i == 0:
            return payments.confirm(fresh, payment_id=payment_id, wait=10)
        return payments.cancel(fresh, payments.FULL, reason="race")

    results = run_together(2, act)
    booking.refresh_from_db()
    assert not isinstance(results[0], BaseException), results
    if isinstance(results[1], BaseException):
        assert isinstance(results[1], (NotCancelable, OperationInProgress)), results
        assert booking.status == S.PAID and booking.balance == booking.amount
    else:
        assert booking.status == S.CANCELED
    assert pg.count("confirm") == 1


def test_two_partial_cancels_that_exceed_the_balance(paid_booking, pg):
    from tests.testapp.models import Booking

    pg.latency = 0.3
    results = run_together(2, lambda i: payments.cancel(Booking.objects.get(pk=paid_booking.pk), "15000", reason=f"r{i}"))
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], (NotCancelable, OperationInProgress))
    paid_booking.refresh_from_db()
    assert paid_booking.canceled_amount == Decimal(15000) and paid_booking.balance == Decimal(5000)
    assert paid_booking.status == S.PARTIAL_CANCELED
    assert pg.count("cancel") == 1
    assert paid_booking.transactions.filter(kind=K.CANCEL).count() == 1


def test_cancel_clicked_twice_at_once_refunds_once(paid_booking, pg, seat):
    from tests.testapp.models import Booking

    pg.latency = 0.2
    results = run_together(4, lambda i: payments.cancel(Booking.objects.get(pk=paid_booking.pk), payments.FULL, reason="twice"))
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1, results
    assert all(isinstance(r, PgPayError) for r in results if isinstance(r, BaseException))
    paid_booking.refresh_from_db()
    assert paid_booking.status == S.CANCELED
    seat.refresh_from_db()
    assert seat.remain == 3
    assert pg.count("cancel") == 1


def test_webhook_and_return_race(make_booking, pg, gateway):
    from tests.testapp.models import Booking

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.latency = 0.2

    def act(i):
        fresh = Booking.objects.get(pk=booking.pk)
        if i == 0:
            return payments.confirm(fresh, payment_id=payment_id, wait=10)
        # The PG's webhook, verified by a re-fetch, arriving while the confirm is in flight.
        event = gateway.parse_webhook({}, b'{"payment_id": "%s"}' % payment_id.encode())
        for _ in range(50):
            event = gateway.verify_webhook(event, fresh.snapshot())
            if event.payment.state.is_paid:
                return payments.apply_event(fresh, event)
            event = gateway.parse_webhook({}, b'{"payment_id": "%s"}' % payment_id.encode())
        return None

    results = run_together(2, act)
    assert all(not isinstance(r, BaseException) for r in results), results
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert booking.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() == 1
    assert pg.count("confirm") == 1
