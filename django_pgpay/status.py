"""Order and ledger statuses, and the one transition table.

``TRANSITIONS`` is the only truth about which status may follow which. Every
change of an order's status goes through :func:`django_pgpay.payments.transition`,
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
    # Virtual account issued: the deposit arrives, the deadline passes, or the
    # shop withdraws the account before any money came in.
    S.WAITING_FOR_DEPOSIT: frozenset({S.PAID, S.EXPIRED, S.CANCELED, S.FAILED}),
    S.PAID: frozenset({S.PARTIAL_CANCELED, S.CANCELED}),
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


class TransactionStatus(models.TextChoices):
    """Where a ledger row stands."""

    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    #: The PG may or may not have acted (timeout, 5xx): a lookup decides.
    UNKNOWN = "unknown", _("Unknown")


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
