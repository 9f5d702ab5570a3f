"""The CSV export of a fixed set of orders, byte for byte against files in tests/fixtures/golden/.

One order in each state a shop meets: paid, partially refunded, refunded, failed,
expired and waiting for a deposit, made through the real operations on the fake PG,
then given fixed numbers, ids and times. The files are what Excel opens: UTF-8 with a
BOM, CRLF line ends, Hangul intact. After a deliberate change of the export, rewrite
them with ``PGPAY_UPDATE_GOLDEN=1 pytest tests/test_exports_golden.py`` and read the diff.
"""

from __future__ import annotations

import datetime
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import translation

from django_pgpay import exports, payments
from django_pgpay.exceptions import PaymentDeclined

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
KST = datetime.timezone(datetime.timedelta(hours=9))


def at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 11, day, hour, minute, tzinfo=KST)


def fix(order, *, number: str, payment_id: str = "", method: str = "", created, paid=None, canceled=None):
    """Give ``order`` fixed values where the operations made random or current ones."""
    type(order).objects.filter(pk=order.pk).update(
        order_number=number, pg_payment_id=payment_id, method=method, created=created, paid_at=paid, canceled_at=canceled
    )


@pytest.fixture
def orders(make_booking, pg, seat):
    """Six bookings, one per state, with Korean buyers and fixed values."""
    seat.remain = 20
    seat.save()

    def book(amount, name, **fields):
        return make_booking(amount=Decimal(amount), order_name="한우집 저녁 2인", buyer_name=name, **fields)

    def pay(order, **kwargs):
        payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount, **kwargs), amount=order.amount)

    paid = book(42000, "김민수", buyer_phone="010-1234-5678")
    pay(paid)
    fix(paid, number="GOLD01PAID", payment_id="tgen_20261101A", method="카드", created=at(1, 18), paid=at(1, 18, 2))

    partial = book(30000, "이영희")
    pay(partial)
    payments.cancel(partial, Decimal(12000), reason="일부 메뉴 품절")
    fix(partial, number="GOLD02PART", payment_id="imp_20261102B", method="card", created=at(2, 12), paid=at(2, 12, 1), canceled=at(2, 15))

    refunded = book(20000, "박지성")
    pay(refunded)
    payments.cancel(refunded, payments.FULL, reason="가게 사정")
    fix(refunded, number="GOLD03FULL", payment_id="pi_20261103C", method="CARD", created=at(3, 9), paid=at(3, 9, 5), canceled=at(3, 23, 59))

    failed = book(15000, "최유리")
    pg.fail_next("confirm", "decline")
    with pytest.raises(PaymentDeclined):
        pay(failed)
    fix(failed, number="GOLD04FAIL", payment_id="tgen_20261104D", method="카드", created=at(4, 20))

    expired = book(18000, '=HYPERLINK("x")')  # a formula is shown as text
    payments.expire(expired)
    fix(expired, number="GOLD05EXPD", created=at(5, 7))

    waiting = book(25000, "Kim Haneul", buyer_email="haneul@example.kr")
    pay(waiting, virtual_account=True)
    fix(waiting, number="GOLD06WAIT", payment_id="tgen_20261106F", method="가상계좌", created=at(6, 10, 30))

    statuses = dict(type(paid).objects.values_list("order_number", "status"))
    assert statuses == {
        "GOLD01PAID": "PAID",
        "GOLD02PART": "PARTIAL_CANCELED",
        "GOLD03FULL": "CANCELED",
        "GOLD04FAIL": "FAILED",
        "GOLD05EXPD": "EXPIRED",
        "GOLD06WAIT": "WAITING_FOR_DEPOSIT",
    }
    return type(paid).objects.order_by("order_number")


def check(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("PGPAY_UPDATE_GOLDEN"):
        path.write_bytes(data)
    expected = path.read_bytes()
    assert data == expected, f"{name} differs; if the change is meant, run with PGPAY_UPDATE_GOLDEN=1 and read the diff"


@pytest.mark.parametrize("language", ["ko", "en"])
def test_bookings_csv_matches_the_golden_file(orders, language):
    with translation.override(language):
        data = "".join(exports.iter_csv(orders)).encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    check(f"orders-{language}.csv", data)


def test_the_balance_column_sums_to_what_was_kept(orders):
    import csv
    import io

    text = "".join(exports.iter_csv(orders, ["order_number", "paid_amount", "canceled_amount", "balance"], bom=False))
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert sum(Decimal(r[3]) for r in rows) == Decimal(42000 + 18000)  # paid + what the partial refund left
    assert sum(Decimal(r[1]) for r in rows) == Decimal(42000 + 30000 + 20000)


def test_cart_orders_csv_lists_the_items(admin_client):
    from tests.testapp.models import CartOrder, Product

    kimchi = Product.objects.create(name="배추김치 1kg", price=Decimal(12000))
    tofu = Product.objects.create(name="국산콩 두부", price=Decimal(3000))
    order = CartOrder.objects.create(
        amount=Decimal(27000), order_name="반찬 묶음", buyer_name="정하늘", shipping_address="서울특별시 중구 세종대로 110"
    )
    order.lines.create(product=kimchi, price=Decimal(12000), quantity=2)
    order.lines.create(product=tofu, price=Decimal(3000), quantity=1)
    CartOrder.objects.filter(pk=order.pk).update(order_number="GOLD07CART", created=at(7, 11))
    response = admin_client.post(
        "/admin/testapp/cartorder/", {"action": "export_csv", "_selected_action": [order.pk]}, HTTP_ACCEPT_LANGUAGE="ko"
    )
    check("cart-orders-ko.csv", b"".join(response.streaming_content))
