"""The seed tutorial's pages, written with django-pgpay's mixins."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.views.generic import ListView, TemplateView

from django_pgpay.views import CheckoutMixin

from .models import Booking, CartLine, CartOrder, Product, Seat


class SeatCheckout(CheckoutMixin):
    """Reserve a seat and open the PG's payment window (the views below)."""

    order_model = Booking

    def get_gateway_alias(self):
        return self.kwargs.get("alias") or super().get_gateway_alias()

    def get_seat(self):
        if not hasattr(self, "_seat"):
            self._seat = get_object_or_404(Seat.objects.select_related("table__restaurant"), pk=self.kwargs["seat_id"])
        return self._seat

    def get_order_lookup(self):
        return {"seat": self.get_seat()}

    def get_order_defaults(self):
        return {"amount": self.get_seat().table.price}


class BookingView(LoginRequiredMixin, SeatCheckout, TemplateView):
    """``book/<seat_id>/[<alias>/]``: a logged-in buyer books a seat."""


class GuestBookingView(SeatCheckout, TemplateView):
    """``guest/<seat_id>/<alias>/``: a buyer without an account books a seat (``allow_anonymous``)."""

    allow_anonymous = True


class BookingHistoryView(LoginRequiredMixin, ListView):
    """``history/``: the buyer's bookings, with a cancel button on paid ones."""

    template_name = "testapp/history.html"

    def get_queryset(self):
        return Booking.objects.filter(user=self.request.user).select_related("seat__table__restaurant").order_by("pk")


class CartCheckoutView(LoginRequiredMixin, CheckoutMixin, TemplateView):
    """``shop/<product_id>/<quantity>/<alias>/``: seed 002's order -> payment, one cart line, a hosted page (Stripe)."""

    order_model = CartOrder

    def get_gateway_alias(self):
        return self.kwargs["alias"]

    def get_product(self):
        if not hasattr(self, "_product"):
            self._product = get_object_or_404(Product, pk=self.kwargs["product_id"])
        return self._product

    def get_order_lookup(self):
        return {"order_name": f"{self.get_product().name} x {self.kwargs['quantity']}"}

    def get_order_defaults(self):
        return {"amount": self.get_product().price * self.kwargs["quantity"]}

    def get_or_create_order(self):
        with transaction.atomic():
            order, created = super().get_or_create_order()
            if created:
                product = self.get_product()
                CartLine.objects.create(order=order, product=product, price=product.price, quantity=self.kwargs["quantity"])
        return order, created
