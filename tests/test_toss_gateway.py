"""TossGateway alone: the exact requests it sends and how it reads Toss's replies."""

import base64
import datetime
import json
from decimal import Decimal

import pytest
import requests
import responses
import time_machine
from django.core import checks
from django.utils import timezone
from responses import matchers

from django_pgpay.exceptions import (
    AlreadyCanceled,
    AlreadyProcessed,
    AuthenticationFailed,
    CancelRefused,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    OperationRefused,
    PaymentDeclined,
    RetryLater,
    WebhookVerificationError,
)
from django_pgpay.gateways.results import (
    CancelRequest,
    CheckoutUrls,
    ConfirmRequest,
    OrderSnapshot,
    PaymentState,
    RefundAccount,
)
from django_pgpay.gateways.toss import ERRORS, STATUSES, TossGateway, secret_digest
from tests.toss_support import AUTH, BASE, CLIENT_KEY, SECRET_KEY, fixture

KST = datetime.timezone(datetime.timedelta(hours=9))
ORDER = OrderSnapshot(
    order_number="240611abcdEFGH1234ijkl",
    amount=Decimal(20000),
    currency="KRW",
    order_name="한우집 예약",
    buyer_name="박토스",
    buyer_email="buyer@example.com",
    buyer_phone="010-1234-5678",
)
PAYMENT_KEY = "tviva20240611151412Bx5z1"


def gateway(**options):
    return TossGateway("toss", {"SECRET_KEY": SECRET_KEY, "CLIENT_KEY": CLIENT_KEY, **options})


def confirm_request(key="order-confirm-1", amount=Decimal(20000)):
    return ConfirmRequest(order=ORDER, payment_id=PAYMENT_KEY, amount=amount, currency="KRW", idempotency_key=key)


def cancel_request(amount, *, balance=Decimal(20000), key="order-cancel-1", order=ORDER, payment_id=PAYMENT_KEY, refund_account=None):
    return CancelRequest(
        refund_account=refund_account,
        order=order,
        payment_id=payment_id,
        amount=amount,
        currency="KRW",
        reason="고객 예약취소",
        idempotency_key=key,
        balance_before=balance,
    )


def headers(**extra):
    return matchers.header_matcher({"Authorization": AUTH, "Content-Type": "application/json", **extra})


# --- auth and options ------------------------------------------------------------


def test_basic_auth_is_the_secret_key_with_its_trailing_colon():
    assert base64.b64decode(AUTH.split()[1]) == f"{SECRET_KEY}:".encode()
    assert gateway().auth_headers("lookup", None) == {"Authorization": AUTH}


@responses.activate
def test_confirm_sends_exactly_the_documented_request():
    responses.post(
        f"{BASE}/v1/payments/confirm",
        json=fixture("payment_done_card"),
        match=[
            matchers.body_matcher(f'{{"paymentKey": "{PAYMENT_KEY}", "orderId": "240611abcdEFGH1234ijkl", "amount": 20000}}'),
            headers(**{"Idempotency-Key": "order-confirm-1"}),
        ],
    )
    result = gateway().confirm(confirm_request())
    assert len(responses.calls) == 1
    assert "TossPayments-Test-Code" not in responses.calls[0].request.headers
    assert result.state == PaymentState.APPROVED
    assert (result.payment_id, result.order_number) == (PAYMENT_KEY, "240611abcdEFGH1234ijkl")
    assert result.amount == Decimal(20000) and result.canceled_amount == 0 and result.currency == "KRW"
    assert result.method == "카드"
    assert result.receipt_url.startswith("https://dashboard.tosspayments.com/receipt/")
    assert result.approved_at == datetime.datetime(2024, 6, 11, 15, 14, 42, tzinfo=KST)
    assert result.pg_data == {} and result.cancels == ()


@responses.activate
def test_api_base_and_timeout_are_options(monkeypatch):
    seen = {}
    original = requests.Session.request

    def spy(self, method, url, **kwargs):
        seen["timeout"] = kwargs["timeout"]
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    responses.get("http://sandbox.local:8000/toss/v1/payments/pk_1", json={**fixture("payment_done_card"), "paymentKey": "pk_1"})
    result = gateway(API_BASE="http://sandbox.local:8000/toss/", TIMEOUT=(2, 7)).lookup(payment_id="pk_1")
    assert result.payment_id == "pk_1" and seen["timeout"] == (2.0, 7.0)
    assert gateway().http.timeout == (3.05, 30.0)
    assert gateway(TIMEOUT=5).http.timeout == 5.0


@pytest.mark.parametrize(
    "secret, test_code, sent",
    [
        (SECRET_KEY, "REJECT_CARD_COMPANY", "REJECT_CARD_COMPANY"),
        (SECRET_KEY, {"confirm": "REJECT_CARD_COMPANY"}, "REJECT_CARD_COMPANY"),
        (SECRET_KEY, {"cancel": "NOT_CANCELABLE_PAYMENT"}, None),
        ("live_sk_pgpayTestsOnly0000NotAKey", "REJECT_CARD_COMPANY", None),
    ],
)
@responses.activate
def test_test_code_header_only_with_test_keys(secret, test_code, sent):
    responses.post(f"{BASE}/v1/payments/confirm", status=403, json={"code": "REJECT_CARD_COMPANY", "message": "거절"})
    with pytest.raises(PaymentDeclined):
        gateway(SECRET_KEY=secret, TEST_CODE=test_code).confirm(confirm_request())
    assert responses.calls[0].request.headers.get("TossPayments-Test-Code") == sent


def test_secrets_stay_out_of_repr_and_errors():
    gw = gateway()
    assert SECRET_KEY not in repr(gw) and AUTH.split()[1] not in repr(gw)
    error = gw.error(type("Reply", (), {"status": 401, "data": {"code": "UNAUTHORIZED_KEY", "message": "x"}, "text": ""})(), "confirm")
    assert isinstance(error, AuthenticationFailed)
    assert SECRET_KEY not in repr(error) and SECRET_KEY not in str(error)


# --- checkout and return ------------------------------------------------------------


def test_checkout_gives_the_v2_sdk_its_parameters():
    urls = CheckoutUrls(success_url="https://shop.example/pay/toss/return/", fail_url="https://shop.example/pay/toss/fail/")
    result = gateway(JS_SDK_URL="http://127.0.0.1:8000/sandbox/toss/sdk.js").checkout(ORDER, urls)
    assert result.kind == "widget"
    assert result.template_name == "django_pgpay/checkout/toss.html"
    assert result.script_url == "http://127.0.0.1:8000/sandbox/toss/sdk.js"
    assert result.params == {
        "clientKey": CLIENT_KEY,
        "customerKey": None,
        "method": "CARD",
        "orderId": "240611abcdEFGH1234ijkl",
        "orderName": "한우집 예약",
        "amount": {"currency": "KRW", "value": 20000},
        "successUrl": "https://shop.example/pay/toss/return/",
        "failUrl": "https://shop.example/pay/toss/fail/",
        "customerEmail": "buyer@example.com",
        "customerName": "박토스",
        "customerMobilePhone": "01012345678",
    }
    assert gateway().checkout(ORDER, urls).script_url == "https://js.tosspayments.com/v2/standard"
    assert SECRET_KEY not in json.dumps(result.params)


def test_checkout_uses_the_shops_customer_key_and_method():
    order = OrderSnapshot(
        order_number="ORDER_000001", amount=Decimal(5000), currency="KRW", order_name="x", pg_data={"customer_key": "c_8f3a"}
    )
    params = gateway(METHOD="VIRTUAL_ACCOUNT").checkout(order, CheckoutUrls("https://a/s", "https://a/f")).params
    assert params["customerKey"] == "c_8f3a" and params["method"] == "VIRTUAL_ACCOUNT"
    assert "customerEmail" not in params


@pytest.mark.parametrize(
    ("left", "hours"),
    [
        (datetime.timedelta(hours=5, minutes=59), 5),  # rounded down: the account closes at the deadline or before
        (datetime.timedelta(hours=1), 1),
        (datetime.timedelta(days=45), 720),  # Toss's longest
    ],
)
def test_a_virtual_account_is_asked_due_by_the_shops_deposit_deadline(left, hours):
    """With the order's deposit deadline (the shop's get_deposit_deadline), the window asks Toss for an account due no later."""
    urls = CheckoutUrls("https://a/s", "https://a/f")
    with time_machine.travel(datetime.datetime(2026, 12, 7, 9, 0, tzinfo=datetime.timezone.utc), tick=False):
        order = OrderSnapshot(
            order_number="ORDER_000001", amount=Decimal(5000), currency="KRW", order_name="x", deposit_deadline=timezone.now() + left
        )
        params = gateway(PAY_METHOD="VIRTUAL_ACCOUNT").checkout(order, urls).params
        assert params["virtualAccount"] == {"validHours": hours}
        # A card payment has no account to date; nor has an order without a deadline.
        assert "virtualAccount" not in gateway().checkout(order, urls).params
        undated = OrderSnapshot(order_number="ORDER_000001", amount=Decimal(5000), currency="KRW", order_name="x")
        assert "virtualAccount" not in gateway(PAY_METHOD="VIRTUAL_ACCOUNT").checkout(undated, urls).params


@pytest.mark.parametrize("left", [datetime.timedelta(minutes=59), datetime.timedelta(0), datetime.timedelta(hours=-3)])
def test_no_virtual_account_when_a_transfer_cannot_arrive_before_the_deadline(left):
    order = OrderSnapshot(
        order_number="ORDER_000001", amount=Decimal(5000), currency="KRW", order_name="x", deposit_deadline=timezone.now() + left
    )
    with pytest.raises(OperationRefused) as refused:
        gateway(PAY_METHOD="VIRTUAL_ACCOUNT").checkout(order, CheckoutUrls("https://a/s", "https://a/f"))
    assert refused.value.code == "DEPOSIT_DEADLINE_PASSED" and refused.value.http_status == 409


def test_parse_return():
    params = gateway().parse_return({"paymentKey": PAYMENT_KEY, "orderId": "ORDER_000001", "amount": "20000", "paymentType": "NORMAL"})
    assert (params.payment_id, params.order_number, params.amount) == (PAYMENT_KEY, "ORDER_000001", Decimal(20000))
    fail = gateway().parse_return(
        {"code": "PAY_PROCESS_CANCELED", "message": "사용자에 의해 결제가 취소되었습니다.", "orderId": "ORDER_000001"}
    )
    assert (fail.error_code, fail.order_number, fail.amount) == ("PAY_PROCESS_CANCELED", "ORDER_000001", None)


@pytest.mark.parametrize(
    "query",
    [
        {"paymentKey": PAYMENT_KEY, "orderId": "ORDER_000001"},
        {"paymentKey": PAYMENT_KEY, "orderId": "ORDER_000001", "amount": "2e4"},
        {"paymentKey": PAYMENT_KEY, "orderId": "ORDER_000001", "amount": "NaN"},
        {"paymentKey": PAYMENT_KEY, "orderId": "ORDER_000001", "amount": "20000.0.0"},
        {"orderId": "ORDER_000001", "amount": "20000"},
    ],
)
def test_parse_return_refuses_bad_queries(query):
    with pytest.raises(InvalidRequest):
        gateway().parse_return(query)


# --- reading Payment objects ---------------------------------------------------------------


@pytest.mark.parametrize("status, state", sorted(STATUSES.items()))
def test_every_status_is_mapped(status, state):
    result = gateway().payment({**fixture("payment_done_card"), "status": status})
    assert result.state == state


def test_status_mapping_is_the_documented_one():
    assert STATUSES == {
        "READY": PaymentState.PENDING,
        "IN_PROGRESS": PaymentState.AUTHENTICATED,
        "WAITING_FOR_DEPOSIT": PaymentState.WAITING_FOR_DEPOSIT,
        "DONE": PaymentState.APPROVED,
        "PARTIAL_CANCELED": PaymentState.PARTIAL_CANCELED,
        "CANCELED": PaymentState.CANCELED,
        "ABORTED": PaymentState.FAILED,
        "EXPIRED": PaymentState.EXPIRED,
    }


def test_partial_cancel_and_cancel_entries():
    result = gateway().payment(fixture("payment_partial_canceled"))
    assert result.state == PaymentState.PARTIAL_CANCELED
    assert result.amount == Decimal(20000) and result.canceled_amount == Decimal(5000) and result.balance == Decimal(15000)
    (entry,) = result.cancels
    assert entry.pg_cancel_id == "090A796806E726BBB929F4A2CA7DB9A7" and entry.amount == Decimal(5000)
    assert entry.canceled_at == datetime.datetime(2024, 6, 11, 16, 0, tzinfo=KST)


def test_virtual_account_details_and_secret_digest():
    raw = fixture("payment_waiting_for_deposit")
    result = gateway().payment(raw)
    assert result.state == PaymentState.WAITING_FOR_DEPOSIT and result.method == "가상계좌"
    assert result.expires_at == datetime.datetime(2024, 6, 18, 23, 59, 59, tzinfo=KST)
    assert result.pg_data == {
        "vbank_account_number": "X6505636518308",
        "vbank_bank_code": "20",
        "vbank_holder": "박토스",
        "vbank_due_date": "2024-06-18T23:59:59+09:00",
        "toss_secret_sha256": secret_digest(raw["secret"]),
    }
    assert raw["secret"] not in json.dumps(result.pg_data)


def test_failure_details():
    result = gateway().payment(fixture("payment_aborted"))
    assert result.state == PaymentState.FAILED
    assert (result.failure_code, result.failure_message) == ("REJECT_CARD_COMPANY", "결제 승인이 거절되었습니다")


@pytest.mark.parametrize(
    "change",
    [
        {"status": "SOMETHING_NEW"},
        {"totalAmount": "lots"},
        {"totalAmount": None},
        {"balanceAmount": 30000},
        {"balanceAmount": -1},
        {"currency": "WON!"},
    ],
)
def test_an_unreadable_payment_is_an_unknown_outcome_not_a_guess(change):
    with pytest.raises(GatewayUnavailable) as info:
        gateway().payment({**fixture("payment_done_card"), **change})
    assert info.value.outcome_unknown and info.value.code == "MALFORMED_REPLY"


def test_a_payment_without_its_ids_is_unreadable():
    data = fixture("payment_done_card")
    del data["paymentKey"]
    with pytest.raises(GatewayUnavailable):
        gateway().payment(data)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "verb, status, code, expected, unknown",
    [
        ("confirm", 400, "ALREADY_PROCESSED_PAYMENT", AlreadyProcessed, False),
        ("confirm", 403, "REJECT_CARD_COMPANY", PaymentDeclined, False),
        ("confirm", 400, "INVALID_CARD_EXPIRATION", PaymentDeclined, False),
        ("confirm", 403, "SOME_NEW_DECLINE", PaymentDeclined, False),
        ("confirm", 400, "INVALID_REQUEST", InvalidRequest, False),
        ("confirm", 404, "NOT_FOUND_PAYMENT_SESSION", NotFound, False),
        ("confirm", 400, "PROVIDER_ERROR", GatewayError, False),
        ("confirm", 401, "UNAUTHORIZED_KEY", AuthenticationFailed, False),
        ("confirm", 403, "INCORRECT_BASIC_AUTH_FORMAT", AuthenticationFailed, False),
        ("confirm", 409, "IDEMPOTENT_REQUEST_PROCESSING", GatewayUnavailable, True),
        ("confirm", 500, "FAILED_INTERNAL_SYSTEM_PROCESSING", GatewayUnavailable, True),
        ("confirm", 500, "SOMETHING_ELSE", GatewayUnavailable, True),
        ("cancel", 400, "ALREADY_CANCELED_PAYMENT", AlreadyCanceled, False),
        ("cancel", 403, "NOT_CANCELABLE_PAYMENT", CancelRefused, False),
        ("cancel", 403, "NOT_CANCELABLE_AMOUNT", CancelRefused, False),
        ("cancel", 403, "REJECT_CARD_COMPANY", CancelRefused, False),
        # A documented refusal (a second cancel within a second): retry later, nothing pending (issue #12, case 10).
        ("cancel", 403, "FORBIDDEN_CONSECUTIVE_REQUEST", RetryLater, False),
        ("cancel", 500, "FAILED_REFUND_PROCESS", GatewayUnavailable, True),
        ("lookup", 404, "NOT_FOUND_PAYMENT", NotFound, False),
    ],
)
def test_error_codes_map_onto_the_core_exceptions(verb, status, code, expected, unknown):
    reply = type("Reply", (), {"status": status, "data": {"code": code, "message": "메시지"}, "text": ""})()
    error = gateway().error(reply, verb)
    assert type(error) is expected
    assert error.code == code and error.http_status_from_pg == status and error.gateway == "toss"
    assert error.outcome_unknown is unknown
    assert error.message == "메시지"


def test_every_mapped_code_is_a_gateway_error():
    assert all(issubclass(cls, GatewayError) for cls in ERRORS.values())
    assert ERRORS["ALREADY_PROCESSED_PAYMENT"] is AlreadyProcessed


@pytest.mark.parametrize(
    "reply",
    [
        {"status": 200, "body": "<html>oops</html>"},
        {"status": 200, "body": "[1, 2]"},
        {"status": 502, "body": "<html>Bad Gateway</html>"},
        {"status": 400, "body": "not json"},
        {"status": 200, "body": '{"status": "DONE"'},
    ],
)
@responses.activate
def test_malformed_replies_are_unknown_outcomes(reply):
    responses.post(f"{BASE}/v1/payments/confirm", status=reply["status"], body=reply["body"])
    with pytest.raises(GatewayUnavailable) as info:
        gateway().confirm(confirm_request())
    assert info.value.outcome_unknown


@responses.activate
def test_a_timeout_is_an_unknown_outcome():
    responses.post(f"{BASE}/v1/payments/confirm", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(GatewayUnavailable) as info:
        gateway().confirm(confirm_request())
    assert info.value.outcome_unknown and info.value.code == "TIMEOUT"


# --- cancel and lookup ---------------------------------------------------------------------


@responses.activate
def test_full_cancel_omits_the_amount():
    responses.post(
        f"{BASE}/v1/payments/{PAYMENT_KEY}/cancel",
        json=fixture("payment_canceled"),
        match=[matchers.body_matcher('{"cancelReason": "고객 예약취소"}'), headers(**{"Idempotency-Key": "order-cancel-1"})],
    )
    result = gateway().cancel(cancel_request(Decimal(20000)))
    assert result.pg_cancel_id == "1A2B3C4D5E6F708192A3B4C5D6E7F801" and result.amount == Decimal(20000)
    assert result.payment.state == PaymentState.CANCELED and result.payment.balance == 0


@responses.activate
def test_partial_cancel_sends_the_amount():
    responses.post(
        f"{BASE}/v1/payments/{PAYMENT_KEY}/cancel",
        json=fixture("payment_partial_canceled"),
        match=[
            matchers.body_matcher('{"cancelReason": "고객 예약취소", "cancelAmount": 5000}'),
            headers(**{"Idempotency-Key": "order-cancel-2"}),
        ],
    )
    result = gateway().cancel(cancel_request(Decimal(5000), key="order-cancel-2"))
    assert result.amount == Decimal(5000) and result.pg_cancel_id == "090A796806E726BBB929F4A2CA7DB9A7"
    assert result.payment.state == PaymentState.PARTIAL_CANCELED


@responses.activate
def test_refund_of_a_deposited_virtual_account_sends_the_buyers_account():
    """The typed RefundAccount becomes Toss's refundReceiveAccount (Toss takes no phone: it is not sent)."""
    account = RefundAccount(bank="88", number="110123456789", holder="박토스", phone="01012345678")
    responses.post(
        f"{BASE}/v1/payments/{PAYMENT_KEY}/cancel",
        json=fixture("payment_canceled"),
        match=[
            matchers.body_matcher(
                '{"cancelReason": "고객 예약취소", "refundReceiveAccount": {"bank": "88", "accountNumber": "110123456789", "holderName": "박토스"}}'
            )
        ],
    )
    gateway().cancel(cancel_request(Decimal(20000), refund_account=account))


@responses.activate
def test_lookup_by_payment_key_and_by_order_id():
    responses.get(
        f"{BASE}/v1/payments/{PAYMENT_KEY}", json=fixture("payment_done_card"), match=[matchers.header_matcher({"Authorization": AUTH})]
    )
    responses.get(f"{BASE}/v1/payments/orders/240611abcdEFGH1234ijkl", json=fixture("payment_done_card"))
    assert gateway().lookup(payment_id=PAYMENT_KEY).state == PaymentState.APPROVED
    assert gateway().lookup(order=ORDER).payment_id == PAYMENT_KEY
    assert [c.request.method for c in responses.calls] == ["GET", "GET"]
    assert "Idempotency-Key" not in responses.calls[0].request.headers


@responses.activate
def test_lookup_of_an_unknown_payment_is_not_found():
    responses.get(f"{BASE}/v1/payments/nope", status=404, json={"code": "NOT_FOUND_PAYMENT", "message": "존재하지 않는 결제 입니다."})
    with pytest.raises(NotFound):
        gateway().lookup(payment_id="nope")
    with pytest.raises(NotFound):
        gateway().lookup()


@responses.activate
def test_path_segments_are_quoted():
    responses.get(f"{BASE}/v1/payments/a%2Fb%3Fc", json={**fixture("payment_done_card"), "paymentKey": "a/b?c"})
    assert gateway().lookup(payment_id="a/b?c").payment_id == "a/b?c"


# --- webhooks ---------------------------------------------------------------------------------


def test_parse_payment_status_changed_trusts_nothing():
    body = json.dumps(fixture("webhook_payment_status_changed"), ensure_ascii=False).encode()
    event = gateway().parse_webhook({}, body)
    assert event.event_type == "PAYMENT_STATUS_CHANGED"
    assert (event.payment_id, event.order_number) == (PAYMENT_KEY, "240611abcdEFGH1234ijkl")
    assert not event.verified and event.payment is None
    assert event.event_id == gateway().parse_webhook({}, body).event_id  # a retried delivery
    changed = fixture("webhook_payment_status_changed")
    changed["data"]["status"] = "CANCELED"
    assert gateway().parse_webhook({}, json.dumps(changed).encode()).event_id != event.event_id


def test_parse_deposit_callback():
    body = json.dumps(fixture("webhook_deposit_callback")).encode()
    event = gateway().parse_webhook({}, body)
    assert (event.event_type, event.order_number, event.verified) == ("DEPOSIT_CALLBACK", "240611abcdEFGH1234ijkl", False)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"eventType": "PAYMENT_STATUS_CHANGED", "data": {}}',
        b'{"status": "DONE"}',
        b'{"eventType": "DEPOSIT_CALLBACK", "data": {"orderId": "x"}}',
    ],
)
def test_malformed_webhooks_are_refused(body):
    with pytest.raises(WebhookVerificationError):
        gateway().parse_webhook({}, body)


def test_other_event_types_are_parsed_with_nothing_to_apply():
    event = gateway().parse_webhook({}, b'{"eventType": "PAYOUT_STATUS_CHANGED", "createdAt": "2024-06-11T00:00:00.000000", "data": {}}')
    assert event.event_type == "PAYOUT_STATUS_CHANGED" and not event.payment_id and not event.order_number


@responses.activate
def test_payment_status_changed_is_verified_by_a_lookup():
    responses.get(f"{BASE}/v1/payments/{PAYMENT_KEY}", json=fixture("payment_in_progress"))
    body = json.dumps(fixture("webhook_payment_status_changed")).encode()  # claims DONE
    event = gateway().verify_webhook(gateway().parse_webhook({}, body), ORDER)
    assert event.verified and event.payment.state == PaymentState.AUTHENTICATED  # Toss's word, not the body's


@responses.activate
def test_deposit_callback_is_verified_by_its_secret_then_fetched():
    waiting = fixture("payment_waiting_for_deposit")
    order = OrderSnapshot(
        order_number=waiting["orderId"],
        amount=Decimal(20000),
        currency="KRW",
        order_name="x",
        payment_id=waiting["paymentKey"],
        pg_data={"toss_secret_sha256": secret_digest(waiting["secret"])},
    )
    responses.get(f"{BASE}/v1/payments/{waiting['paymentKey']}", json=fixture("payment_vbank_done"))
    event = gateway().parse_webhook({}, json.dumps(fixture("webhook_deposit_callback")).encode())
    verified = gateway().verify_webhook(event, order)
    assert verified.verified and verified.payment.state == PaymentState.APPROVED

    forged = gateway().parse_webhook({}, json.dumps({**fixture("webhook_deposit_callback"), "secret": "ps_guess"}).encode())
    with pytest.raises(WebhookVerificationError):
        gateway().verify_webhook(forged, order)
    with pytest.raises(WebhookVerificationError):
        gateway().verify_webhook(event, None)
    with pytest.raises(WebhookVerificationError):
        gateway().verify_webhook(event, OrderSnapshot(order_number=order.order_number, amount=Decimal(1), currency="KRW", order_name="x"))
    assert len(responses.calls) == 1  # forged callbacks never reach Toss


# --- system checks --------------------------------------------------------------------------------


def ids(messages):
    return sorted(m.id for m in messages)


def test_checks():
    assert ids(gateway().check(debug=True)) == []
    assert ids(gateway().check(debug=False)) == ["django_pgpay.W103"]
    live = {"SECRET_KEY": "live_sk_x", "CLIENT_KEY": "live_ck_x"}
    assert ids(TossGateway("toss", live).check(debug=True)) == ["django_pgpay.W102"]
    assert ids(TossGateway("toss", live).check(debug=False)) == []
    assert ids(TossGateway("toss", {**live, "TEST_CODE": "X"}).check(debug=False)) == ["django_pgpay.W104"]
    assert ids(TossGateway("toss", {"SECRET_KEY": "live_sk_x", "CLIENT_KEY": "test_ck_x"}).check(debug=True)) == [
        "django_pgpay.E101",
        "django_pgpay.W102",
    ]
    assert ids(TossGateway("toss", {"SECRET_KEY": "sk_x", "CLIENT_KEY": "test_ck_x"}).check(debug=True)) == ["django_pgpay.W101"]
    missing = TossGateway("toss", {}).check(debug=True)
    assert [(m.id, m.msg) for m in missing] == [
        ("django_pgpay.E004", "PGPAY[\"GATEWAYS\"]['toss'][\"OPTIONS\"]['SECRET_KEY'] is not set."),
        ("django_pgpay.E004", "PGPAY[\"GATEWAYS\"]['toss'][\"OPTIONS\"]['CLIENT_KEY'] is not set."),
    ]
    assert all(isinstance(m, checks.CheckMessage) for m in missing)


def test_capabilities():
    assert gateway().capabilities() == {
        "supports_partial_cancel": True,
        "supports_idempotency_key": True,
        "signs_webhooks": False,
        "supports_lookup_by_order": True,
        "supports_virtual_account": True,
        "sends_deposit_deadline": True,
        "requires_confirm_call": True,
    }


@pytest.mark.parametrize(
    "name, state, canceled",
    [
        ("payment_ready", PaymentState.PENDING, 0),
        ("payment_in_progress", PaymentState.AUTHENTICATED, 0),
        ("payment_done_card", PaymentState.APPROVED, 0),
        ("payment_partial_canceled", PaymentState.PARTIAL_CANCELED, 5000),
        ("payment_canceled", PaymentState.CANCELED, 20000),
        ("payment_aborted", PaymentState.FAILED, 0),
        ("payment_expired", PaymentState.EXPIRED, 0),
        ("payment_waiting_for_deposit", PaymentState.WAITING_FOR_DEPOSIT, 0),
        ("payment_vbank_done", PaymentState.APPROVED, 0),
        ("payment_vbank_canceled", PaymentState.CANCELED, 20000),
    ],
)
def test_every_recorded_payment_reads(name, state, canceled):
    result = gateway().payment(fixture(name))
    assert (result.state, result.canceled_amount, result.amount) == (state, Decimal(canceled), Decimal(20000))
    assert sum((c.amount for c in result.cancels), Decimal(0)) == result.canceled_amount
