"""manage.py pgpay_reconcile against a mocked Toss (and the fake PG beside it)."""

import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_pgpay import payments
from django_pgpay.management.commands.pgpay_reconcile import parse_since
from django_pgpay.models import ReconcileState
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T
from tests.toss_support import BASE, TIMEOUT

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("pgpay_reconcile", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def past(order):
    type(order).objects.filter(pk=order.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    order.refresh_from_db()


@pytest.fixture
def more_seats(seat):
    type(seat).objects.filter(pk=seat.pk).update(remain=10)
    seat.refresh_from_db()
    return seat


def timed_out_confirm(toss_booking, toss_api, *, after):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    toss_api.fail_next("confirm", exception=TIMEOUT, after=after)
    assert payments.confirm(booking, payment_id=key, amount=booking.amount).pending
    return booking, key


def test_a_confirm_toss_approved_becomes_paid(toss_booking, toss_api):
    booking, key = timed_out_confirm(toss_booking, toss_api, after=True)
    out, err = run()
    booking.refresh_from_db()
    assert booking.status == S.PAID and err == ""
    assert f"testapp.Booking {booking.order_number} [toss]:" in out and "-> PAID" in out
    assert "reconciled 1 order(s): 1 changed, 0 unchanged, 0 error(s);" in out and "0 ledger row(s) need attention" in out
    # Looked up, not confirmed again.
    assert len(toss_api.sent("confirm")) == 1 and len(toss_api.sent("lookup")) == 1
    assert run()[0].startswith("reconciled 0 order(s)")  # idempotent


def test_a_confirm_that_never_reached_toss_is_sent_again_with_the_same_key(toss_booking, toss_api):
    booking, key = timed_out_confirm(toss_booking, toss_api, after=False)
    run()
    booking.refresh_from_db()
    assert booking.status == S.PAID
    keys = [r.headers["Idempotency-Key"] for r in toss_api.sent("confirm")]
    assert len(keys) == 2 and len(set(keys)) == 1


def test_a_confirm_toss_never_approved_expires_and_returns_the_seat(toss_booking, toss_api, seat):
    booking, key = timed_out_confirm(toss_booking, toss_api, after=False)
    toss_api.expire(key)  # Toss's 10-minute window passed
    past(booking)
    out, _ = run()
    booking.refresh_from_db()
    assert booking.status == S.EXPIRED and "-> EXPIRED" in out
    assert booking.transactions.get().status == T.FAILED
    seat.refresh_from_db()
    assert seat.remain == 3
    run()
    seat.refresh_from_db()
    assert seat.remain == 3  # returned once


def test_an_abandoned_checkout_expires_with_its_seat(toss_booking, toss_api, seat):
    booking = toss_booking()
    past(booking)
    run()
    booking.refresh_from_db()
    assert booking.status == S.EXPIRED
    assert [r.url for r in toss_api.requests] == [f"{BASE}/v1/payments/orders/{booking.order_number}"]
    seat.refresh_from_db()
    assert seat.remain == 3


def test_dry_run_calls_nothing_and_changes_nothing(toss_booking, toss_api):
    booking, key = timed_out_confirm(toss_booking, toss_api, after=True)
    before = len(toss_api.requests)
    out, _ = run("--dry-run")
    assert f"would visit testapp.Booking {booking.order_number} [toss] (READY)" in out
    assert "dry run: 1 order(s) would be visited" in out
    assert len(toss_api.requests) == before
    booking.refresh_from_db()
    assert booking.status == S.READY and booking.transactions.get().status == T.UNKNOWN


def test_a_toss_that_is_down_is_reported_not_a_crash(toss_booking, toss_api, make_booking, pg, more_seats):
    first, _ = timed_out_confirm(toss_booking, toss_api, after=True)
    second, _ = timed_out_confirm(toss_booking, toss_api, after=True)
    fake = make_booking()
    past(fake)
    toss_api.fail_next("lookup", exception=TIMEOUT)
    out, err = run()
    # One payment Toss cannot read is reported and skipped; the others of the same PG still run (issue #12, case 6).
    assert f"{first.order_number} [toss]: PG unavailable (TIMEOUT); retried later (failure 1" in err
    assert "reconciled 3 order(s): 2 changed, 0 unchanged, 1 error(s)" in out
    first.refresh_from_db()
    assert first.status == S.READY and first.transactions.get().status == T.UNKNOWN
    second.refresh_from_db()
    assert second.status == S.PAID
    fake.refresh_from_db()
    assert fake.status == S.EXPIRED  # the other gateway's orders still ran
    # The failed order backs off: the next run leaves it alone until it is due.
    assert run()[0].startswith("reconciled 0 order(s)")
    ReconcileState.objects.update(next_attempt_at=None)  # due again
    toss_api.fail_next("lookup", exception=TIMEOUT)
    with pytest.raises(CommandError):
        run("--fail-on-error")


def test_gateway_and_model_filters(toss_booking, toss_api, make_booking, more_seats):
    booking, _ = timed_out_confirm(toss_booking, toss_api, after=True)
    fake = make_booking()
    past(fake)
    out, _ = run("--gateway", "fake")
    booking.refresh_from_db()
    fake.refresh_from_db()
    assert booking.status == S.READY and fake.status == S.EXPIRED
    out, _ = run("--model", "testapp.CartOrder")
    booking.refresh_from_db()
    assert booking.status == S.READY and "reconciled 0 order(s)" in out
    with pytest.raises(CommandError):
        run("--model", "testapp.Seat")


def test_deep_since_finds_a_cancel_made_in_the_dashboard(toss_booking, toss_api, seat):
    booking = toss_booking()
    key = toss_api.authorize(booking)
    payments.confirm(booking, payment_id=key, amount=booking.amount)
    toss_api.cancel_in_dashboard(key, 5000)
    run()  # nothing open: not visited
    booking.refresh_from_db()
    assert booking.status == S.PAID
    out, _ = run("--deep-since", "1d")
    booking.refresh_from_db()
    assert booking.status == S.PARTIAL_CANCELED and booking.canceled_amount == 5000
    assert booking.transactions.get(kind=K.SYNC).amount == 5000


def test_parse_since():
    now = timezone.now()
    assert abs((now - parse_since("7d")) - datetime.timedelta(days=7)) < datetime.timedelta(seconds=5)
    assert abs((now - parse_since("12h")) - datetime.timedelta(hours=12)) < datetime.timedelta(seconds=5)
    assert parse_since("2025-01-31") == timezone.make_aware(datetime.datetime(2025, 1, 31))
    assert parse_since("2025-01-31T09:00:00+09:00") == datetime.datetime(2025, 1, 31, 0, 0, tzinfo=datetime.timezone.utc)
    for bad in ("yesterday", "7w", "2025-13-01", ""):
        with pytest.raises(CommandError):
            parse_since(bad)


@pytest.mark.parametrize("why", ["attempts", "age"])
def test_check_fails_for_a_day_after_a_webhook_delivery_is_given_up(why):
    """A delivery reconcile stopped retrying (MAX_ATTEMPTS tries, or older than RETRY_WINDOW) is listed, and --check fails for a day."""
    import time_machine

    from django_pgpay import webhooks
    from django_pgpay.models import WebhookEvent

    now = timezone.now()
    received = now - (webhooks.RETRY_WINDOW + datetime.timedelta(hours=1) if why == "age" else datetime.timedelta(hours=3))
    attempts = webhooks.MAX_ATTEMPTS if why == "attempts" else 3
    event = WebhookEvent.objects.create(
        gateway="toss", body="{}", status="failed", attempts=attempts, error="TypeError: a bug", event_type="PAYMENT_STATUS_CHANGED"
    )
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=received, attempted_at=now - datetime.timedelta(minutes=5))
    # An ordinary failed delivery still being retried, and one given up long ago, are not reported.
    WebhookEvent.objects.create(gateway="toss", body="{}", status="failed", attempts=1, attempted_at=now)
    old = WebhookEvent.objects.create(gateway="toss", body="{}", status="failed", attempts=webhooks.MAX_ATTEMPTS)
    WebhookEvent.objects.filter(pk=old.pk).update(attempted_at=now - datetime.timedelta(days=2))

    assert [e.pk for e in webhooks.given_up()] == [event.pk]
    out, err = run("--no-webhooks")
    assert "given up" not in out + err
    out, err = run()
    assert out.rstrip().endswith("; 1 webhook delivery given up")
    assert f"webhook delivery given up: #{event.pk} [toss] PAYMENT_STATUS_CHANGED order -, {attempts} attempt(s)" in err
    assert err.rstrip().endswith(": TypeError: a bug")
    with pytest.raises(CommandError, match="1 webhook delivery\\(ies\\) given up") as raised:
        run("--check")
    assert raised.value.returncode == 2
    run("--check", "--gateway", "fake")  # another PG's run is not failed by it
    with time_machine.travel(now + webhooks.GIVEN_UP_NOTICE + datetime.timedelta(minutes=10), tick=False):
        out, err = run("--check")
    assert "given up" not in out + err


def test_a_given_up_delivery_whose_content_another_delivery_applied_is_not_reported(settings):
    """The PG delivered the event again and that delivery was applied: nothing is missing, --check passes.

    A signed PG (Stripe): another delivery with the same event id was applied or
    was its duplicate. A PG whose deliveries are not signed (the fake gateway,
    as Toss and PortOne V1): another delivery about the same payment was
    applied after this one arrived (it looked the payment up at the PG then).
    """
    from django_pgpay import webhooks
    from django_pgpay.models import WebhookEvent
    from tests.stripe_support import STRIPE

    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "stripe": STRIPE}}
    now = timezone.now()

    def given_up(gateway, **fields):
        event = WebhookEvent.objects.create(gateway=gateway, body="{}", status="failed", attempts=webhooks.MAX_ATTEMPTS, **fields)
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=now - datetime.timedelta(hours=5), attempted_at=now)
        return event

    def delivered(gateway, status, *, processed_at=now, **fields):
        WebhookEvent.objects.create(
            gateway=gateway, body="{}", status=status, processed=status != "failed", processed_at=processed_at, **fields
        )

    # Stripe: evt_1 applied again; evt_2 only a duplicate, marked while the given-up delivery itself
    # was being applied (before it failed: an attack review found it hid the given-up one);
    # evt_3 only failed again, evt_4 applied under another event id for the same payment (a
    # signed id must match).
    for n in (1, 2, 3, 4):
        given_up("stripe", event_id=f"evt_{n}", payment_id=f"pi_{n}")
    delivered("stripe", "applied", event_id="evt_1")
    delivered("stripe", "duplicate", event_id="evt_2", duplicate_of=WebhookEvent.objects.get(event_id="evt_2"))
    delivered("stripe", "failed", event_id="evt_3")
    delivered("stripe", "applied", event_id="evt_other", payment_id="pi_4")
    # Unsigned: pay_1 applied after the failed delivery arrived; pay_2 applied only before it;
    # pay_3 never; a delivery without a payment id is not matched by another's blank id.
    for n in (1, 2, 3):
        given_up("fake", event_id=f"body-claim-{n}", payment_id=f"pay_{n}")
    no_payment = given_up("fake")
    delivered("fake", "applied", event_id="pay_1:paid", payment_id="pay_1")
    delivered("fake", "applied", event_id="pay_2:paid", payment_id="pay_2", processed_at=now - datetime.timedelta(hours=6))
    delivered("fake", "applied", event_id="x", payment_id="")
    # A delivery claimed by a worker and not finished has not applied anything yet.
    delivered("fake", "applied", event_id="pay_3:paid", payment_id="pay_3", processed_at=None)
    WebhookEvent.objects.filter(payment_id="pay_3", status="applied").update(processed=False)

    reported = sorted((e.gateway, e.event_id or "-") for e in webhooks.given_up())
    assert reported == [
        ("fake", "-"),
        ("fake", "body-claim-2"),
        ("fake", "body-claim-3"),
        ("stripe", "evt_2"),
        ("stripe", "evt_3"),
        ("stripe", "evt_4"),
    ]
    assert no_payment.pk in {e.pk for e in webhooks.given_up()}

    # Once each is applied by another delivery, --check passes again.
    for n in (2, 3):
        delivered("fake", "applied", event_id=f"pay_{n}:paid", payment_id=f"pay_{n}")
    delivered("stripe", "applied", event_id="evt_2")
    delivered("stripe", "applied", event_id="evt_3")
    delivered("stripe", "applied", event_id="evt_4")
    WebhookEvent.objects.filter(pk=no_payment.pk).update(status="applied", processed=True, processed_at=now)
    assert list(webhooks.given_up()) == []
    out, err = run("--check")
    assert "given up" not in out + err


@pytest.mark.parametrize("alias", ["tosss", "nope"])
def test_an_unknown_gateway_is_refused_by_name_not_a_run_that_visits_nothing(alias):
    """A typo in a cron line (``--gateway tosss``) reconciled nothing, every run, without a word."""
    with pytest.raises(CommandError, match=rf"^--gateway {alias}: no such gateway in PGPAY\[.GATEWAYS.\] \(there: fake\)"):
        run("--gateway", alias)


def test_a_negative_limit_is_refused_not_a_run_that_skips_the_last_order(toss_booking):
    """``--limit -1`` (read as "no limit") visited every order but the last one, every run."""
    with pytest.raises(CommandError, match="--limit"):
        run("--limit", "-1")


def test_order_models_lists_a_repeated_model_once_in_the_order_given():
    from django_pgpay.orders import order_models
    from tests.testapp.models import Booking, CartOrder

    named = ["testapp.CartOrder", "testapp.Booking", Booking, "testapp.booking", "testapp.cartorder"]
    assert order_models(named) == [CartOrder, Booking]
    assert order_models([]) == []


def test_a_repeated_model_is_visited_once(toss_booking, toss_api):
    """``--model testapp.Booking --model testapp.Booking`` visited (and would reconcile) every order twice."""
    booking, _ = timed_out_confirm(toss_booking, toss_api, after=True)
    out, _ = run("--dry-run", "--model", "testapp.Booking", "--model", "testapp.booking")
    assert out.count(f"would visit testapp.Booking {booking.order_number}") == 1
    assert "dry run: 1 order(s) would be visited" in out
    out, _ = run("--model", "testapp.Booking", "--model", "testapp.Booking")
    assert "reconciled 1 order(s): 1 changed" in out and len(toss_api.sent("lookup")) == 1


@pytest.mark.parametrize("when", ["2062-01-01", "2062-01-01T09:00"])
def test_a_deep_since_in_the_future_is_refused_not_a_run_without_the_deep_pass(when):
    """A mistyped year (2062 for 2026) turned the deep run off without a word: no order was modified since then."""
    with pytest.raises(CommandError, match=rf"^--deep-since '{when}': is after now \("):
        run("--deep-since", when)


def test_a_deep_since_a_minute_ahead_is_refused_and_today_is_not():
    import time_machine

    with time_machine.travel(datetime.datetime(2026, 3, 5, 12, 0, tzinfo=datetime.timezone.utc), tick=False):
        with pytest.raises(CommandError, match="is after now"):
            parse_since("2026-03-05T21:01")  # Seoul: a minute from now
        assert parse_since("2026-03-05T21:00") == timezone.now()
        assert parse_since("2026-03-05") == timezone.make_aware(datetime.datetime(2026, 3, 5))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--deep-since", ""), r"^--deep-since '': use 7d, 12h, 30m, a date"),
        (("--gateway", ""), r"^--gateway '': no such gateway"),
        (("--gateway", "fake", "--gateway", " "), r"^--gateway ' ': no such gateway"),
        (("--model", ""), r"^--model '': give APP.MODEL"),
    ],
)
def test_an_option_given_without_a_value_is_refused(args, message):
    """``--deep-since "$SINCE"`` with the variable unset ran without the deep pass, without a word."""
    with pytest.raises(CommandError, match=message):
        run(*args)
