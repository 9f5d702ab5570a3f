"""The frozen dataclasses that go into and come out of a gateway.

Inputs (:class:`OrderSnapshot`, :class:`ConfirmRequest`, :class:`CancelRequest`)
are built by :mod:`django_pgpay.payments` from the models, so a gateway never
sees a model instance. Outputs (:class:`PaymentResult`, :class:`CancelResult`,
:class:`CheckoutResult`, :class:`ParsedWebhook`) describe what the PG said in a
PG-neutral way; the operations decide what that means for the order.
:class:`RefundAccount` and :class:`VirtualAccount` are the typed contracts of a
virtual account: the account a refund goes to, and the account the buyer pays into.
Each gateway maps them to and from its own wire fields.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


class PaymentState(str, enum.Enum):
    """What the PG says about a payment, in PG-neutral words."""

    #: Created at the PG, the buyer has not finished (Toss READY, Stripe open session).
    PENDING = "pending"
    #: The buyer authenticated; the PG waits for our confirm call (Toss
    #: IN_PROGRESS, Bootpay status 2).
    AUTHENTICATED = "authenticated"
    #: A virtual account was issued; the money has not arrived.
    WAITING_FOR_DEPOSIT = "waiting_for_deposit"
    #: The money is taken (Toss DONE, PortOne paid, Stripe paid, Bootpay 1).
    APPROVED = "approved"
    PARTIAL_CANCELED = "partial_canceled"
    CANCELED = "canceled"
    #: The payment failed or was refused (Toss ABORTED, PortOne failed).
    FAILED = "failed"
    #: The PG gave up waiting (Toss EXPIRED, Stripe expired session, vbank past due).
    EXPIRED = "expired"

    @property
    def is_paid(self) -> bool:
        """The PG took the money at some point (it may have given some back)."""
        return self in (PaymentState.APPROVED, PaymentState.PARTIAL_CANCELED, PaymentState.CANCELED)


@dataclass(frozen=True)
class LineItem:
    """One line of an order, for invoices and PGs that list items (Stripe)."""

    name: str
    unit_amount: Decimal
    quantity: int = 1
    sku: str = ""

    @property
    def total(self) -> Decimal:
        return self.unit_amount * self.quantity


@dataclass(frozen=True)
class OrderSnapshot:
    """What a gateway may know about an order."""

    order_number: str
    amount: Decimal
    currency: str
    order_name: str
    line_items: tuple[LineItem, ...] = ()
    canceled_amount: Decimal = Decimal(0)
    payment_id: str = ""
    buyer_name: str = ""
    buyer_email: str = ""
    buyer_phone: str = ""
    #: PG-specific data stored on the order (Stripe session id, vbank secret ...).
    pg_data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: At checkout: the latest time a virtual account's deposit may pay for the order (aware), the
    #: shop's :meth:`~django_pgpay.models.AbstractOrder.get_deposit_deadline`; the gateway asks the
    #: PG for an account due no later. None: the PG's own deadline.
    deposit_deadline: datetime | None = None

    @property
    def balance(self) -> Decimal:
        return self.amount - self.canceled_amount


@dataclass(frozen=True)
class CheckoutUrls:
    """Absolute URLs the PG sends the buyer (and its notifications) back to."""

    success_url: str
    fail_url: str
    webhook_url: str = ""
    #: Where the buyer's window reports a payment id as soon as it knows it (with the buyer token).
    attempt_url: str = ""


@dataclass(frozen=True)
class CheckoutResult:
    """What the browser needs to start paying.

    ``kind == "redirect"``: send the browser to ``redirect_url`` (Stripe's hosted
    page). ``kind == "widget"``: render ``template_name`` with ``params`` for the
    PG's JavaScript SDK loaded from ``script_url``.
    """

    kind: str
    redirect_url: str = ""
    script_url: str = ""
    template_name: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Merged into the order's ``pg_data`` (e.g. Stripe's session id).
    pg_data: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ReturnParams:
    """The ids a PG's return URL carries, parsed and not yet trusted."""

    payment_id: str
    order_number: str
    #: The amount the browser claims (None when the PG does not send one).
    amount: Decimal | None = None
    #: Failure reported by the PG on the return (``code``/``message`` on a fail URL).
    error_code: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class ConfirmRequest:
    """Ask the PG to approve (or, where it has no confirm call, to report) a payment."""

    order: OrderSnapshot
    payment_id: str
    amount: Decimal
    currency: str
    idempotency_key: str


@dataclass(frozen=True)
class RefundAccount:
    """The buyer's bank account that a refund of a virtual-account payment goes to.

    A deposited virtual account cannot be refunded to a card: the PG needs an
    account. ``bank`` is the bank's code as the PG spells it (Toss ``"88"``,
    PortOne V1 ``"088"`` or V2 ``"SHINHAN"``, Bootpay three digits ``"088"``);
    ``phone`` is sent where the PG takes one (PortOne ``refund_tel`` /
    ``holderPhoneNumber``; Toss and Bootpay have no such field). Each gateway
    maps it to its own fields. ``repr`` masks the number.
    """

    bank: str
    number: str = field(repr=False)
    holder: str
    phone: str = field(default="", repr=False)

    def __post_init__(self):
        for name in ("bank", "number", "holder"):
            if not str(getattr(self, name) or "").strip():
                raise ValueError(f"RefundAccount.{name} is required")

    @classmethod
    def from_pg_data(cls, pg_data: Mapping[str, Any]) -> RefundAccount | None:
        """The account an order's ``pg_data`` names under the conventions before 0.x (deprecated).

        ``pg_data["refund_receive_account"]`` (``bank``, ``accountNumber``,
        ``holderName``, ``tel``: Toss and PortOne) or ``pg_data["bootpay_refund"]``
        (``bank_code``, ``bank_account``, ``bank_username``). None when neither is
        there or the one found is incomplete. Finding one warns with
        :class:`~django_pgpay.exceptions.PgPayDeprecationWarning`: pass
        ``refund_account=RefundAccount(...)`` to :func:`django_pgpay.payments.cancel` instead.
        """
        for key, names in _LEGACY_REFUND_KEYS.items():
            value = (pg_data or {}).get(key)
            if isinstance(value, Mapping) and value:
                import warnings

                from ..exceptions import PgPayDeprecationWarning

                warnings.warn(
                    f'pg_data["{key}"] names a refund account the old way; pass payments.cancel(..., '
                    "refund_account=RefundAccount(bank=..., number=..., holder=...)) instead.",
                    PgPayDeprecationWarning,
                    stacklevel=3,
                )
                fields = {ours: str(value.get(theirs) or "").strip() for ours, theirs in names.items()}
                try:
                    return cls(**fields)
                except ValueError:
                    return None
        return None


#: The ``pg_data`` keys that named a refund account before :class:`RefundAccount`, and their fields.
_LEGACY_REFUND_KEYS: dict[str, dict[str, str]] = {
    "refund_receive_account": {"bank": "bank", "number": "accountNumber", "holder": "holderName", "phone": "tel"},
    "bootpay_refund": {"bank": "bank_code", "number": "bank_account", "holder": "bank_username"},
}


@dataclass(frozen=True)
class VirtualAccount:
    """A virtual account a PG issued for a payment: where and until when the buyer transfers.

    ``due`` is an aware datetime (every PG's own format is read by its
    gateway). :meth:`as_pg_data` is what the order keeps in ``pg_data`` for
    templates and the admin, in one format for every PG.
    """

    bank: str
    number: str
    holder: str = ""
    due: datetime | None = None
    #: The bank's name when the PG gives one (PortOne V1 ``vbank_name``).
    bank_name: str = ""

    def __post_init__(self):
        if self.due is not None and (self.due.tzinfo is None or self.due.utcoffset() is None):
            raise ValueError("VirtualAccount.due must be an aware datetime")

    def as_pg_data(self) -> dict[str, str]:
        """``vbank_account_number``, ``vbank_bank_code``, ``vbank_holder``, ``vbank_due_date`` (ISO 8601) and ``vbank_bank_name``."""
        data = {
            "vbank_account_number": self.number,
            "vbank_bank_code": self.bank,
            "vbank_holder": self.holder,
            "vbank_due_date": self.due.isoformat() if self.due is not None else "",
        }
        if self.bank_name:
            data["vbank_bank_name"] = self.bank_name
        return data


@dataclass(frozen=True)
class CancelRequest:
    """Ask the PG to give back ``amount`` of a payment.

    ``balance_before`` is what we believe is still cancellable before this
    cancel: PortOne V1 sends it as ``checksum``, V2 as
    ``currentCancellableAmount``, so a repeated cancel is refused by the PG.
    ``idempotency_key`` is the ledger row's key, sent as ``Idempotency-Key``
    (Toss, Stripe) or ``cancel_id`` (Bootpay).
    """

    order: OrderSnapshot
    payment_id: str
    amount: Decimal
    currency: str
    reason: str
    idempotency_key: str
    balance_before: Decimal
    requested_by: str = ""
    #: Where a refund of a deposited virtual account goes (each gateway sends it in its own fields).
    refund_account: RefundAccount | None = None

    @property
    def is_full(self) -> bool:
        return self.amount == self.balance_before


@dataclass(frozen=True)
class CancelEntry:
    """One cancel the PG reports on a payment."""

    pg_cancel_id: str
    amount: Decimal
    canceled_at: datetime | None = None
    #: Our own reference when the PG echoes it (Bootpay cancel_id, Stripe metadata).
    reference: str = ""
    #: For :attr:`PaymentResult.failed_cancels`: why the PG says it failed (Stripe's ``failure_reason``).
    failure: str = ""


@dataclass(frozen=True)
class PaymentResult:
    """The PG's view of one payment."""

    state: PaymentState
    payment_id: str
    order_number: str
    amount: Decimal
    currency: str
    canceled_amount: Decimal = Decimal(0)
    method: str = ""
    receipt_url: str = ""
    approved_at: datetime | None = None
    cancels: tuple[CancelEntry, ...] = ()
    #: Cancels the PG accepted and now reports failed or cancelled, no money
    #: given back (a Stripe refund to a closed card fails days later; the money
    #: returns to the shop's balance). Not part of :attr:`canceled_amount`.
    failed_cancels: tuple[CancelEntry, ...] = ()
    #: Cancels the PG accepted and has not carried out yet (PortOne V2 ``REQUESTED``:
    #: a refund to a bank account takes days). Not part of :attr:`canceled_amount`;
    #: the cancel row asking for one stays open, however old, until it is done or fails.
    pending_cancels: tuple[CancelEntry, ...] = ()
    failure_code: str = ""
    failure_message: str = ""
    #: Deadline of a virtual account (or of the PG's confirm window).
    expires_at: datetime | None = None
    #: Merged into the order's ``pg_data`` (deposit secret, session id; the virtual account's fields).
    pg_data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: The PG's reply, secrets redacted.
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: The virtual account the buyer pays into, when the PG issued one.
    virtual_account: VirtualAccount | None = None
    #: The PG's mark of the payment's latest change (Toss's ``lastTransactionKey``), when it gives
    #: one: two reports of the same state with different revisions are two events (a deposit,
    #: its reversal, and a second deposit bring a payment back to a state it held before).
    revision: str = ""

    def __post_init__(self):
        # The account's fields join pg_data in one format, for templates and the admin
        # (``order.pg_data.vbank_account_number``); its deadline is the payment's.
        if self.virtual_account is not None:
            object.__setattr__(self, "pg_data", {**self.virtual_account.as_pg_data(), **dict(self.pg_data)})
            if self.expires_at is None and self.virtual_account.due is not None:
                object.__setattr__(self, "expires_at", self.virtual_account.due)

    @property
    def balance(self) -> Decimal:
        return self.amount - self.canceled_amount


@dataclass(frozen=True)
class CancelResult:
    """The PG's answer to a cancel."""

    pg_cancel_id: str
    amount: Decimal
    #: The payment as the PG reports it after this cancel, when it says.
    payment: PaymentResult | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ParsedWebhook:
    """One delivery from a PG, parsed (the delivery log is :class:`django_pgpay.models.WebhookEvent`).

    ``verified`` is True when the delivery proved itself (a valid signature or
    a shared per-payment secret); then ``payment`` may be trusted as sent.
    Otherwise the operations re-fetch the payment from the PG and trust only
    that.
    """

    event_id: str
    event_type: str
    payment_id: str = ""
    order_number: str = ""
    verified: bool = False
    payment: PaymentResult | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def __getattr__(name: str):
    """``WebhookEvent``: the old name of :class:`ParsedWebhook`, importable with a deprecation warning."""
    if name == "WebhookEvent":
        import warnings

        from ..exceptions import PgPayDeprecationWarning

        warnings.warn(
            "django_pgpay.gateways.results.WebhookEvent is now ParsedWebhook (the delivery log model keeps the name WebhookEvent).",
            PgPayDeprecationWarning,
            stacklevel=2,
        )
        return ParsedWebhook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
