"""One reconciliation run: which orders, in which order, and what happens to one that fails.

``pgpay_reconcile`` (and a shop's own scheduler) visit orders through
:func:`plan` and report each one's fate with :func:`record`. An order whose
reconciliation fails (its PG cannot be read, its reply is malformed) is
isolated: it is reported and skipped, the run goes on with the next order,
and the order waits for its turn again with a growing backoff
(:class:`~django_pgpay.models.ReconcileState`) behind the orders that did
not fail. One unreadable payment is never a wall for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from . import payments
from .exceptions import GatewayUnavailable, PgPayError
from .models import ReconcileState

logger = logging.getLogger("django_pgpay.reconcile")

#: The first wait after a failure; doubled for each failure in a row, up to :data:`MAX_BACKOFF`.
FIRST_BACKOFF = timedelta(minutes=2)
MAX_BACKOFF = timedelta(hours=6)


def _label(model) -> str:
    return model._meta.label_lower


def backoff(failures: int) -> timedelta:
    """How long an order that failed ``failures`` times in a row waits before its next visit."""
    return min(FIRST_BACKOFF * (2 ** max(failures - 1, 0)), MAX_BACKOFF)


def planned_pks(model, *, deep_since=None, gateways=None, limit: int = 0, now=None) -> list:
    """The primary keys of :func:`plan`'s orders, in its order (what ``pgpay_reconcile --enqueue`` fans out).

    ``limit``: at most that many (0: all); a negative one is a ``ValueError``
    (as a slice it would leave out the last orders, run after run).
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 (all) or more, not {limit}")
    now = now or timezone.now()
    queryset = payments.orders_to_reconcile(model, now=now, deep_since=deep_since)
    if gateways:
        queryset = queryset.filter(gateway__in=gateways)
    states = {s.order_pk: s for s in ReconcileState.objects.filter(order_model=_label(model))}
    fresh, retries = [], []
    for pk in queryset.values_list("pk", flat=True):
        state = states.get(str(pk))
        if state is None:
            fresh.append(pk)
        elif state.next_attempt_at is None or state.next_attempt_at <= now:
            retries.append((state.failures, pk))
    pks = fresh + [pk for _failures, pk in sorted(retries)]
    return pks[:limit] if limit else pks


def plan(model, *, deep_since=None, gateways=None, limit: int = 0, now=None) -> Iterator:
    """The orders of ``model`` to visit now: those that did not fail first (by pk), then failed ones that are due.

    Orders still backing off after a failure are left out.
    """
    for pk in planned_pks(model, deep_since=deep_since, gateways=gateways, limit=limit, now=now):
        order = model._base_manager.filter(pk=pk).first()
        if order is not None:
            yield order


def record(order, *, error: Exception | None = None, now=None) -> ReconcileState | None:
    """Note how reconciling ``order`` went: a failure pushes its next visit back, a success forgets it."""
    label = _label(type(order))
    if error is None:
        ReconcileState.objects.filter(order_model=label, order_pk=str(order.pk)).delete()
        return None
    now = now or timezone.now()
    with transaction.atomic(using=router.db_for_write(ReconcileState)):
        state, _created = ReconcileState.objects.get_or_create(
            order_model=label, order_pk=str(order.pk), defaults={"order_number": order.order_number}
        )
        # Locked and read again: failures of the order recorded at the same time (two workers'
        # tasks) each count, rather than both writing the same "one more".
        state = ReconcileState.objects.select_for_update().get(pk=state.pk)
        state.failures += 1
        state.next_attempt_at = now + backoff(state.failures)
        state.last_error = f"{type(error).__name__}: {error}"[:2000]
        state.order_number = order.order_number
        state.save()
    return state


@dataclass(frozen=True)
class Visit:
    """How reconciling one order went: the outcome, or the error that was recorded (and its backoff state)."""

    order: Any
    outcome: Any = None
    error: Exception | None = None
    message: str = ""
    state: ReconcileState | None = None


def visit(order, *, deep: bool = False) -> Visit:
    """Reconcile ``order`` with its PG and :func:`record` how it went; never raises for one order's failure.

    ``pgpay_reconcile`` calls this for each order of its :func:`plan`, and the
    :data:`~django_pgpay.tasks.reconcile_order` task for the one it is given.
    """
    outcome = None
    try:
        outcome = payments.reconcile(order, deep=deep)
    except GatewayUnavailable as exc:
        error, message = exc, f"PG unavailable ({exc.code}); retried later"
    except PgPayError as exc:
        error, message = exc, f"{exc.code}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one order must not stop the run
        logger.exception("reconciling %s failed", order.order_number)
        error, message = exc, f"{type(exc).__name__}: {exc}"
    else:
        error = outcome.error
        message = f"{error.code}: {error}" if error is not None else ""
    state = record(order, error=error)
    return Visit(order=order, outcome=outcome, error=error, message=message, state=state)


def failing(model=None):
    """Orders whose last reconciliation failed (``ReconcileState`` rows), most failures first."""
    rows = ReconcileState.objects.all()
    if model is not None:
        rows = rows.filter(order_model=_label(model))
    return rows.order_by("-failures", "order_model", "order_pk")


__all__ = ["FIRST_BACKOFF", "MAX_BACKOFF", "Visit", "backoff", "failing", "plan", "planned_pks", "record", "visit"]
