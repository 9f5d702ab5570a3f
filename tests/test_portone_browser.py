"""The PortOne checkout pages in a real browser: the SDK gets the gateway's parameters, and its answer reaches our return view.

The SDKs are replaced by stubs (``JS_SDK_URL`` is an option, as it is for the
sandbox) that record what ``IMP.init``/``IMP.request_pay`` and
``PortOne.requestPayment`` receive and answer as PortOne's window would;
PortOne's API is mocked with ``responses``, which the live server thread shares.
"""

import base64
import os
from pathlib import Path

import pytest

from django_pgpay.permissions import buyer_token
from django_pgpay.status import OrderStatus as S
from tests.portone_support import CHANNEL_KEY, MERCHANT_CODE, STORE_ID
from tests.testapp.models import Booking

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IMP_STUB = """
window.__imp = {calls: []};
window.IMP = {
  init: function (code) { window.__imp.calls.push({init: code}); },
  request_pay: function (request, callback) { window.__imp.calls.push({request: request}); window.__imp.callback = callback; }
};
"""
PORTONE_STUB = """
window.__portone = {calls: []};
window.PortOne = {
  requestPayment: function (request) {
    window.__portone.calls.push(request);
    return new Promise(function (resolve) { window.__portone.resolve = resolve; });
  }
};
"""


def use_stub(settings, alias, source):
    url = "data:text/javascript;base64," + base64.b64encode(source.encode()).decode()
    gateways = {**settings.PGPAY["GATEWAYS"]}
    gateways[alias] = {**gateways[alias], "OPTIONS": {**gateways[alias]["OPTIONS"], "JS_SDK_URL": url}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}


def open_window(page, live_server, client, buyer, seat, alias):
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.goto(f"{live_server.url}/book/{seat.pk}/{alias}/")
    page.get_by_role("button", name="Proceed to payment").click()
    page.get_by_role("button", name="Pay").click()


def screenshot(page, name):
    artifacts = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / name), full_page=True)


def test_v1_imp_request_pay_and_its_callback(page, live_server, client, buyer, seat, portone, portone_api, settings):
    use_stub(settings, "portone", IMP_STUB)
    open_window(page, live_server, client, buyer, seat, "portone")
    page.wait_for_function("window.__imp.calls.length === 2")
    screenshot(page, "portone-checkout.png")
    init, pay = page.evaluate("window.__imp.calls")
    booking = Booking.objects.get()
    assert init == {"init": MERCHANT_CODE}
    assert pay["request"] == {
        "pay_method": "card",
        "channelKey": CHANNEL_KEY,
        "merchant_uid": booking.order_number,
        "name": "한우집 예약",
        "amount": 20000,
        "currency": "KRW",
        "m_redirect_url": f"{live_server.url}/pay/portone/return/?pgpay_t={buyer_token(booking.order_number)}",
        "notice_url": f"{live_server.url}/pay/portone/webhook/",
        "buyer_name": "buyer",
    }
    assert portone_api.prepared[booking.order_number]["amount"] == 20000

    # PortOne's window calls back with the payment; the page takes the buyer to our return view.
    imp_uid = portone_api.pay(booking)
    with page.expect_navigation():
        page.evaluate(
            "([imp_uid, merchant_uid]) => window.__imp.callback({success: true, imp_uid, merchant_uid, paid_amount: 20000})",
            [imp_uid, booking.order_number],
        )
    assert (
        page.url
        == f"{live_server.url}/pay/portone/return/?pgpay_t={buyer_token(booking.order_number)}&imp_uid={imp_uid}&merchant_uid={booking.order_number}"
    )
    assert page.get_by_role("heading", name="Payment complete").is_visible()
    screenshot(page, "portone-return.png")
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == imp_uid


def test_v1_callback_with_an_error_shows_our_failure_page(page, live_server, client, buyer, seat, portone, portone_api, settings):
    use_stub(settings, "portone", IMP_STUB)
    open_window(page, live_server, client, buyer, seat, "portone")
    page.wait_for_function("window.__imp.calls.length === 2")
    booking = Booking.objects.get()
    with page.expect_navigation():
        page.evaluate(
            "(merchant_uid) => window.__imp.callback({success: false, imp_uid: null, merchant_uid, error_code: 'F400', error_msg: '<b>사용자가 결제를 취소하셨습니다</b>'})",
            booking.order_number,
        )
    assert page.get_by_role("heading", name="Payment not completed").is_visible()
    assert "사용자가" not in page.content()
    booking.refresh_from_db()
    assert booking.status == S.READY and portone_api.sent("lookup") == []


def test_v2_request_payment_and_its_answer(page, live_server, client, buyer, seat, portone_v2, portone_v2_api, settings):
    use_stub(settings, "portone-v2", PORTONE_STUB)
    open_window(page, live_server, client, buyer, seat, "portone-v2")
    page.wait_for_function("window.__portone.calls.length === 1")
    (request,) = page.evaluate("window.__portone.calls")
    booking = Booking.objects.get()
    assert request == {
        "storeId": STORE_ID,
        "channelKey": CHANNEL_KEY,
        "paymentId": booking.order_number,
        "orderName": "한우집 예약",
        "totalAmount": 20000,
        "currency": "CURRENCY_KRW",
        "payMethod": "CARD",
        "redirectUrl": f"{live_server.url}/pay/portone-v2/return/?pgpay_t={buyer_token(booking.order_number)}",
        "noticeUrls": [f"{live_server.url}/pay/portone-v2/webhook/"],
        "customer": {"fullName": "buyer"},
    }
    portone_v2_api.pay(booking)
    with page.expect_navigation():
        page.evaluate(
            "(paymentId) => window.__portone.resolve({paymentId, txId: 'tx-1', transactionType: 'PAYMENT'})", booking.order_number
        )
    assert page.get_by_role("heading", name="Payment complete").is_visible()
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_a_missing_sdk_shows_an_error_instead_of_nothing(page, live_server, client, buyer, seat, portone, portone_api, settings):
    use_stub(settings, "portone", "")
    open_window(page, live_server, client, buyer, seat, "portone")
    assert page.get_by_role("alert").inner_text() == "The payment window could not be opened. Please try again."
