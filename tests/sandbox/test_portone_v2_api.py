"""The emulated PortOne V2 API over a real socket, checked against PortOne's V2 OpenAPI file."""

import time
from datetime import datetime, timedelta

import pytest

from django_pgpay.gateways import standard_webhooks
from django_pgpay.sandbox import control
from django_pgpay.sandbox import portone as emulated
from django_pgpay.sandbox.base import ApiError
from django_pgpay.sandbox.portone.common import KST
from tests import portone_specs

from .conftest import AVAILABLE_APPS
from .portone_helpers import WEBHOOK_SECRET, portone_hook, v2  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


def valid(schema, body):
    problems = portone_specs.errors(portone_specs.v2(schema), body)
    assert problems == [], problems


def error(response):
    return response.status_code, response.json()["type"]


def test_every_payment_state_matches_the_openapi_file(v2):
    assert v2.pre_register("order-v2-0001", 20000).json() == {}
    emulated.v2_pay("order-v2-0001", 20000)
    paid = v2.payment("order-v2-0001").json()
    valid("Payment", paid)
    assert paid["status"] == "PAID" and paid["amount"]["total"] == 20000 and paid["channel"]["type"] == "TEST"
    assert paid["method"]["type"] == "PaymentMethodCard" and paid["receiptUrl"].startswith("http")
    part = v2.cancel("order-v2-0001", amount=5000, currentCancellableAmount=20000)
    valid("CancelPaymentResponse", part.json())
    valid("Payment", v2.payment("order-v2-0001").json())
    assert v2.payment("order-v2-0001").json()["status"] == "PARTIAL_CANCELLED"
    v2.cancel("order-v2-0001")
    cancelled = v2.payment("order-v2-0001").json()
    valid("Payment", cancelled)
    assert cancelled["status"] == "CANCELLED" and cancelled["amount"]["cancelled"] == 20000 and len(cancelled["cancellations"]) == 2
    emulated.v2_pay("order-v2-vbank", 30000, pay_method="VIRTUAL_ACCOUNT")
    issued = v2.payment("order-v2-vbank").json()
    valid("Payment", issued)
    assert issued["status"] == "VIRTUAL_ACCOUNT_ISSUED" and issued["method"]["accountNumber"]
    emulated.v2_pay("order-v2-closed", 1000, outcome="close")
    failed = v2.payment("order-v2-closed").json()
    valid("Payment", failed)
    assert failed["status"] == "FAILED" and failed["failure"]["reason"]


def test_errors_are_typed(v2):
    assert error(v2.call("GET", "/payments/order-v2-none", secret="test_wrong")) == (401, "UNAUTHORIZED")
    missing = v2.payment("order-v2-none")
    assert error(missing) == (404, "PAYMENT_NOT_FOUND")
    valid("GetPaymentError", missing.json())
    assert error(v2.call("GET", "/payments/order-v2-none", params={"storeId": "store-someone-else"})) == (403, "FORBIDDEN")
    emulated.v2_pay("order-v2-0002", 20000)
    for body, expected in [
        ({"currentCancellableAmount": 1}, "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN"),
        ({"amount": 20001}, "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT"),
    ]:
        refused = v2.cancel("order-v2-0002", **body)
        assert error(refused) == (409, expected)
        valid("CancelPaymentError", refused.json())
    assert error(v2.call("POST", "/payments/order-v2-0002/cancel", json={"amount": 1})) == (400, "INVALID_REQUEST")
    refused = v2.pre_register("order-v2-0002", 20000)
    assert error(refused) == (409, "ALREADY_PAID")
    valid("PreRegisterPaymentError", refused.json())
    v2.cancel("order-v2-0002")
    assert error(v2.cancel("order-v2-0002")) == (409, "PAYMENT_ALREADY_CANCELLED")
    emulated.v2_pay("order-v2-vbank", 30000, pay_method="VIRTUAL_ACCOUNT")
    assert error(v2.cancel("order-v2-vbank")) == (409, "PAYMENT_NOT_PAID")


def test_pre_register_blocks_another_amount(v2):
    v2.pre_register("order-v2-0003", 20000)
    blocked = emulated.v2_pay("order-v2-0003", 100)
    assert blocked["code"] == "FAILURE_TYPE_PROCESS" and v2.payment("order-v2-0003").status_code == 404
    emulated.v2_allow_other_amount("order-v2-0003")
    assert "code" not in emulated.v2_pay("order-v2-0003", 100)


def test_webhooks_are_signed_and_retries_are_signed_again(v2, portone_hook):
    portone_hook.answer_next(500)
    emulated.v2_pay("order-v2-hook", 20000)
    [first] = control.deliver_webhooks()
    assert first.status == "pending"
    time.sleep(1.1)
    [second] = control.deliver_webhooks()
    assert second.status == "delivered"
    one, two = portone_hook.deliveries
    assert one["raw"] == two["raw"] and one["headers"]["Webhook-Id"] == two["headers"]["Webhook-Id"]
    assert one["headers"]["Webhook-Timestamp"] != two["headers"]["Webhook-Timestamp"]
    for delivery in (one, two):
        assert standard_webhooks.verify([WEBHOOK_SECRET], delivery["headers"], delivery["raw"]) == delivery["headers"]["Webhook-Id"]
    body = two["json"]
    assert body["type"] == "Transaction.Paid" and body["data"]["paymentId"] == "order-v2-hook"
    assert set(body["data"]) == {"paymentId", "storeId", "transactionId"}


def test_api_cancels_send_webhooks_unless_skipped(v2, portone_hook):
    emulated.v2_pay("order-v2-cancel-hook", 20000)
    v2.cancel("order-v2-cancel-hook", amount=1000)
    v2.cancel("order-v2-cancel-hook", amount=1000, skipWebhook=True)
    control.deliver_webhooks()
    kinds = [d["json"]["type"] for d in portone_hook.deliveries]
    assert kinds == ["Transaction.Paid", "Transaction.PartialCancelled"]
    assert portone_hook.deliveries[1]["json"]["data"]["cancellationId"].startswith("cancellation-")


@pytest.mark.parametrize("expiry", ["validHours", "dueDate"])
def test_a_virtual_account_is_due_at_its_account_expiry(v2, expiry):
    """requestPayment's virtualAccount.accountExpiry is the account's expiredAt; the bank takes no transfer after it."""
    due = (control.now() + timedelta(hours=5)).astimezone(KST).replace(microsecond=0)
    asked = {"validHours": 5} if expiry == "validHours" else {"dueDate": due.isoformat()}
    emulated.v2_pay("order-v2-due", 30000, pay_method="VIRTUAL_ACCOUNT", account_expiry=asked)
    issued = v2.payment("order-v2-due").json()
    valid("Payment", issued)
    expired_at = datetime.fromisoformat(issued["method"]["expiredAt"].replace("Z", "+00:00"))
    assert abs(expired_at - due) <= timedelta(seconds=2)
    control.advance_clock(timedelta(hours=5, seconds=3))
    with pytest.raises(ApiError) as refused:
        emulated.v2_deposit("order-v2-due")
    assert "deadline" in refused.value.message
    assert emulated.v2_payment_state("order-v2-due")["status"] == "VIRTUAL_ACCOUNT_ISSUED"


def test_no_virtual_account_after_its_due_date(v2):
    past = (control.now() - timedelta(minutes=1)).astimezone(KST).isoformat()
    failed = emulated.v2_pay("order-v2-late", 30000, pay_method="VIRTUAL_ACCOUNT", account_expiry={"dueDate": past})
    assert failed["code"] == "INVALID_REQUEST" and "accountExpiry" in failed["message"]
    assert emulated.v2_payment_state("order-v2-late")["status"] == "FAILED"
    for malformed in ({"validHours": 0}, {"dueDate": "2026-12-08 18:00"}, {"validHours": 5, "dueDate": past}):
        with pytest.raises(ApiError):
            emulated.v2_pay("order-v2-malformed", 30000, pay_method="VIRTUAL_ACCOUNT", account_expiry=malformed)
