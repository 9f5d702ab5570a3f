"""The operations: confirm, cancel, apply what a PG reports, expire, reconcile.

Views, webhooks, the admin and the management commands all call these; none of
them changes an order's status or amounts by itself. Every money-moving
operation takes three steps:

1. In a transaction, lock the order row, check what is asked against the
   order and the ledger, write a *pending* ledger row with the idempotency key
   that will be sent, and commit.
2. Call the PG outside any lock, with that key.
3. In a new transaction, lock the order again and apply the answer. An answer
   that never came leaves the row *unknown*; :func:`reconcile` settles it by a
   lookup at the PG, never by a blind retry.

Every status change goes through :func:`transition`, which checks
:data:`~django_pgpay.status.TRANSITIONS` on the locked row, runs the order's
hooks in the same transaction and sends the signals after commit.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.db import router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf
from .exceptions import (
    AlreadyCanceled,
    AuthenticationFailed,
    AlreadyProcessed,
    AmountMismatch,
    GatewayError,
    GatewayUnavailable,
    InvalidTransition,
    NotCancelable,
    NotFound,
    OperationInProgress,
    OperationRefused,
    PaymentDeclined,
    PgPayError,
    UnsupportedFeature,
    redact,
)
from .gateways.results import CancelRequest, ConfirmRequest, PaymentResult, PaymentState, WebhookEvent
from .money import MoneyError, parse_amount, quantize, same_amount
from .signals import order_status_changed, payment_canceled, payment_confirmed
from .status import (
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

_KEY_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Outcome:
    """What an operation did.

    ``order`` is the order as it stands after the operation (also refreshed in
    the instance the caller passed). ``transaction`` is the ledger row the
    operation wrote or found. ``replayed`` is True when nothing new happened
    because the same operation had already been applied (a reload of the
    return page, a duplicate webhook). ``pending`` is True when the PG's answer
    is not known yet.
    """

    order: object
    transaction: object | None = None
    replayed: bool = False
    changes: tuple[str, ...] = ()
    error: PgPayError | None = field(default=None, compare=False)

    @property
    def pending(self) -> bool:
        return self.transaction is not None and self.transaction.status in OPEN_TRANSACTION_STATUSES


# --- small helpers ----------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def confirm_key(order_number: str, payment_id: str) -> str:
    """The idempotency key of the confirm of ``payment_id``: the same payment always gets the same key."""
    return f"{order_number}-confirm-{_digest(payment_id)}"


def _atomic(order):
    return transaction.atomic(using=router.db_for_write(type(order)))


def _lock(order):
    """Re-read ``order`` with its row locked (inside an atomic block)."""
    return type(order)._base_manager.select_for_update().get(pk=order.pk)


def _rows(order):
    return order.get_transaction_model()._base_manager.filter(order_id=order.pk)


def _lock_row(row):
    return type(row)._base_manager.select_for_update().get(pk=row.pk)


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


def _json(raw) -> dict | None:
    """A PG reply made safe to store: secrets redacted, Decimals as strings."""
    if raw is None:
        return None

    def convert(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    return convert(redact(dict(raw)))


def _error_from_row(row) -> PgPayError:
    """Rebuild the error a failed ledger row recorded (for replays)."""
    if row.error_code == AmountMismatch.code:
        return OperationRefused(row.error_message or None, code=AmountMismatch.code)
    if row.kind == K.CONFIRM:
        return PaymentDeclined(row.error_message or None, code=row.error_code or None)
    return GatewayError(row.error_message or None, code=row.error_code or None)


def _finish_row(row, status: str, *, result=None, error: PgPayError | None = None, **fields) -> None:
    row.status = status
    row.completed_at = _now() if status not in OPEN_TRANSACTION_STATUSES else None
    if result is not None:
        row.response = _json(getattr(result, "raw", None) or {})
    if error is not None:
        row.error_code = str(getattr(error, "code", "") or "")[:100]
        row.error_message = str(error)
        if isinstance(error, GatewayError) and error.response:
            row.response = _json(error.response if isinstance(error.response, dict) else {"body": error.response})
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()


# --- the one status-change function ----------------------------------------------


def transition(order, target: str, *, amount: Decimal | None = None, ledger_row=None, extra_fields: Iterable[str] = ()) -> None:
    """Move a locked ``order`` to ``target``, run its hook, announce it after commit.

    Must run inside ``transaction.atomic()`` on an instance read with
    ``select_for_update()``. Raises :class:`InvalidTransition` (and changes
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
        merged = {**(locked.pg_data or {}), **_json(result.pg_data)}
        if merged != locked.pg_data:
            locked.pg_data = merged
            changed.append("pg_data")
    if result.state == PaymentState.WAITING_FOR_DEPOSIT and result.expires_at and locked.expires_at != result.expires_at:
        locked.expires_at = result.expires_at
        changed.append("expires_at")
    return changed


def _adoptable(gateway, row, result: PaymentResult) -> bool:
    """May the open confirm ``row`` be settled by ``result`` (is it the same payment)?"""
    return not row.pg_payment_id or row.pg_payment_id in gateway.payment_references(result.payment_id, result.pg_data)


def _apply_locked(locked, result: PaymentResult, *, source, actor=None, confirm_row=None, webhook_event=None, settle_stale=False):
    """Apply the PG's view of one payment to a locked order.

    Returns ``(changes, confirm row, compensation row)``; the compensation (a
    cancel the library must make itself) is run by the caller after commit.
    """
    gateway = locked.get_gateway()
    rows = _rows(locked)
    changes: list[str] = []
    compensation = None
    if result.order_number and result.order_number != locked.order_number:
        raise OperationRefused(_("The payment belongs to another order."), code="PAYMENT_ORDER_MISMATCH", order=locked)

    own = not locked.pg_payment_id or result.payment_id == locked.pg_payment_id
    row = confirm_row
    if row is None and result.payment_id:
        row = rows.filter(idempotency_key=confirm_key(locked.order_number, result.payment_id)).first()
    if row is None and own:
        row = next(
            (r for r in rows.filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).order_by("created", "pk") if _adoptable(gateway, r, result)),
            None,
        )

    state = result.state
    if state == PaymentState.CANCELED and own and locked.status == S.WAITING_FOR_DEPOSIT:
        # A virtual account withdrawn before any deposit: it never became PAID
        # (no paid_at, no on_paid, no payment_confirmed), it goes straight to CANCELED.
        changes += _sync_cancels(locked, result, source=source, settle_stale=settle_stale, webhook_event=webhook_event)
    elif state.is_paid or state == PaymentState.WAITING_FOR_DEPOSIT:
        if own and locked.status in OPEN_STATUSES:
            if locked.status == S.READY:
                # The confirm: the PG holds (or will hold) the buyer's money.
                # post_save checks amount and currency; a mismatch rolls all of this back.
                row = _record_confirm(locked, row, result, T.SUCCEEDED, source=source, actor=actor, error_code="", error_message="")
            extra = _merge_payment_fields(locked, result)
            target = S.WAITING_FOR_DEPOSIT if state == PaymentState.WAITING_FOR_DEPOSIT else S.PAID
            if locked.status != target:
                transition(locked, target, ledger_row=row, extra_fields=extra)
                changes.append(f"status {target}")
            elif extra:
                locked.save(update_fields=extra)
        elif own and confirm_row is not None and confirm_row.is_open and locked.status in PAID_STATUSES:
            # A second confirm of a payment already applied (e.g. by its webhook,
            # under another id of the same payment): nothing more to do.
            _finish_row(confirm_row, T.FAILED, result=result, error=OperationRefused(_("Already applied."), code="ALREADY_APPLIED"))
            row = rows.filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
        elif not own or locked.status in (S.EXPIRED, S.FAILED):
            # Money taken for an order we gave up on, or a second payment of one
            # order: it must go back.
            if row is not None and row.is_open:
                _finish_row(row, T.FAILED, result=result, error=OperationRefused(_("Not payable."), code="NOT_PAYABLE"))
            if result.balance > 0 and state != PaymentState.WAITING_FOR_DEPOSIT:
                reason = "payment for an order that is no longer payable" if own else "second payment for one order"
                compensation = _open_compensation(locked, result, reason=reason)
                if compensation is not None:
                    changes.append("compensation")
        if own and locked.status in (S.PAID, S.PARTIAL_CANCELED, S.CANCELED, S.WAITING_FOR_DEPOSIT):
            changes += _sync_cancels(locked, result, source=source, settle_stale=settle_stale, webhook_event=webhook_event)

    elif state in (PaymentState.FAILED, PaymentState.EXPIRED) and own:
        if row is not None and row.is_open:
            error = PaymentDeclined(result.failure_message or None, code=result.failure_code or state.value.upper())
            _finish_row(row, T.FAILED, result=result, error=error)
            changes.append("confirm failed")
        if locked.status in OPEN_STATUSES and not rows.filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).exists():
            target = S.FAILED if state == PaymentState.FAILED else S.EXPIRED
            transition(locked, target, ledger_row=row)
            changes.append(f"status {target}")

    return changes, row, compensation


def _record_confirm(locked, row, result: PaymentResult, status: str, *, source, actor=None, **fields):
    """Write the PG's answer about a payment on its confirm row (a new one when ``row`` is None)."""
    if row is None:
        row = locked.get_transaction_model()(
            order=locked,
            kind=K.CONFIRM,
            idempotency_key=confirm_key(locked.order_number, result.payment_id),
            source=source,
            actor=actor,
        )
    row.order = locked
    _finish_row(
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
    rows = _rows(locked)
    model = locked.get_transaction_model()
    done = list(rows.filter(kind__in=(K.CANCEL, K.SYNC), status=T.SUCCEEDED))
    known_ids = {r.pg_transaction_id for r in done if r.pg_transaction_id}
    open_rows = list(rows.filter(kind=K.CANCEL, status__in=OPEN_TRANSACTION_STATUSES).order_by("created", "pk"))
    changes: list[str] = []

    def succeed(row, amount, pg_id):
        _finish_row(row, T.SUCCEEDED, amount=amount, pg_transaction_id=(pg_id or row.pg_transaction_id)[:200])
        changes.append(f"cancel {amount} confirmed")

    def add_sync(amount, pg_id, key_part):
        key = f"{locked.order_number}-sync-{_digest(key_part)}"
        if rows.filter(idempotency_key=key).exists():
            return
        model._base_manager.create(
            order=locked,
            kind=K.SYNC,
            status=T.SUCCEEDED,
            amount=amount,
            currency=locked.currency,
            idempotency_key=key,
            pg_payment_id=locked.pg_payment_id,
            pg_transaction_id=pg_id[:200],
            source=source,
            reason=str(_("cancelled at the PG")),
            webhook_event=webhook_event,
            response=_json(result.raw),
            completed_at=_now(),
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
                _finish_row(row, T.FAILED, error=GatewayError(_("The PG has no record of this cancel."), code="NOT_APPLIED_AT_PG"))
                changes.append(f"cancel {row.amount} not found at the PG")

    return changes + _apply_ledger_total(locked)


def _apply_ledger_total(locked) -> list[str]:
    """Set ``canceled_amount`` (and the status) from the succeeded cancel rows."""
    rows = _rows(locked).filter(kind__in=(K.CANCEL, K.SYNC), status=T.SUCCEEDED)
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


def _open_compensation(locked, result: PaymentResult, *, reason: str):
    """Write the pending ledger row of a compensating cancel, unless one is open or done."""
    existing = _rows(locked).filter(kind=K.COMPENSATE, pg_payment_id=result.payment_id)
    if existing.filter(status__in=(*OPEN_TRANSACTION_STATUSES, T.SUCCEEDED)).exists():
        return None
    return locked.get_transaction_model()._base_manager.create(
        order=locked,
        kind=K.COMPENSATE,
        status=T.PENDING,
        amount=result.balance,
        currency=result.currency.upper(),
        idempotency_key=f"{locked.order_number}-comp-{_digest(result.payment_id)}-{existing.count() + 1}",
        pg_payment_id=result.payment_id,
        source=TransactionSource.SYSTEM,
        reason=reason[:255],
    )


def _run_compensation(order, row, result: PaymentResult) -> None:
    """Steps 2 and 3 of a compensating cancel: give back money the shop must not keep."""
    gateway = order.get_gateway()
    request = CancelRequest(
        order=order.snapshot(),
        payment_id=row.pg_payment_id,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason or "compensation",
        idempotency_key=row.idempotency_key,
        balance_before=result.balance,
        requested_by=TransactionSource.SYSTEM,
    )
    status, error, pg_id, reply = T.SUCCEEDED, None, "", None
    try:
        reply = gateway.cancel(request)
        pg_id = reply.pg_cancel_id
    except AlreadyCanceled:
        pass
    except GatewayError as exc:
        status, error = (T.UNKNOWN if exc.outcome_unknown else T.FAILED), exc
        logger.error("order %s: compensating cancel %s: %r", order.order_number, status, exc)
    with _atomic(order):
        _lock(order)
        locked_row = _lock_row(row)
        if locked_row.is_open:
            _finish_row(locked_row, status, result=reply, error=error, pg_transaction_id=pg_id[:200])


def _apply(order, result: PaymentResult, *, source, actor=None, confirm_row=None, webhook_event=None, settle_stale=False) -> Outcome:
    """Apply ``result`` under the order's lock; then run any compensation it called for."""
    try:
        with _atomic(order):
            locked = _lock(order)
            row = _lock_row(confirm_row) if confirm_row is not None else None
            changes, row, compensation = _apply_locked(
                locked,
                result,
                source=source,
                actor=actor,
                confirm_row=row,
                webhook_event=webhook_event,
                settle_stale=settle_stale,
            )
            if webhook_event is not None:
                _record_webhook(locked, webhook_event, result, changes)
    except AmountMismatch as exc:
        return _handle_mismatch(order, result, exc, source=source, actor=actor, confirm_row=confirm_row)
    if compensation is not None:
        _run_compensation(locked, compensation, result)
    _refresh(order, locked)
    if row is not None and row.pk is not None:
        row.refresh_from_db()
    return Outcome(order=locked, transaction=row, replayed=not changes, changes=tuple(changes))


def _record_webhook(locked, webhook_event, result: PaymentResult, changes: list[str]) -> None:
    """One ledger row per applied webhook delivery, saying what it changed."""
    model = locked.get_transaction_model()
    key = f"{locked.order_number}-wh-{webhook_event.pk}"
    if model._base_manager.filter(idempotency_key=key).exists():
        return
    model._base_manager.create(
        order=locked,
        kind=K.WEBHOOK,
        status=T.SUCCEEDED,
        amount=result.amount,
        currency=(result.currency or locked.currency).upper(),
        idempotency_key=key,
        pg_payment_id=result.payment_id,
        pg_transaction_id=(webhook_event.event_id or "")[:200],
        response=_json(result.raw),
        source=TransactionSource.WEBHOOK,
        reason=("; ".join(changes) or str(_("no change")))[:255],
        webhook_event=webhook_event,
        completed_at=_now(),
    )


def _handle_mismatch(order, result: PaymentResult, exc: AmountMismatch, *, source, actor=None, confirm_row=None) -> Outcome:
    """The PG confirmed an amount the shop did not ask for: record it, fail the order, give the money back."""
    logger.warning("order %s: %s", order.order_number, exc)
    with _atomic(order):
        locked = _lock(order)
        row = _lock_row(confirm_row) if confirm_row is not None else None
        if row is None:
            row = _rows(locked).filter(idempotency_key=confirm_key(locked.order_number, result.payment_id)).first()
        row = _record_confirm(locked, row, result, T.FAILED, source=source, actor=actor, error=exc)
        if not locked.pg_payment_id:
            # Remember the payment, so a later deposit or lookup finds it and gives it back.
            locked.pg_payment_id = result.payment_id
            locked.save(update_fields=["pg_payment_id"])
        if locked.status in OPEN_STATUSES:
            transition(locked, S.FAILED, ledger_row=row)
        compensation = None
        if result.balance > 0 and result.state != PaymentState.WAITING_FOR_DEPOSIT:
            compensation = _open_compensation(locked, result, reason="amount mismatch")
    if compensation is not None:
        _run_compensation(locked, compensation, result)
    _refresh(order, locked)
    row.refresh_from_db()
    return Outcome(order=locked, transaction=row, changes=("amount mismatch",), error=exc)


# --- confirm ----------------------------------------------------------------------

#: Error codes after which nothing happened at the PG, so the buyer may try the
#: same payment again (the failed row gives up its idempotency key).
_RETRYABLE_CONFIRM_ERRORS = (AuthenticationFailed,)


def confirm(order, *, payment_id: str, amount=None, source: str = TransactionSource.CUSTOMER, actor=None, wait: float | None = None) -> Outcome:
    """Approve the payment ``payment_id`` of ``order`` at its PG.

    ``amount`` is what the browser's return claims: it is compared before any
    PG call, and a difference raises :class:`AmountMismatch` and changes
    nothing. A repeated confirm of a paid order returns ``replayed=True``; a
    confirm of the same order running elsewhere is waited for up to ``wait``
    seconds (``PGPAY["CONFIRM_WAIT"]``), then ``pending`` is returned.

    Raises :class:`OperationRefused` when the order cannot be paid,
    :class:`PaymentDeclined` when the PG refuses (the order becomes FAILED), and
    :class:`AmountMismatch` when the PG confirmed another amount (the order
    becomes FAILED and the payment is cancelled at the PG).
    """
    if not payment_id or len(payment_id) > 200:
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
        rows = _rows(locked)
        succeeded = rows.filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
        if succeeded is not None and (
            succeeded.idempotency_key == key or payment_id in gateway.payment_references(locked.pg_payment_id, locked.pg_data)
        ):
            _refresh(order, locked)
            return Outcome(order=locked, transaction=succeeded, replayed=True)
        if locked.status != S.READY:
            if not gateway.requires_confirm_call and locked.status in (S.EXPIRED, S.FAILED, *PAID_STATUSES):
                # The PG took this money without a confirm call (PortOne V1):
                # look it up so it can be given back.
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
                raise _error_from_row(mine)
            if mine is not None:
                busy = mine
            else:
                busy = rows.filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).order_by("created", "pk").first()
            if busy is None:
                row = locked.get_transaction_model()._base_manager.create(
                    order=locked,
                    kind=K.CONFIRM,
                    status=T.PENDING,
                    amount=locked.amount,
                    currency=locked.currency,
                    idempotency_key=key,
                    pg_payment_id=payment_id,
                    source=source,
                    actor=actor if getattr(actor, "is_authenticated", False) else None,
                )
        snapshot = locked.snapshot()

    if late:
        outcome = _apply_lookup(order, payment_id=payment_id, source=source, actor=actor)
        if outcome.order.status in (S.EXPIRED, S.FAILED):
            # The money went back (or was never taken); this payment paid nothing.
            failed = _rows(order).filter(idempotency_key=key, status=T.FAILED).first()
            if failed is not None:
                raise _error_from_row(failed)
            raise OperationRefused(_("This order cannot be paid any more."), code="NOT_CONFIRMABLE", order=outcome.order)
        return outcome
    if busy is not None:
        return _wait_or_settle(order, busy, wait=wait, source=source)
    return _run_confirm(order, row, snapshot, source=source, actor=actor)


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
        retryable = isinstance(exc, (GatewayUnavailable, *_RETRYABLE_CONFIRM_ERRORS))
        _mark(order, row, T.FAILED, exc, fail_order=isinstance(exc, PaymentDeclined), release_key=retryable)
        raise
    if result.state in (PaymentState.PENDING, PaymentState.AUTHENTICATED):
        return _mark(order, row, T.UNKNOWN, GatewayError(_("The PG has not approved the payment yet."), code="NOT_APPROVED"))
    outcome = _apply(order, result, source=source, actor=actor, confirm_row=row)
    if outcome.error is not None:
        raise outcome.error
    if result.state in (PaymentState.FAILED, PaymentState.EXPIRED):
        raise PaymentDeclined(result.failure_message or None, gateway=gateway.alias, code=result.failure_code or None)
    return outcome


def _mark(order, row, status: str, error: PgPayError, *, fail_order: bool = False, release_key: bool = False) -> Outcome:
    """Record a confirm or cancel that failed, or whose outcome is unknown.

    ``release_key`` renames the failed row's idempotency key, for failures after
    which nothing happened at the PG: the same payment may then be tried again.
    """
    with _atomic(order):
        locked = _lock(order)
        locked_row = _lock_row(row)
        if locked_row.is_open:
            extra = {}
            if release_key:
                extra["idempotency_key"] = f"{locked_row.idempotency_key[:200]}-x{locked_row.pk}"
            _finish_row(locked_row, status, error=error, **extra)
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
        raise _error_from_row(row)
    succeeded = _rows(order).filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
    return Outcome(order=order, transaction=succeeded or row, replayed=True)


def _apply_lookup(order, *, payment_id: str = "", source, actor=None, settle_stale: bool = False) -> Outcome:
    gateway = order.get_gateway()
    result = gateway.lookup(payment_id=payment_id or order.pg_payment_id, order=order.snapshot())
    return _apply(order, result, source=source, actor=actor, settle_stale=settle_stale)


# --- cancel -----------------------------------------------------------------------


def cancel(
    order,
    amount=None,
    *,
    reason: str,
    source: str = TransactionSource.CUSTOMER,
    actor=None,
    idempotency_key: str | None = None,
) -> Outcome:
    """Give back ``amount`` (the whole balance when None) of a paid order.

    Refused with :class:`NotCancelable` and nothing changed when the order is
    not cancellable, or the amount is not positive, has more decimals than the
    currency, or exceeds the balance; with :class:`OperationInProgress` while
    another money operation of the order is open. ``idempotency_key`` (letters,
    digits, ``-`` and ``_``) makes a repeated request, such as a double-clicked
    form, the same cancel.

    Raises the gateway's error when the PG refuses (recorded in the ledger);
    an answer that never came leaves the row *unknown* and returns ``pending``.
    """
    gateway = order.get_gateway()
    reason = (reason or "").strip()[:255] or str(_("cancelled"))
    token = None
    if idempotency_key is not None:
        if not _KEY_TOKEN_RE.match(idempotency_key):
            raise NotCancelable(_("Invalid request token."), code="INVALID_KEY")
        token = f"{order.order_number}-cancel-{idempotency_key}"

    if _stale_open_rows(order).exists():
        settle(order)

    with _atomic(order):
        locked = _lock(order)
        rows = _rows(locked)
        if token is not None:
            existing = rows.filter(idempotency_key=token).first()
            if existing is not None:
                _refresh(order, locked)
                if existing.status == T.FAILED:
                    raise _error_from_row(existing)
                return Outcome(order=locked, transaction=existing, replayed=True)
        if not locked.is_cancelable:
            raise NotCancelable(order=locked)
        if rows.filter(status__in=OPEN_TRANSACTION_STATUSES).exclude(kind=K.WEBHOOK).exists():
            raise OperationInProgress(_("Another operation on this order is still being processed. Please try again shortly."))
        balance = locked.balance
        if amount is None:
            amount = balance
        else:
            try:
                amount = parse_amount(amount, locked.currency)
            except MoneyError as exc:
                raise NotCancelable(_("The amount is not valid."), code="INVALID_AMOUNT", order=locked) from exc
        if amount <= 0:
            raise NotCancelable(_("The amount to cancel must be positive."), code="INVALID_AMOUNT", order=locked)
        if amount > balance:
            raise NotCancelable(
                _("The amount to cancel exceeds what is left to cancel (%(balance)s %(currency)s).")
                % {"balance": f"{quantize(balance, locked.currency):,}", "currency": locked.currency},
                code="EXCEEDS_BALANCE",
                order=locked,
            )
        if amount != balance and locked.status == S.WAITING_FOR_DEPOSIT:
            raise NotCancelable(_("An unpaid virtual account can only be cancelled in full."), code="PARTIAL_NOT_ALLOWED", order=locked)
        if amount != balance and not gateway.supports_partial_cancel:
            raise NotCancelable(
                _("%(pg)s cannot cancel part of a payment.") % {"pg": gateway.pg_name},
                code="PARTIAL_NOT_SUPPORTED",
                order=locked,
            )
        row = locked.get_transaction_model()._base_manager.create(
            order=locked,
            kind=K.CANCEL,
            status=T.PENDING,
            amount=amount,
            currency=locked.currency,
            idempotency_key=token or f"{locked.order_number}-cancel-{uuid.uuid4().hex[:16]}",
            pg_payment_id=locked.pg_payment_id,
            source=source,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            reason=reason,
        )
        snapshot = locked.snapshot()

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
        # apply what it says instead of failing.
        # Our request did nothing, so its row fails before the PG's view is applied.
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
        _mark(order, row, T.FAILED, exc, release_key=isinstance(exc, GatewayUnavailable))
        raise
    with _atomic(order):
        locked = _lock(order)
        locked_row = _lock_row(row)
        changes: list[str] = []
        if locked_row.is_open:
            _finish_row(locked_row, T.SUCCEEDED, result=reply, amount=reply.amount or amount, pg_transaction_id=reply.pg_cancel_id[:200])
            changes.append(f"cancel {locked_row.amount}")
        if reply.payment is not None:
            changes += _sync_cancels(locked, reply.payment, source=source, settle_stale=False)
        else:
            changes += _apply_ledger_total(locked)
    _refresh(order, locked)
    locked_row.refresh_from_db()
    return Outcome(order=locked, transaction=locked_row, replayed=not changes, changes=tuple(changes))


def _stale_open_rows(order):
    """Money rows of ``order`` still open after the in-flight timeout (or unknown)."""
    from django.db.models import Q

    stale_before = _now() - conf.in_flight_timeout()
    return (
        _rows(order)
        .filter(status__in=OPEN_TRANSACTION_STATUSES)
        .exclude(kind=K.WEBHOOK)
        .filter(Q(status=T.UNKNOWN) | Q(modified__lt=stale_before))
    )


# --- webhooks, expiry and reconciliation ---------------------------------------------


def apply_event(order, event: WebhookEvent, *, webhook_event=None) -> Outcome:
    """Apply a verified webhook (``event.payment`` as the PG reports it, fetched or signed)."""
    if not event.verified or event.payment is None:
        raise OperationRefused(_("The notification was not verified."), code="WEBHOOK_UNVERIFIED")
    return _apply(order, event.payment, source=TransactionSource.WEBHOOK, webhook_event=webhook_event)


def expire(order, *, source: str = TransactionSource.RECONCILE) -> Outcome:
    """Mark an unpaid order EXPIRED and release its stock (``on_expired``).

    Refused with :class:`OperationInProgress` while a confirm of the order is
    open; :func:`reconcile` settles that first.
    """
    with _atomic(order):
        locked = _lock(order)
        if locked.status not in OPEN_STATUSES:
            _refresh(order, locked)
            return Outcome(order=locked, replayed=True)
        if _rows(locked).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).exists():
            raise OperationInProgress()
        transition(locked, S.EXPIRED)
    _refresh(order, locked)
    return Outcome(order=locked, changes=(f"status {S.EXPIRED}",))


def _lookup_or_none(gateway, payment_id: str, snapshot):
    if not payment_id and not gateway.supports_lookup_by_order:
        return None
    try:
        return gateway.lookup(payment_id=payment_id, order=snapshot)
    except (NotFound, UnsupportedFeature):
        return None


def settle(order, *, source: str = TransactionSource.RECONCILE) -> Outcome:
    """Look the order's payment up at the PG and apply what it says, settling open ledger rows.

    * An open confirm whose payment the PG approved becomes succeeded (PAID).
    * An open confirm the PG has authenticated but not approved is sent again
      with the same idempotency key (the PG answers a key only once).
    * Rows the PG has no record of are failed once they are older than
      ``IN_FLIGHT_TIMEOUT``.
    * Compensating cancels whose answer was lost are confirmed, or sent again.

    A PG that cannot be reached raises :class:`GatewayUnavailable`; nothing is changed.
    """
    gateway = order.get_gateway()
    stale_before = _now() - conf.in_flight_timeout()
    confirm_rows = list(_rows(order).filter(kind=K.CONFIRM).order_by("-created", "-pk"))
    payment_id = order.pg_payment_id or next((r.pg_payment_id for r in confirm_rows if r.pg_payment_id), "")
    snapshot = order.snapshot()
    result = _lookup_or_none(gateway, payment_id, snapshot)
    changes: list[str] = []
    outcome = None

    def retry_allowed(row) -> bool:
        return row.modified < stale_before or (row.status == T.UNKNOWN and gateway.supports_idempotency_key)

    if result is not None and result.state == PaymentState.AUTHENTICATED and gateway.requires_confirm_call:
        row = next((r for r in confirm_rows if r.is_open and retry_allowed(r) and _adoptable(gateway, r, result)), None)
        if row is not None and order.status == S.READY:
            try:
                outcome = _run_confirm(order, row, snapshot, source=source)
                changes += ["confirm sent again", *outcome.changes]
            except PgPayError as exc:
                order.refresh_from_db()
                return Outcome(order=order, transaction=row, changes=(f"confirm sent again: {exc.code}",), error=exc)
    elif result is not None:
        outcome = _apply(order, result, source=source, settle_stale=True)
        changes += outcome.changes

    if result is None or not (result.state.is_paid or result.state == PaymentState.WAITING_FOR_DEPOSIT):
        # Confirms the PG never approved are over once nobody can be waiting for them.
        with _atomic(order):
            locked = _lock(order)
            for row in _rows(locked).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES, modified__lt=stale_before):
                if result is None:
                    error = NotFound(_("The PG has no record of this payment."), code="NOT_FOUND")
                else:
                    error = GatewayError(_("The PG never approved this payment."), code="NOT_APPROVED")
                _finish_row(row, T.FAILED, error=error)
                changes.append("confirm not approved at the PG")
        _refresh(order, locked)

    for row in _rows(order).filter(kind=K.COMPENSATE, status__in=OPEN_TRANSACTION_STATUSES, modified__lt=stale_before):
        target = result if result is not None and result.payment_id == row.pg_payment_id else _lookup_or_none(gateway, row.pg_payment_id, snapshot)
        if target is not None and target.balance > 0:
            _run_compensation(order, row, target)
            changes.append("compensation sent again")
        else:
            with _atomic(order):
                _lock(order)
                locked_row = _lock_row(row)
                if locked_row.is_open:
                    _finish_row(locked_row, T.SUCCEEDED, result=target)
            changes.append("compensation confirmed")
    order.refresh_from_db()
    return Outcome(
        order=order,
        transaction=outcome.transaction if outcome else None,
        changes=tuple(changes),
        replayed=not changes,
        error=outcome.error if outcome else None,
    )


def reconcile(order, *, now=None, deep: bool = False) -> Outcome:
    """Bring one order in step with its PG: settle open ledger rows, then expire it if its time is up.

    Orders with open ledger rows, and unpaid orders whose time is up, are
    looked up at the PG; with ``deep=True`` every order is (this finds cancels
    made in the PG's dashboard when their webhook never came). A READY order
    past ``expires_at`` becomes EXPIRED; an order waiting for a deposit follows
    the PG, whose deadline governs the virtual account.

    Safe to run at any time and any number of times, from cron while the site
    serves: it only applies what the PG reports, under the order's lock.
    """
    now = now or _now()
    changes: list[str] = []
    error = None
    has_open = _rows(order).filter(status__in=OPEN_TRANSACTION_STATUSES).exclude(kind=K.WEBHOOK).exists()
    due = order.status in OPEN_STATUSES and order.expires_at is not None and order.expires_at <= now
    if has_open or due or (deep and order.status != S.CANCELED):
        outcome = settle(order)
        changes += outcome.changes
        error = outcome.error
    order.refresh_from_db()
    if order.status == S.READY and order.expires_at is not None and order.expires_at <= now:
        if not _rows(order).filter(kind=K.CONFIRM, status__in=OPEN_TRANSACTION_STATUSES).exists():
            order.get_gateway().abandon(order.snapshot())
            changes += expire(order).changes
    return Outcome(order=order, changes=tuple(changes), replayed=not changes, error=error)


def orders_to_reconcile(order_model, *, now=None, deep_since=None):
    """Orders of ``order_model`` that :func:`reconcile` should visit.

    Those with open ledger rows and unpaid orders whose time is up; with
    ``deep_since`` (a datetime) also every order modified since then that
    holds or awaits money.
    """
    from django.db.models import Q

    now = now or _now()
    txn_model = order_model.get_transaction_model()
    with_open_rows = (
        txn_model._base_manager.filter(status__in=OPEN_TRANSACTION_STATUSES).exclude(kind=K.WEBHOOK).values("order_id")
    )
    wanted = Q(pk__in=with_open_rows) | Q(status__in=OPEN_STATUSES, expires_at__lte=now)
    if deep_since is not None:
        wanted |= Q(modified__gte=deep_since) & ~Q(status=S.CANCELED)
    return order_model._base_manager.filter(wanted).order_by("pk")
