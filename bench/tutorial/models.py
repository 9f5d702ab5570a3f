"""The tutorial's ``AvailableSeat`` and ``Booking`` (seed 001), beside the example project's restaurants and tables.

``AvailableSeat`` is the tutorial's own: a ``remain`` count and nothing to
keep it in range (the example project's ``Seat`` has a check constraint).
"""

from django.conf import settings
from django.db import models


class AvailableSeat(models.Model):
    """One table at one time with ``remain`` places left, as the tutorial keeps it."""

    restaurant = models.ForeignKey("restaurants.Restaurant", on_delete=models.CASCADE)
    table = models.ForeignKey("restaurants.Table", on_delete=models.CASCADE)
    datetime = models.DateTimeField()
    remain = models.IntegerField(default=0)


class Booking(models.Model):
    """One booking as the tutorial keeps it: a status, a price and the PG's payment key."""

    class PayStatus(models.TextChoices):
        READY = "READY", "결제대기"
        PAID = "PAID", "결제완료"
        CANCELED = "CANCELED", "취소"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    restaurant = models.ForeignKey("restaurants.Restaurant", on_delete=models.CASCADE)
    table = models.ForeignKey("restaurants.Table", on_delete=models.CASCADE)
    seat = models.ForeignKey(AvailableSeat, on_delete=models.CASCADE)
    order_number = models.CharField(max_length=64)
    price = models.DecimalField(max_digits=12, decimal_places=0)
    status = models.CharField(max_length=16, choices=PayStatus.choices, default=PayStatus.READY)
    pg_transaction_number = models.CharField(max_length=200, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
