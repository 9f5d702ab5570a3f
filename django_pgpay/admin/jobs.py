"""Export jobs in the admin: how far each got, and its file when done."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import jobs, tasks
from ..models import ExportJob
from .media import ADMIN_MEDIA
from .queries import QueryGuard


def may_download(user, job: ExportJob, request=None, admin_site=None) -> bool:
    """The file of a job goes to the person who asked for it, or to a superuser.

    With ``request`` (and the ``admin_site`` the order model is registered
    with), the person must also still hold the permission that the action
    needed: the order model's view permission for a CSV, its invoice
    permission for invoices. A permission taken away takes the file with it.
    """
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    if not (job.created_by_id and job.created_by_id == user.pk):
        return False
    if request is None:
        return True
    try:
        model = apps.get_model(job.model_label)
    except (LookupError, ValueError):
        return False
    model_admin = (admin_site or admin.site)._registry.get(model)
    if model_admin is None:
        return False
    if job.kind == ExportJob.Kind.CSV:
        return bool(model_admin.has_view_permission(request))
    check = getattr(model_admin, "has_invoice_permission", model_admin.has_view_permission)
    return bool(check(request))


class ExportJobAdmin(QueryGuard, admin.ModelAdmin):
    """CSV exports and invoice batches run by a worker: read-only, with progress and a download link.

    A page with a job still running reloads itself every few seconds. A job
    with no sign of a worker for :data:`~django_pgpay.jobs.STALLED_AFTER` (its
    task lost, its worker stopped) stops reloading, says so, and offers the
    person who asked for it (or a superuser) to run it again.
    """

    list_display = ("display_name", "kind", "state", "display_progress", "created_by", "created_at", "display_download")
    list_filter = ("state", "kind")
    readonly_fields = (
        "kind",
        "state",
        "model_label",
        "display_progress",
        "display_download",
        "error",
        "created_by",
        "created_at",
        "finished_at",
    )
    fields = readonly_fields
    change_form_template = "admin/django_pgpay/exportjob/change_form.html"

    @property
    def media(self):
        return super().media + ADMIN_MEDIA

    def has_add_permission(self, request):
        return False

    def has_module_permission(self, request):
        # Anyone staff may follow the jobs they asked for (the order admin sends them here); the
        # list shows only their own (get_queryset), and each file needs its order permission still.
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or may_download(request.user, obj, request, self.admin_site))

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        queryset = super().get_queryset(request).defer("pks")
        return queryset if request.user.is_superuser else queryset.filter(created_by=request.user)

    @admin.display(description=_("file name"))
    def display_name(self, obj):
        return str(obj)

    @admin.display(description=_("progress"))
    def display_progress(self, obj):
        return format_html(
            '<progress max="100" value="{}"></progress> {} / {} ({}%)', obj.percent, f"{obj.done:,}", f"{obj.total:,}", obj.percent
        )

    @admin.display(description=_("download"))
    def display_download(self, obj):
        if obj.state != ExportJob.State.DONE or not obj.file:
            return "-"
        url = reverse(f"{self.admin_site.name}:django_pgpay_exportjob_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Download"))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/download/", wrap(self.download_view), name="django_pgpay_exportjob_download"),
            path("<path:object_id>/again/", wrap(self.run_again_view), name="django_pgpay_exportjob_again"),
            *super().get_urls(),
        ]

    def download_view(self, request, object_id):
        job = self.get_object(request, unquote(object_id))  # None for an id that is not one (no 500)
        if job is None or job.state != ExportJob.State.DONE or not job.file:
            raise Http404(gettext("This export is not ready."))
        if not may_download(request.user, job, request, self.admin_site):
            raise PermissionDenied
        try:
            stream = job.file.open("rb")
        except OSError:  # taken out of storage (cleaned up, a volume not mounted): not ready, never a 500
            raise Http404(gettext("This export's file is no longer in storage; run the export again.")) from None
        response = FileResponse(stream, as_attachment=True, filename=job.filename or None)
        if job.kind == ExportJob.Kind.CSV:
            response["Content-Type"] = "text/csv; charset=utf-8"  # as the admin's own CSV download says
        return response

    def run_again_view(self, request, object_id):
        """POST: queue a stalled job again (:func:`django_pgpay.jobs.requeue`); anything else changes nothing."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404(gettext("No such export job."))
        if not may_download(request.user, job, request, self.admin_site):
            raise PermissionDenied
        if jobs.requeue(job):
            tasks.start_job(job)
            self.message_user(request, gettext("The job was queued again; this page shows its progress."), messages.SUCCESS)
        else:
            self.message_user(request, gettext("The job is neither stalled nor failed; nothing was changed."), messages.WARNING)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:django_pgpay_exportjob_change", args=[job.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        stalled = job is not None and job.stalled
        running = job is not None and job.state in (ExportJob.State.QUEUED, ExportJob.State.RUNNING) and not stalled
        failed = job is not None and job.state == ExportJob.State.FAILED
        context = {
            "pgpay_reload": running,
            "pgpay_stalled": stalled,
            # Still queued, no worker took it yet: the queue may only be busy.
            "pgpay_waiting": stalled and job.waiting,
            "pgpay_may_run_again": (stalled or failed) and may_download(request.user, job, request, self.admin_site),
            "pgpay_quiet_since": (job.progressed_at or job.created_at) if stalled else None,
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **context})


__all__ = ["ExportJobAdmin", "may_download"]
