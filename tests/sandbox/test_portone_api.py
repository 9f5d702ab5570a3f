"""The emulated PortOne V1 API over a real socket, driven by a client written from portone.md, checked against PortOne's OpenAPI file."""

from datetime import datetime, timedelta

import pytest

from django_pgpay.sandbox import control
from django_pgpay.sandbox import portone as emulated
from django_pgpay.sandbox.base import ApiError
from django_pgpay.sandbox.portone.common import KST
from tests import portone_specs

from .conftest import AVAILABLE_APPS
from .portone_helpers import IMP_KEY, IMP_SECRET, portone_hook, sandbox_portone, v1  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


def valid(definition, body):
    problems = portone_specs.errors(portone_specs.v1_reply(definition), body)
    assert problems == [], problems


def envelope(response):
    return response.status_code, response.json()["code"], response.json()["message"]


def paid(v1, merchant_uid="order-portone-0001", amount=20000, **kwargs):
    assert v1.prepare(merchant_uid, amount).json()["code"] == 0
    rsp = emulated.pay(merchant_uid, amount, **kwargs)
    assert rsp["success"] is True, rsp
    return rsp["imp_uid"]


# --- token --------------------------------------------------------------------------------------


def test_token_is_the_same_until_it_expires(v1):
    first = v1.get_token()
    assert first.status_code == 200
    valid("AuthResponse", first.json())
    token = first.json()["response"]
    assert token["expired_at"] - token["now"] == 1800 and len(token["access_token"]) == 40
    assert v1.get_token().json()["response"]["access_token"] == token["access_token"]
    control.advance_clock(minutes=31)
    renewed = v1.get_token().json()["response"]
    assert renewed["access_token"] != token["access_token"]
    # The old token is refused once expired.
    assert v1.payment("imp_000000000000", token=token["access_token"]).status_code == 401
    assert emulated.token_requests() == 3


def test_token_is_extended_five_minutes_when_under_a_minute_is_left(v1):
    token = v1.get_token().json()["response"]
    control.advance_clock(seconds=1800 - 30)
    again = v1.get_token().json()["response"]
    assert again["access_token"] == token["access_token"]
    assert again["expired_at"] == token["expired_at"] + 300


def test_token_taken_as_a_form_too(v1):
    response = v1.session.post(v1.base + "/users/getToken", data={"imp_key": IMP_KEY, "imp_secret": IMP_SECRET}, timeout=10)
    assert response.json()["code"] == 0


@pytest.mark.parametrize("key, secret", [(IMP_KEY, "wrong"), ("test_other", IMP_SECRET), ("", "")])
def test_wrong_key_or_secret_is_401_with_the_envelope(v1, key, secret):
    response = v1.get_token(key, secret)
    assert response.status_code == 401
    assert response.json()["code"] == -1 and response.json()["response"] is None
    assert emulated.token_requests() == 0


@pytest.mark.parametrize("style", ["raw", "bearer", "X-ImpTokenHeader"])
def test_the_token_is_taken_raw_or_as_bearer(v1, style):
    imp_uid = paid(v1)
    headers = {
        "raw": {"Authorization": v1.token},
        "bearer": {"Authorization": f"Bearer {v1.token}"},
        "X-ImpTokenHeader": {"Authorization": "", "X-ImpTokenHeader": v1.token},
    }[style]
    response = v1.session.get(f"{v1.base}/payments/{imp_uid}?include_sandbox=true", headers=headers, timeout=10)
    assert response.status_code == 200 and response.json()["response"]["imp_uid"] == imp_uid


@pytest.mark.parametrize("token", ["", "not-a-token"])
def test_missing_or_unknown_token_is_401(v1, token):
    response = v1.call("GET", "/payments/imp_000000000000", token=token)
    assert envelope(response) == (401, -1, "Unauthorized")


def test_a_revoked_token_is_401_and_a_new_one_is_issued(v1):
    old = v1.token
    assert emulated.revoke_tokens() == 1
    assert v1.call("GET", "/payments/imp_000000000000").status_code == 401
    assert v1.get_token().json()["response"]["access_token"] != old


# --- prepare ------------------------------------------------------------------------------------


def test_prepare_register_read_and_change(v1):
    response = v1.prepare("order-prep-0001", 20000, currency="KRW")
    valid("PaymentPrepareResponse", response.json())
    assert response.json()["response"] == {"merchant_uid": "order-prep-0001", "amount": 20000, "currency": "KRW"}
    again = v1.prepare("order-prep-0001", 30000)
    assert envelope(again) == (200, 1, "이미 사전등록된 merchant_uid입니다.")
    assert v1.call("GET", "/payments/prepare/order-prep-0001").json()["response"]["amount"] == 20000
    changed = v1.call("PUT", "/payments/prepare", json={"merchant_uid": "order-prep-0001", "amount": 30000})
    assert changed.json()["response"]["amount"] == 30000
    missing = v1.call("GET", "/payments/prepare/order-none")
    assert missing.status_code == 404 and missing.json()["code"] == -1
    assert v1.call("PUT", "/payments/prepare", json={"merchant_uid": "order-none", "amount": 1}).status_code == 404


def test_prepare_overwrites_when_configured(v1, settings, sandbox_portone):
    sandbox_portone(PREPARE_AGAIN="overwrite")
    v1.prepare("order-prep-0002", 20000)
    assert v1.prepare("order-prep-0002", 25000).json()["response"]["amount"] == 25000


def test_prepare_as_a_form(v1):
    response = v1.call("POST", "/payments/prepare", data={"merchant_uid": "order-prep-form", "amount": "15000"})
    assert response.json()["response"]["amount"] == 15000


def test_prepare_blocks_a_window_with_another_amount(v1):
    v1.prepare("order-prep-0003", 20000)
    rsp = emulated.pay("order-prep-0003", 100)
    assert rsp["success"] is False and rsp["imp_uid"] is None
    assert rsp["error_msg"].startswith("[결제검증]")
    assert v1.find("order-prep-0003").status_code == 404  # no payment was made
    # The developer fault lets the next window through (seed 003's tampered browser).
    emulated.allow_other_amount("order-prep-0003")
    assert emulated.pay("order-prep-0003", 100)["success"] is True
    assert emulated.pay("order-prep-0004", 100)["success"] is True  # nothing registered: nothing checked


def test_merchant_uid_longer_than_40_is_refused(v1):
    response = v1.prepare("x" * 41, 1000)
    assert response.status_code == 400 and response.json()["code"] == -1


# --- payments -------------------------------------------------------------------------------------


def test_a_paid_payment_matches_the_openapi_file(v1):
    imp_uid = paid(v1, buyer_name="박포트", buyer_email="buyer@example.com")
    response = v1.payment(imp_uid)
    assert response.status_code == 200
    valid("PaymentResponse", response.json())
    payment = response.json()["response"]
    assert payment["status"] == "paid" and payment["amount"] == 20000 and payment["cancel_amount"] == 0
    assert payment["imp_uid"] == imp_uid and payment["merchant_uid"] == "order-portone-0001"
    assert payment["sandbox"] is True and payment["currency"] == "KRW" and payment["pay_method"] == "card"
    assert payment["paid_at"] >= payment["started_at"] > 0 and payment["apply_num"] and payment["pg_tid"]
    assert payment["buyer_name"] == "박포트" and payment["receipt_url"].startswith("http")
    assert b'"amount": 20000' in response.content or b'"amount":20000' in response.content


def test_sandbox_payments_need_include_sandbox(v1, settings, sandbox_portone):
    imp_uid = paid(v1)
    assert envelope(v1.payment(imp_uid, include_sandbox=False)) == (404, -1, "존재하지 않는 결제정보입니다.")
    assert v1.find("order-portone-0001", include_sandbox=False).status_code == 404
    sandbox_portone(TEST_CHANNEL=False)
    live = paid(v1, "order-portone-live")
    assert v1.payment(live, include_sandbox=False).json()["response"]["sandbox"] is False


def test_unknown_payment_is_404(v1):
    response = v1.payment("imp_999999999999")
    assert envelope(response) == (404, -1, "존재하지 않는 결제정보입니다.")
    valid("PaymentResponse", response.json())


def test_find_returns_the_latest_attempt_and_find_all_every_one(v1):
    v1.prepare("order-attempts", 20000)
    failed = emulated.pay("order-attempts", 20000, outcome="close")
    assert failed["success"] is False and failed["error_msg"] == "사용자가 결제를 취소하셨습니다"
    control.advance_clock(seconds=5)
    ok = emulated.pay("order-attempts", 20000)
    latest = v1.find("order-attempts").json()["response"]
    assert latest["imp_uid"] == ok["imp_uid"] and latest["status"] == "paid"
    first = v1.call("GET", "/payments/find/order-attempts/failed", params={"include_sandbox": "true"}).json()["response"]
    assert first["imp_uid"] == failed["imp_uid"] and first["fail_reason"] == "사용자가 결제를 취소하셨습니다"
    oldest = v1.call("GET", "/payments/find/order-attempts", params={"include_sandbox": "true", "sorting": "started"}).json()["response"]
    assert oldest["imp_uid"] == failed["imp_uid"]
    every = v1.call("GET", "/payments/findAll/order-attempts", params={"include_sandbox": "true"})
    valid("PaymentListResponse", every.json())
    assert [p["imp_uid"] for p in every.json()["response"]["list"]] == [ok["imp_uid"], failed["imp_uid"]]


def test_virtual_account_is_ready_then_paid(v1):
    imp_uid = paid(v1, pay_method="vbank")
    payment = v1.payment(imp_uid).json()["response"]
    assert payment["status"] == "ready" and payment["vbank_num"] and payment["vbank_date"] > payment["vbank_issued_at"] > 0
    emulated.deposit(imp_uid)
    assert v1.payment(imp_uid).json()["response"]["status"] == "paid"


@pytest.mark.parametrize("pattern", ["%Y%m%d%H%M", "%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S"])
def test_a_virtual_account_is_due_at_the_requests_vbank_due(v1, pattern):
    """IMP.request_pay's vbank_due (Korean time) is the account's vbank_date; the bank takes no transfer after it."""
    due = (control.now() + timedelta(days=1)).astimezone(KST).replace(second=0, microsecond=0)
    imp_uid = paid(v1, pay_method="vbank", vbank_due=due.strftime(pattern))
    valid("PaymentResponse", v1.payment(imp_uid).json())
    payment = v1.payment(imp_uid).json()["response"]
    assert payment["status"] == "ready" and payment["vbank_date"] == int(due.timestamp())
    control.advance_clock(due - control.now() + timedelta(seconds=1))
    with pytest.raises(ApiError) as refused:
        emulated.deposit(imp_uid)
    assert "deadline" in refused.value.message
    assert emulated.payment_state(imp_uid)["status"] == "ready"


def test_a_date_alone_is_the_end_of_that_day(v1):
    day = (control.now() + timedelta(days=2)).astimezone(KST).date()
    imp_uid = paid(v1, pay_method="vbank", vbank_due=day.strftime("%Y%m%d"))
    end_of_day = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=KST)
    assert v1.payment(imp_uid).json()["response"]["vbank_date"] == int(end_of_day.timestamp())
    emulated.deposit(imp_uid)  # before the deadline: taken
    assert v1.payment(imp_uid).json()["response"]["status"] == "paid"


def test_no_virtual_account_after_its_vbank_due(v1):
    """An account asked for with a vbank_due already past is refused; a card payment of the same request is not."""
    past = (control.now() - timedelta(minutes=1)).astimezone(KST).strftime("%Y%m%d%H%M")
    assert v1.prepare("order-late-vbank", 20000).json()["code"] == 0
    rsp = emulated.pay("order-late-vbank", 20000, pay_method="vbank", vbank_due=past)
    assert rsp["success"] is False and rsp["error_code"] == "F0001" and "vbank_due" in rsp["error_msg"]
    assert v1.payment(rsp["imp_uid"]).json()["response"]["status"] == "failed"
    card = paid(v1, "order-late-card", pay_method="card", vbank_due=past)
    assert v1.payment(card).json()["response"]["status"] == "paid"
    with pytest.raises(ApiError) as malformed:
        emulated.pay("order-late-card", 20000, vbank_due="31/12/2026")
    assert "vbank_due" in malformed.value.message


# --- cancel ------------------------------------------------------------------------------------------


def test_partial_then_full_cancel_with_checksums(v1):
    imp_uid = paid(v1)
    part = v1.cancel(imp_uid=imp_uid, amount=5000, checksum=20000, reason="부분 취소")
    assert part.status_code == 200
    valid("PaymentResponse", part.json())
    payment = part.json()["response"]
    assert payment["status"] == "paid" and payment["cancel_amount"] == 5000
    [entry] = payment["cancel_history"]
    assert entry["amount"] == 5000 and entry["reason"] == "부분 취소" and entry["cancellation_id"]
    rest = v1.cancel(imp_uid=imp_uid, checksum=15000, reason="나머지").json()["response"]
    assert rest["status"] == "cancelled" and rest["cancel_amount"] == 20000
    assert len({e["cancellation_id"] for e in rest["cancel_history"]}) == 2


def test_checksum_mismatch_is_http_200_code_1_and_cancels_nothing(v1):
    imp_uid = paid(v1)
    response = v1.cancel(imp_uid=imp_uid, amount=5000, checksum=19000, reason="x")
    assert response.status_code == 200 and response.json()["code"] == 1 and response.json()["response"] is None
    valid("PaymentResponse", response.json())
    assert v1.payment(imp_uid).json()["response"]["cancel_amount"] == 0


def test_cancel_refusals(v1):
    imp_uid = paid(v1)
    assert envelope(v1.cancel(imp_uid="imp_000000000001", merchant_uid="order-portone-0001", reason="x")) == (
        200,
        1,
        "취소할 결제건이 존재하지 않습니다.",
    )
    assert v1.cancel(imp_uid=imp_uid, amount=20001, reason="x").json()["code"] == 1
    assert v1.cancel(merchant_uid="order-portone-0001", reason="by merchant_uid").json()["response"]["status"] == "cancelled"
    assert envelope(v1.cancel(imp_uid=imp_uid, reason="again")) == (200, 1, "이미 전액취소된 주문입니다.")


def test_amount_zero_cancels_the_whole_balance(v1):
    imp_uid = paid(v1)
    assert v1.cancel(imp_uid=imp_uid, amount=0, reason="전액").json()["response"]["cancel_amount"] == 20000


def test_deposited_virtual_account_refund_needs_the_account(v1):
    imp_uid = paid(v1, pay_method="vbank")
    emulated.deposit(imp_uid)
    assert v1.cancel(imp_uid=imp_uid, reason="환불").json()["code"] == 1
    refund = {"refund_holder": "박포트", "refund_bank": "004", "refund_account": "12345678901234"}
    assert v1.cancel(imp_uid=imp_uid, reason="환불", **refund).json()["response"]["status"] == "cancelled"


# --- webhooks -----------------------------------------------------------------------------------------


def test_webhooks_on_payment_issue_deposit_and_console_cancel_not_on_api_cancel(v1, portone_hook):
    card = paid(v1)
    vbank = paid(v1, "order-portone-vbank", pay_method="vbank")
    emulated.deposit(vbank)
    v1.cancel(imp_uid=card, amount=1000, reason="api")  # no webhook for API cancels
    console = emulated.cancel_in_console(card, 2000)
    emulated.pay("order-portone-declined", 1000, outcome="decline")  # none for failures
    control.deliver_webhooks()
    bodies = [d["json"] for d in portone_hook.deliveries]
    cancellation_id = console["cancel_history"][-1]["cancellation_id"]
    assert bodies == [
        {"imp_uid": card, "merchant_uid": "order-portone-0001", "status": "paid"},
        {"imp_uid": vbank, "merchant_uid": "order-portone-vbank", "status": "ready"},
        {"imp_uid": vbank, "merchant_uid": "order-portone-vbank", "status": "paid"},
        {"imp_uid": card, "merchant_uid": "order-portone-0001", "status": "cancelled", "cancellation_id": cancellation_id},
    ]
    assert all(d["headers"]["Content-Type"] == "application/json" for d in portone_hook.deliveries)
    assert not any(name.lower().startswith("webhook-") for name in portone_hook.deliveries[0]["headers"])  # V1 signs nothing


def test_api_cancel_with_enable_webhook_and_form_webhooks(v1, portone_hook, settings, sandbox_portone):
    sandbox_portone(WEBHOOK_CONTENT_TYPE="application/x-www-form-urlencoded")
    imp_uid = paid(v1)
    control.deliver_webhooks()
    v1.cancel(imp_uid=imp_uid, reason="api", enable_webhook=True)
    control.deliver_webhooks()
    raws = [d["raw"] for d in portone_hook.deliveries]
    assert raws[0] == f"imp_uid={imp_uid}&merchant_uid=order-portone-0001&status=paid".encode()
    assert raws[1].startswith(f"imp_uid={imp_uid}&merchant_uid=order-portone-0001&status=cancelled&cancellation_id=".encode())


def test_notice_url_wins_over_the_console_url(v1, portone_hook, live_server):
    v1.prepare("order-notice", 1000)
    emulated.pay("order-notice", 1000, notice_url=live_server.url + "/test-receiver/?from=notice")
    [webhook] = control.pending_webhooks("portone")
    assert webhook.url.endswith("/test-receiver/?from=notice")


def test_webhooks_are_delivered_once_unless_retries_are_asked_for(v1, portone_hook, settings, sandbox_portone):
    portone_hook.answer_next(500, 500)
    paid(v1)
    [first] = control.deliver_webhooks()
    assert first.status == "failed"  # PortOne delivers once by default
    sandbox_portone(WEBHOOK_RETRIES=5)
    emulated.cancel_in_console(v1.find("order-portone-0001").json()["response"]["imp_uid"], 1000)
    [second] = control.deliver_webhooks()
    assert second.status == "pending"
    control.advance_clock(timedelta(seconds=61))
    assert [r.status for r in control.deliver_due_webhooks()] == ["delivered"]


# --- faults -----------------------------------------------------------------------------------------------


def test_error_after_commit_on_cancel_loses_the_answer_not_the_cancel(v1):
    imp_uid = paid(v1)
    control.arm_fault("portone", "cancel", "error_after")
    response = v1.cancel(imp_uid=imp_uid, checksum=20000, reason="x")
    assert response.status_code == 500 and response.json()["code"] == -1
    assert v1.payment(imp_uid).json()["response"]["status"] == "cancelled"
    # The checksum stops a blind retry from cancelling twice.
    assert v1.cancel(imp_uid=imp_uid, checksum=20000, reason="x").json()["code"] == 1


def test_error_before_changes_nothing(v1):
    imp_uid = paid(v1)
    control.arm_fault("portone", "cancel", "error_before", status=503)
    assert v1.cancel(imp_uid=imp_uid, reason="x").status_code == 503
    assert v1.payment(imp_uid).json()["response"]["cancel_amount"] == 0


def test_html_body_instead_of_json(v1):
    imp_uid = paid(v1)
    control.arm_fault("portone", "lookup", "malformed_before", match=imp_uid)
    response = v1.payment(imp_uid)
    assert response.status_code == 200 and response.text.startswith("<html>")
    assert v1.payment(imp_uid).json()["code"] == 0


def test_timeout_before_on_token(v1):
    control.arm_fault("portone", "token", "timeout_before", delay=0.3)
    response = v1.get_token()
    assert response.status_code == 504 and emulated.token_requests() == 0


def test_faults_on_prepare(v1):
    control.arm_fault("portone", "prepare", "error_after", match="order-prep-fault")
    assert v1.prepare("order-prep-fault", 1000).status_code == 500
    assert v1.call("GET", "/payments/prepare/order-prep-fault").json()["response"]["amount"] == 1000


def test_unknown_paths_and_methods(v1):
    assert envelope(v1.call("GET", "/payments/status/paid/extra/x"))[0] == 404
    assert v1.call("GET", "/payments/cancel").status_code == 405
