"""Work that may leave the request: django-pgpay's tasks, in Django's Tasks framework.

Four tasks, defined with the Tasks API (``django.tasks`` on Django 6.x, the
``django-tasks`` backport on 5.2) and run by whatever backend the shop names
in ``TASKS`` (``PGPAY["TASK_BACKEND"]`` picks the alias, ``"default"`` unless
set):

* :data:`process_delivery`: verify, de-duplicate and apply one stored webhook
  delivery (:func:`django_pgpay.webhooks.process`), and enqueue it again later
  when the PG could not be reached;
* :data:`reconcile_order`: bring one order in step with its PG
  (:func:`django_pgpay.reconciliation.visit`), what ``pgpay_reconcile
  --enqueue`` fans out;
* :data:`render_invoice_batch` and :data:`write_export`: the admin's invoice
  batches and CSV exports above a threshold, written to storage with their
  progress on an :class:`~django_pgpay.models.ExportJob`.

With no ``TASKS`` setting, with the immediate backend, or on Django 5.2 without
the backport, nothing is queued: the webhook view, the command and the admin
do their work inline, as they always did. :func:`queued` tells which.

Everything a task does is made safe for many workers by the database, not by
the process: a delivery is claimed under its order's row lock before it is
applied (:func:`django_pgpay.webhooks.process`), and every payment operation
takes the order's row lock and writes the ledger first
(:mod:`django_pgpay.payments`). Arguments are primary keys and labels (JSON),
never model instances.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from itertools import islice

from django.db import transaction
from django.utils import timezone

from . import conf

logger = logging.getLogger("django_pgpay.tasks")

try:  # Django 6.x
    from django.tasks import task as _task
except ImportError:  # pragma: no cover - Django 5.2
    try:
        from django_tasks import task as _task
    except ImportError:
        _task = None

#: Backends that run a task inside ``enqueue()``: with them nothing is queued.
INLINE_BACKENDS = frozenset({"ImmediateBackend"})


class InlineTask:
    """A stand-in for a task where no Tasks framework is installed (Django 5.2 without ``django-tasks``).

    ``enqueue`` calls the function at once, like the immediate backend.
    """

    def __init__(self, func: Callable):
        self.func = func
        self.name = func.__name__
        self.module_path = f"{func.__module__}.{func.__qualname__}"

    def using(self, **_options) -> InlineTask:
        return self

    def enqueue(self, *args, **kwargs):
        self.func(*args, **kwargs)

    def call(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def get_backend(self):
        return None


def _define(func: Callable):
    return InlineTask(func) if _task is None else _task(func)


def bound(task):
    """``task`` on the backend that ``PGPAY["TASK_BACKEND"]`` names (read at each call)."""
    return task.using(backend=conf.setting("TASK_BACKEND"))


def backend_error(task) -> str:
    """Why ``task`` has no backend (``PGPAY["TASK_BACKEND"]`` names no alias of ``TASKS``, ...), or ``""``."""
    try:
        bound(task).get_backend()
    except Exception as exc:  # noqa: BLE001 - InvalidTaskBackend, an import error of the backend: reported, not raised
        return f"{type(exc).__name__}: {exc}"
    return ""


def queued(task) -> bool:
    """True when enqueueing ``task`` hands it to a worker (a queueing backend); False when it runs inline.

    A ``PGPAY["TASK_BACKEND"]`` that names no backend (a typo; ``manage.py
    check`` says so, ``django_pgpay.E012``) runs the task inline and logs an
    error, rather than failing every webhook delivery before it is stored.
    """
    try:
        backend = bound(task).get_backend()
    except Exception:  # noqa: BLE001 - see backend_error()
        logger.error("%s runs inline: %s", getattr(task, "name", task), backend_error(task))
        return False
    return backend is not None and type(backend).__name__ not in INLINE_BACKENDS


def enqueue(task, *args, run_after=None, **kwargs):
    """Enqueue ``task`` once the current transaction commits (at once outside one).

    A row the task reads is therefore visible to the worker when it starts.
    """
    bound_task = bound(task)
    if run_after is not None:
        bound_task = bound_task.using(run_after=run_after)
    transaction.on_commit(lambda: bound_task.enqueue(*args, **kwargs))


def enqueue_many(task, calls: Iterable[tuple], *, batch: int = 500) -> int:
    """Enqueue ``task`` once for each argument tuple of ``calls``, now, ``batch`` of them to a transaction.

    For a fan-out whose arguments name rows committed before (``pgpay_reconcile
    --enqueue``'s orders), where :func:`enqueue`'s wait for the commit buys
    nothing: a database backend (django-tasks-db) then writes its task rows
    ``batch`` to a commit instead of one commit each; other backends are
    called the same way. Returns how many were enqueued.
    """
    bound_task = bound(task)
    calls = iter(calls)
    done = 0
    while chunk := list(islice(calls, batch)):
        with transaction.atomic():
            for args in chunk:
                bound_task.enqueue(*args)
        done += len(chunk)
    return done


# --- the tasks -----------------------------------------------------------------------------


@_define
def process_delivery(event_pk: int, models: list[str] | None = None) -> str:
    """Process one stored webhook delivery (by primary key); enqueued again later when the PG could not be reached."""
    from . import webhooks
    from .models import WebhookEvent
    from .status import DeliveryStatus

    event = WebhookEvent.objects.filter(pk=event_pk).first()
    if event is None:
        return "gone"
    if event.status not in (DeliveryStatus.RECEIVED, DeliveryStatus.FAILED):
        return str(event.status)
    if not webhooks.take_attempt(event):
        # Not due (another task of this delivery, the retry pgpay_reconcile --enqueue added beside
        # this one's own deferred retry, tried it meanwhile) or taken at this instant by another
        # worker: that one carries on, so one chain of retries runs per delivery.
        return "not due"
    receipt = webhooks.process(event, models=models or None)
    status = receipt.event.status
    if status == DeliveryStatus.FAILED and receipt.event.attempts < webhooks.MAX_ATTEMPTS:
        try:
            backend = bound(process_delivery).get_backend()
        except Exception:  # noqa: BLE001 - the failure is recorded: pgpay_reconcile processes it again
            logger.error(
                "%s: no retry enqueued: %s", getattr(process_delivery, "name", "process_delivery"), backend_error(process_delivery)
            )
            backend = None
        if backend is not None and getattr(backend, "supports_defer", False):
            wait = webhooks.RETRY_BASE * (2 ** max(receipt.event.attempts - 1, 0))
            enqueue(process_delivery, event_pk, models, run_after=timezone.now() + wait)
        # Without deferred tasks, pgpay_reconcile processes failed deliveries again.
    return str(status)


@_define
def reconcile_order(model_label: str, pk, deep: bool = False) -> str:
    """Reconcile one order (``"app_label.Model"`` and primary key) with its PG."""
    from . import reconciliation
    from .orders import order_models

    model = order_models([model_label])[0]
    order = model._base_manager.filter(pk=pk).first()
    if order is None:
        return "gone"
    visit = reconciliation.visit(order, deep=deep)
    if visit.error is not None:
        return f"error: {visit.message}"
    return ", ".join(visit.outcome.changes) if visit.outcome.changes else "unchanged"


@_define
def render_invoice_batch(job_pk: int) -> str:
    """Render the invoices of an :class:`~django_pgpay.models.ExportJob` to storage."""
    from .jobs import run_invoice_job

    return run_invoice_job(job_pk)


@_define
def write_export(job_pk: int) -> str:
    """Write the CSV of an :class:`~django_pgpay.models.ExportJob` to storage."""
    from .jobs import run_export_job

    return run_export_job(job_pk)


def start_job(job) -> None:
    """Hand an :class:`~django_pgpay.models.ExportJob` to a worker: its kind's task, once the transaction commits."""
    enqueue(write_export if job.kind == "csv" else render_invoice_batch, job.pk)


__all__ = [
    "InlineTask",
    "bound",
    "enqueue",
    "enqueue_many",
    "process_delivery",
    "queued",
    "reconcile_order",
    "render_invoice_batch",
    "start_job",
    "write_export",
]
