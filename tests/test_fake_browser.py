"""The fake gateway in a real browser: Pay, Decline and Close on its page do what a PG's window does.

Its page is the default templates' checkout page (django_pgpay/base.html and
its stylesheet); the screenshots show them as a project without its own
templates sees them.
"""

import os
from pathlib import Path

import pytest

from django_pgpay.status import OrderStatus as S
from tests.testapp.models import Booking

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts")) / "default-templates"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def buyer_page(page, live_server, client, buyer):
    client.force_login(buyer)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    return page


def test_pay_on_the_fake_page_confirms_the_order(buyer_page, live_server, seat, pg, shots):
    page = buyer_page
    page.goto(f"{live_server.url}/book/{seat.pk}/fake/")
    page.screenshot(path=shots / "checkout-start.png", full_page=True)
    page.click("#pgpay-proceed")
    booking = Booking.objects.get()
    assert page.locator("#pgpay-order-number").inner_text() == booking.order_number
    page.screenshot(path=shots / "checkout-fake.png", full_page=True)
    page.click("#pgpay-fake-pay")
    page.get_by_role("heading", name="Payment complete").wait_for()
    assert page.locator("#pgpay-status").inner_text() == "Paid"
    page.screenshot(path=shots / "return-success.png", full_page=True)
    booking.refresh_from_db()
    assert booking.status == S.PAID and pg.count("confirm") == 1
    # A reload shows success again and confirms nothing twice.
    page.reload()
    page.get_by_role("heading", name="Payment complete").wait_for()
    assert pg.count("confirm") == 1


@pytest.mark.parametrize(("button", "says"), [("#pgpay-fake-decline", "declined"), ("#pgpay-fake-close", "closed the payment window")])
def test_decline_and_close_leave_the_order_payable(buyer_page, live_server, seat, pg, shots, button, says):
    page = buyer_page
    page.goto(f"{live_server.url}/book/{seat.pk}/fake/")
    page.click("#pgpay-proceed")
    page.click(button)
    page.get_by_role("heading", name="Payment not completed").wait_for()
    assert says in page.locator("#pgpay-failure").inner_text()
    page.screenshot(path=shots / f"return-failure-{button.rsplit('-', 1)[-1]}.png", full_page=True)
    booking = Booking.objects.get()
    assert booking.status == S.READY and pg.count("confirm") == 0
    # Back to the checkout page: the same order, paid on the second try.
    page.goto(f"{live_server.url}/book/{seat.pk}/fake/")
    page.click("#pgpay-proceed")
    page.click("#pgpay-fake-pay")
    page.get_by_role("heading", name="Payment complete").wait_for()
    assert Booking.objects.get().status == S.PAID
