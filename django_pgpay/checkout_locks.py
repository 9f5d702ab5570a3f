"""The lock that makes one buyer's checkouts run one at a time: one form posted twice at once starts one order.

:class:`~django_pgpay.views.CheckoutMixin` serializes the checkouts of a buyer
with an account on the slot their user id falls on (:func:`key_for_user`): the
second of two posts at the same instant waits, then finds the READY order the
first made and comes back to it. (It locked the user row until December 2026:
the ledger row a confirm or cancel of the same buyer inserts under its order's
lock names the user (``actor``), and the database checks that foreign key with
a shared lock on the user row; order then user against user then order
deadlocked, a 500 on MariaDB and PostgreSQL.) A buyer without an account
(``allow_anonymous``) is serialized on the slot of the start form's token
(:func:`key_for`). Before this lock, the same start form posted twice at the
same instant (a double click on a guest's first checkout) ran both checkouts
side by side: neither found an order to come back to, and both reserved a
place and opened a payment window.

:func:`held` locks one of :data:`SLOTS` :class:`~django_pgpay.models.CheckoutLock`
rows, the one the form's token falls on (``SELECT ... FOR UPDATE``), in the
checkout's transaction: the second post waits until the first has committed,
then finds the order by the token. The rows are written once, by the
migration; a checkout never inserts or deletes one. (A first version wrote a
row per checkout and deleted it before the commit: on MariaDB the upserts of
different guests met each other's deleted rows in the index and deadlocked,
a 500 that anyone could provoke with made-up tokens.) Two unrelated guests
whose tokens fall on the same slot wait for each other for the length of a
checkout's transaction, a few milliseconds.

Only a token of the library's making (:func:`~django_pgpay.checkout_forms.is_ours`)
names a lock. Two tabs (two page loads, two tokens) posted at the same instant
are not serialized: each is a checkout of its own, and the order not paid expires.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager

from django.db import connections

from . import checkout_forms

logger = logging.getLogger("django_pgpay.checkout_locks")

#: How many lock rows there are (written by migration 0006).
SLOTS = 1024


def key_for(token: str | None) -> int | None:
    """The slot a start form's ``token`` falls on, or None: nothing to lock by."""
    if token is None or not checkout_forms.is_ours(token):
        return None
    return int.from_bytes(hashlib.sha256(f"django-pgpay checkout form {token}".encode()).digest()[:4], "big") % SLOTS


def key_for_user(user_pk) -> int:
    """The slot the checkouts of the buyer with account ``user_pk`` are serialized on."""
    return int.from_bytes(hashlib.sha256(f"django-pgpay checkout of user {user_pk}".encode()).digest()[:4], "big") % SLOTS


@contextmanager
def held(slot: int | None, *, using: str, user=None):
    """Hold the lock ``slot`` (see :func:`key_for`) for the rest of the transaction on ``using``; None holds nothing.

    Must run inside ``transaction.atomic(using=using)``. A slot whose row is
    missing (the table emptied by hand) is not locked, a warning is logged,
    and :func:`write_slots` (``pgpay_reconcile`` calls it) writes the rows
    back; writing it here, inside checkouts running at once, is what
    deadlocked. Meanwhile a buyer with an account (``user``, the slot being
    :func:`key_for_user`'s) is serialized on their user row as before this
    lock (a confirm of theirs at that instant may then deadlock with it);
    a guest's checkout runs unserialized.
    """
    if slot is None:
        yield
        return
    from .models import CheckoutLock

    if not connections[using].in_atomic_block:
        raise RuntimeError("checkout_locks.held() runs inside the checkout's transaction")
    if not list(CheckoutLock.objects.using(using).select_for_update().filter(slot=slot).values_list("slot", flat=True)):
        logger.warning("checkout lock %s has no row (django_pgpay_checkoutlock emptied?); pgpay_reconcile writes them back", slot)
        if user is not None:
            from django.contrib.auth import get_user_model  # the user may be a request's lazy object: not its model
            from django.db import router

            model = get_user_model()
            if router.db_for_write(model) == using:  # users kept in another database: nothing to lock in this transaction
                list(model._base_manager.using(using).select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
    yield


def write_slots(using: str = "default") -> int:
    """Write the lock rows that are missing (outside any checkout); how many were missing."""
    from .models import CheckoutLock

    locks = CheckoutLock.objects.using(using)
    missing = SLOTS - locks.filter(slot__lt=SLOTS).count()
    if missing:
        locks.bulk_create([CheckoutLock(slot=slot) for slot in range(SLOTS)], ignore_conflicts=True)
    return missing
