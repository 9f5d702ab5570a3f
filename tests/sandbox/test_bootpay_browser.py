"""OUR Bootpay checkout in real Chromium against the emulated Bootpay: its SDK stand-in, window and events.

Nothing is stubbed: the shop's checkout template loads the sandbox's SDK
from ``JS_SDK_URL``, the buyer pays in the sandbox's window (an iframe over
the page, a popup, or the whole page in redirect mode), our return view
approves the payment with ``POST /v2/confirm`` at the sandbox, and the cancel
forms of the history page give the money back there.
"""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from django_pgpay.sandbox import bootpay as emulated
from django_pgpay.sandbox import control
from django_pgpay.sandbox.models import SandboxPayment
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T
from tests.testapp.models import Booking

from .waiting import deliver_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WINDOW = "iframe[name=pgpay-sandbox-bootpay]"


@pytest.fixture
def buyer_page(page, live_server, client, buyer):
    """The buyer's browser, logged in to the shop."""
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    return page


@pytest.fixture
def checkout(buyer_page, live_server, seat, shop_gateway):
    """Open the shop's Bootpay checkout for a new booking of ``seat`` (20,000 won) and press Pay."""

    def open_checkout(click=True, **gateway_options):
        shop_gateway(**gateway_options)
        page = buyer_page
        page.goto(f"{live_server.url}/book/{seat.pk}/bootpay/")
        page.get_by_role("button", name="Proceed to payment").click()
        expect(page.get_by_role("button", name="Pay")).to_be_enabled()
        if click:
            page.get_by_role("button", name="Pay").click()
        return page

    return open_checkout


def without_token(url: str) -> str:
    """``url`` without the checkout's buyer token (``pgpay_t=…``), which comes first in the query."""
    return re.sub(r"([?&])pgpay_t=[^&]*&?", r"\1", url)


def window(page):
    return page.frame_locator(WINDOW)


def test_pay_in_the_window_then_seed_004_cancels(checkout, live_server, sandbox_url, seat, artifacts):
    page = checkout(click=False)
    page.screenshot(path=artifacts / "bootpay-shop-checkout.png", full_page=True)
    page.get_by_role("button", name="Pay").click()
    frame = window(page)
    expect(frame.locator("#sandbox-banner")).to_contain_text("SANDBOX")
    expect(frame.locator("#amount")).to_contain_text("20,000")
    booking = Booking.objects.get()
    expect(frame.locator("#order-id")).to_have_text(booking.order_number)
    expect(frame.locator("#approval")).to_contain_text("separately_confirmed")
    expect(frame.locator("#items")).to_contain_text("한우집 예약")
    page.screenshot(path=artifacts / "bootpay-window-iframe.png", full_page=True)
    frame.locator("#pay").click()
    # The SDK's confirm event takes the buyer to our return view, which approves the payment at the sandbox.
    page.get_by_role("heading", name="Payment complete").wait_for()
    assert without_token(page.url).startswith(f"{live_server.url}/pay/bootpay/return/?event=confirm&receipt_id=")
    page.screenshot(path=artifacts / "bootpay-return-paid.png", full_page=True)
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.amount == Decimal(20000)
    receipt = emulated.receipt(booking.pg_payment_id)
    assert (receipt["status"], receipt["price"], receipt["order_id"]) == (1, 20000, booking.order_number)

    # Seed 004 on the history page: 3,000 first, then whatever is left.
    page.goto(f"{live_server.url}/history/")
    item = page.locator(f"#booking-{booking.order_number}")
    item.locator("input[name=amount]").fill("3000")
    item.get_by_role("button", name="부분 취소").click()
    expect(page.locator(".pgpay-cancel-confirm")).to_contain_text("₩3,000")  # the confirmation step states it
    page.locator(".pgpay-cancel-confirm .pgpay-cancel-button").click()
    expect(page.locator(".message")).to_have_text("Part of the payment was cancelled.")
    page.locator(f"#booking-{booking.order_number}").locator(
        "summary", has_text="예약 취소"
    ).click()  # opens the full cancel's confirmation in place
    page.locator(".pgpay-cancel-confirm:visible .pgpay-cancel-button").click()
    expect(page.locator(".message")).to_have_text("The payment was cancelled.")
    page.screenshot(path=artifacts / "bootpay-history-cancelled.png", full_page=True)
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount, booking.balance) == (S.CANCELED, Decimal(20000), 0)
    assert booking.canceled_at is not None
    rows = list(booking.transactions.filter(kind=K.CANCEL).order_by("pk"))
    assert [(r.status, r.amount) for r in rows] == [(T.SUCCEEDED, Decimal(3000)), (T.SUCCEEDED, Decimal(17000))]
    at_bootpay = SandboxPayment.objects.get(key=booking.pg_payment_id).session["cancels"]
    assert [c["cancel_id"] for c in at_bootpay] == [r.idempotency_key for r in rows]
    page.goto(receipt["receipt_url"])
    expect(page.locator("#receipt-status")).to_contain_text("20")
    expect(page.locator("#receipt-cancels")).to_contain_text(rows[0].idempotency_key)
    page.screenshot(path=artifacts / "bootpay-receipt.png", full_page=True)
    seat.refresh_from_db()
    assert seat.remain == 3


def test_the_same_partial_cancel_form_twice_refunds_once(checkout, live_server):
    page = checkout()
    window(page).locator("#pay").click()
    page.get_by_role("heading", name="Payment complete").wait_for()
    booking = Booking.objects.get()
    page.goto(f"{live_server.url}/history/")
    form = page.locator(f"#booking-{booking.order_number} form", has=page.locator("input[name=amount]"))
    form.locator("input[name=amount]").fill("3000")
    # A double click: the browser sends the same form, with its token, twice.
    statuses = form.evaluate(
        """async (form) => {
            const body = () => { const data = new FormData(form); data.append("confirm", "1"); return data; };
            const send = () => fetch(form.action, {method: "POST", body: body(), credentials: "same-origin"});
            const first = await send();
            const second = await send();
            return [first.status, second.status];
        }"""
    )
    assert statuses == [200, 200]  # both redirected to the history page
    booking.refresh_from_db()
    assert booking.canceled_amount == Decimal(3000)
    assert emulated.receipt(booking.pg_payment_id)["cancelled_price"] == 3000
    assert booking.transactions.filter(kind=K.CANCEL).count() == 1


def test_a_cancel_made_in_bootpays_admin_leaves_the_order_canceled(checkout, live_server, sandbox_url, artifacts):
    page = checkout()
    window(page).locator("#pay").click()
    page.get_by_role("heading", name="Payment complete").wait_for()
    booking = Booking.objects.get()
    # Bootpay's admin (the sandbox dashboard): cancel in full.
    page.goto(sandbox_url + "/")
    row = page.locator("#sandbox-payments tr", has_text=booking.pg_payment_id)
    expect(row).to_contain_text("20000")
    page.screenshot(path=artifacts / "bootpay-dashboard.png", full_page=True)
    row.locator("button[value=cancel]").click()
    page.wait_for_url(sandbox_url + "/")
    expect(page.locator("#sandbox-payments tr", has_text=booking.pg_payment_id)).to_contain_text("20")
    # Then the buyer cancels in the shop: no error page, the order follows Bootpay.
    page.goto(f"{live_server.url}/history/")
    page.locator(f"#booking-{booking.order_number}").locator(
        "summary", has_text="예약 취소"
    ).click()  # opens the full cancel's confirmation in place
    page.locator(".pgpay-cancel-confirm:visible .pgpay-cancel-button").click()
    expect(page.locator(".message")).to_have_text("The payment was cancelled.")
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.CANCELED, Decimal(20000))


def test_a_partial_cancel_in_bootpays_admin_dashboard(checkout, sandbox_url):
    page = checkout()
    window(page).locator("#pay").click()
    page.get_by_role("heading", name="Payment complete").wait_for()
    booking = Booking.objects.get()
    page.goto(sandbox_url + "/")
    row = page.locator("#sandbox-payments tr", has_text=booking.pg_payment_id)
    row.locator("input[name=amount]").fill("5000")
    row.locator("button[value=cancel]").click()
    page.wait_for_url(sandbox_url + "/")
    assert emulated.receipt(booking.pg_payment_id)["cancelled_price"] == 5000
    control.deliver_webhooks()  # PAYMENT_COMPLETED, then PAYMENT_PARTIAL_CANCELLED to our webhook view
    booking.refresh_from_db()
    assert (booking.status, booking.canceled_amount) == (S.PARTIAL_CANCELED, Decimal(5000))


def test_redirect_mode(checkout, live_server, artifacts):
    page = checkout(OPEN_TYPE="redirect")
    page.wait_for_url("**/sandbox/bootpay/pay/**")  # the whole page, no iframe
    page.screenshot(path=artifacts / "bootpay-window-redirect.png", full_page=True)
    page.locator("#pay").click()
    page.get_by_role("heading", name="Payment complete").wait_for()
    booking = Booking.objects.get()
    assert without_token(page.url).startswith(f"{live_server.url}/pay/bootpay/return/?event=confirm&receipt_id={booking.pg_payment_id}")
    assert f"order_id={booking.order_number}" in page.url and "status=2" in page.url
    assert booking.status == S.PAID


def test_redirect_mode_closed_window(checkout, live_server):
    page = checkout(OPEN_TYPE="redirect")
    page.wait_for_url("**/sandbox/bootpay/pay/**")
    page.locator("#close").click()
    page.get_by_text("You closed the payment window before paying.").wait_for()
    assert without_token(page.url).startswith(f"{live_server.url}/pay/bootpay/return/?event=cancel&")
    assert Booking.objects.get().status == S.READY


def test_popup_mode(checkout, buyer_page, live_server):
    page = checkout(click=False, OPEN_TYPE="popup")
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Pay").click()
    popup = opened.value
    popup.wait_for_url("**/sandbox/bootpay/pay/**")
    popup.locator("#pay").click()
    page.get_by_role("heading", name="Payment complete").wait_for()
    assert Booking.objects.get().status == S.PAID


def test_closing_the_window_is_the_cancel_event(checkout, live_server):
    page = checkout()
    window(page).locator("#close").click()
    page.get_by_text("You closed the payment window before paying.").wait_for()
    assert without_token(page.url).startswith(f"{live_server.url}/pay/bootpay/fail/?event=cancel")
    expect(page.locator(WINDOW)).to_have_count(0)
    assert Booking.objects.get().status == S.READY


def test_a_decline_in_the_window_is_the_error_event(checkout, live_server):
    page = checkout()
    window(page).locator("#decline").click()
    page.get_by_text("The payment was stopped before it was approved.").wait_for()
    assert without_token(page.url).startswith(f"{live_server.url}/pay/bootpay/fail/?event=error")
    booking = Booking.objects.get()
    assert booking.status == S.READY
    assert SandboxPayment.objects.get(pg="bootpay").state["status"] == -1


def test_a_declined_approval_from_the_windows_developer_options(checkout, seat):
    page = checkout()
    frame = window(page)
    frame.locator("#developer-options summary").click()
    frame.locator("#confirm-fault").select_option("decline")
    frame.locator("#pay").click()
    page.get_by_text("[카드사 거절] 한도가 초과되었습니다. (8326)").wait_for()
    assert Booking.objects.get().status == S.FAILED


def test_virtual_account_then_the_deposit(checkout, sandbox_url, artifacts):
    # The gateway's own read timeout (30 s): the return view's approval call must not give up
    # on the sandbox just because the machine is busy.
    page = checkout(TIMEOUT=(3.05, 30))
    frame = window(page)
    frame.locator("#virtual-account").click()
    page.get_by_role("heading", name="Virtual account issued").wait_for()
    booking = Booking.objects.get()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    account = booking.pg_data["vbank_account_number"]
    expect(page.locator("#pgpay-vbank-account")).to_have_text(account)
    expect(page.locator("#pgpay-vbank-bank")).to_have_text("Shinhan Bank")  # Bootpay's bank_code 088, by name
    page.screenshot(path=artifacts / "bootpay-return-virtual-account.png", full_page=True)
    page.goto(sandbox_url + "/")
    row = page.locator("#sandbox-payments tr", has_text=booking.pg_payment_id)
    # The dashboard posts and comes back to the same URL: wait for that navigation and for the
    # receipt's new state (no Deposit button), not for the URL the page is already on.
    with page.expect_navigation():
        row.locator("button[value=deposit]").click()
    expect(row.locator("button[value=deposit]")).to_have_count(0)
    assert emulated.receipt(booking.pg_payment_id)["status"] == 1
    assert deliver_until(booking, S.PAID).status == S.PAID


def test_window_in_korean(browser, live_server, client, buyer, seat, shop_gateway, artifacts):
    shop_gateway()
    context = browser.new_context(locale="ko-KR", extra_http_headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    client.force_login(buyer)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.goto(f"{live_server.url}/book/{seat.pk}/bootpay/")
    page.locator("form button[type=submit]").click()
    page.locator("#pgpay-bootpay-pay").click()
    frame = window(page)
    expect(frame.locator("#sandbox-banner")).to_contain_text("샌드박스")
    expect(frame.locator("#pay")).to_contain_text("20,000원 결제하기")
    expect(frame.locator("#close")).to_contain_text("결제창 닫기")
    page.screenshot(path=artifacts / "bootpay-window-ko.png", full_page=True)
    frame.locator("#pay").click()
    page.wait_for_url("**/pay/bootpay/return/**")
    assert Booking.objects.get().status == S.PAID
    context.close()


# --- the SDK stand-in on its own ------------------------------------------------------------


def sdk_call(page, request, then=""):
    # The Pay button is visible while the SDK's <script> is still loading.
    page.wait_for_function("() => typeof window.Bootpay !== 'undefined'")
    return page.evaluate(
        """async ([request, then]) => {
            try { const result = await Bootpay.requestPayment(request);
                  if (then === "confirm") { return await Bootpay.confirm(); }
                  return result; }
            catch (error) { return error; }
        }""",
        [request, then],
    )


@pytest.fixture
def sdk_page(checkout):
    return checkout(click=False)


def test_the_sdk_refuses_a_price_that_is_not_the_sum_of_items(sdk_page):
    request = {
        "client_key": "test_bootpay_ck_sandboxTESTS0000",
        "price": 10000,
        "order_name": "한우집 예약",
        "order_id": "sdk-order-0001",
        "items": [{"id": "a", "name": "한우", "qty": 2, "price": 4000}],
    }
    answer = sdk_call(sdk_page, request)
    assert answer["event"] == "error" and answer["error_code"] == "RC_PRICE_NOT_MATCH"
    assert not SandboxPayment.objects.exists()


def test_the_sdk_refuses_an_unknown_client_key(sdk_page):
    request = {"client_key": "test_bootpay_ck_unknown", "price": 1000, "order_name": "x", "order_id": "sdk-order-0002"}
    answer = sdk_call(sdk_page, request)
    assert (answer["event"], answer["error_code"]) == ("error", "APP_CLIENT_KEY_NOT_FOUND")
    expect(sdk_page.locator(WINDOW)).to_have_count(0)


def test_the_sdk_without_separate_approval_and_browser_confirm(sdk_page):
    base = {"client_key": "test_bootpay_ck_sandboxTESTS0000", "price": 1000, "order_name": "x"}
    page = sdk_page
    page.evaluate("(request) => { window.__answer = Bootpay.requestPayment(request); }", {**base, "order_id": "sdk-order-0003"})
    window(page).locator("#pay").click()
    done = page.evaluate("() => window.__answer")
    assert done["event"] == "done" and done["data"]["status"] == 1 and done["receipt_id"] == done["data"]["receipt_id"]
    # Separate approval, approved from the browser with Bootpay.confirm().
    page.evaluate(
        "(request) => { window.__answer = Bootpay.requestPayment(request).then((r) => Bootpay.confirm().then((d) => [r, d])); }",
        {**base, "order_id": "sdk-order-0004", "extra": {"separately_confirmed": True}},
    )
    window(page).locator("#pay").click()
    confirmed, done = page.evaluate("() => window.__answer")
    assert (confirmed["event"], confirmed["data"]["status"]) == ("confirm", 2)
    assert (done["event"], done["data"]["status"]) == ("done", 1)
    expect(page.locator(WINDOW)).to_have_count(0)
