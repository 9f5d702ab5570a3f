"""A real worker process (django-tasks-db's ``db_worker``) applies a queued webhook and a queued reconcile.

PostgreSQL only (CI's tox py313-django61 step): the test's server, the
sandbox's Toss on its live server and the worker share one database, and
the worker sees what the test committed. The webhook view stores the delivery
and answers at once; ``pgpay_reconcile --enqueue`` fans out one task per
order; then one worker started as its own process (``manage.py db_worker
--batch``) runs every task and exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from django_pgpay import payments
from django_pgpay.models import WebhookEvent
from django_pgpay.status import OrderStatus as S
from tests.test_flash_sale import shop  # noqa: F401 - the sandbox's Toss on the live server

#: A worker process shares the test's database: only a server database lets both connect.
WORKER_DATABASE = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="a worker process shares the test's database: PostgreSQL only (CI's tox py313-django61 step)",
)

pytestmark = [pytest.mark.django_db(transaction=True), WORKER_DATABASE]

ROOT = Path(__file__).resolve().parents[1]
BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def worker_env(settings, backend: dict, **extra: str) -> dict:
    """The environment of a worker process on the test's database and ``PGPAY`` (tests/worker_settings.py), ``backend`` as its ``TASKS``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "PGPAY_WORKER_DB_NAME": connection.settings_dict["NAME"],
        "PGPAY_WORKER_PGPAY": json.dumps(settings.PGPAY),
        "PGPAY_WORKER_TASKS": json.dumps(backend),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def run_worker(settings) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "django", "db_worker", "--batch", "--no-startup-delay", "--no-reload"]
    env = worker_env(settings, BACKEND)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def paid(make_booking, live_server):
    from django_pgpay.sandbox import toss as emulated

    booking = make_booking(gateway="toss")
    params = emulated.authenticate(booking.order_number, int(booking.amount), origin=live_server.url)
    assert payments.confirm(booking, payment_id=params["paymentKey"], amount=booking.amount).order.status == S.PAID
    return booking, params["paymentKey"]


def test_a_worker_process_applies_a_queued_webhook_and_a_queued_reconcile(shop, settings, live_server, make_booking, seat):  # noqa: F811
    from django_pgpay.sandbox import toss as emulated

    pytest.importorskip("django_tasks_db")
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = BACKEND
    type(seat).objects.filter(pk=seat.pk).update(remain=10)
    first, first_key = paid(make_booking, live_server)  # reconciled by the worker
    second, second_key = paid(make_booking, live_server)  # told by a webhook

    # Both cancelled in Toss's dashboard; the shop does not know yet.
    emulated.cancel_at_pg(first_key)
    out = Client()
    call_command("pgpay_reconcile", "--enqueue", "--deep-since", "1d", "--limit", "1", stdout=open(os.devnull, "w"))  # noqa: SIM115
    emulated.cancel_at_pg(second_key)
    body = {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-01-01T00:00:00.000000", "data": emulated.payment_state(second_key)}
    response = out.post("/pay/toss/webhook/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == "received"  # answered before it was verified or applied
    assert DBTaskResult.objects.count() == 2
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == S.PAID

    worker = run_worker(settings)
    assert worker.returncode == 0, worker.stderr[-3000:]

    assert sorted(DBTaskResult.objects.values_list("status", flat=True)) == ["SUCCESSFUL", "SUCCESSFUL"], worker.stderr[-3000:]
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == S.CANCELED and order.balance == 0
    event.refresh_from_db()
    assert (event.status, event.processed, event.verified) == ("applied", True, True)
    seat.refresh_from_db()
    assert seat.remain == 10  # both places returned once
