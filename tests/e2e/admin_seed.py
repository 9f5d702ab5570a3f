"""Orders in every state for the admin's browser tests, made through the sandbox without a browser.

Run inside the example project's ``manage.py shell`` (``server.manage("shell", "-c", SEED)``)
while its server runs: the gateways call the sandbox on that server over HTTP, exactly
as a checkout does, and the sandbox's webhooks come back to it. Prints a JSON map
``{name: {"model", "id", "number", "key"}}``.
"""

SEED = r"""
import json
from decimal import Decimal
from django.contrib.auth import get_user_model
from django_pgpay import payments
from django_pgpay.exceptions import PgPayError
from django_pgpay.sandbox import control
from restaurants.models import Booking, Seat
from shop.models import CartLine, CartOrder, Product

BUYERS = [
    ("김민수", "minsu.kim@example.kr", "010-1234-5678"),
    ("이영희", "younghee@example.kr", "010-2345-6789"),
    ("박지성", "jspark@example.kr", "010-3456-7890"),
    ("최유리", "yuri.choi@example.kr", "010-4567-8901"),
    ("정하늘", "haneul@example.kr", "010-5678-9012"),
    ("Alex Morgan", "alex@example.com", "+82 10 6789 0123"),
]
user = get_user_model().objects.get_or_create(username="seed-buyer")[0]
made = {}


def booking(name, buyer):
    seat = Seat.objects.upcoming().filter(remain__gt=0).order_by("table__price", "datetime")[len(made) % 6]
    order = Booking(seat=seat, amount=seat.table.price, user=user, buyer_name=buyer[0], buyer_email=buyer[1], buyer_phone=buyer[2], gateway="toss")
    assert order.reserve()
    order.save()
    made[name] = {"model": "restaurants/booking", "id": order.pk, "number": order.order_number, "key": ""}
    return order


def cart(name, buyer, gateway, lines):
    total = sum(Product.objects.get(pk=pk).price * quantity for pk, quantity in lines)
    order = CartOrder.objects.create(amount=total, user=user, gateway=gateway, recipient=buyer[0], phone=buyer[2],
                                     address="서울특별시 중구 세종대로 110", buyer_name=buyer[0], buyer_email=buyer[1], buyer_phone=buyer[2])
    for pk, quantity in lines:
        product = Product.objects.get(pk=pk)
        CartLine.objects.create(order=order, product=product, name=product.name, unit_price=product.price, quantity=quantity)
    made[name] = {"model": "shop/cartorder", "id": order.pk, "number": order.order_number, "key": ""}
    return order


def pay_toss(order, method="CARD"):
    key = control.act("toss", "authenticate", order_id=order.order_number, amount=int(order.amount), order_name=order.get_order_name(), method=method)["paymentKey"]
    payments.confirm(order, payment_id=key, amount=order.amount)
    made[next(n for n, m in made.items() if m["number"] == order.order_number)]["key"] = key
    return key


def pay_bootpay(order):
    receipt = control.act("bootpay", "authenticate", order_id=order.order_number, price=int(order.amount), order_name=order.get_order_name())["receipt_id"]
    payments.confirm(order, payment_id=receipt, amount=order.amount)
    made[next(n for n, m in made.items() if m["number"] == order.order_number)]["key"] = receipt
    return receipt


paid = booking("paid", BUYERS[0]); pay_toss(paid)
part = booking("partial", BUYERS[1]); pay_toss(part); payments.cancel(part, Decimal(10000), reason="일부 인원 불참", source="staff")
full = booking("refunded", BUYERS[2]); pay_toss(full); payments.cancel(full, payments.FULL, reason="가게 사정으로 예약 취소")
waiting = booking("waiting", BUYERS[3]); pay_toss(waiting, method="VIRTUAL_ACCOUNT")
ready = booking("ready", BUYERS[4])
failed = booking("failed", BUYERS[5])
control.arm_fault("toss", "confirm", "decline", match=failed.order_number)
try:
    pay_toss(failed)
except PgPayError:
    pass
cart_paid = cart("cart_paid", BUYERS[4], "bootpay", [(1, 2), (4, 1), (5, 1)]); pay_bootpay(cart_paid)
cart_part = cart("cart_partial", BUYERS[5], "toss", [(2, 1), (3, 1)]); pay_toss(cart_part); payments.cancel(cart_part, Decimal(15000), reason="원두 품절", source="staff")
print(json.dumps(made))
"""

#: One more Toss booking paid in full (``PAY_ONE % (buyer name, phone)``): prints its JSON like SEED's entries.
PAY_ONE = r"""
import json
from django.contrib.auth import get_user_model
from django_pgpay import payments
from django_pgpay.sandbox import control
from restaurants.models import Booking, Seat

user = get_user_model().objects.get_or_create(username="seed-buyer")[0]
seat = Seat.objects.upcoming().filter(remain__gt=0).order_by("-table__price", "datetime").first()
order = Booking(seat=seat, amount=seat.table.price, user=user, buyer_name=%r, buyer_phone=%r, gateway="toss")
assert order.reserve()
order.save()
key = control.act("toss", "authenticate", order_id=order.order_number, amount=int(order.amount), order_name=order.get_order_name())["paymentKey"]
payments.confirm(order, payment_id=key, amount=order.amount)
print(json.dumps({"model": "restaurants/booking", "id": order.pk, "number": order.order_number, "key": key, "amount": int(order.amount)}))
"""
