"""Celery on a real Redis: a celery worker applies a queued webhook and a queued reconcile (django-tasks-celery).

The set-up docs/scaling.rst shows for a shop that runs Celery: ``TASKS`` names
django-tasks-celery's backend and the project's Celery app
(tests/celery_app.py, configured from ``CELERY_*`` settings); the workers are
Celery's own (``celery -A ... worker``). The test starts its own
``redis-server`` as the broker, queues one reconcile (``pgpay_reconcile
--enqueue``) and one webhook delivery, then one worker process, and waits
until both are applied. PostgreSQL only, like tests/test_worker.py: the worker
shares the test's database. django-tasks-celery needs Django 6 (``django.tasks``):
skipped on Django 5.2, and where ``redis-server`` is missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.test import Client

from django_pgpay import tasks
from django_pgpay.models import WebhookEvent
from django_pgpay.status import OrderStatus as S
from tests.redis_server import NEEDS_REDIS, redis_server
from tests.test_flash_sale import shop  # noqa: F401 - the sandbox's Toss on the live server
from tests.test_worker import ROOT, WORKER_DATABASE, paid, worker_env

REDIS_PORT = int(os.environ.get("PGPAY_TEST_CELERY_REDIS_PORT", "8107"))
BACKEND = {"default": {"BACKEND": "django_tasks_celery.CeleryBackend", "OPTIONS": {"CELERY_APP": "tests.celery_app.app"}}}

pytestmark = [pytest.mark.django_db(transaction=True), WORKER_DATABASE, NEEDS_REDIS]


@pytest.fixture
def broker(tmp_path, settings):
    pytest.importorskip("celery")
    pytest.importorskip("django_tasks_celery", reason="django-tasks-celery needs Django 6 (django.tasks)")
    url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = url
    with redis_server(REDIS_PORT, tmp_path):
        settings.TASKS = BACKEND
        yield url


def start_worker(settings, url: str) -> subprocess.Popen:
    env = worker_env(settings, BACKEND, PGPAY_TEST_CELERY_URL=url)
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool", "solo", "--loglevel", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_celery_worker_applies_a_queued_webhook_and_a_queued_reconcile(broker, shop, settings, live_server, make_booking, seat):  # noqa: F811
    from django_pgpay.sandbox import toss as emulated

    assert tasks.queued(tasks.process_delivery) and tasks.queued(tasks.reconcile_order)
    type(seat).objects.filter(pk=seat.pk).update(remain=10)
    first, first_key = paid(make_booking, live_server)  # reconciled by the worker
    second, second_key = paid(make_booking, live_server)  # told by a webhook

    # Both cancelled in Toss's dashboard; the shop does not know yet.
    emulated.cancel_at_pg(first_key)
    call_command("pgpay_reconcile", "--enqueue", "--deep-since", "1d", "--limit", "1", stdout=open(os.devnull, "w"))  # noqa: SIM115
    emulated.cancel_at_pg(second_key)
    body = {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-01-01T00:00:00.000000", "data": emulated.payment_state(second_key)}
    response = Client().post("/pay/toss/webhook/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == "received"  # answered before it was verified or applied
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == S.PAID  # nothing runs in the web process

    worker = start_worker(settings, broker)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and worker.poll() is None:
            event.refresh_from_db()
            statuses = set(type(first).objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True))
            if event.status == "applied" and statuses == {S.CANCELED}:
                break
            time.sleep(0.2)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        output = worker.communicate(timeout=30)[0]

    for order in (first, second):
        order.refresh_from_db()
        assert order.status == S.CANCELED and order.balance == 0, output[-3000:]
    event.refresh_from_db()
    assert (event.status, event.processed, event.verified) == ("applied", True, True)
    seat.refresh_from_db()
    assert seat.remain == 10  # both places returned once
