"""A lock for the checkouts of buyers without an account: one form posted twice at once starts one order.

:class:`~django_pgpay.views.CheckoutMixin` serializes the checkouts of a buyer
with an account on their user row: the second of two posts at the same
instant waits, then finds the READY order the first made and comes back to it.
A buyer without an account (``allow_anonymous``) has no such row. Before this
lock, the same start form posted twice at the same instant (a double click on
a guest's first checkout) ran both checkouts side by side: neither found an
order to come back to, and both reserved a place and opened a payment window.

:func:`held` locks a :class:`~django_pgpay.models.CheckoutLock` row named after
the form's token, in the checkout's transaction. The row is written with an
upsert (``INSERT ... ON CONFLICT DO UPDATE`` on PostgreSQL and SQLite,
``ON DUPLICATE KEY UPDATE`` on MySQL and MariaDB): a second transaction
writing the same key waits for the first to end, and an upsert waits with an
exclusive lock, so three posts at once queue rather than deadlock (two plain
``INSERT``\\s that both met a duplicate would each hold a shared lock and wait
for the other). The row is deleted again before the transaction commits;
nothing is left behind to clean up.

Only a token of the library's making (:func:`~django_pgpay.checkout_forms.is_ours`)
names a lock: the second post, once the first has committed, finds the order
by that token. Two tabs (two page loads, two tokens) posted at the same instant
are not serialized: each is a checkout of its own, and the order not paid expires.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

from django.db import connections
from django.utils import timezone

from . import checkout_forms


def key_for(token: str | None) -> str | None:
    """The lock's key for a start form's ``token`` (a SHA-256, hex), or None: nothing to lock by."""
    if token is None or not checkout_forms.is_ours(token):
        return None
    return hashlib.sha256(f"django-pgpay checkout form {token}".encode()).hexdigest()


@contextmanager
def held(key: str | None, *, using: str):
    """Hold the lock ``key`` (see :func:`key_for`) for the rest of the transaction on ``using``; None holds nothing.

    Must run inside ``transaction.atomic(using=using)``. The row is deleted when
    the block ends normally; when it raises, the transaction's rollback takes
    the row with it.
    """
    if key is None:
        yield
        return
    from .models import CheckoutLock

    if not connections[using].in_atomic_block:
        raise RuntimeError("checkout_locks.held() runs inside the checkout's transaction")
    target = ["key"] if connections[using].features.supports_update_conflicts_with_target else None
    CheckoutLock.objects.using(using).bulk_create(
        [CheckoutLock(key=key, held_at=timezone.now())], update_conflicts=True, unique_fields=target, update_fields=["held_at"]
    )
    yield
    CheckoutLock.objects.using(using).filter(key=key).delete()
