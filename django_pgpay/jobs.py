"""Admin exports and invoice batches that run in a worker: create the job, run it, write its file to storage.

The order admin calls :func:`create` for a selection larger than its threshold
(``PGPAY["BACKGROUND_EXPORT_ROWS"]``, ``PGPAY["BACKGROUND_INVOICES"]``) when a
queueing ``TASKS`` backend is configured (:func:`django_pgpay.tasks.queued`);
the :data:`~django_pgpay.tasks.write_export` and
:data:`~django_pgpay.tasks.render_invoice_batch` tasks call :func:`run_export_job`
and :func:`run_invoice_job`. A job is claimed with a conditional update
(*queued* to *running*), so a task delivered twice runs it once. Progress is
written as it goes (``done`` of ``total``) and the file goes to the default
storage under ``pgpay/jobs/<random folder>/`` (a name nobody can guess, should
the web server serve ``MEDIA_ROOT``); the admin serves it to whoever asked for
it while they still have the permission it needed, and deleting the job
deletes its file.

The CSV is the admin's own (its ``csv_columns``, BOM and chunk size, in the
language and time zone of the person who asked), the invoices those of
:mod:`django_pgpay.invoices`, in batches of :data:`INVOICE_BATCH`.
"""

from __future__ import annotations

import io
import logging
import secrets
import tempfile
import zipfile
import zoneinfo

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.files import File
from django.db import models, router, transaction
from django.utils import timezone, translation

from . import exports
from .models import ExportJob

logger = logging.getLogger("django_pgpay.jobs")

#: Invoices rendered per step of an invoice job (progress is written after each).
INVOICE_BATCH = 50
#: Rows between two progress writes of a CSV job.
PROGRESS_EVERY = 2000
#: Orders read per query of a CSV job, in the order they were listed (a CASE of this many positions).
ORDER_WINDOW = 1000
#: A queued or running job with no sign of a worker for this long is *stalled* (:attr:`ExportJob.stalled`).
STALLED_AFTER = ExportJob.STALLED_AFTER

Kind = ExportJob.Kind
State = ExportJob.State


class UnknownModel(LookupError):
    """The job's order model is not installed any more (``apps.get_model`` refused its label)."""


def create(kind: str, queryset, *, user=None, filename: str) -> ExportJob:
    """The job for ``queryset`` (its primary keys, in its order), queued; the caller enqueues its task."""
    return open_or_create(kind, queryset, user=user, filename=filename)[0]


def open_or_create(kind: str, queryset, *, user=None, filename: str) -> tuple[ExportJob, bool]:
    """``(job, created)``: the same person's unfinished job of the same kind and selection, or a new queued one.

    The action submitted twice (a double click, a reload of the POST) made two
    jobs, two worker runs and two files of the same rows; the second submit now
    gets the first job (not stalled: that one is run again from its page), if
    it was asked in the same language and time zone (the file is written in
    them). The person's user row is locked meanwhile, so two submits at the
    same instant make one job. The caller enqueues the task of a created job,
    and again that of a job still queued (a task the queue lost; a task
    delivered twice runs the job once).
    """
    pks = [pk if isinstance(pk, int) else str(pk) for pk in queryset.values_list("pk", flat=True)]
    label = queryset.model._meta.label
    owner = user if getattr(user, "pk", None) else None
    language, zone = translation.get_language() or "", str(timezone.get_current_timezone())
    same = {"kind": kind, "model_label": label, "total": len(pks), "language": language, "time_zone": zone}
    with transaction.atomic(using=router.db_for_write(ExportJob)):
        if owner is not None:
            list(get_user_model()._base_manager.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))
            unfinished = ExportJob.objects.filter(created_by=owner, state__in=(State.QUEUED, State.RUNNING), **same).order_by("-pk")
            for job in unfinished:
                if not job.stalled and job.pks == pks:
                    return job, False
        job = ExportJob.objects.create(pks=pks, created_by=owner, filename=filename, **same)
    return job, True


def requeue(job: ExportJob) -> bool:
    """Make a :attr:`stalled <ExportJob.stalled>` or failed job queued again, from the start; False (nothing done) otherwise.

    The caller then enqueues its task (:func:`django_pgpay.tasks.start_job`).
    The update is conditional: of two clicks, one wins. Should the stopped
    worker still be alive after all, it writes no more progress and its file
    is dropped: the job belongs to the run that claims it next (its
    ``attempt``). A failed job may be run again too.
    """
    if not (job.stalled or job.state == State.FAILED):
        return False
    quiet_since = timezone.now() - STALLED_AFTER
    stalled = ExportJob.objects.filter(pk=job.pk).filter(
        models.Q(state=State.FAILED)
        | models.Q(state__in=(State.QUEUED, State.RUNNING))
        & (models.Q(progressed_at__lt=quiet_since) | models.Q(progressed_at=None, created_at__lt=quiet_since))
    )
    return bool(stalled.update(state=State.QUEUED, done=0, error="", finished_at=None, progressed_at=timezone.now()))


def _claim(job_pk: int) -> ExportJob | None:
    """Take a queued job: it becomes *running* and this run's (its ``attempt`` counted); None when it was not queued."""
    claimed = ExportJob.objects.filter(pk=job_pk, state=State.QUEUED).update(
        state=State.RUNNING, attempt=models.F("attempt") + 1, progressed_at=timezone.now()
    )
    return ExportJob.objects.get(pk=job_pk) if claimed else None


def _own(job: ExportJob):
    """The job's row while it is still this run's: running, in the attempt this run claimed."""
    return ExportJob.objects.filter(pk=job.pk, state=State.RUNNING, attempt=job.attempt)


def _storage_name(filename: str) -> str:
    """Where a job's file is stored: under a random folder, so that its URL cannot be guessed.

    The download keeps ``filename`` (the admin's link sends it); a shop whose
    ``MEDIA_ROOT`` is served by the web server still never serves a job's file
    to anyone who was not given the name.
    """
    return f"{secrets.token_hex(16)}/{filename}"


def _run(job_pk: int, write) -> str:
    job = _claim(job_pk)
    if job is None:
        return "taken"
    try:
        try:
            model = apps.get_model(job.model_label)
        except LookupError as exc:
            raise UnknownModel(str(exc)) from exc
        try:
            zone = zoneinfo.ZoneInfo(job.time_zone) if job.time_zone else timezone.get_default_timezone()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = timezone.get_default_timezone()
        with translation.override(job.language or None), timezone.override(zone), tempfile.TemporaryFile() as out:
            written = write(job, model, out)
            out.seek(0)
            job.file.save(_storage_name(job.filename), File(out), save=False)
    except Exception as exc:
        logger.exception("export job #%s failed", job.pk)
        _own(job).update(state=State.FAILED, error=_error_text(job, exc), finished_at=timezone.now())
        raise
    # ``done`` is what the file holds: orders deleted after the selection are not in it.
    if not _own(job).update(state=State.DONE, file=job.file.name, done=written, finished_at=timezone.now()):
        # Run again meanwhile (this run had gone quiet): the new run's file is the job's; this one goes.
        job.file.delete(save=False)
        logger.warning("export job #%s was run again while attempt %s was still at work; its file was dropped", job.pk, job.attempt)
        return "superseded"
    return State.DONE


def _error_text(job: ExportJob, exc: Exception) -> str:
    """What the job's page says of a failure: a model that is gone by name; anything else by its kind only.

    A storage or database error's text names server paths, hosts or SQL (``[Errno 28] No space
    left on device: '/srv/media/...'``); the log has it, with the traceback.
    """
    if isinstance(exc, UnknownModel):  # the order model is gone: its name is no secret
        return f"{type(exc).__name__}: {exc}"[:5000]
    return f"{type(exc).__name__} (the server's log has the details: logger django_pgpay.jobs, job #{job.pk})"


def _progress(job: ExportJob, done: int) -> None:
    _own(job).update(done=min(done, job.total), progressed_at=timezone.now())


def _selected(model, job: ExportJob):
    return model._base_manager.filter(pk__in=job.pks)


def order_admin_for(model):
    """The admin ``model`` is registered with: Django's default site's, else any other site's (or None)."""
    from django.contrib import admin
    from django.contrib.admin.sites import all_sites

    found = admin.site._registry.get(model)
    for site in () if found is not None else list(all_sites):
        found = site._registry.get(model)
        if found is not None:
            break
    return found


def run_export_job(job_pk: int) -> str:
    """Write the CSV of a job's orders, as its order admin exports them, to storage."""

    def write(job, model, out):
        model_admin = order_admin_for(model)
        columns = getattr(model_admin, "csv_columns", None)
        bom = getattr(model_admin, "csv_bom", None)
        chunk_size = getattr(model_admin, "csv_chunk_size", exports.DEFAULT_CHUNK_SIZE)
        prefetch = getattr(model_admin, "csv_prefetch_related", ())
        counted = {"rows": 0, "reported": 0}

        def on_rows(n: int) -> None:
            counted["rows"] += n
            if counted["rows"] - counted["reported"] >= PROGRESS_EVERY:
                counted["reported"] = counted["rows"]
                _progress(job, counted["rows"])

        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        # In the order of the admin's list when the action ran (the order of ``pks``), as the
        # inline export writes it: one window of keys at a time, ordered by position in it.
        windows = [job.pks[i : i + ORDER_WINDOW] for i in range(0, len(job.pks), ORDER_WINDOW)] or [[]]
        for n, window in enumerate(windows):
            whens = [models.When(pk=pk, then=i) for i, pk in enumerate(window)]
            queryset = model._base_manager.filter(pk__in=window)
            queryset = queryset.order_by(models.Case(*whens, output_field=models.IntegerField())) if whens else queryset
            exports.write_csv(queryset, text, columns, bom=bom, chunk_size=chunk_size, on_rows=on_rows, prefetch=prefetch, header=n == 0)
        text.flush()
        text.detach()
        return counted["rows"]

    return _run(job_pk, write)


def run_invoice_job(job_pk: int) -> str:
    """Render a job's invoices (one PDF, or a ZIP of one PDF per order) to storage, in batches."""
    from . import invoices

    def write(job, model, out):
        orders = list(_selected(model, job).order_by("pk"))
        batches = [orders[i : i + INVOICE_BATCH] for i in range(0, len(orders), INVOICE_BATCH)]
        done = 0
        if job.kind == Kind.INVOICE_ZIP:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for batch in batches:
                    for name, pdf in invoices.render_invoice_files(batch):
                        archive.writestr(name, pdf)
                    done += len(batch)
                    _progress(job, done)
            return done
        pdfs = []
        for batch in batches:
            pdfs.append(invoices.render_invoices(batch))
            done += len(batch)
            _progress(job, done)
        if pdfs:
            out.write(pdfs[0] if len(pdfs) == 1 else invoices.merge_pdfs(pdfs))
        return done

    return _run(job_pk, write)


def delete_file(sender, instance: ExportJob, **kwargs) -> None:
    """``post_delete`` of :class:`ExportJob`: its file goes with it (once the deletion commits)."""
    if instance.file:
        name, storage = instance.file.name, instance.file.storage
        transaction.on_commit(lambda: storage.delete(name), using=kwargs.get("using"))


__all__ = [
    "INVOICE_BATCH",
    "PROGRESS_EVERY",
    "STALLED_AFTER",
    "create",
    "delete_file",
    "order_admin_for",
    "requeue",
    "run_export_job",
    "run_invoice_job",
]
