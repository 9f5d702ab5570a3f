"""cancel(): full and partial, guards, faults, the seat coming back once."""

from decimal import Decimal

import pytest

from django_pgpay import payments
from django_pgpay.exceptions import CancelRefused, NotCancelable, OperationInProgress
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = pytest.mark.django_db


def cancels(order):
    return [(r.kind, r.status, r.amount) for r in order.transactions.exclude(kind=K.CONFIRM).order_by("pk")]


def test_full_cancel_returns_the_seat_as_the_seed_does(paid_booking, seat, pg, staff):
    seat.refresh_from_db()
    assert seat.remain == 2
    outcome = payments.cancel(paid_booking, payments.FULL, reason="고객 예약취소", source="staff", actor=staff)
    assert outcome.order.status == S.CANCELED
    assert paid_booking.canceled_at is not None and paid_booking.balance == 0
    seat.refresh_from_db()
    assert seat.remain == 3
    row = paid_booking.transactions.get(kind=K.CANCEL)
    assert (row.status, row.amount, row.actor, row.source, row.reason) == (T.SUCCEEDED, Decimal(20000), staff, "staff", "고객 예약취소")
    assert row.pg_transaction_id.startswith("fakecancel_")
    assert pg.calls[-1].idempotency_key == row.idempotency_key


def test_partial_cancels_down_to_zero(paid_booking, seat, pg):
    for amount, status in [("3000", S.PARTIAL_CANCELED), ("7000", S.PARTIAL_CANCELED), ("10000", S.CANCELED)]:
        payments.cancel(paid_booking, amount, reason="partial")
        assert paid_booking.status == status
        seat.refresh_from_db()
        assert seat.remain == (3 if status == S.CANCELED else 2)  # comes back once, at the end
    assert paid_booking.canceled_amount == Decimal(20000)
    assert cancels(paid_booking) == [
        (K.CANCEL, T.SUCCEEDED, Decimal(3000)),
        (K.CANCEL, T.SUCCEEDED, Decimal(7000)),
        (K.CANCEL, T.SUCCEEDED, Decimal(10000)),
    ]
    with pytest.raises(NotCancelable):
        payments.cancel(paid_booking, payments.FULL, reason="again")
    assert pg.count("cancel") == 3


@pytest.mark.parametrize(
    "amount, code",
    [
        ("0", "INVALID_AMOUNT"),
        ("-100", "INVALID_AMOUNT"),
        ("20001", "EXCEEDS_BALANCE"),
        ("10.5", "INVALID_AMOUNT"),
        ("abc", "INVALID_AMOUNT"),
        ("1e3", "INVALID_AMOUNT"),
    ],
)
def test_bad_amounts_change_nothing(paid_booking, pg, amount, code):
    calls = len(pg.calls)
    with pytest.raises(NotCancelable) as info:
        payments.cancel(paid_booking, amount, reason="bad")
    assert info.value.code == code
    paid_booking.refresh_from_db()
    assert paid_booking.status == S.PAID and paid_booking.canceled_amount == 0
    assert cancels(paid_booking) == [] and len(pg.calls) == calls


def test_unpaid_order_is_not_cancelable(make_booking, pg):
    booking = make_booking()
    with pytest.raises(NotCancelable) as info:
        payments.cancel(booking, payments.FULL, reason="x")
    assert str(info.value) == "This order was not paid, so there is nothing to refund."
    assert info.value.code == "NOT_CANCELABLE" and info.value.order.status == S.READY
    assert pg.calls == []


def test_a_cancelled_order_says_it_was_cancelled_already(paid_booking, pg):
    """A second cancel (another tab, the staff first) is told why nothing happened, not a bare "cannot"."""
    payments.cancel(paid_booking, payments.FULL, reason="first")
    with pytest.raises(NotCancelable) as info:
        payments.cancel(paid_booking, payments.FULL, reason="second")
    assert str(info.value) == "This order was already cancelled in full. Nothing more was refunded."
    assert info.value.code == "NOT_CANCELABLE" and info.value.order.status == S.CANCELED
    assert pg.count("cancel") == 1


def test_same_request_token_cancels_once(paid_booking, pg):
    first = payments.cancel(paid_booking, "5000", reason="double click", idempotency_key="form-token-1")
    second = payments.cancel(paid_booking, "5000", reason="double click", idempotency_key="form-token-1")
    assert not first.replayed and second.replayed
    assert paid_booking.canceled_amount == Decimal(5000)
    assert pg.count("cancel") == 1


def test_pg_refusal_is_recorded_and_changes_nothing(paid_booking, pg):
    pg.fail_next("cancel", "refuse")
    with pytest.raises(CancelRefused) as info:
        payments.cancel(paid_booking, payments.FULL, reason="x")
    assert info.value.code == "REFUND_REJECTED"
    paid_booking.refresh_from_db()
    assert paid_booking.status == S.PAID
    assert cancels(paid_booking) == [(K.CANCEL, T.FAILED, Decimal(20000))]


def test_lost_cancel_answer_blocks_further_cancels_until_settled(paid_booking, pg, settings):
    pg.fail_next("cancel", "timeout_after")
    outcome = payments.cancel(paid_booking, "5000", reason="x")
    assert outcome.pending and paid_booking.canceled_amount == 0
    # No blind retry: the next cancel first looks at the PG, which shows the
    # 5000 went through, and then proceeds.
    payments.cancel(paid_booking, "15000", reason="rest")
    assert paid_booking.status == S.CANCELED
    assert cancels(paid_booking) == [(K.CANCEL, T.SUCCEEDED, Decimal(5000)), (K.CANCEL, T.SUCCEEDED, Decimal(15000))]
    assert pg.count("cancel") == 2


def test_a_resent_form_whose_first_answer_was_lost_is_settled_then_replayed(paid_booking, pg):
    pg.fail_next("cancel", "timeout_after")
    first = payments.cancel(paid_booking, "5000", reason="x", idempotency_key="form-1")
    assert first.pending and paid_booking.canceled_amount == 0
    # The buyer sends the same form again: the PG is asked what became of the first (it went
    # through), and the form's cancel is replayed from the settled row, never sent twice.
    again = payments.cancel(paid_booking, "5000", reason="x", idempotency_key="form-1")
    assert again.replayed and again.transaction.status == T.SUCCEEDED and again.transaction.pk == first.transaction.pk
    assert paid_booking.canceled_amount == Decimal(5000)
    assert cancels(paid_booking) == [(K.CANCEL, T.SUCCEEDED, Decimal(5000))]
    assert pg.count("cancel") == 1


def test_cancel_in_flight_refuses_a_second(paid_booking, pg, settings):
    from tests.testapp.models import BookingTransaction

    BookingTransaction.objects.create(
        order=paid_booking, kind=K.CANCEL, status=T.PENDING, amount=1000, currency="KRW", idempotency_key="in-flight"
    )
    with pytest.raises(OperationInProgress):
        payments.cancel(paid_booking, "1000", reason="x")
    assert pg.count("cancel") == 0


def test_already_canceled_at_the_pg_is_applied_not_an_error(paid_booking, pg, seat):
    pg.cancel_at_pg(paid_booking.pg_payment_id)  # someone cancelled in the PG's dashboard
    outcome = payments.cancel(paid_booking, payments.FULL, reason="customer asked")
    assert outcome.order.status == S.CANCELED
    assert paid_booking.canceled_amount == Decimal(20000)
    assert cancels(paid_booking) == [(K.CANCEL, T.FAILED, Decimal(20000)), (K.SYNC, T.SUCCEEDED, Decimal(20000))]
    seat.refresh_from_db()
    assert seat.remain == 3


def test_partial_cancel_at_a_pg_without_it(paid_booking, settings, pg):
    from django_pgpay.conf import reset_gateways

    settings.PGPAY = {
        **settings.PGPAY,
        "GATEWAYS": {"fake": {"CLASS": "django_pgpay.gateways.fake.FakeGateway", "OPTIONS": {"PARTIAL_CANCEL": False}}},
    }
    reset_gateways()
    with pytest.raises(NotCancelable) as info:
        payments.cancel(paid_booking, "1000", reason="x")
    assert info.value.code == "PARTIAL_NOT_SUPPORTED"
    payments.cancel(paid_booking, payments.FULL, reason="all")
    assert paid_booking.status == S.CANCELED


def test_cancel_of_an_unpaid_virtual_account(make_booking, pg, seat):
    booking = make_booking()
    payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount, virtual_account=True))
    with pytest.raises(NotCancelable):
        payments.cancel(booking, "1000", reason="part")
    outcome = payments.cancel(booking, payments.FULL, reason="changed my mind")
    # No money ever moved: the account is withdrawn and the order expires unpaid,
    # with no "refund" in the ledger and no invoice (issue #12, case 8).
    assert booking.status == S.EXPIRED and booking.canceled_amount == 0 and not booking.is_paid
    assert outcome.transaction.kind == "withdraw" and outcome.transaction.status == "succeeded"
    confirm_row = booking.transactions.get(kind="confirm")
    assert confirm_row.status == "failed" and confirm_row.error_code == "WITHDRAWN"
    assert not booking.transactions.filter(kind__in=("cancel", "sync"), status="succeeded").exists()
    seat.refresh_from_db()
    assert seat.remain == 3


def test_usd_cancel_keeps_cents(make_booking, pg):
    booking = make_booking(amount=Decimal("10.50"), currency="USD")
    payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount, currency="USD"))
    payments.cancel(booking, "0.25", reason="part")
    assert booking.canceled_amount == Decimal("0.25") and booking.balance == Decimal("10.25")
    with pytest.raises(NotCancelable):
        payments.cancel(booking, "0.001", reason="too precise")


def test_a_cancel_row_is_locked_with_its_kin_in_one_read(paid_booking, pg, django_assert_num_queries):
    """Step 3 of a cancel reads the row and the order's other cancels at once (ledger.lock_with_kin)."""
    from django.db import transaction

    from django_pgpay import ledger
    from django_pgpay.status import CANCEL_KINDS

    payments.cancel(paid_booking, "3000", reason="first")
    row = ledger.create(paid_booking, K.CANCEL, amount=Decimal(2000), currency="KRW", idempotency_key="k-open")
    confirm = paid_booking.transactions.get(kind=K.CONFIRM)
    with transaction.atomic():
        with django_assert_num_queries(1):
            locked, kin = ledger.lock_with_kin(paid_booking, row, CANCEL_KINDS)
        assert locked.pk == row.pk and locked in kin and locked is next(r for r in kin if r.pk == row.pk)
        assert sorted(r.amount for r in kin) == [Decimal(2000), Decimal(3000)]  # the confirm is not kin
        with pytest.raises(ValueError):
            ledger.lock_with_kin(paid_booking, confirm, CANCEL_KINDS)
        row.delete()
        with pytest.raises(type(row).DoesNotExist):
            ledger.lock_with_kin(paid_booking, row, CANCEL_KINDS)
