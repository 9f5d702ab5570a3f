"""The queued webhook path when the worker's world differs from the request's (review of 7 December 2026).

An attack review of the queue found deliveries answered 2xx to the PG and then
lost for good: filed as forged when the worker's settings lacked a key or held
a rotated secret; an applied delivery overwritten by a second worker's older
copy; retries that used up their attempts in half the designed time when the
queue lagged; tasks for a removed gateway re-enqueued at every cron run. Each
test here failed before its fix.
"""

import copy
import json
import time
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from django_pgpay import conf, reconciliation, tasks, webhooks
from django_pgpay.exceptions import GatewayUnavailable
from django_pgpay.models import ReconcileState, WebhookEvent
from django_pgpay.status import DeliveryStatus as D
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from tests.stripe_support import WEBHOOK_SECRET
from tests.test_stripe_webhooks import checkout, post  # noqa: F401 - checkout is a fixture
from tests.test_tasks import cancelled_at_toss, needs_tasks, queue, work  # noqa: F401 - fixtures
from tests.test_toss_webhooks import deliver, status_changed

pytestmark = pytest.mark.django_db


def set_options(settings, alias: str, **options) -> None:
    """Change ``alias``'s gateway OPTIONS (None removes one), as a worker deployed with other settings has them."""
    gateways = copy.deepcopy(settings.PGPAY["GATEWAYS"])
    for name, value in options.items():
        if value is None:
            gateways[alias]["OPTIONS"].pop(name, None)
        else:
            gateways[alias]["OPTIONS"][name] = value
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}


def reconcile(*args) -> None:
    call_command("pgpay_reconcile", *args, stdout=StringIO(), stderr=StringIO())


@needs_tasks
def test_a_worker_without_the_toss_key_fails_the_delivery_and_applies_it_once_the_key_is_back(queue, settings, toss_api, cancelled_at_toss):
    """It was *refused* ("not verified: SECRET_KEY is not set"), a final state: the order stayed PAID though Toss refunded it."""
    booking, key = cancelled_at_toss
    assert deliver(status_changed(toss_api, key)).status_code == 200  # answered: Toss will not send it again
    secret = settings.PGPAY["GATEWAYS"]["toss"]["OPTIONS"]["SECRET_KEY"]
    set_options(settings, "toss", SECRET_KEY=None)
    assert work(queue) == ["failed"]
    event = WebhookEvent.objects.get()
    assert event.status == D.FAILED and event.error.startswith("configuration:")
    set_options(settings, "toss", SECRET_KEY=secret)
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        reconcile()
    event.refresh_from_db()
    booking.refresh_from_db()
    assert (event.status, booking.status) == (D.APPLIED, S.CANCELED)


@needs_tasks
@pytest.mark.parametrize("worker_secrets", [[], ["whsec_cm90YXRlZC10by1hLW5ldy1vbmUtMDAwMDAwMDA="]], ids=["missing", "rotated"])
def test_a_signed_delivery_accepted_in_the_request_is_never_filed_as_forged_by_the_worker(
    worker_secrets, queue, settings, checkout, stripe_api
):
    """Stripe: the request checked the signature and answered 200; a worker with the secret missing or already
    rotated filed the delivery *refused*. It is failed now (retried, reported when given up) and applied once
    the settings are right again."""
    booking, session = checkout()
    stripe_api.pay(session["id"])
    assert post(*stripe_api.event("checkout.session.completed", session)).status_code == 200
    event = WebhookEvent.objects.get()
    assert event.verified  # the signature's verdict is kept with the delivery
    set_options(settings, "stripe", WEBHOOK_SECRETS=worker_secrets)
    assert work(queue) == ["failed"]
    event.refresh_from_db()
    assert event.status == D.FAILED and not event.processed
    set_options(settings, "stripe", WEBHOOK_SECRETS=[WEBHOOK_SECRET])
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        reconcile()
    event.refresh_from_db()
    booking.refresh_from_db()
    assert (event.status, booking.status) == (D.APPLIED, S.PAID)


def test_a_second_worker_with_an_older_copy_leaves_an_applied_delivery_alone(toss_api, seat, cancelled_at_toss, monkeypatch):
    """Two processes read the same received delivery; the first applies it, the second's lookup at the PG times
    out: its copy used to be written over the first's result (applied -> failed, processed again)."""
    booking, key = cancelled_at_toss
    body = json.dumps(status_changed(toss_api, key)).encode()
    stored = webhooks.accept(conf.get_gateway("toss"), headers={"Content-Type": "application/json"}, body=body).event
    first, second = WebhookEvent.objects.get(pk=stored.pk), WebhookEvent.objects.get(pk=stored.pk)
    assert webhooks.process(first).status == 200 and first.status == D.APPLIED
    seat.refresh_from_db()
    remain, rows = seat.remain, booking.transactions.filter(kind=K.WEBHOOK).count()

    def timeout(self, parsed, order):
        raise GatewayUnavailable("read timed out")

    monkeypatch.setattr(type(conf.get_gateway("toss")), "verify_webhook", timeout)
    receipt = webhooks.process(second)
    assert receipt.status == 200 and receipt.message == "applied by another process"
    stored.refresh_from_db()
    assert (stored.status, stored.processed, stored.attempts) == (D.APPLIED, True, 1)
    monkeypatch.undo()
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        reconcile()
    seat.refresh_from_db()
    assert (seat.remain, booking.transactions.filter(kind=K.WEBHOOK).count()) == (remain, rows)


@needs_tasks
@pytest.mark.parametrize("lag_minutes", [0, 5])
def test_retries_keep_their_backoff_when_the_queue_lags(lag_minutes, queue, toss_api, cancelled_at_toss, monkeypatch):
    """The task's own deferred retry and the one pgpay_reconcile --enqueue adds for a due delivery both ran:
    with workers 5 minutes behind, two chains spent MAX_ATTEMPTS in 68 minutes instead of 127."""
    booking, key = cancelled_at_toss
    start = timezone.now()
    assert deliver(status_changed(toss_api, key)).status_code == 200

    def down(self, parsed, order):
        raise GatewayUnavailable("PG down")

    monkeypatch.setattr(type(conf.get_gateway("toss")), "verify_webhook", down)
    event = WebhookEvent.objects.get()
    designed = sum(2**n for n in range(webhooks.MAX_ATTEMPTS - 1))  # minutes of backoff before the last attempt
    for minute in range(3 * designed):
        now = start + timedelta(minutes=minute, seconds=30)
        with time_machine.travel(now, tick=False):
            if minute % 10 == 0:
                reconcile("--enqueue")  # cron, every ten minutes
            due = [r for r in queue.results if (r.task.run_after or r.enqueued_at) + timedelta(minutes=lag_minutes) <= now]
            queue.results[:] = [r for r in queue.results if all(r is not d for d in due)]
            for result in due:
                result.task.call(*result.args, **result.kwargs)
        event.refresh_from_db()
        if event.attempts >= webhooks.MAX_ATTEMPTS:
            break
        assert len([r for r in queue.results if r.args[0] == event.pk]) <= 2, "retry chains multiply"
    assert event.attempts == webhooks.MAX_ATTEMPTS
    assert minute >= designed


@needs_tasks
def test_reconcile_enqueue_leaves_a_removed_gateways_deliveries_waiting(queue, settings, toss_api, cancelled_at_toss):
    """Its task could not build the gateway and raised at every cron run, the delivery never counted an attempt."""
    booking, key = cancelled_at_toss
    assert deliver(status_changed(toss_api, key)).status_code == 200
    queue.clear()  # its task was lost
    gateways = {alias: entry for alias, entry in settings.PGPAY["GATEWAYS"].items() if alias != "toss"}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}
    with time_machine.travel(timezone.now() + webhooks.QUEUE_TIMEOUT + timedelta(minutes=1)):
        reconcile("--enqueue")
    assert queue.results == []
    # A task that was already waiting when the alias went away records a failed attempt, not a crash.
    event = WebhookEvent.objects.get()
    assert tasks.process_delivery.call(event.pk) == "failed"
    event.refresh_from_db()
    assert event.attempts == 1 and event.error.startswith("ConfigurationError")


@needs_tasks
def test_a_failed_delivery_is_retried_by_reconcile_when_the_task_backend_is_gone(queue, settings, toss_api, cancelled_at_toss, monkeypatch):
    """PGPAY["TASK_BACKEND"] renamed between the request and the worker: the retry's enqueue raised after the
    failure was recorded (a crashed task); now it is logged and pgpay_reconcile retries the delivery."""
    booking, key = cancelled_at_toss
    assert deliver(status_changed(toss_api, key)).status_code == 200

    def down(self, parsed, order):
        raise GatewayUnavailable("PG down")

    monkeypatch.setattr(type(conf.get_gateway("toss")), "verify_webhook", down)
    settings.PGPAY = {**settings.PGPAY, "TASK_BACKEND": "renamed"}
    event = WebhookEvent.objects.get()
    assert tasks.process_delivery.call(event.pk) == "failed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == (D.FAILED, 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB")
def test_failures_of_one_order_recorded_at_once_each_count(toss_booking, monkeypatch):
    """Four workers' reconcile tasks of one order failing at the same instant recorded three failures (read,
    add one, save): the backoff came out shorter. The row is locked and read again now."""
    from tests.test_concurrency import run_together

    booking = toss_booking()
    backoff = reconciliation.backoff

    def slow_backoff(failures):
        time.sleep(0.2)  # between reading the count and writing it
        return backoff(failures)

    monkeypatch.setattr(reconciliation, "backoff", slow_backoff)
    results = run_together(4, lambda i: reconciliation.record(booking, error=GatewayUnavailable("down")))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert ReconcileState.objects.get().failures == 4
