"""A buyer's confirm or cancel against the same buyer's checkout: no deadlock (PostgreSQL and MariaDB).

Attack review (MariaDB): the checkout locked the buyer's user row, then their READY order; a confirm
or cancel locks its order, then inserts a ledger row naming the buyer (``actor``), and the database
checks that foreign key with a shared lock on the user row. Order then user against user then order:
a deadlock, a 500 for one of the two. On MariaDB the checkout's ``FOR UPDATE`` over the buyer's
orders also locked their PAID orders on its way, so a cancel of any of them met any checkout.

The pause only widens the real window (between the order's lock and the ledger row's INSERT).
"""

import threading
import time

import pytest
from django.db import OperationalError, connection
from django.db.models.signals import pre_save
from django.test import Client

from django_pgpay import checkout_locks, payments
from django_pgpay.status import OrderStatus as S
from tests.test_concurrency import run_together

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB"),
]


def _together(*targets):
    """Each of ``targets`` in its own thread, released at the same instant; what each returned or raised."""
    return run_together(len(targets), lambda i: targets[i]())


@pytest.fixture
def widen(monkeypatch):
    """The confirm or cancel pauses between its order lock and its ledger INSERT until the checkout is in its locks."""
    from tests.testapp.models import BookingTransaction

    checkout_locks.write_slots()  # migration 0006 writes them; an earlier transactional test's flush emptied the table

    order_locked, checkout_in = threading.Event(), threading.Event()
    order_locked.armed = set()

    def pause(sender, instance, **kwargs):
        if instance.pk is None and instance.kind in order_locked.armed and not order_locked.is_set():
            order_locked.set()
            checkout_in.wait(5)
            time.sleep(0.4)  # the checkout takes its locks and reaches the order meanwhile

    pre_save.connect(pause, sender=BookingTransaction, weak=False)
    original = checkout_locks.held

    def held(*args, **kwargs):
        checkout_in.set()
        return original(*args, **kwargs)

    monkeypatch.setattr(checkout_locks, "held", held)
    yield order_locked
    pre_save.disconnect(pause, sender=BookingTransaction)


def test_the_return_confirm_and_a_second_tabs_checkout(make_booking, pg, buyer, seat, widen):
    from tests.testapp.models import Booking

    booking = make_booking(user=buyer)
    payment_id = pg.authorize(booking.order_number, booking.amount)
    client = Client()
    client.force_login(buyer)
    widen.armed.add("confirm")

    def confirm():
        return payments.confirm(Booking.objects.get(pk=booking.pk), payment_id=payment_id, amount=booking.amount, actor=buyer)

    def checkout():
        widen.wait(5)
        return client.post(f"/book/{seat.pk}/fake/").status_code

    outcome, status = _together(confirm, checkout)
    assert not isinstance(outcome, OperationalError) and not isinstance(status, OperationalError), (outcome, status)
    assert status < 500
    booking.refresh_from_db()
    assert booking.status == S.PAID


@pytest.mark.parametrize("same_seat", [False, True])
def test_a_cancel_and_a_checkout_of_the_same_buyer(pay_booking, pg, buyer, seat, widen, same_seat):
    from tests.testapp.models import Booking, Seat

    booking = pay_booking()
    target = seat if same_seat else Seat.objects.create(table=seat.table, datetime=seat.datetime, remain=5)
    client = Client()
    client.force_login(buyer)
    widen.armed.add("cancel")

    def cancel():
        return payments.cancel(Booking.objects.get(pk=booking.pk), payments.FULL, reason="x", actor=buyer)

    def checkout():
        widen.wait(5)
        return client.post(f"/book/{target.pk}/fake/", {"pgpay_another": "1"} if same_seat else {}).status_code

    outcome, status = _together(cancel, checkout)
    assert not isinstance(outcome, Exception) and not isinstance(status, Exception), (outcome, status)
    assert status < 500
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
