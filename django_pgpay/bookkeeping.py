"""Bookkeeping: what a PG reports about a payment, written into the order and its ledger.

Every road of :mod:`django_pgpay.payments` (a confirm's answer, a webhook, a
lookup by reconciliation) ends in :func:`apply`: under the order's row lock it
sorts the PG's view of one payment attempt into one of four outcomes and
records it:

* **unpaid**: the attempt failed, expired or its account was closed
  (:func:`_apply_unpaid`);
* **adopted**: the order's payment (or the first paid attempt of an order
  that has none) took the money or issued an account (:func:`_adopt`);
* **paid already**: news about the order's own payment: cancels made at the
  PG, a deposit taken back (:func:`_update_paid`);
* **not the order's**: a second payment, money for an order that gave up: a
  follow-up gives it back or closes the account (:func:`_give_back`).

Every status change goes through :func:`transition`, which checks
:data:`~django_pgpay.status.TRANSITIONS` on the locked row, runs the order's
hooks in the same transaction and sends the signals after commit. Internal:
shops call :mod:`django_pgpay.payments`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf, followups, ledger
from .exceptions import AmountMismatch, GatewayError, InvalidTransition, OperationRefused, PaymentDeclined, PgPayError
from .gateways.results import PaymentResult, PaymentState
from .ledger import confirm_key
from .money import same_amount
from .signals import order_status_changed, payment_canceled, payment_confirmed
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
    ``error`` is set only by :func:`~django_pgpay.payments.settle` and
    :func:`~django_pgpay.payments.reconcile`: the first error they went past
    (every other operation raises its errors).
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


def now():
    return timezone.now()


def refresh(target, source) -> None:
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


def references(gateway, result: PaymentResult) -> set[str]:
    """Every id the PG knows ``result``'s payment by."""
    return gateway.payment_references(result.payment_id, result.pg_data)


# --- the one status-change function ----------------------------------------------

_HOOKS = {
    S.PAID: lambda order, amount: order.on_paid(),
    S.PARTIAL_CANCELED: lambda order, amount: order.on_canceled(amount if amount is not None else Decimal(0)),
    S.CANCELED: lambda order, amount: order.on_canceled(amount if amount is not None else Decimal(0)),
    S.EXPIRED: lambda order, amount: order.on_expired(),
    S.FAILED: lambda order, amount: order.on_failed(),
}


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
    hook = _HOOKS.get(target)
    if hook is not None:
        hook(order, amount)
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


# --- one attempt, under the order's lock ------------------------------------------


@dataclass
class _Step:
    """One application of a PG's report to a locked order: what it knows and what it did."""

    locked: object
    result: PaymentResult
    gateway: object
    rows: object
    own: bool
    row: object
    source: str
    actor: object = None
    webhook_event: object = None
    settle_stale: bool = False
    #: ``result`` was read after the order was known paid (see :class:`_RecheckReversal`).
    fresh: bool = False
    changes: list = field(default_factory=list)
    follow_ups: list = field(default_factory=list)


def merge_payment_fields(locked, result: PaymentResult) -> list[str]:
    """Copy the PG's ids and details onto the locked order; return the changed field names."""
    changed = []
    for name, value, limit in (
        ("pg_payment_id", result.payment_id, None),
        ("method", result.method, 64),
        ("receipt_url", result.receipt_url, 500),
    ):
        value = value[:limit] if value and limit else value
        if value and getattr(locked, name) != value:
            setattr(locked, name, value)
            changed.append(name)
    if result.pg_data:
        merged = {**(locked.pg_data or {}), **ledger.storable(result.pg_data)}
        if merged != locked.pg_data:
            locked.pg_data = merged
            changed.append("pg_data")
    if result.state == P.WAITING_FOR_DEPOSIT:
        # The account's deadline, or the shop's own when that comes first (AbstractOrder.get_deposit_deadline).
        deadline = locked.get_deposit_deadline()
        if deadline is not None and timezone.is_naive(deadline):  # a shop's naive time: the current time zone's
            deadline = timezone.make_aware(deadline)
        due = min((d for d in (result.expires_at, deadline) if d is not None), default=None)
        if due is not None and locked.expires_at != due:
            locked.expires_at = due
            changed.append("expires_at")
    return changed


def _confirm_row_for(locked, rows, gateway, result: PaymentResult):
    """The confirm row that names ``result``'s payment: by its key, else one open, waiting or done."""
    if result.payment_id:
        exact = rows.filter(idempotency_key=confirm_key(locked.order_number, result.payment_id)).first()
        if exact is not None:
            return exact
    refs = references(gateway, result)
    rank = {T.PENDING: 0, T.UNKNOWN: 0, T.WAITING: 1, T.SUCCEEDED: 2}
    usable = [r for r in rows.filter(kind=K.CONFIRM, pg_payment_id__in=refs) if r.status in rank]
    if not usable:
        return None
    return min(usable, key=lambda r: (rank[r.status], r.created, r.pk))


class _RecheckReversal(Exception):
    """A paid order's payment reported awaiting its deposit, in a report that may predate the deposit.

    A bank's reversal of a deposit and an answer read before the deposit (a
    slow reply to the confirm, a lookup racing the deposit webhook) look the
    same. :func:`apply` rolls back and looks the payment up again, now that
    the order is known paid, and applies that (``fresh``).
    """


def apply_locked(
    locked, result: PaymentResult, *, source, actor=None, confirm_row=None, webhook_event=None, settle_stale=False, fresh=False
):
    """Apply the PG's view of one payment attempt to a locked order.

    Returns ``(changes, confirm row, follow-ups)``. Follow-ups are the pending
    ledger rows of calls the library must make itself once this commits (see
    :mod:`django_pgpay.followups`), each with the attempt it is about. A report
    that a paid order's payment awaits its deposit again (a bank's reversal) is
    applied only when ``fresh`` (read after the order was known paid);
    otherwise :func:`apply` looks again first.
    """
    gateway = locked.get_gateway()
    if result.order_number and result.order_number != locked.order_number:
        raise OperationRefused(_("The payment belongs to another order."), code="PAYMENT_ORDER_MISMATCH", order=locked)
    rows = ledger.rows(locked)
    own = not locked.pg_payment_id or locked.pg_payment_id in references(gateway, result)
    row = confirm_row if confirm_row is not None else _confirm_row_for(locked, rows, gateway, result)
    step = _Step(locked, result, gateway, rows, own, row, source, actor, webhook_event, settle_stale, fresh)
    state = result.state
    # A card payment while the order waits for the deposit of its virtual account
    # (the buyer changed their mind): the card payment is taken, the account withdrawn.
    switches = not own and locked.status == S.WAITING_FOR_DEPOSIT and state in (P.APPROVED, P.PARTIAL_CANCELED)
    if state in (P.FAILED, P.EXPIRED) or (state == P.CANCELED and own and locked.status == S.WAITING_FOR_DEPOSIT):
        _apply_unpaid(step)
    elif not (state.is_paid or state == P.WAITING_FOR_DEPOSIT):
        pass  # pending or authenticated: nothing to apply yet
    elif (own or switches) and locked.status in OPEN_STATUSES:
        _adopt(step, switches=switches)
    elif own and locked.status in PAID_STATUSES:
        _update_paid(step)
    else:
        _give_back(step)
    return step.changes, step.row, step.follow_ups


def _adopt(step: _Step, *, switches: bool) -> None:
    """The order's payment took the money (PAID) or issued an account (WAITING_FOR_DEPOSIT)."""
    locked, result = step.locked, step.result
    if switches:
        _supersede_waiting_account(step)
    if result.state == P.WAITING_FOR_DEPOSIT:
        if locked.status == S.READY:
            step.row = ledger.record_confirm(
                locked, step.row, result, T.WAITING, source=step.source, actor=step.actor, error_code="", error_message=""
            )
            step.changes.append("virtual account issued")
        target = S.WAITING_FOR_DEPOSIT
    else:
        # The money is taken. post_save checks amount and currency; a mismatch rolls all of this back.
        step.row = ledger.record_confirm(
            locked, step.row, result, T.SUCCEEDED, source=step.source, actor=step.actor, error_code="", error_message=""
        )
        target = S.PAID
    extra = merge_payment_fields(locked, result)
    # A READY order has no cancel rows: with nothing cancelled at the PG either, there is nothing to sync.
    nothing_cancelled = locked.status == S.READY and not result.cancels and not result.canceled_amount
    if locked.status != target:
        transition(locked, target, ledger_row=step.row, extra_fields=extra)
        step.changes.append(f"status {target}")
    elif extra:
        locked.save(update_fields=extra)
    if target == S.PAID and not nothing_cancelled:
        step.changes += sync_cancels(locked, result, source=step.source, settle_stale=step.settle_stale, webhook_event=step.webhook_event)


def _update_paid(step: _Step) -> None:
    """News about the payment of a paid order: cancels made at the PG, a deposit the bank took back."""
    locked, result = step.locked, step.result
    if step.row is not None and step.row.is_open:
        # A second confirm of a payment already applied (by its webhook,
        # under another id of the same payment): nothing more to do.
        ledger.finish(step.row, T.FAILED, result=result, error=OperationRefused(_("Already applied."), code="ALREADY_APPLIED"))
        step.row = ledger.succeeded_rows(locked, K.CONFIRM).first()
    if result.state == P.WAITING_FOR_DEPOSIT:
        if not step.fresh:
            # Read before the deposit, perhaps (an attack review found a slow "account issued" reply
            # taking a paid order back to "awaiting deposit", then announced paid twice): look again.
            raise _RecheckReversal()
        step.changes += _reverse_deposit(step)
        return
    extra = [f for f in merge_payment_fields(locked, result) if f in ("method", "receipt_url", "pg_data")]
    if extra:
        locked.save(update_fields=extra)
    step.changes += sync_cancels(locked, result, source=step.source, settle_stale=step.settle_stale, webhook_event=step.webhook_event)


def _give_back(step: _Step) -> None:
    """A second payment of one order, or money for an order that gave up (FAILED, EXPIRED): it goes back."""
    if step.row is not None and step.row.is_open:
        ledger.finish(step.row, T.FAILED, result=step.result, error=OperationRefused(_("Not payable."), code="NOT_PAYABLE"))
    reason = "second payment for one order" if not step.own else "payment for an order that is no longer payable"
    opened = followups.open_for(step.locked, step.result, reason=reason)
    step.follow_ups += opened
    if opened:
        step.changes.append("withdrawal" if opened[0][0].kind == K.WITHDRAW else "compensation")


def _apply_unpaid(step: _Step) -> None:
    """An attempt that took no money: it failed, expired, or its virtual account was closed.

    It changes the order only when the order named it (a confirm row of the
    buyer's, or the order's own payment): a window a stranger opened with the
    order's number and closed must not fail another buyer's order. Even then
    a READY order is not failed by it (the buyer may still pay in the window);
    it expires when its time is up. An order waiting for the deposit of the
    account that expired or was closed expires.
    """
    locked, result, row, gateway = step.locked, step.result, step.row, step.gateway
    named = (
        row is not None
        or (step.own and bool(locked.pg_payment_id))
        or bool(references(gateway, result) & gateway.known_attempts(locked.pg_data or {}))
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
        step.changes.append("confirm failed")
    if not step.own:
        return
    if locked.status == S.WAITING_FOR_DEPOSIT:
        if state == P.CANCELED:
            _record_withdrawal(step)
        target = S.FAILED if state == P.FAILED else S.EXPIRED
        transition(locked, target, ledger_row=row)
        step.changes.append(f"status {target}")
    elif locked.status == S.READY and locked.expires_at is not None and locked.expires_at <= now():
        if not ledger.open_rows(locked, K.CONFIRM).exists():
            transition(locked, S.EXPIRED, ledger_row=row)
            step.changes.append(f"status {S.EXPIRED}")


def _record_withdrawal(step: _Step) -> None:
    """Note a virtual account the PG reports closed (by our call, or in its console)."""
    locked, result = step.locked, step.result
    rows = ledger.rows(locked).filter(kind=K.WITHDRAW, pg_payment_id=result.payment_id)
    open_row = rows.filter(status__in=OPEN_TRANSACTION_STATUSES).first()
    if open_row is not None:
        ledger.finish(open_row, T.SUCCEEDED, result=result)
    elif not rows.filter(status=T.SUCCEEDED).exists():
        key = f"{locked.order_number}-withdrawn-{ledger.digest(result.payment_id)}"
        ledger.record_reported(
            locked, K.WITHDRAW, result, key=key, reason=str(_("closed at the PG")), source=step.source, webhook_event=step.webhook_event
        )


def _supersede_waiting_account(step: _Step) -> None:
    """The order's unpaid virtual account gives way to another payment: its confirm row fails, a withdrawal follows."""
    locked = step.locked
    waiting = step.rows.filter(kind=K.CONFIRM, status=T.WAITING).first()
    if waiting is None:
        return
    ledger.finish(waiting, T.FAILED, error=OperationRefused(_("Another payment paid the order."), code="SUPERSEDED"))
    account = PaymentResult(
        state=P.WAITING_FOR_DEPOSIT,
        payment_id=waiting.pg_payment_id,
        order_number=locked.order_number,
        amount=waiting.amount,
        currency=waiting.currency,
    )
    follow_up = followups.open_follow_up(locked, account, K.WITHDRAW, reason="the order was paid another way")
    if follow_up is not None:
        step.follow_ups.append(follow_up)
        step.changes.append("withdrawal")


def _reverse_deposit(step: _Step) -> list[str]:
    """The bank took a deposit back: the order waits for its deposit again (PAID -> WAITING_FOR_DEPOSIT)."""
    locked, result = step.locked, step.result
    if locked.status != S.PAID:
        # Part of it was refunded already: nothing the table can express; a person must look.
        logger.error("order %s: the PG reports the deposit reversed after a refund (%s)", locked.order_number, locked.status)
        raise OperationRefused(_("The deposit was reversed after a refund; see the ledger."), code="REVERSAL_AFTER_REFUND")
    confirm = step.rows.filter(kind=K.CONFIRM, status=T.SUCCEEDED).first()
    if confirm is not None:
        ledger.finish(confirm, T.WAITING)
    key = f"{locked.order_number}-reversal-{uuid.uuid4().hex[:16]}"
    reason = str(_("deposit reversed at the PG"))
    reversal = ledger.record_reported(
        locked, K.REVERSAL, result, key=key, reason=reason, source=step.source, webhook_event=step.webhook_event
    )
    transition(locked, S.WAITING_FOR_DEPOSIT, ledger_row=reversal, extra_fields=merge_payment_fields(locked, result))
    return ["deposit reversed", f"status {S.WAITING_FOR_DEPOSIT}"]


# --- cancels -----------------------------------------------------------------------


def _match_cancels(locked, result: PaymentResult, open_rows: list, known_ids: set, done_total: Decimal):
    """Pair what the PG reports cancelled with our open cancel rows: ``(matched [(row, amount, pg id)], unasked [(amount, pg id, key)])``."""
    matched, unasked = [], []
    if not result.cancels:
        # The PG reports only a total: attribute the difference to our open rows first.
        missing = result.canceled_amount - done_total
        for row in list(open_rows):
            if 0 < row.amount <= missing:
                open_rows.remove(row)
                matched.append((row, row.amount, ""))
                missing -= row.amount
        if missing > 0:
            unasked.append((missing, "", f"total-{result.canceled_amount}"))
        return matched, unasked
    for entry in result.cancels:
        if entry.pg_cancel_id and entry.pg_cancel_id in known_ids:
            continue
        match = next((r for r in open_rows if entry.reference and r.idempotency_key == entry.reference), None)
        match = match or next((r for r in open_rows if same_amount(r.amount, entry.amount)), None)
        if match is not None:
            open_rows.remove(match)
            matched.append((match, entry.amount, entry.pg_cancel_id))
        else:
            unasked.append((entry.amount, entry.pg_cancel_id, entry.pg_cancel_id or f"{entry.amount}-{entry.canceled_at}"))
        if entry.pg_cancel_id:
            known_ids.add(entry.pg_cancel_id)
    return matched, unasked


def _refunds_failed_at_pg(locked, result: PaymentResult, cancels: list) -> list[str]:
    """Our cancel rows the PG reports failed (``result.failed_cancels``): the buyer has not been paid back.

    A row the PG had carried out *needs attention* (:data:`ledger.REFUND_FAILED`;
    the ``payment_needs_attention`` signal is sent): the order stays cancelled,
    and a person gives the money back (a refund in the PG's dashboard is then
    found by reconciliation and settles the row). An open row fails.
    """
    changes = []
    for entry in result.failed_cancels:
        row = next(
            (
                r
                for r in cancels
                if (entry.pg_cancel_id and r.pg_transaction_id == entry.pg_cancel_id)
                or (entry.reference and r.idempotency_key == entry.reference)
            ),
            None,
        )
        why = entry.failure or "failed"
        if row is not None and row.status == T.SUCCEEDED:
            message = _(
                "The PG reports that this refund failed (%(why)s): the buyer has not been paid back. Give the money back another way."
            )
            ledger.finish(row, T.ATTENTION, error=GatewayError(message % {"why": why}, code=ledger.REFUND_FAILED))
            followups.announce_attention(locked, row, f"the PG reports refund {entry.pg_cancel_id} failed ({why})")
            changes.append(f"refund {row.amount} failed at the PG")
        elif row is not None and row.is_open:
            message = _("The PG reports that this refund failed (%(why)s).")
            failed = GatewayError(message % {"why": why}, code="REFUND_FAILED_AT_PG")
            ledger.finish(row, T.FAILED, error=failed, pg_transaction_id=entry.pg_cancel_id[:200])
            changes.append(f"cancel {row.amount} failed at the PG")
    return changes


def _settle_owed(locked, done: list, amount: Decimal, pg_id: str) -> list[str]:
    """A refund made at the PG (``amount``) first covers what refunds that failed there still owe.

    A person gave the money back in the PG's dashboard, in one refund or in
    several: each failed row (*needs attention*, counted in the order's total)
    covered in full fails; one covered in part keeps owing the rest, the part
    covered split off as a failed row of its own. The order's total stays
    what the PG gave back plus what is still owed.
    """
    changes = []
    for owed in [r for r in done if r.status == T.ATTENTION and r.error_code == ledger.REFUND_FAILED]:
        if amount <= 0:
            break
        covered = min(amount, owed.amount)
        again = GatewayError(_("The PG reported this refund failed; it was given back again at the PG."), code=ledger.REFUND_FAILED)
        if covered >= owed.amount:
            done.remove(owed)
            ledger.finish(owed, T.FAILED, error=again)
        else:
            owed.amount -= covered
            owed.save(update_fields=["amount", "modified"])
            key = f"{owed.idempotency_key[:150]}-given-back-{ledger.digest(pg_id or str(amount))[:16]}"
            ledger.create(
                locked, owed.kind, amount=covered, currency=owed.currency, idempotency_key=key, status=T.FAILED,
                pg_payment_id=owed.pg_payment_id, pg_transaction_id=owed.pg_transaction_id, reason=owed.reason,
                source=owed.source, error_code=ledger.REFUND_FAILED, error_message=str(again),
            )  # fmt: skip
        amount -= covered
        changes.append(f"refund {covered} that failed given back again at the PG")
    return changes


def sync_cancels(locked, result: PaymentResult, *, source, settle_stale, webhook_event=None, cancels: list | None = None) -> list[str]:
    """Make the ledger's cancels and ``canceled_amount`` agree with what the PG reports.

    Cancels the PG reports are matched to our open cancel rows (by the
    reference the PG echoes, then by amount); those no row asked for (a cancel
    in the PG's dashboard) become ``sync`` rows, keyed by the PG's cancel id so
    that they are recorded once however often they are reported. ``cancels``
    (every row of ``locked`` of :data:`~django_pgpay.status.CANCEL_KINDS`, read
    under its lock already) saves the query.
    """
    if cancels is None:
        cancels = ledger.rows(locked).filter(kind__in=CANCEL_KINDS)  # one query
    cancels = sorted(cancels, key=lambda r: (r.created, r.pk))
    changes: list[str] = _refunds_failed_at_pg(locked, result, cancels)
    done = [r for r in cancels if ledger.counts_as_cancelled(r)]
    known_ids = {r.pg_transaction_id for r in done if r.pg_transaction_id}
    open_rows = [r for r in cancels if r.kind == K.CANCEL and r.is_open]
    matched, unasked = _match_cancels(locked, result, open_rows, known_ids, sum((r.amount for r in done), Decimal(0)))
    for row, amount, pg_id in matched:
        ledger.finish(row, T.SUCCEEDED, amount=amount, pg_transaction_id=(pg_id or row.pg_transaction_id)[:200])
        done.append(row)
        changes.append(f"cancel {amount} confirmed")
    for amount, pg_id, key_part in unasked:
        key = f"{locked.order_number}-sync-{ledger.digest(key_part)}"
        reason = str(_("cancelled at the PG"))
        fields = {"amount": amount, "currency": locked.currency, "pg_payment_id": locked.pg_payment_id, "pg_transaction_id": pg_id[:200]}
        added = ledger.record_reported(locked, K.SYNC, result, key=key, reason=reason, source=source, webhook_event=webhook_event, **fields)
        if added is not None:
            done.append(added)
            changes.append(f"cancel {amount} found at the PG")
            changes += _settle_owed(locked, done, amount, pg_id)
    if settle_stale:
        stale_before = now() - conf.in_flight_timeout()
        # A cancel the PG accepted and has not carried out yet (a bank refund) is no lost request.
        pending = list(result.pending_cancels)
        for row in open_rows:
            waiting = next((e for e in pending if e.pg_cancel_id == row.pg_transaction_id or same_amount(e.amount, row.amount)), None)
            if waiting is not None:
                pending.remove(waiting)
                continue
            if row.modified < stale_before:
                # Not certain: a PG slower than IN_FLIGHT_TIMEOUT may still carry it out (it is recorded then, as
                # found at the PG); the message says so, so that nobody cancels the same amount again unchecked.
                message = _(
                    "The PG had no record of this cancel when it was checked. Look at the PG's dashboard before "
                    "cancelling again: a refund the PG makes later is recorded then."
                )
                ledger.finish(row, T.FAILED, error=GatewayError(message, code="NOT_APPLIED_AT_PG"))
                changes.append(f"cancel {row.amount} not found at the PG")
    return changes + apply_ledger_total(locked, done)


def apply_ledger_total(locked, succeeded: list | None = None) -> list[str]:
    """Set ``canceled_amount`` (and the status) from the cancel rows that count (``succeeded``, or read here).

    Those the PG carried out, and those it carried out and later reported failed
    (:func:`ledger.counts_as_cancelled`).
    """
    if succeeded is None:
        succeeded = list(ledger.cancelled_rows(locked, *CANCEL_KINDS))
    total = sum((r.amount for r in succeeded), Decimal(0))
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
    last = max(succeeded, key=lambda r: (r.completed_at is not None, r.completed_at or now(), r.pk))
    transition(locked, target, amount=delta, ledger_row=last, extra_fields=["canceled_amount"])
    return [f"cancelled {total} in all"]


# --- applying, with its lock and its follow-ups ----------------------------------------


def apply(
    order, result: PaymentResult, *, source, actor=None, confirm_row=None, webhook_event=None, settle_stale=False, fresh=False
) -> Outcome:
    """Apply ``result`` under the order's lock; then run the follow-ups it called for.

    Raises :class:`AmountMismatch` when the PG took an amount the shop did not
    ask for, after recording it (the order fails, the money goes back). A
    report that a paid order's payment awaits its deposit again is checked by
    a second lookup first (outside the lock): only a PG that still says so
    after the order was known paid has reversed the deposit.
    """
    try:
        with ledger.atomic(order):
            locked = ledger.lock_order(order)
            row = ledger.lock(confirm_row) if confirm_row is not None else None
            changes, row, follow_ups = apply_locked(
                locked,
                result,
                source=source,
                actor=actor,
                confirm_row=row,
                webhook_event=webhook_event,
                settle_stale=settle_stale,
                fresh=fresh,
            )
            compensated = bool(locked.pg_payment_id) and locked.pg_payment_id not in references(locked.get_gateway(), result)
            if webhook_event is not None and changes:
                # Only a delivery that changed something leaves a row in the order's ledger
                # (the webhook log keeps every delivery): a repeat of what the shop knew,
                # or a stranger's closed window, writes nothing into a buyer's order.
                _record_webhook(locked, webhook_event, result, changes)
    except AmountMismatch as exc:
        _record_mismatch(order, result, exc, source=source, actor=actor, confirm_row=confirm_row)
        raise
    except _RecheckReversal:
        # The second lookup's error is raised (nothing applied): a webhook's delivery fails and is
        # delivered again, reconciliation reports it; a reversal is never acknowledged and lost.
        again = order.get_gateway().lookup(payment_id=result.payment_id, order=order.snapshot())
        again_kwargs = {"source": source, "actor": actor, "confirm_row": confirm_row, "webhook_event": webhook_event}
        return apply(order, again, settle_stale=settle_stale, fresh=True, **again_kwargs)
    followups.run_all(locked, follow_ups)
    refresh(order, locked)
    if row is not None and row.pk is not None and follow_ups:
        row.refresh_from_db()  # a follow-up (a refund of a second payment) may have written on it since
    return Outcome(order=locked, transaction=row, replayed=not changes, changes=tuple(changes), compensated=compensated)


def _record_webhook(locked, webhook_event, result: PaymentResult, changes: list[str]) -> None:
    """One ledger row per applied webhook delivery, saying what it changed."""
    ledger.record_reported(
        locked,
        K.WEBHOOK,
        result,
        key=f"{locked.order_number}-wh-{webhook_event.pk}",
        reason="; ".join(changes) or str(_("no change")),
        source=TransactionSource.WEBHOOK,
        webhook_event=webhook_event,
        pg_transaction_id=(webhook_event.event_id or "")[:200],
    )


def _record_mismatch(order, result: PaymentResult, exc: AmountMismatch, *, source, actor=None, confirm_row=None) -> None:
    """The PG confirmed an amount the shop did not ask for: record it, fail the order, give the money back."""
    logger.warning("order %s: %s", order.order_number, exc)
    with ledger.atomic(order):
        locked = ledger.lock_order(order)
        row = ledger.lock(confirm_row) if confirm_row is not None else None
        if row is None:
            row = ledger.rows(locked).filter(idempotency_key=confirm_key(locked.order_number, result.payment_id)).first()
        row = ledger.record_confirm(locked, row, result, T.FAILED, source=source, actor=actor, error=exc)
        if not locked.pg_payment_id:
            # Remember the payment, so a later deposit or lookup finds it and gives it back.
            locked.pg_payment_id = result.payment_id
            locked.save(update_fields=["pg_payment_id"])
        if locked.status in OPEN_STATUSES:
            transition(locked, S.FAILED, ledger_row=row)
        opened = followups.open_for(locked, result, reason="amount mismatch")
    followups.run_all(locked, opened)
    refresh(order, locked)


__all__ = ["Outcome", "apply", "apply_ledger_total", "apply_locked", "merge_payment_fields", "refresh", "sync_cancels", "transition"]
