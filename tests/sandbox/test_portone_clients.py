"""PortOne's official clients pointed at the sandbox: ``iamport-rest-client`` (V1) and ``portone-server-sdk`` (V2).

``iamport-rest-client`` 0.9.0 pins ``requests==2.26.0``; ``make test`` installs it
into ``.venv`` with ``--no-deps`` (it works with today's requests). Where it is
missing (a plain ``pip install -e .[test]``, tox) its tests are skipped, saying so.
"""

import pytest

from django_pgpay.sandbox import control
from django_pgpay.sandbox import portone as emulated

from .conftest import AVAILABLE_APPS
from .portone_helpers import IMP_KEY, IMP_SECRET, STORE_ID, V2_SECRET, WEBHOOK_SECRET, portone_hook, v1, v2  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


@pytest.fixture
def iamport(sandbox_url):
    client_module = pytest.importorskip(
        "iamport",
        reason="iamport-rest-client is not installed (make test installs it: uv pip install --no-deps iamport-rest-client==0.9.0)",
    )
    return client_module.Iamport(IMP_KEY, IMP_SECRET, imp_url=sandbox_url + "/portone/")


def test_iamport_rest_client_gets_a_token_finds_and_cancels(iamport, v1):
    iamport.prepare("order-official-0001", 20000)
    assert iamport.prepare_validate("order-official-0001", 20000) is True
    imp_uid = emulated.pay("order-official-0001", 20000, sandbox=False)["imp_uid"]
    # A token (the client asks for one before every call: the sandbox hands out the same one).
    assert iamport._get_token() == iamport._get_token()
    found = iamport.find(merchant_uid="order-official-0001")
    assert found["imp_uid"] == imp_uid and iamport.is_paid(20000, response=found)
    assert iamport.find(imp_uid=imp_uid)["status"] == "paid"
    part = iamport.cancel("부분 취소", imp_uid=imp_uid, amount=5000, checksum=20000)
    assert part["cancel_amount"] == 5000 and part["status"] == "paid"
    with pytest.raises(iamport.ResponseError) as refused:
        iamport.cancel("잘못된 잔액", imp_uid=imp_uid, checksum=20000)
    assert refused.value.code == 1
    assert iamport.cancel("나머지", merchant_uid="order-official-0001", checksum=15000)["status"] == "cancelled"
    with pytest.raises(iamport.ResponseError) as again:
        iamport.cancel("다시", imp_uid=imp_uid)
    assert again.value.message == "이미 전액취소된 주문입니다."
    # The client's HttpError for a 404 (a test-channel payment without include_sandbox).
    hidden = emulated.pay("order-official-0002", 1000)["imp_uid"]
    with pytest.raises(iamport.HttpError) as missing:
        iamport.find(imp_uid=hidden)
    assert missing.value.code == 404
    assert emulated.token_requests() >= 8  # the official client fetches a token per call; ours does not


def test_iamport_rest_client_with_a_wrong_secret(sandbox_url, iamport):
    bad = type(iamport)(IMP_KEY, "wrong", imp_url=sandbox_url + "/portone/")
    with pytest.raises(bad.HttpError) as refused:
        bad.find(imp_uid="imp_000000000000")
    assert refused.value.code == 401


@pytest.fixture
def portone_sdk(sandbox_url):
    from portone_server_sdk import PortOneClient

    return PortOneClient(secret=V2_SECRET, base_url=sandbox_url + "/portone-v2", store_id=STORE_ID)


def test_portone_server_sdk_pre_registers_gets_and_cancels(portone_sdk, v2):
    from portone_server_sdk import errors
    from portone_server_sdk.payment import PaidPayment, PartialCancelledPayment

    portone_sdk.payment.pre_register_payment(payment_id="order-sdk-0001", total_amount=20000, currency="KRW")
    assert emulated.v2_pay("order-sdk-0001", 1000)["code"] == "FAILURE_TYPE_PROCESS"  # blocked: another amount
    done = emulated.v2_pay("order-sdk-0001", 20000)
    assert "code" not in done and done["paymentId"] == "order-sdk-0001"
    payment = portone_sdk.payment.get_payment(payment_id="order-sdk-0001")
    assert isinstance(payment, PaidPayment)
    assert payment.amount.total == 20000 and payment.channel.type == "TEST" and payment.transaction_id == done["txId"]
    with pytest.raises(errors.AlreadyPaidError):
        portone_sdk.payment.pre_register_payment(payment_id="order-sdk-0001", total_amount=20000)
    with pytest.raises(errors.CancellableAmountConsistencyBrokenError):
        portone_sdk.payment.cancel_payment(payment_id="order-sdk-0001", reason="x", amount=5000, current_cancellable_amount=19000)
    cancelled = portone_sdk.payment.cancel_payment(
        payment_id="order-sdk-0001", reason="부분 취소", amount=5000, current_cancellable_amount=20000
    )
    assert type(cancelled.cancellation).__name__ == "SucceededPaymentCancellation" and cancelled.cancellation.total_amount == 5000
    assert isinstance(portone_sdk.payment.get_payment(payment_id="order-sdk-0001"), PartialCancelledPayment)
    with pytest.raises(errors.CancelAmountExceedsCancellableAmountError):
        portone_sdk.payment.cancel_payment(payment_id="order-sdk-0001", reason="x", amount=15001)
    portone_sdk.payment.cancel_payment(payment_id="order-sdk-0001", reason="나머지")
    with pytest.raises(errors.PaymentAlreadyCancelledError):
        portone_sdk.payment.cancel_payment(payment_id="order-sdk-0001", reason="다시")
    with pytest.raises(errors.PaymentNotFoundError):
        portone_sdk.payment.get_payment(payment_id="order-sdk-none")


def test_portone_server_sdk_with_a_wrong_secret(sandbox_url):
    from portone_server_sdk import PortOneClient, errors

    client = PortOneClient(secret="test_wrong", base_url=sandbox_url + "/portone-v2", store_id=STORE_ID)
    with pytest.raises(errors.UnauthorizedError):
        client.payment.get_payment(payment_id="order-sdk-0001")


def test_portone_server_sdk_verifies_the_sandbox_webhooks(v2, portone_hook):
    from portone_server_sdk import webhook

    v2.pre_register("order-sdk-hook", 30000)
    emulated.v2_pay("order-sdk-hook", 30000, pay_method="VIRTUAL_ACCOUNT")
    emulated.v2_deposit("order-sdk-hook")
    control.deliver_webhooks()
    kinds = []
    for delivery in portone_hook.deliveries:
        event = webhook.verify(WEBHOOK_SECRET, delivery["raw"].decode(), {k.lower(): v for k, v in delivery["headers"].items()})
        kinds.append(type(event).__name__)
        assert event.data.payment_id == "order-sdk-hook" and event.data.store_id == STORE_ID
    assert kinds == ["WebhookTransactionVirtualAccountIssued", "WebhookTransactionPaid"]


# --- wire gap 4: refunds of a deposited account, GET /payments, unknown paths ----------------------


def test_portone_server_sdk_refunds_a_deposited_virtual_account_only_to_an_account(portone_sdk, v2):
    from portone_server_sdk import errors
    from portone_server_sdk.payment import CancelPaymentBodyRefundAccount, PaidPayment, PartialCancelledPayment

    emulated.v2_pay("order-sdk-vbank", 30000, pay_method="VIRTUAL_ACCOUNT")
    emulated.v2_deposit("order-sdk-vbank")
    assert isinstance(portone_sdk.payment.get_payment(payment_id="order-sdk-vbank"), PaidPayment)
    # PortOne refuses: the money goes back by transfer, to an account the shop names.
    with pytest.raises(errors.InvalidRequestError):
        portone_sdk.payment.cancel_payment(payment_id="order-sdk-vbank", reason="환불", amount=10000)
    with pytest.raises(errors.InvalidRequestError):
        blank = CancelPaymentBodyRefundAccount(bank="KOOKMIN", number="", holder_name="홍길동")
        portone_sdk.payment.cancel_payment(payment_id="order-sdk-vbank", reason="환불", amount=10000, refund_account=blank)
    payment = portone_sdk.payment.get_payment(payment_id="order-sdk-vbank")
    assert isinstance(payment, PaidPayment) and payment.amount.cancelled == 0  # nothing happened
    account = CancelPaymentBodyRefundAccount(bank="KOOKMIN", number="12345678901234", holder_name="홍길동")
    done = portone_sdk.payment.cancel_payment(payment_id="order-sdk-vbank", reason="환불", amount=10000, refund_account=account)
    assert done.cancellation.total_amount == 10000
    refunded = portone_sdk.payment.get_payment(payment_id="order-sdk-vbank")
    assert isinstance(refunded, PartialCancelledPayment) and refunded.method.refund_status == "COMPLETED"


def test_portone_server_sdk_lists_payments_with_the_filters_a_shop_uses(portone_sdk, v2):
    from portone_server_sdk import errors
    from portone_server_sdk.common import PageInput
    from portone_server_sdk.payment import CancelledPayment, PaidPayment, PaymentFilterInput, PaymentTextSearch

    for n, amount in ((1, 10000), (2, 20000), (3, 30000)):
        assert "code" not in emulated.v2_pay(f"order-list-000{n}", amount)
        control.advance_clock(seconds=5)
    portone_sdk.payment.cancel_payment(payment_id="order-list-0002", reason="전액")
    listed = portone_sdk.payment.get_payments()
    assert [p.id for p in listed.items] == ["order-list-0003", "order-list-0002", "order-list-0001"]  # newest first
    assert (listed.page.number, listed.page.size, listed.page.total_count) == (0, 10, 3)
    paid = portone_sdk.payment.get_payments(filter=PaymentFilterInput(status=["PAID"], sort_order="ASC"))
    assert [p.id for p in paid.items] == ["order-list-0001", "order-list-0003"]
    assert all(isinstance(p, PaidPayment) for p in paid.items)
    cancelled = portone_sdk.payment.get_payments(filter=PaymentFilterInput(status=["CANCELLED"], methods=["CARD"], is_test=True))
    assert [type(p) for p in cancelled.items] == [CancelledPayment]
    assert portone_sdk.payment.get_payments(filter=PaymentFilterInput(methods=["VIRTUAL_ACCOUNT"])).items == []
    assert portone_sdk.payment.get_payments(filter=PaymentFilterInput(is_test=False)).items == []
    second = portone_sdk.payment.get_payments(page=PageInput(number=1, size=2))
    assert [p.id for p in second.items] == ["order-list-0001"] and second.page.total_count == 1
    found = portone_sdk.payment.get_payments(filter=PaymentFilterInput(text_search=[PaymentTextSearch(field="PAYMENT_ID", value="0003")]))
    assert [p.id for p in found.items] == ["order-list-0003"]
    second_at = portone_sdk.payment.get_payment(payment_id="order-list-0002").requested_at
    since = portone_sdk.payment.get_payments(filter=PaymentFilterInput(from_=second_at, sort_by="REQUESTED_AT"))
    assert [p.id for p in since.items] == ["order-list-0003", "order-list-0002"]
    with pytest.raises(errors.InvalidRequestError):
        portone_sdk.payment.get_payments(page=PageInput(number=6000, size=10))  # (number + 1) * size > 60,000
    with pytest.raises(errors.ForbiddenError):
        portone_sdk.payment.get_payments(filter=PaymentFilterInput(store_id="store-someone-else"))


def test_portone_v2_answers_json_for_paths_it_does_not_emulate(portone_sdk, v2, sandbox_url):
    import requests
    from portone_server_sdk import errors

    # The SDK reads PortOne's {type, message} and raises its own error (an HTML 404 made it crash on JSON).
    with pytest.raises(errors.UnknownError):
        portone_sdk.identity_verification.get_identity_verification(identity_verification_id="iv-sandbox-none")
    for method, path in (("GET", "/platform/partners"), ("POST", "/billing-keys"), ("GET", "/no/such/thing")):
        response = requests.request(
            method, sandbox_url + "/portone-v2" + path, headers={"Authorization": f"PortOne {V2_SECRET}"}, timeout=10
        )
        assert response.status_code == 404 and response.headers["Content-Type"].startswith("application/json")
        assert response.json()["type"] == "NOT_FOUND" and response.json()["message"]
