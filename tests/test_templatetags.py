"""``{% load pgpay %}``: the cancel form."""

from decimal import Decimal

import pytest
from django.template import Context, Template

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
