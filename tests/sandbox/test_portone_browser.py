"""Seed 003 in Chromium: our checkout page, the sandbox's iamport.js and payment window, our return view.

Our gateways are unchanged; only API_BASE and JS_SDK_URL point at the
sandbox. Screenshots go to ``$PGPAY_ARTIFACTS_DIR/sandbox/``.
"""

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from django_pgpay.sandbox import control
from django_pgpay.sandbox import portone as emulated
from django_pgpay.sandbox.base import emulator
from django_pgpay.sandbox.models import SandboxPayment
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from tests.testapp.models import Booking

from .portone_helpers import shop  # noqa: F401 (fixture)
from .waiting import deliver_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"


def open_checkout(page, live_server, client, buyer, seat, alias="portone"):
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.goto(f"{live_server.url}/book/{seat.pk}/{alias}/")
    page.locator("form.pgpay-checkout-start button").click()
    expect(page.locator("#pgpay-portone-pay")).to_be_visible()
    return Booking.objects.get()


@pytest.fixture
def cancels(monkeypatch):
    sandbox = emulator("portone")
    seen, original = [], sandbox.api_cancel

    def spy(ctx, **kwargs):
        seen.append(dict(ctx.data))
        return original(ctx, **kwargs)

    monkeypatch.setattr(sandbox, "api_cancel", spy)
    return seen


def test_seed_003_pay_in_the_sandbox_window(shop, page, live_server, client, buyer, seat, artifacts):
    booking = open_checkout(page, live_server, client, buyer, seat)
    page.screenshot(path=artifacts / "portone-checkout.png", full_page=True)
    page.click("#pgpay-portone-pay")
    window = page.frame_locator("#pgpay-portone-frame")
    expect(window.locator("#amount")).to_contain_text("20,000")
    expect(window.locator("#order-id")).to_have_text(booking.order_number)
    expect(window.locator("#test-channel")).to_be_visible()
    page.screenshot(path=artifacts / "portone-window.png", full_page=True)
    with page.expect_navigation(url="**/pay/portone/return/**"):
        window.locator("#pay").click()
    expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
    page.screenshot(path=artifacts / "portone-paid.png", full_page=True)
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id.startswith("imp_")
    assert emulated.payment_state(booking.pg_payment_id)["status"] == "paid"
    # The window sent the webhook to this payment's notice_url; it is applied without changing anything.
    assert [r.status_code for r in control.deliver_webhooks()] == [200]
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.transactions.filter(kind=K.CONFIRM).count() == 1


def test_an_amount_changed_in_the_browser_never_pays_and_is_cancelled_once(
    shop, page, live_server, client, buyer, seat, artifacts, cancels
):
    booking = open_checkout(page, live_server, client, buyer, seat)
    tamper = "const pay = window.IMP.request_pay; window.IMP.request_pay = (params, cb) => pay({...params, amount: 100}, cb);"
    page.wait_for_function("typeof window.IMP === 'object' && typeof window.IMP.request_pay === 'function'")
    page.evaluate(tamper)
    # PortOne's prepare check blocks the window: the buyer is back with a failure, nothing changed.
    with page.expect_navigation(url="**/pay/portone/return/**"):
        page.click("#pgpay-portone-pay")
    expect(page.get_by_role("heading", name="Payment not completed")).to_be_visible()
    page.screenshot(path=artifacts / "portone-tampered-blocked.png", full_page=True)
    booking.refresh_from_db()
    assert booking.status == S.READY and cancels == []
    # Seed 003's PG lets it through (the sandbox's developer fault): the payment of 100 is made ...
    emulated.allow_other_amount(booking.order_number)
    page.goto(f"{live_server.url}/book/{seat.pk}/portone/")
    page.locator("form.pgpay-checkout-start button").click()
    page.wait_for_function("typeof window.IMP === 'object' && typeof window.IMP.request_pay === 'function'")
    page.evaluate(tamper)
    page.click("#pgpay-portone-pay")
    window = page.frame_locator("#pgpay-portone-frame")
    expect(window.locator("#amount")).to_contain_text("100")
    page.screenshot(path=artifacts / "portone-tampered-window.png", full_page=True)
    with page.expect_navigation(url="**/pay/portone/return/**"):
        window.locator("#pay").click()
    # ... and never pays the order: verified, refused, given back once with its checksum.
    expect(page.locator("body")).to_contain_text("The payment was not accepted and is being cancelled.")
    page.screenshot(path=artifacts / "portone-tampered-refused.png", full_page=True)
    booking.refresh_from_db()
    assert booking.status == S.FAILED and booking.paid_at is None
    assert cancels == [{"imp_uid": booking.pg_payment_id, "checksum": 100, "reason": "amount mismatch"}]
    assert emulated.payment_state(booking.pg_payment_id)["status"] == "cancelled"


def test_closing_the_window_leaves_the_order_payable(shop, page, live_server, client, buyer, seat):
    booking = open_checkout(page, live_server, client, buyer, seat)
    page.click("#pgpay-portone-pay")
    with page.expect_navigation(url="**/pay/portone/return/**"):
        page.frame_locator("#pgpay-portone-frame").locator("#close").click()
    expect(page.get_by_role("heading", name="Payment not completed")).to_be_visible()
    assert "error_code=F400" in page.url and "imp_uid=imp_" in page.url
    booking.refresh_from_db()
    assert booking.status == S.READY


def test_on_a_phone_the_window_redirects_to_m_redirect_url(shop, browser, live_server, client, buyer, seat, artifacts):
    # The gateway's own read timeout (30 s): the return view's verification and the webhook's
    # re-fetch must not give up on the sandbox just because the machine is busy.
    shop(TIMEOUT=(3.05, 30))
    context = browser.new_context(user_agent=IPHONE, viewport={"width": 390, "height": 844}, locale="ko-KR")
    page = context.new_page()
    booking = open_checkout(page, live_server, client, buyer, seat)
    page.click("#pgpay-portone-pay")  # enabled once iamport.js has run
    page.wait_for_url("**/sandbox/portone/v1/pay/**")
    expect(page.locator("#sandbox-banner")).to_contain_text("샌드박스")
    page.screenshot(path=artifacts / "portone-window-mobile-ko.png", full_page=True)
    page.click("#virtual-account")
    page.wait_for_url("**/pay/portone/return/**")  # loaded: the return view has answered
    assert "imp_success=true" in page.url
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    page.screenshot(path=artifacts / "portone-vbank-mobile.png", full_page=True)
    emulated.deposit(booking.pg_payment_id)
    assert emulated.payment_state(booking.pg_payment_id)["status"] == "paid"
    assert deliver_until(booking, S.PAID).status == S.PAID
    context.close()


@pytest.mark.parametrize("hours_left", [5, -1])
def test_the_account_is_due_at_the_shops_deposit_deadline(shop, page, live_server, client, buyer, seat, artifacts, monkeypatch, hours_left):
    """The shop's get_deposit_deadline reaches PortOne as vbank_due: the account is due then, not a week later.

    Five hours left: the account's vbank_date is the deadline (to the minute)
    and so is the booking's. The deadline passed: no account is issued, the
    buyer is back with the failure and may pay another way.
    """
    deadline = (timezone.now() + datetime.timedelta(hours=hours_left)).replace(second=42, microsecond=0)
    monkeypatch.setattr(Booking, "get_deposit_deadline", lambda self: deadline)
    booking = open_checkout(page, live_server, client, buyer, seat)
    page.click("#pgpay-portone-pay")
    window = page.frame_locator("#pgpay-portone-frame")
    with page.expect_navigation(url="**/pay/portone/return/**"):
        window.locator("#virtual-account").click()
    page.screenshot(path=artifacts / f"portone-vbank-due-{hours_left}h.png", full_page=True)
    booking.refresh_from_db()
    if hours_left > 0:
        assert booking.status == S.WAITING_FOR_DEPOSIT
        state = emulated.payment_state(booking.pg_payment_id)
        assert state["vbank_date"] == int(deadline.replace(second=0).timestamp())
        assert booking.expires_at == deadline.replace(second=0)
    else:
        expect(page.get_by_role("heading", name="Payment not completed")).to_be_visible()
        assert booking.status == S.READY
        assert SandboxPayment.objects.get(pg="portone", order_id=booking.order_number).status == "failed"


@pytest.mark.parametrize("hours_left", [5, 0])
def test_v2_asks_for_an_account_due_by_the_shops_deposit_deadline(
    shop, page, live_server, client, buyer, seat, artifacts, monkeypatch, hours_left
):
    """PAY_METHOD VIRTUAL_ACCOUNT: requestPayment carries accountExpiry.validHours; under an hour, no window at all."""
    shop(PAY_METHOD="VIRTUAL_ACCOUNT")
    deadline = timezone.now() + datetime.timedelta(hours=hours_left, minutes=30)
    monkeypatch.setattr(Booking, "get_deposit_deadline", lambda self: deadline)
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.goto(f"{live_server.url}/book/{seat.pk}/portone-v2/")
    if hours_left == 0:
        with page.expect_response(lambda r: r.request.method == "POST") as answered:
            page.locator("form.pgpay-checkout-start button").click()
        assert answered.value.status == 409
        expect(page.locator("body")).to_contain_text("A bank transfer can no longer arrive in time")
        assert Booking.objects.get().status == S.READY
        return
    page.locator("form.pgpay-checkout-start button").click()
    page.click("#pgpay-portone-pay")
    window = page.frame_locator("#pgpay-portone-frame")
    with page.expect_navigation(url="**/pay/portone-v2/return/**"):
        window.locator("#virtual-account").click()
    page.screenshot(path=artifacts / "portone-v2-vbank-due.png", full_page=True)
    booking = Booking.objects.get()
    assert booking.status == S.WAITING_FOR_DEPOSIT
    expired_at = datetime.datetime.fromisoformat(
        emulated.v2_payment_state(booking.order_number)["method"]["expiredAt"].replace("Z", "+00:00")
    )
    assert deadline - datetime.timedelta(hours=1) < expired_at <= deadline  # five whole hours from the checkout


def test_v2_pay_in_the_sandbox_window(shop, page, live_server, client, buyer, seat, artifacts):
    booking = open_checkout(page, live_server, client, buyer, seat, "portone-v2")
    page.click("#pgpay-portone-pay")
    window = page.frame_locator("#pgpay-portone-frame")
    expect(window.locator("#order-id")).to_have_text(booking.order_number)
    page.screenshot(path=artifacts / "portone-v2-window.png", full_page=True)
    with page.expect_navigation(url="**/pay/portone-v2/return/**"):
        window.locator("#pay").click()
    expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
    booking.refresh_from_db()
    assert booking.status == S.PAID
    assert [r.status_code for r in control.deliver_webhooks()] == [200]  # signed, verified, applied once


def test_console_deposit_and_partial_cancel(shop, page, live_server, sandbox_url, artifacts):
    issued = emulated.pay("order-console-0001", 30000, outcome="vbank")
    page.goto(sandbox_url + "/portone/console/")
    row = page.locator("#portone-payments tr", has_text=issued["imp_uid"])
    expect(row).to_contain_text("ready")
    row.locator("button[value=deposit]").click()
    row = page.locator("#portone-payments tr", has_text=issued["imp_uid"])
    expect(row).to_contain_text("paid")
    row.locator("input[name=amount]").fill("5000")
    row.locator("button[value=cancel]").click()
    expect(page.locator("#portone-payments tr", has_text=issued["imp_uid"])).to_contain_text("25,000")
    page.screenshot(path=artifacts / "portone-console.png", full_page=True)
    state = emulated.payment_state(issued["imp_uid"])
    assert state["status"] == "paid" and state["cancel_amount"] == 5000
    page.goto(sandbox_url + "/")
    expect(page.locator("body")).to_contain_text("PortOne V1 (iamport)")
    page.screenshot(path=artifacts / "sandbox-dashboard-portone.png", full_page=True)
