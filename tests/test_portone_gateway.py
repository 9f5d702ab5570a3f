"""PortOneV1Gateway alone: its token, the exact requests it sends and how it reads PortOne's replies."""

import datetime
import json
import threading
from dataclasses import replace
from decimal import Decimal

import pytest
import responses
from django.core import checks
from responses import matchers

from django_pgpay.exceptions import (
    AlreadyCanceled,
    AuthenticationFailed,
    CancelRefused,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    WebhookVerificationError,
)
from django_pgpay.gateways.portone import PG_DATA_PREPARED_V1, AccessTokenCache, PortOneV1Gateway
from django_pgpay.gateways.results import CancelRequest, CheckoutUrls, ConfirmRequest, OrderSnapshot, PaymentState, RefundAccount
from tests.portone_support import CHANNEL_KEY, IMP_KEY, IMP_SECRET, MERCHANT_CODE, PORTONE, TIMEOUT, V1_BASE, PortOneV1API, v1_fixture

ORDER = OrderSnapshot(
    order_number="240611abcdEFGH1234ijkl",
    amount=Decimal(20000),
    currency="KRW",
    order_name="한우집 예약",
    buyer_name="박포트",
    buyer_email="buyer@example.com",
    buyer_phone="010-1234-5678",
)
IMP_UID = "imp_448280090638"
TOKEN = v1_fixture("token")["response"]["access_token"]
URLS = CheckoutUrls(
    success_url="https://shop.example/pay/portone/return/",
    fail_url="https://shop.example/pay/portone/fail/",
    webhook_url="https://shop.example/pay/portone/webhook/",
)
UTC = datetime.timezone.utc


def gateway(**options):
    return PortOneV1Gateway("portone", {**PORTONE["OPTIONS"], **options})


def token_reply():
    """``getToken`` answering the recorded token, and expecting exactly the documented body."""
    return responses.post(
        f"{V1_BASE}/users/getToken",
        json=v1_fixture("token"),
        match=[
            matchers.body_matcher(json.dumps({"imp_key": IMP_KEY, "imp_secret": IMP_SECRET})),
            matchers.header_matcher({"Content-Type": "application/json"}),
        ],
    )


def authorized(*more):
    return [matchers.header_matcher({"Authorization": TOKEN}), *more]


def cancel_request(amount, *, balance=Decimal(20000), order=ORDER):
    return CancelRequest(
        order=order,
        payment_id=IMP_UID,
        amount=amount,
        currency="KRW",
        reason="고객 예약취소",
        idempotency_key="k-1",
        balance_before=balance,
    )


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield PortOneV1API(rsps)


# --- the access token -------------------------------------------------------------------


@responses.activate
def test_the_token_is_fetched_once_and_sent_raw_as_the_official_client_does():
    token = token_reply()
    lookup = responses.get(f"{V1_BASE}/payments/{IMP_UID}", json=v1_fixture("payment_paid_card"), match=authorized())
    gw = gateway()
    for _ in range(3):
        assert gw.lookup(payment_id=IMP_UID).state == PaymentState.APPROVED
    assert token.call_count == 1 and lookup.call_count == 3
    assert responses.calls[1].request.headers["Authorization"] == TOKEN  # no "Bearer ": the raw token
    assert "include_sandbox" not in responses.calls[1].request.url


def test_a_hundred_lookups_cost_one_token_request(api, make_booking):
    gw = gateway()
    booking = make_booking()
    imp_uids = [api.pay(booking) for _ in range(100)]
    for imp_uid in imp_uids:
        gw.lookup(payment_id=imp_uid)
    assert len(api.sent("token")) == 1 and len(api.sent("lookup")) == 100


def test_the_token_is_replaced_a_minute_before_it_expires(api, make_booking, monkeypatch):
    gw = gateway()
    imp_uid = api.pay(make_booking())
    clock = [1000.0]
    monkeypatch.setattr(gw, "clock", lambda: clock[0])
    gw.lookup(payment_id=imp_uid)
    clock[0] += 1800 - 61  # PortOne's 30 minutes, less our margin, not yet reached
    gw.lookup(payment_id=imp_uid)
    assert len(api.sent("token")) == 1
    clock[0] += 2
    gw.lookup(payment_id=imp_uid)
    assert len(api.sent("token")) == 2


def test_a_short_lived_token_is_used_for_half_its_life():
    fetched = []
    cache = AccessTokenCache(lambda: (fetched.append(1) or f"t{len(fetched)}", 90.0))
    assert cache.get() == "t1" and cache.get() == "t1" and len(fetched) == 1
    cache._token = type(cache._token)(value="t1", use_until=0.0)
    assert cache.get() == "t2"
    assert "t2" not in repr(cache) and "t2" not in repr(cache._token)


def test_a_401_mid_flow_refreshes_the_token_once(api, make_booking):
    gw = gateway()
    imp_uid = api.pay(make_booking())
    first = gw.lookup(payment_id=imp_uid)
    api.expire_token()  # PortOne has forgotten it
    again = gw.lookup(payment_id=imp_uid)
    assert first == again
    tokens = [r.headers["Authorization"] for r in api.sent("lookup")]
    assert len(api.sent("token")) == 2 and len(tokens) == 3
    assert tokens[0] == tokens[1] != tokens[2]


def test_a_401_after_the_refresh_is_a_configuration_error(api, make_booking):
    gw = gateway()
    imp_uid = api.pay(make_booking())
    gw.lookup(payment_id=imp_uid)
    api.fail_next("lookup", status=401, body=v1_fixture("errors")["unauthorized"]["body"])
    api.fail_next("lookup", status=401, body=v1_fixture("errors")["unauthorized"]["body"])
    with pytest.raises(AuthenticationFailed):
        gw.lookup(payment_id=imp_uid)
    assert len(api.sent("lookup")) == 3 and len(api.sent("token")) == 2


@pytest.mark.django_db(transaction=True)
def test_threads_that_need_a_token_together_make_one_request(api, make_booking):
    gw = gateway()
    imp_uid = api.pay(make_booking())
    api.token_delay = 0.3
    barrier = threading.Barrier(8)
    results, failures = [], []

    def body():
        try:
            barrier.wait()
            results.append(gw.lookup(payment_id=imp_uid).payment_id)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=body) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == [] and results == [imp_uid] * 8
    assert len(api.sent("token")) == 1


@responses.activate
def test_bad_keys_are_an_authentication_error_that_names_no_secret():
    responses.post(f"{V1_BASE}/users/getToken", status=401, json=v1_fixture("errors")["unauthorized"]["body"])
    with pytest.raises(AuthenticationFailed) as caught:
        gateway().lookup(payment_id=IMP_UID)
    assert IMP_SECRET not in str(caught.value) and IMP_SECRET not in repr(caught.value)
    assert IMP_SECRET not in repr(gateway()) and IMP_KEY not in repr(gateway())


@responses.activate
def test_a_token_that_cannot_be_had_means_nothing_was_sent():
    responses.post(f"{V1_BASE}/users/getToken", body=TIMEOUT)
    with pytest.raises(GatewayUnavailable) as caught:
        gateway().cancel(cancel_request(Decimal(20000)))
    assert caught.value.code == "TOKEN_UNAVAILABLE" and caught.value.sent is False and not caught.value.outcome_unknown
    assert [c.request.url for c in responses.calls] == [f"{V1_BASE}/users/getToken"]


# --- checkout and return ------------------------------------------------------------------


@responses.activate
def test_checkout_registers_the_amount_then_gives_imp_request_pay_its_parameters():
    token_reply()
    prepare = responses.post(
        f"{V1_BASE}/payments/prepare",
        json=v1_fixture("prepare"),
        match=authorized(matchers.body_matcher('{"merchant_uid": "240611abcdEFGH1234ijkl", "amount": 20000, "currency": "KRW"}')),
    )
    result = gateway(JS_SDK_URL="http://127.0.0.1:8000/sandbox/portone/iamport.js").checkout(ORDER, URLS)
    assert prepare.call_count == 1
    assert result.kind == "widget" and result.template_name == "django_pgpay/checkout/portone.html"
    assert result.script_url == "http://127.0.0.1:8000/sandbox/portone/iamport.js"
    assert result.params == {
        "merchantCode": MERCHANT_CODE,
        "returnUrl": URLS.success_url,
        "request": {
            "pay_method": "card",
            "channelKey": CHANNEL_KEY,
            "merchant_uid": ORDER.order_number,
            "name": "한우집 예약",
            "amount": 20000,
            "currency": "KRW",
            "m_redirect_url": URLS.success_url,
            "notice_url": URLS.webhook_url,
            "buyer_email": "buyer@example.com",
            "buyer_name": "박포트",
            "buyer_tel": "010-1234-5678",
        },
    }
    assert result.pg_data == {PG_DATA_PREPARED_V1: "20000 KRW"}
    assert gateway().checkout(ORDER, URLS).script_url == "https://cdn.iamport.kr/v1/iamport.js"


@pytest.mark.parametrize(
    ("deadline", "vbank_due"),
    [
        # 18:00:59 in Seoul is 09:00:59 UTC: to the minute, rounded down.
        (datetime.datetime(2026, 12, 8, 9, 0, 59, tzinfo=datetime.timezone.utc), "202612081800"),
        (datetime.datetime(2026, 12, 31, 15, 30, tzinfo=datetime.timezone.utc), "202701010030"),  # the next day in Korea
    ],
)
def test_the_shops_deposit_deadline_is_the_accounts_vbank_due(api, deadline, vbank_due):
    """IMP.request_pay gets vbank_due (YYYYMMDDhhmm, Korean time), whatever the method: PortOne uses it for a virtual account."""
    order = replace(ORDER, deposit_deadline=deadline)
    assert gateway().checkout(order, URLS).params["request"]["vbank_due"] == vbank_due
    assert "vbank_due" not in gateway().checkout(ORDER, URLS).params["request"]


def test_legacy_pg_and_no_notice_url(api):
    options = {**PORTONE["OPTIONS"], "PG": "html5_inicis.INIpayTest", "NOTICE_URL": False, "PAY_METHOD": "vbank"}
    del options["CHANNEL_KEY"]
    request = PortOneV1Gateway("portone", options).checkout(ORDER, URLS).params["request"]
    assert request["pg"] == "html5_inicis.INIpayTest" and "channelKey" not in request
    assert "notice_url" not in request and request["pay_method"] == "vbank"


def test_an_order_prepared_before_is_not_registered_again(api):
    order = OrderSnapshot(**{**ORDER.__dict__, "pg_data": {PG_DATA_PREPARED_V1: "20000 KRW"}})
    result = gateway().checkout(order, URLS)
    assert result.pg_data == {} and api.sent("prepare") == []


@pytest.mark.parametrize("held, put", [(20000, False), (15000, True)])
def test_a_registration_portone_already_holds_is_read_back_and_corrected(api, held, put):
    api.prepared[ORDER.order_number] = {"merchant_uid": ORDER.order_number, "amount": held, "currency": "KRW"}
    result = gateway().checkout(ORDER, URLS)
    assert [r.method for r in api.sent("prepare")] == ["POST", "GET", *(["PUT"] if put else [])]
    assert api.sent("prepare")[1].url == f"{V1_BASE}/payments/prepare/{ORDER.order_number}"
    assert api.prepared[ORDER.order_number]["amount"] == 20000
    assert result.pg_data == {PG_DATA_PREPARED_V1: "20000 KRW"}


def test_a_portone_that_overwrites_registrations_is_fine_too(api):
    api.prepare_again = "overwrite"
    api.prepared[ORDER.order_number] = {"merchant_uid": ORDER.order_number, "amount": 100, "currency": "KRW"}
    gateway().checkout(ORDER, URLS)
    assert [r.method for r in api.sent("prepare")] == ["POST"] and api.prepared[ORDER.order_number]["amount"] == 20000


def test_an_order_number_longer_than_merchant_uid_allows_is_refused_before_any_call(api):
    long = OrderSnapshot(**{**ORDER.__dict__, "order_number": "x" * 41})
    with pytest.raises(InvalidRequest) as caught:
        gateway().checkout(long, URLS)
    assert caught.value.code == "ORDER_NUMBER_TOO_LONG" and api.requests == []


def test_parse_return():
    gw = gateway()
    ok = gw.parse_return({"imp_uid": IMP_UID, "merchant_uid": ORDER.order_number})
    assert (ok.payment_id, ok.order_number, ok.amount, ok.error_code) == (IMP_UID, ORDER.order_number, None, "")
    failed = gw.parse_return(
        {"imp_uid": IMP_UID, "merchant_uid": ORDER.order_number, "error_code": "F400", "error_msg": "사용자가 결제를 취소하셨습니다"}
    )
    assert (failed.error_code, failed.error_message) == ("F400", "사용자가 결제를 취소하셨습니다")
    legacy = gw.parse_return({"imp_uid": IMP_UID, "merchant_uid": ORDER.order_number, "imp_success": "false"})
    assert legacy.error_code == "PAYMENT_FAILED"
    for bad in ({"merchant_uid": ORDER.order_number}, {"imp_uid": IMP_UID}, {}):
        with pytest.raises(InvalidRequest):
            gw.parse_return(bad)


# --- confirm (the verification) and lookups ---------------------------------------------------


@responses.activate
def test_confirm_is_a_lookup_by_imp_uid():
    token_reply()
    responses.get(
        f"{V1_BASE}/payments/{IMP_UID}", json=v1_fixture("payment_paid_card"), match=authorized(matchers.query_string_matcher(""))
    )
    request = ConfirmRequest(order=ORDER, payment_id=IMP_UID, amount=ORDER.amount, currency="KRW", idempotency_key="k")
    result = gateway().confirm(request)
    assert [c.request.method for c in responses.calls] == ["POST", "GET"]
    assert result.state == PaymentState.APPROVED
    assert (result.payment_id, result.order_number, result.amount, result.currency) == (IMP_UID, ORDER.order_number, Decimal(20000), "KRW")
    assert result.method == "card" and result.receipt_url.startswith("https://iniweb.inicis.com/")
    assert result.approved_at == datetime.datetime.fromtimestamp(1718086452, tz=UTC)
    assert result.pg_data == {"portone_pg_provider": "html5_inicis", "portone_pg_tid": "StdpayCARDINIpayTest20240611151412345678"}
    assert result.cancels == () and result.canceled_amount == 0


@responses.activate
def test_confirm_refuses_a_payment_of_another_order():
    token_reply()
    responses.get(f"{V1_BASE}/payments/{IMP_UID}", json=v1_fixture("payment_paid_card"))
    other = OrderSnapshot(**{**ORDER.__dict__, "order_number": "240611zzzzZZZZ9999zzzz"})
    with pytest.raises(InvalidRequest) as caught:
        gateway().confirm(ConfirmRequest(order=other, payment_id=IMP_UID, amount=other.amount, currency="KRW", idempotency_key="k"))
    assert caught.value.code == "PAYMENT_ORDER_MISMATCH"


@responses.activate
def test_lookup_by_merchant_uid_and_include_sandbox():
    token_reply()
    find = responses.get(
        f"{V1_BASE}/payments/find/{ORDER.order_number}",
        json=v1_fixture("payment_paid_card"),
        match=authorized(matchers.query_param_matcher({"include_sandbox": "true"})),
    )
    assert gateway(INCLUDE_SANDBOX=True).lookup(order=ORDER).payment_id == IMP_UID
    assert find.call_count == 1
    with pytest.raises(NotFound):
        gateway().lookup()


@responses.activate
def test_a_test_channel_payment_never_pays_an_order_unless_sandbox_payments_are_included():
    token_reply()
    responses.get(f"{V1_BASE}/payments/imp_900000000001", json=v1_fixture("payment_sandbox_paid"))
    with pytest.raises(NotFound) as caught:
        gateway().lookup(payment_id="imp_900000000001")
    assert caught.value.code == "SANDBOX_PAYMENT"
    result = gateway(INCLUDE_SANDBOX=True).lookup(payment_id="imp_900000000001")
    assert result.state == PaymentState.APPROVED and result.pg_data["portone_sandbox"] is True


@pytest.mark.parametrize(
    "name, state, canceled",
    [
        ("payment_paid_card", PaymentState.APPROVED, 0),
        ("payment_partial_cancelled", PaymentState.PARTIAL_CANCELED, 5000),
        ("payment_cancelled", PaymentState.CANCELED, 20000),
        ("payment_ready", PaymentState.PENDING, 0),
        ("payment_failed", PaymentState.FAILED, 0),
        ("payment_ready_vbank", PaymentState.WAITING_FOR_DEPOSIT, 0),
    ],
)
def test_every_recorded_payment_reads(name, state, canceled):
    result = gateway().payment(v1_fixture(name)["response"])
    assert result.state == state and result.canceled_amount == Decimal(canceled)
    assert sum(c.amount for c in result.cancels) == Decimal(canceled)


def test_a_virtual_account_and_its_deadline():
    result = gateway().payment(v1_fixture("payment_ready_vbank")["response"])
    assert result.expires_at == datetime.datetime.fromtimestamp(1718722799, tz=UTC)
    assert result.pg_data["vbank_account_number"] == "T0309260000123" and result.pg_data["vbank_bank_code"] == "004"
    assert result.pg_data["vbank_bank_name"] == "KB국민은행" and result.approved_at is None


def test_a_withdrawn_virtual_account_has_nothing_left():
    data = {**v1_fixture("payment_ready_vbank")["response"], "status": "cancelled", "cancel_amount": 0}
    result = gateway().payment(data)
    assert result.state == PaymentState.CANCELED and result.balance == 0


def test_cancel_history_becomes_cancel_entries():
    result = gateway().payment(v1_fixture("payment_cancelled")["response"])
    assert [(c.pg_cancel_id, c.amount) for c in result.cancels] == [
        ("cc_20240611_0001", Decimal(5000)),
        ("cc_20240611_0002", Decimal(15000)),
    ]
    assert result.cancels[1].canceled_at == datetime.datetime.fromtimestamp(1718093600, tz=UTC)
    # Without cancellation_id, an id made of the entry keeps it recognisable.
    data = v1_fixture("payment_partial_cancelled")["response"]
    data["cancel_history"][0]["cancellation_id"] = None
    (entry,) = gateway().payment(data).cancels
    assert (
        entry.pg_cancel_id == gateway().payment(data).cancels[0].pg_cancel_id == "StdpayCARDINIpayTest20240611151412345678-1718090000-5000"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"status": "pending"},
        {"amount": None},
        {"amount": "lots"},
        {"cancel_amount": 30000},
        {"amount": -1},
        {"currency": "₩"},
        {"merchant_uid": None},
        {"imp_uid": ""},
        {"cancel_history": [{"amount": "x"}]},
    ],
)
def test_an_unreadable_payment_is_an_unknown_outcome(change):
    data = {**v1_fixture("payment_paid_card")["response"], **change}
    with pytest.raises(GatewayUnavailable) as caught:
        gateway().payment(data)
    assert caught.value.code == "MALFORMED_REPLY" and caught.value.outcome_unknown
    del data["imp_uid"]
    with pytest.raises(GatewayUnavailable):
        gateway().payment(data)


def test_usd_amounts_stay_decimal():
    data = {**v1_fixture("payment_paid_card")["response"], "currency": "USD"}
    data["amount"] = Decimal("10.50")
    assert gateway().payment(data).amount == Decimal("10.50")


# --- cancel ----------------------------------------------------------------------------------


@responses.activate
def test_a_full_cancel_sends_the_balance_as_checksum_and_no_amount():
    token_reply()
    responses.post(
        f"{V1_BASE}/payments/cancel",
        json=v1_fixture("payment_cancelled"),
        match=authorized(
            matchers.body_matcher(json.dumps({"imp_uid": IMP_UID, "checksum": 20000, "reason": "고객 예약취소"}, ensure_ascii=False))
        ),
    )
    result = gateway().cancel(cancel_request(Decimal(20000)))
    assert (result.pg_cancel_id, result.amount) == ("cc_20240611_0002", Decimal(15000))  # the newest entry
    assert result.payment.state == PaymentState.CANCELED


@responses.activate
def test_a_partial_cancel_sends_amount_and_checksum():
    token_reply()
    body = {"imp_uid": IMP_UID, "amount": 5000, "checksum": 20000, "reason": "고객 예약취소"}
    responses.post(
        f"{V1_BASE}/payments/cancel",
        json=v1_fixture("payment_partial_cancelled"),
        match=authorized(matchers.body_matcher(json.dumps(body, ensure_ascii=False))),
    )
    result = gateway().cancel(cancel_request(Decimal(5000)))
    assert (result.pg_cancel_id, result.amount) == ("cc_20240611_0001", Decimal(5000))
    assert result.payment.state == PaymentState.PARTIAL_CANCELED and result.payment.balance == Decimal(15000)


@responses.activate
def test_a_virtual_account_refund_carries_the_refund_account():
    token_reply()
    responses.post(f"{V1_BASE}/payments/cancel", json=v1_fixture("payment_cancelled"))
    account = RefundAccount(bank="004", number="12345678901234", holder="박포트", phone="01012345678")
    gateway().cancel(replace(cancel_request(Decimal(20000)), refund_account=account))
    assert json.loads(responses.calls[1].request.body) == {
        "imp_uid": IMP_UID,
        "checksum": 20000,
        "reason": "고객 예약취소",
        "refund_holder": "박포트",
        "refund_bank": "004",
        "refund_account": "12345678901234",
        "refund_tel": "01012345678",
    }


@pytest.mark.parametrize(
    "error, exception",
    [
        ("already_cancelled", AlreadyCanceled),
        ("checksum_mismatch", CancelRefused),
        ("exceeds_balance", CancelRefused),
        ("cancel_not_found", NotFound),
        ("not_found", NotFound),
    ],
)
@responses.activate
def test_cancel_errors_in_a_200_envelope(error, exception):
    token_reply()
    reply = v1_fixture("errors")[error]
    responses.post(f"{V1_BASE}/payments/cancel", status=reply["status"], json=reply["body"])
    with pytest.raises(exception) as caught:
        gateway().cancel(cancel_request(Decimal(5000)))
    assert caught.value.message == reply["body"]["message"] and caught.value.code == f"PORTONE_{reply['body']['code']}"
    assert not caught.value.outcome_unknown


@pytest.mark.parametrize(
    "status, body, verb, exception",
    [
        (500, {"code": -1, "message": "server error", "response": None}, "cancel", GatewayUnavailable),
        (502, None, "cancel", GatewayUnavailable),
        (200, "<html>proxy</html>", "cancel", GatewayUnavailable),
        (200, {"code": 1, "message": "알 수 없는 오류", "response": None}, "lookup", GatewayUnavailable),
        (404, {"code": -1, "message": "존재하지 않는 결제정보입니다.", "response": None}, "lookup", NotFound),
        (400, {"code": 1, "message": "잘못된 요청", "response": None}, "prepare", InvalidRequest),
    ],
)
def test_error_mapping(status, body, verb, exception):
    from django_pgpay.gateways.http import HttpReply

    reply = HttpReply(status=status, headers={}, data=body if isinstance(body, dict) else None, text=str(body))
    gw = gateway()
    assert gw.failed(reply)
    assert type(gw.error(reply, verb)) is exception


def test_a_lost_cancel_answer_is_an_unknown_outcome(api, make_booking):
    imp_uid = api.pay(make_booking())
    api.fail_next("cancel", exception=TIMEOUT, after=True)
    request = CancelRequest(
        order=ORDER,
        payment_id=imp_uid,
        amount=Decimal(20000),
        currency="KRW",
        reason="r",
        idempotency_key="k",
        balance_before=Decimal(20000),
    )
    with pytest.raises(GatewayUnavailable) as caught:
        gateway().cancel(request)
    assert caught.value.outcome_unknown and api.balance(imp_uid) == 0
    # Sent again with the old checksum, PortOne refuses it: the checksum is the duplicate guard.
    with pytest.raises(AlreadyCanceled):
        gateway().cancel(request)


# --- webhooks ----------------------------------------------------------------------------------


def test_parse_webhook_json_and_form():
    gw = gateway()
    as_json = gw.parse_webhook({"Content-Type": "application/json"}, json.dumps(v1_fixture("webhook_paid")).encode())
    as_form = gw.parse_webhook(
        {"Content-Type": "application/x-www-form-urlencoded"}, f"imp_uid={IMP_UID}&merchant_uid={ORDER.order_number}&status=paid".encode()
    )
    for event in (as_json, as_form):
        assert (event.payment_id, event.order_number, event.event_type, event.verified, event.payment) == (
            IMP_UID,
            ORDER.order_number,
            "paid",
            False,
            None,
        )
    assert as_json.event_id == as_form.event_id  # the same notification, however encoded
    cancelled = gw.parse_webhook({}, json.dumps({**v1_fixture("webhook_paid"), "status": "cancelled", "cancellation_id": "cc_1"}).encode())
    cancelled_again = gw.parse_webhook(
        {}, json.dumps({**v1_fixture("webhook_paid"), "status": "cancelled", "cancellation_id": "cc_2"}).encode()
    )
    assert len({as_json.event_id, cancelled.event_id, cancelled_again.event_id}) == 3


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1, 2]", b'{"status": "paid"}', b"status=paid"])
def test_malformed_webhooks(body):
    with pytest.raises(WebhookVerificationError):
        gateway().parse_webhook({}, body)


# --- configuration checks ------------------------------------------------------------------------


def test_checks():
    assert gateway().check(debug=True) == []
    options = {**PORTONE["OPTIONS"], "MERCHANT_CODE": "00000000", "INCLUDE_SANDBOX": True}
    del options["CHANNEL_KEY"]
    ids = [m.id for m in PortOneV1Gateway("portone", options).check(debug=False)]
    assert ids == ["django_pgpay.E111", "django_pgpay.W111", "django_pgpay.W112"]
    missing = PortOneV1Gateway("portone", {"CHANNEL_KEY": CHANNEL_KEY}).check(debug=True)
    assert [m.msg for m in missing] == [
        f'PGPAY["GATEWAYS"][\'portone\']["OPTIONS"][{name!r}] is not set.' for name in ("IMP_KEY", "IMP_SECRET", "MERCHANT_CODE")
    ]
    assert all(m.level == checks.ERROR for m in missing)
