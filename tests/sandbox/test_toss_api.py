"""The emulated Toss core API over a real socket, driven by a client written from toss.md."""

import base64
import re

import pytest
import requests

from django_pgpay.sandbox import control

from .conftest import AVAILABLE_APPS, CLIENT_KEY, SECRET_KEY

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)

KST_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00$")


def error(response):
    return response.status_code, response.json()["code"]


# --- authentication ---------------------------------------------------------------


def test_missing_authorization_is_unauthorized_key(toss, paid):
    response = toss.payment(paid()["paymentKey"], auth=False)
    assert error(response) == (401, "UNAUTHORIZED_KEY")
    assert response.json()["message"] == "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다."
    assert response.headers["Content-Type"].startswith("application/json")


def test_key_without_colon_is_incorrect_basic_auth_format(toss, paid):
    header = "Basic " + base64.b64encode(SECRET_KEY.encode()).decode()
    response = toss.payment(paid()["paymentKey"], auth=False, headers={"Authorization": header})
    assert error(response) == (403, "INCORRECT_BASIC_AUTH_FORMAT")


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"test_sk_someoneElse000000000:").decode(),
        "Basic " + base64.b64encode(CLIENT_KEY.encode() + b":").decode(),  # a client key is no secret key
        "Bearer " + SECRET_KEY,
    ],
    ids=["other key", "client key", "bearer"],
)
def test_wrong_key_is_unauthorized(toss, paid, header):
    response = toss.payment(paid()["paymentKey"], auth=False, headers={"Authorization": header})
    assert error(response) == (401, "UNAUTHORIZED_KEY")


def test_garbage_basic_credentials_are_a_format_error(toss, paid):
    response = toss.payment(paid()["paymentKey"], auth=False, headers={"Authorization": "Basic %%%not-base64"})
    assert error(response) == (403, "INCORRECT_BASIC_AUTH_FORMAT")


def test_english_messages_with_accept_language(toss, paid):
    response = toss.payment(paid()["paymentKey"], auth=False, headers={"Accept-Language": "en-US"})
    assert response.json() == {"code": "UNAUTHORIZED_KEY", "message": "The secret key or client key is not authorized."}


# --- confirm --------------------------------------------------------------------------


def test_confirm_returns_the_payment_object(toss, paid):
    params = paid(amount=15000)
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert response.status_code == 200, response.text
    payment = response.json()
    expected_keys = {
        "mId", "version", "paymentKey", "type", "orderId", "orderName", "currency", "method", "totalAmount",
        "balanceAmount", "suppliedAmount", "vat", "taxFreeAmount", "taxExemptionAmount", "status", "requestedAt",
        "approvedAt", "lastTransactionKey", "useEscrow", "cultureExpense", "isPartialCancelable", "card",
        "virtualAccount", "transfer", "mobilePhone", "giftCertificate", "easyPay", "cashReceipt", "cashReceipts",
        "discount", "cancels", "secret", "failure", "receipt", "checkout", "country", "metadata",
    }  # fmt: skip
    assert expected_keys <= set(payment)
    assert payment["version"] == "2022-11-16"
    assert payment["status"] == "DONE"
    assert payment["method"] == "카드"
    assert payment["type"] == "NORMAL"
    assert payment["currency"] == "KRW"
    assert (payment["totalAmount"], payment["balanceAmount"]) == (15000, 15000)
    assert (payment["suppliedAmount"], payment["vat"]) == (13636, 1364)
    assert payment["paymentKey"] == params["paymentKey"] and payment["orderId"] == params["orderId"]
    assert KST_TIME.match(payment["approvedAt"]) and KST_TIME.match(payment["requestedAt"])
    assert re.fullmatch(r"[0-9A-F]{32}", payment["lastTransactionKey"])
    assert payment["card"]["amount"] == 15000 and payment["card"]["number"].count("*") >= 4
    assert payment["receipt"]["url"].startswith("http") and payment["checkout"]["url"].startswith("http")
    assert payment["cancels"] is None and payment["failure"] is None
    assert isinstance(payment["totalAmount"], int)  # JSON integers, never 15000.0
    assert b'"totalAmount": 15000' in response.content or b'"totalAmount":15000' in response.content


def test_amount_given_as_a_string_is_accepted(toss, paid):
    """The seed tutorial sends amount straight from the query string."""
    params = paid(amount=20000)
    assert toss.confirm(params["paymentKey"], params["orderId"], "20000").status_code == 200


def test_confirm_in_english_uses_english_method(toss, paid):
    params = paid()
    payment = toss.confirm(params["paymentKey"], params["orderId"], 15000, headers={"Accept-Language": "en-US"}).json()
    assert payment["method"] == "CARD"


def test_confirm_twice_is_already_processed(toss, paid):
    params = paid()
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).status_code == 200
    again = toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert error(again) == (400, "ALREADY_PROCESSED_PAYMENT")
    assert again.json()["message"] == "이미 처리된 결제 입니다."


@pytest.mark.parametrize("change", ["amount", "orderId"])
def test_confirm_must_match_what_the_window_registered(toss, paid, change):
    params = paid(amount=15000)
    amount = 1000 if change == "amount" else 15000
    order_id = "someone-elses-order" if change == "orderId" else params["orderId"]
    response = toss.confirm(params["paymentKey"], order_id, amount)
    assert error(response) == (400, "INVALID_REQUEST")
    # Nothing happened: the right confirm still goes through.
    assert toss.payment(params["paymentKey"]).json()["status"] == "IN_PROGRESS"
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).json()["status"] == "DONE"


def test_confirm_of_unknown_payment_is_not_found(toss):
    response = toss.confirm("tsbx-no-such-payment", "order-000001", 1000)
    assert error(response) == (404, "NOT_FOUND_PAYMENT")
    assert response.json()["message"] == "존재하지 않는 결제 입니다."


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"paymentKey": "x"},
        {"paymentKey": "x", "orderId": "order-1", "amount": 10.5},
        {"paymentKey": "x", "orderId": "o", "amount": -5},
    ],
    ids=["empty", "list", "missing", "fraction", "negative"],
)
def test_bad_confirm_bodies_are_invalid_request(toss, body):
    response = toss.request("POST", "/v1/payments/confirm", json=body)
    assert error(response) == (400, "INVALID_REQUEST")


def test_body_that_is_not_json_is_invalid_request(toss):
    response = toss.request(
        "POST", "/v1/payments/confirm", data=b"paymentKey=x&amount=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert error(response) == (400, "INVALID_REQUEST")


def test_confirm_after_the_ten_minute_window_expires_the_payment(toss, paid):
    params = paid()
    control.advance_clock(minutes=10, seconds=1)
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert error(response) == (404, "NOT_FOUND_PAYMENT_SESSION")
    payment = toss.payment(params["paymentKey"]).json()
    assert payment["status"] == "EXPIRED"
    assert payment["failure"]["code"] == "EXPIRED_PAYMENT"
    assert payment["approvedAt"] is None


def test_confirm_just_inside_the_window_succeeds(toss, paid):
    params = paid()
    control.advance_clock(minutes=9, seconds=50)
    assert toss.confirm(params["paymentKey"], params["orderId"], 15000).json()["status"] == "DONE"


def test_virtual_account_confirm_waits_for_the_deposit(toss, paid):
    params = paid(amount=30000, method="VIRTUAL_ACCOUNT", customerName="박토스")
    payment = toss.confirm(params["paymentKey"], params["orderId"], 30000).json()
    assert payment["status"] == "WAITING_FOR_DEPOSIT"
    assert payment["method"] == "가상계좌"
    assert payment["approvedAt"] is None
    account = payment["virtualAccount"]
    assert account["accountNumber"].isdigit() and account["bankCode"]
    assert account["customerName"] == "박토스"
    assert KST_TIME.match(account["dueDate"]) and account["expired"] is False
    assert account["refundStatus"] == "NONE" and account["settlementStatus"] == "INCOMPLETED"
    assert isinstance(payment["secret"], str) and 0 < len(payment["secret"]) <= 50


# --- lookup -----------------------------------------------------------------------------


def test_lookup_by_key_and_by_order_id(toss, paid):
    params = paid()
    confirmed = toss.confirm(params["paymentKey"], params["orderId"], 15000).json()
    assert toss.payment(params["paymentKey"]).json() == confirmed
    assert toss.by_order(params["orderId"]).json() == confirmed


def test_lookup_of_unknown_payment_is_not_found(toss):
    assert error(toss.payment("tsbx-nope")) == (404, "NOT_FOUND_PAYMENT")
    assert error(toss.by_order("order-unknown")) == (404, "NOT_FOUND_PAYMENT")


def test_lookup_shows_the_unconfirmed_payment_in_progress(toss, paid):
    params = paid()
    payment = toss.by_order(params["orderId"]).json()
    assert payment["status"] == "IN_PROGRESS" and payment["approvedAt"] is None


# --- cancel -----------------------------------------------------------------------------


@pytest.fixture
def done(toss, paid):
    def make(amount=15000):
        params = paid(amount=amount)
        assert toss.confirm(params["paymentKey"], params["orderId"], amount).status_code == 200
        return params["paymentKey"]

    return make


def test_partial_then_full_cancel(toss, done):
    key = done(15000)
    first = toss.cancel(key, "일부 환불", 5000)
    assert first.status_code == 200, first.text
    payment = first.json()
    assert payment["status"] == "PARTIAL_CANCELED"
    assert (payment["totalAmount"], payment["balanceAmount"]) == (15000, 10000)
    [entry] = payment["cancels"]
    assert entry["cancelAmount"] == 5000 and entry["refundableAmount"] == 10000
    assert entry["cancelReason"] == "일부 환불" and entry["cancelStatus"] == "DONE"
    assert KST_TIME.match(entry["canceledAt"]) and entry["transactionKey"] == payment["lastTransactionKey"]
    control.advance_clock(seconds=2)  # Toss refuses a second cancel within a second
    rest = toss.cancel(key, "나머지 환불").json()  # no amount: the whole balance
    assert rest["status"] == "CANCELED" and rest["balanceAmount"] == 0
    assert [c["cancelAmount"] for c in rest["cancels"]] == [5000, 10000]
    assert rest["cancels"][-1]["refundableAmount"] == 0
    assert (rest["suppliedAmount"], rest["vat"]) == (0, 0)


def test_over_refund_is_not_cancelable_amount(toss, done):
    key = done(15000)
    response = toss.cancel(key, "too much", 15001)
    assert error(response) == (403, "NOT_CANCELABLE_AMOUNT")
    assert toss.payment(key).json()["balanceAmount"] == 15000


def test_cancel_of_cancelled_payment(toss, done):
    key = done()
    assert toss.cancel(key).json()["status"] == "CANCELED"
    control.advance_clock(seconds=2)
    assert error(toss.cancel(key)) == (400, "ALREADY_CANCELED_PAYMENT")


def test_two_cancels_within_a_second_only_the_first_runs(toss, done):
    key = done(15000)
    assert toss.cancel(key, "a", 1000).status_code == 200
    assert error(toss.cancel(key, "b", 1000)) == (403, "FORBIDDEN_CONSECUTIVE_REQUEST")
    assert toss.payment(key).json()["balanceAmount"] == 14000


@pytest.mark.parametrize(
    "body", [{}, {"cancelReason": ""}, {"cancelReason": "x", "cancelAmount": 0}, {"cancelReason": "x", "cancelAmount": "abc"}]
)
def test_bad_cancel_bodies(toss, done, body):
    key = done()
    response = toss.request("POST", f"/v1/payments/{key}/cancel", json=body)
    assert error(response) == (400, "INVALID_REQUEST")


def test_cancel_of_unconfirmed_or_unknown_payment(toss, paid):
    params = paid()
    assert error(toss.cancel(params["paymentKey"])) == (403, "NOT_CANCELABLE_PAYMENT")
    assert error(toss.cancel("tsbx-unknown")) == (404, "NOT_FOUND_PAYMENT")


def test_legacy_refundable_amount_check(toss, done):
    key = done(15000)
    response = toss.cancel(key, "x", 1000, extra={"refundableAmount": 9999})
    assert error(response) == (400, "NOT_MATCHES_REFUNDABLE_AMOUNT")
    assert toss.cancel(key, "x", 1000, extra={"refundableAmount": 15000}).status_code == 200


def test_virtual_account_cancel_rules(toss, paid):
    from django_pgpay.sandbox import toss as emulated

    params = paid(amount=30000, method="VIRTUAL_ACCOUNT")
    key = params["paymentKey"]
    toss.confirm(key, params["orderId"], 30000)
    assert error(toss.cancel(key, "x", 1000)) == (403, "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT")
    emulated.deposit(key)
    # After the deposit, money goes back to an account the buyer names.
    assert error(toss.cancel(key, "x", 1000)) == (400, "INVALID_REQUEST")
    account = {"bank": "88", "accountNumber": "110123456789", "holderName": "박토스"}
    refunded = toss.cancel(key, "x", 1000, extra={"refundReceiveAccount": account}).json()
    assert refunded["status"] == "PARTIAL_CANCELED" and refunded["virtualAccount"]["refundStatus"] == "COMPLETED"


def test_unissued_virtual_account_cancels_in_full(toss, paid):
    params = paid(amount=30000, method="VIRTUAL_ACCOUNT")
    toss.confirm(params["paymentKey"], params["orderId"], 30000)
    payment = toss.cancel(params["paymentKey"], "주문 취소").json()
    assert payment["status"] == "CANCELED" and payment["balanceAmount"] == 0


# --- idempotency -------------------------------------------------------------------------


def test_same_idempotency_key_replays_status_and_body(toss, done):
    key = done(15000)
    first = toss.cancel(key, "x", 1000, idempotency_key="cancel-1")
    control.advance_clock(seconds=5)
    again = toss.cancel(key, "x", 1000, idempotency_key="cancel-1")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert len(toss.payment(key).json()["cancels"]) == 1


def test_body_is_not_part_of_the_identity(toss, done):
    key = done(15000)
    first = toss.cancel(key, "x", 1000, idempotency_key="cancel-2")
    control.advance_clock(seconds=5)
    other = toss.cancel(key, "y", 3000, idempotency_key="cancel-2")
    assert other.content == first.content
    assert toss.payment(key).json()["balanceAmount"] == 14000


def test_errors_are_replayed_too(toss, done):
    key = done(15000)
    first = toss.cancel(key, "x", 99999, idempotency_key="cancel-3")
    assert error(first) == (403, "NOT_CANCELABLE_AMOUNT")
    again = toss.cancel(key, "x", 1000, idempotency_key="cancel-3")
    assert (again.status_code, again.content) == (first.status_code, first.content)


def test_identity_includes_url_method_and_secret_key(toss, done, settings, sandbox_url):
    from .conftest import Toss

    settings.PGPAY_SANDBOX = {
        **settings.PGPAY_SANDBOX,
        "TOSS": {**settings.PGPAY_SANDBOX["TOSS"], "SECRET_KEYS": [SECRET_KEY, "test_sk_secondKEY0000000000"]},
    }
    key_a, key_b = done(15000), done(15000)
    assert toss.cancel(key_a, "x", 1000, idempotency_key="same").status_code == 200
    # Another URL: a new request.
    assert toss.cancel(key_b, "x", 1000, idempotency_key="same").json()["balanceAmount"] == 14000
    control.advance_clock(seconds=5)
    # Another secret key on the same URL: a new request too.
    other = Toss(sandbox_url + "/toss", "test_sk_secondKEY0000000000")
    assert other.cancel(key_a, "x", 1000, idempotency_key="same").json()["balanceAmount"] == 13000
    other.session.close()


def test_idempotency_key_longer_than_300_characters(toss, done):
    key = done()
    response = toss.cancel(key, "x", 1000, idempotency_key="k" * 301)
    assert error(response) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert response.json()["message"] == "멱등키는 300자 이하여야 합니다."
    assert toss.cancel(key, "x", 1000, idempotency_key="k" * 300).status_code == 200


def test_idempotency_key_expires_after_fifteen_days(toss, done):
    key = done(15000)
    toss.cancel(key, "x", 1000, idempotency_key="old-key")
    control.advance_clock(days=15, seconds=1)
    assert toss.cancel(key, "x", 1000, idempotency_key="old-key").json()["balanceAmount"] == 13000


def test_get_ignores_idempotency_key(toss, paid):
    params = paid()
    before = toss.payment(params["paymentKey"], idempotency_key="g").json()
    toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert toss.payment(params["paymentKey"], idempotency_key="g").json()["status"] != before["status"]


def test_in_flight_duplicate_is_409_then_the_key_is_free_again(toss, paid):
    import threading
    import time

    from django_pgpay.sandbox.models import SandboxIdempotency

    params = paid()
    # The first request holds its key while it waits, and changes nothing.
    control.arm_fault("toss", "confirm", "timeout_before", delay=1.5)
    first = {}
    thread = threading.Thread(
        target=lambda: first.update(response=toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="confirm-1"))
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not SandboxIdempotency.objects.filter(idempotency_key="confirm-1", status__isnull=True).exists():
        assert time.monotonic() < deadline, "the first request never arrived"
        time.sleep(0.02)
    duplicate = toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="confirm-1")
    assert error(duplicate) == (409, "IDEMPOTENT_REQUEST_PROCESSING")
    assert duplicate.json()["message"] == "이전 멱등 요청이 처리중입니다."
    thread.join()
    assert first["response"].status_code >= 500
    # The PG did nothing, so the key was not kept: the retry runs for real.
    retry = toss.confirm(params["paymentKey"], params["orderId"], 15000, idempotency_key="confirm-1")
    assert retry.status_code == 200 and retry.json()["status"] == "DONE"


# --- the test-code header -------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, status",
    [
        ("REJECT_CARD_COMPANY", 403),
        ("ALREADY_PROCESSED_PAYMENT", 400),
        ("FAILED_INTERNAL_SYSTEM_PROCESSING", 500),
        ("NOT_FOUND_PAYMENT_SESSION", 404),
    ],
)
def test_test_code_header_forces_that_error(toss, paid, code, status):
    params = paid()
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000, headers={"TossPayments-Test-Code": code})
    assert error(response) == (status, code)
    # Nothing happened.
    assert toss.payment(params["paymentKey"]).json()["status"] == "IN_PROGRESS"


def test_unknown_test_code_is_invalid_request(toss, paid):
    response = toss.payment(paid()["paymentKey"], headers={"TossPayments-Test-Code": "NO_SUCH_CODE"})
    assert error(response) == (400, "INVALID_REQUEST")


# --- routing ------------------------------------------------------------------------------


def test_unknown_api_path_answers_in_toss_shape(toss):
    assert error(toss.request("GET", "/v1/billing/authorizations/x")) == (404, "NOT_FOUND")


def test_wrong_method_answers_in_toss_shape(toss, paid):
    assert error(toss.request("GET", "/v1/payments/confirm")) == (405, "METHOD_NOT_ALLOWED")
    assert error(toss.request("POST", f"/v1/payments/{paid()['paymentKey']}", json={})) == (405, "METHOD_NOT_ALLOWED")


def test_sandbox_is_a_404_when_not_allowed(toss, settings, paid):
    params = paid()
    settings.PGPAY = {**settings.PGPAY, "SANDBOX_ALLOW_WITHOUT_DEBUG": False}
    response = toss.payment(params["paymentKey"])
    assert response.status_code == 404
    assert "application/json" not in response.headers.get("Content-Type", "")
    assert requests.get(toss.base_url + "/js/v2/standard", timeout=5).status_code == 404
