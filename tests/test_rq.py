"""RQ on a real Redis: a queued webhook applied by an ``rqworker`` process (django-tasks-rq).

The test starts its own ``redis-server`` (no persistence, a port of its own)
and, once the delivery is queued, one ``manage.py rqworker --burst`` with
django-tasks-rq's job class. PostgreSQL only, like tests/test_worker.py: the
worker shares the test's database. Skipped where ``redis-server`` or
django-tasks-rq is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import Client

from django_pgpay import tasks
from django_pgpay.models import WebhookEvent
from django_pgpay.status import OrderStatus as S
from tests.redis_server import NEEDS_REDIS, redis_server
from tests.test_flash_sale import shop  # noqa: F401 - the sandbox's Toss on the live server
from tests.test_worker import ROOT, WORKER_DATABASE, paid, worker_env

REDIS_PORT = int(os.environ.get("PGPAY_TEST_REDIS_PORT", "8106"))
BACKEND = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}

pytestmark = [pytest.mark.django_db(transaction=True), WORKER_DATABASE, NEEDS_REDIS]


@pytest.fixture
def redis_url(tmp_path, settings):
    pytest.importorskip("django_tasks_rq")
    with redis_server(REDIS_PORT, tmp_path) as url:
        settings.RQ_QUEUES = {"default": {"URL": url}}
        settings.TASKS = BACKEND
        yield url


def test_an_rq_worker_applies_a_queued_webhook(redis_url, shop, settings, live_server, make_booking, seat):  # noqa: F811
    from django_pgpay.sandbox import toss as emulated

    assert tasks.queued(tasks.process_delivery)
    booking, key = paid(make_booking, live_server)
    emulated.cancel_at_pg(key)
    body = {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-01-01T00:00:00.000000", "data": emulated.payment_state(key)}
    response = Client().post("/pay/toss/webhook/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200 and WebhookEvent.objects.get().status == "received"

    env = worker_env(settings, BACKEND, PGPAY_TEST_REDIS_URL=redis_url)
    command = [sys.executable, "-m", "django", "rqworker", "default", "--burst", "--job-class", "django_tasks_rq.Job"]
    worker = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert worker.returncode == 0, worker.stderr[-3000:]

    event = WebhookEvent.objects.get()
    assert (event.status, event.processed) == ("applied", True), worker.stderr[-3000:]
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
