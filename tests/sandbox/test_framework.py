"""The sandbox's framework without a socket: checks, clock, faults, idempotency, outbox, command, pages."""

import json
import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from django_pgpay.sandbox import checks, clock, control, faults, idempotency, webhooks
from django_pgpay.sandbox import toss as emulated
from django_pgpay.sandbox.models import SandboxIdempotency, SandboxWebhook

from .conftest import SECRET_KEY

pytestmark = pytest.mark.django_db


def ids(messages):
    return [m.id for m in messages]


# --- system checks ----------------------------------------------------------------------


def test_refuses_to_run_without_debug(settings):
    settings.DEBUG = False
    settings.PGPAY = {**settings.PGPAY, "SANDBOX_ALLOW_WITHOUT_DEBUG": False}
    assert ids(checks.check_sandbox()) == ["pgpay_sandbox.E001"]
    settings.DEBUG = True
    assert ids(checks.check_sandbox()) == []


def test_allowed_without_debug_when_asked(settings):
    settings.DEBUG = False
    settings.PGPAY = {**settings.PGPAY, "SANDBOX_ALLOW_WITHOUT_DEBUG": True}
    assert ids(checks.check_sandbox()) == []


def test_views_are_404_when_not_allowed(client, settings):
    settings.PGPAY = {**settings.PGPAY, "SANDBOX_ALLOW_WITHOUT_DEBUG": False}
    for url in ("/sandbox/", "/sandbox/control/", "/sandbox/toss/js/v2/standard", "/sandbox/toss/v1/payments/x"):
        assert client.get(url).status_code == 404, url


def test_missing_setting_is_a_warning(settings):
    del settings.PGPAY_SANDBOX
    assert ids(checks.check_sandbox()) == ["pgpay_sandbox.W001"]


def test_live_key_is_refused_and_never_printed(settings):
    settings.PGPAY_SANDBOX = {"TOSS": {"SECRET_KEYS": ["live_sk_REALSECRET123"], "CLIENT_KEYS": ["test_ck_x"]}}
    [message] = checks.check_sandbox()
    assert message.id == "pgpay_sandbox.E003"
    assert "SECRET_KEYS" in message.msg and "REALSECRET" not in message.msg + (message.hint or "")


@pytest.mark.parametrize(
    "value, expected",
    [
        ([], ["pgpay_sandbox.E002"]),
        ({"STRIPEY": {}}, ["pgpay_sandbox.E002"]),
        ({"TOSS": []}, ["pgpay_sandbox.E002"]),
        ({"TOSS": {"SECRET_KEYS": "test_sk_x"}}, ["pgpay_sandbox.E002", "pgpay_sandbox.W002"]),
        ({"TOSS": {"SECRET_KEYS": [""]}}, ["pgpay_sandbox.E002"]),
        ({"TOSS": {"CLIENT_KEYS": ["test_ck_x"]}}, ["pgpay_sandbox.W002"]),
        ({"TOSS": {"SECRET_KEYS": ["test_sk_x"], "WEBHOOK_URL": 5}}, ["pgpay_sandbox.E002"]),
        ({"WEBHOOKS": {"DELIVERY": "carrier pigeon"}}, ["pgpay_sandbox.E002"]),
        ({"WEBHOOKS": {"TIME_SCALE": -1}}, ["pgpay_sandbox.E002"]),
        ({"WEBHOOKS": {"RETRY_SCHEDULE": "fast"}}, ["pgpay_sandbox.E002"]),
        ({"WEBHOOKS": {"SPEED": 2}}, ["pgpay_sandbox.E002"]),
        ({"TOSS": {"SECRET_KEYS": ["test_sk_x"]}, "WEBHOOKS": {"DELIVERY": "manual", "RETRY_SCHEDULE": [1, 2]}}, []),
    ],
)
def test_setting_shape(settings, value, expected):
    settings.PGPAY_SANDBOX = value
    assert ids(checks.check_sandbox()) == expected


# --- clock ----------------------------------------------------------------------------------


def test_clock_moves_forward_and_resets():
    start = clock.now()
    clock.advance(minutes=11)
    assert timedelta(minutes=11) <= clock.now() - start < timedelta(minutes=12)
    assert clock.offset() == timedelta(minutes=11)
    clock.advance(timedelta(seconds=30))
    assert clock.offset() == timedelta(minutes=11, seconds=30)
    with pytest.raises(ValueError):
        clock.advance(seconds=-1)
    clock.reset()
    assert clock.offset() == timedelta(0)


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation, kind",
    [("confirm", "explode"), ("refund", "error_before"), ("cancel", "decline"), ("webhook", "error_after"), ("confirm", "drop")],
)
def test_faults_that_make_no_sense_are_refused(operation, kind):
    with pytest.raises(ValueError):
        faults.arm("toss", operation, kind)


def test_faults_count_down_match_and_apply_oldest_first():
    faults.arm("toss", "confirm", "error_before", times=2, match="order-a")
    faults.arm("toss", "*", "timeout_after", delay=1)
    assert faults.take("toss", "confirm", ["order-b"]).kind == "timeout_after"
    assert faults.take("toss", "confirm", ["order-a"]).kind == "error_before"
    last = faults.take("toss", "confirm", ["x", "order-a"])
    assert (last.kind, last.remaining) == ("error_before", 0)
    assert faults.take("toss", "confirm", ["order-a"]) is None
    assert faults.take("stripe", "confirm", []) is None


def test_decline_never_hits_other_operations():
    faults.arm("toss", "*", "decline")
    assert faults.take("toss", "cancel", []) is None
    assert faults.take("toss", "confirm", []).kind == "decline"


def test_clear_faults():
    faults.arm("toss", "confirm", "error_before", times=3)
    assert control.clear_faults() == 1
    assert faults.armed() == []


# --- idempotency -------------------------------------------------------------------------------


def test_idempotency_claim_replay_and_release():
    now = clock.now()
    life = timedelta(days=15)
    first = idempotency.begin("toss", "key-1", SECRET_KEY, "POST", "/v1/x", now=now, lifetime=life)
    assert first.outcome == "new"
    assert idempotency.begin("toss", "key-1", SECRET_KEY, "POST", "/v1/x", now=now, lifetime=life).outcome == "in_flight"
    idempotency.finish(first.row_id, 200, "application/json", '{"ok": true}')
    replay = idempotency.begin("toss", "key-1", SECRET_KEY, "POST", "/v1/x", now=now, lifetime=life)
    assert (replay.outcome, replay.answer.status, replay.answer.body) == ("replay", 200, '{"ok": true}')
    # Another key, path, method or API key is another request.
    for other in [("key-2", SECRET_KEY, "POST", "/v1/x"), ("key-1", "test_sk_other", "POST", "/v1/x"),
                  ("key-1", SECRET_KEY, "PUT", "/v1/x"), ("key-1", SECRET_KEY, "POST", "/v1/y")]:  # fmt: skip
        assert idempotency.begin("toss", *other, now=now, lifetime=life).outcome == "new"
    released = idempotency.begin("toss", "key-3", SECRET_KEY, "POST", "/v1/x", now=now, lifetime=life)
    idempotency.release(released.row_id)
    assert idempotency.begin("toss", "key-3", SECRET_KEY, "POST", "/v1/x", now=now, lifetime=life).outcome == "new"


def test_idempotency_never_stores_the_api_key():
    idempotency.begin("toss", "key-1", SECRET_KEY, "POST", "/v1/x", now=clock.now(), lifetime=timedelta(days=1))
    row = SandboxIdempotency.objects.get()
    assert SECRET_KEY not in json.dumps([str(v) for v in row.__dict__.values()])


def test_abandoned_in_flight_claim_is_taken_over():
    from django.utils import timezone

    now = clock.now()
    claim = idempotency.begin("toss", "k", SECRET_KEY, "POST", "/v1/x", now=now, lifetime=timedelta(days=1))
    SandboxIdempotency.objects.filter(pk=claim.row_id).update(started_at=timezone.now() - timedelta(minutes=5))
    assert idempotency.begin("toss", "k", SECRET_KEY, "POST", "/v1/x", now=now, lifetime=timedelta(days=1)).outcome == "new"


# --- outbox ------------------------------------------------------------------------------------


def test_reorder_batch_of_three_is_released_newest_first():
    control.arm_fault("toss", "webhook", "reorder", times=3)
    rows = [webhooks.enqueue("toss", "E", json.dumps({"n": n}), url="http://127.0.0.1:9/")[0] for n in range(4)]
    assert webhooks.due_ids() == [rows[2].pk, rows[1].pk, rows[0].pk, rows[3].pk]


def test_held_deliveries_can_be_released_by_hand():
    control.arm_fault("toss", "webhook", "reorder", times=3)
    first = webhooks.enqueue("toss", "E", "{}", url="http://127.0.0.1:9/")[0]
    assert webhooks.due_ids() == []
    assert control.release_held_webhooks() == 1
    assert webhooks.due_ids() == [first.pk]


def test_two_workers_never_send_the_same_attempt(monkeypatch):
    webhook = webhooks.enqueue("toss", "E", "{}", url="http://127.0.0.1:9/")[0]
    calls = []
    monkeypatch.setattr(webhooks, "_post", lambda w: calls.append(w.pk) or (200, "", 0.0, b""))
    assert webhooks._claim(webhook.pk, force=False)
    assert webhooks.deliver_one(webhook.pk) is None  # claimed by "another process"
    SandboxWebhook.objects.filter(pk=webhook.pk).update(claimed_until=None)
    assert webhooks.deliver_one(webhook.pk).delivered
    assert webhooks.deliver_one(webhook.pk) is None  # delivered already
    assert calls == [webhook.pk]


# --- Python API ----------------------------------------------------------------------------------


def test_python_api_payment_lifecycle(settings):
    made = emulated.authenticate("order-py-0001", 15000, method="VIRTUAL_ACCOUNT")
    assert emulated.payment_state(made["paymentKey"])["status"] == "IN_PROGRESS"
    with pytest.raises(emulated.ApiError) as refused:
        emulated.deposit(made["paymentKey"])
    assert "WAITING_FOR_DEPOSIT" in refused.value.message
    assert emulated.expire(made["paymentKey"])["status"] == "EXPIRED"
    with pytest.raises(KeyError):
        control.act("toss", "teleport")
    with pytest.raises(emulated.ApiError):
        emulated.authenticate("bad id!", 1000)


def test_actions_have_one_name_for_the_same_thing_at_every_pg_and_the_old_names_still_work():
    from django_pgpay.sandbox.base import ACTION_NAMES
    from django_pgpay.sandbox.registry import emulators

    made = control.act("toss", "pay", order_id="order-py-uniform", amount=1000)
    assert control.act("toss", "state", payment_key=made["paymentKey"])["status"] == "IN_PROGRESS"
    assert control.act("toss", "payment", payment_key=made["paymentKey"])["status"] == "IN_PROGRESS"  # the older name
    old = control.act("toss", "authenticate", order_id="order-py-older", amount=1000)
    assert emulated.payment_state(old["paymentKey"])["status"] == "IN_PROGRESS"
    for pg in emulators():
        assert {"pay", "cancel", "state"} <= set(pg.actions()) and set(pg.actions()) & set(ACTION_NAMES), pg.name
        assert all(target in pg.actions() for target in pg.action_aliases.values()), pg.name
    with pytest.raises(KeyError, match="known"):
        control.act("bootpay", "teleport")


def test_reset_forgets_everything():
    emulated.authenticate("order-py-0002", 1000)
    control.arm_fault("toss", "confirm", "decline")
    control.advance_clock(hours=1)
    control.reset()
    state = control.state()
    assert (state["payments"], state["faults"], state["webhooks"], state["offset_seconds"]) == ([], [], [], 0)


# --- management command -----------------------------------------------------------------------------


def run(*args):
    out = StringIO()
    call_command("pgpay_sandbox", *args, stdout=out)
    return out.getvalue()


def test_command_drives_the_sandbox():
    made = json.loads(run("action", "toss", "authenticate", "order_id=order-cli-0001", "amount=15000"))
    assert made["amount"] == 15000
    armed = json.loads(run("fault", "toss", "confirm", "timeout_after", "--times", "2", "--param", "delay=0.5"))
    assert armed["params"] == {"delay": 0.5} and armed["remaining"] == 2
    assert json.loads(run("faults"))[0]["kind"] == "timeout_after"
    assert run("faults", "--clear").strip() == "cleared 1"
    before = clock.now()
    run("clock", "--advance", "660")
    assert clock.now() - before >= timedelta(seconds=660)
    status = json.loads(run("status"))
    assert status["payments"][0]["order_id"] == "order-cli-0001"
    assert json.loads(run("tick"))["changed"] == 1  # the confirm window passed: EXPIRED
    assert json.loads(run("action", "toss", "payment", f"payment_key={made['paymentKey']}"))["status"] == "EXPIRED"
    assert "0 attempt(s)" in run("deliver")
    assert run("reset").strip() == "sandbox reset"
    assert json.loads(run("status"))["payments"] == []


def test_command_errors_are_command_errors():
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        run("fault", "toss", "confirm", "explode")
    with pytest.raises(CommandError):
        run("action", "toss", "deposit", "payment_key=nope")
    with pytest.raises(CommandError):
        run("action", "toss", "deposit", "nonsense")


# --- pages (test client) -------------------------------------------------------------------------------


def test_sdk_script(client):
    response = client.get(reverse("pgpay_sandbox:toss-sdk"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    body = response.content.decode()
    assert "window.TossPayments = TossPayments" in body
    assert "http://testserver/sandbox/toss/checkout" in body


def test_dashboard_shows_settings_and_masks_secret_keys(client):
    emulated.authenticate("order-dash-0001", 1000)
    page = client.get("/sandbox/").content.decode()
    assert '"API_BASE": "http://testserver/sandbox/toss"' in page
    assert '"JS_SDK_URL": "http://testserver/sandbox/toss/js/v2/standard"' in page
    assert SECRET_KEY not in page
    assert "order-dash-0001" in page


def test_dashboard_buttons(client):
    made = emulated.authenticate("order-dash-0002", 1000)
    client.post("/sandbox/dashboard/action", {"op": "advance", "minutes": "11"})
    assert clock.offset() == timedelta(minutes=11)
    response = client.post("/sandbox/dashboard/action", {"op": "act", "pg": "toss", "action": "deposit", "payment_key": made["paymentKey"]})
    assert "error=" in response["Location"]
    assert "WAITING_FOR_DEPOSIT" in client.get(response["Location"]).content.decode()
    client.post("/sandbox/dashboard/action", {"op": "reset"})
    assert clock.offset() == timedelta(0)


def test_window_needs_valid_parameters(client):
    payload = {"clientKey": "test_ck_sandboxTESTS0000000000", "method": "CARD", "amount": {"currency": "USD", "value": 10}}
    response = client.post(reverse("pgpay_sandbox:toss-checkout"), {"payload": json.dumps(payload)})
    assert response.status_code == 400
    text = response.content.decode()
    assert "Only KRW" in text and "orderId" in text and "successUrl" in text
    assert client.get(reverse("pgpay_sandbox:toss-checkout")).status_code == 405
    assert client.post(reverse("pgpay_sandbox:toss-checkout"), {"payload": "{"}).status_code == 400


def test_secret_key_never_logged(client, caplog):
    import base64

    caplog.set_level(logging.DEBUG)
    wrong = "test_sk_WRONGwrongWRONG000000"
    client.get("/sandbox/toss/v1/payments/x", HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{wrong}:".encode()).decode())
    client.get("/sandbox/toss/v1/payments/x", HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode())
    assert wrong not in caplog.text and SECRET_KEY not in caplog.text


def test_a_bug_in_the_sandbox_is_a_toss_500_not_a_django_page(client, monkeypatch):
    import base64

    from django_pgpay.sandbox.base import emulator

    def broken(*args, **kwargs):
        raise RuntimeError("sandbox bug")

    monkeypatch.setattr(emulator("toss"), "api_cancel", broken)
    auth = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
    response = client.post(
        "/sandbox/toss/v1/payments/x/cancel", data="{}", content_type="application/json",
        HTTP_AUTHORIZATION=auth, HTTP_IDEMPOTENCY_KEY="bug-1",
    )  # fmt: skip
    assert response.status_code == 500
    assert response.json()["code"] == "FAILED_INTERNAL_SYSTEM_PROCESSING"
    assert not SandboxIdempotency.objects.filter(idempotency_key="bug-1").exists()
