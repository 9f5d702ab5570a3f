"""Order and ledger statuses, and the one transition table.

``TRANSITIONS`` is the only truth about which status may follow which. Every
change of an order's status goes through ``django_pgpay.bookkeeping.transition``,
which checks this table while the order row is locked.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class OrderStatus(models.TextChoices):
    """Where an order stands with its PG."""

    READY = "READY", pgettext_lazy("order status", "Awaiting payment")
    WAITING_FOR_DEPOSIT = "WAITING_FOR_DEPOSIT", pgettext_lazy("order status", "Awaiting deposit")
    PAID = "PAID", pgettext_lazy("order status", "Paid")
    PARTIAL_CANCELED = "PARTIAL_CANCELED", pgettext_lazy("order status", "Partially cancelled")
    CANCELED = "CANCELED", pgettext_lazy("order status", "Cancelled")
    FAILED = "FAILED", pgettext_lazy("order status", "Failed")
    EXPIRED = "EXPIRED", pgettext_lazy("order status", "Expired")


S = OrderStatus

#: Which status may follow which. A partial cancel of a partially cancelled
#: order stays in PARTIAL_CANCELED (a change of amount, not of status).
TRANSITIONS: dict[str, frozenset[str]] = {
    S.READY: frozenset({S.PAID, S.WAITING_FOR_DEPOSIT, S.FAILED, S.EXPIRED}),
    # Virtual account issued: the deposit arrives, or the account is withdrawn
    # unpaid (its deadline passed, the buyer or the shop gave up: EXPIRED; the
    # PG refused it: FAILED). No money moved, so it never becomes CANCELED.
    S.WAITING_FOR_DEPOSIT: frozenset({S.PAID, S.EXPIRED, S.FAILED}),
    # A bank may reverse a deposit (Toss DONE -> WAITING_FOR_DEPOSIT): the
    # money is gone again and the account waits for a deposit once more.
    S.PAID: frozenset({S.PARTIAL_CANCELED, S.CANCELED, S.WAITING_FOR_DEPOSIT}),
    S.PARTIAL_CANCELED: frozenset({S.PARTIAL_CANCELED, S.CANCELED}),
    S.CANCELED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}

#: Statuses in which the order holds (or held) money confirmed by the PG.
PAID_STATUSES = frozenset({S.PAID, S.PARTIAL_CANCELED, S.CANCELED})
#: Statuses in which a cancel may be asked for.
CANCELABLE_STATUSES = frozenset({S.PAID, S.PARTIAL_CANCELED, S.WAITING_FOR_DEPOSIT})
#: Statuses from which no transition leaves.
TERMINAL_STATUSES = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
#: Statuses that still wait for the buyer or the PG and may expire.
OPEN_STATUSES = frozenset({S.READY, S.WAITING_FOR_DEPOSIT})


def can_transition(source: str, target: str) -> bool:
    """True when the table allows ``source -> target``."""
    return target in TRANSITIONS.get(source, frozenset())


class TransactionKind(models.TextChoices):
    """What a ledger row records."""

    CONFIRM = "confirm", _("Confirm")
    CANCEL = "cancel", _("Cancel")
    #: A cancel the library issued by itself to give back money it must not
    #: keep (amount mismatch, payment for an expired order).
    COMPENSATE = "compensate", _("Compensating cancel")
    WEBHOOK = "webhook", _("Webhook")
    #: A change found at the PG by a lookup (reconciliation or a webhook
    #: re-fetch) that no operation of ours asked for, e.g. a cancel made in the
    #: PG's dashboard.
    SYNC = "sync", _("Sync")
    #: An unpaid virtual account closed at the PG (the buyer gave up, the
    #: order failed or expired, a second account of one order). No money moves.
    WITHDRAW = "withdraw", _("Virtual account withdrawn")
    #: The bank took a virtual-account deposit back (the PG reports the payment
    #: waiting for its deposit again). The confirm row is back to ``waiting``.
    REVERSAL = "reversal", _("Deposit reversed")


class TransactionStatus(models.TextChoices):
    """Where a ledger row stands."""

    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    #: The PG may or may not have acted (timeout, 5xx): a lookup decides.
    UNKNOWN = "unknown", _("Unknown")
    #: A confirm row of a virtual account the PG issued: no money has arrived
    #: yet. It becomes ``succeeded`` with the deposit, ``failed`` when the
    #: account expires or is withdrawn.
    WAITING = "waiting", _("Awaiting deposit")
    #: Money the library could not give back by itself (a deposit with no
    #: refund account, a refund the PG keeps refusing). A person must act; the
    #: ``payment_needs_attention`` signal, the admin and ``pgpay_reconcile``
    #: say so, and reconciliation keeps checking it at the PG.
    ATTENTION = "attention", _("Needs attention")


class TransactionSource(models.TextChoices):
    """Who asked for a ledger row's operation."""

    CUSTOMER = "customer", _("Customer")
    STAFF = "staff", _("Staff")
    WEBHOOK = "webhook", _("Webhook")
    RECONCILE = "reconcile", _("Reconciliation")
    SYSTEM = "system", _("System")


#: Ledger rows that are still open: they block a second operation of the same
#: kind and count against the cancellable balance.
OPEN_TRANSACTION_STATUSES = frozenset({TransactionStatus.PENDING, TransactionStatus.UNKNOWN})
#: Ledger kinds whose succeeded rows gave money of the order's own payment back
#: (their sum is the order's ``canceled_amount``).
CANCEL_KINDS = frozenset({TransactionKind.CANCEL, TransactionKind.SYNC})


class DeliveryStatus(models.TextChoices):
    """What became of one webhook delivery."""

    #: Stored, not processed yet.
    RECEIVED = "received", _("Received")
    #: Verified (its signature, or the PG confirmed it) and applied to its order.
    APPLIED = "applied", _("Applied")
    #: The same verified event as an applied delivery: acknowledged, not applied again.
    DUPLICATE = "duplicate", _("Duplicate")
    #: Nothing to apply (an event type we do not act on, an order of another shop).
    IGNORED = "ignored", _("Ignored")
    #: Malformed, unverifiable or forged, or from a refused address: changes nothing, never retried.
    REFUSED = "refused", _("Refused")
    #: Could not be processed now (the PG did not answer, applying failed):
    #: the PG delivers it again, and ``pgpay_reconcile`` processes it again.
    FAILED = "failed", _("Failed")


#: Delivery statuses that are final: ``processed`` is True for the first three.
DONE_DELIVERY_STATUSES = frozenset({DeliveryStatus.APPLIED, DeliveryStatus.DUPLICATE, DeliveryStatus.IGNORED})
