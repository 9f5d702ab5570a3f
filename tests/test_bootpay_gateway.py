"""BootpayGateway alone: the exact requests it sends and how it reads Bootpay's replies."""

import base64
import datetime
import json
import threading
from decimal import Decimal

import pytest
import requests
import responses
from django.core import checks
from responses import matchers

from django_pgpay.exceptions import (
    AlreadyCanceled,
    AuthenticationFailed,
    CancelRefused,
    ConfigurationError,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    UnsupportedFeature,
    WebhookVerificationError,
)
from django_pgpay.gateways.bootpay import ERRORS, STATUSES, BootpayGateway, receipt_state
from django_pgpay.gateways.results import (
    CancelRequest,
    CheckoutUrls,
    ConfirmRequest,
    LineItem,
    OrderSnapshot,
    PaymentState,
    RefundAccount,
)
from tests.bootpay_support import (
    APPLICATION_ID,
    BASE,
    BASIC,
    CLIENT_KEY,
    PRIVATE_KEY,
    SECRET_KEY,
    WEB_APPLICATION_ID,
    BootpayAPI,
    fixture,
)

KST = datetime.timezone(datetime.timedelta(hours=9))
RECEIPT_ID = "6667ea2ed01c7e001d7c2f41"
ORDER = OrderSnapshot(
    order_number="240611abcdEFGH1234ijkl",
    amount=Decimal(10000),
    currency="KRW",
    order_name="한우집 예약",
    buyer_name="박부트",
    buyer_email="buyer@example.com",
    buyer_phone="010-1234-5678",
)
URLS = CheckoutUrls(success_url="https://shop.example/pay/bootpay/return/", fail_url="https://shop.example/pay/bootpay/fail/")


def gateway(**options):
    return BootpayGateway("bootpay", {"CLIENT_KEY": CLIENT_KEY, "SECRET_KEY": SECRET_KEY, **options})


def legacy(**options):
    return BootpayGateway(
        "bootpay", {"APPLICATION_ID": APPLICATION_ID, "PRIVATE_KEY": PRIVATE_KEY, "WEB_APPLICATION_ID": WEB_APPLICATION_ID, **options}
    )


def confirm_request(receipt_id=RECEIPT_ID):
    return ConfirmRequest(order=ORDER, payment_id=receipt_id, amount=Decimal(10000), currency="KRW", idempotency_key="k-confirm")


def cancel_request(amount, *, balance=Decimal(10000), key="240611abcdEFGH1234ijkl-cancel-t1", order=ORDER, by="buyer", refund_account=None):
    return CancelRequest(
        refund_account=refund_account,
        order=order,
        payment_id=RECEIPT_ID,
        amount=amount,
        currency="KRW",
        reason="고객 요청",
        idempotency_key=key,
        balance_before=balance,
        requested_by=by,
    )


def headers(auth=BASIC, **extra):
    return matchers.header_matcher({"Authorization": auth, "Content-Type": "application/json", "Accept": "application/json", **extra})


def receipt(name="receipt_paid_card", **changes):
    return {**fixture(name), **changes}


LOOKUP = f"{BASE}/receipt/{RECEIPT_ID}?lookup_user_data=false"


# --- authentication ------------------------------------------------------------------


def test_basic_auth_is_the_client_and_secret_key():
    assert base64.b64decode(BASIC.split()[1]) == f"{CLIENT_KEY}:{SECRET_KEY}".encode()
    assert gateway().auth_headers("lookup", None) == {"Authorization": BASIC}
    assert not gateway().uses_access_token and legacy().uses_access_token


@responses.activate
def test_confirm_sends_exactly_the_documented_request():
    responses.post(
        f"{BASE}/confirm",
        json=fixture("receipt_paid_card"),
        match=[matchers.body_matcher(f'{{"receipt_id": "{RECEIPT_ID}"}}'), headers()],
    )
    result = gateway().confirm(confirm_request())
    assert len(responses.calls) == 1  # a settled receipt: no lookup needed
    assert "Idempotency-Key" not in responses.calls[0].request.headers
    assert result.state == PaymentState.APPROVED
    assert (result.payment_id, result.order_number) == (RECEIPT_ID, "240611abcdEFGH1234ijkl")
    assert (result.amount, result.canceled_amount, result.currency) == (Decimal(10000), 0, "KRW")
    assert result.method == "카드" and result.receipt_url.startswith("https://door.bootpay.co.kr/receipt/")
    assert result.approved_at == datetime.datetime(2024, 6, 11, 15, 14, 42, tzinfo=KST)
    assert result.pg_data == {} and result.cancels == ()


@responses.activate
def test_legacy_keys_fetch_one_token_and_send_it_as_bearer():
    responses.post(
        f"{BASE}/request/token",
        json=fixture("token"),
        match=[matchers.body_matcher(f'{{"application_id": "{APPLICATION_ID}", "private_key": "{PRIVATE_KEY}"}}')],
    )
    bearer = "Bearer bp_access_token_for_tests_only_0001"
    responses.get(LOOKUP, json=fixture("receipt_paid_card"), match=[matchers.header_matcher({"Authorization": bearer})])
    gw = legacy()
    for _ in range(3):
        assert gw.lookup(payment_id=RECEIPT_ID).state == PaymentState.APPROVED
    assert [c.request.url for c in responses.calls].count(f"{BASE}/request/token") == 1


@responses.activate
def test_the_token_is_renewed_before_it_expires():
    tokens = iter(["tok-1", "tok-2"])
    responses.add_callback(
        responses.POST, f"{BASE}/request/token", callback=lambda r: (200, {}, json.dumps({"access_token": next(tokens), "expire_in": 1800}))
    )
    gw = legacy()
    now = [1000.0]
    gw.clock = lambda: now[0]
    assert gw.access_token() == "tok-1"
    now[0] += 1499  # 25 minutes less a second: Bootpay still hands out the same token
    assert gw.access_token() == "tok-1"
    now[0] += 2
    assert gw.access_token() == "tok-2"
    assert len(responses.calls) == 2


@responses.activate
def test_threads_share_one_token_request():
    responses.post(f"{BASE}/request/token", json=fixture("token"))
    responses.get(LOOKUP, json=fixture("receipt_paid_card"))
    gw = legacy()
    barrier = threading.Barrier(8)
    errors = []

    def work():
        try:
            barrier.wait()
            gw.lookup(payment_id=RECEIPT_ID)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert [c.request.url for c in responses.calls].count(f"{BASE}/request/token") == 1


@responses.activate
def test_a_refused_token_is_renewed_once_and_the_call_sent_again():
    tokens = iter(["tok-old", "tok-new"])
    responses.add_callback(
        responses.POST, f"{BASE}/request/token", callback=lambda r: (200, {}, json.dumps({"access_token": next(tokens), "expire_in": 1800}))
    )
    responses.post(f"{BASE}/cancel", status=401, json={"error_code": "TOKEN_KEY_INVALID", "message": "ACCESS TOKEN 값을 확인해주세요."})
    responses.post(f"{BASE}/cancel", json=receipt("receipt_cancelled"))
    result = legacy().cancel(cancel_request(Decimal(10000)))
    assert result.payment.state == PaymentState.CANCELED
    sent = [(c.request.url.rsplit("/", 1)[-1], c.request.headers.get("Authorization")) for c in responses.calls]
    assert sent == [("token", None), ("cancel", "Bearer tok-old"), ("token", None), ("cancel", "Bearer tok-new")]


@pytest.mark.parametrize(
    "reply, error, code",
    [
        ({"status": 401, "json": {"error_code": "APP_KEY_NOT_FOUND", "message": "없는 키"}}, AuthenticationFailed, "APP_KEY_NOT_FOUND"),
        ({"status": 200, "json": {"error_code": "TOKEN_KEY_INVALID", "message": "x"}}, AuthenticationFailed, "TOKEN_KEY_INVALID"),
        ({"status": 502, "body": "<html>Bad Gateway</html>"}, GatewayUnavailable, "TOKEN_UNAVAILABLE"),
        ({"body": requests.exceptions.ReadTimeout("slow")}, GatewayUnavailable, "TOKEN_UNAVAILABLE"),
    ],
)
@responses.activate
def test_a_token_failure_never_counts_as_a_sent_payment_call(reply, error, code):
    responses.post(f"{BASE}/request/token", **reply)
    with pytest.raises(error) as info:
        legacy().confirm(confirm_request())
    assert info.value.code == code
    assert not info.value.outcome_unknown  # the confirm itself never left
    assert [c.request.url for c in responses.calls] == [f"{BASE}/request/token"]
    assert (
        PRIVATE_KEY not in repr(info.value)
        and PRIVATE_KEY not in str(info.value)
        and PRIVATE_KEY not in json.dumps(info.value.response or {})
    )


def test_secrets_stay_out_of_repr():
    for gw in (gateway(), legacy()):
        assert SECRET_KEY not in repr(gw) and PRIVATE_KEY not in repr(gw) and BASIC.split()[1] not in repr(gw)


def test_missing_keys_name_the_option():
    with pytest.raises(ConfigurationError, match=r"\['CLIENT_KEY'\] is not set"):
        BootpayGateway("bootpay", {}).auth_headers("lookup", None)


@responses.activate
def test_api_base_and_timeout_are_options(monkeypatch):
    seen = {}
    original = requests.Session.request

    def spy(self, method, url, **kwargs):
        seen["timeout"] = kwargs["timeout"]
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    responses.get("http://sandbox.local:8000/bootpay/v2/receipt/r1?lookup_user_data=false", json=receipt(receipt_id="r1"))
    result = gateway(API_BASE="http://sandbox.local:8000/bootpay/v2/", TIMEOUT=(2, 7)).lookup(payment_id="r1")
    assert result.payment_id == "r1" and seen["timeout"] == (2.0, 7.0)
    assert gateway().http.timeout == (3.05, 30.0) and gateway(TIMEOUT=5).http.timeout == 5.0
    assert gateway().http.base_url == "https://api.bootpay.co.kr/v2"


# --- checkout and return ----------------------------------------------------------------


def test_checkout_gives_the_sdk_its_parameters_with_separate_approval():
    result = gateway(JS_SDK_URL="http://127.0.0.1:8000/sandbox/bootpay/bootpay.js").checkout(ORDER, URLS)
    assert (result.kind, result.template_name) == ("widget", "django_pgpay/checkout/bootpay.html")
    assert result.script_url == "http://127.0.0.1:8000/sandbox/bootpay/bootpay.js"
    assert result.params == {
        "request": {
            "client_key": CLIENT_KEY,
            "price": 10000,
            "order_name": "한우집 예약",
            "order_id": "240611abcdEFGH1234ijkl",
            "user": {"username": "박부트", "email": "buyer@example.com", "phone": "01012345678"},
            "extra": {"separately_confirmed": True},
        },
        "return_url": "https://shop.example/pay/bootpay/return/",
        "fail_url": "https://shop.example/pay/bootpay/fail/",
        "attempt_url": "",
    }
    assert gateway().checkout(ORDER, URLS).script_url == "https://js.bootpay.co.kr/bootpay-5.1.4.min.js"
    assert SECRET_KEY not in json.dumps(result.params)


def test_checkout_options_items_and_legacy_browser_key():
    order = OrderSnapshot(
        order_number="ORDER_000001",
        amount=Decimal(25000),
        currency="KRW",
        order_name="장바구니",
        line_items=(LineItem("불고기", Decimal(10000), 2, sku="B-1"), LineItem("냉면", Decimal(5000))),
    )
    request = gateway(PG="nicepay", METHOD="card", OPEN_TYPE="redirect").checkout(order, URLS).params["request"]
    assert request["pg"] == "nicepay" and request["method"] == "card"
    assert request["items"] == [
        {"id": "B-1", "name": "불고기", "qty": 2, "price": 10000},
        {"id": "ORDER_000001-2", "name": "냉면", "qty": 1, "price": 5000},
    ]
    assert request["extra"] == {"separately_confirmed": True, "open_type": "redirect", "redirect_url": URLS.success_url}
    assert "user" not in request
    legacy_request = legacy().checkout(order, URLS).params["request"]
    assert legacy_request["application_id"] == WEB_APPLICATION_ID and "client_key" not in legacy_request
    assert APPLICATION_ID not in json.dumps(legacy_request) and PRIVATE_KEY not in json.dumps(legacy_request)


def test_items_that_do_not_add_up_are_left_out():
    order = OrderSnapshot(
        order_number="ORDER_000001", amount=Decimal(9000), currency="KRW", order_name="x", line_items=(LineItem("a", Decimal(10000)),)
    )
    assert "items" not in gateway().checkout(order, URLS).params["request"]


def test_checkout_refuses_other_currencies():
    order = OrderSnapshot(order_number="ORDER_000001", amount=Decimal("10.50"), currency="USD", order_name="x")
    with pytest.raises(UnsupportedFeature):
        gateway().checkout(order, URLS)


@pytest.mark.parametrize("event", ["confirm", "done", "issued", ""])
def test_parse_return(event):
    query = {"receipt_id": RECEIPT_ID, "order_id": "ORDER_000001", "status": "2"}
    if event:
        query["event"] = event
    params = gateway().parse_return(query)
    assert (params.payment_id, params.order_number, params.amount, params.error_code) == (RECEIPT_ID, "ORDER_000001", None, "")


@pytest.mark.parametrize("event, code", [("cancel", "PAY_PROCESS_CANCELED"), ("error", "PAY_PROCESS_ABORTED")])
def test_parse_return_of_a_closed_or_failed_window(event, code):
    params = gateway().parse_return({"event": event, "order_id": "ORDER_000001", "message": "사용자가 결제를 취소하였습니다."})
    assert (params.error_code, params.order_number, params.payment_id) == (code, "ORDER_000001", "")


@pytest.mark.parametrize(
    "query", [{"order_id": "ORDER_000001"}, {"receipt_id": RECEIPT_ID}, {"event": "hack", "receipt_id": "r", "order_id": "o"}]
)
def test_parse_return_refuses_bad_queries(query):
    with pytest.raises(InvalidRequest):
        gateway().parse_return(query)


# --- reading receipts ---------------------------------------------------------------------


def test_status_mapping_is_the_documented_one():
    assert {k: v for k, v in STATUSES.items() if k >= 0 and k != 3} == {
        0: PaymentState.PENDING,
        1: PaymentState.APPROVED,
        2: PaymentState.AUTHENTICATED,
        5: PaymentState.WAITING_FOR_DEPOSIT,
        20: PaymentState.CANCELED,
    }


@pytest.mark.parametrize(
    "status, price, cancelled, state, canceled",
    [
        (0, 10000, 0, PaymentState.PENDING, 0),
        (1, 10000, 0, PaymentState.APPROVED, 0),
        (1, 10000, 3000, PaymentState.PARTIAL_CANCELED, 3000),  # a partial cancel may keep status 1
        (2, 10000, 0, PaymentState.AUTHENTICATED, 0),
        (5, 10000, 0, PaymentState.WAITING_FOR_DEPOSIT, 0),
        (20, 10000, 3000, PaymentState.PARTIAL_CANCELED, 3000),  # 20 is partial too: cancelled_price tells
        (20, 10000, 10000, PaymentState.CANCELED, 10000),
        (20, 10000, 0, PaymentState.CANCELED, 10000),  # a withdrawn virtual account
        (-1, 10000, 0, PaymentState.FAILED, 0),
        (-2, 10000, 0, PaymentState.FAILED, 0),
        (-20, 10000, 3000, PaymentState.PARTIAL_CANCELED, 3000),  # a cancel failed: the payment stands
        (-30, 10000, 0, PaymentState.APPROVED, 0),
    ],
)
def test_receipt_states(status, price, cancelled, state, canceled):
    assert receipt_state(status, Decimal(price), Decimal(cancelled)) == (state, Decimal(canceled))
    result = gateway().payment(receipt(status=status, price=price, cancelled_price=cancelled))
    assert (result.state, result.canceled_amount) == (state, Decimal(canceled))


def test_virtual_account_details():
    result = gateway().payment(fixture("receipt_vbank_issued"))
    assert result.state == PaymentState.WAITING_FOR_DEPOSIT and result.method == "가상계좌"
    assert result.expires_at == datetime.datetime(2024, 6, 18, 23, 59, 59, tzinfo=KST)
    assert result.pg_data == {
        "vbank_account_number": "56211105948412",
        "vbank_bank_code": "088",
        "vbank_holder": "한우집",
        "vbank_due_date": "2024-06-18T23:59:59+09:00",
    }


def test_failure_details_and_currency():
    failed = gateway().payment(fixture("receipt_approval_failed"))
    assert (failed.state, failed.failure_code, failed.failure_message) == (PaymentState.FAILED, "STATUS_-2", "승인실패")
    assert gateway().payment(receipt(currency="usd", price=Decimal("10.50"))).currency == "USD"
    assert gateway().payment(receipt(unit="krw")).currency == "KRW"


@pytest.mark.parametrize(
    "change",
    [
        {"status": 7},
        {"status": 11},  # a billing key, not a payment
        {"status": "1"},
        {"status": True},
        {"price": "lots"},
        {"price": None},
        {"price": -1},
        {"cancelled_price": 20000},
        {"cancelled_price": -5},
        {"currency": "WON!"},
        {"receipt_id": ""},
        {"order_id": None},
    ],
)
def test_an_unreadable_receipt_is_an_unknown_outcome_not_a_guess(change):
    with pytest.raises(GatewayUnavailable) as info:
        gateway().payment(receipt(**change))
    assert info.value.outcome_unknown and info.value.code == "MALFORMED_REPLY"


def test_a_legacy_v1_envelope_is_never_read_as_a_receipt():
    """Seed 004's ``POST /cancel.json`` reply (API_BASE without /v2) is not a v2 Receipt."""
    with pytest.raises(GatewayUnavailable):
        gateway().payment(fixture("legacy_v1_cancel"))


@pytest.mark.parametrize(
    "name, state, canceled",
    [
        ("receipt_confirm_waiting", PaymentState.AUTHENTICATED, 0),
        ("receipt_paid_card", PaymentState.APPROVED, 0),
        ("receipt_partial_cancelled", PaymentState.PARTIAL_CANCELED, 3000),
        ("receipt_cancelled", PaymentState.CANCELED, 10000),
        ("receipt_vbank_issued", PaymentState.WAITING_FOR_DEPOSIT, 0),
        ("receipt_vbank_paid", PaymentState.APPROVED, 0),
        ("receipt_approval_failed", PaymentState.FAILED, 0),
    ],
)
def test_every_recorded_receipt_reads(name, state, canceled):
    result = gateway().payment(fixture(name))
    assert (result.state, result.canceled_amount, result.amount) == (state, Decimal(canceled), Decimal(10000))


# --- errors --------------------------------------------------------------------------------


def reply(status, data, text=""):
    return type("Reply", (), {"status": status, "data": data, "text": text, "ok": 200 <= status < 300})()


@pytest.mark.parametrize(
    "verb, status, code, expected, unknown",
    [
        ("lookup", 404, "RC_NOT_FOUND", NotFound, False),
        ("confirm", 400, "RC_CONFIRM_FAILED", PaymentDeclined, False),
        ("confirm", 400, "SOMETHING_NEW", InvalidRequest, False),
        ("confirm", 401, "TOKEN_KEY_INVALID", AuthenticationFailed, False),
        ("confirm", 403, "SOMETHING_NEW", AuthenticationFailed, False),
        ("confirm", 500, "SOMETHING_NEW", GatewayUnavailable, True),
        ("confirm", 409, "SOMETHING_NEW", GatewayUnavailable, True),
        ("cancel", 400, "CANCEL_ALREADY_DONE", AlreadyCanceled, False),
        ("cancel", 400, "3708", AlreadyCanceled, False),
        ("cancel", 400, "CANCEL_PRICE_OVER", CancelRefused, False),
        ("cancel", 400, "RC_CONFIRM_FAILED", CancelRefused, False),
        ("cancel", 400, "SOMETHING_NEW", CancelRefused, False),
        ("cancel", 503, "SOMETHING_NEW", GatewayUnavailable, True),
        ("lookup", 400, "CANCEL_ALREADY_DONE", InvalidRequest, False),
        ("lookup", 200, "RC_NOT_FOUND", NotFound, False),  # an error envelope with HTTP 200
    ],
)
def test_error_codes_map_onto_the_core_exceptions(verb, status, code, expected, unknown):
    error = gateway().error(reply(status, {"error_code": code, "message": "메시지"}), verb)
    assert type(error) is expected
    assert (error.code, error.http_status_from_pg, error.gateway, error.message) == (code, status, "bootpay", "메시지")
    assert error.outcome_unknown is unknown


def test_the_pgs_own_code_is_kept_in_the_message():
    error = gateway().error(
        reply(400, {"error_code": "RC_CONFIRM_FAILED", "message": "회원사 서비스 개시 안됨", "pg_error_code": "1512"}), "confirm"
    )
    assert error.message == "회원사 서비스 개시 안됨 (1512)" and error.response["pg_error_code"] == "1512"


def test_every_mapped_code_is_a_gateway_error():
    assert all(issubclass(cls, GatewayError) for cls in ERRORS.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 200, "body": "<html>oops</html>"},
        {"status": 200, "body": "[1, 2]"},
        {"status": 502, "body": "<html>Bad Gateway</html>"},
        {"status": 400, "body": "not json"},
        {"body": requests.exceptions.ReadTimeout("slow")},
    ],
)
@responses.activate
def test_malformed_or_lost_confirm_replies_are_unknown_outcomes(kwargs):
    responses.post(f"{BASE}/confirm", **kwargs)
    responses.get(LOOKUP, body=requests.exceptions.ConnectTimeout("down"))
    with pytest.raises(GatewayUnavailable) as info:
        gateway().confirm(confirm_request())
    assert info.value.outcome_unknown  # the confirm was sent: only a later lookup can tell


@responses.activate
def test_a_refusal_that_cannot_be_checked_is_an_unknown_outcome():
    responses.post(f"{BASE}/confirm", status=400, json={"error_code": "RC_CONFIRM_FAILED", "message": "x"})
    responses.get(LOOKUP, status=503, body="busy")
    with pytest.raises(GatewayUnavailable) as info:
        gateway().confirm(confirm_request())
    assert info.value.outcome_unknown and info.value.code == "RC_CONFIRM_FAILED"


# --- confirm: when the receipt decides ---------------------------------------------------------


@responses.activate
def test_a_confirm_reply_that_is_not_settled_is_followed_by_a_lookup():
    responses.post(f"{BASE}/confirm", json=receipt("receipt_confirm_waiting"))
    responses.get(LOOKUP, json=fixture("receipt_paid_card"), match=[matchers.header_matcher({"Authorization": BASIC})])
    assert gateway().confirm(confirm_request()).state == PaymentState.APPROVED
    assert [c.request.method for c in responses.calls] == ["POST", "GET"]


@responses.activate
def test_an_unreadable_confirm_reply_is_followed_by_a_lookup():
    responses.post(f"{BASE}/confirm", json={"receipt_id": RECEIPT_ID, "status": 1})
    responses.get(LOOKUP, json=fixture("receipt_paid_card"))
    result = gateway().confirm(confirm_request())
    assert result.amount == Decimal(10000) and len(responses.calls) == 2


@pytest.mark.parametrize("code", ["RC_CONFIRM_FAILED", "SOMETHING_NEW"])
@responses.activate
def test_a_refused_confirm_of_an_approved_receipt_reports_the_receipt(code):
    """A reload, a second tab, or a PG without separate approval (event done): Bootpay says no, the receipt says paid."""
    responses.post(f"{BASE}/confirm", status=400, json={"error_code": code, "message": "승인 대기 상태가 아닙니다."})
    responses.get(LOOKUP, json=fixture("receipt_paid_card"))
    assert gateway().confirm(confirm_request()).state == PaymentState.APPROVED


@responses.activate
def test_a_refused_confirm_of_an_unapproved_receipt_stands():
    responses.post(f"{BASE}/confirm", status=400, json={"error_code": "RC_CONFIRM_FAILED", "message": "회원사 서비스 개시 안됨"})
    responses.get(LOOKUP, json=fixture("receipt_confirm_waiting"))
    with pytest.raises(PaymentDeclined) as info:
        gateway().confirm(confirm_request())
    assert info.value.code == "RC_CONFIRM_FAILED"


@responses.activate
def test_an_unknown_refusal_of_a_failed_receipt_is_a_decline():
    responses.post(f"{BASE}/confirm", status=400, json={"error_code": "SOMETHING_NEW", "message": "승인 실패"})
    responses.get(LOOKUP, json=fixture("receipt_approval_failed"))
    with pytest.raises(PaymentDeclined):
        gateway().confirm(confirm_request())


@responses.activate
def test_a_receipt_still_being_approved_is_an_unknown_outcome():
    responses.post(f"{BASE}/confirm", status=400, json={"error_code": "SOMETHING_NEW", "message": "승인 중"})
    responses.get(LOOKUP, json=receipt(status=3, status_locale="승인중"))
    with pytest.raises(GatewayUnavailable) as info:
        gateway().confirm(confirm_request())
    assert info.value.outcome_unknown and info.value.code == "APPROVING"


@responses.activate
def test_a_missing_receipt_is_not_found_without_a_lookup():
    responses.post(f"{BASE}/confirm", status=404, json={"error_code": "RC_NOT_FOUND", "message": "영수증 정보를 찾지 못했습니다."})
    with pytest.raises(NotFound):
        gateway().confirm(confirm_request())
    assert len(responses.calls) == 1


# --- cancel and lookup ---------------------------------------------------------------------------


@responses.activate
def test_full_cancel_omits_cancel_price():
    responses.post(
        f"{BASE}/cancel",
        json=fixture("receipt_cancelled"),
        match=[
            matchers.body_matcher(
                f'{{"receipt_id": "{RECEIPT_ID}", "cancel_id": "240611abcdEFGH1234ijkl-cancel-t1", '
                '"cancel_username": "buyer", "cancel_message": "고객 요청"}'
            ),
            headers(),
        ],
    )
    result = gateway().cancel(cancel_request(Decimal(10000)))
    assert result.pg_cancel_id == "240611abcdEFGH1234ijkl-cancel-t1" and result.amount == Decimal(10000)
    assert result.payment.state == PaymentState.CANCELED and result.payment.balance == 0


@responses.activate
def test_partial_cancel_sends_cancel_price_and_cancel_id():
    """Seed 004: 3,000 of a 10,000 payment, with a cancel_id so that a repeat cannot refund twice."""
    responses.post(
        f"{BASE}/cancel",
        json=fixture("receipt_partial_cancelled"),
        match=[
            matchers.body_matcher(
                f'{{"receipt_id": "{RECEIPT_ID}", "cancel_id": "k-3000", "cancel_username": "staff", '
                '"cancel_message": "고객 요청", "cancel_price": 3000}'
            ),
            headers(),
        ],
    )
    result = gateway().cancel(cancel_request(Decimal(3000), key="k-3000", by="staff"))
    assert result.amount == Decimal(3000) and result.pg_cancel_id == "k-3000"
    assert result.payment.state == PaymentState.PARTIAL_CANCELED and result.payment.canceled_amount == Decimal(3000)


@responses.activate
def test_refund_account_of_a_virtual_account():
    """The typed RefundAccount goes out in Bootpay's own refund fields (no phone: Bootpay takes none)."""
    account = RefundAccount(bank="088", number="110123456789", holder="박부트", phone="01012345678")
    responses.post(
        f"{BASE}/cancel",
        json=fixture("receipt_cancelled"),
        match=[
            matchers.json_params_matcher(
                {
                    "receipt_id": RECEIPT_ID,
                    "cancel_id": "240611abcdEFGH1234ijkl-cancel-t1",
                    "cancel_username": "buyer",
                    "cancel_message": "고객 요청",
                    "refund": {"bank_account": "110123456789", "bank_username": "박부트", "bank_code": "088"},
                }
            )
        ],
    )
    gateway().cancel(cancel_request(Decimal(10000), refund_account=account))


def test_a_repeated_cancel_id_refunds_once():
    """Bootpay refuses a second cancel with the same cancel_id; the receipt shows one refund, and that is this cancel."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        api = BootpayAPI(rsps)
        api.receipts[RECEIPT_ID] = {**fixture("receipt_paid_card"), "_virtual": False}
        gw = gateway()
        request = cancel_request(Decimal(3000), key="k-same")
        first = gw.cancel(request)
        assert first.payment.canceled_amount == Decimal(3000)
        again = gw.cancel(request)  # the retry after a lost answer: refused by Bootpay, done by the receipt
        assert again.pg_cancel_id == "k-same" and again.amount == Decimal(3000)
        assert again.payment.canceled_amount == Decimal(3000)
        assert [json.loads(r.body)["cancel_id"] for r in api.sent("cancel")] == ["k-same", "k-same"]
        assert api.receipts[RECEIPT_ID]["cancelled_price"] == 3000


@responses.activate
def test_a_refused_repeat_of_an_applied_cancel_id_is_done_after_a_lookup():
    """Wire gap 5: RC_CANCEL_FAILED for a cancel_id already applied -> one lookup -> the cancel is reported done."""
    responses.post(
        f"{BASE}/cancel",
        status=400,
        json={"error_code": "RC_CANCEL_FAILED", "message": "이미 처리된 cancel_id 입니다."},
        match=[
            matchers.json_params_matcher(
                {
                    "receipt_id": RECEIPT_ID,
                    "cancel_id": "k-3000",
                    "cancel_username": "buyer",
                    "cancel_message": "고객 요청",
                    "cancel_price": 3000,
                }
            ),
            headers(),
        ],
    )
    responses.get(LOOKUP, json=fixture("receipt_partial_cancelled"), match=[matchers.header_matcher({"Authorization": BASIC})])
    partial = fixture("receipt_partial_cancelled")
    done = gateway().cancel(cancel_request(Decimal(partial["cancelled_price"]), key="k-3000"))
    assert done.pg_cancel_id == "k-3000" and done.amount == Decimal(partial["cancelled_price"])
    assert done.payment.state == PaymentState.PARTIAL_CANCELED
    assert [(c.request.method, c.request.url) for c in responses.calls] == [("POST", f"{BASE}/cancel"), ("GET", LOOKUP)]


@pytest.mark.parametrize(
    "code, message",
    [("CANCEL_ALREADY_DONE", "이미 취소된 결제건입니다."), ("RC_CANCEL_FAILED", "기취소된 건입니다."), ("SOMETHING_NEW", "?")],
)
@responses.activate
def test_already_cancelled_at_bootpay(code, message):
    """A refusal that names no cancel_id, the receipt cancelled: cancelled elsewhere, the PG's view is applied."""
    responses.post(f"{BASE}/cancel", status=400, json={"error_code": code, "message": message})
    responses.get(LOOKUP, json=fixture("receipt_cancelled"))
    with pytest.raises(AlreadyCanceled) as info:
        gateway().cancel(cancel_request(Decimal(10000)))
    assert info.value.code == code


@responses.activate
def test_a_cancel_id_refusal_with_more_given_back_than_asked_is_already_cancelled():
    responses.post(f"{BASE}/cancel", status=400, json={"error_code": "RC_CANCEL_FAILED", "message": "이미 처리된 cancel_id 입니다."})
    responses.get(LOOKUP, json=fixture("receipt_cancelled"))
    with pytest.raises(AlreadyCanceled):
        gateway().cancel(cancel_request(Decimal(3000)))


@responses.activate
def test_a_refused_cancel_stands_when_the_receipt_shows_nothing_given_back():
    responses.post(f"{BASE}/cancel", status=400, json={"error_code": "RC_CANCEL_FAILED", "message": "PG사 취소 실패"})
    responses.get(LOOKUP, json=fixture("receipt_paid_card"))
    with pytest.raises(CancelRefused) as info:
        gateway().cancel(cancel_request(Decimal(3000)))
    assert info.value.message == "PG사 취소 실패"


@responses.activate
def test_a_lost_cancel_answer_is_unknown_and_not_looked_up():
    responses.post(f"{BASE}/cancel", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(GatewayUnavailable) as info:
        gateway().cancel(cancel_request(Decimal(3000)))
    assert info.value.outcome_unknown and len(responses.calls) == 1


@responses.activate
def test_lookup_by_receipt_id_only():
    responses.get(LOOKUP, json=fixture("receipt_paid_card"), match=[matchers.header_matcher({"Authorization": BASIC})])
    assert gateway().lookup(payment_id=RECEIPT_ID, order=ORDER).payment_id == RECEIPT_ID
    assert "Content-Type" not in responses.calls[0].request.headers and responses.calls[0].request.body is None
    with pytest.raises(NotFound):
        gateway().lookup(order=ORDER)  # no receipt id: Bootpay cannot search by order number
    assert len(responses.calls) == 1


@responses.activate
def test_lookup_of_an_unknown_receipt_is_not_found_and_ids_are_quoted():
    responses.get(
        f"{BASE}/receipt/nope?lookup_user_data=false",
        status=404,
        json={"error_code": "RC_NOT_FOUND", "message": "영수증 정보를 찾지 못했습니다."},
    )
    responses.get(f"{BASE}/receipt/a%2Fb%3Fc?lookup_user_data=false", json=receipt(receipt_id="a/b?c"))
    with pytest.raises(NotFound):
        gateway().lookup(payment_id="nope")
    assert gateway().lookup(payment_id="a/b?c").payment_id == "a/b?c"


# --- webhooks ---------------------------------------------------------------------------------------


def test_parse_webhook_trusts_nothing_and_keys_duplicates():
    body = json.dumps(fixture("webhook_payment_completed"), ensure_ascii=False).encode()
    event = gateway().parse_webhook({}, body)
    assert (event.event_type, event.payment_id, event.order_number) == ("PAYMENT_COMPLETED", RECEIPT_ID, "240611abcdEFGH1234ijkl")
    assert not event.verified and event.payment is None
    assert event.event_id.startswith("bootpay-") and event.event_id == gateway().parse_webhook({}, body).event_id


def test_two_partial_cancels_are_two_events_but_a_retry_is_one():
    first = fixture("webhook_partial_cancelled")
    second = {**first, "cancelled_price": 5000}
    ids = {gateway().parse_webhook({}, json.dumps(b).encode()).event_id for b in (first, second, {**first, "cancelled_price": 3000.0})}
    assert len(ids) == 2  # 3000 and 3000.0 are the same delivery
    full = gateway().parse_webhook({}, json.dumps(fixture("webhook_cancelled")).encode())
    assert full.event_id not in ids
    issued = gateway().parse_webhook({}, json.dumps(fixture("webhook_vbank_issued")).encode())
    paid = gateway().parse_webhook({}, json.dumps(fixture("webhook_payment_completed")).encode())
    assert issued.event_id != paid.event_id


def test_webhooks_without_webhook_type_branch_on_status():
    body = {k: v for k, v in fixture("webhook_payment_completed").items() if k != "webhook_type"}
    event = gateway().parse_webhook({}, json.dumps(body).encode())
    assert event.event_type == "STATUS_1" and event.payment_id == RECEIPT_ID


@pytest.mark.parametrize("body", [{"receipt_id": "r1", "status": 11}, {"receipt_id": "r1", "webhook_type": "BILLING_KEY_ISSUED"}])
def test_other_products_are_parsed_with_nothing_to_apply(body):
    event = gateway().parse_webhook({}, json.dumps(body).encode())
    assert not event.payment_id and not event.order_number


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"status": 1}', b'{"receipt_id": 5}', b'{"receipt_id": ""}'])
def test_malformed_webhooks_are_refused(body):
    with pytest.raises(WebhookVerificationError):
        gateway().parse_webhook({}, body)


def test_the_webhook_answer_is_what_bootpay_requires():
    assert BootpayGateway.webhook_ack == (200, "application/json", b'{"success": true}')
    assert json.loads(BootpayGateway.webhook_ack[2]) == {"success": True}


@responses.activate
def test_a_webhook_is_verified_by_fetching_the_receipt():
    responses.get(LOOKUP, json=fixture("receipt_confirm_waiting"))
    event = gateway().parse_webhook({}, json.dumps(fixture("webhook_payment_completed")).encode())  # claims status 1
    verified = gateway().verify_webhook(event, ORDER)
    assert verified.verified and verified.payment.state == PaymentState.AUTHENTICATED  # Bootpay's word, not the body's


@pytest.mark.parametrize(
    "option, address, allowed",
    [
        (None, "192.0.2.1", True),
        (False, None, True),
        (True, "223.130.82.17", True),
        (True, "223.130.83.1", False),
        (True, None, False),
        (True, "not an ip", False),
        (["10.0.0.0/8", "223.130.82.0/24"], "10.1.2.3", True),
        (["10.0.0.0/8"], "223.130.82.17", False),
        ("223.130.82.0/24", "223.130.82.17", False),  # a bare string is refused as misconfigured
    ],
)
def test_webhook_source_allowlist(option, address, allowed):
    gw = gateway(WEBHOOK_ALLOWED_IPS=option)
    if allowed:
        assert gw.check_webhook_source(address, {}) is None
    else:
        with pytest.raises(WebhookVerificationError):
            gw.check_webhook_source(address, {"X-Forwarded-For": "223.130.82.17"})  # never trusted by itself


# --- system checks and capabilities -------------------------------------------------------------------


def ids(messages):
    return sorted(m.id for m in messages)


def test_checks():
    assert ids(gateway().check(debug=True)) == []
    assert ids(legacy().check(debug=False)) == []
    assert (
        ids(
            BootpayGateway("bootpay", {"APPLICATION_ID": APPLICATION_ID, "PRIVATE_KEY": PRIVATE_KEY, "CLIENT_KEY": CLIENT_KEY}).check(
                debug=True
            )
        )
        == []
    )
    assert [(m.id, m.msg) for m in BootpayGateway("bootpay", {}).check(debug=True)] == [
        ("django_pgpay.E004", "PGPAY[\"GATEWAYS\"]['bootpay'][\"OPTIONS\"]['CLIENT_KEY'] is not set."),
        ("django_pgpay.E004", "PGPAY[\"GATEWAYS\"]['bootpay'][\"OPTIONS\"]['SECRET_KEY'] is not set."),
    ]
    assert [m.msg for m in BootpayGateway("bootpay", {"APPLICATION_ID": APPLICATION_ID}).check(debug=True)] == [
        "PGPAY[\"GATEWAYS\"]['bootpay'][\"OPTIONS\"]['PRIVATE_KEY'] is not set."
    ]
    no_browser_key = BootpayGateway("bootpay", {"APPLICATION_ID": APPLICATION_ID, "PRIVATE_KEY": PRIVATE_KEY}).check(debug=True)
    assert [m.msg for m in no_browser_key] == ["PGPAY[\"GATEWAYS\"]['bootpay'][\"OPTIONS\"]['WEB_APPLICATION_ID'] is not set."]
    assert ids(gateway(OPEN_TYPE="modal").check(debug=True)) == ["django_pgpay.E301"]
    assert ids(gateway(WEBHOOK_ALLOWED_IPS=["223.130.82.0/33"]).check(debug=True)) == ["django_pgpay.E302"]
    assert ids(gateway(WEBHOOK_ALLOWED_IPS=True).check(debug=True)) == []
    assert ids(gateway(APPLICATION_ID=APPLICATION_ID, PRIVATE_KEY=PRIVATE_KEY).check(debug=True)) == ["django_pgpay.W301"]
    assert all(isinstance(m, checks.CheckMessage) for m in no_browser_key)


def test_capabilities():
    assert gateway().capabilities() == {
        "supports_partial_cancel": True,
        "supports_idempotency_key": True,
        "signs_webhooks": False,
        "supports_lookup_by_order": False,
        "supports_virtual_account": True,
        "sends_deposit_deadline": False,
        "requires_confirm_call": True,
    }


@responses.activate
def test_a_cancel_answered_in_progress_is_an_unknown_outcome_not_a_refund():
    """A review of the Bootpay gateway (7 December 2026): a cancel answered with the legacy status -30
    (취소진행중) was counted as money given back, although Bootpay may still fail it (-20)."""
    in_progress = {**fixture("receipt_paid_card"), "status": -30}
    responses.post(f"{BASE}/cancel", json=in_progress)
    with pytest.raises(GatewayUnavailable) as caught:
        gateway().cancel(cancel_request(Decimal(10000)))
    assert caught.value.code == "CANCEL_IN_PROGRESS" and caught.value.outcome_unknown
    responses.replace(responses.POST, f"{BASE}/cancel", json={**fixture("receipt_paid_card"), "status": -20})
    with pytest.raises(CancelRefused) as refused:
        gateway().cancel(cancel_request(Decimal(10000)))
    assert refused.value.code == "CANCEL_FAILED" and not refused.value.outcome_unknown
