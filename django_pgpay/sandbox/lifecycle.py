"""The payment lifecycle every emulated PG shares, in no PG's words.

What a cancel may do, for how much, and what a virtual account's deadlines
say, is the same at Toss, PortOne and Bootpay; only the wire differs. An
emulator describes a payment as a :class:`Ledger`, asks this module, and
either gets a plan or a :class:`Refused` carrying a neutral :class:`Refusal`,
which it turns into its own wire code through its table
(:attr:`~.base.SandboxPG.refusals`; :meth:`~.base.SandboxPG.serve` does it for
a refusal that escapes a handler).

The API::

    ledger = Ledger(amount=10000, canceled=0, stage=Stage.PAID, virtual_account=True)
    plan = plan_cancel(ledger, 3000, expected_balance=None,
                       refund_account=raw, refund_fields=TOSS_REFUND_FIELDS)
    plan.amount, plan.left, plan.full, plan.refunds_by_transfer, plan.refund_account

    read_refund_account(raw, fields)      -> RefundAccount (or Refused)

    # deadlines of a virtual account, kept in a payment's private ``session``
    defer_deposit(session, seconds)       # the buyer chose "deposit in N s"
    start_deposit_clock(session, now)     # the account was issued
    deposit_has_come(session, now)        # the scheduled transfer is due (before the deadline)
    deadline_passed(session, now)         # the account expired unpaid
    clear_deposit(session)
    next_due(*moments)                    # the earliest of the given times (None ignored)

A refusal's order is fixed here, one order for every PG: already cancelled,
not cancellable, the caller's expected balance (PortOne's ``checksum``, Toss's
``refundableAmount``: on a mismatch nothing runs), a bad amount, over the
balance, a partial cancel of an unpaid virtual account, a partial cancel the
payment forbids, the refund account of a deposited virtual account.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils.dateparse import parse_datetime

Money = int | Decimal


class Stage(enum.Enum):
    """Where a payment stands, whatever its PG calls it."""

    #: Not paid yet and not an issued account (window open, authenticated, not confirmed).
    PENDING = "pending"
    #: A virtual account issued, the buyer's transfer not arrived.
    AWAITING_DEPOSIT = "awaiting_deposit"
    #: Money taken (possibly partly given back).
    PAID = "paid"
    #: Given back in full (or an unpaid account withdrawn).
    CANCELED = "canceled"
    #: Ended without money: failed, aborted, expired.
    CLOSED = "closed"


class Refusal(enum.Enum):
    """Why the lifecycle refuses a change; each PG maps these to its own wire codes."""

    ALREADY_CANCELED = "already_canceled"
    NOT_CANCELABLE = "not_cancelable"
    BALANCE_MISMATCH = "balance_mismatch"
    INVALID_AMOUNT = "invalid_amount"
    OVER_BALANCE = "over_balance"
    PARTIAL_UNPAID_ACCOUNT = "partial_unpaid_account"
    PARTIAL_NOT_ALLOWED = "partial_not_allowed"
    REFUND_ACCOUNT_REQUIRED = "refund_account_required"
    REFUND_ACCOUNT_INVALID = "refund_account_invalid"


class Refused(Exception):
    """A change the lifecycle refuses; nothing was changed. ``detail`` is for logs and messages."""

    def __init__(self, refusal: Refusal, detail: str = ""):
        self.refusal = refusal
        self.detail = detail
        super().__init__(f"{refusal.value}: {detail}" if detail else refusal.value)


@dataclass(frozen=True)
class Ledger:
    """The money of one payment as the lifecycle sees it."""

    amount: Money
    canceled: Money
    stage: Stage
    virtual_account: bool = False
    #: False when the PG (or the card) does not allow a partial cancel.
    partial_cancelable: bool = True
    #: A refund account the PG already holds for this payment (given when the account was issued).
    refund_account_on_file: bool = False
    #: False for a currency without minor units (KRW): a fractional amount is refused.
    fractional: bool = False

    @property
    def balance(self) -> Money:
        return self.amount - self.canceled


@dataclass(frozen=True)
class RefundAccount:
    """The bank account a deposited virtual account's money goes back to (no PG's key names)."""

    bank: str
    number: str = field(repr=False)
    holder: str = field(repr=False)
    phone: str = field(default="", repr=False)


@dataclass(frozen=True)
class RefundFields:
    """Where a PG's request carries a refund account, and how strict the PG is about it."""

    bank: str
    number: str
    holder: str
    phone: str = ""
    #: The account number must be digits only (at most 20).
    digits_only: bool = True
    #: The bank must be a numeric code of this length (Bootpay: 3); 0 = any non-empty text.
    bank_code_length: int = 0


@dataclass(frozen=True)
class CancelPlan:
    """What a permitted cancel does: the emulator writes it in its PG's shape."""

    amount: Money
    left: Money
    #: Nothing left afterwards.
    full: bool
    #: A deposited virtual account: the money goes back by bank transfer.
    refunds_by_transfer: bool
    #: An issued, unpaid account is withdrawn (nothing was paid, nothing goes back).
    closes_unpaid_account: bool
    refund_account: RefundAccount | None = None


def _text(value: Any) -> Any:
    """A number given where text is expected (an account number sent as a JSON number) as its digits."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def read_refund_account(raw: Any, fields: RefundFields) -> RefundAccount:
    """The refund account in ``raw`` (a dict with the PG's key names), or :class:`Refused`."""
    if not isinstance(raw, dict) or not any(raw.get(name) for name in (fields.bank, fields.number, fields.holder)):
        raise Refused(Refusal.REFUND_ACCOUNT_REQUIRED)
    bank, number, holder = (_text(raw.get(name)) for name in (fields.bank, fields.number, fields.holder))
    texts = all(isinstance(value, str) and value.strip() for value in (bank, number, holder))
    if not texts:
        raise Refused(Refusal.REFUND_ACCOUNT_INVALID, "bank, number and holder are required")
    if fields.digits_only and not (number.isdigit() and len(number) <= 20):
        raise Refused(Refusal.REFUND_ACCOUNT_INVALID, "the account number is digits only")
    if fields.bank_code_length and not (bank.isdigit() and len(bank) == fields.bank_code_length):
        raise Refused(Refusal.REFUND_ACCOUNT_INVALID, f"the bank is a {fields.bank_code_length}-digit code")
    phone = raw.get(fields.phone) if fields.phone else ""
    return RefundAccount(bank=bank, number=number, holder=holder.strip(), phone=str(phone or ""))


def plan_cancel(
    ledger: Ledger,
    amount: Money | None = None,
    *,
    expected_balance: Money | None = None,
    refund_account: Any = None,
    refund_fields: RefundFields | None = None,
    by_pg: bool = False,
) -> CancelPlan:
    """Whether ``amount`` (None: the whole balance) may be cancelled, and what that does.

    ``by_pg``: the PG's own staff cancel in its console (no refund account asked).
    ``refund_fields`` None: the PG does not ask for a refund account.
    """
    if ledger.stage is Stage.CANCELED:
        raise Refused(Refusal.ALREADY_CANCELED)
    if ledger.stage not in (Stage.PAID, Stage.AWAITING_DEPOSIT):
        raise Refused(Refusal.NOT_CANCELABLE)
    balance = ledger.balance
    if balance <= 0:
        raise Refused(Refusal.ALREADY_CANCELED)
    if expected_balance is not None and expected_balance != balance:
        raise Refused(Refusal.BALANCE_MISMATCH, f"the balance is {balance}, not {expected_balance}")
    amount = balance if amount is None else amount
    if amount <= 0 or (not ledger.fractional and amount != int(amount)):
        raise Refused(Refusal.INVALID_AMOUNT, f"{amount} is not a positive amount")
    if amount > balance:
        raise Refused(Refusal.OVER_BALANCE, f"{amount} is more than the balance {balance}")
    partial = amount != balance
    unpaid_account = ledger.stage is Stage.AWAITING_DEPOSIT
    if unpaid_account and partial:
        raise Refused(Refusal.PARTIAL_UNPAID_ACCOUNT)
    if partial and not ledger.partial_cancelable:
        raise Refused(Refusal.PARTIAL_NOT_ALLOWED)
    by_transfer = ledger.virtual_account and not unpaid_account
    account = None
    if by_transfer and not by_pg and not ledger.refund_account_on_file and refund_fields is not None:
        account = read_refund_account(refund_account, refund_fields)
    return CancelPlan(
        amount=amount,
        left=balance - amount,
        full=not partial,
        refunds_by_transfer=by_transfer,
        closes_unpaid_account=unpaid_account,
        refund_account=account,
    )


# --- deadlines of a virtual account (kept in a payment's private session) -------------


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


def defer_deposit(session: dict[str, Any], seconds: float | None) -> None:
    """The buyer chose to transfer ``seconds`` after the account is issued (None: by hand)."""
    if seconds is not None:
        session["depositAfter"] = float(seconds)


def start_deposit_clock(session: dict[str, Any], now: datetime) -> None:
    """The account was issued at ``now``: a deferred transfer is scheduled from here."""
    if session.get("depositAfter") is not None:
        session["depositAt"] = (now + timedelta(seconds=float(session["depositAfter"]))).isoformat()


def deposit_at(session: dict[str, Any]) -> datetime | None:
    """When the scheduled transfer arrives (None: none scheduled)."""
    return _when(session.get("depositAt"))


def deposit_has_come(session: dict[str, Any], now: datetime) -> bool:
    """The scheduled transfer is due at ``now`` and arrives before the account's deadline (``dueDate``)."""
    at, due = deposit_at(session), _when(session.get("dueDate"))
    return at is not None and now >= at and (due is None or at <= due)


def deadline_passed(session: dict[str, Any], now: datetime) -> bool:
    """The account's deadline (``dueDate``) is behind ``now``."""
    due = _when(session.get("dueDate"))
    return due is not None and now > due


def clear_deposit(session: dict[str, Any]) -> None:
    """The transfer arrived or the account closed: nothing more is scheduled."""
    session.pop("depositAt", None)
    session.pop("depositAfter", None)


def next_due(*moments: datetime | None) -> datetime | None:
    """The earliest of ``moments`` (None when all are None)."""
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None
