"""The Bootpay module's place in the sandbox framework: settings checks, ack rule, SDK and window endpoints (test client)."""

import json

import pytest
from django.test import Client

from django_pgpay.sandbox import bootpay as emulated
from django_pgpay.sandbox import control
from django_pgpay.sandbox.base import emulator
from django_pgpay.sandbox.checks import check_sandbox

pytestmark = pytest.mark.django_db


def ids(messages):
    return sorted(m.id for m in messages)


def test_settings_checks(settings):
    section = settings.PGPAY_SANDBOX["BOOTPAY"]
    assert not [m for m in check_sandbox() if "BOOTPAY" in m.msg]
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "BOOTPAY": {**section, "SECRET_KEYS": []}}
    assert [m.id for m in check_sandbox() if "BOOTPAY" in m.msg] == ["pgpay_sandbox.E002"]  # unpaired
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "BOOTPAY": {"APPLICATION_IDS": ["test_a"], "PRIVATE_KEYS": ["test_p"]}}
    assert not [m for m in check_sandbox() if "BOOTPAY" in m.msg]  # legacy keys alone are enough
    settings.PGPAY_SANDBOX = {
        **settings.PGPAY_SANDBOX,
        "BOOTPAY": {"APPLICATION_IDS": ["live_a"], "PRIVATE_KEYS": ["test_p"], "PARTIAL_CANCEL_STATUS": 2, "WEBHOOK_RETRIES": -1},
    }
    assert ids(m for m in check_sandbox() if "BOOTPAY" in m.msg) == ["pgpay_sandbox.E002", "pgpay_sandbox.E002", "pgpay_sandbox.E003"]
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "BOOTPAY": {"WEBHOOK_URL": ""}}
    assert [m.id for m in check_sandbox() if "BOOTPAY" in m.msg] == ["pgpay_sandbox.W002"]


@pytest.mark.parametrize(
    ("status", "body", "ok"),
    [
        (200, b'{"success": true}', True),
        (200, b'{"success":true,"note":"x"}', True),
        (200, b'{"success": false}', False),
        (200, b'{"success": 1}', False),
        (200, b"OK", False),
        (200, b"", False),
        (200, b"\xff", False),
        (204, b'{"success": true}', False),
    ],
)
def test_the_acknowledgement_rule(status, body, ok):
    assert emulator("bootpay").webhook_acknowledged(status, body) is ok
    assert emulator("toss").webhook_acknowledged(status, body) is (status == 200)


def test_control_state_describes_receipts():
    made = emulated.authenticate("order-describe-01", 12000, origin="http://testserver")
    (payment,) = control.state()["payments"]
    assert payment == {
        **payment,
        "pg": "bootpay",
        "key": made["receipt_id"],
        "status": "2",
        "amount": 12000,
        "balance": 12000,
        "method": "카드",
    }


def test_sdk_is_served_under_bootpays_file_names(client):
    for path in ("/sandbox/bootpay/js/bootpay.js", "/sandbox/bootpay/js/bootpay-5.1.4.min.js", "/sandbox/bootpay/js/bootpay-5.3.0.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("application/javascript")
        assert "window.Bootpay" in response.content.decode()
        assert "http://testserver/sandbox/bootpay/checkout" in response.content.decode()


def test_checkout_endpoint_speaks_json_across_origins():
    client = Client()
    request = {"client_key": "test_bootpay_ck_sandboxTESTS0000", "price": 1000, "order_name": "x", "order_id": "o-1"}
    response = client.post(
        "/sandbox/bootpay/checkout", json.dumps({"request": request, "origin": "http://shop.test"}), content_type="text/plain"
    )
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    data = response.json()
    assert data["url"].startswith(f"http://testserver/sandbox/bootpay/pay/{data['receipt_id']}?t=")
    assert client.get(data["url"].replace("http://testserver", "")).status_code == 200
    assert client.get(f"/sandbox/bootpay/pay/{data['receipt_id']}?t=wrong").status_code == 404
    assert client.post(f"/sandbox/bootpay/pay/{data['receipt_id']}", {"t": "wrong", "action": "pay"}).status_code == 404
    refused = client.post(
        "/sandbox/bootpay/checkout", json.dumps({"request": {**request, "client_key": "nope"}}), content_type="text/plain"
    )
    assert refused.status_code == 401 and refused.json() == {
        "event": "error",
        "error_code": "APP_CLIENT_KEY_NOT_FOUND",
        "message": "존재하지 않는 Client Key입니다.",
    }
    legacy = client.post(
        "/sandbox/bootpay/checkout",
        json.dumps({"request": {**request, "client_key": None, "application_id": "test_bootpay_web_sandboxTESTS00"}}),
        content_type="text/plain",
    )
    assert legacy.status_code == 200
    redirect = client.post(
        "/sandbox/bootpay/checkout", json.dumps({"request": {**request, "extra": {"open_type": "redirect"}}}), content_type="text/plain"
    )
    assert redirect.json()["error_code"] == "RC_REDIRECT_URL_INVALID"
    assert client.options("/sandbox/bootpay/checkout").status_code == 204


def test_window_posts_are_refused_once_it_is_closed():
    client = Client()
    request = {
        "client_key": "test_bootpay_ck_sandboxTESTS0000",
        "price": 1000,
        "order_name": "x",
        "order_id": "o-2",
        "extra": {"open_type": "redirect", "redirect_url": "http://shop.test/back"},
    }
    data = client.post("/sandbox/bootpay/checkout", json.dumps({"request": request}), content_type="text/plain").json()
    token = data["url"].split("?t=")[1]
    closed = client.post(f"/sandbox/bootpay/pay/{data['receipt_id']}", {"t": token, "action": "close"})
    assert closed.status_code == 302
    assert closed["Location"].startswith("http://shop.test/back?event=cancel&receipt_id=")
    again = client.post(f"/sandbox/bootpay/pay/{data['receipt_id']}", {"t": token, "action": "pay"})
    assert again.status_code == 409 and b"window-closed" in again.content


def test_dashboard_cancel_with_an_amount(client):
    made = emulated.authenticate("order-dash-bp-01", 10000, origin="http://testserver", separately_confirmed=False)
    response = client.post(
        "/sandbox/dashboard/action",
        {"op": "act", "pg": "bootpay", "action": "cancel", "payment_key": made["receipt_id"], "amount": "2,500"},
    )
    assert response["Location"] == "/sandbox/"
    assert emulated.receipt(made["receipt_id"])["cancelled_price"] == 2500
    over = client.post(
        "/sandbox/dashboard/action", {"op": "act", "pg": "bootpay", "action": "cancel", "payment_key": made["receipt_id"], "amount": "9000"}
    )
    assert "error=" in over["Location"]
    page = client.get("/sandbox/").content.decode()
    assert "Point a Bootpay gateway at the sandbox" in page and "/sandbox/bootpay/v2" in page
