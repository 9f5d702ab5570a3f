"""Webhooks out: Toss's envelopes, delivered to a receiver on the live server, with faults and retries."""

import re
import time

import pytest

from django_pgpay.sandbox import control
from django_pgpay.sandbox import toss as emulated
from django_pgpay.sandbox.models import SandboxWebhook

from .conftest import AVAILABLE_APPS

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)

CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture
def confirmed(toss, paid):
    def make(amount=15000, **kwargs):
        params = paid(amount=amount, **kwargs)
        payment = toss.confirm(params["paymentKey"], params["orderId"], amount)
        assert payment.status_code == 200, payment.text
        return payment.json()

    return make


def test_payment_status_changed_carries_the_payment(toss, confirmed, hook):
    payment = confirmed()
    results = control.deliver_webhooks()
    assert [r.status_code for r in results] == [200]
    [delivery] = hook.deliveries
    assert delivery["headers"]["Content-Type"] == "application/json"
    body = delivery["json"]
    assert set(body) == {"eventType", "createdAt", "data"}
    assert body["eventType"] == "PAYMENT_STATUS_CHANGED"
    assert CREATED_AT.match(body["createdAt"])
    assert body["data"] == payment  # the same Payment object the API returned
    # The shop's way to trust it: fetch the payment again.
    assert toss.payment(body["data"]["paymentKey"]).json()["status"] == "DONE"


def test_nothing_is_sent_before_delivery_runs(confirmed, hook):
    confirmed()
    assert hook.deliveries == []
    assert [w.event_type for w in control.pending_webhooks()] == ["PAYMENT_STATUS_CHANGED"]


def test_virtual_account_sends_deposit_callbacks_with_the_secret(toss, confirmed, hook):
    issued = confirmed(amount=30000, method="VIRTUAL_ACCOUNT")
    emulated.deposit(issued["paymentKey"])
    control.deliver_webhooks()
    bodies = [d["json"] for d in hook.deliveries]
    flat = [b for b in bodies if "eventType" not in b]
    assert [b["status"] for b in flat] == ["WAITING_FOR_DEPOSIT", "DONE"]
    for callback in flat:
        assert set(callback) == {"createdAt", "secret", "status", "transactionKey", "orderId"}
        assert callback["secret"] == issued["secret"] and callback["orderId"] == issued["orderId"]
        assert CREATED_AT.match(callback["createdAt"])
    changed = [b["data"]["status"] for b in bodies if b.get("eventType") == "PAYMENT_STATUS_CHANGED"]
    assert changed == ["WAITING_FOR_DEPOSIT", "DONE"]


def test_webhook_events_setting_limits_what_is_sent(settings, confirmed, hook):
    settings.PGPAY_SANDBOX["TOSS"]["WEBHOOK_EVENTS"] = ["DEPOSIT_CALLBACK"]
    confirmed()
    confirmed(amount=30000, method="VIRTUAL_ACCOUNT")
    control.deliver_webhooks()
    assert [("eventType" in d["json"]) for d in hook.deliveries] == [False]


def test_no_webhook_url_means_no_webhook(confirmed, settings):
    assert settings.PGPAY_SANDBOX["TOSS"]["WEBHOOK_URL"] == ""
    confirmed()
    assert SandboxWebhook.objects.count() == 0


def test_relative_webhook_url_resolves_against_the_sandbox_host(settings, confirmed, live_server):
    from tests.sandbox.pages import receiver

    receiver.reset()
    settings.PGPAY_SANDBOX["TOSS"]["WEBHOOK_URL"] = "/test-receiver/"
    confirmed()
    [webhook] = control.pending_webhooks()
    assert webhook.url == live_server.url + "/test-receiver/"
    control.deliver_webhooks()
    assert len(receiver.deliveries) == 1
    receiver.reset()


def test_retries_on_anything_but_200_then_gives_up(confirmed, hook):
    confirmed()
    hook.answer_next(500, 404, 204)
    schedule = [60, 240, 960, 3840, 15360, 61440, 245760]  # Toss: 1, 4, 16, 64, 256, 1024, 4096 minutes
    assert [r.status_code for r in control.deliver_due_webhooks()] == [500]
    [webhook] = control.pending_webhooks()
    first_retry = webhook.next_attempt_at
    assert control.deliver_due_webhooks() == []  # not due yet
    control.advance_clock(seconds=schedule[0])
    assert [r.status_code for r in control.deliver_due_webhooks()] == [404]
    control.advance_clock(seconds=schedule[1])
    assert [r.status_code for r in control.deliver_due_webhooks()] == [204]  # 2xx but not 200 is a failure
    webhook.refresh_from_db()
    assert webhook.attempts == 3 and webhook.status == "pending"
    assert (webhook.next_attempt_at - first_retry).total_seconds() == pytest.approx(schedule[1] + schedule[2], abs=5)
    # Seven retries in all, then Toss gives up.
    hook.answer_next(*[500] * 10)
    for delay in schedule[2:]:
        control.advance_clock(seconds=delay)
        control.deliver_due_webhooks()
    webhook.refresh_from_db()
    assert (webhook.attempts, webhook.status) == (8, "failed")
    assert webhook.delivery_attempts.count() == 8
    assert len(hook.deliveries) == 8 and len({d["raw"] for d in hook.deliveries}) == 1


def test_retry_schedule_is_compressible(settings, confirmed, hook):
    settings.PGPAY_SANDBOX["WEBHOOKS"] = {**settings.PGPAY_SANDBOX["WEBHOOKS"], "TIME_SCALE": 0.001}
    confirmed()
    hook.answer_next(500)
    control.deliver_due_webhooks()
    time.sleep(0.1)  # 60 s x 0.001
    assert [r.status_code for r in control.deliver_due_webhooks()] == [200]


def test_unreachable_receiver_is_retried(settings, confirmed):
    settings.PGPAY_SANDBOX["TOSS"]["WEBHOOK_URL"] = "http://127.0.0.1:9/nothing-listens-here"
    confirmed()
    [result] = control.deliver_webhooks()
    assert result.status_code is None and result.error and result.status == "pending"


def test_drop(confirmed, hook):
    control.arm_fault("toss", "webhook", "drop")
    confirmed()
    confirmed()
    control.deliver_webhooks()
    assert len(hook.deliveries) == 1
    assert SandboxWebhook.objects.filter(status="dropped").count() == 1


def test_duplicate(confirmed, hook):
    control.arm_fault("toss", "webhook", "duplicate", copies=2)
    confirmed()
    control.deliver_webhooks()
    assert len(hook.deliveries) == 3
    assert len({d["raw"] for d in hook.deliveries}) == 1


def test_delay(confirmed, hook):
    control.arm_fault("toss", "webhook", "delay", seconds=300)
    first = confirmed()
    second = confirmed()
    control.deliver_due_webhooks()
    assert [d["json"]["data"]["paymentKey"] for d in hook.deliveries] == [second["paymentKey"]]
    control.advance_clock(seconds=301)
    control.deliver_due_webhooks()
    assert [d["json"]["data"]["paymentKey"] for d in hook.deliveries] == [second["paymentKey"], first["paymentKey"]]


def test_reorder(toss, confirmed, hook):
    """Cancelled arrives before paid: the shop must not go back from CANCELED to PAID."""
    control.arm_fault("toss", "webhook", "reorder", times=2)
    payment = confirmed()
    assert control.deliver_due_webhooks() == []  # held until the batch is full
    toss.cancel(payment["paymentKey"], "환불")
    control.deliver_due_webhooks()
    assert [d["json"]["data"]["status"] for d in hook.deliveries] == ["CANCELED", "DONE"]


def test_webhook_fault_matches_event_type(confirmed, hook):
    control.arm_fault("toss", "webhook", "drop", match="DEPOSIT_CALLBACK", times=5)
    confirmed(amount=30000, method="VIRTUAL_ACCOUNT")
    control.deliver_webhooks()
    assert [d["json"].get("eventType") for d in hook.deliveries] == ["PAYMENT_STATUS_CHANGED"]


def test_webhook_commits_with_its_change_only(toss, paid, hook):
    params = paid()
    toss.confirm(params["paymentKey"], params["orderId"], 1)  # refused: amount mismatch
    toss.confirm("tsbx-unknown", params["orderId"], 15000)
    assert SandboxWebhook.objects.count() == 0


def test_control_api_lists_and_delivers(sandbox_url, confirmed, hook):
    import requests

    confirmed()
    listed = requests.get(sandbox_url + "/control/webhooks", headers={"X-Sandbox-Control": "1"}, timeout=5).json()["webhooks"]
    assert [w["event_type"] for w in listed] == ["PAYMENT_STATUS_CHANGED"]
    assert listed[0]["body"]["data"]["status"] == "DONE"
    delivered = requests.post(sandbox_url + "/control/webhooks/deliver", json={}, headers={"X-Sandbox-Control": "1"}, timeout=10).json()[
        "results"
    ]
    assert [r["status_code"] for r in delivered] == [200]
    assert len(hook.deliveries) == 1


def test_worker_thread_delivers_by_itself(settings, confirmed, hook, toss):
    settings.PGPAY_SANDBOX["WEBHOOKS"] = {"DELIVERY": "thread", "POLL_INTERVAL": 0.05}
    confirmed()  # the first sandbox request starts the worker in the server process
    deadline = time.monotonic() + 10
    while not hook.deliveries:
        assert time.monotonic() < deadline, "the worker delivered nothing"
        time.sleep(0.05)
    assert hook.deliveries[0]["json"]["data"]["status"] == "DONE"
