"""The ledger: reading and writing an order's transaction rows.

Every money operation of :mod:`django_pgpay.payments` writes its row here
*before* it calls the PG (with the idempotency key it sends) and finishes it
with the PG's answer. This module knows rows, keys and what is stored of a
PG's reply; it never calls a PG and never changes an order's status.

Its named queries (:func:`open_rows`, :func:`succeeded_rows`,
:func:`blocking_rows`, :func:`stale_rows`, :func:`unsettled_rows`) are the
one spelling of "which rows" the rest of the library uses; its recording
helpers (:func:`record_confirm`, :func:`record_reported`) write the rows of
what a PG reports.
"""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal
from typing import NamedTuple

from django.db import router, transaction
from django.db.models import Q
from django.utils import timezone

from . import conf
from .exceptions import AmountMismatch, GatewayError, OperationRefused, PaymentDeclined, PgPayError, redact
from .status import OPEN_TRANSACTION_STATUSES, TransactionKind, TransactionStatus

K = TransactionKind
T = TransactionStatus

#: Kinds whose open rows are money operations on the order's own payment in
#: flight: while one is open, no second confirm, cancel or withdrawal starts.
BLOCKING_KINDS = frozenset({K.CONFIRM, K.CANCEL, K.WITHDRAW})
#: Kinds of rows the library writes for money it gives back or closes by itself.
FOLLOW_UP_KINDS = frozenset({K.COMPENSATE, K.WITHDRAW})


def digest(value: str) -> str:
    """A short stable digest, for keys built from PG ids."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def confirm_key(order_number: str, payment_id: str) -> str:
    """The idempotency key of the confirm of ``payment_id``: the same payment always gets the same key."""
    return f"{order_number}-confirm-{digest(payment_id)}"


def atomic(order):
    """A transaction on the database ``order`` is written to."""
    return transaction.atomic(using=router.db_for_write(type(order)))


def lock_order(order):
    """Re-read ``order`` with its row locked (inside :func:`atomic`): the guard of every change."""
    return type(order)._base_manager.select_for_update().get(pk=order.pk)


def rows(order):
    """Every ledger row of ``order`` (the base manager: no shop filter hides a row)."""
    return order.get_transaction_model()._base_manager.filter(order_id=order.pk)


def open_rows(order, *kinds: str):
    """Rows of ``order`` waiting for the PG's answer (pending or unknown), of ``kinds`` if given."""
    found = rows(order).filter(status__in=OPEN_TRANSACTION_STATUSES)
    return found.filter(kind__in=kinds) if kinds else found


def succeeded_rows(order, *kinds: str):
    """Rows of ``order`` the PG carried out, of ``kinds`` if given."""
    found = rows(order).filter(status=T.SUCCEEDED)
    return found.filter(kind__in=kinds) if kinds else found


#: ``error_code`` of a cancel the PG carried out and later reports failed (a Stripe refund
#: to a closed card): the row *needs attention*, the buyer has not been paid back.
REFUND_FAILED = "REFUND_FAILED"


def counts_as_cancelled(row) -> bool:
    """Whether cancel row ``row`` is part of its order's ``canceled_amount``.

    Carried out by the PG, or carried out and later reported failed there
    (:data:`REFUND_FAILED`, *needs attention*): the order stays cancelled, and
    a person gives that money back, after which the row fails.
    """
    return row.status == T.SUCCEEDED or (row.status == T.ATTENTION and row.error_code == REFUND_FAILED)


def cancelled_rows(order, *kinds: str):
    """Rows of ``order`` of ``kinds`` that :func:`counts_as_cancelled`."""
    return rows(order).filter(Q(status=T.SUCCEEDED) | Q(status=T.ATTENTION, error_code=REFUND_FAILED), kind__in=kinds)


def unsettled_rows(order):
    """Money rows still open or needing attention: what makes :func:`~django_pgpay.payments.reconcile` look."""
    return rows(order).filter(status__in=(*OPEN_TRANSACTION_STATUSES, T.ATTENTION)).exclude(kind=K.WEBHOOK)


def unsettled_order_ids(transaction_model):
    """``order_id`` of every order of ``transaction_model``'s orders with :func:`unsettled_rows` (a subquery)."""
    return (
        transaction_model._base_manager.filter(status__in=(*OPEN_TRANSACTION_STATUSES, T.ATTENTION))
        .exclude(kind=K.WEBHOOK)
        .values("order_id")
    )


def known_payment_ids(order, gateway, facts: list | None = None) -> set[str]:
    """Every payment id the shop knows for ``order``: its payment, its rows', the attempts its window reported.

    ``facts`` (:func:`row_facts` of the order, read already) saves the query.
    """
    ids = {order.pg_payment_id}
    ids |= {fact.pg_payment_id for fact in (row_facts(order) if facts is None else facts)}
    ids |= gateway.known_attempts(order.pg_data or {})
    return ids - {""}


class RowFact(NamedTuple):
    """What :func:`row_facts` reads of one row: enough to know whether a settle has rows to look at."""

    kind: str
    status: str
    pg_payment_id: str
    modified: datetime.datetime

    @property
    def is_open(self) -> bool:
        """Waiting for the PG's answer (pending or unknown), as ``AbstractTransaction.is_open``."""
        return self.status in OPEN_TRANSACTION_STATUSES


def row_facts(order) -> list[RowFact]:
    """Kind, status, payment id and last change of every row of ``order`` but webhook rows, in one query (no stored replies)."""
    found = rows(order).exclude(kind=K.WEBHOOK).values_list("kind", "status", "pg_payment_id", "modified")
    return [RowFact(*values) for values in found]


def blocking_rows(order):
    """Open rows that keep a second money operation on the order's own payment from starting.

    Confirms, cancels and withdrawals in flight, and a compensating cancel of
    the order's own payment (a mismatch being given back). A compensation of
    *another* payment of the order (a second tab) does not touch this
    order's balance and blocks nothing.
    """
    own = Q(kind__in=BLOCKING_KINDS)
    if order.pg_payment_id:
        own |= Q(kind=K.COMPENSATE, pg_payment_id=order.pg_payment_id)
    return rows(order).filter(own, status__in=OPEN_TRANSACTION_STATUSES)


def stale_rows(order):
    """Open money rows past ``IN_FLIGHT_TIMEOUT``, or unknown: a lookup at the PG must settle them."""
    stale_before = timezone.now() - conf.in_flight_timeout()
    return (
        rows(order)
        .filter(status__in=OPEN_TRANSACTION_STATUSES)
        .exclude(kind=K.WEBHOOK)
        .filter(Q(status=T.UNKNOWN) | Q(modified__lt=stale_before))
    )


def open_money_rows(order, *, or_key: str | None = None) -> list:
    """The open rows of ``order`` other than webhook rows, read once (usually none).

    For a step that asks both :func:`is_blocking` and :func:`is_stale` of them
    under the order's lock: one query instead of one per question. With
    ``or_key``, the rows of that idempotency key (or of its released
    ``<key>-x<pk>`` spellings, see :func:`has_key`) come in the same query,
    whatever their status.
    """
    wanted = Q(status__in=OPEN_TRANSACTION_STATUSES) & ~Q(kind=K.WEBHOOK)
    if or_key is not None:
        # Ignoring case, as has_key does: MariaDB/MySQL compare this column so anyway (a *_ci collation).
        wanted |= Q(idempotency_key__iexact=or_key) | Q(idempotency_key__istartswith=f"{or_key}-x")
    return list(rows(order).filter(wanted))


def same_key(stored: str, key: str) -> bool:
    """Whether the idempotency keys ``stored`` and ``key`` are the same key: letter case aside.

    The key column of MariaDB and MySQL compares without case (a ``*_ci``
    collation), its unique index too: ``abc`` and ``ABC`` are one key there,
    so they are one key on every database (SQL: ``__iexact``).
    """
    return stored.lower() == key.lower()


def has_key(row, key: str) -> bool:
    """Whether ``row`` was written for the idempotency ``key``: the key itself, or as released after a failure (``<key>-x<pk>``).

    Letter case aside (see :func:`same_key`).
    """
    stored, key = row.idempotency_key.lower(), key.lower()
    return stored == key or stored.startswith(f"{key}-x")


def is_blocking(row, order) -> bool:
    """Whether the open ``row`` is one of :func:`blocking_rows` of ``order`` (the same rule, in memory)."""
    return (
        row.is_open
        and row.kind != K.WEBHOOK
        and (
            row.kind in BLOCKING_KINDS
            or (row.kind == K.COMPENSATE and bool(order.pg_payment_id) and row.pg_payment_id == order.pg_payment_id)
        )
    )


def is_stale(row) -> bool:
    """Whether the open ``row`` is one of :func:`stale_rows` (the same rule, in memory)."""
    return row.is_open and row.kind != K.WEBHOOK and (row.status == T.UNKNOWN or row.modified < timezone.now() - conf.in_flight_timeout())


def storable(raw) -> dict | None:
    """A PG reply made safe to store: secrets masked, Decimals as strings, NULs replaced.

    PostgreSQL refuses ``\\x00`` in text and ``\\u0000`` in JSON; a reply (or
    an attacker's body) carrying one must not turn a payment into a 500.
    """
    if raw is None:
        return None

    def convert(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, str):
            return value.replace("\x00", "\ufffd")
        if isinstance(value, dict):
            return {convert(str(k)): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    return convert(redact(dict(raw)))


def finish(row, status: str, *, result=None, error: PgPayError | None = None, **fields) -> None:
    """Record an answer (or its absence) on ``row`` and save it."""
    row.status = status
    row.completed_at = timezone.now() if status not in OPEN_TRANSACTION_STATUSES else None
    if result is not None:
        row.response = storable(getattr(result, "raw", None) or {})
    if error is not None:
        row.error_code = str(getattr(error, "code", "") or "")[:100]
        row.error_message = str(error).replace("\x00", "\ufffd")
        if isinstance(error, GatewayError) and error.response:
            row.response = storable(error.response if isinstance(error.response, dict) else {"body": error.response})
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()


def create(order, kind: str, *, amount: Decimal, currency: str, idempotency_key: str, status: str = T.PENDING, **fields):
    """A new row of ``order`` (``completed_at`` set unless it is open)."""
    if status not in OPEN_TRANSACTION_STATUSES:
        fields.setdefault("completed_at", timezone.now())
    return order.get_transaction_model()._base_manager.create(
        order=order,
        kind=kind,
        status=status,
        amount=amount,
        currency=currency.upper(),
        idempotency_key=idempotency_key,
        **fields,
    )


def lock(row):
    """Re-read ``row`` with its database row locked (inside an atomic block)."""
    return type(row)._base_manager.select_for_update().get(pk=row.pk)


def lock_with_kin(order, row, kinds) -> tuple:
    """``(row, kin)``: ``row`` re-read and locked, with every row of ``order`` of ``kinds`` (``row`` among them), in one read.

    For a step that settles ``row`` and then needs its kin (a cancel and the
    order's other cancels): one query instead of :func:`lock` and a read. The
    caller holds the order's lock (:func:`lock_order`), as every path that
    locks ledger rows does, so locking the order's other rows of ``kinds``
    too waits on nobody that could wait on us. Raises the model's
    ``DoesNotExist`` when ``row`` is gone, as :func:`lock` does.
    """
    if row.kind not in kinds:
        raise ValueError(f"row kind {row.kind!r} is not among {sorted(kinds)}")
    kin = list(rows(order).filter(kind__in=kinds).select_for_update())
    locked = next((r for r in kin if r.pk == row.pk), None)
    if locked is None:
        raise type(row).DoesNotExist(f"ledger row {row.pk} of order {order.pk} is gone")
    return locked, kin


def user(actor):
    """The user to record as a row's ``actor``: an authenticated user, else None."""
    return actor if getattr(actor, "is_authenticated", False) else None


def record_confirm(locked, row, result, status: str, *, source, actor=None, **fields):
    """Write the PG's answer about a payment on its confirm row (a new one when ``row`` is None)."""
    if row is None:
        row = locked.get_transaction_model()(
            order=locked,
            kind=K.CONFIRM,
            idempotency_key=confirm_key(locked.order_number, result.payment_id),
            source=source,
            actor=user(actor),
        )
    row.order = locked
    finish(
        row,
        status,
        result=result,
        amount=result.amount,
        currency=result.currency.upper(),
        pg_payment_id=result.payment_id,
        **fields,
    )
    return row


def record_reported(locked, kind: str, result, *, key: str, reason: str, source, webhook_event=None, **fields):
    """A succeeded row of something the PG reports done without our asking (once per ``key``).

    A virtual account closed in the PG's console, a cancel made in its
    dashboard (``sync``), a deposit the bank took back (``reversal``), what a
    webhook delivery changed (``webhook``). Returns the row, or None when a
    row with ``key`` exists already.
    """
    if rows(locked).filter(idempotency_key=key).exists():
        return None
    fields.setdefault("amount", result.amount)
    fields.setdefault("currency", result.currency or locked.currency)
    fields.setdefault("pg_payment_id", result.payment_id)
    return create(
        locked,
        kind,
        status=T.SUCCEEDED,
        idempotency_key=key,
        source=source,
        reason=reason[:255],
        webhook_event=webhook_event,
        response=storable(result.raw),
        **fields,
    )


def error_from_row(row) -> PgPayError:
    """Rebuild the error a failed ledger row recorded (for replays)."""
    if row.error_code == AmountMismatch.code:
        return OperationRefused(row.error_message or None, code=AmountMismatch.code)
    if row.kind == K.CONFIRM:
        return PaymentDeclined(row.error_message or None, code=row.error_code or None)
    return GatewayError(row.error_message or None, code=row.error_code or None)


def attention_rows(model):
    """Rows of the transaction ``model`` that need a person (see ``TransactionStatus.ATTENTION``)."""
    return model._base_manager.filter(status=T.ATTENTION)


__all__ = [
    "BLOCKING_KINDS",
    "FOLLOW_UP_KINDS",
    "REFUND_FAILED",
    "atomic",
    "attention_rows",
    "blocking_rows",
    "cancelled_rows",
    "confirm_key",
    "counts_as_cancelled",
    "create",
    "digest",
    "error_from_row",
    "finish",
    "has_key",
    "is_blocking",
    "is_stale",
    "known_payment_ids",
    "lock",
    "lock_order",
    "open_money_rows",
    "open_rows",
    "record_confirm",
    "record_reported",
    "row_facts",
    "rows",
    "same_key",
    "stale_rows",
    "storable",
    "succeeded_rows",
    "unsettled_order_ids",
    "unsettled_rows",
    "user",
]
