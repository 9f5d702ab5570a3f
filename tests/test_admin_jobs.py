"""Admin exports and invoice batches above the threshold run as tasks: progress, the file, who may download it."""

from __future__ import annotations

import pytest

from django_pgpay.models import ExportJob
from tests.test_tasks import needs_tasks, queue, work  # noqa: F401 - fixtures


@pytest.fixture
def background(settings, queue):  # noqa: F811
    settings.PGPAY = {**settings.PGPAY, "BACKGROUND_EXPORT_ROWS": 2, "BACKGROUND_INVOICES": 2}
    return queue


def streamed(response) -> bytes:
    return b"".join(response.streaming_content)


@needs_tasks
def test_a_large_csv_export_runs_in_a_worker_and_is_downloaded_by_who_asked(
    background, admin_client, pay_booking, client, django_user_model
):
    orders = [pay_booking() for _ in range(3)]
    selected = {"action": "export_csv", "_selected_action": [o.pk for o in orders]}
    response = admin_client.post("/admin/testapp/booking/", selected)
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response.url == f"/admin/django_pgpay/exportjob/{job.pk}/change/"
    assert (job.kind, job.state, job.total, job.done) == ("csv", "queued", 3, 0)
    page = admin_client.get(response.url).content.decode()
    assert "0 / 3 (0%)" in page and 'http-equiv="refresh"' in page  # running: the page reloads itself
    assert work(background) == ["done"]
    job.refresh_from_db()
    assert (job.state, job.done, job.percent) == ("done", 3, 100)
    page = admin_client.get(response.url).content.decode()
    download = f"/admin/django_pgpay/exportjob/{job.pk}/download/"
    assert download in page and "3 / 3 (100%)" in page and 'http-equiv="refresh"' not in page
    stored = streamed(admin_client.get(download))
    # The same CSV as the streamed export of a small selection.
    with pytest.MonkeyPatch.context() as patch:
        from django.conf import settings

        patch.setitem(settings.PGPAY, "BACKGROUND_EXPORT_ROWS", 1000)
        inline = streamed(admin_client.post("/admin/testapp/booking/", selected))
    assert stored == inline and stored.startswith("\ufeff".encode())
    # Another staff member sees neither the job nor its file.
    other = django_user_model.objects.create_user("other", password="pw", is_staff=True)
    client.force_login(other)
    assert client.get(download).status_code in (403, 404)
    assert work(background) == []  # a task delivered twice would find the job taken


@needs_tasks
def test_the_export_action_sent_twice_makes_one_job(background, admin_client, pay_booking):
    """A double click (or a reload of the POST) on a large export made two jobs, two worker runs and two files."""
    orders = [pay_booking() for _ in range(3)]
    selected = {"action": "export_csv", "_selected_action": [o.pk for o in orders]}
    first = admin_client.post("/admin/testapp/booking/", selected)
    second = admin_client.post("/admin/testapp/booking/", selected, follow=True)
    job = ExportJob.objects.get()
    assert first.url == second.redirect_chain[-1][0] == f"/admin/django_pgpay/exportjob/{job.pk}/change/"
    assert "being prepared already" in second.content.decode()
    # Its task is enqueued again (the queue may have lost the first): the job runs once.
    assert work(background) == ["done", "taken"]
    # Another selection, the same one once the first is done, or in another language: a job of its own.
    admin_client.post("/admin/testapp/booking/", {**selected, "_selected_action": [o.pk for o in orders[:2]] + [pay_booking().pk]})
    admin_client.post("/admin/testapp/booking/", selected)
    admin_client.post("/admin/testapp/booking/", selected, HTTP_ACCEPT_LANGUAGE="ko")
    assert ExportJob.objects.count() == 4
    assert sorted(ExportJob.objects.values_list("language", flat=True)) == ["en", "en", "en", "ko"]


@needs_tasks
def test_an_export_whose_task_the_queue_lost_runs_when_asked_again(background, admin_client, pay_booking):
    """The reuse of an unfinished job kept a job whose task was lost waiting for 15 minutes (attack review)."""
    selected = {"action": "export_csv", "_selected_action": [pay_booking().pk for _ in range(3)]}
    admin_client.post("/admin/testapp/booking/", selected)
    background.clear()  # the broker lost it
    admin_client.post("/admin/testapp/booking/", selected)
    assert work(background) == ["done"]
    assert ExportJob.objects.get().state == "done"


@needs_tasks
def test_small_exports_stay_inline(background, admin_client, pay_booking):
    order = pay_booking()
    response = admin_client.post("/admin/testapp/booking/", {"action": "export_csv", "_selected_action": [order.pk]})
    assert response.status_code == 200 and not ExportJob.objects.exists() and not background.results


@needs_tasks
def test_a_large_invoice_batch_runs_in_a_worker(background, admin_client, pay_booking):
    pytest.importorskip("weasyprint")
    import io

    from pypdf import PdfReader

    orders = [pay_booking() for _ in range(3)]
    response = admin_client.post("/admin/testapp/booking/", {"action": "invoice_pdf", "_selected_action": [o.pk for o in orders]})
    job = ExportJob.objects.get()
    assert response.status_code == 302 and job.kind == "invoice_pdf"
    assert work(background) == ["done"]
    pdf = streamed(admin_client.get(f"/admin/django_pgpay/exportjob/{job.pk}/download/"))
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert all(o.order_number in text for o in orders)


@pytest.mark.django_db
def test_a_large_invoice_batch_without_a_worker_is_refused_not_laid_out_in_the_request(settings, admin_client, pay_booking):
    """An attack review (7 December 2026): with no task backend, "select all" laid out every invoice in
    the admin's request as one document (about 1 MB and 80 ms each): minutes and gigabytes for 10,000."""
    from django.contrib.messages import get_messages

    settings.PGPAY = {**settings.PGPAY, "BACKGROUND_INVOICES": 2}
    orders = [pay_booking() for _ in range(3)]
    for action in ("invoice_pdf", "invoice_zip"):
        response = admin_client.post("/admin/testapp/booking/", {"action": action, "_selected_action": [o.pk for o in orders]})
        assert response.status_code == 302 and not ExportJob.objects.exists()
        message = [str(m) for m in get_messages(response.wsgi_request)][-1]
        assert message.startswith('3 invoices are more than one request makes (PGPAY["BACKGROUND_INVOICES"] = 2)')
    # At the limit it is served at once.
    pytest.importorskip("weasyprint")
    at_limit = admin_client.post("/admin/testapp/booking/", {"action": "invoice_zip", "_selected_action": [o.pk for o in orders[:2]]})
    assert at_limit.status_code == 200 and at_limit["Content-Type"] == "application/zip"


@needs_tasks
@pytest.mark.parametrize("stopped", ["task lost while queued", "worker stopped while running"])
def test_a_stalled_job_says_so_and_can_be_run_again_by_who_asked(stopped, background, admin_client, pay_booking, client, django_user_model):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from django_pgpay import jobs

    orders = [pay_booking() for _ in range(3)]
    admin_client.post("/admin/testapp/booking/", {"action": "export_csv", "_selected_action": [o.pk for o in orders]})
    job = ExportJob.objects.get()
    page_url = f"/admin/django_pgpay/exportjob/{job.pk}/change/"
    again = f"/admin/django_pgpay/exportjob/{job.pk}/again/"
    background.clear()  # the task is gone: no worker will take the job
    if stopped == "worker stopped while running":
        ExportJob.objects.filter(pk=job.pk).update(state="running", done=2, progressed_at=timezone.now())

    # While a worker may still come, the page reloads and nothing can be run again.
    page = admin_client.get(page_url).content.decode()
    assert 'http-equiv="refresh"' in page and "This job has stopped" not in page
    assert admin_client.post(again).status_code == 302
    job.refresh_from_db()
    assert job.state in ("queued", "running") and not background.results

    later = timezone.now() + jobs.STALLED_AFTER + timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        page = admin_client.get(page_url).content.decode()
        assert 'http-equiv="refresh"' not in page  # it would reload for ever
        # Never taken by a worker: the queue may only be busy, and the page says that; taken and gone quiet: stopped.
        said = "No worker has taken this job yet." if stopped == "task lost while queued" else "This job has stopped."
        assert said in page and f'action="{again}"' in page and "Run it again" in page
        # Another staff member sees no such job; a GET changes nothing.
        other = django_user_model.objects.create_user("other", password="pw", is_staff=True)
        client.force_login(other)
        assert client.post(again).status_code == 404
        assert admin_client.get(again).status_code == 405
        assert not background.results
        response = admin_client.post(again, follow=True)
        assert "The job was queued again" in response.content.decode()
        job.refresh_from_db()
        assert (job.state, job.done) == ("queued", 0) and len(background.results) == 1
        # A second click (another tab) finds it queued again, not stalled: one task.
        assert "nothing was changed" in admin_client.post(again, follow=True).content.decode()
        assert len(background.results) == 1
        assert work(background) == ["done"]
    job.refresh_from_db()
    assert (job.state, job.done) == ("done", 3)
    assert streamed(admin_client.get(f"/admin/django_pgpay/exportjob/{job.pk}/download/")).count(b"\n") == 4


# --- found by an attack review of the jobs (7 December 2026) -------------------------------------


def staff_with(django_user_model, *codenames, username="clerk"):
    """A staff user (not a superuser) holding only ``codenames`` of the test app (and no job permission)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="testapp", codename__in=codenames))
    return user


def export_as(client, orders):
    client.post("/admin/testapp/booking/", {"action": "export_csv", "_selected_action": [o.pk for o in orders]})
    return ExportJob.objects.latest("pk")


@needs_tasks
def test_a_jobs_file_is_stored_under_a_name_nobody_can_guess(background, admin_client, pay_booking):
    """Stored as ``pgpay/jobs/<model>-orders-<second>.csv``, a file under a served MEDIA_ROOT could be fetched by
    guessing the second; now a random folder holds it, and the download keeps the readable name."""
    import re

    job = export_as(admin_client, [pay_booking() for _ in range(3)])
    assert work(background) == ["done"]
    job.refresh_from_db()
    assert re.fullmatch(r"pgpay/jobs/[0-9a-f]{32}/" + re.escape(job.filename), job.file.name), job.file.name
    response = admin_client.get(f"/admin/django_pgpay/exportjob/{job.pk}/download/")
    assert response["Content-Disposition"] == f'attachment; filename="{job.filename}"'
    assert response["Content-Type"] == "text/csv; charset=utf-8"


@needs_tasks
def test_the_file_goes_only_to_who_still_may_export(background, client, pay_booking, django_user_model):
    """The person who asked, while they still hold the permission the export needed; no job permission is needed
    to follow one's own job (it was a 403 right after the action)."""
    clerk = staff_with(django_user_model, "view_booking")
    client.force_login(clerk)
    job = export_as(client, [pay_booking() for _ in range(3)])
    page = f"/admin/django_pgpay/exportjob/{job.pk}/change/"
    assert client.get(page).status_code == 200
    assert client.get("/admin/django_pgpay/exportjob/").status_code == 200
    assert work(background) == ["done"]
    download = f"/admin/django_pgpay/exportjob/{job.pk}/download/"
    assert client.get(download).status_code == 200
    clerk.user_permissions.clear()
    clerk = django_user_model.objects.get(pk=clerk.pk)  # no cached permissions
    client.force_login(clerk)
    assert client.get("/admin/testapp/booking/").status_code == 403
    assert client.get(download).status_code == 403
    assert client.get(page).status_code == 403


@needs_tasks
def test_a_file_gone_from_storage_is_a_404_not_a_500(background, admin_client, pay_booking):
    job = export_as(admin_client, [pay_booking() for _ in range(3)])
    assert work(background) == ["done"]
    job.refresh_from_db()
    job.file.storage.delete(job.file.name)
    response = admin_client.get(f"/admin/django_pgpay/exportjob/{job.pk}/download/")
    assert response.status_code == 404


@needs_tasks
def test_deleting_a_job_deletes_its_file(background, admin_client, pay_booking):
    job = export_as(admin_client, [pay_booking() for _ in range(3)])
    assert work(background) == ["done"]
    job.refresh_from_db()
    storage, name = job.file.storage, job.file.name
    assert storage.exists(name)
    with pytest.MonkeyPatch.context():
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = admin_client.post(f"/admin/django_pgpay/exportjob/{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not ExportJob.objects.exists()
    assert not storage.exists(name)


@needs_tasks
def test_done_counts_the_rows_in_the_file(background, admin_client, pay_booking):
    """Orders deleted between the selection and the worker: the page said 3 / 3 for a file of 1 row."""
    from tests.testapp.models import Booking

    orders = [pay_booking() for _ in range(3)]
    job = export_as(admin_client, orders)
    for order in orders[:2]:
        order.transactions.all().delete()
        Booking.objects.filter(pk=order.pk).delete()
    assert work(background) == ["done"]
    job.refresh_from_db()
    assert (job.state, job.done, job.total) == ("done", 1, 3)
    assert streamed(admin_client.get(f"/admin/django_pgpay/exportjob/{job.pk}/download/")).count(b"\n") == 2


@needs_tasks
def test_a_job_of_an_unknown_model_fails_instead_of_running_for_ever(background, admin_client, pay_booking):
    job = export_as(admin_client, [pay_booking() for _ in range(3)])
    ExportJob.objects.filter(pk=job.pk).update(model_label="testapp.Gone")
    with pytest.raises(LookupError):
        work(background)
    job.refresh_from_db()
    assert job.state == "failed" and "Gone" in job.error
    page = admin_client.get(f"/admin/django_pgpay/exportjob/{job.pk}/change/").content.decode()
    assert "This job failed." in page and "Run it again" in page


@needs_tasks
def test_a_storage_failure_names_no_server_path_on_the_jobs_page(background, admin_client, pay_booking, monkeypatch, caplog):
    """The page showed the exception's text to staff: a full disk's names the storage folder (the log keeps it)."""
    from django.core.files.storage import storages

    job = export_as(admin_client, [pay_booking() for _ in range(3)])

    errors = iter([OSError(28, "No space left on device", "/srv/secret-media/pgpay/jobs/x.csv"), KeyError("/srv/secret-media/y")])

    def full(*args, **kwargs):
        raise next(errors)

    monkeypatch.setattr(type(storages["default"]), "save", full)
    with pytest.raises(OSError):
        work(background)
    job.refresh_from_db()
    assert job.state == "failed" and job.error.startswith("OSError") and "/srv" not in job.error
    # A KeyError is a LookupError too, but not the "order model is gone" one whose text is shown.
    assert admin_client.post(f"/admin/django_pgpay/exportjob/{job.pk}/again/").status_code == 302
    with pytest.raises(KeyError):
        work(background)
    job.refresh_from_db()
    assert job.error.startswith("KeyError") and "/srv" not in job.error
    page = admin_client.get(f"/admin/django_pgpay/exportjob/{job.pk}/change/").content.decode()
    assert "This job failed." in page and "/srv/secret-media" not in page
    assert "/srv/secret-media" in caplog.text  # the log has it, for the people who run the server


@needs_tasks
def test_a_worker_that_went_quiet_writes_nothing_over_the_run_that_replaced_it(background, admin_client, pay_booking):
    """Run again while the first worker was only slow: the first one's progress no longer moves the finished job."""
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from django_pgpay import jobs

    job = export_as(admin_client, [pay_booking() for _ in range(3)])
    background.clear()
    slow = jobs._claim(job.pk)  # worker A takes it, then goes quiet
    assert slow.attempt == 1
    with time_machine.travel(timezone.now() + jobs.STALLED_AFTER + timedelta(minutes=1), tick=False):
        assert jobs.requeue(ExportJob.objects.get(pk=job.pk))
    assert jobs.run_export_job(job.pk) == "done"  # worker B
    jobs._progress(slow, 1)  # A wakes up
    job.refresh_from_db()
    assert (job.state, job.done, job.attempt) == ("done", 3, 2)


@needs_tasks
@pytest.mark.parametrize("window", [1000, 2])
def test_a_background_csv_keeps_the_order_of_the_list(background, admin_client, pay_booking, monkeypatch, window):
    """Sorted in the admin (``?o=...``), the inline export follows the list; the background one wrote the model's
    default order. Written in windows of keys (``ORDER_WINDOW``): one header, every row, in the list's order."""
    from django_pgpay import jobs
    from django_pgpay.models import ExportJob as Job
    from tests.testapp.models import Booking

    monkeypatch.setattr(jobs, "ORDER_WINDOW", window)
    orders = [pay_booking() for _ in range(3)]
    listed = Booking.objects.filter(pk__in=[o.pk for o in orders]).order_by("pk")  # the model lists newest first
    job = jobs.create(Job.Kind.CSV, listed, filename="listed.csv")
    assert jobs.run_export_job(job.pk) == "done"
    job.refresh_from_db()
    lines = job.file.open("rb").read().decode("utf-8-sig").splitlines()
    numbers = [o.order_number for o in listed]
    assert len(lines) == 4 and all(n not in lines[0] for n in numbers)  # one header row, then the three orders
    assert [next(n for n in numbers if n in line) for line in lines[1:]] == numbers


@needs_tasks
def test_an_order_admin_on_a_site_of_the_shops_own_runs_its_export_job(background, admin_user, pay_booking, rf, monkeypatch):
    """An attack review (7 December 2026): with the order admin on a site of the shop's own (ExportJob's
    admin only on Django's default one, as the library registers it), the job was created and then the
    redirect to its page was a NoReverseMatch (a 500), and the worker looked the order admin up on the
    default site only, losing its columns."""
    from django.contrib import admin
    from django.contrib.messages.storage.fallback import FallbackStorage

    from django_pgpay import jobs
    from django_pgpay.admin import OrderAdmin
    from tests.testapp.models import Booking

    class BranchAdmin(OrderAdmin):
        csv_columns = ("order_number", "amount")

    site = admin.AdminSite(name="branch")
    model_admin = BranchAdmin(Booking, site)
    site._registry[Booking] = model_admin
    monkeypatch.delitem(admin.site._registry, Booking)
    assert jobs.order_admin_for(Booking) is model_admin

    orders = [pay_booking() for _ in range(3)]
    request = rf.post("/branch/testapp/booking/")
    request.user = admin_user
    request.session = {}
    request._messages = FallbackStorage(request)
    response = model_admin.export_csv(request, Booking.objects.filter(pk__in=[o.pk for o in orders]))
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response.url == f"/admin/django_pgpay/exportjob/{job.pk}/change/"
    assert work(background) == ["done"]
    job.refresh_from_db()
    with job.file.open("rb") as f:
        header = f.read().decode("utf-8-sig").splitlines()[0]
    assert header.count(",") == 1  # the shop's two columns, not the defaults
