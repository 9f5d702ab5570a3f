"""A small cart shop like seeds 002/003: products, a cart in the session, an order with lines, payment.

:class:`CartOrder` is the shop's own django-pgpay order model, beside the
restaurants' ``Booking``: the same views, webhooks and admin serve both (an
order is found by its order number, whichever model holds it).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from django_pgpay.gateways.results import LineItem
from django_pgpay.models import AbstractOrder, AbstractTransaction
from example_project.tiles import gradient, validate_colors


class Product(models.Model):
    """Something the shop sells (no stock: made to order)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    price = models.DecimalField(_("price"), max_digits=12, decimal_places=0)
    #: Two CSS colours for the picture tile (the demo has no images).
    colors = models.CharField(_("colours"), max_length=40, default="#90caf9 #1565c0", validators=[validate_colors])
    is_active = models.BooleanField(_("on sale"), default=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return self.name

    @property
    def gradient(self) -> str:
        return gradient(self.colors)


class CartOrder(AbstractOrder):
    """An order of the cart's contents, delivered to an address."""

    #: A buyer cancels a whole order; part of one is given back by staff (the admin's refund form), who
    #: know which goods it stands for. A buyer's free amount kept every line for 1 won (attack review).
    buyer_may_cancel_part = False

    recipient = models.CharField(_("recipient"), max_length=100)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    address = models.CharField(_("delivery address"), max_length=200)

    class Meta(AbstractOrder.Meta):
        verbose_name = _("shop order")
        verbose_name_plural = _("shop orders")

    def get_absolute_url(self) -> str:
        return reverse("shop:order", args=[self.order_number])

    def get_line_items(self) -> list[LineItem]:
        """What is sold, for the PG (Stripe lists them) and the invoice."""
        return [
            LineItem(name=line.name, unit_amount=line.unit_price, quantity=line.quantity) for line in self.lines.all()
        ] or super().get_line_items()


class CartLine(models.Model):
    """One product of an order, at the price it had when the order was placed."""

    order = models.ForeignKey(CartOrder, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order"))
    product = models.ForeignKey(Product, on_delete=models.PROTECT, verbose_name=_("product"))
    name = models.CharField(_("name"), max_length=100)
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=0)
    quantity = models.PositiveIntegerField(_("quantity"), default=1)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")

    def __str__(self) -> str:
        return f"{self.name} x {self.quantity}"

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity


class CartTransaction(AbstractTransaction):
    """The ledger of a shop order."""

    order = models.ForeignKey(CartOrder, on_delete=models.PROTECT, related_name="transactions", verbose_name=_("order"))

    class Meta(AbstractTransaction.Meta):
        verbose_name = _("shop order transaction")
        verbose_name_plural = _("shop order transactions")
