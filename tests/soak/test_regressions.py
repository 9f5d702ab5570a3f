"""Issue #12: the money cases an outside fault run found, each replayed through the sandbox over HTTP.

Each test fails on the code before the fix (the money stayed at the PG, or the
order ended wrong) and checks every invariant of DESIGN.md afterwards with
:meth:`World.check`, against the sandbox's records.
"""

from decimal import Decimal

import pytest

from django_pgpay.sandbox import control
from django_pgpay.status import OrderStatus as S
from tests.testapp.models import Booking


def order_of(checkout):
    return Booking.objects.get(pk=checkout.order_pk)


def test_case_1_portone_two_tabs_the_second_payment_is_refunded_though_its_only_webhook_failed(world):
    """Two tabs pay one order at PortOne V1; the second payment's only webhook is answered 503 once."""
    tab1 = world.checkout(0, "portone")
    tab2 = world.checkout(0, "portone")
    assert tab2.order_number == tab1.order_number  # the same READY order, a second window
    first = world.pay(tab1)
    assert world.come_back(0, tab1, first).status_code == 200
    world.deliver()
    second = world.pay(tab2)
    control.arm_fault("portone", "lookup", "error_before", match=second.payment_id)  # the shop cannot read it once: 503
    world.deliver()
    assert order_of(tab1).status == S.PAID
    world.reconcile()
    assert not world.check(), world.check()
    held = {p["payment_id"]: p["held"] for p in world.at_pg(tab1.order_number)}
    assert held == {first.payment_id: Decimal(20000), second.payment_id: 0}


def test_case_1_portone_first_tab_declined_second_paid_the_order_ends_paid(world):
    """Tab 1 declined, tab 2 paid, its webhook lost: the order must end PAID, never FAILED with money at PortOne."""
    tab1 = world.checkout(0, "portone")
    tab2 = world.checkout(0, "portone")
    control.arm_fault("portone", "webhook", "drop", times=5)
    paid = world.pay(tab2)  # tab 2 pays first; its only webhook is lost
    world.deliver()
    declined = world.pay(tab1, outcome="decline")  # then tab 1's card is declined: the latest attempt
    world.come_back(0, tab1, declined)
    world.reconcile(deep=True)
    order = order_of(tab2)
    assert order.status == S.PAID and order.pg_payment_id == paid.payment_id
    assert not world.check(), world.check()


def test_case_2_a_reversed_toss_deposit_takes_the_order_out_of_paid(world):
    """Toss moves a deposited account DONE -> WAITING_FOR_DEPOSIT: the order follows, then expires at the deadline."""
    checkout = world.checkout(0, "toss")
    account = world.pay(checkout, account=True)
    assert world.come_back(0, checkout, account).status_code == 200
    assert order_of(checkout).status == S.WAITING_FOR_DEPOSIT
    assert world.deposit(account)
    world.deliver()
    assert order_of(checkout).status == S.PAID
    assert world.reverse_deposit(account)
    world.deliver()
    order = order_of(checkout)
    assert order.status == S.WAITING_FOR_DEPOSIT
    assert list(order.transactions.filter(kind__in=("confirm", "reversal")).values_list("kind", "status")) == [
        ("confirm", "waiting"),
        ("reversal", "succeeded"),
    ]
    world.reconcile(deep=True)
    assert order_of(checkout).status == S.WAITING_FOR_DEPOSIT and not world.check(), world.check()
    world.time_passes(minutes=60 * 24 * 8)  # past the account's deadline
    world.reconcile()
    assert order_of(checkout).status == S.EXPIRED
    assert not world.check(), world.check()


@pytest.mark.parametrize("alias", ["portone", "bootpay"])
def test_case_3_a_deposit_the_library_cannot_refund_needs_attention_never_silence(world, alias):
    """An account issued for an order that expired, which the PG will not let us close, then paid into:
    the refund needs the buyer's bank account, so the row needs attention, a signal goes out and --check fails."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from django_pgpay.signals import payment_needs_attention

    checkout = world.checkout(0, alias)
    world.time_passes(minutes=31)
    world.reconcile()
    assert order_of(checkout).status == S.EXPIRED
    control.arm_fault(alias, "cancel", "error_before", times=20)  # the PG will not close the account
    account = world.pay(checkout, account=True, separately=False)
    world.deliver()
    control.clear_faults()
    seen = []
    receiver = lambda **kw: seen.append((kw["order"].order_number, kw["transaction"].kind))  # noqa: E731
    payment_needs_attention.connect(receiver)
    try:
        assert world.deposit(account)
        world.deliver()
        world.reconcile()
    finally:
        payment_needs_attention.disconnect(receiver)
    order = order_of(checkout)
    rows = order.transactions.filter(status="attention")
    assert order.status == S.EXPIRED and rows.count() == 1 and rows.get().pg_payment_id == account.payment_id
    assert seen == [(checkout.order_number, "compensate")]
    assert not world.check(), world.check()
    with pytest.raises(CommandError) as info:
        call_command("pgpay_reconcile", "--check", stdout=__import__("io").StringIO(), stderr=__import__("io").StringIO())
    assert info.value.returncode == 2


@pytest.mark.parametrize("alias", ["portone", "bootpay"])
def test_case_3_an_order_that_gives_up_has_its_unpaid_account_withdrawn(world, alias):
    """Withdrawing the account of an order that expired costs nothing: no deposit can arrive after it."""
    checkout = world.checkout(0, alias)
    world.time_passes(minutes=31)
    world.reconcile()
    account = world.pay(checkout, account=True, separately=False)
    world.deliver()
    order = order_of(checkout)
    assert order.status == S.EXPIRED and order.transactions.filter(kind="withdraw", status="succeeded").count() == 1
    assert not any(p["account"] for p in world.at_pg(checkout.order_number))
    assert not world.deposit(account)  # the bank refuses: the account is closed
    assert not world.check(), world.check()


def test_case_4_bootpay_paid_in_the_window_browser_gone_webhook_lost_is_found_by_reconcile(world):
    """Bootpay approves in the window (no separate approval), the buyer closes it, every webhook is lost:
    the window's report of the receipt id lets reconcile find the money instead of expiring the order."""
    checkout = world.checkout(0, "bootpay")
    control.arm_fault("bootpay", "webhook", "drop", times=20)
    attempt = world.pay(checkout, separately=False)
    assert world.beacon(checkout, attempt) == 204
    world.deliver()
    world.time_passes(minutes=31)
    world.reconcile()
    order = order_of(checkout)
    assert order.status == S.PAID and order.pg_payment_id == attempt.payment_id
    assert not world.check(), world.check()


def test_case_5_stripe_refund_event_first_leaves_no_row_open_and_refunds_work(world):
    """Stripe: the order is first paid through a PaymentIntent lookup (charge.refunded before
    checkout.session.completed); the Session's confirm row must not stay unknown and block refunds."""
    from django_pgpay import payments

    checkout = world.checkout(0, "stripe")
    attempt = world.pay(checkout)
    control.arm_fault("stripe", "lookup", "timeout_after", delay=2.2)
    assert world.come_back(0, checkout, attempt).status_code == 202  # the answer was lost: pending
    assert world.pg_cancel(attempt, 5000)  # refunded in Stripe's dashboard meanwhile
    assert [r.event_type for r in world.deliver_only("charge.refunded")] == ["charge.refunded"]  # before the Session's event
    world.reconcile()
    world.deliver()
    world.reconcile()
    order = order_of(checkout)
    assert order.status == S.PARTIAL_CANCELED and not order.transactions.filter(status__in=("pending", "unknown")).exists()
    payments.cancel(order, payments.FULL, reason="rest", source="staff", actor=world.staff)
    assert order_of(checkout).status == S.CANCELED
    world.deliver()
    assert not world.check(), world.check()


def test_case_6_one_unreadable_payment_does_not_stop_reconcile_for_its_gateway(world):
    first = world.checkout(0, "toss")
    second = world.checkout(1, "toss")
    world.pay(first)
    world.time_passes(minutes=31)
    control.arm_fault("toss", "lookup", "error_before", times=50, match=first.order_number)
    out = world.reconcile()
    assert f"{first.order_number} [toss]" in out and "retried later" in out
    assert order_of(second).status == S.EXPIRED  # the orders after it still ran
    assert order_of(first).status == S.READY
    control.clear_faults()
    world.reconcile()
    assert order_of(first).status == S.EXPIRED and not world.check(), world.check()


@pytest.mark.parametrize("alias", ["toss", "portone", "portone-v2", "bootpay"])
def test_case_7_an_unpaid_account_past_its_deadline_expires_and_gives_the_place_back(world, alias):
    checkout = world.checkout(0, alias)
    account = world.pay(checkout, account=True)
    world.come_back(0, checkout, account)
    world.deliver()
    assert order_of(checkout).status == S.WAITING_FOR_DEPOSIT
    world.time_passes(minutes=60 * 24 * 8)  # PortOne V1, V2 and Bootpay keep the account "ready" for ever
    world.reconcile()
    order = order_of(checkout)
    assert order.status == S.EXPIRED and order.transactions.get(kind="confirm").status == "failed"
    assert not any(p["account"] for p in world.at_pg(checkout.order_number))
    assert not world.check(), world.check()


def test_case_8_a_withdrawn_account_is_no_refund_and_has_no_invoice(world):
    checkout = world.checkout(0, "portone-v2")
    account = world.pay(checkout, account=True)
    world.come_back(0, checkout, account)
    response = world.buyer_cancel(0, checkout.order_number, None)
    assert response.status_code == 302
    order = order_of(checkout)
    assert order.status == S.EXPIRED and order.canceled_amount == 0 and not order.is_paid
    assert not order.transactions.filter(kind__in=("cancel", "sync", "compensate")).exists()
    assert not order.transactions.filter(kind="confirm", status="succeeded").exists()
    invoice = world.sessions[0].get(f"{world.base}/pay/invoice/{checkout.order_number}/", timeout=30)
    assert invoice.status_code == 409
    assert not world.check(), world.check()


def test_case_9_a_declined_attempt_does_not_fail_an_order_whose_buyer_is_still_paying(world):
    checkout = world.checkout(0, "portone")
    world.pay(checkout, outcome="decline")  # the buyer's first card is declined in the window
    world.reconcile(deep=True)  # the nightly run comes by meanwhile
    assert order_of(checkout).status == S.READY
    retry = world.pay(checkout)  # the buyer tries another card in the same window
    assert world.come_back(0, checkout, retry).status_code == 200
    world.deliver()
    world.reconcile(deep=True)
    order = order_of(checkout)
    assert order.status == S.PAID and order.pg_payment_id == retry.payment_id
    assert not world.check(), world.check()


def test_case_10_a_refusal_toss_documents_is_a_refusal_not_an_unknown_outcome(world):
    """Two partial refunds within a second: Toss refuses the second (FORBIDDEN_CONSECUTIVE_REQUEST)."""
    import time

    from django_pgpay import payments
    from django_pgpay.exceptions import RetryLater

    checkout = world.checkout(0, "toss")
    attempt = world.pay(checkout)
    world.come_back(0, checkout, attempt)
    order = order_of(checkout)
    payments.cancel(order, 1000, reason="첫 번째", source="staff", actor=world.staff)
    with pytest.raises(RetryLater):
        payments.cancel(order, 1000, reason="두 번째", source="staff", actor=world.staff)
    assert not order.transactions.filter(status__in=("pending", "unknown")).exists()
    time.sleep(1.1)
    payments.cancel(order, 1000, reason="다시", source="staff", actor=world.staff)  # no "in progress" wall
    assert order_of(checkout).canceled_amount == 2000
    world.deliver()
    assert not world.check(), world.check()


def test_a_bug_in_the_shops_gateway_code_fails_the_only_webhook_then_it_is_applied_once_fixed(world):
    """PortOne V1 sends a webhook once: a dashboard cancel's delivery meets a bug in the shop's code (TypeError).

    It must be a failed attempt, not retried at every reconcile while the bug
    is there (backoff), and applied by reconciliation once the bug is fixed.
    """
    from io import StringIO

    from django.core.management import call_command

    from django_pgpay.models import WebhookEvent

    def cron():  # pgpay_reconcile as cron runs it (World.reconcile also clears backoffs)
        call_command("pgpay_reconcile", stdout=StringIO(), stderr=StringIO())

    checkout = world.checkout(0, "portone")
    paid = world.pay(checkout)
    assert world.come_back(0, checkout, paid).status_code == 200
    world.deliver()
    assert order_of(checkout).status == S.PAID
    seen = set(WebhookEvent.objects.values_list("pk", flat=True))
    world.gateway_bug("portone", 20)
    assert world.pg_cancel(paid)
    world.deliver()
    (event,) = WebhookEvent.objects.exclude(pk__in=seen)
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 1)
    for _ in range(3):  # cron runs again and again while the bug is there: the delivery waits its backoff
        cron()
    event.refresh_from_db()
    assert event.attempts == 1 and world.bug_hits == 1
    world.time_passes(minutes=2)
    cron()
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 2)
    assert [e.pk for e in world.failed_by_bugs()] == [event.pk]
    assert any("failed by a bug now fixed was not tried again" in p for p in world.check())
    world.fix_bugs()
    world.time_passes(minutes=3)
    cron()
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("applied", 3)
    assert order_of(checkout).status == S.CANCELED
    assert not world.check(), world.check()


# --- attack review of 7 December 2026 (races, helper, report-only) ------------------------------


def _run_together(n, target):
    from tests.test_concurrency import run_together  # threads released at the same instant

    return run_together(n, target)


@pytest.mark.parametrize("alias", ["toss", "portone", "portone-v2", "bootpay"])
def test_a_slow_account_issued_answer_after_the_deposit_is_no_reversal(world, alias):
    """The PG issued the account at once but its answer reached the shop 0.8 s later, after the deposit
    had paid the order: the late "awaiting deposit" was taken for a bank's reversal (PAID back to
    WAITING_FOR_DEPOSIT, a made-up reversal row), and once repaired the order was announced paid twice."""
    import time

    from django_pgpay.sandbox import control
    from django_pgpay.signals import payment_confirmed

    confirmed = []

    def receiver(**kwargs):
        confirmed.append(kwargs["order"].order_number)

    payment_confirmed.connect(receiver)
    try:
        checkout = world.checkout(0, alias)
        account = world.pay(checkout, account=True)
        op = "confirm" if alias in ("toss", "bootpay") else "lookup"
        control.arm_fault(alias, op, "timeout_after", delay=0.8, match=account.payment_id)

        def act(i):
            if i == 0:
                return world.come_back(0, checkout, account).status_code
            time.sleep(0.3)
            deposited = world.deposit(account)  # the buyer's bank transfer, while the answer is on its way
            world.deliver()
            world.reconcile()
            return deposited

        results = _run_together(2, act)
        assert results[1] is True, results
        world.deliver()
        world.reconcile()
        order = order_of(checkout)
        rows = list(order.transactions.values_list("kind", "status"))
        assert order.status == S.PAID, (order.status, rows)
        assert not order.transactions.filter(kind="reversal").exists(), rows
        world.reconcile(deep=True)
        assert confirmed == [checkout.order_number], confirmed  # one payment, announced once
    finally:
        payment_confirmed.disconnect(receiver)
    assert not world.check()


def _paid(world, alias):
    checkout = world.checkout(0, alias)
    attempt = world.pay(checkout)
    assert world.come_back(0, checkout, attempt).status_code == 200
    world.deliver()
    assert order_of(checkout).status == S.PAID
    return checkout


@pytest.mark.parametrize("alias", ["stripe", "toss"])
def test_a_cancel_slower_than_in_flight_timeout_is_recorded_when_the_pg_says_it_succeeded(world, alias, settings, monkeypatch):
    """Reconciliation failed a cancel still on its way (IN_FLIGHT_TIMEOUT 1 s, the call 1.5 s), then the
    PG refunded and said so, and Stripe's answer (no payment in it) was dropped: PAID, 0 cancelled,
    Stripe holding 10,000 of 15,000, and "nothing more was cancelled" on the staff's screen."""
    import time

    from django_pgpay import payments

    settings.PGPAY = {**settings.PGPAY, "IN_FLIGHT_TIMEOUT": 1}
    checkout = _paid(world, alias)
    gateway_class = type(order_of(checkout).get_gateway())
    original = gateway_class.cancel

    def slow_cancel(self, request):
        time.sleep(1.5)  # a congested network: the request reaches the PG late
        return original(self, request)

    monkeypatch.setattr(gateway_class, "cancel", slow_cancel)

    def act(i):
        if i == 0:
            return payments.cancel(order_of(checkout), "5000", reason="staff", source="staff", actor=world.staff)
        time.sleep(1.2)
        return world.reconcile()

    outcome, _ = _run_together(2, act)
    assert not isinstance(outcome, BaseException), outcome
    order = order_of(checkout)
    held = sum(p["held"] for p in world.at_pg(checkout.order_number))
    rows = list(order.transactions.values_list("kind", "status", "amount", "error_code"))
    assert order.amount - order.canceled_amount == held, (order.status, order.canceled_amount, held, rows)
    assert order.status == S.PARTIAL_CANCELED and not outcome.replayed
    assert order.transactions.filter(kind__in=("cancel", "sync"), status="succeeded").count() == 1, rows


@pytest.mark.parametrize("alias", ["toss", "stripe", "portone", "bootpay"])
def test_a_cancel_whose_own_webhook_lands_first_is_not_reported_as_a_replay(world, alias):
    """The webhook settled the row before the PG's answer came back: the view told the person who
    just cancelled "This cancellation was already processed; nothing more was cancelled"."""
    import time

    from django_pgpay import payments
    from django_pgpay.sandbox import control

    checkout = _paid(world, alias)
    control.arm_fault(alias, "cancel", "timeout_after", delay=1.0)

    def act(i):
        if i == 0:
            return payments.cancel(order_of(checkout), "5000", reason="staff", source="staff", actor=world.staff)
        time.sleep(0.4)
        world.deliver()
        return None

    outcome, _ = _run_together(2, act)
    assert not isinstance(outcome, BaseException), outcome
    assert not outcome.replayed and outcome.order.canceled_amount == 5000
    assert not world.check()


# --- a review of this session's own fixes (7 December 2026, helper, report-only) ----------------


def test_a_bank_reversal_whose_second_lookup_fails_is_delivered_again_not_lost(world, monkeypatch):
    """The second lookup that confirms a reversal failed once: the delivery was stored as applied and
    answered 200, so Toss never sent it again and a plain reconcile never looked; the order stayed PAID."""
    import inspect

    from django_pgpay.exceptions import GatewayUnavailable
    from django_pgpay.models import WebhookEvent

    checkout = world.checkout(0, "toss")
    account = world.pay(checkout, account=True)
    assert world.come_back(0, checkout, account).status_code == 200
    assert world.deposit(account)
    world.deliver()
    assert order_of(checkout).status == S.PAID
    from django_pgpay.gateways.toss import TossGateway

    real_lookup = TossGateway.lookup
    failed = []

    def lookup(self, *args, **kwargs):
        # The delivery's own verification reads the payment (WAITING_FOR_DEPOSIT); the second
        # lookup, made by bookkeeping.apply to confirm the reversal, fails once.
        if any(frame.function == "apply" for frame in inspect.stack()[1:3]) and not failed:
            failed.append(1)
            raise GatewayUnavailable("toss: 503 once", gateway="toss")
        return real_lookup(self, *args, **kwargs)

    monkeypatch.setattr(TossGateway, "lookup", lookup)
    assert world.reverse_deposit(account)
    world.deliver()
    monkeypatch.setattr(TossGateway, "lookup", real_lookup)
    assert failed
    world.deliver()
    world.reconcile()  # the cron's plain run, not --deep-since
    assert order_of(checkout).status == S.WAITING_FOR_DEPOSIT
    # The delivery was answered 503 (the PG delivers it again), and a delivery of it applied since.
    assert WebhookEvent.objects.filter(order_number=checkout.order_number, status="applied", event_type__contains="STATUS").exists()


@pytest.mark.parametrize("alias", ["bootpay", "toss"])
def test_a_slow_cancel_recorded_by_reconciliation_meanwhile_is_counted_once(world, monkeypatch, alias):
    """A cancel slower than IN_FLIGHT_TIMEOUT: reconciliation failed its row, then recorded the PG's cancel
    as a sync row (Bootpay reports totals only, no id), then the answer came and the row was finished too:
    10,000 counted for a 5,000 cancel."""
    from django_pgpay import payments

    checkout = _paid(world, alias)
    gateway_class = type(order_of(checkout).get_gateway())
    real = gateway_class.cancel

    def slow_cancel(self, request):
        payments.reconcile(order_of(checkout))  # nothing at the PG yet: the row fails (IN_FLIGHT_TIMEOUT 0)
        reply = real(self, request)
        payments.reconcile(order_of(checkout), deep=True)  # the PG's cancel found before its answer came back
        return reply

    monkeypatch.setattr(gateway_class, "cancel", slow_cancel)
    payments.cancel(order_of(checkout), "5000", reason="one item", source="staff")
    monkeypatch.setattr(gateway_class, "cancel", real)
    order = order_of(checkout)
    assert order.canceled_amount == 5000, list(order.transactions.values_list("kind", "status", "amount", "error_code"))
    assert not world.check()


def _toss_account_paid_with_prompt_webhooks(world):
    """A Toss virtual account whose issue webhooks arrive at once (the usual order), then deposited."""
    checkout = world.checkout(0, "toss")
    account = world.pay(checkout, account=True)
    assert world.come_back(0, checkout, account).status_code == 200
    world.deliver()
    assert order_of(checkout).status == S.WAITING_FOR_DEPOSIT
    assert world.deposit(account)
    world.deliver()
    assert order_of(checkout).status == S.PAID
    return checkout, account


def test_a_reversal_back_to_a_state_already_reported_is_not_taken_for_a_duplicate_webhook(world):
    """Attack review (Toss): WAITING -> DONE -> WAITING repeated the first WAITING's state, and its
    deliveries were filed as duplicates: the order stayed PAID with nothing held at the PG."""
    checkout, account = _toss_account_paid_with_prompt_webhooks(world)
    assert world.reverse_deposit(account)
    world.deliver()
    world.reconcile()  # the ordinary cron: it does not visit a PAID order without open rows
    assert order_of(checkout).status == S.WAITING_FOR_DEPOSIT
    assert not world.check(), world.check()


def test_a_second_deposit_after_a_reversal_is_applied(world):
    """... and the buyer's deposit made again after the reversal was a duplicate of the first DONE."""
    checkout, account = _toss_account_paid_with_prompt_webhooks(world)
    assert world.reverse_deposit(account)
    world.deliver()
    world.reconcile(deep=True)
    assert order_of(checkout).status == S.WAITING_FOR_DEPOSIT
    assert world.deposit(account)
    world.deliver()
    assert order_of(checkout).status == S.PAID
    assert not world.check(), world.check()
