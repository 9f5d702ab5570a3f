"""The Bootpay checkout page in a real browser: its script hands the SDK the gateway's parameters and follows its events.

The SDK is replaced by a stub (``JS_SDK_URL`` is an option, as it is for the
sandbox) that records what ``Bootpay.requestPayment({...})`` receives and
answers with the event the test chose; Bootpay's API is mocked with
``responses``, which the live server thread shares.
"""

import base64
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from django_pgpay.gateways.base import PG_DATA_ATTEMPTS
from django_pgpay.status import OrderStatus as S
from tests.bootpay_support import CLIENT_KEY
from tests.testapp.models import Booking

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STUB_SDK = """
window.__bootpayCalls = [];
window.Bootpay = {
  requestPayment: function (request) {
    window.__bootpayCalls.push(request);
    sessionStorage.setItem("bootpayCalls", JSON.stringify(window.__bootpayCalls));  // kept across the navigation
    var answer = window.__bootpayAnswer || {event: "cancel"};
    if (answer.event === "confirm" || answer.event === "done" || answer.event === "issued") {
      return Promise.resolve({event: answer.event, receipt_id: answer.receipt_id, order_id: request.order_id, price: request.price});
    }
    return Promise.reject({event: answer.event, receipt_id: answer.receipt_id, error_code: "USER_CANCEL", message: "사용자가 결제를 취소하였습니다."});
  }
};
"""


def use_sdk(settings, url):
    gateways = {**settings.PGPAY["GATEWAYS"]}
    gateways["bootpay"] = {**gateways["bootpay"], "OPTIONS": {**gateways["bootpay"]["OPTIONS"], "JS_SDK_URL": url}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}


@pytest.fixture
def stub_sdk(bootpay, settings):
    use_sdk(settings, "data:text/javascript;base64," + base64.b64encode(STUB_SDK.encode()).decode())


@pytest.fixture
def checkout_page(page, live_server, client, buyer, seat):
    """The buyer's browser on the Bootpay payment window of a new booking."""
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.goto(f"{live_server.url}/book/{seat.pk}/bootpay/")
    page.get_by_role("button", name="Proceed to payment").click()
    expect(page.get_by_role("button", name="Pay")).to_be_enabled()
    return page


def artifacts() -> Path:
    path = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_confirm_event_brings_the_buyer_back_for_server_approval(stub_sdk, bootpay_api, checkout_page, live_server):
    page = checkout_page
    booking = Booking.objects.get()
    receipt_id = bootpay_api.authorize(booking, amount=20000)  # what Bootpay's window did
    page.evaluate("(id) => { window.__bootpayAnswer = {event: 'confirm', receipt_id: id}; }", receipt_id)
    page.screenshot(path=str(artifacts() / "bootpay-checkout.png"), full_page=True)
    assert page.get_by_role("status").is_hidden()
    page.get_by_role("button", name="Pay").click()
    page.get_by_role("heading", name="Payment complete").wait_for()
    page.screenshot(path=str(artifacts() / "bootpay-return.png"), full_page=True)

    (call,) = page.evaluate("JSON.parse(sessionStorage.getItem('bootpayCalls'))")
    assert call == {
        "client_key": CLIENT_KEY,
        "price": 20000,
        "order_name": "한우집 예약",
        "order_id": booking.order_number,
        "items": [{"id": f"{booking.order_number}-1", "name": "한우집 예약", "qty": 1, "price": 20000}],
        "user": {"username": "buyer"},
        "extra": {"separately_confirmed": True},
    }
    assert page.url.startswith(f"{live_server.url}/pay/bootpay/return/?")
    assert f"receipt_id={receipt_id}" in page.url and f"order_id={booking.order_number}" in page.url
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == receipt_id
    assert len(bootpay_api.sent("confirm")) == 1


def test_closing_the_window_shows_the_fail_page(stub_sdk, bootpay_api, checkout_page, live_server):
    page = checkout_page
    page.evaluate("window.__bootpayAnswer = {event: 'cancel'}")
    page.get_by_role("button", name="Pay").click()
    page.get_by_text("You closed the payment window before paying.").wait_for()
    assert re.sub(r"pgpay_t=[^&]*&", "", page.url).startswith(f"{live_server.url}/pay/bootpay/fail/?event=cancel")
    booking = Booking.objects.get()
    assert booking.status == S.READY and bootpay_api.requests == []


def test_a_failed_window_reports_its_receipt_before_it_leaves(stub_sdk, bootpay_api, checkout_page, live_server):
    # The window authenticated a payment (a receipt exists at Bootpay) and then failed: the page posts the
    # receipt id to the attempt URL and waits for the answer before going to the fail page, so
    # reconciliation can look the receipt up even though the buyer never reached the return URL.
    page = checkout_page
    page.evaluate("window.__bootpayAnswer = {event: 'error', receipt_id: 'rcpt-from-the-window'}")
    with page.expect_request(lambda r: "/pay/bootpay/attempt/" in r.url) as posted:
        page.get_by_role("button", name="Pay").click()
    assert posted.value.method == "POST"
    page.get_by_role("heading", name="Payment not completed").wait_for()
    booking = Booking.objects.get()
    assert booking.status == S.READY and booking.pg_data[PG_DATA_ATTEMPTS] == ["rcpt-from-the-window"]


@pytest.fixture
def empty_sdk(bootpay, settings):
    use_sdk(settings, "data:text/javascript,")


def test_a_missing_sdk_shows_an_error_instead_of_nothing(empty_sdk, checkout_page):
    checkout_page.get_by_role("button", name="Pay").click()
    assert checkout_page.get_by_role("alert").inner_text() == "The payment window could not be opened. Please try again."
