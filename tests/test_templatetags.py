"""``{% load pgpay %}``: the cancel form."""

from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation

pytestmark = pytest.mark.django_db

FORM = Template("{% load pgpay %}{% pgpay_cancel_form order partial=True next='/history/' %}")


def render(order) -> str:
    return FORM.render(Context({"order": order, "csrf_token": "t"}))


def test_partial_form_shows_the_balance_in_the_currencys_decimals(make_booking):
    """Regression: the placeholder showed the stored three decimal places ("20000.000" won)."""
    won = make_booking(amount=Decimal(20000))
    html = render(won)
    assert 'placeholder="20000"' in html and "20000.000" not in html
    dollars = make_booking(amount=Decimal("10.5"), currency="USD")
    assert 'placeholder="10.50"' in render(dollars)


def test_each_rendering_has_a_fresh_idempotency_token(make_booking):
    booking = make_booking()
    first, second = render(booking), render(booking)
    token = 'name="token" value="'
    assert first.split(token)[1][:32] != second.split(token)[1][:32]


FULL = Template("{% load pgpay %}{% pgpay_cancel_form order next='/history/' label='Cancel booking' %}")


def render_full(order) -> str:
    return FULL.render(Context({"order": order, "csrf_token": "t"}))


def test_the_full_cancel_carries_its_confirmation_step(paid_booking):
    """Cancel everything: the button opens what is refunded and what is left; only "Refund now" posts, with confirm=1."""
    from django_pgpay import payments

    payments.cancel(paid_booking, "5000", reason="part")  # 15,000 left
    html = render_full(paid_booking)
    summary, box = html.split("</summary>", 1)
    assert '<details class="pgpay-cancel-inline">' in summary and "Cancel booking" in summary and "<form" not in summary
    assert "Amount to refund" in box and "₩15,000" in box  # the balance, not the order's 20,000
    assert "Left after the refund" in box and "₩0" in box
    with translation.override("ko"):
        korean = render_full(paid_booking)
    assert "15,000원" in korean and "0원" in korean  # as the shop's pages show money
    assert box.count("<form") == 1 and 'name="full" value="1"' in box and 'name="confirm" value="1"' in box
    assert 'name="amount"' not in box and "Refund now" in box


def test_the_full_cancel_of_an_unpaid_virtual_account_says_it_closes_it(make_booking, pg):
    from django_pgpay import payments

    booking = make_booking()
    payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount, virtual_account=True))
    assert booking.status == "WAITING_FOR_DEPOSIT"
    html = render_full(booking)
    assert "The virtual account will be closed" in html and "Close the virtual account" in html
    assert "Amount to refund" not in html


def test_the_partial_form_still_goes_through_the_confirmation_page(make_booking):
    html = render(make_booking())
    assert "<details" not in html and 'name="confirm"' not in html and 'name="amount"' in html


def test_an_unpaid_virtual_account_is_offered_the_full_cancel_only(make_booking, pg):
    """Regression: the partial form (an amount box) was shown, and whatever was typed was refused
    ("An unpaid virtual account can only be cancelled in full.")."""
    from django_pgpay import payments

    booking = make_booking()
    payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount, virtual_account=True))
    assert booking.status == "WAITING_FOR_DEPOSIT"
    assert render(booking) == ""  # no partial form at all, whatever the template
    both = Template(
        "{% load pgpay %}<div>{% pgpay_cancel_form order next='/o/' label='Cancel the order' %}"
        "{% pgpay_cancel_form order partial=True next='/o/' label='Refund part' %}</div>"
    ).render(Context({"order": booking, "csrf_token": "t"}))
    assert both.count("<form") == 1 and 'name="amount"' not in both and "Refund part" not in both
    assert 'name="full" value="1"' in both and "Close the virtual account" in both


def test_the_buyer_of_an_order_cancelled_in_full_only_gets_no_amount_box(paid_booking, buyer, refund_staff, monkeypatch):
    # The view refuses their partial cancel (FULL_CANCEL_ONLY): a form to type one in would only
    # lead to that refusal. Staff, who may refund part, still get it.
    from types import SimpleNamespace

    from tests.testapp.models import Booking

    monkeypatch.setattr(Booking, "buyer_may_cancel_part", False)
    page = Template("{% load pgpay %}{% pgpay_cancel_form order partial=True label='Refund part' %}")
    as_buyer = page.render(Context({"order": paid_booking, "csrf_token": "t", "request": SimpleNamespace(user=buyer)}))
    as_staff = page.render(Context({"order": paid_booking, "csrf_token": "t", "request": SimpleNamespace(user=refund_staff)}))
    assert as_buyer == "" and 'name="amount"' in as_staff
