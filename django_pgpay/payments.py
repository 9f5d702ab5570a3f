"""The operations: confirm, cancel, apply what a PG reports, expire, settle, reconcile.

Views, webhooks, the admin and the management commands all call these; none of
them changes an order's status or amounts by itself. Every money-moving
operation takes three steps:

1. In a transaction, lock the order row, check what is asked against the
   order and the ledger, write a *pending* ledger row with the idempotency key
   that will be sent, and commit.
2. Call the PG outside any lock, with that key (:func:`_send`).
3. In a new transaction, lock the order again and apply the answer
   (:func:`_step_three`). An answer that never came leaves the row *unknown*;
   :func:`settle` settles it by a lookup at the PG, never by a blind retry. A
   refusal the PG documents is a refusal: the row fails and nothing is
   pending.

What the PG reports is written into the order and its ledger by
:mod:`django_pgpay.bookkeeping`; money the shop must not keep is given back,
and unpaid accounts closed, by :mod:`django_pgpay.followups`; the rows
themselves are :mod:`django_pgpay.ledger`'s.

Errors are raised. :func:`settle` and :func:`reconcile` alone go on past an
attempt they cannot apply (the others are still settled) and report the first
such error in :attr:`Outcome.error`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import bookkeeping, conf, followups, labels, ledger
from .bookkeeping import Outcome, refresh
from .exceptions import (
    AlreadyCanceled,
    AlreadyProcessed,
    AmountMismatch,
    AuthenticationFailed,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotCancelable,
    NotFound,
    OperationInProgress,
    OperationRefused,
    PaymentDeclined,
    PgPayError,
    RetryLater,
)
from .followups import MAX_FOLLOW_UP_ATTEMPTS
from .gateways.results import CancelRequest, ConfirmRequest, ParsedWebhook, PaymentResult, PaymentState, RefundAccount
from .ledger import confirm_key
from .money import MoneyError, parse_amount, same_amount
from .status import CANCEL_KINDS, OPEN_STATUSES, PAID_STATUSES, OrderStatus, TransactionKind, TransactionSource, TransactionStatus

logger = logging.getLogger("django_pgpay.payments")

S = OrderStatus
K = TransactionKind
T = TransactionStatus
P = PaymentState

_KEY_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Failures after which nothing happened at the PG, so the buyer may try the
#: same payment again (the failed row gives up its idempotency key).
_RETRYABLE_CONFIRM_ERRORS = (AuthenticationFailed, RetryLater, GatewayUnavailable)


class _Full:
    """The type of :data:`FULL`."""

    def __repr__(self) -> str:
        return "payments.FULL"


#: ``cancel(order, FULL, ...)``: give back everything that is left. Cancelling
#: everything is always this explicit choice, never what an empty or unreadable
#: amount falls back on.
FULL = _Full()


def _cancel_request(snapshot, row, *, balance: Decimal, source, actor, refund_account=None, withdraw=False, **fields) -> CancelRequest:
    """What a cancel or a withdrawal of the order's own payment sends, for its pending ``row``.

    ``refund_account`` (a :class:`RefundAccount`) is where a deposited virtual
    account's refund goes; without one, the deprecated ``pg_data`` conventions
    are read (:meth:`RefundAccount.from_pg_data`, with a deprecation warning).
    """
    requested_by = str(actor.get_username()) if getattr(actor, "is_authenticated", False) else str(source)
    if refund_account is None and not withdraw:  # closing an unpaid account refunds nothing
        refund_account = RefundAccount.from_pg_data(snapshot.pg_data)
    elif refund_account is not None and not isinstance(refund_account, RefundAccount):
        raise TypeError(f"refund_account must be a RefundAccount, not {type(refund_account).__name__}")
    return CancelRequest(
        refund_account=refund_account,
        order=snapshot,
        payment_id=snapshot.payment_id,
        amount=row.amount,
        currency=snapshot.currency,
        reason=row.reason,
        idempotency_key=row.idempotency_key,
        balance_before=balance,
        requested_by=requested_by,
        **fields,
    )


# --- steps 2 and 3 ------------------------------------------------------------------


def _send(order, row, call, *, release_key=True, fail_order=False, passthrough=()):
    """Step 2 of an operation whose pending ``row`` is written: call the PG, outside any lock.

    Returns ``(reply, None)``; or ``(None, outcome)`` when the answer never
    came (the row is *unknown*: settled later by a lookup, never by a blind
    retry). A refusal fails the row and is raised; ``release_key`` (a bool, or
    a test of the error) renames the failed row's key so the same request may
    be asked again, ``fail_order`` (the same) fails the order. Errors in
    ``passthrough`` are raised untouched for the caller to handle.
    """
    try:
        return call(), None
    except passthrough:
        raise
    except GatewayError as exc:
        if exc.outcome_unknown:
            return None, _mark(order, row, T.UNKNOWN, exc)
        release = release_key(exc) if callable(release_key) else release_key
        fail = fail_order(exc) if callable(fail_order) else fail_order
        _mark(order, row, T.FAILED, exc, fail_order=fail, release_key=release)
        raise


@contextmanager
def _step_three(order, row, status: str, *, kin: frozenset = frozenset(), **fields):
    """Step 3: lock the order and ``row``; record ``status`` unless another path settled the row first.

    Yields ``(locked order, locked row, recorded, kin rows)`` inside the
    transaction, for what else the answer changes under the same lock. With
    ``kin`` (transaction kinds), the order's rows of those kinds are read and
    locked together with ``row`` in one query (:func:`ledger.lock_with_kin`),
    the row among them; without, the kin rows are ``[]``.
    """
    with ledger.atomic(order):
        locked = ledger.lock_order(order)
        locked_row, kin_rows = ledger.lock_with_kin(locked, row, kin) if kin else (ledger.lock(row), [])
        recorded = locked_row.is_open
        if recorded:
            ledger.finish(locked_row, status, **fields)
        yield locked, locked_row, recorded, kin_rows


def _mark(order, row, status: str, error: PgPayError, *, fail_order: bool = False, release_key: bool = False) -> Outcome:
    """Record a confirm, cancel or withdrawal that failed, or whose outcome is unknown.

    ``release_key`` renames the failed row's idempotency key, for failures after
    which nothing happened at the PG: the same operation may then be tried again.
    """
    extra = {"idempotency_key": f"{row.idempotency_key[:200]}-x{row.pk}"} if release_key else {}
    with _step_three(order, row, status, error=error, **extra) as (locked, locked_row, recorded, _kin):
        if recorded and fail_order and locked.status in OPEN_STATUSES:
            bookkeeping.transition(locked, S.FAILED, ledger_row=locked_row)
    refresh(order, locked)
    if status == T.UNKNOWN:
        logger.warning("order %s: %s outcome unknown (%r)", order.order_number, locked_row.kind, error)
    return Outcome(order=locked, transaction=locked_row, changes=(f"{locked_row.kind} {status}",))


# --- confirm ----------------------------------------------------------------------


def confirm(
    order, *, payment_id: str, amount=None, source: str = TransactionSource.CUSTOMER, actor=None, wait: float | None = None
) -> Outcome:
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
    key = confirm_key(order.order_number, payment_id)
    with ledger.atomic(order):
        locked = ledger.lock_order(order)
        confirms = sorted(ledger.rows(locked).filter(kind=K.CONFIRM), key=lambda r: (r.created, r.pk))  # one query for every check
        succeeded = min((r for r in confirms if r.status == T.SUCCEEDED), key=lambda r: r.pk, default=None)
        if succeeded is not None and (
            succeeded.idempotency_key == key or payment_id in gateway.payment_references(locked.pg_payment_id, locked.pg_data)
        ):
            refresh(order, locked)
            return Outcome(order=locked, transaction=succeeded, replayed=True)
        if locked.status != S.READY:
            if gateway.requires_confirm_call and locked.status in (S.PAID, S.PARTIAL_CANCELED):
                # Another payment id for a paid order (a second window): never confirmed, so never charged.
                raise OperationRefused(_("This order is already paid. Nothing more was charged."), code="ALREADY_PAID", order=locked)
            if gateway.requires_confirm_call or locked.status not in (S.EXPIRED, S.FAILED, S.WAITING_FOR_DEPOSIT, *PAID_STATUSES):
                raise OperationRefused(_("This order cannot be paid any more."), code="NOT_CONFIRMABLE", order=locked)
            late = True  # the PG took this money without a confirm call (PortOne V1): apply it or give it back
        else:
            late = False
            busy, row = _open_confirm(locked, confirms, key, payment_id, amount, source=source, actor=actor)
            snapshot = locked.snapshot()
    if late:
        return _confirm_late(order, gateway, payment_id, key, source=source, actor=actor)
    if busy is not None:
        return _wait_or_settle(order, busy, wait=float(conf.setting("CONFIRM_WAIT")) if wait is None else wait, source=source)
    return _run_confirm(order, row, snapshot, source=source, actor=actor)


def _open_confirm(locked, confirms: list, key: str, payment_id: str, amount, *, source, actor):
    """Step 1 of a confirm of a READY order: ``(the row of a confirm in flight, None)`` or ``(None, a new pending row)``.

    ``confirms`` are the order's confirm rows, oldest first.
    """
    if amount is not None and not same_amount(amount, locked.amount):
        # A tampered return: refused before anything reaches the PG.
        raise AmountMismatch(
            expected=locked.amount,
            actual=amount,
            expected_currency=locked.currency,
            actual_currency=locked.currency,
            order_number=locked.order_number,
        )
    mine = next((r for r in confirms if r.idempotency_key == key), None)
    if mine is not None and mine.status == T.FAILED:
        raise ledger.error_from_row(mine)
    busy = mine or next((r for r in confirms if r.is_open), None)
    if busy is not None:
        return busy, None
    row = ledger.create(
        locked,
        K.CONFIRM,
        amount=locked.amount,
        currency=locked.currency,
        idempotency_key=key,
        pg_payment_id=payment_id,
        source=source,
        actor=ledger.user(actor),
    )
    return None, row


def _confirm_late(order, gateway, payment_id: str, key: str, *, source, actor=None) -> Outcome:
    """A return for an order that is no longer READY, at a PG without a confirm call: apply what the PG says."""
    result = gateway.lookup(payment_id=payment_id, order=order.snapshot())
    if result.order_number and result.order_number != order.order_number:
        raise OperationRefused(_("The payment belongs to another order."), code="PAYMENT_ORDER_MISMATCH", order=order)
    try:
        outcome = bookkeeping.apply(order, result, source=source, actor=actor)
    except AmountMismatch:
        failed = ledger.rows(order).filter(idempotency_key=key, status=T.FAILED).first()
        if failed is not None:
            raise ledger.error_from_row(failed) from None
        raise
    if outcome.compensated:
        return outcome  # the money goes back; this payment paid nothing
    if outcome.order.status in (S.EXPIRED, S.FAILED):
        failed = ledger.rows(order).filter(idempotency_key=key, status=T.FAILED).first()
        if failed is not None:
            raise ledger.error_from_row(failed)
        if ledger.rows(order).filter(kind=K.COMPENSATE, pg_payment_id=payment_id).exists():
            # The PG took this money after the order had closed (the buyer paid in a window of an
            # order that expired meanwhile): it goes back, and the buyer is told so, not merely
            # that the order cannot be paid.
            raise OperationRefused(
                _("This order had closed when the payment arrived. The payment was not accepted and is being refunded in full."),
                code="LATE_PAYMENT_REFUNDED",
                order=outcome.order,
            )
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
        result, pending = _send(
            order,
            row,
            lambda: gateway.confirm(request),
            release_key=lambda exc: isinstance(exc, _RETRYABLE_CONFIRM_ERRORS),
            fail_order=lambda exc: isinstance(exc, PaymentDeclined) and gateway.requires_confirm_call,
            passthrough=(AlreadyProcessed, NotFound, InvalidRequest),
        )
    except AlreadyProcessed:
        try:
            result, pending = gateway.lookup(payment_id=row.pg_payment_id, order=snapshot), None
        except GatewayError as exc:
            return _mark(order, row, T.UNKNOWN, exc)
    except (NotFound, InvalidRequest) as exc:
        if exc.outcome_unknown:
            return _mark(order, row, T.UNKNOWN, exc)
        # The PG knows no such payment of this order: nothing happened anywhere,
        # so nothing stays in the order's ledger (a made-up id costs one call, no row).
        _forget(order, row)
        raise
    if pending is not None:
        return pending
    if result.state in (P.PENDING, P.AUTHENTICATED):
        return _mark(order, row, T.UNKNOWN, GatewayError(_("The PG has not approved the payment yet."), code="NOT_APPROVED"))
    outcome = bookkeeping.apply(order, result, source=source, actor=actor, confirm_row=row)
    if result.state in (P.FAILED, P.EXPIRED):
        raise PaymentDeclined(result.failure_message or None, gateway=gateway.alias, code=result.failure_code or None)
    return outcome


def _forget(order, row) -> None:
    """Remove the pending confirm row of a payment id the PG does not know for this order."""
    with ledger.atomic(order):
        ledger.lock_order(order)
        locked_row = type(row)._base_manager.select_for_update().filter(pk=row.pk).first()
        if locked_row is not None and locked_row.status == T.PENDING and locked_row.kind == K.CONFIRM:
            locked_row.delete()
    logger.info("order %s: the PG knows no payment %s of it; nothing recorded", order.order_number, row.pg_payment_id)


def _wait_or_settle(order, row, *, wait: float, source) -> Outcome:
    """Another confirm holds ``row``: wait for it, or settle it at the PG if it went silent."""
    started = time.monotonic()
    deadline = started + wait
    pause = 0.02
    polled = type(row)._base_manager.filter(pk=row.pk).values_list("status", "modified")
    while True:
        # A poll reads two columns, not the row (its stored reply is parsed once, when it is done).
        found = polled.first()
        if found is None:  # the PG knew no such payment: the other confirm removed its row (see _forget)
            order.refresh_from_db()
            raise NotFound(gateway=order.gateway)
        row.status, row.modified = found
        if not row.is_open:
            break
        if row.status == T.UNKNOWN or row.modified < bookkeeping.now() - conf.in_flight_timeout():
            outcome = settle(order, source=source)
            if outcome.error is not None and not isinstance(outcome.error, GatewayError):
                raise outcome.error
            return outcome
        if time.monotonic() >= deadline:
            order.refresh_from_db()
            return Outcome(order=order, transaction=row)
        # 20 ms first (a PG answers a confirm in tens of milliseconds), then half as long again
        # each time up to 200 ms: about ten reads in the first second instead of fifty, for the
        # buyer's second tab that should neither hold a server thread much past the first one's
        # answer nor keep the database busy while the sale goes on.
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 0.2)
    row.refresh_from_db()
    order.refresh_from_db()
    if row.status == T.FAILED and row.error_code != "ALREADY_APPLIED":
        raise ledger.error_from_row(row)
    succeeded = ledger.succeeded_rows(order, K.CONFIRM).first()
    return Outcome(order=order, transaction=succeeded or row, replayed=True)


# --- cancel -----------------------------------------------------------------------


def _cancel_amount(order, amount):
    """``amount`` as a Decimal of the order's currency, or :data:`FULL`; never a fallback on "everything"."""
    if amount is FULL:
        return FULL
    if amount is None or isinstance(amount, (bool, float)):
        raise NotCancelable(_("Say how much to cancel, or cancel everything explicitly."), code="INVALID_AMOUNT", order=order)
    try:
        return parse_amount(amount, order.currency)
    except MoneyError as exc:
        raise NotCancelable(_("The amount is not valid."), code="INVALID_AMOUNT", order=order) from exc


def cancel(
    order,
    amount,
    *,
    reason: str,
    source: str = TransactionSource.CUSTOMER,
    actor=None,
    idempotency_key: str | None = None,
    refund_account: RefundAccount | None = None,
) -> Outcome:
    """Give back ``amount`` of a paid order: a Decimal (or its text), or :data:`FULL` for everything left.

    There is no default: "everything" is always asked for by name. Refused
    with :class:`NotCancelable` and nothing changed when the order is not
    cancellable, or the amount is missing, not a number, not positive, has
    more decimals than the currency, or exceeds the balance, or is part of it
    for a buyer (``source`` CUSTOMER, the default) of an order whose model
    does not set ``buyer_may_cancel_part = True`` (code acting for the shop's
    staff passes ``source=TransactionSource.STAFF``); with
    :class:`OperationInProgress` while another money operation of the order is
    open. ``idempotency_key`` (letters, digits, ``-`` and ``_``) makes a
    repeated request, such as a double-clicked form, the same cancel; the same
    key with another amount is refused (``TOKEN_REUSED``). Letter case does not
    count: ``abc`` and ``ABC`` are the same key, on every database.

    ``refund_account`` (:class:`~django_pgpay.gateways.results.RefundAccount`)
    is the buyer's bank account a refund of a deposited virtual account goes
    to; each gateway sends it in its PG's own fields. (The old
    ``pg_data["refund_receive_account"]`` and ``pg_data["bootpay_refund"]``
    conventions are still read when it is not given, with a
    :class:`~django_pgpay.exceptions.PgPayDeprecationWarning`.)

    An order waiting for the deposit of a virtual account has nothing to give
    back: cancelling it (in full) withdraws the account at the PG and the
    order expires unpaid.

    Raises the gateway's error when the PG refuses (recorded in the ledger;
    nothing is pending); an answer that never came leaves the row *unknown*
    and returns ``pending``.
    """
    reason = (reason or "").replace("\x00", "").strip()[:255] or str(_("cancelled"))
    token = None
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not _KEY_TOKEN_RE.match(idempotency_key):
            raise NotCancelable(_("Invalid request token."), code="INVALID_KEY")
        # In lower case: MariaDB/MySQL compare (and index) the key column without case, so `abc`
        # and `ABC` are one token on every database (the library's own tokens are lower-case hex).
        token = f"{order.order_number}-cancel-{idempotency_key.lower()}"
    amount = _cancel_amount(order, amount)
    if order.status == S.WAITING_FOR_DEPOSIT:
        _allowed_amount(order, order.get_gateway(), amount, source=source)  # in full only; the buyer's deadline
        return _withdraw_own(order, source=source, actor=actor, reason=reason, idempotency_key=token)
    opened = _open_cancel(order, amount, token=token, reason=reason, source=source, actor=actor)
    if opened is _STALE:  # an earlier operation went silent: ask the PG first, then open this cancel
        settle(order)
        opened = _open_cancel(order, amount, token=token, reason=reason, source=source, actor=actor, settled=True)
    if opened is None:  # a deposit reversed meanwhile: the account is withdrawn instead
        return _withdraw_own(order, source=source, actor=actor, reason=reason, idempotency_key=token)
    if isinstance(opened, Outcome):
        return opened
    row, snapshot, balance = opened
    gateway = order.get_gateway()
    request = _cancel_request(snapshot, row, balance=balance, source=source, actor=actor, refund_account=refund_account)
    try:
        reply, pending = _send(order, row, lambda: gateway.cancel(request), passthrough=(AlreadyCanceled,))
    except AlreadyCanceled as exc:
        return _already_canceled(order, row, snapshot, exc, source=source, actor=actor)
    if pending is not None:
        return pending
    pg_id = reply.pg_cancel_id[:200]
    # The order's other cancels come with the row (one read): what the PG reports and the new
    # total are worked out from them.
    with _step_three(
        order, row, T.SUCCEEDED, kin=CANCEL_KINDS, result=reply, amount=reply.amount or row.amount, pg_transaction_id=pg_id
    ) as (locked, locked_row, recorded, cancels):
        # Only for a reply without the payment (Stripe): one with it is reconciled below (sync rows).
        failed_early = not recorded and reply.payment is None and _failed_by_presumption(locked_row)
        if failed_early and not any(r.pg_transaction_id == pg_id for r in cancels if pg_id):
            # Reconciliation failed the row meanwhile, the PG having no record of it yet (its answer
            # was slower than IN_FLIGHT_TIMEOUT); the PG's own success answer is the truth.
            fields = {"amount": reply.amount or locked_row.amount, "pg_transaction_id": pg_id, "error_code": "", "error_message": ""}
            ledger.finish(locked_row, T.SUCCEEDED, result=reply, **fields)
            recorded = True
        changes = [f"cancel {locked_row.amount}"] if recorded else []
        if reply.payment is not None:
            changes += bookkeeping.sync_cancels(locked, reply.payment, source=source, settle_stale=False, cancels=cancels)
        else:
            changes += bookkeeping.apply_ledger_total(locked, [r for r in cancels if ledger.counts_as_cancelled(r)])
    refresh(order, locked)
    # locked_row is current: it was read under the lock and finished here, and sync_cancels
    # finishes only rows still open, which it no longer is (or never was, when another path
    # settled it first). Not a replay: this call's request made the cancel, even when its own
    # webhook recorded it first (the buyer was told "already processed" for it).
    return Outcome(order=locked, transaction=locked_row, replayed=False, changes=tuple(changes))


def _failed_by_presumption(row) -> bool:
    """A cancel row failed only because the PG had no record of it after ``IN_FLIGHT_TIMEOUT``."""
    return row.status == T.FAILED and row.error_code == "NOT_APPLIED_AT_PG"


#: What :func:`_open_cancel` returns when the order has stale rows to settle at the PG first.
_STALE = object()


def _open_cancel(order, amount, *, token: str | None, reason: str, source, actor, settled: bool = False):
    """Step 1 of a cancel: the replay of ``token``'s cancel (an Outcome), None (withdraw instead), or ``(row, snapshot, balance)``.

    Returns :data:`_STALE` (and changes nothing) when an open row went silent
    and ``settled`` is false: the caller settles the order and asks again.
    """
    with ledger.atomic(order):
        locked = ledger.lock_order(order)
        # One read for every question below: the open rows (went silent? in flight?) and the form token's rows.
        found = ledger.open_money_rows(locked, or_key=token)
        in_flight = [r for r in found if r.is_open and r.kind != K.WEBHOOK]
        if not settled and any(ledger.is_stale(r) for r in in_flight):
            return _STALE
        if token is not None:
            existing = max((r for r in found if ledger.has_key(r, token)), key=lambda r: r.pk, default=None)
            if existing is not None:
                refresh(order, locked)
                if amount is not FULL and not same_amount(existing.amount, amount):
                    raise NotCancelable(
                        _("This cancel form was already used for another amount. Nothing more was cancelled."),
                        code="TOKEN_REUSED",
                        order=locked,
                    )
                if ledger.same_key(existing.idempotency_key, token):
                    if existing.status == T.FAILED:
                        raise ledger.error_from_row(existing)
                    return Outcome(order=locked, transaction=existing, replayed=True)
        if locked.status == S.WAITING_FOR_DEPOSIT:
            return None
        if not locked.is_cancelable:
            raise NotCancelable(order=locked)
        if any(ledger.is_blocking(r, locked) for r in in_flight):
            raise OperationInProgress(_("Another operation on this order is still being processed. Please try again shortly."))
        balance = locked.balance
        row = ledger.create(
            locked,
            K.CANCEL,
            amount=_allowed_amount(locked, locked.get_gateway(), amount, source=source),
            currency=locked.currency,
            idempotency_key=token or f"{locked.order_number}-cancel-{uuid.uuid4().hex[:16]}",
            pg_payment_id=locked.pg_payment_id,
            source=source,
            actor=ledger.user(actor),
            reason=reason,
        )
        return row, locked.snapshot(), balance


def _already_canceled(order, row, snapshot, exc: AlreadyCanceled, *, source, actor) -> Outcome:
    """The PG gave the money back already (its dashboard, an earlier call): our row fails, the PG's view is applied."""
    _mark(order, row, T.FAILED, exc)
    row.refresh_from_db()
    try:
        result = order.get_gateway().lookup(payment_id=snapshot.payment_id, order=snapshot)
    except GatewayError:
        raise exc from None
    outcome = bookkeeping.apply(order, result, source=source, actor=actor)
    return replace(outcome, transaction=row)


def _allowed_amount(order, gateway, amount, *, source=None) -> Decimal:
    """The amount a cancel of ``order`` would give back, or the :class:`NotCancelable` that refuses it.

    A buyer's cancel (``source`` CUSTOMER) of an order whose model says
    :attr:`~django_pgpay.models.AbstractOrder.buyer_may_cancel_part` False is
    refused unless it gives back everything left.
    """
    if not order.is_cancelable:
        raise NotCancelable(order=order)
    _check_buyer_deadline(order, source)
    balance = order.balance
    if source == TransactionSource.CUSTOMER and not order.buyer_may_cancel_part and amount is not FULL and amount != balance:
        # A booking's place comes back only with a full cancel: a buyer who could give back all
        # but 1 won would keep the table for nothing.
        raise NotCancelable(_("This order can only be cancelled in full."), code="FULL_CANCEL_ONLY", order=order)
    if order.status == S.WAITING_FOR_DEPOSIT:
        if amount is not FULL and amount != balance:
            raise NotCancelable(_("An unpaid virtual account can only be cancelled in full."), code="PARTIAL_NOT_ALLOWED", order=order)
        return balance
    amount = balance if amount is FULL else amount
    if amount <= 0:
        raise NotCancelable(_("The amount to cancel must be positive."), code="INVALID_AMOUNT", order=order)
    if amount > balance:
        raise NotCancelable(
            # As the pages show money (51,000원, ₩51,000), not "51,000 KRW".
            _("The amount to cancel exceeds what is left to cancel (%(balance)s).") % {"balance": labels.money(balance, order.currency)},
            code="EXCEEDS_BALANCE",
            order=order,
        )
    if amount != balance and not gateway.supports_partial_cancel:
        raise NotCancelable(
            _("%(pg)s cannot cancel part of a payment.") % {"pg": gateway.pg_name}, code="PARTIAL_NOT_SUPPORTED", order=order
        )
    return amount


def _check_buyer_deadline(order, source) -> None:
    """Refuse a buyer's cancel (``source`` CUSTOMER) past :meth:`~django_pgpay.models.AbstractOrder.get_buyer_cancel_deadline`."""
    if source != TransactionSource.CUSTOMER:
        return
    deadline = order.get_buyer_cancel_deadline()
    if deadline is not None and timezone.now() >= deadline:
        # A booking's deposit after the visit: the buyer's own cancel is over, the shop's staff decide.
        raise NotCancelable(
            _("It is too late to cancel this order here. Please contact the shop."), code="BUYER_DEADLINE_PASSED", order=order
        )


def check_cancel(order, amount, *, source: str = TransactionSource.CUSTOMER) -> Decimal:
    """What ``cancel(order, amount, source=source)`` would give back now, or the :class:`NotCancelable` it would raise.

    Changes nothing and calls no PG: for a confirmation step that states the
    amount before anything moves. :func:`cancel` checks again under the lock.
    """
    return _allowed_amount(order, order.get_gateway(), _cancel_amount(order, amount), source=source)


# --- the order's own virtual account ---------------------------------------------------


def _withdraw_own(order, *, source, actor=None, reason: str, idempotency_key: str | None = None) -> Outcome:
    """Close the order's unpaid virtual account at the PG; the order expires unpaid.

    Three steps like every money operation, though no money moves: a pending
    ``withdraw`` row, the PG's call, then the answer under the lock. When the
    PG refuses because the deposit arrived meanwhile, the payment is looked up
    and applied (the order becomes PAID) and the refusal is raised.
    """
    opened = _open_withdrawal(order, source=source, actor=actor, reason=reason, idempotency_key=idempotency_key)
    if isinstance(opened, Outcome):
        return opened
    row, snapshot = opened
    gateway = order.get_gateway()
    request = _cancel_request(snapshot, row, balance=snapshot.amount, source=source, actor=actor, withdraw=True)
    try:
        reply, pending = _send(order, row, lambda: gateway.withdraw(request), passthrough=(AlreadyCanceled,))
    except AlreadyCanceled:
        reply, pending = None, None
    except GatewayError:
        # The account may have been paid (or expired) meanwhile: apply what the PG says.
        try:
            bookkeeping.apply(order, gateway.lookup(payment_id=snapshot.payment_id, order=snapshot), source=source, actor=actor)
        except PgPayError:
            pass
        raise
    if pending is not None:
        return pending
    pg_id = (reply.pg_cancel_id if reply else "")[:200]
    changes = ["virtual account withdrawn"]
    with _step_three(order, row, T.SUCCEEDED, result=reply, pg_transaction_id=pg_id) as (locked, locked_row, _recorded, _kin):
        waiting = ledger.rows(locked).filter(kind=K.CONFIRM, status=T.WAITING, pg_payment_id=locked.pg_payment_id).first()
        if waiting is not None:
            ledger.finish(
                waiting, T.FAILED, error=OperationRefused(_("The virtual account was closed before any deposit."), code="WITHDRAWN")
            )
        if locked.status == S.WAITING_FOR_DEPOSIT:
            bookkeeping.transition(locked, S.EXPIRED, ledger_row=locked_row)
            changes.append(f"status {S.EXPIRED}")
    refresh(order, locked)
    locked_row.refresh_from_db()
    return Outcome(order=locked, transaction=locked_row, changes=tuple(changes))


def _open_withdrawal(order, *, source, actor, reason: str, idempotency_key: str | None):
    """Step 1 of a withdrawal: a replay or a settled order (an Outcome), or ``(pending row, snapshot)``."""
    with ledger.atomic(order):
        locked = ledger.lock_order(order)
        if idempotency_key is not None:
            existing = ledger.rows(locked).filter(idempotency_key__iexact=idempotency_key).first()  # see ledger.same_key
            if existing is not None:
                refresh(order, locked)
                if existing.status == T.FAILED:
                    raise ledger.error_from_row(existing)
                return Outcome(order=locked, transaction=existing, replayed=True)
        if locked.status != S.WAITING_FOR_DEPOSIT:
            refresh(order, locked)
            if locked.status in (S.EXPIRED, S.FAILED):
                return Outcome(order=locked, replayed=True)
            raise NotCancelable(order=locked)
        _check_buyer_deadline(locked, source)  # again, under the lock: a deadline passed meanwhile
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
            actor=ledger.user(actor),
            reason=reason,
        )
        return row, locked.snapshot()


# --- webhooks, expiry and reconciliation ---------------------------------------------


def apply_event(order, event: ParsedWebhook, *, webhook_event=None) -> Outcome:
    """Apply a verified webhook (``event.payment`` as the PG reports it, fetched or signed).

    Raises :class:`AmountMismatch` when the payment took an amount the shop did
    not ask for, after recording it (the order fails, the money goes back).
    """
    if not event.verified or event.payment is None:
        raise OperationRefused(_("The notification was not verified."), code="WEBHOOK_UNVERIFIED")
    return bookkeeping.apply(order, event.payment, source=TransactionSource.WEBHOOK, webhook_event=webhook_event)


def expire(order, *, source: str = TransactionSource.RECONCILE, only_if_due: bool = False, close_checkout: bool = True) -> Outcome:
    """Mark an unpaid order EXPIRED and release its stock (``on_expired``).

    A READY order expires at once; an order waiting for the deposit of a
    virtual account has it withdrawn at the PG first. Refused with
    :class:`OperationInProgress` while a confirm of the order is open;
    :func:`reconcile` settles that first. With ``only_if_due`` an order whose
    ``expires_at`` was moved into the future meanwhile (its buyer came back)
    is left as it is.

    A READY order's checkout is closed at the PG first (:meth:`abandon
    <django_pgpay.gateways.base.BaseGateway.abandon>`: Stripe's open Checkout
    Sessions), so that an expired order cannot be paid afterwards in a window
    left open; when the buyer completed it meanwhile that raises
    :class:`OperationInProgress` (``CHECKOUT_COMPLETED``), and a PG that cannot
    be reached raises :class:`GatewayUnavailable`: the order is left as it is.
    ``close_checkout=False``: the caller closed it already (outside its locks).
    """
    if (
        close_checkout
        and order.status == S.READY
        and not (only_if_due and order.expires_at is not None and order.expires_at > bookkeeping.now())
    ):
        # Before the order's lock (a PG call). A buyer's checkout switching PG closes it before
        # taking its own locks (views.CheckoutMixin) and passes close_checkout=False.
        order.get_gateway().abandon(order.snapshot())
    if order.status != S.WAITING_FOR_DEPOSIT:
        with ledger.atomic(order):
            locked = ledger.lock_order(order)
            if locked.status not in OPEN_STATUSES or (
                only_if_due and locked.expires_at is not None and locked.expires_at > bookkeeping.now()
            ):
                refresh(order, locked)
                return Outcome(order=locked, replayed=True)
            if locked.status == S.READY:
                if ledger.open_rows(locked, K.CONFIRM).exists():
                    raise OperationInProgress()
                bookkeeping.transition(locked, S.EXPIRED)
        if locked.status == S.EXPIRED:
            refresh(order, locked)
            return Outcome(order=locked, changes=(f"status {S.EXPIRED}",))
    return _withdraw_own(order, source=source, reason=str(_("expired unpaid")))


def _attempt_order(order, gateway):
    """Sort key of attempts: the order's payment first, then paid ones, then accounts, then the rest."""

    def key(result: PaymentResult):
        if order.pg_payment_id and order.pg_payment_id in bookkeeping.references(gateway, result):
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
    stale_before = bookkeeping.now() - conf.in_flight_timeout()
    order.refresh_from_db()
    facts = ledger.row_facts(order)
    results = gateway.attempts(order.snapshot(), ledger.known_payment_ids(order, gateway, facts))
    results.sort(key=_attempt_order(order, gateway))
    changes, main, error = _settle_attempts(order, gateway, results, source=source, stale_before=stale_before)
    by_ref = {ref: result for result in results for ref in bookkeeping.references(gateway, result)}
    if results or _has_rows_to_settle(facts, stale_before):
        changes += _fail_unapproved_confirms(order, by_ref, stale_before)
        changes += followups.settle_rows(order, by_ref, stale_before=stale_before)
    order.refresh_from_db()
    return Outcome(
        order=order,
        transaction=main.transaction if main else None,
        changes=tuple(changes),
        replayed=not changes,
        error=error,
    )


def _has_rows_to_settle(facts: list, stale_before) -> bool:
    """Whether the rows read before the PG was asked (``facts``) leave the row-settling steps of :func:`settle` anything to do.

    When the PG reported no attempt, nothing was applied: only a confirm open
    since before ``stale_before`` or a follow-up open or needing attention can
    change. (A row written since is younger than ``stale_before``, so those
    steps would leave it alone too.) Most orders a reconcile visits, abandoned
    checkouts, have neither: their settle is then one lookup and three reads.
    """
    return any(
        (fact.kind == K.CONFIRM and fact.is_open and fact.modified < stale_before)
        or (fact.kind in ledger.FOLLOW_UP_KINDS and (fact.is_open or fact.status == T.ATTENTION))
        for fact in facts
    )


def _settle_attempts(order, gateway, results: list[PaymentResult], *, source, stale_before):
    """Apply each attempt in turn: ``(changes, the first outcome, the first error)``."""
    changes: list[str] = []
    main: Outcome | None = None
    error: PgPayError | None = None
    for index, result in enumerate(results):
        refs = bookkeeping.references(gateway, result)
        open_row = ledger.open_rows(order, K.CONFIRM).filter(pg_payment_id__in=refs).order_by("created", "pk").first()
        try:
            if result.state == P.AUTHENTICATED and gateway.requires_confirm_call:
                again, failure = _confirm_again(order, gateway, open_row, source=source, stale_before=stale_before)
                changes += again
                error = error or failure
                continue
            outcome = bookkeeping.apply(order, result, source=source, confirm_row=open_row, settle_stale=True)
        except AmountMismatch as exc:
            changes.append("amount mismatch")  # recorded: the order failed, the money goes back
            error = error or exc
            continue
        except PgPayError as exc:
            logger.error("order %s: settling %s: %r", order.order_number, result.payment_id, exc)
            error = error or exc
            if index == 0:
                break  # the order's own payment could not be applied: leave the others be
            continue
        changes += outcome.changes
        main = main or outcome
    return changes, main, error


def _confirm_again(order, gateway, open_row, *, source, stale_before):
    """An attempt the PG authenticated but never approved: send its open confirm again, with the same key.

    Returns ``(changes, the error it met or None)``.
    """
    order.refresh_from_db()
    retry_allowed = open_row is not None and (
        open_row.modified < stale_before or (open_row.status == T.UNKNOWN and gateway.supports_idempotency_key)
    )
    if not retry_allowed or order.status != S.READY:
        return [], None
    try:
        outcome = _run_confirm(order, open_row, order.snapshot(), source=source)
    except PgPayError as exc:
        order.refresh_from_db()
        return [f"confirm sent again: {exc.code}"], exc
    return ["confirm sent again", *outcome.changes], None


def _fail_unapproved_confirms(order, by_ref: dict[str, PaymentResult], stale_before) -> list[str]:
    """Confirms the PG never approved (or never heard of) are over once nobody can be waiting for them."""
    changes = []
    with ledger.atomic(order):
        locked = ledger.lock_order(order)
        for row in ledger.open_rows(locked, K.CONFIRM).filter(modified__lt=stale_before):
            result = by_ref.get(row.pg_payment_id)
            if result is None:
                error: PgPayError = NotFound(_("The PG has no record of this payment."), code="NOT_FOUND")
            elif result.state.is_paid or result.state == P.WAITING_FOR_DEPOSIT:
                continue
            else:
                error = GatewayError(_("The PG never approved this payment."), code="NOT_APPROVED")
            ledger.finish(row, T.FAILED, error=error)
            changes.append("confirm not approved at the PG")
    refresh(order, locked)
    return changes


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
    now = now or bookkeeping.now()
    changes: list[str] = []
    error = None
    due = order.status in OPEN_STATUSES and order.expires_at is not None and order.expires_at <= now
    if deep or due or ledger.unsettled_rows(order).exists():
        outcome = settle(order)  # which reads the order again last
        changes += outcome.changes
        error = outcome.error
    else:
        order.refresh_from_db()
    if order.status in OPEN_STATUSES and order.expires_at is not None and order.expires_at <= now:
        if not ledger.open_rows(order, K.CONFIRM).exists():
            changes += expire(order, only_if_due=True).changes  # which closes the checkout at the PG first
    return Outcome(order=order, changes=tuple(changes), replayed=not changes, error=error)


def orders_to_reconcile(order_model, *, now=None, deep_since=None):
    """Orders of ``order_model`` that :func:`reconcile` should visit.

    Those with open ledger rows or rows that need attention, and unpaid
    orders whose time is up; with ``deep_since`` (a datetime) also every
    order modified since then.
    """
    now = now or bookkeeping.now()
    wanted = Q(pk__in=ledger.unsettled_order_ids(order_model.get_transaction_model())) | Q(status__in=OPEN_STATUSES, expires_at__lte=now)
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
]
