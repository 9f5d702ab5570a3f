"""Faults on request: each one seen by a client written from toss.md, over a real socket."""

import time

import pytest
import requests

from django_pgpay.sandbox import control
from django_pgpay.sandbox import toss as emulated

from .conftest import AVAILABLE_APPS

CONTROL = {"X-Sandbox-Control": "1"}  # what a script sends to the control API

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


def status_of(toss, key):
    return toss.payment(key).json()["status"]


def test_decline_at_confirm(toss, paid):
    params = paid()
    control.arm_fault("toss", "confirm", "decline")
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert response.status_code == 403
    assert response.json() == {"code": "REJECT_CARD_COMPANY", "message": "결제 승인이 거절되었습니다."}
    payment = toss.payment(params["paymentKey"]).json()
    assert payment["status"] == "ABORTED"
    assert payment["failure"] == {"code": "REJECT_CARD_COMPANY", "message": "결제 승인이 거절되었습니다."}
    # Declined is final: confirming again does not approve it.
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).json()["code"] == "ALREADY_PROCESSED_PAYMENT"


def test_decline_with_another_code(toss, paid):
    params = paid()
    control.arm_fault("toss", "confirm", "decline", code="REJECT_CARD_PAYMENT")
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert (response.status_code, response.json()["code"]) == (403, "REJECT_CARD_PAYMENT")


def test_error_before_commit_changes_nothing(toss, paid):
    params = paid()
    control.arm_fault("toss", "confirm", "error_before")
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="k-before")
    assert response.status_code == 500
    assert response.json()["code"] == "FAILED_INTERNAL_SYSTEM_PROCESSING"
    assert status_of(toss, params["paymentKey"]) == "IN_PROGRESS"
    # A retry with the same key runs (nothing was kept for it).
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="k-before").json()["status"] == "DONE"


def test_error_after_commit_loses_the_answer_not_the_payment(toss, paid):
    params = paid()
    control.arm_fault("toss", "confirm", "error_after")
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="k-after")
    assert response.status_code == 500
    assert response.json()["code"] == "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING"
    assert status_of(toss, params["paymentKey"]) == "DONE"
    # Retrying with the same key returns the real answer; without it, Toss says "already processed".
    replay = toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="k-after")
    assert replay.status_code == 200 and replay.json()["status"] == "DONE"
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).json()["code"] == "ALREADY_PROCESSED_PAYMENT"


def test_error_with_custom_status_and_code_on_cancel(toss, paid):
    params = paid()
    toss.confirm(params["paymentKey"], params["orderId"], 15000)
    control.arm_fault("toss", "cancel", "error_before", status=503, code="PROVIDER_ERROR", message="잠시 후 다시")
    response = toss.cancel(params["paymentKey"])
    assert response.status_code == 503
    assert response.json() == {"code": "PROVIDER_ERROR", "message": "잠시 후 다시"}
    assert status_of(toss, params["paymentKey"]) == "DONE"


def _wait_for_server(toss, key, status, timeout=10):
    deadline = time.monotonic() + timeout
    while status_of(toss, key) != status:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_timeout_before_commit(toss, paid):
    params = paid()
    control.arm_fault("toss", "confirm", "timeout_before", delay=1.0)
    with pytest.raises(requests.Timeout):
        toss.confirm(params["paymentKey"], params["orderId"], 15000, timeout=0.3)
    assert status_of(toss, params["paymentKey"]) == "IN_PROGRESS"
    time.sleep(1.0)  # let the server's late answer go before the next test
    assert status_of(toss, params["paymentKey"]) == "IN_PROGRESS"


def test_timeout_after_commit(toss, paid):
    params = paid()
    control.arm_fault("toss", "confirm", "timeout_after", delay=1.0)
    with pytest.raises(requests.Timeout):
        toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="k-slow", timeout=0.3)
    # The payment happened although the client saw nothing.
    assert status_of(toss, params["paymentKey"]) == "DONE"
    # A retry with the same key gets the kept answer at once.
    replay = toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="k-slow")
    assert replay.status_code == 200 and replay.json()["status"] == "DONE"
    time.sleep(1.0)


@pytest.mark.parametrize("kind, after", [("malformed_before", "IN_PROGRESS"), ("malformed_after", "DONE")])
def test_malformed_json(toss, paid, kind, after):
    params = paid()
    control.arm_fault("toss", "confirm", kind)
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert status_of(toss, params["paymentKey"]) == after


def test_fault_on_lookup(toss, paid):
    params = paid()
    control.arm_fault("toss", "lookup", "error_before", status=502)
    assert toss.payment(params["paymentKey"]).status_code == 502
    assert toss.payment(params["paymentKey"]).status_code == 200


def test_fault_matches_only_its_payment_and_counts_down(toss, paid):
    one, two = paid(), paid()
    control.arm_fault("toss", "confirm", "error_before", match=two["orderId"], times=2)
    assert toss.confirm(one["paymentKey"], one["orderId"], 15000).status_code == 200
    assert toss.confirm(two["paymentKey"], two["orderId"], 15000).status_code == 500
    assert toss.confirm(two["paymentKey"], two["orderId"], 15000).status_code == 500
    assert toss.confirm(two["paymentKey"], two["orderId"], 15000).status_code == 200


def test_fault_match_by_payment_key_on_cancel(toss, paid):
    one, two = paid(), paid()
    for p in (one, two):
        toss.confirm(p["paymentKey"], p["orderId"], 15000)
    control.arm_fault("toss", "cancel", "error_before", match=two["paymentKey"])
    assert toss.cancel(one["paymentKey"]).status_code == 200
    assert toss.cancel(two["paymentKey"]).status_code == 500


def test_pg_side_cancel_the_shop_did_not_ask_for(toss, paid, hook):
    params = paid()
    toss.confirm(params["paymentKey"], params["orderId"], 15000)
    control.deliver_webhooks()
    hook.reset()
    emulated.cancel_at_pg(params["paymentKey"], 4000)
    payment = toss.payment(params["paymentKey"]).json()
    assert payment["status"] == "PARTIAL_CANCELED" and payment["balanceAmount"] == 11000
    control.deliver_webhooks()
    [event] = hook.bodies()
    assert event["eventType"] == "PAYMENT_STATUS_CHANGED"
    assert event["data"]["status"] == "PARTIAL_CANCELED" and event["data"]["cancels"][0]["cancelAmount"] == 4000


def test_virtual_account_deposit_arrives_later(toss, paid, hook):
    params = paid(amount=30000, method="VIRTUAL_ACCOUNT", deposit_after=120)
    issued = toss.confirm(params["paymentKey"], params["orderId"], 30000).json()
    assert issued["status"] == "WAITING_FOR_DEPOSIT"
    control.tick()
    assert status_of(toss, params["paymentKey"]) == "WAITING_FOR_DEPOSIT"
    control.advance_clock(seconds=121)
    counts = control.tick()  # what the worker thread does every half second
    assert counts["changed"] == 1
    payment = toss.payment(params["paymentKey"]).json()
    assert payment["status"] == "DONE" and payment["approvedAt"]
    deposits = [b for b in hook.bodies() if "secret" in b and "eventType" not in b]
    assert [d["status"] for d in deposits] == ["WAITING_FOR_DEPOSIT", "DONE"]
    assert {d["secret"] for d in deposits} == {issued["secret"]}


def test_deposit_on_demand_and_its_rare_reversal(toss, paid):
    params = paid(amount=30000, method="VIRTUAL_ACCOUNT")
    toss.confirm(params["paymentKey"], params["orderId"], 30000)
    assert emulated.deposit(params["paymentKey"])["status"] == "DONE"
    reverted = emulated.revert_deposit(params["paymentKey"])
    assert reverted["status"] == "WAITING_FOR_DEPOSIT" and reverted["approvedAt"] is None
    assert status_of(toss, params["paymentKey"]) == "WAITING_FOR_DEPOSIT"


def test_virtual_account_deadline_passes(toss, paid):
    params = paid(amount=30000, method="VIRTUAL_ACCOUNT")
    toss.confirm(params["paymentKey"], params["orderId"], 30000)
    control.advance_clock(hours=168, seconds=1)
    control.tick()
    payment = toss.payment(params["paymentKey"]).json()
    assert payment["status"] == "EXPIRED" and payment["virtualAccount"]["expired"] is True


def test_abandoned_checkout_expires_at_the_pg(toss, paid):
    params = paid()
    emulated.expire(params["paymentKey"])
    assert status_of(toss, params["paymentKey"]) == "EXPIRED"
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).json()["code"] == "NOT_FOUND_PAYMENT_SESSION"


# --- the HTTP control API ---------------------------------------------------------------


def test_control_api_drives_the_sandbox(toss, paid, sandbox_url):
    params = paid()
    armed = requests.post(
        sandbox_url + "/control/faults", headers=CONTROL, json={"pg": "toss", "operation": "confirm", "kind": "error_after"}, timeout=5
    )
    assert armed.status_code == 201 and armed.json()["kind"] == "error_after"
    assert requests.get(sandbox_url + "/control/faults", headers=CONTROL, timeout=5).json()["faults"][0]["remaining"] == 1
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).status_code == 500
    clock = requests.post(sandbox_url + "/control/clock", headers=CONTROL, json={"advance": 90}, timeout=5).json()
    assert 89 < clock["offset_seconds"] < 91
    cancelled = requests.post(
        sandbox_url + "/control/toss/cancel", headers=CONTROL, json={"payment_key": params["paymentKey"], "amount": 1000}, timeout=5
    )
    assert cancelled.status_code == 200 and cancelled.json()["balanceAmount"] == 14000
    state = requests.get(sandbox_url + "/control/", headers=CONTROL, timeout=5).json()
    assert state["payments"][0]["key"] == params["paymentKey"] and state["payments"][0]["balance"] == 14000
    made = requests.post(
        sandbox_url + "/control/toss/authenticate", headers=CONTROL, json={"order_id": "order-by-http", "amount": 5000}, timeout=5
    ).json()
    assert toss.confirm(made["paymentKey"], "order-by-http", 5000).json()["status"] == "DONE"
    assert requests.post(sandbox_url + "/control/reset", headers=CONTROL, timeout=5).json()["reset"] is True
    assert toss.payment(params["paymentKey"]).status_code == 404


def test_control_api_refuses_nonsense(sandbox_url, paid):
    bad_kind = requests.post(
        sandbox_url + "/control/faults", headers=CONTROL, json={"pg": "toss", "operation": "confirm", "kind": "explode"}, timeout=5
    )
    assert bad_kind.status_code == 400 and "explode" in bad_kind.json()["error"]["message"]
    assert requests.post(sandbox_url + "/control/toss/fly", headers=CONTROL, json={}, timeout=5).status_code == 404
    assert requests.post(sandbox_url + "/control/nope/deposit", headers=CONTROL, json={}, timeout=5).status_code == 404
    assert requests.get(sandbox_url + "/control/reset", headers=CONTROL, timeout=5).status_code == 405
    wrong_state = requests.post(
        sandbox_url + "/control/toss/deposit", headers=CONTROL, json={"payment_key": paid()["paymentKey"]}, timeout=5
    )
    assert wrong_state.status_code == 409 and "WAITING_FOR_DEPOSIT" in wrong_state.json()["error"]["message"]


def test_control_token(sandbox_url, settings):
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "CONTROL_TOKEN": "letmein"}
    assert requests.get(sandbox_url + "/control/", headers=CONTROL, timeout=5).status_code == 403
    assert requests.get(sandbox_url + "/control/", headers={"X-Sandbox-Token": "letmein"}, timeout=5).status_code == 200


def test_a_page_elsewhere_cannot_drive_the_sandbox(sandbox_url, paid):
    """Issue #13, point 11: no token, no custom header, or another site's Origin: 403 and nothing changes."""
    params = paid()
    for headers in ({}, {"Origin": "https://evil.example", **CONTROL}, {"Content-Type": "text/plain"}):
        assert requests.post(sandbox_url + "/control/reset", headers=headers, timeout=5).status_code == 403
        assert requests.post(sandbox_url + "/control/clock", json={"advance": 3600}, headers=headers, timeout=5).status_code == 403
    assert emulated.payment_state(params["paymentKey"])["status"] == "IN_PROGRESS"  # not reset
    same_site = requests.post(
        sandbox_url + "/control/clock", json={"advance": 1}, headers={**CONTROL, "Origin": sandbox_url.rsplit("/sandbox", 1)[0]}, timeout=5
    )
    assert same_site.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"advance": 1e300},
        {"advance": "1e300"},
        {"offset": "inf"},
        {"offset": "nan"},
        {"advance": "abc"},
        {"advance": -5},
        {"offset": [1]},
        {"advance": True},
    ],
)
def test_the_clock_refuses_numbers_it_cannot_use(sandbox_url, body):
    response = requests.post(sandbox_url + "/control/clock", json=body, headers=CONTROL, timeout=5)
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID"
    assert requests.get(sandbox_url + "/control/", headers=CONTROL, timeout=5).json()["offset_seconds"] == 0


@pytest.mark.parametrize("params", [{"delay": 1e300}, {"delay": "nan"}, {"status": 99}, {"copies": -1}, {"seconds": "inf"}])
def test_fault_knobs_are_checked_when_armed(sandbox_url, params):
    response = requests.post(
        sandbox_url + "/control/faults",
        json={"pg": "toss", "operation": "confirm", "kind": "timeout_after", "params": params},
        headers=CONTROL,
        timeout=5,
    )
    assert response.status_code == 400
    assert requests.get(sandbox_url + "/control/faults", headers=CONTROL, timeout=5).json()["faults"] == []


@pytest.mark.parametrize("amount", ["1e400", "abc", "0", "-1", "1.5"])
def test_an_unreadable_cancel_amount_cancels_nothing(sandbox_url, paid, toss, amount):
    """Issue #13, point 11: never "everything" for an amount the sandbox cannot read."""
    params = paid()
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).status_code == 200
    response = requests.post(
        sandbox_url + "/control/toss/cancel", json={"payment_key": params["paymentKey"], "amount": amount}, headers=CONTROL, timeout=5
    )
    assert response.status_code == 400
    assert emulated.payment_state(params["paymentKey"])["balanceAmount"] == 15000


@pytest.mark.parametrize("minutes", ["abc", "nan", "inf", "1e300", "-3"])
def test_the_dashboards_clock_form_refuses_what_it_cannot_read(sandbox_url, minutes):
    from django.test import Client

    response = Client().post("/sandbox/dashboard/action", {"op": "advance", "minutes": minutes})
    assert response.status_code == 302 and "error=" in response["Location"]
    assert requests.get(sandbox_url + "/control/", headers=CONTROL, timeout=5).json()["offset_seconds"] == 0


def test_a_code_without_a_status_takes_the_pgs_status_for_it(toss, paid):
    params = paid()
    toss.confirm(params["paymentKey"], params["orderId"], 15000)
    control.arm_fault("toss", "cancel", "error_before", code="PROVIDER_ERROR")
    response = toss.cancel(params["paymentKey"])
    assert (response.status_code, response.json()["code"]) == (400, "PROVIDER_ERROR")
