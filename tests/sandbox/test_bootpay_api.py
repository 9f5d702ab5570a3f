"""The emulated Bootpay REST API v2 over a real socket, seen by a client written from bootpay.md and by the official SDK."""

import base64

import pytest
import requests

from django_pgpay.sandbox import bootpay as emulated
from django_pgpay.sandbox import control

from .bootpay_fixtures import APPLICATION_ID, CLIENT_KEY, PRIVATE_KEY, SECRET_KEY, Bootpay
from .conftest import AVAILABLE_APPS

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)

RECEIPT_FIELDS = {
    "receipt_id", "order_id", "price", "tax_free", "cancelled_price", "cancelled_tax_free", "order_name",
    "company_name", "gateway_url", "metadata", "sandbox", "pg", "method", "method_symbol", "method_origin",
    "method_origin_symbol", "purchased_at", "cancelled_at", "requested_at", "status_locale", "receipt_url",
    "status", "currency",
}  # fmt: skip


def error_of(reply):
    return reply.status_code, reply.json()["error_code"]


# --- authentication -------------------------------------------------------------------


def test_basic_auth_with_the_key_pair(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    reply = bootpay.receipt(made["receipt_id"])
    assert reply.status_code == 200
    header = reply.request.headers["Authorization"]
    assert header == "Basic " + base64.b64encode(f"{CLIENT_KEY}:{SECRET_KEY}".encode()).decode()


@pytest.mark.parametrize(
    ("client_key", "secret_key", "code"),
    [
        ("test_bootpay_ck_unknown", SECRET_KEY, "APP_CLIENT_KEY_NOT_FOUND"),
        (CLIENT_KEY, "test_bootpay_sk_wrong", "APP_SK_NOT_MATCHED"),
    ],
)
def test_bad_keys_are_refused_with_the_error_envelope(bootpay_url, bootpay_authenticated, client_key, secret_key, code):
    made = bootpay_authenticated()
    reply = Bootpay(bootpay_url, client_key, secret_key).receipt(made["receipt_id"])
    assert reply.status_code == 401
    assert reply.json()["error_code"] == code and reply.json()["message"]
    assert set(reply.json()) == {"error_code", "message"}


def test_no_credentials(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    reply = bootpay.request("GET", f"/receipt/{made['receipt_id']}", auth=False)
    assert error_of(reply) == (401, "TOKEN_KEY_INVALID")
    assert reply.json()["message"] == "ACCESS TOKEN 값을 확인해주세요."


def test_legacy_token_is_the_same_for_25_minutes_then_renewed(bootpay):
    first = bootpay.token()
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"access_token", "server_time", "expire_in"}
    assert body["expire_in"] == 1800 and body["access_token"]
    control.advance_clock(minutes=10)
    again = bootpay.token().json()
    assert again["access_token"] == body["access_token"]
    assert 1190 <= again["expire_in"] <= 1200  # what is left of its 30 minutes
    control.advance_clock(minutes=16)  # 26 minutes after it was issued
    renewed = bootpay.token().json()
    assert renewed["access_token"] != body["access_token"] and renewed["expire_in"] == 1800


def test_legacy_token_works_until_it_expires_by_the_sandbox_clock(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    bootpay.use_token()
    reply = bootpay.receipt(made["receipt_id"])
    assert reply.status_code == 200 and reply.request.headers["Authorization"].startswith("Bearer ")
    control.advance_clock(minutes=29)
    assert bootpay.receipt(made["receipt_id"]).status_code == 200
    control.advance_clock(minutes=1, seconds=1)
    assert error_of(bootpay.receipt(made["receipt_id"])) == (401, "TOKEN_KEY_INVALID")


def test_token_expiry_on_request(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    bootpay.use_token()
    assert emulated.expire_tokens() == {"expired": 1}
    assert error_of(bootpay.receipt(made["receipt_id"])) == (401, "TOKEN_KEY_INVALID")
    bootpay.use_token()  # a new one
    assert bootpay.receipt(made["receipt_id"]).status_code == 200


def test_made_up_token_and_bad_legacy_keys(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    bootpay.bearer = "0" * 64
    assert error_of(bootpay.receipt(made["receipt_id"])) == (401, "TOKEN_KEY_INVALID")
    assert error_of(bootpay.token(APPLICATION_ID, "wrong")) == (401, "APP_KEY_NOT_FOUND")
    assert error_of(bootpay.token("test_bootpay_app_unknown", PRIVATE_KEY)) == (401, "APP_KEY_NOT_FOUND")
    assert error_of(bootpay.request("POST", "/request/token", data="{", auth=False)) == (400, "INVALID_PARAMETER")


def test_bootpay_headers_of_the_official_client_are_accepted(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    headers = {"BOOTPAY-API-VERSION": "5.1.0", "BOOTPAY-SDK-VERSION": "2.9.0", "BOOTPAY-SDK-TYPE": "302"}
    assert bootpay.request("GET", f"/receipt/{made['receipt_id']}", headers=headers).status_code == 200


# --- receipts and confirm ----------------------------------------------------------------


def test_authenticated_receipt_waits_for_approval(bootpay, bootpay_authenticated):
    made = bootpay_authenticated(10000)
    assert made["event"] == "confirm"
    receipt = bootpay.receipt(made["receipt_id"]).json()
    assert set(receipt) == RECEIPT_FIELDS
    assert receipt["status"] == 2 and receipt["status_locale"] == "승인대기"
    assert receipt["price"] == 10000 and receipt["cancelled_price"] == 0 and receipt["sandbox"] is True
    assert len(receipt["receipt_id"]) == 24 and receipt["order_id"] == made["order_id"]
    assert receipt["purchased_at"] is None and receipt["requested_at"].endswith("+09:00")


def test_confirm_approves_a_card_payment(bootpay, bootpay_authenticated):
    made = bootpay_authenticated(10000)
    reply = bootpay.confirm(made["receipt_id"])
    assert reply.status_code == 200
    receipt = reply.json()
    assert receipt["status"] == 1 and receipt["status_locale"] == "결제완료"
    assert receipt["method"] == "카드" and receipt["method_symbol"] == "card"
    assert receipt["purchased_at"].endswith("+09:00")
    assert receipt["card_data"]["card_approve_no"] and "****" in receipt["card_data"]["card_no"]
    assert bootpay.receipt(made["receipt_id"]).json() == receipt
    # Approval happens once: a second confirm is refused and changes nothing.
    again = bootpay.confirm(made["receipt_id"])
    assert error_of(again) == (400, "RC_CONFIRM_FAILED")
    assert bootpay.receipt(made["receipt_id"]).json()["status"] == 1


def test_confirm_issues_a_virtual_account(bootpay, bootpay_authenticated):
    made = bootpay_authenticated(30000, "vbank")
    receipt = bootpay.confirm(made["receipt_id"]).json()
    assert receipt["status"] == 5 and receipt["status_locale"] == "가상계좌 발급완료"
    vbank = receipt["vbank_data"]
    assert vbank["bank_account"].isdigit() and len(vbank["bank_code"]) == 3 and vbank["bank_name"]
    assert vbank["bank_username"] and vbank["expired_at"].endswith("+09:00")
    assert receipt["purchased_at"] is None
    paid = emulated.deposit(made["receipt_id"])
    assert paid["status"] == 1 and paid["purchased_at"]
    assert bootpay.receipt(made["receipt_id"]).json()["status"] == 1


def test_without_separate_approval_the_window_settles_at_once(bootpay, bootpay_authenticated):
    card = bootpay_authenticated(5000, separately_confirmed=False)
    vbank = bootpay_authenticated(5000, "vbank", separately_confirmed=False)
    assert (card["event"], vbank["event"]) == ("done", "issued")
    assert bootpay.receipt(card["receipt_id"]).json()["status"] == 1
    assert bootpay.receipt(vbank["receipt_id"]).json()["status"] == 5
    assert error_of(bootpay.confirm(card["receipt_id"])) == (400, "RC_CONFIRM_FAILED")


def test_unknown_receipt(bootpay):
    assert bootpay.receipt("0" * 24).json() == {"error_code": "RC_NOT_FOUND", "message": "영수증 정보를 찾지 못했습니다."}
    assert error_of(bootpay.receipt("0" * 24)) == (404, "RC_NOT_FOUND")
    assert error_of(bootpay.confirm("0" * 24)) == (404, "RC_NOT_FOUND")
    assert error_of(bootpay.cancel("0" * 24)) == (404, "RC_NOT_FOUND")


def test_bad_requests(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    assert error_of(bootpay.request("POST", "/confirm", json={})) == (400, "INVALID_PARAMETER")
    assert error_of(bootpay.request("POST", "/confirm", data="{not json", headers={"Content-Type": "application/json"})) == (
        400,
        "INVALID_PARAMETER",
    )
    assert error_of(bootpay.cancel(made["receipt_id"], cancel_price=-1)) == (400, "INVALID_PARAMETER")
    assert error_of(bootpay.cancel(made["receipt_id"], cancel_price=10.5)) == (400, "INVALID_PARAMETER")
    assert error_of(bootpay.request("GET", "/confirm")) == (405, "METHOD_NOT_ALLOWED")
    assert error_of(bootpay.request("GET", "/nothing/here")) == (404, "NOT_FOUND")


def test_lookup_with_user_data(bootpay, bootpay_authenticated):
    made = bootpay_authenticated(user={"username": "김부트", "phone": "01012345678"})
    assert "user" not in bootpay.receipt(made["receipt_id"]).json()
    assert bootpay.receipt(made["receipt_id"], lookup_user_data="true").json()["user"]["username"] == "김부트"


# --- cancels ------------------------------------------------------------------------------


def test_partial_then_full_cancel_seed_004(bootpay, bootpay_paid):
    paid = bootpay_paid(10000)
    first = bootpay.cancel(paid["receipt_id"], 3000, cancel_id="refund-0001")
    assert first.status_code == 200
    receipt = first.json()
    assert receipt["status"] == 20 and receipt["cancelled_price"] == 3000 and receipt["cancelled_at"].endswith("+09:00")
    rest = bootpay.cancel(paid["receipt_id"], cancel_id="refund-0002")  # no cancel_price: what is left
    assert rest.status_code == 200
    assert rest.json()["cancelled_price"] == 10000 and rest.json()["status"] == 20
    assert bootpay.receipt(paid["receipt_id"]).json()["cancelled_price"] == 10000


def test_a_repeated_cancel_id_refunds_nothing(bootpay, bootpay_paid):
    paid = bootpay_paid(10000)
    assert bootpay.cancel(paid["receipt_id"], 3000, cancel_id="refund-0001").status_code == 200
    again = bootpay.cancel(paid["receipt_id"], 3000, cancel_id="refund-0001")
    assert again.status_code == 400 and again.json()["error_code"] == "RC_CANCEL_FAILED"
    assert "cancel_id" in again.json()["message"]
    assert bootpay.receipt(paid["receipt_id"]).json()["cancelled_price"] == 3000
    # Another id is another cancel.
    assert bootpay.cancel(paid["receipt_id"], 3000, cancel_id="refund-0002").json()["cancelled_price"] == 6000
    # An empty cancel_id (what the official client sends by default) is no id at all.
    assert bootpay.cancel(paid["receipt_id"], 1000, cancel_id="").json()["cancelled_price"] == 7000
    assert bootpay.cancel(paid["receipt_id"], 1000, cancel_id="").json()["cancelled_price"] == 8000


def test_a_retry_after_a_lost_answer_is_refused_and_the_receipt_tells_what_happened(bootpay, bootpay_paid):
    """Wire gap 5: Bootpay refuses a repeated cancel_id (its docs: "중복 방지"), it never replays the first answer."""
    paid = bootpay_paid(10000)
    control.arm_fault("bootpay", "cancel", "error_after")  # the cancel runs, its answer is lost
    lost = bootpay.cancel(paid["receipt_id"], 4000, cancel_id="refund-lost")
    assert lost.status_code == 500
    retry = bootpay.cancel(paid["receipt_id"], 4000, cancel_id="refund-lost")
    assert retry.status_code == 400 and retry.json()["error_code"] == "RC_CANCEL_FAILED" and "cancel_id" in retry.json()["message"]
    # What a gateway must do either way: read the receipt.
    assert bootpay.receipt(paid["receipt_id"]).json()["cancelled_price"] == 4000
    # The same after a full cancel: the repeated id is named, not "already cancelled".
    assert bootpay.cancel(paid["receipt_id"], cancel_id="refund-rest").status_code == 200
    again = bootpay.cancel(paid["receipt_id"], cancel_id="refund-rest")
    assert again.json()["error_code"] == "RC_CANCEL_FAILED" and "cancel_id" in again.json()["message"]
    assert bootpay.cancel(paid["receipt_id"], cancel_id="refund-new").json()["error_code"] == "CANCEL_ALREADY_DONE"


def test_over_refund_and_already_cancelled_are_refused(bootpay, bootpay_paid):
    paid = bootpay_paid(10000)
    assert bootpay.cancel(paid["receipt_id"], 7000, cancel_id="a").status_code == 200
    over = bootpay.cancel(paid["receipt_id"], 3001, cancel_id="b")
    assert over.json() == {"error_code": "CANCEL_PRICE_OVER", "message": "취소 요청 금액이 취소 가능 금액보다 큽니다."}
    assert over.status_code == 400
    assert bootpay.cancel(paid["receipt_id"], 3000, cancel_id="c").json()["cancelled_price"] == 10000
    done = bootpay.cancel(paid["receipt_id"], cancel_id="d")
    assert error_of(done) == (400, "CANCEL_ALREADY_DONE")
    assert bootpay.receipt(paid["receipt_id"]).json()["cancelled_price"] == 10000


def test_partial_cancel_status_can_stay_paid(bootpay, bootpay_paid, bootpay_settings):
    bootpay_settings(PARTIAL_CANCEL_STATUS=1)  # Bootpay's troubleshooting guide: a partial cancel keeps 결제완료
    paid = bootpay_paid(10000)
    partial = bootpay.cancel(paid["receipt_id"], 3000, cancel_id="a").json()
    assert (partial["status"], partial["status_locale"], partial["cancelled_price"]) == (1, "결제완료", 3000)
    full = bootpay.cancel(paid["receipt_id"], cancel_id="b").json()
    assert (full["status"], full["cancelled_price"]) == (20, 10000)


def test_cancels_of_a_virtual_account(bootpay, bootpay_paid):
    issued = bootpay_paid(30000, "vbank")
    # Before the deposit: only in full, no refund account needed.
    assert error_of(bootpay.cancel(issued["receipt_id"], 1000, cancel_id="p")) == (400, "RC_CANCEL_FAILED")
    withdrawn = bootpay.cancel(issued["receipt_id"], cancel_id="w").json()
    assert withdrawn["status"] == 20 and withdrawn["cancelled_price"] == 30000
    deposited = bootpay_paid(30000, "vbank")
    emulated.deposit(deposited["receipt_id"])
    # After it: the money goes back to an account the shop names.
    refused = bootpay.cancel(deposited["receipt_id"], 10000, cancel_id="r1")
    assert error_of(refused) == (400, "RC_CANCEL_FAILED") and "refund" in refused.json()["message"]
    refund = {"bank_account": "1234567890", "bank_username": "김부트", "bank_code": "004"}
    assert bootpay.cancel(deposited["receipt_id"], 10000, cancel_id="r1", refund=refund).json()["cancelled_price"] == 10000


def test_cancel_before_approval_is_refused(bootpay, bootpay_authenticated):
    made = bootpay_authenticated()
    assert error_of(bootpay.cancel(made["receipt_id"])) == (400, "RC_CANCEL_FAILED")
    assert bootpay.receipt(made["receipt_id"]).json()["status"] == 2


def test_cancel_in_bootpays_admin(bootpay, bootpay_paid):
    paid = bootpay_paid(10000)
    partial = emulated.cancel_at_pg(paid["receipt_id"], 3000)
    assert partial["cancelled_price"] == 3000
    full = emulated.cancel_at_pg(paid["receipt_id"])
    assert full["cancelled_price"] == 10000 and full["status"] == 20
    assert error_of(bootpay.cancel(paid["receipt_id"], cancel_id="late")) == (400, "CANCEL_ALREADY_DONE")


# --- the official client ----------------------------------------------------------------------


def test_official_client_looks_up_and_cancels_in_full(official, bootpay_paid):
    paid = bootpay_paid(10000)
    client = official()
    assert client.get_access_token() == {"access_token": "", "expire_in": 0}  # Basic keys: no token call
    receipt = client.receipt_payment(paid["receipt_id"])
    assert receipt["receipt_id"] == paid["receipt_id"] and receipt["status"] == 1 and receipt["price"] == 10000
    cancelled = client.cancel_payment(receipt_id=paid["receipt_id"], cancel_username="관리자", cancel_message="고객 요청")
    assert "error_code" not in cancelled
    assert cancelled["status"] == 20 and cancelled["cancelled_price"] == 10000
    again = client.cancel_payment(receipt_id=paid["receipt_id"], cancel_username="관리자", cancel_message="고객 요청")
    assert again["error_code"] == "CANCEL_ALREADY_DONE"


def test_official_client_partial_cancels_with_cancel_id(official, bootpay_paid):
    paid = bootpay_paid(10000)
    client = official()
    first = client.cancel_payment(
        receipt_id=paid["receipt_id"], cancel_price=3000, cancel_id="seed004-1", cancel_username="관리자", cancel_message="부분 취소"
    )
    assert first["cancelled_price"] == 3000
    repeated = client.cancel_payment(
        receipt_id=paid["receipt_id"], cancel_price=3000, cancel_id="seed004-1", cancel_username="관리자", cancel_message="부분 취소"
    )
    assert repeated["error_code"] == "RC_CANCEL_FAILED"
    rest = client.cancel_payment(receipt_id=paid["receipt_id"], cancel_id="seed004-2", cancel_username="관리자", cancel_message="나머지")
    assert rest["cancelled_price"] == 10000 and rest["status"] == 20
    assert client.receipt_payment(paid["receipt_id"])["cancelled_price"] == 10000


def test_official_client_confirms_with_legacy_keys(official, bootpay_authenticated):
    made = bootpay_authenticated(10000)
    client = official(application_id=APPLICATION_ID, private_key=PRIVATE_KEY)
    token = client.get_access_token()
    assert token["access_token"] and token["expire_in"] == 1800
    assert client.confirm_payment(made["receipt_id"])["status"] == 1
    assert client.get_access_token()["access_token"] == token["access_token"]  # the same within 25 minutes
    wrong = official(application_id=APPLICATION_ID, private_key="nope")
    assert wrong.get_access_token()["error_code"] == "APP_KEY_NOT_FOUND"


def test_other_base_urls_stay_untouched(official):
    from bootpay_backend import BootpayBackend

    client = official()
    assert BootpayBackend.BASE_URL["production"] == "https://api.bootpay.co.kr/v2"
    assert client.BASE_URL["production"].endswith("/sandbox/bootpay/v2")


def test_requests_go_nowhere_else(bootpay_url):
    # The sandbox's API answers on its own host; a wrong prefix is the framework's 404 page, not Bootpay's.
    reply = requests.get(bootpay_url.replace("/v2", "/v3") + "/receipt/x", timeout=5)
    assert reply.status_code == 404
