"""django_pgpay.tasks: the queued webhook path, reconcile --enqueue and the claim that applies a delivery once.

A dummy backend (``DummyBackend``: it keeps what is enqueued and runs nothing)
stands for a queue; the test plays the worker by calling the task. Without a
queueing backend everything stays inline (the rest of the suite).
"""

import importlib.util
import json
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from django_pgpay import tasks, webhooks
from django_pgpay.models import WebhookEvent
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from tests.test_reconcile_command import timed_out_confirm
from tests.test_toss_webhooks import confirm_via_return, deliver, status_changed

pytestmark = pytest.mark.django_db

if importlib.util.find_spec("django.tasks"):
    FRAMEWORK = "django.tasks"
elif importlib.util.find_spec("django_tasks"):  # pragma: no cover - Django 5.2 with the backport
    FRAMEWORK = "django_tasks"
else:  # pragma: no cover
    FRAMEWORK = None

_has_tasks = pytest.mark.skipif(FRAMEWORK is None, reason="no Tasks framework (Django 6.x or django-tasks) installed")


def needs_tasks(test):
    """Tasks are enqueued when the transaction commits: these tests commit theirs."""
    return _has_tasks(pytest.mark.django_db(transaction=True)(test))


@pytest.fixture
def queue(settings):
    """A queueing backend that runs nothing: what is enqueued waits in ``backend.results``."""
    settings.TASKS = {"default": {"BACKEND": f"{FRAMEWORK}.backends.dummy.DummyBackend"}}
    backend = tasks.bound(tasks.process_delivery).get_backend()
    backend.clear()
    return backend


@pytest.fixture
def cancelled_at_toss(toss_booking, toss_api):
    """A booking paid at Toss and then cancelled in Toss's dashboard: its webhook is yet to come. ``(booking, payment key)``."""
    booking = toss_booking()
    key = toss_api.authorize(booking)
    confirm_via_return(booking, key)
    toss_api.cancel_in_dashboard(key)
    return booking, key


def work(backend):
    """Play the worker: run every task waiting in the dummy backend once, in order."""
    waiting = list(backend.results)
    backend.clear()
    return [result.task.call(*result.args, **result.kwargs) for result in waiting]


def test_without_a_queue_webhooks_stay_inline(toss_api, cancelled_at_toss):
    assert not tasks.queued(tasks.process_delivery)
    booking, key = cancelled_at_toss
    assert deliver(status_changed(toss_api, key)).status_code == 200
    assert WebhookEvent.objects.get().status == "applied"


@needs_tasks
def test_a_queued_webhook_is_answered_first_and_applied_by_the_worker(queue, toss_api, seat, cancelled_at_toss):
    assert tasks.queued(tasks.process_delivery)
    booking, key = cancelled_at_toss
    lookups = len(toss_api.sent("lookup"))
    body = status_changed(toss_api, key)
    first, second = deliver(body), deliver(body)
    # Answered at once, stored, and not yet verified at Toss (no lookup in the request).
    assert first.status_code == second.status_code == 200 and first.content == b"OK"
    assert len(toss_api.sent("lookup")) == lookups
    assert list(WebhookEvent.objects.values_list("status", flat=True)) == ["received", "received"]
    assert len(queue.results) == 2
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert work(queue) == ["applied", "duplicate"]
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1
    one, two = WebhookEvent.objects.order_by("pk")
    assert one.processed and two.duplicate_of == one
    # The same task again (a backend that delivers twice, a second worker): nothing more happens.
    assert tasks.process_delivery.call(one.pk) == "applied"
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1
    seat.refresh_from_db()
    assert seat.remain == 3


@needs_tasks
def test_a_queued_webhook_that_fails_its_cheap_checks_is_refused_in_the_request(queue, toss_booking):
    response = deliver(None, raw=b"{not json")
    assert response.status_code == 400 and not queue.results
    assert WebhookEvent.objects.get().status == "refused"
    response = deliver(None, raw=b"{" + b" " * webhooks.MAX_BODY_BYTES + b"}")
    assert response.status_code == 413 and not queue.results


@needs_tasks
def test_a_queue_that_is_down_answers_503_and_keeps_the_delivery_for_a_retry(queue, toss_booking, toss_api, monkeypatch):
    booking = toss_booking()
    key = toss_api.authorize(booking)

    def down(*args, **kwargs):
        raise ConnectionError("queue down")

    monkeypatch.setattr(type(queue), "enqueue", down)
    response = deliver(status_changed(toss_api, key))
    assert response.status_code == 503
    event = WebhookEvent.objects.get()
    assert event.status == "failed" and "queue down" in event.error
    assert list(webhooks.due_for_retry()) == [event]


@needs_tasks
def test_a_delivery_whose_task_was_lost_is_applied_by_reconcile_once(queue, toss_api, seat, cancelled_at_toss):
    """Answered 200, then its task was lost (a worker killed, a broker that dropped the job): Toss will not send it again."""
    booking, key = cancelled_at_toss
    assert deliver(status_changed(toss_api, key)).status_code == 200
    lost = list(queue.results)
    queue.clear()  # the job is gone; no worker will ever run it
    event = WebhookEvent.objects.get()
    assert event.status == "received"

    # A delivery waiting for its worker is left to it for a while: reconcile does not take it yet.
    call_command("pgpay_reconcile", stdout=StringIO())
    assert WebhookEvent.objects.get().status == "received"
    booking.refresh_from_db()
    assert booking.status == S.PAID

    later = timezone.now() + webhooks.QUEUE_TIMEOUT + timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        assert [e.pk for e in webhooks.due_for_retry()] == [event.pk]
        out = StringIO()
        call_command("pgpay_reconcile", stdout=out)
    assert "1 failed webhook delivery processed again (1 accepted)" in out.getvalue()
    event.refresh_from_db()
    assert event.status == "applied" and event.processed
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    # The lost task turns up after all (a slow queue, not a lost one): nothing is applied twice.
    assert [r.task.call(*r.args, **r.kwargs) for r in lost] == ["applied"]
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1
    seat.refresh_from_db()
    assert seat.remain == 3
    with time_machine.travel(later, tick=False):
        assert list(webhooks.due_for_retry()) == []


@needs_tasks
def test_a_lost_delivery_is_processed_however_old(queue, toss_api, cancelled_at_toss):
    """Failed deliveries are retried for RETRY_WINDOW; one never processed gets its first try whenever cron comes."""
    booking, key = cancelled_at_toss
    deliver(status_changed(toss_api, key))
    queue.clear()
    with time_machine.travel(timezone.now() + webhooks.RETRY_WINDOW + timedelta(days=5), tick=False):
        call_command("pgpay_reconcile", stdout=StringIO())
    assert WebhookEvent.objects.get().status == "applied"
    booking.refresh_from_db()
    assert booking.status == S.CANCELED


def test_a_delivery_claimed_by_another_process_is_not_applied_again(toss_api, cancelled_at_toss):
    booking, key = cancelled_at_toss
    deliver(status_changed(toss_api, key))
    event = WebhookEvent.objects.get()
    # A second worker that loaded the row before the first one claimed it.
    WebhookEvent.objects.filter(pk=event.pk).update(status="received", processed=False)
    stale = WebhookEvent.objects.get(pk=event.pk)
    WebhookEvent.objects.filter(pk=event.pk).update(status="applied", processed=True)
    receipt = webhooks.process(stale)
    assert receipt.accepted and receipt.message == "applied by another process"
    booking.refresh_from_db()
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1


def test_a_claim_whose_worker_died_is_retried(toss_booking, toss_api):

    booking = toss_booking()
    key = toss_api.authorize(booking)
    deliver(status_changed(toss_api, key))
    event = WebhookEvent.objects.get()
    gone = timezone.now() - webhooks.CLAIM_TIMEOUT - timedelta(minutes=1)
    WebhookEvent.objects.filter(pk=event.pk).update(status="applied", processed=False, attempted_at=gone, attempts=1)
    assert [e.pk for e in webhooks.due_for_retry()] == [event.pk]
    assert WebhookEvent.objects.get(pk=event.pk).status == "failed"


@needs_tasks
def _break_verify(monkeypatch):
    """A gateway bug: Toss's ``verify_webhook`` raises what no step expects (not a PgPayError)."""
    from django_pgpay import conf

    def broken(self, parsed, order):
        raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'str'")

    monkeypatch.setattr(type(conf.get_gateway("toss")), "verify_webhook", broken)


def _attempts(event):
    event.refresh_from_db()
    return event.status, event.attempts


def test_a_delivery_that_breaks_processing_fails_with_its_attempt_counted_and_backs_off(toss_api, seat, monkeypatch, cancelled_at_toss):
    """An error no step expects is a failed attempt (503, retried with backoff, at most MAX_ATTEMPTS), not a 500 retried at every reconcile."""
    booking, key = cancelled_at_toss
    seat.refresh_from_db()
    remain = seat.remain
    _break_verify(monkeypatch)
    response = deliver(status_changed(toss_api, key))
    assert response.status_code == 503  # the PG delivers it again; not a 500
    event = WebhookEvent.objects.get()
    assert _attempts(event) == ("failed", 1)
    assert event.error.startswith("TypeError: unsupported operand")
    assert (event.order_number, event.payment_id) == (booking.order_number, key)  # the admin links it to the order
    booking.refresh_from_db()
    seat.refresh_from_db()
    assert booking.status == S.PAID and seat.remain == remain

    # Reconcile at once, and every minute for a while: each retry waits RETRY_BASE doubled per attempt.
    start = timezone.now()
    tried_at = []
    for minute in range(0, 60 * 24 * 3, 7):
        with time_machine.travel(start + timedelta(minutes=minute), tick=False):
            before = _attempts(event)[1]
            call_command("pgpay_reconcile", stdout=StringIO())
            if _attempts(event)[1] > before:
                tried_at.append(minute)
    assert _attempts(event) == ("failed", webhooks.MAX_ATTEMPTS)
    gaps = [b - a for a, b in zip(tried_at, tried_at[1:], strict=False)]
    assert all(gap >= 2 ** (n + 1) for n, gap in enumerate(gaps)), (tried_at, gaps)  # 1, 2, 4 ... minutes, doubled
    assert len(tried_at) == webhooks.MAX_ATTEMPTS - 1
    booking.refresh_from_db()
    seat.refresh_from_db()
    assert booking.status == S.PAID and seat.remain == remain  # nothing applied while it fails


def test_a_delivery_that_broke_processing_is_applied_once_the_bug_is_fixed(toss_api, seat, monkeypatch, cancelled_at_toss):

    booking, key = cancelled_at_toss
    with monkeypatch.context() as patch:
        _break_verify(patch)
        assert deliver(status_changed(toss_api, key)).status_code == 503
    event = WebhookEvent.objects.get()
    with time_machine.travel(timezone.now() + webhooks.RETRY_BASE + timedelta(seconds=1), tick=False):
        call_command("pgpay_reconcile", stdout=StringIO())
    assert _attempts(event) == ("applied", 2)
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1


@needs_tasks
def test_a_lost_delivery_that_breaks_processing_is_not_tried_at_every_reconcile(queue, toss_api, monkeypatch, cancelled_at_toss):
    """The queued path: its task lost, reconcile's first try meets the bug; the next tries wait."""
    booking, key = cancelled_at_toss
    assert deliver(status_changed(toss_api, key)).status_code == 200
    queue.clear()  # the task is lost
    event = WebhookEvent.objects.get()
    _break_verify(monkeypatch)
    later = timezone.now() + webhooks.QUEUE_TIMEOUT + timedelta(minutes=1)
    for seconds in (0, 10, 50):
        with time_machine.travel(later + timedelta(seconds=seconds), tick=False):
            call_command("pgpay_reconcile", stdout=StringIO())
    assert _attempts(event) == ("failed", 1)


@needs_tasks
def test_a_queued_delivery_whose_cheap_checks_break_is_failed_not_queued(queue, toss_api, monkeypatch, cancelled_at_toss):
    """The queued path's own checks meet a gateway bug: 503 (the PG sends it again), failed, no task; retried like any failure."""
    from django_pgpay import conf

    booking, key = cancelled_at_toss
    gateway_class = type(conf.get_gateway("toss"))
    parse = gateway_class.parse_received_webhook

    def broken(self, headers, body, **kwargs):
        raise KeyError("data")

    with monkeypatch.context() as patch:
        patch.setattr(gateway_class, "parse_received_webhook", broken)
        assert deliver(status_changed(toss_api, key)).status_code == 503
    event = WebhookEvent.objects.get()
    assert _attempts(event) == ("failed", 0) and event.error == "KeyError: 'data'"
    assert list(queue.results) == []
    assert gateway_class.parse_received_webhook is parse
    # The bug fixed, reconcile applies it (due at once: it was never processed).
    with time_machine.travel(timezone.now() + timedelta(seconds=5), tick=False):
        call_command("pgpay_reconcile", stdout=StringIO())
    assert _attempts(event) == ("applied", 1)
    booking.refresh_from_db()
    assert booking.status == S.CANCELED


@pytest.mark.django_db(transaction=True)  # the refused UPDATE must not leave the test's own transaction broken
def test_a_database_that_fails_too_raises_the_original_error(toss_booking, toss_api, monkeypatch):
    """When even the failure cannot be written, the error that happened is raised (nothing is hidden)."""
    from django.db import OperationalError

    booking = toss_booking()
    key = toss_api.authorize(booking)
    event = WebhookEvent.objects.create(gateway="toss", body=json.dumps(status_changed(toss_api, key)), headers={})
    _break_verify(monkeypatch)
    table = WebhookEvent._meta.db_table

    def no_writes(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("UPDATE") and table in sql:
            raise OperationalError("the database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(no_writes), pytest.raises(TypeError, match="unsupported operand"):
        webhooks.process(event)
    assert _attempts(event) == ("received", 0)


def test_a_delivery_that_got_as_far_as_its_claim_is_left_to_the_claim_timeout(toss_api, monkeypatch, cancelled_at_toss):
    """An unexpected error after the claim (applied, not yet processed): raised; CLAIM_TIMEOUT hands it back later."""
    from django_pgpay import payments

    booking, key = cancelled_at_toss
    event = WebhookEvent.objects.create(gateway="toss", body=json.dumps(status_changed(toss_api, key)), headers={})

    def claimed_then_broken(order, verified, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(payments, "apply_event", claimed_then_broken)
    receipt = webhooks.process(event)  # apply_event's own handler: failed, 503
    assert receipt.status == 503 and _attempts(event) == ("failed", 1)

    def finish_breaks(event_, http_status, status, **kwargs):
        raise RuntimeError("after the claim")

    monkeypatch.setattr(webhooks, "_finish", finish_breaks)
    with pytest.raises(RuntimeError, match="after the claim"):
        webhooks.process(WebhookEvent.objects.get(pk=event.pk))
    event.refresh_from_db()
    assert (event.status, event.processed) == ("applied", False)  # claimed: left to CLAIM_TIMEOUT, not marked failed


def test_reconcile_enqueue_fans_out_one_task_per_order(queue, toss_booking, toss_api, more_seats):
    orders = [timed_out_confirm(toss_booking, toss_api, after=True)[0] for _ in range(3)]
    out = StringIO()
    call_command("pgpay_reconcile", "--enqueue", stdout=out)
    assert "enqueued 3 order(s) for the workers" in out.getvalue()
    assert sorted(r.args[1] for r in queue.results) == sorted(o.pk for o in orders)
    for order in orders:
        order.refresh_from_db()
        assert order.status == S.READY  # nothing visited in the command
    results = work(queue)
    assert len(results) == 3 and not any(r.startswith(("error", "gone")) or r == "unchanged" for r in results), results
    for order in orders:
        order.refresh_from_db()
        assert order.status == S.PAID
    assert len(toss_api.sent("confirm")) == 3


def test_reconcile_enqueue_without_a_queue_reconciles_inline(toss_booking, toss_api):
    booking, _key = timed_out_confirm(toss_booking, toss_api, after=True)
    out = StringIO()
    call_command("pgpay_reconcile", "--enqueue", stdout=out)
    assert "no queueing TASKS backend is configured; the orders are reconciled here" in out.getvalue()
    booking.refresh_from_db()
    assert booking.status == S.PAID


@pytest.fixture
def more_seats(seat):
    type(seat).objects.filter(pk=seat.pk).update(remain=10)
    seat.refresh_from_db()
    return seat


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB")
def test_four_workers_on_two_deliveries_of_one_event_apply_it_once(toss_api, seat, cancelled_at_toss):
    import threading

    from django.db import connections

    from django_pgpay import conf

    booking, key = cancelled_at_toss
    body = json.dumps(status_changed(toss_api, key)).encode()
    gateway = conf.get_gateway("toss")
    events = [webhooks.accept(gateway, headers={"Content-Type": "application/json"}, body=body).event for _ in range(2)]
    # Each worker loaded its delivery before any of them claimed it: two workers per delivery.
    loaded = [WebhookEvent.objects.get(pk=e.pk) for e in events for _ in range(2)]
    barrier = threading.Barrier(len(loaded))
    receipts = [None] * len(loaded)

    def work(i):
        try:
            barrier.wait(10)
            receipts[i] = webhooks.process(loaded[i])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(loaded))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None and r.accepted for r in receipts), receipts
    one, two = WebhookEvent.objects.order_by("pk")
    assert sorted([one.status, two.status]) == ["applied", "duplicate"] and one.processed and two.processed
    booking.refresh_from_db()
    assert booking.status == S.CANCELED
    assert booking.transactions.filter(kind=K.WEBHOOK).count() == 1
    seat.refresh_from_db()
    assert seat.remain == 3


@needs_tasks
def test_enqueue_many_writes_a_database_backends_rows_a_batch_to_a_commit(settings, monkeypatch):
    """``pgpay_reconcile --enqueue``'s fan-out: every call enqueued once, ``batch`` of them to a transaction."""
    pytest.importorskip("django_tasks_db")
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    commits = []
    atomic = transaction.atomic

    def counting_atomic(*args, **kwargs):
        commits.append(1)
        return atomic(*args, **kwargs)

    monkeypatch.setattr(tasks.transaction, "atomic", counting_atomic)
    calls = [("testapp.Booking", pk, False) for pk in range(1, 12)]
    assert tasks.enqueue_many(tasks.reconcile_order, iter(calls), batch=5) == 11
    assert len(commits) == 3  # 5 + 5 + 1
    rows = list(DBTaskResult.objects.all())
    assert sorted(tuple(r.args_kwargs["args"]) for r in rows) == calls
    assert {r.task_path for r in rows} == {"django_pgpay.tasks.reconcile_order"}
    assert tasks.enqueue_many(tasks.reconcile_order, []) == 0 and len(commits) == 3
