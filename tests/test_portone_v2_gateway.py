"""PortOneV2Gateway alone: the exact requests, V2's typed errors, and Standard Webhooks signatures."""

import base64
import datetime
import json
import time
from decimal import Decimal

import pytest
import responses
from django.utils import timezone
from responses import matchers

from django_pgpay.exceptions import (
    AlreadyCanceled,
    AlreadyProcessed,
    AuthenticationFailed,
    CancelRefused,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    OperationRefused,
    WebhookVerificationError,
)
from django_pgpay.gateways import standard_webhooks
from django_pgpay.gateways.portone import PG_DATA_PREPARED_V2, V2_ERRORS, PortOneV2Gateway
from django_pgpay.gateways.results import CancelRequest, CheckoutUrls, ConfirmRequest, OrderSnapshot, PaymentState
from tests.portone_support import API_SECRET, CHANNEL_KEY, PORTONE_V2, STORE_ID, V2_AUTH, V2_BASE, WEBHOOK_SECRET, v2_fixture

ORDER = OrderSnapshot(
    order_number="240611abcdEFGH1234ijkl",
    amount=Decimal(20000),
    currency="KRW",
    order_name="한우집 예약",
    buyer_name="박포트",
    buyer_email="buyer@example.com",
    buyer_phone="01012345678",
)
PID = ORDER.order_number
URLS = CheckoutUrls(
    success_url="https://shop.example/pay/portone-v2/return/",
    fail_url="https://shop.example/pay/portone-v2/fail/",
    webhook_url="https://shop.example/pay/portone-v2/webhook/",
)
JSON_AUTH = {"Authorization": V2_AUTH, "Content-Type": "application/json"}


def gateway(**options):
    return PortOneV2Gateway("portone-v2", {**PORTONE_V2["OPTIONS"], **options})


def cancel_request(amount, *, balance=Decimal(20000)):
    return CancelRequest(
        order=ORDER, payment_id=PID, amount=amount, currency="KRW", reason="고객 예약취소", idempotency_key="k", balance_before=balance
    )


def body(value) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- checkout and return -----------------------------------------------------------------


@responses.activate
def test_checkout_pre_registers_then_gives_request_payment_its_parameters():
    pre = responses.post(
        f"{V2_BASE}/payments/{PID}/pre-register",
        json={},
        match=[
            matchers.header_matcher(JSON_AUTH),
            matchers.body_matcher(body({"storeId": STORE_ID, "totalAmount": 20000, "currency": "KRW"})),
        ],
    )
    result = gateway().checkout(ORDER, URLS)
    assert pre.call_count == 1
    assert result.template_name == "django_pgpay/checkout/portone_v2.html"
    assert result.script_url == "https://cdn.portone.io/v2/browser-sdk.js"
    assert result.params == {
        "returnUrl": URLS.success_url,
        "request": {
            "storeId": STORE_ID,
            "channelKey": CHANNEL_KEY,
            "paymentId": PID,
            "orderName": "한우집 예약",
            "totalAmount": 20000,
            "currency": "CURRENCY_KRW",
            "payMethod": "CARD",
            "redirectUrl": URLS.success_url,
            "noticeUrls": [URLS.webhook_url],
            "customer": {"fullName": "박포트", "email": "buyer@example.com", "phoneNumber": "01012345678"},
        },
    }
    assert result.pg_data == {PG_DATA_PREPARED_V2: "20000 KRW"}
    again = gateway().checkout(OrderSnapshot(**{**ORDER.__dict__, "pg_data": dict(result.pg_data)}), URLS)
    assert again.pg_data == {} and pre.call_count == 1


@responses.activate
def test_a_virtual_account_window_asks_for_an_account_due_by_the_deposit_deadline():
    """PAY_METHOD VIRTUAL_ACCOUNT and a deposit deadline: virtualAccount.accountExpiry.validHours, rounded down; under an hour refused."""
    responses.post(f"{V2_BASE}/payments/{PID}/pre-register", json={})
    order = OrderSnapshot(**{**ORDER.__dict__, "deposit_deadline": timezone.now() + datetime.timedelta(hours=49, minutes=59)})
    request = gateway(PAY_METHOD="VIRTUAL_ACCOUNT").checkout(order, URLS).params["request"]
    assert request["virtualAccount"] == {"accountExpiry": {"validHours": 49}}
    assert "virtualAccount" not in gateway().checkout(order, URLS).params["request"]  # a card window has no account to date
    late = OrderSnapshot(**{**ORDER.__dict__, "deposit_deadline": timezone.now() + datetime.timedelta(minutes=30)})
    with pytest.raises(OperationRefused) as refused:
        gateway(PAY_METHOD="VIRTUAL_ACCOUNT").checkout(late, URLS)
    assert refused.value.code == "DEPOSIT_DEADLINE_PASSED"


@responses.activate
def test_usd_amounts_are_minor_units():
    pre = responses.post(f"{V2_BASE}/payments/{PID}/pre-register", json={})
    order = OrderSnapshot(**{**ORDER.__dict__, "amount": Decimal("10.50"), "currency": "USD"})
    result = gateway().checkout(order, URLS)
    assert json.loads(pre.calls[0].request.body)["totalAmount"] == 1050
    assert result.params["request"]["totalAmount"] == 1050 and result.params["request"]["currency"] == "CURRENCY_USD"


@responses.activate
def test_pre_register_of_a_paid_payment_is_already_processed():
    responses.post(
        f"{V2_BASE}/payments/{PID}/pre-register", status=409, json={"type": "ALREADY_PAID", "message": "결제가 이미 완료되었습니다."}
    )
    with pytest.raises(AlreadyProcessed):
        gateway().checkout(ORDER, URLS)


def test_parse_return():
    gw = gateway()
    ok = gw.parse_return({"paymentId": PID})
    assert (ok.payment_id, ok.order_number, ok.error_code) == (PID, PID, "")
    assert gw.parse_return({"payment_id": PID}).payment_id == PID
    failed = gw.parse_return({"paymentId": PID, "code": "FAILURE_TYPE_PG", "message": "사용자가 결제를 취소했습니다."})
    assert (failed.error_code, failed.order_number) == ("FAILURE_TYPE_PG", PID)
    with pytest.raises(InvalidRequest):
        gw.parse_return({})


# --- confirm and lookup ------------------------------------------------------------------------


@responses.activate
def test_confirm_is_get_payment_with_the_store_id():
    responses.get(
        f"{V2_BASE}/payments/{PID}",
        json=v2_fixture("payment_paid"),
        match=[matchers.header_matcher({"Authorization": V2_AUTH}), matchers.query_param_matcher({"storeId": STORE_ID})],
    )
    result = gateway().confirm(ConfirmRequest(order=ORDER, payment_id=PID, amount=ORDER.amount, currency="KRW", idempotency_key="k"))
    assert result.state == PaymentState.APPROVED
    assert (result.payment_id, result.order_number, result.amount, result.currency, result.method) == (
        PID,
        PID,
        Decimal(20000),
        "KRW",
        "card",
    )
    assert result.approved_at == datetime.datetime(2024, 6, 11, 6, 14, 12, 511000, tzinfo=datetime.timezone.utc)
    assert result.pg_data == {
        "portone_transaction_id": "01900c4b-7f3a-2b1e-9c61-1a2b3c4d5e6f",
        "portone_pg_tx_id": "tviva20240611151412Bx5z1",
    }
    assert result.receipt_url.startswith("https://dashboard.tosspayments.com/")


@responses.activate
def test_lookup_by_order_uses_the_order_number_as_payment_id():
    responses.get(f"{V2_BASE}/payments/{PID}", json=v2_fixture("payment_paid"))
    assert gateway().lookup(order=ORDER).payment_id == PID
    with pytest.raises(NotFound):
        gateway().lookup()


@pytest.mark.parametrize(
    "name, state, canceled",
    [
        ("payment_paid", PaymentState.APPROVED, 0),
        ("payment_partial_cancelled", PaymentState.PARTIAL_CANCELED, 5000),
        ("payment_cancelled", PaymentState.CANCELED, 20000),
        ("payment_ready", PaymentState.PENDING, 0),
        ("payment_failed", PaymentState.FAILED, 0),
        ("payment_virtual_account_issued", PaymentState.WAITING_FOR_DEPOSIT, 0),
    ],
)
def test_every_recorded_payment_reads(name, state, canceled):
    result = gateway().payment(v2_fixture(name))
    assert result.state == state and result.canceled_amount == Decimal(canceled)
    assert sum(c.amount for c in result.cancels) == Decimal(canceled)


def test_details_of_failures_virtual_accounts_and_cancels():
    failed = gateway().payment(v2_fixture("payment_failed"))
    assert (failed.failure_code, failed.failure_message) == ("REJECT_CARD_COMPANY", "카드사 승인 거절")
    account = gateway().payment(v2_fixture("payment_virtual_account_issued"))
    assert account.method == "virtual_account" and account.pg_data["vbank_account_number"] == "T0309260000123"
    assert account.expires_at == datetime.datetime(2024, 6, 18, 14, 59, 59, tzinfo=datetime.timezone.utc)
    cancelled = gateway().payment(v2_fixture("payment_cancelled"))
    assert [c.pg_cancel_id for c in cancelled.cancels] == ["cancellation-0190-0001", "cancellation-0190-0002"]
    requested = {**v2_fixture("payment_partial_cancelled")}
    requested["cancellations"] = [{**requested["cancellations"][0], "status": "REQUESTED"}]
    assert gateway().payment(requested).cancels == ()  # not done yet


def test_test_channel_payments_pay_nothing_unless_included():
    data = {**v2_fixture("payment_paid"), "channel": {**v2_fixture("payment_paid")["channel"], "type": "TEST"}}
    with pytest.raises(NotFound) as caught:
        gateway().payment(data)
    assert caught.value.code == "SANDBOX_PAYMENT"
    assert gateway(INCLUDE_SANDBOX=True).payment(data).pg_data["portone_sandbox"] is True


@pytest.mark.parametrize(
    "change",
    [{"status": "WEIRD"}, {"amount": {"total": "20000"}}, {"amount": {"total": 100, "cancelled": 200}}, {"id": None}, {"currency": None}],
)
def test_an_unreadable_payment_is_an_unknown_outcome(change):
    with pytest.raises(GatewayUnavailable) as caught:
        gateway().payment({**v2_fixture("payment_paid"), **change})
    assert caught.value.code == "MALFORMED_REPLY"


# --- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount, sent",
    [
        (Decimal(20000), {"storeId": STORE_ID, "reason": "고객 예약취소", "currentCancellableAmount": 20000}),
        (Decimal(5000), {"storeId": STORE_ID, "reason": "고객 예약취소", "amount": 5000, "currentCancellableAmount": 20000}),
    ],
)
@responses.activate
def test_cancel_sends_current_cancellable_amount(amount, sent):
    responses.post(
        f"{V2_BASE}/payments/{PID}/cancel",
        json=v2_fixture("cancel_succeeded"),
        match=[matchers.header_matcher(JSON_AUTH), matchers.body_matcher(body(sent))],
    )
    result = gateway().cancel(cancel_request(amount))
    assert (result.pg_cancel_id, result.amount, result.payment) == ("cancellation-0190-0001", Decimal(5000), None)


@responses.activate
def test_a_requested_cancellation_is_not_done_yet():
    responses.post(f"{V2_BASE}/payments/{PID}/cancel", json=v2_fixture("cancel_requested"))
    with pytest.raises(GatewayUnavailable) as caught:
        gateway().cancel(cancel_request(Decimal(5000)))
    assert caught.value.code == "CANCELLATION_REQUESTED" and caught.value.outcome_unknown


@pytest.mark.parametrize(
    "kind, exception",
    [
        ("UNAUTHORIZED", AuthenticationFailed),
        ("FORBIDDEN", AuthenticationFailed),
        ("INVALID_REQUEST", InvalidRequest),
        ("PAYMENT_NOT_FOUND", NotFound),
        ("PAYMENT_NOT_PAID", CancelRefused),
        ("PAYMENT_ALREADY_CANCELLED", AlreadyCanceled),
        ("CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN", CancelRefused),
        ("CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT", CancelRefused),
        ("MAX_CANCEL_COUNT_REACHED", CancelRefused),
        ("PG_PROVIDER", CancelRefused),
    ],
)
@responses.activate
def test_typed_cancel_errors(kind, exception):
    error = v2_fixture("errors")[kind]
    reply = {
        "type": kind,
        "message": error["message"],
        **({"pgCode": error["pgCode"], "pgMessage": error["pgMessage"]} if "pgCode" in error else {}),
    }
    responses.post(f"{V2_BASE}/payments/{PID}/cancel", status=error["status"], json=reply)
    with pytest.raises(exception) as caught:
        gateway().cancel(cancel_request(Decimal(5000)))
    assert type(caught.value) is exception and caught.value.code == kind and not caught.value.outcome_unknown
    assert API_SECRET not in repr(caught.value) and API_SECRET not in str(caught.value.response)
    if kind == "PG_PROVIDER":
        assert "ERR-9999" in caught.value.message


@pytest.mark.parametrize("status, reply", [(500, {"type": "INTERNAL", "message": "x"}), (503, None), (409, {"message": "no type"})])
@responses.activate
def test_untyped_or_server_errors_are_unknown_outcomes(status, reply):
    responses.post(f"{V2_BASE}/payments/{PID}/cancel", status=status, json=reply)
    with pytest.raises(GatewayUnavailable) as caught:
        gateway().cancel(cancel_request(Decimal(5000)))
    assert caught.value.outcome_unknown


def test_every_documented_error_type_is_mapped():
    from tests import portone_specs

    errors = portone_specs.v2_operation("post", "/payments/{paymentId}/cancel")["responses"]
    assert set(errors) == {"200", "400", "401", "403", "404", "409", "502"}
    types = set(portone_specs._v2()["spec"]["components"]["schemas"]["CancelPaymentError"]["discriminator"]["mapping"])
    assert types <= set(V2_ERRORS), types - set(V2_ERRORS)


# --- webhooks: Standard Webhooks signatures ---------------------------------------------------


def delivery(payment_id=PID, kind="Transaction.Paid", *, secret=WEBHOOK_SECRET, stamp=None, msg_id="msg_2f1c"):
    raw = body(
        {
            "type": kind,
            "timestamp": "2024-06-11T06:14:13.000Z",
            "data": {"paymentId": payment_id, "storeId": STORE_ID, "transactionId": "tx-1"},
        }
    ).encode()
    stamp = int(time.time()) if stamp is None else stamp
    headers = {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(stamp),
        "Webhook-Signature": standard_webhooks.sign(secret, msg_id, stamp, raw),
    }
    return headers, raw


def test_a_signed_delivery_is_accepted_and_the_official_sdk_agrees():
    from portone_server_sdk import webhook as sdk

    headers, raw = delivery()
    event = gateway().parse_webhook(headers, raw)
    assert (event.event_id, event.event_type, event.payment_id, event.order_number, event.verified, event.payment) == (
        "portone-v2-msg_2f1c",
        "Transaction.Paid",
        PID,
        PID,
        True,
        None,
    )
    verified = sdk.verify(WEBHOOK_SECRET, raw.decode(), {k.lower(): v for k, v in headers.items()})
    assert type(verified).__name__ == "WebhookTransactionPaid" and verified.data.payment_id == PID


def test_the_sdk_signs_what_we_verify():
    from portone_server_sdk.webhook import _sign

    raw = v2_fixture_bytes = json.dumps(v2_fixture("webhook_transaction_paid")).encode()
    stamp = int(time.time())
    signature = "v1," + base64.b64encode(_sign(WEBHOOK_SECRET, "msg_sdk", str(stamp), v2_fixture_bytes.decode())).decode()
    assert signature == standard_webhooks.sign(WEBHOOK_SECRET, "msg_sdk", stamp, raw)
    event = gateway().parse_webhook(
        {"webhook-id": "msg_sdk", "webhook-timestamp": str(stamp), "webhook-signature": f"v1,bm9wZQ== {signature}"}, raw
    )
    assert event.payment_id == PID


@pytest.mark.parametrize(
    "tamper, code",
    [
        (lambda h, b: (h, b.replace(b"Transaction.Paid", b"Transaction.Cancelled")), "NO_MATCHING_SIGNATURE"),
        (lambda h, b: ({**h, "Webhook-Id": "msg_other"}, b), "NO_MATCHING_SIGNATURE"),
        (lambda h, b: ({**h, "Webhook-Signature": h["Webhook-Signature"].replace("v1,", "v2,")}, b), "NO_MATCHING_SIGNATURE"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "Webhook-Signature"}, b), "MISSING_HEADERS"),
        (lambda h, b: ({**h, "Webhook-Timestamp": "soon"}, b), "INVALID_TIMESTAMP"),
    ],
)
def test_tampered_deliveries_are_refused(tamper, code):
    headers, raw = tamper(*delivery())
    with pytest.raises(WebhookVerificationError) as caught:
        gateway().parse_webhook(headers, raw)
    assert caught.value.code == code


# Five seconds either side of the 300-second limit: a loaded machine may take a second between signing and checking.
@pytest.mark.parametrize("offset, accepted", [(-305, False), (-295, True), (295, True), (305, False)])
def test_the_timestamp_tolerance_is_300_seconds_both_ways(offset, accepted):
    from portone_server_sdk import webhook as sdk

    headers, raw = delivery(stamp=int(time.time()) + offset)
    lower = {k.lower(): v for k, v in headers.items()}
    if accepted:
        assert gateway().parse_webhook(headers, raw).payment_id == PID
        sdk.verify(WEBHOOK_SECRET, raw.decode(), lower)
    else:
        with pytest.raises(WebhookVerificationError):
            gateway().parse_webhook(headers, raw)
        with pytest.raises(sdk.WebhookVerificationError):
            sdk.verify(WEBHOOK_SECRET, raw.decode(), lower)


def test_a_delivery_signed_with_another_secret_is_refused_and_rotation_works():
    other = "whsec_" + base64.b64encode(b"someone else's secret").decode()
    headers, raw = delivery(secret=other)
    with pytest.raises(WebhookVerificationError):
        gateway().parse_webhook(headers, raw)
    assert gateway(WEBHOOK_SECRETS=[WEBHOOK_SECRET, other]).parse_webhook(headers, raw).payment_id == PID


def test_without_a_webhook_secret_every_delivery_is_refused():
    headers, raw = delivery()
    with pytest.raises(WebhookVerificationError) as caught:
        gateway(WEBHOOK_SECRETS="").parse_webhook(headers, raw)
    assert caught.value.code == "NO_WEBHOOK_SECRET"


def test_non_transaction_events_name_no_payment():
    headers, raw = delivery(kind="BillingKey.Issued")
    event = gateway().parse_webhook(headers, raw)
    assert (event.event_type, event.payment_id, event.order_number) == ("BillingKey.Issued", "", "")


# --- configuration checks ----------------------------------------------------------------------


def test_checks():
    assert gateway().check(debug=True) == []
    ids = [m.id for m in gateway(WEBHOOK_SECRETS=None, INCLUDE_SANDBOX=True).check(debug=False)]
    assert ids == ["django_pgpay.W121", "django_pgpay.W122"]
    assert [m.id for m in gateway(WEBHOOK_SECRETS="whsec_not base64!").check(debug=True)] == ["django_pgpay.E121"]
    missing = PortOneV2Gateway("portone-v2", {}).check(debug=True)
    assert [m.id for m in missing] == ["django_pgpay.E004"] * 3 + ["django_pgpay.W121"]
    assert API_SECRET not in repr(gateway())
