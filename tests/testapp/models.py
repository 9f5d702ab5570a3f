"""A seat-booking shop like the seed tutorials', and a small cart shop beside it."""

from decimal import Decimal

from django.db import models
from django.db.models import F

from django_pgpay.gateways.results import LineItem
from django_pgpay.models import AbstractOrder, AbstractTransaction


class Restaurant(models.Model):
    name = models.CharField(max_length=100)
    address = models.CharField(max_length=200, blank=True)


class Table(models.Model):
    restaurant = models.ForeignKey(Restaurant, on_delete=models.CASCADE)
    price = models.DecimalField(max_digits=12, decimal_places=0)


class Seat(models.Model):
    table = models.ForeignKey(Table, on_delete=models.CASCADE)
    datetime = models.DateTimeField()
    remain = models.PositiveIntegerField(default=1)


class Booking(AbstractOrder):
    buyer_may_cancel_part = True  # the tests give back part as the buyer
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT)

    def get_order_name(self):
        if self.order_name:
            return self.order_name
        if not type(self).seat.is_cached(self):
            # One query for the seat, its table and its restaurant, kept on the instance (a confirm's budget counts it).
            self.seat = Seat.objects.select_related("table__restaurant").get(pk=self.seat_id)
        return f"{self.seat.table.restaurant.name} 예약"

    def reserve(self) -> bool:
        # A conditional UPDATE: never below zero, whatever runs at the same time.
        return bool(Seat.objects.filter(pk=self.seat_id, remain__gt=0).update(remain=F("remain") - 1))

    def release(self) -> None:
        Seat.objects.filter(pk=self.seat_id).update(remain=F("remain") + 1)


class BookingTransaction(AbstractTransaction):
    order = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="transactions")


class Product(models.Model):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=12, decimal_places=2)


class CartOrder(AbstractOrder):
    """A second order model in the same project (Stripe-style line items)."""

    buyer_may_cancel_part = True  # the tests give back part as the buyer

    shipping_address = models.CharField(max_length=200, blank=True)

    @classmethod
    def get_refund_permission(cls) -> str:
        """Refunds need a permission of their own here (the default is the change permission)."""
        return "testapp.delete_cartorder"

    def get_line_items(self):
        return [
            LineItem(name=line.product.name, unit_amount=line.price, quantity=line.quantity)
            for line in self.lines.all()  # .all(): a prefetch_related("lines__product") serves it
        ] or super().get_line_items()


class CartLine(models.Model):
    order = models.ForeignKey(CartOrder, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    price = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))
    quantity = models.PositiveIntegerField(default=1)


class CartTransaction(AbstractTransaction):
    order = models.ForeignKey(CartOrder, on_delete=models.PROTECT, related_name="transactions")
