"""The restaurant booking of the seed tutorials (000/001): restaurants, tables, seats, bookings.

A :class:`Seat` is one table at one time, with ``remain`` places left of its
``capacity``. A :class:`Booking` is django-pgpay's order: it takes one place
when it is created and gives it back exactly once when it is cancelled in
full, expires unpaid or fails (the library calls :meth:`Booking.release` on
that one status change, under the order's row lock).

Taking a place is ONE conditional UPDATE, inside the transaction that creates
the READY booking (``CheckoutMixin`` runs ``reserve()`` there)::

    UPDATE seat SET remain = remain - 1 WHERE id = %s AND remain > 0

The database decides: of two buyers for the last place, exactly one UPDATE
matches a row, the other matches none and gets the sold-out page. Nothing is
read into Python and written back (the tutorial's ``seat.remain -= 1;
seat.save()`` sells the same place twice under load).
"""

from __future__ import annotations

import datetime

from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_pgpay.models import AbstractOrder, AbstractTransaction
from example_project.tiles import gradient, validate_colors


class Restaurant(models.Model):
    """A restaurant taking bookings."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    address = models.CharField(_("address"), max_length=200, blank=True)
    description = models.TextField(_("description"), blank=True)
    #: Two CSS colours for the picture tile (the demo has no images).
    colors = models.CharField(_("colours"), max_length=40, default="#ff8a65 #d84315", validators=[validate_colors])

    class Meta:
        ordering = ["pk"]
        verbose_name = _("restaurant")
        verbose_name_plural = _("restaurants")

    def __str__(self) -> str:
        return self.name

    @property
    def gradient(self) -> str:
        return gradient(self.colors)


class Table(models.Model):
    """A kind of table at a restaurant, with the deposit a booking costs."""

    restaurant = models.ForeignKey(Restaurant, on_delete=models.CASCADE, related_name="tables", verbose_name=_("restaurant"))
    name = models.CharField(_("name"), max_length=100)
    price = models.DecimalField(_("deposit"), max_digits=12, decimal_places=0)

    class Meta:
        ordering = ["restaurant", "price", "pk"]
        verbose_name = _("table")
        verbose_name_plural = _("tables")
        constraints = [models.UniqueConstraint(fields=["restaurant", "name"], name="restaurants_table_unique_name")]

    def __str__(self) -> str:
        return f"{self.restaurant.name} · {self.name}"


class SeatQuerySet(models.QuerySet):
    def upcoming(self):
        return self.filter(datetime__gt=timezone.now())


class Seat(models.Model):
    """One table at one time: ``remain`` of ``capacity`` places are free."""

    table = models.ForeignKey(Table, on_delete=models.CASCADE, related_name="seats", verbose_name=_("table"))
    datetime = models.DateTimeField(_("date and time"))
    capacity = models.PositiveIntegerField(_("places"), default=1)
    remain = models.PositiveIntegerField(_("places left"), default=1)

    objects = SeatQuerySet.as_manager()

    class Meta:
        ordering = ["datetime", "table__price", "pk"]
        verbose_name = _("seat")
        verbose_name_plural = _("seats")
        constraints = [
            models.UniqueConstraint(fields=["table", "datetime"], name="restaurants_seat_unique_time"),
            # Never below zero, never more free places than there are.
            models.CheckConstraint(condition=Q(remain__gte=0) & Q(remain__lte=F("capacity")), name="restaurants_seat_remain_in_range"),
        ]

    def __str__(self) -> str:
        return f"{self.table} {timezone.localtime(self.datetime):%Y-%m-%d %H:%M}"

    @property
    def restaurant(self) -> Restaurant:
        return self.table.restaurant

    @property
    def is_sold_out(self) -> bool:
        return self.remain <= 0


#: How long before the table's time a virtual account's deposit must have arrived.
DEPOSIT_BEFORE_VISIT = datetime.timedelta(hours=2)


class Booking(AbstractOrder):
    """A booking of one place at a :class:`Seat`, paid through django-pgpay."""

    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="bookings", verbose_name=_("seat"))

    #: A booking is cancelled in full by its buyer (the place comes back only then), as every order
    #: is unless it says otherwise; staff may refund part.
    buyer_may_cancel_part = False

    class Meta(AbstractOrder.Meta):
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")

    def get_absolute_url(self) -> str:
        """The booking on the buyer's bookings page (where a cancel form that lost its POST sends them back)."""
        return f"{reverse('restaurants:history')}#booking-{self.order_number}"

    def get_order_name(self) -> str:
        # Shown in the PG's payment window; the PG keeps at most 100 characters.
        if self.order_name:
            return self.order_name
        if not type(self).seat.is_cached(self):
            # One query for the seat, its table and its restaurant (not three), kept on the instance.
            self.seat = Seat.objects.select_related("table__restaurant").get(pk=self.seat_id)
        seat = self.seat
        return f"{seat.table.restaurant.name} {seat.table.name} {timezone.localtime(seat.datetime):%m/%d %H:%M}"[:100]

    def reserve(self) -> bool:
        """Take one place: a single conditional UPDATE; False when none is left (sold out)."""
        return Seat.objects.filter(pk=self.seat_id, remain__gt=0).update(remain=F("remain") - 1) == 1

    def release(self) -> None:
        """Give the place back (the library calls this once: full cancel, expiry or failure)."""
        Seat.objects.filter(pk=self.seat_id).update(remain=F("remain") + 1)

    def get_buyer_cancel_deadline(self):
        """The deposit comes back if the buyer cancels before the table's time, not after the meal (or a no-show).

        Staff may still refund afterwards (the admin). An attack review found the
        buyer's cancel button on a booking three hours past its time, refunding in full.
        """
        return self.seat.datetime if self.seat_id else None

    def get_deposit_deadline(self):
        """A bank transfer must arrive :data:`DEPOSIT_BEFORE_VISIT` before the table's time, not at the
        PG's own deadline (often a week: after the meal). Past it, reconciliation closes the account."""
        # The seat the checkout created the booking with (no query); read once otherwise.
        return self.seat.datetime - DEPOSIT_BEFORE_VISIT if self.seat_id else None


class BookingTransaction(AbstractTransaction):
    """The ledger of a booking: every confirm, cancel and webhook, as django-pgpay records it."""

    order = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="transactions", verbose_name=_("booking"))

    class Meta(AbstractTransaction.Meta):
        verbose_name = _("booking transaction")
        verbose_name_plural = _("booking transactions")
