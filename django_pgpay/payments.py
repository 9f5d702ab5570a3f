"""The operations: confirm, cancel, apply what a PG reports, expire, settle, reconcile.

Views, webhooks, the admin and the management commands all call these; none of
them changes an order's status or amounts by itself. Every money-moving
operation takes three steps:

1. In a transaction, lock the order row, check what is asked against the
   order and the ledger, write a *pending* ledger row with the idempotency key
   that will be sent, and commit.
2. Call the PG outside any lock, with that key.
3. In a new transaction, lock the order again and apply the answer. An answer
   that never came leaves the row *unknown*; :func:`settle` settles it by a
   lookup at the PG, never by a blind retry. A refusal the PG documents is a
   refusal: the row fails and nothing is pending.

Money the shop must not keep (a second payment of one order, a payment for an
order that expired, an amount the shop did not ask for) is given back by a
*compensating cancel* the library makes itself; an unpaid virtual account of
an order that failed or expired is *withdrawn*. When the PG will not let the
library give money back (a deposit with no refund account, a refund refused
again and again), the row *needs attention*: the ``payment_needs_attention``
signal, the admin and ``pgpay_reconcile`` say so.

Every status change goes through :func:`transition`, which checks
:data:`~django_pgpay.status.TRANSITIONS` on the locked row, runs the order's
hooks in the same transaction and sends the signals after commit.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.db import router, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf, ledger
from .exceptions import (
    AlreadyCanceled,
    AlreadyProcessed,
    AmountMismatch,
    AuthenticationFailed,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    InvalidTransition,
    NotCancelable,
    NotFound,
    OperationInProgress,
    OperationRefused,
    PaymentDeclined,
    PgPayError,
    RefundAccountRequired,
    RetryLater,
    UnsupportedFeature,
)
from .gateways.results import CancelRequest, ConfirmRequest, PaymentResult, PaymentState, WebhookEvent
from .ledger import confirm_key
from .money import MoneyError, parse_amount, quantize, same_amount
from .signals import order_status_changed, payment_canceled, payment_confirmed, payment_needs_attention
from .status import (
    CANCEL_KINDS,
    OPEN_STATUSES,
    OPEN_TRANSACTION_STATUSES,
    PAID_STATUSES,
    OrderStatus,
    TransactionKind,
    TransactionSource,
    TransactionStatus,
    can_transition,
)

logger = logging.getLogger("django_pgpay.payments")

S = OrderStatus
K = TransactionKind
T = TransactionStatus
P = PaymentState

_KEY_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: A compensating cancel (or a withdrawal) the PG refused this many times is
#: not sent again: it needs attention.
MAX_FOLLOW_UP_ATTEMPTS = 3


class _Full:
    """The type of :data:`FULL`."""

    def __repr__(self) -> str:
        return "payments.FULL"


#: ``cancel(order, FULL, ...)``: give back everything that is left. Cancelling
#: everything is always this explicit choice, never what an empty or unreadable
#: amount falls back on.
FULL = _Full()


@dataclass(frozen=True)
class Outcome:
    """What an operation did.

    ``order`` is the order as it stands after the operation (also refreshed in
    the instance the caller passed). ``transaction`` is the ledger row the
    operation wrote or found. ``replayed`` is True when nothing new happened
    because the same operation had already been applied (a reload of the
    return page, a duplicate webhook). ``pending`` is True when the PG's answer
    is not known yet. ``compensated`` is True when the payment the operation
    dealt with is not the order's and is being given back (a second payment).
    """

    order: object
    transaction: object | None = None
    replayed: bool = False
    changes: tuple[str, ...] = ()
    error: PgPayError | None = field(default=None, compare=False)
    compensated: bool = False

    @property
    def pending(self) -> bool:
        return self.transaction is not None and self.transaction.status in OPEN_TRANSACTION_STATUSES


# --- small helpers ----------------------------------------------------------------


def _atomic(order):
    return transaction.atomic(using=router.db_for_write(type(order)))


def _lock(order):
    """Re-read ``order`` with its row locked (inside an atomic block)."""
    return type(order)._base_manager.select_for_update().get(pk=order.pk)


def _now():
    return timezone.now()


def _refresh(target, source) -> None:
    """Copy the fresh state of ``source`` into the caller's instance ``target``."""
    if target is source:
        return
    for f in type(source)._meta.concrete_fields:
        setattr(target, f.attname, getattr(source, f.attname))
    # MonitorField remembers the status it last saw; keep it in step.
    for f in type(source)._meta.concrete_fields:
        monitor_attname = getattr(f, "monitor_attname", None)
        if monitor_attname:
            setattr(target, monitor_attname, getattr(target, f.monitor))


def _actor_label(source: str, actor) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return str(actor.get_username())
    return str(source)


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


def _references(gateway, result: PaymentResult) -> set[str]:
    return gateway.payment_references(result.payment_id, result.pg_data)


def _announce_attention(order, row, reason: str) -> None:
    """Tell the shop, after commit, that ``row`` needs a person."""
    sender = type(order)
    logger.error("order %s: %s %s needs attention: %s", order.order_number, row.kind, row.pg_payment_id, reason)
    transaction.on_commit(
        lambda: payment_needs_attention.send(sender=sender, order=order, transaction=row, reason=reason),
        using=router.db_for_write(sender),
    )


# --- the one status-change function ----------------------------------------------


def transition(order, target: str, *, amount: Decimal | None = None, ledger_row=None, extra_fields: Iterable[str] = ()) -> None:
    """Move a locked ``order`` to ``target``, run its hook, announce it after commit.

    Must run inside ``transaction.atomic()`` on an instance read with
    ``select_for_update()``; the operations of this module are the only
    callers a shop needs. Raises :class:`InvalidTransition` (and changes
    nothing) when the table does not allow the move. ``amount`` is what was
    given back, for cancels.
    """
    connection = transaction.get_connection(router.db_for_write(type(order)))
    if not connection.in_atomic_block:
        raise RuntimeError("transition() must run inside transaction.atomic() with the order row locked")
    source = order.status
    if not can_transition(source, target):
        raise InvalidTransition(order.order_number, source, target)
    order.status = target
    order.save(update_fields={"status", "paid_at", "canceled_at", *extra_fields})

    if target == S.PAID:
        order.on_paid()
    elif target in (S.PARTIAL_CANCELED, S.CANCELED):
        order.on_canceled(amount if amount is not None else Decimal(0))
    elif target == S.EXPIRED:
        order.on_expired()
    elif target == S.FAILED:
        order.on_failed()

    sender = type(order)

    def announce():
        if source != target:
            order_status_changed.send(sender=sender, order=order, old_status=source, new_status=target)
        if target == S.PAID:
            payment_confirmed.send(sender=sender, order=order, transaction=ledger_row)
        elif target in (S.PARTIAL_CANCELED, S.CANCELED):
            payment_canceled.send(sender=sender, order=order, transaction=ledger_row, amount=amount)

    transaction.on_commit(announce, using=router.db_for_write(sender))
    logger.info("order %s: %s -> %s", order.order_number, source, target)


# --- applying what the PG says ------------------------------------------------------


def _merge_payment_fields(locked, result: PaymentResult) -> list[str]:
    """Copy the PG's ids and details onto the locked order; return the changed field names."""
    changed = []
    if result.payment_id and locked.pg_payment_id != result.payment_id:
        locked.pg_payment_id = result.payment_id
        changed.append("pg_payment_id")
    if result.method and locked.method != result.method[:64]:
        locked.method = result.method[:64]
        changed.append("method")
    if result.receipt_url and locked.receipt_url != result.receipt_url[:500]:
        locked.receipt_url = result.receipt_url[:500]
        changed.append("receipt_url")
    if result.pg_data:
        merged = {**(locked.pg_data or {}), **ledger.storable(result.pg_data)}
        if merged != locked.pg_data:
            locked.pg_data = merged
            changed.append("pg_data")
    if result.state == P.WAITING_FOR_DEPOSIT and result.expires_at and locked.expires_at != result.expires_at:
        locked.expires_at = result.expires_at
        changed.append("expires_at")
    return changed


def _is_own(locked, gateway, result: PaymentResult) -> bool:
    """Is ``result`` the order's payment (or may it become it: the order has none yet)?"""
    return not locked.pg_payment_id or locked.pg_payment_id in _references(gateway, result)


def _confirm_row_for(locked, rows, gateway, result: PaymentResult):
    """The confirm row that names ``result``'s payment: by its key, else one open, waiting or done."""
    if result.payment_id:
        exact = rows.filter(idempotency_key=confirm_key(locked.order_number, result.payment_id)).first()
        if exact is not None:
            return exact
    refs = _references(gateway, result)
    rank = {T.PENDING: 0, T.UNKNOWN: 0, T.WAITING: 1, T.SUCCEEDED: 2}
    usable = [r for r in rows.filter(kind=K.CONFIRM, pg_payment_id__in=refs) if r.status in rank]
    if not usable:
        return None
    return min(usable, key=lambda r: (rank[r.status], r.created, r.pk))


def _apply_locked(locked, result: PaymentResult, *, source, actor=None, confirm_row=None, webhook_event=None, settle_stale=False):
    """Apply the PG's view of one payment attempt to a locked order.

    Returns ``(changes, confirm row, follow-ups)``. Follow-ups are the pending
    ledger rows of calls the library must make itself once this commits: a
    compensating cancel of money the shop must not keep, the withdrawal of an
    unpaid virtual account; each comes with the attempt it is about.
    """
    gateway = locked.get_gateway()
    if result.order_number and result.order_number != locked.order_number:
        raise OperationRefused(_("The payment belongs to another order."), code="PAYMENT_ORDER_MISMATCH", order=locked)
    rows = ledger.rows(locked)
    own = _is_own(locked, gateway, result)
    row = confirm_row if confirm_row is not None else _confirm_row_for(locked, rows, gateway, result)
    state = result.state
    changes: list[str] = []
    follow_ups: list = []

    withdrawn = state == P.CANCELED and own and locked.status == S.WAITING_FOR_DEPOSIT
    if state in (P.FAILED, P.EXPIRED) or withdrawn:
        _apply_unpaid(locked, result, row, own=own, source=source, webhook_event=webhook_event, changes=changes)
        return changes, row, follow_ups

    if not (state.is_paid or state == P.WAITING_FOR_DEPOSIT):
        return changes, row, follow_ups  # pending or authenticated: nothing to apply yet

    # A card payment while the order waits for the deposit of its virtual account
    # (the buyer changed their mind): the card payment is taken, the account withdrawn.
    switches = not own and locked.status == S.WAITING_FOR_DEPOSIT and state in (P.APPROVED, P.PARTIAL_CANCELED)
    if (own or switches) and locked.status in OPEN_STATUSES:
        if switches:
            follow_ups += _supersede_waiting_account(locked, rows, changes)
        if state == P.WAITING_FOR_DEPOSIT:
            if locked.status == S.READY:
                row = _record_confirm(locked, row, result, T.WAITING, source=source, actor=actor, error_code="", error_message="")
                changes.append("virtual account issued")
            target = S.WAITING_FOR_DEPOSIT
        else:
            # The money is taken. post_save checks amount and currency; a mismatch rolls all of this back.
            row = _record_confirm(locked, row, result, T.SUCCEEDED, source=source, actor=actor, error_code="", error_message="")
            target = S.PAID
        extra = _merge_payment_fields(locked, result)
        if locked.status != target:
            transition(locked, target, ledger_row=row, extra_fields=extra)
            changes.append(f"status {target}")
        elif extra:
            locked.save(update_fields=extra)
        if target == S.PAID:
            changes += _sync_cancels(locked, result, source=source, settle_stale=settle_stale, webhook_event=webhook_event)
    elif own and locked.status in PAID_STATUSES:
        if row is not None and row.is_open:
            # A second confirm of a payment already applied (by its webhook,
            # under another id of the same payment): nothing more to do.
            ledger.finish(row, T.FAILED, result=result, error=OperationRefused(_("Already applied."), code="ALREADY_APPLIED"))
            row = rows.filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
        if state == P.WAITING_FOR_DEPOSIT:
            changes += _reverse_deposit(locked, rows, result, source=source, webhook_event=webhook_event)
        else:
            extra = [f for f in _merge_payment_fields(locked, result) if f in ("method", "receipt_url", "pg_data")]
            if extra:
                locked.save(update_fields=extra)
            changes += _sync_cancels(locked, result, source=source, settle_stale=settle_stale, webhook_event=webhook_event)
    else:
        # A second payment of one order, or money for an order that gave up
        # (FAILED, EXPIRED): it must go back, or the account be closed.
        if row is not None and row.is_open:
            ledger.finish(row, T.FAILED, result=result, error=OperationRefused(_("Not payable."), code="NOT_PAYABLE"))
        reason = "second payment for one order" if not own else "payment for an order that is no longer payable"
        kind = None
        if state == P.WAITING_FOR_DEPOSIT:
            kind = K.WITHDRAW
        elif state in (P.APPROVED, P.PARTIAL_CANCELED) and result.balance > 0:
            kind = K.COMPENSATE
        if kind is not None:
            follow_up = _open_follow_up(locked, result, kind, reason=reason)
            if follow_up is not None:
                follow_ups.append(follow_up)
                changes.append("withdrawal" if kind == K.WITHDRAW else "compensation")
    return changes, row, follow_ups


def _apply_unpaid(locked, result: PaymentResult, row, *, own: bool, source, webhook_event, changes: list[str]) -> None:
    """An attempt that took no money: it failed, expired, or its virtual account was closed.

    It changes the order only when the order named it (a confirm row of the
    buyer's, or the order's own payment): a window a stranger opened with the
    order's number and closed must not fail another buyer's order. Even then
    a READY order is not failed by it (the buyer may still pay in the window);
    it expires when its time is up. An order waiting for the deposit of the
    account that expired or was closed expires.
    """
    gateway = locked.get_gateway()
    named = row is not None or (own and bool(locked.pg_payment_id)) or bool(
        _references(gateway, result) & gateway.known_attempts(locked.pg_data or {})
    )
    if not named:
        return
    state = result.state
    if row is not None and row.status in (T.PENDING, T.UNKNOWN, T.WAITING):
        if state == P.CANCELED:
            error: PgPayError = OperationRefused(_("The virtual account was closed before any deposit."), code="WITHDRAWN")
        else:
            error = PaymentDeclined(result.failure_message or None, code=result.failure_code or state.value.upper())
        ledger.finish(row, T.FAILED, result=result, error=error)
        changes.append("confirm failed")
    if not own:
        return
    if locked.status == S.WAITING_FOR_DEPOSIT:
        if state == P.CANCELED:
            _record_withdrawal(locked, result, source=source, webhook_event=webhook_event)
        target = S.FAILED if state == P.FAILED else S.EXPIRED
        transition(locked, target, ledger_row=row)
        changes.append(f"status {target}")
    elif locked.status == S.READY and locked.expires_at is not None and locked.expires_at <= _now():
        if not ledger.rows(locked).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).exists():
            transition(locked, S.EXPIRED, ledger_row=row)
            changes.append(f"status {S.EXPIRED}")


def _record_withdrawal(locked, result: PaymentResult, *, source, webhook_event=None) -> None:
    """Note a virtual account the PG reports closed (by our call, or in its console)."""
    rows = ledger.rows(locked).filter(kind=K.WITHDRAW, pg_payment_id=result.payment_id)
    open_row = rows.filter(status__in=OPEN_TRANSACTION_STATUSES).first()
    if open_row is not None:
        ledger.finish(open_row, T.SUCCEEDED, result=result)
        return
    if rows.filter(status=T.SUCCEEDED).exists():
        return
    ledger.create(
        locked,
        K.WITHDRAW,
        status=T.SUCCEEDED,
        amount=result.amount,
        currency=result.currency,
        idempotency_key=f"{locked.order_number}-withdrawn-{ledger.digest(result.payment_id)}",
        pg_payment_id=result.payment_id,
        source=source,
        reason=str(_("closed at the PG")),
        webhook_event=webhook_event,
        response=ledger.storable(result.raw),
    )


def _supersede_waiting_account(locked, rows, changes: list[str]) -> list:
    """The order's unpaid virtual account gives way to another payment: its confirm row fails, a withdrawal follows."""
    waiting = rows.filter(kind=K.CONFIRM, status=T.WAITING).first()
    follow_ups = []
    if waiting is not None:
        ledger.finish(waiting, T.FAILED, error=OperationRefused(_("Another payment paid the order."), code="SUPERSEDED"))
        account = PaymentResult(
            state=P.WAITING_FOR_DEPOSIT,
            payment_id=waiting.pg_payment_id,
            order_number=locked.order_number,
            amount=waiting.amount,
            currency=waiting.currency,
        )
        follow_up = _open_follow_up(locked, account, K.WITHDRAW, reason="the order was paid another way")
        if follow_up is not None:
            follow_ups.append(follow_up)
            changes.append("withdrawal")
    return follow_ups


def _reverse_deposit(locked, rows, result: PaymentResult, *, source, webhook_event=None) -> list[str]:
    """The bank took a deposit back: the order waits for its deposit again (PAID -> WAITING_FOR_DEPOSIT)."""
    if locked.status != S.PAID:
        # Part of it was refunded already: nothing the table can express; a person must look.
        logger.error("order %s: the PG reports the deposit reversed after a refund (%s)", locked.order_number, locked.status)
        raise OperationRefused(_("The deposit was reversed after a refund; see the ledger."), code="REVERSAL_AFTER_REFUND")
    confirm = rows.filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
    if confirm is not None:
        ledger.finish(confirm, T.WAITING)
    reversal = ledger.create(
        locked,
        K.REVERSAL,
        status=T.SUCCEEDED,
        amount=result.amount,
        currency=result.currency,
        idempotency_key=f"{locked.order_number}-reversal-{uuid.uuid4().hex[:16]}",
        pg_payment_id=result.payment_id,
        source=source,
        reason=str(_("deposit reversed at the PG")),
        webhook_event=webhook_event,
        response=ledger.storable(result.raw),
    )
    extra = _merge_payment_fields(locked, result)
    transition(locked, S.WAITING_FOR_DEPOSIT, ledger_row=reversal, extra_fields=extra)
    return ["deposit reversed", f"status {S.WAITING_FOR_DEPOSIT}"]


def _record_confirm(locked, row, result: PaymentResult, status: str, *, source, actor=None, **fields):
    """Write the PG's answer about a payment on its confirm row (a new one when ``row`` is None)."""
    if row is None:
        row = locked.get_transaction_model()(
            order=locked,
            kind=K.CONFIRM,
            idempotency_key=confirm_key(locked.order_number, result.payment_id),
            source=source,
            actor=_user(actor),
        )
    row.order = locked
    ledger.finish(
        row,
        status,
        result=result,
        amount=result.amount,
        currency=result.currency.upper(),
        pg_payment_id=result.payment_id,
        **fields,
    )
    return row


def _sync_cancels(locked, result: PaymentResult, *, source, settle_stale, webhook_event=None) -> list[str]:
    """Make the ledger's cancels and ``canceled_amount`` agree with what the PG reports.

    Cancels the PG reports are matched to our open cancel rows (by the
    reference the PG echoes, then by amount); those no row asked for (a cancel
    in the PG's dashboard) become ``sync`` rows, keyed by the PG's cancel id so
    that they are recorded once however often they are reported.
    """
    rows = ledger.rows(locked)
    done = list(rows.filter(kind__in=CANCEL_KINDS, status=T.SUCCEEDED))
    known_ids = {r.pg_transaction_id for r in done if r.pg_transaction_id}
    open_rows = list(rows.filter(kind=K.CANCEL, status__in=OPEN_TRANSACTION_STATUSES).order_by("created", "pk"))
    changes: list[str] = []

    def succeed(row, amount, pg_id):
        ledger.finish(row, T.SUCCEEDED, amount=amount, pg_transaction_id=(pg_id or row.pg_transaction_id)[:200])
        changes.append(f"cancel {amount} confirmed")

    def add_sync(amount, pg_id, key_part):
        key = f"{locked.order_number}-sync-{ledger.digest(key_part)}"
        if rows.filter(idempotency_key=key).exists():
            return
        ledger.create(
            locked,
            K.SYNC,
            status=T.SUCCEEDED,
            amount=amount,
            currency=locked.currency,
            idempotency_key=key,
            pg_payment_id=locked.pg_payment_id,
            pg_transaction_id=pg_id[:200],
            source=source,
            reason=str(_("cancelled at the PG")),
            webhook_event=webhook_event,
            response=ledger.storable(result.raw),
        )
        changes.append(f"cancel {amount} found at the PG")

    if result.cancels:
        for entry in result.cancels:
            if entry.pg_cancel_id and entry.pg_cancel_id in known_ids:
                continue
            match = None
            if entry.reference:
                match = next((r for r in open_rows if r.idempotency_key == entry.reference), None)
            if match is None:
                match = next((r for r in open_rows if same_amount(r.amount, entry.amount)), None)
            if match is not None:
                open_rows.remove(match)
                succeed(match, entry.amount, entry.pg_cancel_id)
            else:
                add_sync(entry.amount, entry.pg_cancel_id, entry.pg_cancel_id or f"{entry.amount}-{entry.canceled_at}")
            if entry.pg_cancel_id:
                known_ids.add(entry.pg_cancel_id)
    else:
        # The PG reports only a total: attribute the difference to our open rows first.
        missing = result.canceled_amount - sum((r.amount for r in done), Decimal(0))
        for row in list(open_rows):
            if 0 < row.amount <= missing:
                open_rows.remove(row)
                succeed(row, row.amount, "")
                missing -= row.amount
        if missing > 0:
            add_sync(missing, "", f"total-{result.canceled_amount}")

    if settle_stale:
        stale_before = _now() - conf.in_flight_timeout()
        for row in open_rows:
            if row.modified < stale_before:
                ledger.finish(row, T.FAILED, error=GatewayError(_("The PG has no record of this cancel."), code="NOT_APPLIED_AT_PG"))
                changes.append(f"cancel {row.amount} not found at the PG")

    return changes + _apply_ledger_total(locked)


def _apply_ledger_total(locked) -> list[str]:
    """Set ``canceled_amount`` (and the status) from the succeeded cancel rows."""
    rows = ledger.rows(locked).filter(kind__in=CANCEL_KINDS, status=T.SUCCEEDED)
    total = sum((r.amount for r in rows), Decimal(0))
    if total == locked.canceled_amount:
        return []
    if total > locked.amount or total < locked.canceled_amount:
        logger.error(
            "order %s: ledger cancels %s, order cancelled %s of %s; not applied",
            locked.order_number,
            total,
            locked.canceled_amount,
            locked.amount,
        )
        raise OperationRefused(_("The cancelled amounts do not add up; see the ledger."), code="LEDGER_INCONSISTENT")
    delta = total - locked.canceled_amount
    locked.canceled_amount = total
    target = S.CANCELED if total >= locked.amount else S.PARTIAL_CANCELED
    last = rows.order_by("-completed_at", "-pk").first()
    transition(locked, target, amount=delta, ledger_row=last, extra_fields=["canceled_amount"])
    return [f"cancelled {total} in all"]


# --- follow-ups: money the library gives back or closes by itself -------------------


def _open_follow_up(locked, result: PaymentResult, kind: str, *, reason: str):
    """Write the pending row of a compensating cancel or a withdrawal of ``result``, unless one is under way or done.

    Returns ``(row, result)`` for the caller to run after commit, or None. A
    follow-up the PG refused :data:`MAX_FOLLOW_UP_ATTEMPTS` times is written
    as *needs attention* instead, and not sent again.
    """
    existing = ledger.rows(locked).filter(kind=kind, pg_payment_id=result.payment_id)
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
        _announce_attention(locked, row, row.error_message)
        return None
    return (row, result)


def _run_follow_up(order, row, result: PaymentResult) -> None:
    """Steps 2 and 3 of a compensating cancel or a withdrawal whose pending row is written."""
    gateway = order.get_gateway()
    request = CancelRequest(
        order=order.snapshot(),
        payment_id=row.pg_payment_id,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason or "compensation",
        idempotency_key=row.idempotency_key,
        balance_before=result.balance if row.kind == K.COMPENSATE else result.amount,
        requested_by=TransactionSource.SYSTEM,
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
    with _atomic(order):
        locked = _lock(order)
        locked_row = ledger.lock(row)
        if locked_row.is_open:
            ledger.finish(locked_row, status, result=reply, error=error, pg_transaction_id=pg_id[:200])
            if status == T.ATTENTION:
                _announce_attention(locked, locked_row, str(error))
            elif status == T.FAILED:
                # Refused: a new attempt (a new key) waits for the next reconciliation,
                # or the row needs attention once the PG has refused too often.
                _open_follow_up(locked, result, row.kind, reason=row.reason)


def _run_follow_ups(order, follow_ups) -> None:
    for row, result in follow_ups:
        _run_follow_up(order, row, result)


def _needs_follow_up(kind: str, result: PaymentResult | None) -> bool:
    """Does the PG still hold what a follow-up row of ``kind`` is about?"""
    if result is None:
        return False
    if kind == K.WITHDRAW:
        return result.state == P.WAITING_FOR_DEPOSIT
    return result.state in (P.APPROVED, P.PARTIAL_CANCELED) and result.balance > 0


def _apply(order, result: PaymentResult, *, source, actor=None, confirm_row=None, webhook_event=None, settle_stale=False) -> Outcome:
    """Apply ``result`` under the order's lock; then run the follow-ups it called for."""
    try:
        with _atomic(order):
            locked = _lock(order)
            row = ledger.lock(confirm_row) if confirm_row is not None else None
            changes, row, follow_ups = _apply_locked(
                locked,
                result,
                source=source,
                actor=actor,
                confirm_row=row,
                webhook_event=webhook_event,
                settle_stale=settle_stale,
            )
            gateway = locked.get_gateway()
            compensated = bool(locked.pg_payment_id) and locked.pg_payment_id not in _references(gateway, result)
            if webhook_event is not None and changes:
                # Only a delivery that changed something leaves a row in the order's ledger
                # (the webhook log keeps every delivery): a repeat of what the shop knew,
                # or a stranger's closed window, writes nothing into a buyer's order.
                _record_webhook(locked, webhook_event, result, changes)
    except AmountMismatch as exc:
        return _handle_mismatch(order, result, exc, source=source, actor=actor, confirm_row=confirm_row)
    _run_follow_ups(locked, follow_ups)
    _refresh(order, locked)
    if row is not None and row.pk is not None:
        row.refresh_from_db()
    return Outcome(order=locked, transaction=row, replayed=not changes, changes=tuple(changes), compensated=compensated)


def _record_webhook(locked, webhook_event, result: PaymentResult, changes: list[str]) -> None:
    """One ledger row per applied webhook delivery, saying what it changed."""
    key = f"{locked.order_number}-wh-{webhook_event.pk}"
    if ledger.rows(locked).filter(idempotency_key=key).exists():
        return
    ledger.create(
        locked,
        K.WEBHOOK,
        status=T.SUCCEEDED,
        amount=result.amount,
        currency=result.currency or locked.currency,
        idempotency_key=key,
        pg_payment_id=result.payment_id,
        pg_transaction_id=(webhook_event.event_id or "")[:200],
        response=ledger.storable(result.raw),
        source=TransactionSource.WEBHOOK,
        reason=("; ".join(changes) or str(_("no change")))[:255],
        webhook_event=webhook_event,
    )


def _handle_mismatch(order, result: PaymentResult, exc: AmountMismatch, *, source, actor=None, confirm_row=None) -> Outcome:
    """The PG confirmed an amount the shop did not ask for: record it, fail the order, give the money back."""
    logger.warning("order %s: %s", order.order_number, exc)
    with _atomic(order):
        locked = _lock(order)
        row = ledger.lock(confirm_row) if confirm_row is not None else None
        if row is None:
            row = ledger.rows(locked).filter(idempotency_key=confirm_key(locked.order_number, result.payment_id)).first()
        row = _record_confirm(locked, row, result, T.FAILED, source=source, actor=actor, error=exc)
        if not locked.pg_payment_id:
            # Remember the payment, so a later deposit or lookup finds it and gives it back.
            locked.pg_payment_id = result.payment_id
            locked.save(update_fields=["pg_payment_id"])
        if locked.status in OPEN_STATUSES:
            transition(locked, S.FAILED, ledger_row=row)
        follow_up = None
        if result.state == P.WAITING_FOR_DEPOSIT:
            follow_up = _open_follow_up(locked, result, K.WITHDRAW, reason="amount mismatch")
        elif result.state in (P.APPROVED, P.PARTIAL_CANCELED) and result.balance > 0:
            follow_up = _open_follow_up(locked, result, K.COMPENSATE, reason="amount mismatch")
    if follow_up is not None:
        _run_follow_up(locked, *follow_up)
    _refresh(order, locked)
    row.refresh_from_db()
    return Outcome(order=locked, transaction=row, changes=("amount mismatch",), error=exc)


# --- confirm ----------------------------------------------------------------------

#: Failures after which nothing happened at the PG, so the buyer may try the
#: same payment again (the failed row gives up its idempotency key).
_RETRYABLE_CONFIRM_ERRORS = (AuthenticationFailed, RetryLater)


def confirm(order, *, payment_id: str, amount=None, source: str = TransactionSource.CUSTOMER, actor=None, wait: float | None = None) -> Outcome:
    """Approve the payment ``payment_id`` of ``order`` at its PG.

    The caller must have established that the request comes from the order's
    buyer (their session, or the signed token of the checkout): see
    :class:`~django_pgpay.views.ConfirmMixin`. ``amount`` is what the browser's
    return claims: it is compared before any PG call, and a difference raises
    :class:`AmountMismatch` and changes nothing. A repeated confirm of a paid
    order returns ``replayed=True``; a confirm of the same order running
    elsewhere is waited for up to ``wait`` seconds (``PGPAY["CONFIRM_WAIT"]``),
    then ``pending`` is returned.

    Raises :class:`OperationRefused` when the order cannot be paid,
    :class:`PaymentDeclined` when the PG refuses (the order becomes FAILED
    where the PG declined our confirm call; a declined window of a PG without
    one leaves the order READY for another try), and :class:`AmountMismatch`
    when the PG confirmed another amount (the order becomes FAILED and the
    payment is cancelled at the PG).
    """
    if not isinstance(payment_id, str) or not payment_id or len(payment_id) > 200 or "\x00" in payment_id:
        raise OperationRefused(_("The payment id is missing or invalid."), code="INVALID_PAYMENT_ID")
    if amount is not None and not isinstance(amount, Decimal):
        try:
            amount = parse_amount(amount)
        except MoneyError as exc:
            raise OperationRefused(_("The amount is not valid."), code="INVALID_AMOUNT") from exc
    gateway = order.get_gateway()
    wait = float(conf.setting("CONFIRM_WAIT")) if wait is None else wait
    key = confirm_key(order.order_number, payment_id)
    late = busy = row = None

    with _atomic(order):
        locked = _lock(order)
        rows = ledger.rows(locked)
        succeeded = rows.filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
        if succeeded is not None and (
            succeeded.idempotency_key == key or payment_id in gateway.payment_references(locked.pg_payment_id, locked.pg_data)
        ):
            _refresh(order, locked)
            return Outcome(order=locked, transaction=succeeded, replayed=True)
        if locked.status != S.READY:
            if not gateway.requires_confirm_call and locked.status in (S.EXPIRED, S.FAILED, S.WAITING_FOR_DEPOSIT, *PAID_STATUSES):
                # The PG took this money without a confirm call (PortOne V1):
                # look it up, so it is applied or given back.
                late = True
            else:
                raise OperationRefused(_("This order cannot be paid any more."), code="NOT_CONFIRMABLE", order=locked)
        else:
            if amount is not None and not same_amount(amount, locked.amount):
                # A tampered return: refused before anything reaches the PG.
                raise AmountMismatch(
                    expected=locked.amount,
                    actual=amount,
                    expected_currency=locked.currency,
                    actual_currency=locked.currency,
                    order_number=locked.order_number,
                )
            mine = rows.filter(idempotency_key=key).first()
            if mine is not None and mine.status == T.FAILED:
                raise ledger.error_from_row(mine)
            if mine is not None:
                busy = mine
            else:
                busy = rows.filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).order_by("created", "pk").first()
            if busy is None:
                row = ledger.create(
                    locked,
                    K.CONFIRM,
                    amount=locked.amount,
                    currency=locked.currency,
                    idempotency_key=key,
                    pg_payment_id=payment_id,
                    source=source,
                    actor=_user(actor),
                )
        snapshot = locked.snapshot()

    if late:
        return _confirm_late(order, gateway, payment_id, key, source=source, actor=actor)
    if busy is not None:
        return _wait_or_settle(order, busy, wait=wait, source=source)
    return _run_confirm(order, row, snapshot, source=source, actor=actor)


def _confirm_late(order, gateway, payment_id: str, key: str, *, source, actor=None) -> Outcome:
    """A return for an order that is no longer READY, at a PG without a confirm call: apply what the PG says."""
    snapshot = order.snapshot()
    result = gateway.lookup(payment_id=payment_id, order=snapshot)
    if result.order_number and result.order_number != order.order_number:
        raise OperationRefused(_("The payment belongs to another order."), code="PAYMENT_ORDER_MISMATCH", order=order)
    outcome = _apply(order, result, source=source, actor=actor)
    if outcome.order.status in (S.EXPIRED, S.FAILED) or outcome.compensated:
        # The money goes back (or was never taken); this payment paid nothing.
        failed = ledger.rows(order).filter(idempotency_key=key, status=T.FAILED).first()
        if failed is not None and not outcome.compensated:
            raise ledger.error_from_row(failed)
        if outcome.compensated:
            return outcome
        raise OperationRefused(_("This order cannot be paid any more."), code="NOT_CONFIRMABLE", order=outcome.order)
    return outcome


def _run_confirm(order, row, snapshot, *, source, actor=None) -> Outcome:
    """Steps 2 and 3 of a confirm whose pending row ``row`` is written."""
    gateway = order.get_gateway()
    request = ConfirmRequest(
        order=snapshot,
        payment_id=row.pg_payment_id,
        amount=snapshot.amount,
        currency=snapshot.currency,
        idempotency_key=row.idempotency_key,
    )
    try:
        result = gateway.confirm(request)
    except AlreadyProcessed:
        try:
            result = gateway.lookup(payment_id=row.pg_payment_id, order=snapshot)
        except GatewayError as exc:
            return _mark(order, row, T.UNKNOWN, exc)
    except GatewayError as exc:
        if exc.outcome_unknown:
            return _mark(order, row, T.UNKNOWN, exc)
        if isinstance(exc, (NotFound, InvalidRequest)) and not exc.outcome_unknown:
            # The PG knows no such payment of this order: nothing happened anywhere,
            # so nothing stays in the order's ledger (a made-up id costs one call, no row).
            _forget(order, row)
            raise
        retryable = isinstance(exc, (GatewayUnavailable, *_RETRYABLE_CONFIRM_ERRORS))
        fail_order = isinstance(exc, PaymentDeclined) and gateway.requires_confirm_call
        _mark(order, row, T.FAILED, exc, fail_order=fail_order, release_key=retryable)
        raise
    if result.state in (P.PENDING, P.AUTHENTICATED):
        return _mark(order, row, T.UNKNOWN, GatewayError(_("The PG has not approved the payment yet."), code="NOT_APPROVED"))
    outcome = _apply(order, result, source=source, actor=actor, confirm_row=row)
    if outcome.error is not None:
        raise outcome.error
    if result.state in (P.FAILED, P.EXPIRED):
        raise PaymentDeclined(result.failure_message or None, gateway=gateway.alias, code=result.failure_code or None)
    return outcome


def _forget(order, row) -> None:
    """Remove the pending confirm row of a payment id the PG does not know for this order."""
    with _atomic(order):
        _lock(order)
        locked_row = type(row)._base_manager.select_for_update().filter(pk=row.pk).first()
        if locked_row is not None and locked_row.status == T.PENDING and locked_row.kind == K.CONFIRM:
            locked_row.delete()
    logger.info("order %s: the PG knows no payment %s of it; nothing recorded", order.order_number, row.pg_payment_id)


def _mark(order, row, status: str, error: PgPayError, *, fail_order: bool = False, release_key: bool = False) -> Outcome:
    """Record a confirm, cancel or withdrawal that failed, or whose outcome is unknown.

    ``release_key`` renames the failed row's idempotency key, for failures after
    which nothing happened at the PG: the same operation may then be tried again.
    """
    with _atomic(order):
        locked = _lock(order)
        locked_row = ledger.lock(row)
        if locked_row.is_open:
            extra = {}
            if release_key:
                extra["idempotency_key"] = f"{locked_row.idempotency_key[:200]}-x{locked_row.pk}"
            ledger.finish(locked_row, status, error=error, **extra)
            if fail_order and locked.status in OPEN_STATUSES:
                transition(locked, S.FAILED, ledger_row=locked_row)
    _refresh(order, locked)
    if status == T.UNKNOWN:
        logger.warning("order %s: %s outcome unknown (%r)", order.order_number, locked_row.kind, error)
    return Outcome(order=locked, transaction=locked_row, changes=(f"{locked_row.kind} {status}",))


def _wait_or_settle(order, row, *, wait: float, source) -> Outcome:
    """Another confirm holds ``row``: wait for it, or settle it at the PG if it went silent."""
    deadline = time.monotonic() + wait
    while True:
        row.refresh_from_db()
        if not row.is_open:
            break
        if row.status == T.UNKNOWN or row.modified < _now() - conf.in_flight_timeout():
            outcome = settle(order, source=source)
            if outcome.error is not None and not isinstance(outcome.error, GatewayError):
                raise outcome.error
            return outcome
        if time.monotonic() >= deadline:
            order.refresh_from_db()
            return Outcome(order=order, transaction=row)
        time.sleep(0.05)
    order.refresh_from_db()
    if row.status == T.FAILED and row.error_code != "ALREADY_APPLIED":
        raise ledger.error_from_row(row)
    succeeded = ledger.rows(order).filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
    return Outcome(order=order, transaction=succeeded or row, replayed=True)


# --- cancel -----------------------------------------------------------------------


def cancel(
    order,
    amount,
    *,
    reason: str,
    source: str = TransactionSource.CUSTOMER,
    actor=None,
    idempotency_key: str | None = None,
) -> Outcome:
    """Give back ``amount`` of a paid order: a Decimal (or its text), or :data:`FULL` for everything left.

    There is no default: "everything" is always asked for by name. Refused
    with :class:`NotCancelable` and nothing changed when the order is not
    cancellable, or the amount is missing, not a number, not positive, has
    more decimals than the currency, or exceeds the balance; with
    :class:`OperationInProgress` while another money operation of the order is
    open. ``idempotency_key`` (letters, digits, ``-`` and ``_``) makes a
    repeated request, such as a double-clicked form, the same cancel; the same
    key with another amount is refused (``TOKEN_REUSED``).

    An order waiting for the deposit of a virtual account has nothing to give
    back: cancelling it (in full) withdraws the account at the PG and the
    order expires unpaid.

    Raises the gateway's error when the PG refuses (recorded in the ledger;
    nothing is pending); an answer that never came leaves the row *unknown*
    and returns ``pending``.
    """
    gateway = order.get_gateway()
    reason = (reason or "").replace("\x00", "").strip()[:255] or str(_("cancelled"))
    token = None
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not _KEY_TOKEN_RE.match(idempotency_key):
            raise NotCancelable(_("Invalid request token."), code="INVALID_KEY")
        token = f"{order.order_number}-cancel-{idempotency_key}"
    if amount is not FULL:
        if amount is None or isinstance(amount, (bool, float)):
            raise NotCancelable(_("Say how much to cancel, or cancel everything explicitly."), code="INVALID_AMOUNT", order=order)
        try:
            amount = parse_amount(amount, order.currency)
        except MoneyError as exc:
            raise NotCancelable(_("The amount is not valid."), code="INVALID_AMOUNT", order=order) from exc

    if order.status == S.WAITING_FOR_DEPOSIT:
        if amount is not FULL and amount != order.balance:
            raise NotCancelable(_("An unpaid virtual account can only be cancelled in full."), code="PARTIAL_NOT_ALLOWED", order=order)
        return _withdraw_own(order, source=source, actor=actor, reason=reason, idempotency_key=token)

    if ledger.stale_rows(order).exists():
        settle(order)

    with _atomic(order):
        locked = _lock(order)
        rows = ledger.rows(locked)
        if token is not None:
            existing = rows.filter(Q(idempotency_key=token) | Q(idempotency_key__startswith=f"{token}-x")).order_by("-pk").first()
            if existing is not None:
                _refresh(order, locked)
                if amount is not FULL and not same_amount(existing.amount, amount):
                    raise NotCancelable(
                        _("This cancel form was already used for another amount. Nothing more was cancelled."),
                        code="TOKEN_REUSED",
                        order=locked,
                    )
                if existing.idempotency_key == token:
                    if existing.status == T.FAILED:
                        raise ledger.error_from_row(existing)
                    return Outcome(order=locked, transaction=existing, replayed=True)
        if locked.status == S.WAITING_FOR_DEPOSIT:
            # A deposit reversed meanwhile: the account is withdrawn instead.
            withdraw_instead = True
        else:
            withdraw_instead = False
            if not locked.is_cancelable:
                raise NotCancelable(order=locked)
            if ledger.blocking_rows(locked).exists():
                raise OperationInProgress(_("Another operation on this order is still being processed. Please try again shortly."))
            balance = locked.balance
            amount = _allowed_amount(locked, gateway, amount)
            row = ledger.create(
                locked,
                K.CANCEL,
                amount=amount,
                currency=locked.currency,
                idempotency_key=token or f"{locked.order_number}-cancel-{uuid.uuid4().hex[:16]}",
                pg_payment_id=locked.pg_payment_id,
                source=source,
                actor=_user(actor),
                reason=reason,
            )
            snapshot = locked.snapshot()
    if withdraw_instead:
        return _withdraw_own(order, source=source, actor=actor, reason=reason, idempotency_key=token)

    request = CancelRequest(
        order=snapshot,
        payment_id=snapshot.payment_id,
        amount=amount,
        currency=snapshot.currency,
        reason=reason,
        idempotency_key=row.idempotency_key,
        balance_before=balance,
        requested_by=_actor_label(source, actor),
    )
    try:
        reply = gateway.cancel(request)
    except AlreadyCanceled as exc:
        # The PG gave the money back already (its dashboard, an earlier call):
        # our request did nothing, so its row fails before the PG's view is applied.
        _mark(order, row, T.FAILED, exc)
        row.refresh_from_db()
        try:
            result = gateway.lookup(payment_id=snapshot.payment_id, order=snapshot)
        except GatewayError:
            raise exc from None
        outcome = _apply(order, result, source=source, actor=actor)
        return replace(outcome, transaction=row)
    except GatewayError as exc:
        if exc.outcome_unknown:
            return _mark(order, row, T.UNKNOWN, exc)
        # A refusal: nothing moved, nothing is pending; the same cancel may be asked again.
        _mark(order, row, T.FAILED, exc, release_key=True)
        raise
    with _atomic(order):
        locked = _lock(order)
        locked_row = ledger.lock(row)
        changes: list[str] = []
        if locked_row.is_open:
            ledger.finish(locked_row, T.SUCCEEDED, result=reply, amount=reply.amount or amount, pg_transaction_id=reply.pg_cancel_id[:200])
            changes.append(f"cancel {locked_row.amount}")
        if reply.payment is not None:
            changes += _sync_cancels(locked, reply.payment, source=source, settle_stale=False)
        else:
            changes += _apply_ledger_total(locked)
    _refresh(order, locked)
    locked_row.refresh_from_db()
    return Outcome(order=locked, transaction=locked_row, replayed=not changes, changes=tuple(changes))


def _allowed_amount(order, gateway, amount) -> Decimal:
    """The amount a cancel of ``order`` would give back, or the :class:`NotCancelable` that refuses it."""
    if not order.is_cancelable:
        raise NotCancelable(order=order)
    balance = order.balance
    if order.status == S.WAITING_FOR_DEPOSIT:
        if amount is not FULL and amount != balance:
            raise NotCancelable(_("An unpaid virtual account can only be cancelled in full."), code="PARTIAL_NOT_ALLOWED", order=order)
        return balance
    amount = balance if amount is FULL else amount
    if amount <= 0:
        raise NotCancelable(_("The amount to cancel must be positive."), code="INVALID_AMOUNT", order=order)
    if amount > balance:
        raise NotCancelable(
            _("The amount to cancel exceeds what is left to cancel (%(balance)s %(currency)s).")
            % {"balance": f"{quantize(balance, order.currency):,}", "currency": order.currency},
            code="EXCEEDS_BALANCE",
            order=order,
        )
    if amount != balance and not gateway.supports_partial_cancel:
        raise NotCancelable(
            _("%(pg)s cannot cancel part of a payment.") % {"pg": gateway.pg_name},
            code="PARTIAL_NOT_SUPPORTED",
            order=order,
        )
    return amount


def check_cancel(order, amount) -> Decimal:
    """What ``cancel(order, amount, ...)`` would give back now, or the :class:`NotCancelable` it would raise.

    Changes nothing and calls no PG: for a confirmation step that states the
    amount before anything moves. :func:`cancel` checks again under the lock.
    """
    if amount is not FULL:
        if amount is None or isinstance(amount, (bool, float)):
            raise NotCancelable(_("Say how much to cancel, or cancel everything explicitly."), code="INVALID_AMOUNT", order=order)
        try:
            amount = parse_amount(amount, order.currency)
        except MoneyError as exc:
            raise NotCancelable(_("The amount is not valid."), code="INVALID_AMOUNT", order=order) from exc
    return _allowed_amount(order, order.get_gateway(), amount)


def _withdraw_own(order, *, source, actor=None, reason: str, idempotency_key: str | None = None) -> Outcome:
    """Close the order's unpaid virtual account at the PG; the order expires unpaid.

    Three steps like every money operation, though no money moves: a pending
    ``withdraw`` row, the PG's call, then the answer under the lock. When the
    PG refuses because the deposit arrived meanwhile, the payment is looked up
    and applied (the order becomes PAID) and the refusal is raised.
    """
    gateway = order.get_gateway()
    with _atomic(order):
        locked = _lock(order)
        rows = ledger.rows(locked)
        if idempotency_key is not None:
            existing = rows.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                _refresh(order, locked)
                if existing.status == T.FAILED:
                    raise ledger.error_from_row(existing)
                return Outcome(order=locked, transaction=existing, replayed=True)
        if locked.status != S.WAITING_FOR_DEPOSIT:
            _refresh(order, locked)
            if locked.status in (S.EXPIRED, S.FAILED):
                return Outcome(order=locked, replayed=True)
            raise NotCancelable(order=locked)
        if ledger.blocking_rows(locked).exists():
            raise OperationInProgress(_("Another operation on this order is still being processed. Please try again shortly."))
        row = ledger.create(
            locked,
            K.WITHDRAW,
            amount=locked.amount,
            currency=locked.currency,
            idempotency_key=idempotency_key or f"{locked.order_number}-withdraw-{uuid.uuid4().hex[:16]}",
            pg_payment_id=locked.pg_payment_id,
            source=source,
            actor=_user(actor),
            reason=reason,
        )
        snapshot = locked.snapshot()
    request = CancelRequest(
        order=snapshot,
        payment_id=snapshot.payment_id,
        amount=snapshot.amount,
        currency=snapshot.currency,
        reason=reason,
        idempotency_key=row.idempotency_key,
        balance_before=snapshot.amount,
        requested_by=_actor_label(source, actor),
    )
    try:
        reply = gateway.withdraw(request)
    except AlreadyCanceled:
        reply = None
    except GatewayError as exc:
        if exc.outcome_unknown:
            return _mark(order, row, T.UNKNOWN, exc)
        _mark(order, row, T.FAILED, exc, release_key=True)
        # The account may have been paid (or expired) meanwhile: apply what the PG says.
        try:
            _apply(order, gateway.lookup(payment_id=snapshot.payment_id, order=snapshot), source=source, actor=actor)
        except PgPayError:
            pass
        raise
    with _atomic(order):
        locked = _lock(order)
        locked_row = ledger.lock(row)
        if locked_row.is_open:
            ledger.finish(locked_row, T.SUCCEEDED, result=reply, pg_transaction_id=(reply.pg_cancel_id if reply else "")[:200])
        waiting = ledger.rows(locked).filter(kind=K.CONFIRM, status=T.WAITING, pg_payment_id=locked.pg_payment_id).first()
        if waiting is not None:
            ledger.finish(waiting, T.FAILED, error=OperationRefused(_("The virtual account was closed before any deposit."), code="WITHDRAWN"))
        changes = []
        if locked.status == S.WAITING_FOR_DEPOSIT:
            transition(locked, S.EXPIRED, ledger_row=locked_row)
            changes.append(f"status {S.EXPIRED}")
    _refresh(order, locked)
    locked_row.refresh_from_db()
    return Outcome(order=locked, transaction=locked_row, changes=("virtual account withdrawn", *changes))


# --- webhooks, expiry and reconciliation ---------------------------------------------


def apply_event(order, event: WebhookEvent, *, webhook_event=None) -> Outcome:
    """Apply a verified webhook (``event.payment`` as the PG reports it, fetched or signed)."""
    if not event.verified or event.payment is None:
        raise OperationRefused(_("The notification was not verified."), code="WEBHOOK_UNVERIFIED")
    return _apply(order, event.payment, source=TransactionSource.WEBHOOK, webhook_event=webhook_event)


def expire(order, *, source: str = TransactionSource.RECONCILE, only_if_due: bool = False) -> Outcome:
    """Mark an unpaid order EXPIRED and release its stock (``on_expired``).

    A READY order expires at once; an order waiting for the deposit of a
    virtual account has it withdrawn at the PG first. Refused with
    :class:`OperationInProgress` while a confirm of the order is open;
    :func:`reconcile` settles that first. With ``only_if_due`` an order whose
    ``expires_at`` was moved into the future meanwhile (its buyer came back)
    is left as it is.
    """
    if order.status == S.WAITING_FOR_DEPOSIT:
        return _withdraw_own(order, source=source, reason=str(_("expired unpaid")))
    with _atomic(order):
        locked = _lock(order)
        if locked.status not in OPEN_STATUSES or (only_if_due and locked.expires_at is not None and locked.expires_at > _now()):
            _refresh(order, locked)
            return Outcome(order=locked, replayed=True)
        if locked.status == S.WAITING_FOR_DEPOSIT:
            withdraw = True
        else:
            withdraw = False
            if ledger.rows(locked).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).exists():
                raise OperationInProgress()
            transition(locked, S.EXPIRED)
    if withdraw:
        return _withdraw_own(order, source=source, reason=str(_("expired unpaid")))
    _refresh(order, locked)
    return Outcome(order=locked, changes=(f"status {S.EXPIRED}",))


def _known_payment_ids(order, gateway) -> set[str]:
    ids = {order.pg_payment_id}
    ids |= set(ledger.rows(order).exclude(kind=K.WEBHOOK).values_list("pg_payment_id", flat=True))
    ids |= gateway.known_attempts(order.pg_data or {})
    return ids - {""}


def _attempt_order(order, gateway):
    """Sort key of attempts: the order's payment first, then paid ones, then accounts, then the rest."""

    def key(result: PaymentResult):
        if order.pg_payment_id and order.pg_payment_id in _references(gateway, result):
            rank = 0
        elif result.state in (P.APPROVED, P.PARTIAL_CANCELED, P.CANCELED):
            rank = 1
        elif result.state == P.WAITING_FOR_DEPOSIT:
            rank = 2
        else:
            rank = 3
        moment = result.approved_at.timestamp() if result.approved_at else float("inf")
        return (rank, moment, result.payment_id)

    return key


def settle(order, *, source: str = TransactionSource.RECONCILE) -> Outcome:
    """Look up every attempt of the order at the PG and apply what it says; settle open ledger rows.

    * The order's payment is applied first (a READY order adopts the first
      paid attempt). Every other paid attempt is given back by a compensating
      cancel, every other unpaid virtual account withdrawn.
    * An open confirm the PG has authenticated but not approved is sent again
      with the same idempotency key (the PG answers a key only once).
    * Confirms the PG has no record of fail once they are older than
      ``IN_FLIGHT_TIMEOUT``.
    * Compensating cancels and withdrawals whose answer was lost are confirmed,
      or sent again; those that need attention are marked done once the PG
      shows the money returned.

    A PG that cannot be reached raises :class:`GatewayUnavailable`; nothing is changed.
    """
    gateway = order.get_gateway()
    stale_before = _now() - conf.in_flight_timeout()
    order.refresh_from_db()
    snapshot = order.snapshot()
    results = gateway.attempts(snapshot, _known_payment_ids(order, gateway))
    results.sort(key=_attempt_order(order, gateway))
    changes: list[str] = []
    main: Outcome | None = None
    error: PgPayError | None = None

    def retry_allowed(row) -> bool:
        return row.modified < stale_before or (row.status == T.UNKNOWN and gateway.supports_idempotency_key)

    for index, result in enumerate(results):
        refs = _references(gateway, result)
        open_row = ledger.rows(order).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES, pg_payment_id__in=refs).order_by("created", "pk").first()
        try:
            if result.state == P.AUTHENTICATED and gateway.requires_confirm_call:
                order.refresh_from_db()
                if open_row is not None and retry_allowed(open_row) and order.status == S.READY:
                    try:
                        outcome = _run_confirm(order, open_row, order.snapshot(), source=source)
                        changes += ["confirm sent again", *outcome.changes]
                    except PgPayError as exc:
                        order.refresh_from_db()
                        changes.append(f"confirm sent again: {exc.code}")
                        error = error or exc
                continue
            outcome = _apply(order, result, source=source, confirm_row=open_row, settle_stale=True)
        except PgPayError as exc:
            logger.error("order %s: settling %s: %r", order.order_number, result.payment_id, exc)
            error = error or exc
            if index == 0:
                break  # the order's own payment could not be applied: leave the others be
            continue
        changes += outcome.changes
        if main is None:
            main = outcome

    known_refs: set[str] = set()
    for result in results:
        known_refs |= _references(gateway, result)
    by_ref = {ref: result for result in results for ref in _references(gateway, result)}

    # Confirms the PG never approved (or never heard of) are over once nobody can be waiting for them.
    with _atomic(order):
        locked = _lock(order)
        for row in ledger.rows(locked).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES, modified__lt=stale_before):
            result = by_ref.get(row.pg_payment_id)
            if result is None:
                error_ = NotFound(_("The PG has no record of this payment."), code="NOT_FOUND")
            elif result.state.is_paid or result.state == P.WAITING_FOR_DEPOSIT:
                continue
            else:
                error_ = GatewayError(_("The PG never approved this payment."), code="NOT_APPROVED")
            ledger.finish(row, T.FAILED, error=error_)
            changes.append("confirm not approved at the PG")
    _refresh(order, locked)

    # Follow-ups whose answer was lost, and those that need attention.
    follow_rows = ledger.rows(order).filter(kind__in=(K.COMPENSATE, K.WITHDRAW), status__in=(*OPEN_TRANSACTION_STATUSES, T.ATTENTION))
    for row in follow_rows:
        target = by_ref.get(row.pg_payment_id)
        if row.status == T.ATTENTION:
            if target is not None and not _needs_follow_up(row.kind, target):
                with _atomic(order):
                    _lock(order)
                    locked_row = ledger.lock(row)
                    if locked_row.status == T.ATTENTION:
                        ledger.finish(locked_row, T.SUCCEEDED, result=target, error_code=locked_row.error_code)
                changes.append(f"{row.kind} resolved at the PG")
            continue
        if row.status == T.PENDING and row.modified >= stale_before:
            continue  # in flight elsewhere
        if _needs_follow_up(row.kind, target):
            _run_follow_up(order, row, target)
            changes.append(f"{row.kind} sent again")
        else:
            with _atomic(order):
                _lock(order)
                locked_row = ledger.lock(row)
                if locked_row.is_open:
                    ledger.finish(locked_row, T.SUCCEEDED, result=target)
            changes.append(f"{row.kind} confirmed")
    order.refresh_from_db()
    return Outcome(
        order=order,
        transaction=main.transaction if main else None,
        changes=tuple(changes),
        replayed=not changes,
        error=error or (main.error if main else None),
    )


def reconcile(order, *, now=None, deep: bool = False) -> Outcome:
    """Bring one order in step with its PG: settle its attempts and ledger rows, then expire it if its time is up.

    Orders with open ledger rows, rows that need attention, and unpaid orders
    whose time is up are looked up at the PG; with ``deep=True`` every order
    is (this finds cancels made in the PG's dashboard and payments whose
    webhook never came). A READY order past ``expires_at`` becomes EXPIRED; an
    order waiting for a deposit past its account's deadline has the account
    withdrawn and expires (some PGs keep such accounts open for ever).

    Safe to run at any time and any number of times, from cron while the site
    serves: it only applies what the PG reports, under the order's lock.
    Raises :class:`GatewayUnavailable` when the PG cannot be read.
    """
    now = now or _now()
    changes: list[str] = []
    error = None
    rows = ledger.rows(order).exclude(kind=K.WEBHOOK)
    has_open = rows.filter(status__in=(*OPEN_TRANSACTION_STATUSES, T.ATTENTION)).exists()
    due = order.status in OPEN_STATUSES and order.expires_at is not None and order.expires_at <= now
    if has_open or due or deep:
        outcome = settle(order)
        changes += outcome.changes
        error = outcome.error
    order.refresh_from_db()
    if order.status in OPEN_STATUSES and order.expires_at is not None and order.expires_at <= now:
        if not ledger.rows(order).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).exists():
            if order.status == S.READY:
                order.get_gateway().abandon(order.snapshot())
            changes += expire(order, only_if_due=True).changes
    return Outcome(order=order, changes=tuple(changes), replayed=not changes, error=error)


def orders_to_reconcile(order_model, *, now=None, deep_since=None):
    """Orders of ``order_model`` that :func:`reconcile` should visit.

    Those with open ledger rows or rows that need attention, and unpaid
    orders whose time is up; with ``deep_since`` (a datetime) also every
    order modified since then.
    """
    now = now or _now()
    txn_model = order_model.get_transaction_model()
    with_open_rows = (
        txn_model._base_manager.filter(status__in=(*OPEN_TRANSACTION_STATUSES, T.ATTENTION)).exclude(kind=K.WEBHOOK).values("order_id")
    )
    wanted = Q(pk__in=with_open_rows) | Q(status__in=OPEN_STATUSES, expires_at__lte=now)
    if deep_since is not None:
        wanted |= Q(modified__gte=deep_since)
    return order_model._base_manager.filter(wanted).order_by("pk")


__all__ = [
    "FULL",
    "MAX_FOLLOW_UP_ATTEMPTS",
    "Outcome",
    "apply_event",
    "cancel",
    "check_cancel",
    "confirm",
    "confirm_key",
    "expire",
    "orders_to_reconcile",
    "reconcile",
    "settle",
    "transition",
]
