"""confirm(): the three steps, duplicates, faults and the amount checks."""

from decimal import Decimal

import pytest

from django_pgpay import payments
from django_pgpay.exceptions import AmountMismatch, GatewayUnavailable, OperationRefused, PaymentDeclined
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = pytest.mark.django_db


def ledger(order):
    return [(r.kind, r.status, r.amount) for r in order.transactions.order_by("pk")]


def test_happy_path(make_booking, pg, seat):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    outcome = payments.confirm(booking, payment_id=payment_id, amount="20000")
    assert not outcome.replayed and not outcome.pending
    assert booking.status == S.PAID and booking.paid_at is not None
    assert booking.pg_payment_id == payment_id
    assert ledger(booking) == [(K.CONFIRM, T.SUCCEEDED, Decimal(20000))]
    row = booking.transactions.get()
    assert row.idempotency_key == payments.confirm_key(booking.order_number, payment_id)
    assert pg.calls[0].idempotency_key == row.idempotency_key
    seat.refresh_from_db()
    assert seat.remain == 2  # taken at checkout, kept once paid


def test_reloading_the_return_page_replays_success(make_booking, pg):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    payments.confirm(booking, payment_id=payment_id, amount=booking.amount)
    again = payments.confirm(booking, payment_id=payment_id, amount=booking.amount)
    assert again.replayed and again.order.status == S.PAID
    assert pg.count("confirm") == 1
    assert booking.transactions.count() == 1


def test_tampered_amount_is_refused_before_the_pg(make_booking, pg):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, Decimal(100))
    with pytest.raises(AmountMismatch) as info:
        payments.confirm(booking, payment_id=payment_id, amount="100")
    assert info.value.expected == Decimal(20000) and info.value.actual == Decimal(100)
    assert pg.calls == []
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.count() == 0


@pytest.mark.parametrize("bad", ["", "x" * 201])
def test_bad_payment_ids_are_refused(make_booking, pg, bad):
    booking = make_booking()
    with pytest.raises(OperationRefused):
        payments.confirm(booking, payment_id=bad)
    assert pg.calls == [] and booking.transactions.count() == 0


@pytest.mark.parametrize("bad", ["abc", "1e9", "NaN", "-20000"])
def test_bad_amounts_are_refused(make_booking, pg, bad):
    booking = make_booking()
    with pytest.raises((OperationRefused, AmountMismatch)):
        payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount), amount=bad)
    assert pg.count("confirm") == 0 and booking.transactions.count() == 0


def test_decline_fails_the_order_and_returns_the_seat(make_booking, pg, seat):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "decline")
    with pytest.raises(PaymentDeclined) as info:
        payments.confirm(booking, payment_id=payment_id)
    assert info.value.code == "REJECT_CARD_COMPANY"
    assert booking.status == S.FAILED
    assert ledger(booking) == [(K.CONFIRM, T.FAILED, Decimal(20000))]
    assert booking.transactions.get().error_code == "REJECT_CARD_COMPANY"
    seat.refresh_from_db()
    assert seat.remain == 3
    # Trying the same payment again replays the failure without a PG call.
    with pytest.raises(OperationRefused):
        payments.confirm(booking, payment_id=payment_id)
    assert pg.count("confirm") == 1


def test_lost_answer_leaves_an_unknown_row_and_no_blind_retry(make_booking, pg, settings):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "timeout_after")
    outcome = payments.confirm(booking, payment_id=payment_id)
    assert outcome.pending
    assert booking.status == S.READY
    assert ledger(booking) == [(K.CONFIRM, T.UNKNOWN, Decimal(20000))]
    # The buyer reloads: the library looks the payment up, it does not confirm again.
    again = payments.confirm(booking, payment_id=payment_id)
    assert again.order.status == S.PAID
    assert pg.count("confirm") == 1
    assert ledger(booking) == [(K.CONFIRM, T.SUCCEEDED, Decimal(20000))]


def test_connection_never_opened_lets_the_buyer_try_again(make_booking, pg):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.fail_next("confirm", "connect_error")
    with pytest.raises(GatewayUnavailable):
        payments.confirm(booking, payment_id=payment_id)
    assert booking.status == S.READY
    outcome = payments.confirm(booking, payment_id=payment_id)
    assert outcome.order.status == S.PAID
    assert ledger(booking) == [(K.CONFIRM, T.FAILED, Decimal(20000)), (K.CONFIRM, T.SUCCEEDED, Decimal(20000))]


def test_another_payment_of_a_paid_order_is_refused_as_already_paid(paid_booking, pg):
    # The return page of a second window said "This order cannot be paid any more" under
    # "Payment not completed", about an order that is paid: it now says so, and that nothing
    # more was charged (a PG with a confirm call charges nothing unconfirmed).
    other = pg.authorize(paid_booking.order_number, paid_booking.amount)
    with pytest.raises(OperationRefused) as info:
        payments.confirm(paid_booking, payment_id=other)
    assert info.value.code == "ALREADY_PAID" and info.value.user_message == "This order is already paid. Nothing more was charged."
    assert pg.count("confirm") == 1


def test_confirm_of_a_finished_order_is_refused(paid_booking, pg):
    payments.cancel(paid_booking, payments.FULL, reason="test")
    other = pg.authorize(paid_booking.order_number, paid_booking.amount)
    with pytest.raises(OperationRefused) as info:
        payments.confirm(paid_booking, payment_id=other)
    assert info.value.code == "NOT_CONFIRMABLE"


def test_pg_confirming_another_amount_fails_and_compensates_once(make_booking, pg, seat):
    """The post_save check: the PG reports 100 for a 20000 order."""
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, Decimal(100))  # the browser changed the amount
    with pytest.raises(AmountMismatch):
        payments.confirm(booking, payment_id=payment_id)  # no amount on the return: only the PG tells
    booking.refresh_from_db()
    assert booking.status == S.FAILED and booking.paid_at is None
    assert ledger(booking) == [(K.CONFIRM, T.FAILED, Decimal(100)), (K.COMPENSATE, T.SUCCEEDED, Decimal(100))]
    confirm_row = booking.transactions.get(kind=K.CONFIRM)
    assert confirm_row.error_code == "AMOUNT_MISMATCH"
    assert pg.count("cancel") == 1
    assert pg.payments[payment_id].state.value == "canceled"
    seat.refresh_from_db()
    assert seat.remain == 3
    # Again: nothing more is sent to the PG.
    with pytest.raises(OperationRefused):
        payments.confirm(booking, payment_id=payment_id)
    payments.reconcile(booking)
    assert pg.count("cancel") == 1 and pg.count("confirm") == 1


def test_currency_mismatch_is_a_mismatch(make_booking, pg):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount, currency="USD")
    with pytest.raises(AmountMismatch):
        payments.confirm(booking, payment_id=payment_id)
    booking.refresh_from_db()
    assert booking.status == S.FAILED and pg.count("cancel") == 1


def test_compensation_whose_answer_is_lost_is_settled_by_reconcile(make_booking, pg, settings):
    settings.PGPAY = {**settings.PGPAY, "IN_FLIGHT_TIMEOUT": 0}
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, Decimal(100))
    pg.fail_next("cancel", "timeout_before")
    with pytest.raises(AmountMismatch):
        payments.confirm(booking, payment_id=payment_id)
    comp = booking.transactions.get(kind=K.COMPENSATE)
    assert comp.status == T.UNKNOWN
    assert pg.payments[payment_id].state.value == "approved"  # money still held
    payments.reconcile(booking)
    comp.refresh_from_db()
    assert comp.status == T.SUCCEEDED
    assert pg.payments[payment_id].state.value == "canceled"
    assert {c.idempotency_key for c in pg.calls if c.verb == "cancel"} == {comp.idempotency_key}


def test_virtual_account_waits_for_the_deposit(make_booking, pg):
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount, virtual_account=True)
    payments.confirm(booking, payment_id=payment_id)
    assert booking.status == S.WAITING_FOR_DEPOSIT and booking.paid_at is None
    pg.deposit(payment_id)
    payments.settle(booking)
    assert booking.status == S.PAID and booking.paid_at is not None
    assert ledger(booking) == [(K.CONFIRM, T.SUCCEEDED, Decimal(20000))]


@pytest.mark.django_db(transaction=True)
def test_signal_rolls_back_a_succeeded_row_saved_by_hand(make_booking):
    """The receiver refuses a succeeded confirm saved outside atomic: the tutorial's mistake."""
    booking = make_booking()
    row = booking.transactions.model(
        order=booking, kind=K.CONFIRM, status=T.SUCCEEDED, amount=booking.amount, currency="KRW", idempotency_key="x-1"
    )
    with pytest.raises(RuntimeError):
        row.save()


@pytest.fixture
def no_confirm_call(gateway, monkeypatch):
    """The fake PG as PortOne behaves: the window approves, the server only verifies."""
    monkeypatch.setattr(gateway, "requires_confirm_call", False)
    return gateway


def test_reload_of_a_failed_order_without_confirm_call_is_refused_not_success(make_booking, pg, no_confirm_call):
    """Regression: the late-lookup path returned an Outcome without error, so the return view showed success."""
    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, Decimal(100))
    with pytest.raises(AmountMismatch):
        payments.confirm(booking, payment_id=payment_id)
    with pytest.raises(OperationRefused) as info:
        payments.confirm(booking, payment_id=payment_id)  # the buyer reloads the return page
    assert info.value.code == "AMOUNT_MISMATCH"
    booking.refresh_from_db()
    assert booking.status == S.FAILED and pg.count("cancel") == 1


def test_a_late_payment_of_an_expired_order_is_given_back_and_refused(make_booking, pg, no_confirm_call):
    booking = make_booking()
    payments.expire(booking)
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.payments[payment_id].state = pg.payments[payment_id].state.__class__.APPROVED  # paid in the window
    with pytest.raises(OperationRefused) as info:
        payments.confirm(booking, payment_id=payment_id)
    # Not merely "cannot be paid": the money was taken, and the buyer reads that it goes back.
    assert info.value.code == "LATE_PAYMENT_REFUNDED" and "being refunded in full" in info.value.user_message
    booking.refresh_from_db()
    assert booking.status == S.EXPIRED
    assert ledger(booking)[-1] == (K.COMPENSATE, T.SUCCEEDED, booking.amount)
    assert pg.payments[payment_id].state.value == "canceled"


def test_the_return_page_of_a_late_payment_says_it_is_refunded(client, buyer, make_booking, pg, no_confirm_call):
    # A browser walk: the buyer paid in a window of an order that had expired meanwhile (another
    # PG chosen in a second tab); the PG took the money and the library gave it back, but the page
    # only said "This order cannot be paid any more".
    from urllib.parse import urlencode

    booking = make_booking()
    payments.expire(booking)
    payment_id = pg.authorize(booking.order_number, booking.amount)
    pg.payments[payment_id].state = pg.payments[payment_id].state.__class__.APPROVED
    client.force_login(buyer)
    response = client.get("/pay/fake/return/?" + urlencode({"payment_id": payment_id, "order_number": booking.order_number}))
    assert response.status_code == 409
    assert b"The payment was not accepted and is being refunded in full." in response.content
    assert pg.payments[payment_id].state.value == "canceled"


def test_the_return_page_says_a_charged_mismatch_is_being_cancelled(client, buyer, make_booking, pg):
    """Nothing was charged only when the mismatch is caught before the PG; otherwise the money is going back."""
    from urllib.parse import urlencode

    booking = make_booking()
    client.force_login(buyer)
    tampered = pg.authorize(booking.order_number, Decimal(100))
    response = client.get("/pay/fake/return/?" + urlencode({"payment_id": tampered, "order_number": booking.order_number}))
    assert response.status_code == 400
    assert b"The payment was not accepted and is being cancelled." in response.content
    assert b"Nothing was charged" not in response.content
    assert pg.count("cancel") == 1
    other = make_booking()
    refused = client.get("/pay/fake/return/?" + urlencode({"payment_id": "x", "order_number": other.order_number, "amount": "100"}))
    assert refused.status_code == 400 and b"Nothing was charged." in refused.content


# --- a second return while the first one's confirm is at the PG ------------------------------------


def _first_return_at_the_pg(booking, payment_id):
    """Step 1 of another request's confirm: its pending row written, its PG call not answered yet."""
    from django_pgpay import ledger as rows

    with rows.atomic(booking):
        locked = rows.lock_order(booking)
        key = payments.confirm_key(booking.order_number, payment_id)
        busy, row = payments._open_confirm(locked, [], key, payment_id, None, source="customer", actor=None)
        assert busy is None
        return row, locked.snapshot()


@pytest.fixture
def virtual_clock(monkeypatch):
    """``time.monotonic`` and ``time.sleep`` of a clock that moves only when slept on; ``clock.then(at, action)``."""
    import time

    class Clock:
        now = 0.0
        sleeps: list = []
        actions: list = []

        def then(self, at, action):
            self.actions.append((at, action))

        def sleep(self, seconds):
            self.sleeps.append(seconds)
            self.now += seconds
            while self.actions and self.actions[0][0] <= self.now:
                self.actions.pop(0)[1]()

    clock = Clock()
    clock.sleeps, clock.actions = [], []
    monkeypatch.setattr(time, "monotonic", lambda: clock.now)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    return clock


def test_a_second_return_waits_for_the_first_reading_the_row_about_ten_times_a_second(make_booking, pg, virtual_clock):
    from tests.testapp.models import Booking

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    row, snapshot = _first_return_at_the_pg(booking, payment_id)
    # The first return's PG call answers after half a second.
    virtual_clock.then(0.5, lambda: payments._run_confirm(Booking.objects.get(pk=booking.pk), row, snapshot, source="customer"))

    outcome = payments.confirm(Booking.objects.get(pk=booking.pk), payment_id=payment_id, wait=8)

    assert outcome.replayed and outcome.order.status == S.PAID
    assert outcome.transaction.pk == row.pk and outcome.transaction.status == T.SUCCEEDED
    assert [c.verb for c in pg.calls].count("confirm") == 1  # the second return asked the PG nothing
    # 20 ms, then half as long again each time (to 200 ms): 7 pauses to get past 0.5 s, where
    # a read every 20 ms took 25 (each a query while the sale goes on).
    assert len(virtual_clock.sleeps) <= 8, virtual_clock.sleeps
    assert virtual_clock.sleeps[0] == pytest.approx(0.02) and max(virtual_clock.sleeps) <= 0.2


def test_a_second_return_whose_first_found_no_such_payment_is_a_not_found(make_booking, pg, virtual_clock):
    """The first confirm learnt the PG knows no such payment and removed its row: the waiter says so, changes nothing."""
    from django_pgpay.exceptions import NotFound
    from tests.testapp.models import Booking

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    row, _snapshot = _first_return_at_the_pg(booking, payment_id)
    virtual_clock.then(0.1, lambda: type(row)._base_manager.filter(pk=row.pk).delete())

    with pytest.raises(NotFound):
        payments.confirm(Booking.objects.get(pk=booking.pk), payment_id=payment_id, wait=8)
    booking.refresh_from_db()
    assert booking.status == S.READY and not booking.transactions.exists()
