"""The Toss checkout page in a real browser: its script hands the SDK exactly the gateway's parameters.

The SDK is replaced by a stub (``JS_SDK_URL`` is an option, as it is for the
sandbox) that records what ``TossPayments(clientKey).payment({customerKey})
.requestPayment({...})`` receives; Toss's API is mocked with ``responses``,
which the live server thread shares.
"""

import base64
import datetime
import os
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from django_pgpay.permissions import buyer_token
from django_pgpay.status import OrderStatus as S
from tests.testapp.models import Booking
from tests.toss_support import CLIENT_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STUB_SDK = """
window.__tossCalls = [];
function TossPayments(clientKey) {
  return {payment: function (options) {
    return {requestPayment: function (request) {
      window.__tossCalls.push({clientKey: clientKey, customerKey: options.customerKey, request: request});
      return Promise.resolve();
    }};
  }};
}
TossPayments.ANONYMOUS = "@@ANONYMOUS";
"""


@pytest.fixture
def stub_sdk(toss, settings):
    url = "data:text/javascript;base64," + base64.b64encode(STUB_SDK.encode()).decode()
    gateways = {**settings.PGPAY["GATEWAYS"]}
    gateways["toss"] = {**gateways["toss"], "OPTIONS": {**gateways["toss"]["OPTIONS"], "JS_SDK_URL": url}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pay_with_stub(page, live_server, client, buyer, seat) -> dict:
    """The buyer books ``seat`` with Toss and presses Pay: what the stub SDK's requestPayment received."""
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.goto(f"{live_server.url}/book/{seat.pk}/toss/")
    page.get_by_role("button", name="Proceed to payment").click()
    page.get_by_role("button", name="Pay").click()
    page.wait_for_function("window.__tossCalls && window.__tossCalls.length === 1")
    (call,) = page.evaluate("window.__tossCalls")
    return call


def test_checkout_page_calls_the_sdk_with_the_gateways_parameters(page, live_server, client, buyer, seat, stub_sdk, toss_api):
    call = pay_with_stub(page, live_server, client, buyer, seat)
    page.screenshot(path=str(artifacts_dir() / "toss-checkout.png"), full_page=True)

    booking = Booking.objects.get()
    assert call["clientKey"] == CLIENT_KEY and call["customerKey"] == "@@ANONYMOUS"
    assert call["request"] == {
        "method": "CARD",
        "amount": {"currency": "KRW", "value": 20000},
        "orderId": booking.order_number,
        "orderName": "한우집 예약",
        "successUrl": f"{live_server.url}/pay/toss/return/?pgpay_t={buyer_token(booking.order_number)}",
        "failUrl": f"{live_server.url}/pay/toss/fail/?pgpay_t={buyer_token(booking.order_number)}",
        "customerName": "buyer",
    }

    # Toss's window would now redirect to successUrl.
    key = toss_api.authorize(booking)
    page.goto(call["request"]["successUrl"] + "&" + urlencode({"paymentKey": key, "orderId": booking.order_number, "amount": 20000}))
    assert page.get_by_role("heading", name="Payment complete").is_visible()
    page.screenshot(path=str(artifacts_dir() / "toss-return.png"), full_page=True)
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_a_virtual_account_window_asks_for_an_account_due_by_the_shops_deadline(
    page, live_server, client, buyer, seat, stub_sdk, settings, monkeypatch
):
    """PAY_METHOD VIRTUAL_ACCOUNT: the page hands the SDK virtualAccount.validHours up to the shop's deposit deadline.

    With less than an hour left, no window is opened: a 409 page says a bank
    transfer cannot arrive in time.
    """
    gateways = {**settings.PGPAY["GATEWAYS"]}
    gateways["toss"] = {**gateways["toss"], "OPTIONS": {**gateways["toss"]["OPTIONS"], "PAY_METHOD": "VIRTUAL_ACCOUNT"}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}
    left = {"value": datetime.timedelta(hours=26, minutes=40)}
    monkeypatch.setattr(Booking, "get_deposit_deadline", lambda self: timezone.now() + left["value"])
    call = pay_with_stub(page, live_server, client, buyer, seat)
    assert call["request"]["method"] == "VIRTUAL_ACCOUNT" and call["request"]["virtualAccount"] == {"validHours": 26}

    left["value"] = datetime.timedelta(minutes=50)
    page.goto(f"{live_server.url}/book/{seat.pk}/toss/")
    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        page.get_by_role("button", name="Proceed to payment").click()
    assert answered.value.status == 409
    assert "A bank transfer can no longer arrive in time" in page.locator("body").inner_text()
    assert page.locator("#pgpay-toss-pay").count() == 0
    page.screenshot(path=str(artifacts_dir() / "toss-virtual-account-too-late.png"), full_page=True)


def test_a_missing_sdk_shows_an_error_instead_of_nothing(page, live_server, client, buyer, seat, toss, settings):
    gateways = {**settings.PGPAY["GATEWAYS"]}
    gateways["toss"] = {**gateways["toss"], "OPTIONS": {**gateways["toss"]["OPTIONS"], "JS_SDK_URL": "data:text/javascript,"}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.goto(f"{live_server.url}/book/{seat.pk}/toss/")
    page.get_by_role("button", name="Proceed to payment").click()
    page.get_by_role("button", name="Pay").click()
    assert page.get_by_role("alert").inner_text() == "The payment window could not be opened. Please try again."
