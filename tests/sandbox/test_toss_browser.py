"""The browser step in real Chromium: the SDK stand-in, the payment window and its redirects."""

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from django_pgpay.sandbox import control

from .conftest import AVAILABLE_APPS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)]


@pytest.fixture
def shop(live_server, sandbox_url, page):
    """Open the test shop's checkout for an order and press its Buy button."""

    def open_checkout(order_id, amount=15000, method="CARD", flow="payment", click=True, **extra):
        query = urlencode({"orderId": order_id, "amount": amount, "method": method, "flow": flow, **extra})
        page.goto(f"{live_server.url}/shop/checkout/?{query}")
        if click:
            page.click("#buy")
            page.wait_for_url("**/sandbox/toss/pay/**")
        return page

    return open_checkout


def query_of(page):
    return parse_qsl(urlsplit(page.url).query)


def test_pay_by_card(shop, page, toss, artifacts):
    shop("order-e2e-card-01", 15000)
    expect(page.locator("#sandbox-banner")).to_contain_text("SANDBOX")
    expect(page.locator("#amount")).to_contain_text("15,000")
    expect(page.locator("#order-id")).to_have_text("order-e2e-card-01")
    page.screenshot(path=artifacts / "toss-window-en.png", full_page=True)
    page.click("#pay")
    page.wait_for_url("**/shop/success/**")
    query = query_of(page)
    assert [name for name, _ in query] == ["paymentType", "orderId", "paymentKey", "amount"]
    params = dict(query)
    assert params["paymentType"] == "NORMAL"
    assert params["orderId"] == "order-e2e-card-01" and params["amount"] == "15000"
    page.screenshot(path=artifacts / "toss-success-redirect.png", full_page=True)
    payment = toss.confirm(params["paymentKey"], params["orderId"], int(params["amount"])).json()
    assert payment["status"] == "DONE" and payment["method"] == "카드"
    assert payment["checkout"]["url"].endswith("/sandbox/toss/pay/" + params["paymentKey"])
    # The receipt URL is a page the buyer can open.
    page.goto(payment["receipt"]["url"])
    expect(page.locator("#receipt-status")).to_have_text("DONE")
    page.screenshot(path=artifacts / "toss-receipt.png", full_page=True)


def test_decline_in_the_window(shop, page, toss, artifacts):
    shop("order-e2e-decline-01")
    page.click("#decline")
    page.wait_for_url("**/shop/fail/**")
    assert dict(query_of(page)) == {
        "code": "REJECT_CARD_COMPANY",
        "message": "카드사에서 결제를 거절했습니다.",
        "orderId": "order-e2e-decline-01",
    }
    page.screenshot(path=artifacts / "toss-fail-declined.png", full_page=True)
    # The buyer never authenticated: Toss knows no payment for this order.
    assert toss.by_order("order-e2e-decline-01").status_code == 404


def test_close_the_window(shop, page):
    shop("order-e2e-close-01")
    page.click("#close")
    page.wait_for_url("**/shop/fail/**")
    assert dict(query_of(page)) == {
        "code": "PAY_PROCESS_CANCELED",
        "message": "사용자에 의해 결제가 취소되었습니다.",
        "orderId": "order-e2e-close-01",
    }


def test_virtual_account(shop, page, toss, artifacts):
    shop("order-e2e-vbank-01", 30000, method="VIRTUAL_ACCOUNT")
    expect(page.locator("#pay")).to_have_count(0)
    page.screenshot(path=artifacts / "toss-window-virtual-account.png", full_page=True)
    page.click("#virtual-account")
    page.wait_for_url("**/shop/success/**")
    params = dict(query_of(page))
    payment = toss.confirm(params["paymentKey"], params["orderId"], 30000).json()
    assert payment["status"] == "WAITING_FOR_DEPOSIT" and payment["virtualAccount"]["accountNumber"]


def test_window_is_closed_after_use(shop, page, live_server):
    shop("order-e2e-again-01")
    window = page.url
    page.click("#pay")
    page.wait_for_url("**/shop/success/**")
    page.goto(window)
    expect(page.locator("#window-closed")).to_contain_text("IN_PROGRESS")
    expect(page.locator("#pay")).to_have_count(0)


def test_developer_option_arms_a_confirm_fault(shop, page, toss):
    shop("order-e2e-fault-01")
    page.click("#developer-options summary")
    page.select_option("#confirm-fault", "error_after")
    page.click("#pay")
    page.wait_for_url("**/shop/success/**")
    params = dict(query_of(page))
    response = toss.confirm(params["paymentKey"], params["orderId"], 15000)
    assert response.status_code == 500
    assert toss.payment(params["paymentKey"]).json()["status"] == "DONE"


def test_developer_option_schedules_the_deposit(shop, page, toss):
    shop("order-e2e-deposit-01", 30000, method="VIRTUAL_ACCOUNT")
    page.click("#developer-options summary")
    page.select_option("#deposit-after", "60")
    page.click("#virtual-account")
    page.wait_for_url("**/shop/success/**")
    params = dict(query_of(page))
    assert toss.confirm(params["paymentKey"], params["orderId"], 30000).json()["status"] == "WAITING_FOR_DEPOSIT"
    control.advance_clock(seconds=61)
    control.tick()
    assert toss.payment(params["paymentKey"]).json()["status"] == "DONE"


def test_widgets(shop, page, toss, artifacts):
    shop("order-e2e-widget-01", 22000, flow="widget", click=False)
    expect(page.locator(".pgpay-sandbox-widget")).to_be_visible()
    page.check("#pgpay-sandbox-method-VIRTUAL_ACCOUNT")
    page.screenshot(path=artifacts / "toss-widget.png", full_page=True)
    page.click("#buy")
    page.wait_for_url("**/sandbox/toss/pay/**")
    expect(page.locator("#method")).to_contain_text("VIRTUAL_ACCOUNT")
    page.click("#virtual-account")
    page.wait_for_url("**/shop/success/**")
    params = dict(query_of(page))
    assert params["amount"] == "22000"
    assert toss.confirm(params["paymentKey"], params["orderId"], 22000).json()["method"] == "가상계좌"


def test_widget_needs_the_agreement(shop, page):
    shop("order-e2e-widget-02", flow="widget", click=False)
    expect(page.locator("#pgpay-sandbox-agreement")).to_be_checked()
    page.uncheck("#pgpay-sandbox-agreement")
    page.click("#buy")
    expect(page.locator("#error")).to_contain_text("NEED_AGREEMENT_WITH_REQUIRED_TERMS")


def test_sdk_rejects_bad_parameters_without_leaving(shop, page):
    shop("bad", click=False)  # orderId shorter than 6 characters
    page.click("#buy")
    expect(page.locator("#error")).to_contain_text("INVALID_ORDER_ID")
    assert "/shop/checkout/" in page.url


def test_unknown_client_key(shop, page):
    shop("order-e2e-key-01", clientKey="test_ck_notConfigured000000", click=False)
    page.click("#buy")
    page.wait_for_url("**/sandbox/toss/checkout")
    expect(page.locator("#error-code")).to_have_text("INVALID_CLIENT_KEY")


def test_order_id_already_paid(shop, page, toss):
    shop("order-e2e-dup-01")
    page.click("#pay")
    page.wait_for_url("**/shop/success/**")
    params = dict(query_of(page))
    toss.confirm(params["paymentKey"], params["orderId"], 15000)
    shop("order-e2e-dup-01", click=False)
    page.click("#buy")
    page.wait_for_url("**/shop/fail/**")
    assert dict(query_of(page))["code"] == "DUPLICATED_ORDER_ID"


def test_window_in_korean(live_server, sandbox_url, browser, artifacts):
    context = browser.new_context(locale="ko-KR", extra_http_headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    page = context.new_page()
    page.goto(f"{live_server.url}/shop/checkout/?" + urlencode({"orderId": "order-e2e-ko-01", "amount": 49000}))
    page.click("#buy")
    page.wait_for_url("**/sandbox/toss/pay/**")
    expect(page.locator("#sandbox-banner")).to_contain_text("샌드박스")
    expect(page.locator("#pay")).to_contain_text("49,000원 결제하기")
    page.screenshot(path=artifacts / "toss-window-ko.png", full_page=True)
    context.close()


def test_dashboard_deposit_button(shop, page, toss, sandbox_url, artifacts):
    shop("order-e2e-dash-01", 30000, method="VIRTUAL_ACCOUNT")
    page.click("#virtual-account")
    page.wait_for_url("**/shop/success/**")
    params = dict(query_of(page))
    toss.confirm(params["paymentKey"], params["orderId"], 30000)
    page.goto(sandbox_url + "/")
    row = page.locator("#sandbox-payments tr", has_text=params["paymentKey"])
    expect(row).to_contain_text("WAITING_FOR_DEPOSIT")
    page.screenshot(path=artifacts / "sandbox-dashboard.png", full_page=True)
    row.locator("button[value=deposit]").click()
    page.wait_for_url(sandbox_url + "/")
    expect(page.locator("#sandbox-payments tr", has_text=params["paymentKey"])).to_contain_text("DONE")
    assert toss.payment(params["paymentKey"]).json()["status"] == "DONE"
