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
        assert "This job has stopped." in page and f'action="{again}"' in page and "Run it again" in page
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
