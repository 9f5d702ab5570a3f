import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from django_pgpay.models import new_order_number
from django_pgpay.status import OrderStatus


def test_generated_order_numbers_suit_every_pg(settings):
    numbers = {new_order_number() for _ in range(2000)}
    assert len(numbers) == 2000
    for number in numbers:
        assert re.fullmatch(r"[A-Za-z0-9_-]{6,40}", number)  # Toss 6-64, PortOne <= 40
    settings.PGPAY = {**settings.PGPAY, "ORDER_NUMBER_PREFIX": "shop-"}
    assert new_order_number().startswith("shop-")


@pytest.mark.django_db
def test_new_order_defaults(seat, buyer, settings):
    from tests.testapp.models import Booking

    before = Booking(seat=seat, amount=Decimal(20000), user=buyer)
    before.save()
    assert before.status == OrderStatus.READY
    assert before.currency == "KRW"
    assert before.gateway == "fake"
    assert before.expires_at is not None
    assert before.balance == Decimal(20000)
    assert before.paid_at is None
    settings.PGPAY = {**settings.PGPAY, "CURRENCY": "usd"}
    usd = Booking.objects.create(seat=seat, amount=Decimal("10.50"), user=buyer)
    assert usd.currency == "USD"


@pytest.mark.django_db
def test_krw_orders_in_the_billions_are_exact(seat):
    from tests.testapp.models import Booking

    booking = Booking.objects.create(seat=seat, amount=Decimal("9876543210987"))
    assert Booking.objects.get(pk=booking.pk).amount == Decimal("9876543210987")


@pytest.mark.django_db
def test_order_number_validation(seat):
    from tests.testapp.models import Booking

    for bad in ["abc", "has space12", "한글주문번호입니다", "x" * 65, "semi;colon1"]:
        with pytest.raises(ValidationError):
            Booking(seat=seat, amount=Decimal(1000), order_number=bad).full_clean()


@pytest.mark.django_db
def test_database_refuses_impossible_amounts_and_statuses(make_booking):
    from tests.testapp.models import Booking

    booking = make_booking()
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(canceled_amount=Decimal(20001))
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(status="REFUNDED")
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(canceled_amount=Decimal(-1))


@pytest.mark.django_db
def test_two_order_models_side_by_side(make_booking, pg, buyer):
    from django_pgpay import payments
    from tests.testapp.models import Booking, BookingTransaction, CartLine, CartOrder, CartTransaction, Product

    assert Booking.get_transaction_model() is BookingTransaction
    assert CartOrder.get_transaction_model() is CartTransaction
    book = make_booking()
    cart = CartOrder.objects.create(amount=Decimal("30000"), user=buyer)
    CartLine.objects.create(order=cart, product=Product.objects.create(name="김치", price=10000), price=10000, quantity=3)
    for order in (book, cart):
        payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount))
    assert [i.name for i in cart.get_line_items()] == ["김치"]
    assert BookingTransaction.objects.get().order == book
    assert CartTransaction.objects.get().order == cart
    assert book.status == cart.status == OrderStatus.PAID


def test_snapshot_and_repr_carry_no_secret(settings):
    from django_pgpay.conf import get_gateway

    settings.PGPAY = {
        "DEFAULT_GATEWAY": "fake",
        "GATEWAYS": {"fake": {"CLASS": "django_pgpay.gateways.fake.FakeGateway", "OPTIONS": {"SECRET_KEY": "sk_very_secret"}}},
    }
    gw = get_gateway()
    assert "sk_very_secret" not in repr(gw)
    assert "sk_very_secret" not in str(vars(gw).get("alias"))
