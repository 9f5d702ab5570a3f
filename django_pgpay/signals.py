"""Signals a shop can listen to, and the amount check every ledger row passes.

The three signals are sent **after the transaction commits** (a rolled back
change never announces itself), with ``sender`` the concrete order model:

* ``order_status_changed(order, old_status, new_status)``
* ``payment_confirmed(order, transaction)``: the order became PAID (or
  WAITING_FOR_DEPOSIT's deposit arrived).
* ``payment_canceled(order, transaction, amount)``: ``amount`` was given back.
* ``payment_needs_attention(order, transaction, reason)``: money is held at the
  PG that the library could not give back by itself (a deposit into an account
  with no refund account, a refund the PG keeps refusing). Hook it to e-mail
  or chat: a person must act (see ``docs/reliability.rst``).

:func:`validate_confirmed_amount` is the ``post_save`` check users know from
the iamport tutorial, made safe: the operations save ledger rows inside
``transaction.atomic()``, so when it raises nothing commits.
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

from .exceptions import AmountMismatch
from .money import same_amount
from .status import TransactionKind, TransactionStatus

order_status_changed = Signal()
payment_confirmed = Signal()
payment_canceled = Signal()
payment_needs_attention = Signal()


def validate_confirmed_amount(sender, instance, **kwargs) -> None:
    """Refuse a succeeded (or issued virtual-account) confirm whose amount or currency is not the order's.

    Connected as ``post_save`` to every concrete
    :class:`~django_pgpay.models.AbstractTransaction` subclass by the app
    config. It must run inside an atomic block; outside one it would fire after
    the row is committed, which is exactly the tutorial's mistake.
    """
    if instance.kind != TransactionKind.CONFIRM or instance.status not in (TransactionStatus.SUCCEEDED, TransactionStatus.WAITING):
        return
    order = instance.order
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "A succeeded confirm row was saved outside transaction.atomic(); "
            "use django_pgpay.payments so the amount check can roll it back."
        )
    if not same_amount(instance.amount, order.amount) or instance.currency.upper() != order.currency.upper():
        raise AmountMismatch(
            expected=order.amount,
            actual=instance.amount,
            expected_currency=order.currency,
            actual_currency=instance.currency,
            order_number=order.order_number,
        )
