"""Follow-ups: money the library gives back, and accounts it closes, by itself.

When a PG holds money the shop must not keep (a second payment of one order,
a payment for an order that expired, an amount the shop did not ask for), the
library gives it back with a *compensating cancel*; an unpaid virtual account
of an order that failed, expired or was paid another way is *withdrawn*. Both
are follow-ups: :func:`open_follow_up` writes the pending ledger row under the
order's lock (step 1), :func:`run` calls the PG and records the answer (steps 2
and 3), :func:`settle_rows` finishes the ones whose answer was lost.

A follow-up the PG refused :data:`MAX_FOLLOW_UP_ATTEMPTS` times, or one it
cannot do without a person (a refund account for a deposit), *needs
attention*: it is not sent again, the ``payment_needs_attention`` signal goes
out after commit, and reconciliation marks it done once the PG shows the
money returned. Internal: shops call :mod:`django_pgpay.payments`.
"""

from __future__ import annotations

import logging

from django.db import router, transaction
from django.utils.translation import gettext_lazy as _

from . import ledger
from .exceptions import AlreadyCanceled, GatewayError, RefundAccountRequired
from .gateways.results import CancelRequest, PaymentResult, PaymentState, RefundAccount
from .signals import payment_needs_attention
from .status import OPEN_TRANSACTION_STATUSES, TransactionKind, TransactionSource, TransactionStatus

logger = logging.getLogger("django_pgpay.payments")

K = TransactionKind
T = TransactionStatus
P = PaymentState

#: A compensating cancel (or a withdrawal) the PG refused this many times is
#: not sent again: it needs attention.
MAX_FOLLOW_UP_ATTEMPTS = 3


def announce_attention(order, row, reason: str) -> None:
    """Tell the shop, after commit, that ``row`` needs a person."""
    sender = type(order)
    logger.error("order %s: %s %s needs attention: %s", order.order_number, row.kind, row.pg_payment_id, reason)
    transaction.on_commit(
        lambda: payment_needs_attention.send(sender=sender, order=order, transaction=row, reason=reason),
        using=router.db_for_write(sender),
    )


def kind_for(result: PaymentResult) -> str | None:
    """The follow-up a payment the shop must not keep calls for: withdraw an account, give money back, or none."""
    if result.state == P.WAITING_FOR_DEPOSIT:
        return K.WITHDRAW
    if result.state in (P.APPROVED, P.PARTIAL_CANCELED) and result.balance > 0:
        return K.COMPENSATE
    return None


def needed(kind: str, result: PaymentResult | None) -> bool:
    """Does the PG still hold what a follow-up row of ``kind`` is about?"""
    return result is not None and kind_for(result) == kind


def open_follow_up(locked, result: PaymentResult, kind: str, *, reason: str):
    """Write the pending row of a compensating cancel or a withdrawal of ``result``, unless one is under way or done.

    Returns ``(row, result)`` for the caller to :func:`run` after commit, or
    None. A follow-up the PG refused :data:`MAX_FOLLOW_UP_ATTEMPTS` times is
    written as *needs attention* instead, and not sent again.
    """
    existing = ledger.rows(locked).filter(kind=kind, pg_payment_id=result.payment_id)
    _refund_failed_later(locked, existing, result)
    if existing.filter(status__in=(*OPEN_TRANSACTION_STATUSES, T.SUCCEEDED, T.ATTENTION)).exists():
        return None
    failures = existing.filter(status=T.FAILED).count()
    status = T.ATTENTION if failures >= MAX_FOLLOW_UP_ATTEMPTS else T.PENDING
    prefix = "comp" if kind == K.COMPENSATE else "withdraw"
    row = ledger.create(
        locked,
        kind,
        status=status,
        amount=result.balance if kind == K.COMPENSATE else result.amount,
        currency=result.currency,
        idempotency_key=f"{locked.order_number}-{prefix}-{ledger.digest(result.payment_id)}-{failures + 1}",
        pg_payment_id=result.payment_id,
        source=TransactionSource.SYSTEM,
        reason=reason[:255],
    )
    if status == T.ATTENTION:
        row.error_code = "REFUSED_REPEATEDLY"
        row.error_message = str(_("The PG refused this %(times)s times.") % {"times": failures})
        row.save(update_fields=["error_code", "error_message"])
        announce_attention(locked, row, row.error_message)
        return None
    return (row, result)


def _refund_failed_later(locked, existing, result: PaymentResult) -> None:
    """A compensating refund the PG carried out and now reports failed (a Stripe refund to a closed card).

    The money is back in the shop's balance and the buyer unpaid: the row
    *needs attention* (``REFUND_FAILED``); no new refund is sent by itself
    (the same card would refuse it again).
    """
    failed = {e.pg_cancel_id for e in result.failed_cancels} | {e.reference for e in result.failed_cancels if e.reference}
    if not failed:
        return
    for row in existing.filter(status=T.SUCCEEDED):
        if row.pg_transaction_id in failed or row.idempotency_key in failed:
            message = _("The PG reports that this refund failed: the buyer has not been paid back. Give the money back another way.")
            row.status, row.error_code, row.error_message = T.ATTENTION, ledger.REFUND_FAILED, str(message)
            row.save(update_fields=["status", "error_code", "error_message", "modified"])
            announce_attention(locked, row, "the PG reports this refund failed")


def open_for(locked, result: PaymentResult, *, reason: str) -> list:
    """:func:`open_follow_up` of whatever ``result`` calls for (see :func:`kind_for`): a list of 0 or 1."""
    kind = kind_for(result)
    follow_up = open_follow_up(locked, result, kind, reason=reason) if kind else None
    return [follow_up] if follow_up is not None else []


def run(order, row, result: PaymentResult) -> tuple[str | None, GatewayError | None]:
    """Steps 2 and 3 of a compensating cancel or a withdrawal whose pending row is written.

    Returns the status this call wrote on the row and the PG's error, or
    ``(None, None)`` when the row was no longer open (another process settled
    it while the PG answered).
    """
    gateway = order.get_gateway()
    snapshot = order.snapshot()
    request = CancelRequest(
        order=snapshot,
        payment_id=row.pg_payment_id,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason or "compensation",
        idempotency_key=row.idempotency_key,
        balance_before=result.balance if row.kind == K.COMPENSATE else result.amount,
        requested_by=TransactionSource.SYSTEM,
        refund_account=RefundAccount.from_pg_data(snapshot.pg_data) if row.kind != K.WITHDRAW else None,
    )
    status, error, pg_id, reply = T.SUCCEEDED, None, "", None
    try:
        reply = gateway.withdraw(request) if row.kind == K.WITHDRAW else gateway.cancel(request)
        pg_id = reply.pg_cancel_id
    except AlreadyCanceled:
        pass
    except GatewayError as exc:
        error = exc
        if exc.outcome_unknown:
            status = T.UNKNOWN
        elif isinstance(exc, RefundAccountRequired):
            status = T.ATTENTION
        else:
            status = T.FAILED
        logger.error("order %s: %s %s: %r", order.order_number, row.kind, status, exc)
    with ledger.atomic(order):
        locked = ledger.lock_order(order)
        locked_row = ledger.lock(row)
        if not locked_row.is_open:
            return None, None
        ledger.finish(locked_row, status, result=reply, error=error, pg_transaction_id=pg_id[:200])
        if status == T.ATTENTION:
            announce_attention(locked, locked_row, str(error))
        elif status == T.FAILED:
            # Refused: a new attempt (a new key) waits for the next reconciliation,
            # or the row needs attention once the PG has refused too often.
            open_follow_up(locked, result, row.kind, reason=row.reason)
    return status, error


def sent_again(kind: str, status: str | None, error: GatewayError | None) -> str:
    """The reconciliation's line for a follow-up it sent again: what the PG answered, not only that it was sent.

    A PG still processing the first request under the same key (Toss's 409
    ``IDEMPOTENT_REQUEST_PROCESSING``) leaves the row ``unknown``: it is not done,
    and the next reconciliation asks again.
    """
    if status is None:
        return f"{kind} settled elsewhere meanwhile"
    if status == T.SUCCEEDED:
        return f"{kind} sent again"
    code = error.code if error is not None else ""
    if status == T.UNKNOWN:
        return f"{kind} sent again: no answer yet ({code}); left open for the next reconciliation"
    if status == T.ATTENTION:
        return f"{kind} sent again: needs attention ({code})"
    return f"{kind} sent again: refused ({code})"


def run_all(order, follow_ups) -> None:
    """:func:`run` each ``(row, result)`` that :func:`open_follow_up` returned."""
    for row, result in follow_ups:
        run(order, row, result)


def _finish_under_lock(order, row, status: str, result, **fields) -> None:
    with ledger.atomic(order):
        ledger.lock_order(order)
        locked_row = ledger.lock(row)
        unchanged = locked_row.status == T.ATTENTION if row.status == T.ATTENTION else locked_row.is_open
        if unchanged:
            ledger.finish(locked_row, status, result=result, **fields)


def settle_rows(order, by_ref: dict[str, PaymentResult], *, stale_before) -> list[str]:
    """Follow-ups whose answer was lost are confirmed or sent again; those needing attention end when the PG shows them done.

    ``by_ref`` maps every reference of the attempts the PG reported to the
    attempt. A pending row younger than ``stale_before`` is in flight
    elsewhere and left alone.
    """
    changes: list[str] = []
    follow_rows = ledger.rows(order).filter(kind__in=ledger.FOLLOW_UP_KINDS, status__in=(*OPEN_TRANSACTION_STATUSES, T.ATTENTION))
    for row in follow_rows:
        target = by_ref.get(row.pg_payment_id)
        if row.status == T.ATTENTION:
            if target is not None and not needed(row.kind, target):
                _finish_under_lock(order, row, T.SUCCEEDED, target, error_code=row.error_code)
                changes.append(f"{row.kind} resolved at the PG")
            continue
        if row.status == T.PENDING and row.modified >= stale_before:
            continue  # in flight elsewhere
        if needed(row.kind, target):
            changes.append(sent_again(row.kind, *run(order, row, target)))
        else:
            _finish_under_lock(order, row, T.SUCCEEDED, target)
            changes.append(f"{row.kind} confirmed")
    return changes


__all__ = [
    "MAX_FOLLOW_UP_ATTEMPTS",
    "announce_attention",
    "kind_for",
    "needed",
    "open_follow_up",
    "open_for",
    "run",
    "run_all",
    "sent_again",
    "settle_rows",
]
