"""The PG-neutral lifecycle (django_pgpay.sandbox.lifecycle): cancels, refund accounts, deadlines; no database."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest

from django_pgpay.sandbox import lifecycle
from django_pgpay.sandbox.lifecycle import Ledger, RefundFields, Refusal, Refused, Stage, plan_cancel

FIELDS = RefundFields(bank="bank", number="accountNumber", holder="holderName")
ACCOUNT = {"bank": "신한", "accountNumber": "12345678901", "holderName": "홍길동"}
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=dt_timezone.utc)


def refused(ledger, amount=None, **kwargs) -> Refusal:
    with pytest.raises(Refused) as caught:
        plan_cancel(ledger, amount, **kwargs)
    return caught.value.refusal


def test_a_paid_payment_cancels_in_parts_up_to_its_balance():
    paid = Ledger(amount=10000, canceled=3000, stage=Stage.PAID)
    plan = plan_cancel(paid, 2000)
    assert (plan.amount, plan.left, plan.full, plan.refunds_by_transfer) == (2000, 5000, False, False)
    assert plan_cancel(paid).amount == 7000 and plan_cancel(paid).full
    assert refused(paid, 7001) is Refusal.OVER_BALANCE
    assert refused(paid, 0) is Refusal.INVALID_AMOUNT
    assert refused(paid, Decimal("0.5")) is Refusal.INVALID_AMOUNT  # KRW has no minor unit
    assert plan_cancel(Ledger(amount=Decimal("10.50"), canceled=0, stage=Stage.PAID, fractional=True), Decimal("0.5")).left == 10


def test_the_refusals_come_in_one_order_for_every_pg():
    assert refused(Ledger(amount=1000, canceled=1000, stage=Stage.CANCELED)) is Refusal.ALREADY_CANCELED
    assert refused(Ledger(amount=1000, canceled=0, stage=Stage.PENDING)) is Refusal.NOT_CANCELABLE
    assert refused(Ledger(amount=1000, canceled=0, stage=Stage.CLOSED)) is Refusal.NOT_CANCELABLE
    paid = Ledger(amount=1000, canceled=0, stage=Stage.PAID)
    # The caller's expected balance is checked before the amount: on a mismatch nothing runs.
    assert refused(paid, 5000, expected_balance=900) is Refusal.BALANCE_MISMATCH
    assert plan_cancel(paid, 500, expected_balance=1000).left == 500
    assert refused(Ledger(amount=1000, canceled=0, stage=Stage.PAID, partial_cancelable=False), 500) is Refusal.PARTIAL_NOT_ALLOWED


def test_an_unpaid_virtual_account_is_withdrawn_in_full_only_and_needs_no_account():
    issued = Ledger(amount=30000, canceled=0, stage=Stage.AWAITING_DEPOSIT, virtual_account=True)
    assert refused(issued, 10000) is Refusal.PARTIAL_UNPAID_ACCOUNT
    plan = plan_cancel(issued, refund_fields=FIELDS)
    assert plan.closes_unpaid_account and not plan.refunds_by_transfer and plan.refund_account is None


def test_a_deposited_virtual_account_is_refunded_to_an_account_the_shop_names():
    deposited = Ledger(amount=30000, canceled=0, stage=Stage.PAID, virtual_account=True)
    assert refused(deposited, 10000, refund_fields=FIELDS) is Refusal.REFUND_ACCOUNT_REQUIRED
    bad = {**ACCOUNT, "accountNumber": "123-456"}
    assert refused(deposited, 10000, refund_account=bad, refund_fields=FIELDS) is Refusal.REFUND_ACCOUNT_INVALID
    plan = plan_cancel(deposited, 10000, refund_account=ACCOUNT, refund_fields=FIELDS)
    assert plan.refunds_by_transfer and plan.refund_account.number == "12345678901"
    assert "12345678901" not in repr(plan.refund_account)  # never in logs
    # The PG's own staff, or an account already on file, need none.
    assert plan_cancel(deposited, 10000, refund_fields=FIELDS, by_pg=True).refund_account is None
    on_file = Ledger(amount=30000, canceled=0, stage=Stage.PAID, virtual_account=True, refund_account_on_file=True)
    assert plan_cancel(on_file, 10000, refund_fields=FIELDS).left == 20000


def test_refund_fields_say_how_strict_a_pg_is():
    bootpay = RefundFields(bank="bank_code", number="bank_account", holder="bank_username", bank_code_length=3)
    assert lifecycle.read_refund_account({"bank_code": "004", "bank_account": "123", "bank_username": "김"}, bootpay).bank == "004"
    with pytest.raises(Refused):
        lifecycle.read_refund_account({"bank_code": "KB", "bank_account": "123", "bank_username": "김"}, bootpay)
    lenient = RefundFields(bank="refund_bank", number="refund_account", holder="refund_holder", digits_only=False)
    account = lifecycle.read_refund_account({"refund_bank": "88", "refund_account": 110123456789, "refund_holder": "홍"}, lenient)
    assert account.number == "110123456789"  # a JSON number is taken as its digits


def test_deposit_deadlines():
    session = {"dueDate": (NOW + timedelta(hours=1)).isoformat()}
    lifecycle.defer_deposit(session, None)
    lifecycle.start_deposit_clock(session, NOW)
    assert lifecycle.deposit_at(session) is None and not lifecycle.deposit_has_come(session, NOW + timedelta(days=1))
    lifecycle.defer_deposit(session, 60)
    lifecycle.start_deposit_clock(session, NOW)
    assert lifecycle.deposit_at(session) == NOW + timedelta(seconds=60)
    assert not lifecycle.deposit_has_come(session, NOW + timedelta(seconds=59))
    assert lifecycle.deposit_has_come(session, NOW + timedelta(seconds=60))
    assert not lifecycle.deadline_passed(session, NOW + timedelta(hours=1))
    assert lifecycle.deadline_passed(session, NOW + timedelta(hours=1, seconds=1))
    late = {"dueDate": NOW.isoformat(), "depositAt": (NOW + timedelta(seconds=1)).isoformat()}
    assert not lifecycle.deposit_has_come(late, NOW + timedelta(hours=1))  # after the deadline: never arrives
    lifecycle.clear_deposit(session)
    assert "depositAt" not in session and "depositAfter" not in session
    assert lifecycle.next_due(None, NOW, NOW - timedelta(1)) == NOW - timedelta(1) and lifecycle.next_due(None) is None
