"""Settlement (정산) from the ledger: per day in the shop's time zone, per PG and currency.

The property test drives real payments and refunds through two fake PG accounts, puts
each ledger row on a generated moment (often near midnight), and checks that every
figure of the settlement equals the sum of the ledger's succeeded rows it covers.
It runs on every database of the suite (``make test-postgres``, ``make test-mariadb``).
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_pgpay import payments, settlement
from django_pgpay.exceptions import GatewayError
from django_pgpay.gateways.fake import fake_pg
from django_pgpay.invoices import vat_split
from tests.testapp.models import Booking, BookingTransaction, CartOrder, CartTransaction

pytestmark = pytest.mark.django_db

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
START = datetime.datetime(2026, 3, 1, tzinfo=SEOUL)
FAKE2 = {"CLASS": "django_pgpay.gateways.fake.FakeGateway", "OPTIONS": {}}


@pytest.fixture
def two_pgs(settings):
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "fake2": FAKE2}}
    for alias in ("fake", "fake2"):
        fake_pg(alias).reset()
    yield
    fake_pg("fake2").reset()


def moment(minutes: int) -> datetime.datetime:
    return START + datetime.timedelta(minutes=minutes)


def put(row, when) -> None:
    type(row)._base_manager.filter(pk=row.pk).update(completed_at=when)


# --- examples -------------------------------------------------------------------------------------


def test_a_day_ends_at_midnight_in_seoul(pay_booking):
    order = pay_booking(Decimal(20000))
    payments.cancel(order, Decimal(5000), reason="part")
    confirm = BookingTransaction.objects.get(order=order, kind="confirm")
    cancel = BookingTransaction.objects.get(order=order, kind="cancel")
    put(confirm, datetime.datetime(2026, 1, 1, 23, 59, 59, tzinfo=SEOUL))
    put(cancel, datetime.datetime(2026, 1, 2, 0, 0, 0, tzinfo=SEOUL))
    result = settlement.compute([Booking], datetime.date(2025, 12, 31), datetime.date(2026, 1, 3))
    first, second = result.lines
    assert (first.day, first.payment_count, first.paid, first.refunded) == (datetime.date(2026, 1, 1), 1, Decimal(20000), 0)
    assert (first.supply, first.vat) == (Decimal(18182), Decimal(1818))
    assert (second.day, second.refund_count, second.refunded, second.net) == (datetime.date(2026, 1, 2), 1, Decimal(5000), Decimal(-5000))
    assert second.supply + second.vat == Decimal(-5000)
    (total,) = result.totals
    assert (total.paid, total.refunded, total.net) == (Decimal(20000), Decimal(5000), Decimal(15000))
    assert (total.supply, total.vat) == vat_split(Decimal(15000), "KRW") == (Decimal(13636), Decimal(1364))
    # The range is of whole days: only January 2nd.
    (only,) = settlement.compute([Booking], datetime.date(2026, 1, 2), datetime.date(2026, 1, 2)).lines
    assert only.day == datetime.date(2026, 1, 2) and only.paid == 0


def test_failed_pending_and_webhook_rows_do_not_count_and_compensations_stand_apart(pay_booking, pg):
    order = pay_booking(Decimal(10000))
    pg.fail_next("cancel", "refuse")
    with pytest.raises(GatewayError):
        payments.cancel(order, Decimal(1000), reason="refused")
    pg.fail_next("cancel", "timeout_after")
    payments.cancel(order, Decimal(2000), reason="unanswered")  # stays unknown
    BookingTransaction.objects.create(
        order=order, kind="webhook", status="succeeded", amount=10000, currency="KRW", idempotency_key="wh-1", completed_at=timezone.now()
    )
    BookingTransaction.objects.create(
        order=order,
        kind="compensate",
        status="succeeded",
        amount=7000,
        currency="KRW",
        idempotency_key="comp-1",
        completed_at=timezone.now(),
    )
    today = timezone.localdate()
    (line,) = settlement.compute([Booking], today, today).lines
    assert (line.payment_count, line.paid, line.refund_count, line.refunded) == (1, Decimal(10000), 0, 0)
    assert (line.return_count, line.returned, line.net) == (1, Decimal(7000), Decimal(10000))


def test_currencies_and_pgs_and_models_are_kept_apart(two_pgs, make_booking, pg):
    krw = make_booking(amount=Decimal(20000))
    payments.confirm(krw, payment_id=pg.authorize(krw.order_number, krw.amount), amount=krw.amount)
    usd = make_booking(amount=Decimal("12.50"), currency="USD")
    payments.confirm(usd, payment_id=pg.authorize(usd.order_number, usd.amount, "USD"), amount=usd.amount)
    cart = CartOrder.objects.create(amount=Decimal(5000), gateway="fake2")
    payments.confirm(cart, payment_id=fake_pg("fake2").authorize(cart.order_number, cart.amount), amount=cart.amount)
    today = timezone.localdate()
    result = settlement.compute([Booking, CartOrder], today, today)
    assert {(l.gateway, l.currency, l.paid) for l in result.lines} == {
        ("fake", "KRW", Decimal(20000)), ("fake", "USD", Decimal("12.50")), ("fake2", "KRW", Decimal(5000)),
    }  # fmt: skip
    usd_line = next(l for l in result.lines if l.currency == "USD")
    assert usd_line.supply is None and usd_line.vat is None and usd_line.vat_label == "—"
    assert {(t.currency, t.paid) for t in result.totals} == {("KRW", Decimal(25000)), ("USD", Decimal("12.50"))}
    assert settlement.compute([Booking], today, today, gateways=["fake2"]).lines == ()
    assert [l.gateway for l in settlement.compute([CartOrder], today, today).lines] == ["fake2"]


def test_days_around_a_daylight_saving_change(make_booking, pg):
    new_york = zoneinfo.ZoneInfo("America/New_York")
    # 2026-03-08 02:00 EST becomes 03:00 EDT: the offset changes inside the day.
    moments = [
        datetime.datetime(2026, 3, 7, 23, 30, tzinfo=new_york),  # EST, Mar 7
        datetime.datetime(2026, 3, 8, 0, 30, tzinfo=new_york),  # EST, Mar 8
        datetime.datetime(2026, 3, 8, 23, 30, tzinfo=new_york),  # EDT, Mar 8
        datetime.datetime(2026, 3, 9, 0, 15, tzinfo=new_york),  # EDT, Mar 9
    ]
    for when in moments:
        order = make_booking(amount=Decimal(1000), user=None)
        payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount), amount=order.amount)
        put(BookingTransaction.objects.get(order=order, kind="confirm"), when)
        order.seat.remain = 3
        order.seat.save()
    result = settlement.compute([Booking], datetime.date(2026, 3, 7), datetime.date(2026, 3, 9), zone=new_york)
    assert [(l.day.day, l.payment_count) for l in result.lines] == [(7, 1), (8, 2), (9, 1)]
    spans = settlement.offset_spans(moments[0], moments[-1], new_york)
    assert [s[2] for s in spans] == [datetime.timedelta(hours=-5), datetime.timedelta(hours=-4)]
    assert spans[0][1] == datetime.datetime(2026, 3, 8, 7, 0, tzinfo=datetime.timezone.utc)


def test_an_issued_virtual_account_counts_only_once_deposited(make_booking, pg):
    # The confirm row of an issued account waits (status "waiting"); it succeeds on the day the money
    # arrives, and that is the day it is counted. A withdrawn account never counts.
    start = datetime.datetime(2026, 11, 2, 10, 0, tzinfo=datetime.timezone.utc)
    with time_machine.travel(start, tick=False):
        order = make_booking(amount=Decimal(30000))
        payment_id = pg.authorize(order.order_number, order.amount, virtual_account=True)
        payments.confirm(order, payment_id=payment_id, amount=order.amount)
        assert order.status == "WAITING_FOR_DEPOSIT"
        day_one = timezone.localdate()
        assert settlement.compute([Booking], day_one, day_one).lines == ()  # no money yet
        withdrawn = make_booking(amount=Decimal(10000))
        other = pg.authorize(withdrawn.order_number, withdrawn.amount, virtual_account=True)
        payments.confirm(withdrawn, payment_id=other, amount=withdrawn.amount)
        payments.cancel(withdrawn, payments.FULL, reason="changed my mind")
        assert withdrawn.status == "EXPIRED"
    with time_machine.travel(start + datetime.timedelta(days=2), tick=False):
        pg.deposit(payment_id)
        payments.settle(order)
        assert order.status == "PAID"
        day_three = timezone.localdate()
    assert settlement.compute([Booking], day_one, day_one).lines == ()
    (line,) = settlement.compute([Booking], day_one, day_three).lines
    assert (line.day, line.payment_count, line.paid) == (day_three, 1, Decimal(30000))


def test_csv_rows(pay_booking):
    order = pay_booking(Decimal(20000))
    payments.cancel(order, Decimal(5000), reason="part")
    today = timezone.localdate()
    result = settlement.compute([Booking], today, today)
    assert settlement.csv_header()[:5] == ["date", "PG", "gateway alias", "currency", "payments"]
    (row,) = list(settlement.csv_rows(result))
    assert row == [
        today.isoformat(),
        "Fake PG (for tests)",
        "fake",
        "KRW",
        1,
        Decimal(20000),
        1,
        Decimal(5000),
        Decimal(15000),
        Decimal(13636),
        Decimal(1364),
        0,
        Decimal(0),
    ]


# --- the property ---------------------------------------------------------------------------------

KINDS = {"confirm": "payment", "cancel": "refund", "sync": "refund", "compensate": "return"}

refund_plan = st.tuples(
    st.one_of(st.none(), st.integers(min_value=1, max_value=99)),  # None: the rest; else a percentage
    st.integers(min_value=0, max_value=3 * 24 * 60),  # minutes after the payment
    st.sampled_from(["ok", "ok", "ok", "refused", "at_pg"]),
)
order_plan = st.fixed_dictionaries(
    {
        "gateway": st.sampled_from(["fake", "fake2"]),
        "currency": st.sampled_from(["KRW", "KRW", "USD"]),
        "amount": st.integers(min_value=100, max_value=2_000_000),
        "model": st.sampled_from(["booking", "cart"]),
        # Minutes from 2026-03-01 00:00 in Seoul; weighted towards the minutes around midnight.
        "paid": st.one_of(
            st.integers(min_value=0, max_value=6 * 24 * 60),
            st.integers(min_value=0, max_value=5).map(lambda d: d * 24 * 60 - 1),
            st.integers(min_value=1, max_value=5).map(lambda d: d * 24 * 60),
        ),
        "refunds": st.lists(refund_plan, max_size=3),
        "compensation": st.booleans(),
    }
)


def run_plan(plan, seat):
    """Make the orders and operations of ``plan``; put every ledger row at its planned moment."""
    for entry in plan:
        pg = fake_pg(entry["gateway"])
        amount = Decimal(entry["amount"]) if entry["currency"] == "KRW" else Decimal(entry["amount"]).scaleb(-2)
        if entry["model"] == "booking":
            order = Booking.objects.create(seat=seat, amount=amount, currency=entry["currency"], gateway=entry["gateway"])
            rows = BookingTransaction.objects
        else:
            order = CartOrder.objects.create(amount=amount, currency=entry["currency"], gateway=entry["gateway"])
            rows = CartTransaction.objects
        payments.confirm(order, payment_id=pg.authorize(order.order_number, amount, entry["currency"]), amount=amount)
        put(rows.get(order=order, kind="confirm"), moment(entry["paid"]))
        for share, later, how in entry["refunds"]:
            order.refresh_from_db()
            if order.balance <= 0:
                break
            unit = Decimal(1) if entry["currency"] == "KRW" else Decimal("0.01")  # the currency's smallest amount
            value = payments.FULL if share is None else max((order.balance * share / 100).quantize(unit), unit)
            before = set(rows.filter(order=order).values_list("pk", flat=True))
            if how == "at_pg":  # in the PG's dashboard, found by reconciliation
                pg.cancel_at_pg(order.pg_payment_id, None if value is payments.FULL else value)
                payments.reconcile(order, deep=True)
            else:
                if how == "refused":
                    pg.fail_next("cancel", "refuse")
                try:
                    payments.cancel(order, value, reason="plan")
                except GatewayError:
                    pass
            for row in rows.filter(order=order).exclude(pk__in=before):
                put(row, moment(entry["paid"] + later))
        if entry["compensation"]:
            rows.create(
                order=order, kind="compensate", status="succeeded", amount=amount, currency=entry["currency"],
                idempotency_key=f"{order.order_number}-comp", completed_at=moment(entry["paid"] + 7),
            )  # fmt: skip


def ledger_oracle(since, until):
    """The expected figures: the ledger's succeeded rows summed in Python, by Seoul day, PG and currency."""
    sums = defaultdict(lambda: defaultdict(lambda: [0, Decimal(0)]))
    for model in (BookingTransaction, CartTransaction):
        for row in model.objects.filter(status="succeeded").select_related("order"):
            if row.kind not in KINDS:
                continue
            day = row.completed_at.astimezone(SEOUL).date()
            if since <= day <= until:
                column = sums[(day, row.order.gateway, row.currency)][KINDS[row.kind]]
                column[0] += 1
                column[1] += row.amount
    return sums


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=st.lists(order_plan, min_size=1, max_size=5), window=st.tuples(st.integers(0, 7), st.integers(0, 7)))
def test_settlement_equals_the_ledgers_succeeded_rows(two_pgs, seat, settings, plan, window):
    settings.TIME_ZONE = "Asia/Seoul"
    seat.remain = 100
    seat.save()
    since = START.date() + datetime.timedelta(days=min(window))
    until = START.date() + datetime.timedelta(days=max(window))
    with transaction.atomic():
        for alias in ("fake", "fake2"):
            fake_pg(alias).reset()
        run_plan(plan, seat)
        with timezone.override(SEOUL):
            result = settlement.compute([Booking, CartOrder], since, until)
        expected = ledger_oracle(since, until)
        transaction.set_rollback(True)

    got = {(l.day, l.gateway, l.currency): l for l in result.lines}
    event(f"settlement lines: {min(len(got), 4)}{'+' if len(got) > 3 else ''}")
    event(f"refund rows: {min(sum(w['refund'][0] for w in expected.values()), 3)}")
    assert set(got) == set(expected)
    for key, line in got.items():
        want = expected[key]
        assert (line.payment_count, line.paid) == tuple(want["payment"]), key
        assert (line.refund_count, line.refunded) == tuple(want["refund"]), key
        assert (line.return_count, line.returned) == tuple(want["return"]), key
        assert line.net == line.paid - line.refunded
        if line.currency == "KRW":
            assert line.supply + line.vat == line.net and (line.supply, line.vat) == vat_split(line.net, "KRW")
        else:
            assert line.supply is None and line.vat is None
    for total in result.totals:
        mine = [want for (_, _, currency), want in expected.items() if currency == total.currency]
        assert total.paid == sum((w["payment"][1] for w in mine), Decimal(0))
        assert total.refunded == sum((w["refund"][1] for w in mine), Decimal(0))
        assert total.returned == sum((w["return"][1] for w in mine), Decimal(0))
        assert total.payment_count == sum(w["payment"][0] for w in mine)
        if total.currency == "KRW":
            assert (total.supply, total.vat) == vat_split(total.net, "KRW")
    for pg_total in result.gateway_totals:
        lines = [l for l in result.lines if (l.gateway, l.currency) == (pg_total.gateway, pg_total.currency)]
        assert pg_total.paid == sum(l.paid for l in lines) and pg_total.refunded == sum(l.refunded for l in lines)
