"""The booking pages of seeds 000/001, on django-pgpay's views.

restaurants → a restaurant's seats → book (summary, choice of PG) → the PG's
payment window → back to "My bookings" with the booking PAID and a cancel
button → the place is given back when the booking is cancelled.

What differs from the tutorial: the place is taken on POST (never on GET), by
one conditional UPDATE in the transaction that creates the READY booking
(``Booking.reserve``); a buyer who clicks twice or opens two tabs holds one
booking (``CheckoutMixin`` reuses it); the last place goes to exactly one buyer
and the others get a sold-out page (409), never a server error (a seat already
read as full answers it without taking any lock); the cancel is a
POST with a CSRF token and an idempotency token, by the owner only, through
``payments.cancel``, which gives the place back exactly once.
"""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.generic import DetailView, ListView, TemplateView

from django_pgpay.exceptions import SoldOut
from django_pgpay.status import OrderStatus
from django_pgpay.views import CheckoutMixin
from example_project.paging import FirstPagePaginator
from example_project.payment import GatewayChoiceMixin, ShopReturnUrlsMixin, ShopReturnView

from .models import Booking, Restaurant, Seat


class RestaurantListView(ListView):
    """``/restaurants/``: every restaurant, with its places left in the coming days."""

    template_name = "restaurants/restaurant_list.html"
    context_object_name = "restaurants"

    def get_queryset(self):
        return Restaurant.objects.prefetch_related("tables")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        for restaurant in context["restaurants"]:
            seats = Seat.objects.upcoming().filter(table__restaurant=restaurant)
            restaurant.places_left = sum(seats.values_list("remain", flat=True))
            restaurant.price_from = min((t.price for t in restaurant.tables.all()), default=None)
        return context


class RestaurantDetailView(DetailView):
    """``/restaurants/<id>/``: the restaurant's upcoming seats, by day."""

    model = Restaurant
    template_name = "restaurants/restaurant_detail.html"
    context_object_name = "restaurant"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        seats = Seat.objects.upcoming().filter(table__restaurant=self.object).select_related("table").order_by("datetime", "pk")
        # day -> table -> its times that day
        days: dict = {}
        for seat in seats:
            tables = days.setdefault(timezone.localtime(seat.datetime).date(), {})
            tables.setdefault(seat.table, []).append(seat)
        context["days"] = [
            {"date": day, "tables": [{"table": table, "seats": times} for table, times in sorted(tables.items(), key=lambda t: t[0].price)]}
            for day, tables in days.items()
        ]
        return context


class BookingView(LoginRequiredMixin, GatewayChoiceMixin, ShopReturnUrlsMixin, CheckoutMixin, TemplateView):
    """``/restaurants/seats/<seat_id>/book/``: GET a summary; POST takes a place and opens the payment window."""

    order_model = Booking
    shop = "restaurants"
    url_namespace = "restaurants"
    start_template_name = "restaurants/book.html"
    template_name = "payment_window.html"
    sold_out_template_name = "restaurants/sold_out.html"
    checkout_again_template_name = "restaurants/book_again.html"

    def get_seat(self, **annotations) -> Seat:
        """The seat of the URL (read once; ``annotations`` apply to that one read)."""
        if not hasattr(self, "_seat"):
            seats = Seat.objects.upcoming().select_related("table__restaurant").annotate(**annotations)
            self._seat = get_object_or_404(seats, pk=self.kwargs["seat_id"])
        return self._seat

    def get_order_lookup(self) -> dict:
        return {"seat": self.get_seat()}

    def get_or_create_order(self):
        # A fast "sold out" in a flash sale: the seat read for this page already
        # says no place is left, and the buyer holds none to come back to (both
        # in the one query that reads the seat). Only a hint (read without a
        # lock): when it says a place is left, the conditional UPDATE in
        # reserve() decides, in CheckoutMixin's transaction.
        # Any READY booking of the buyer, its hold lapsed or not: until reconciliation expires it, it
        # still holds the place, and posting again renews it (the last place's buyer was told "sold out").
        own_hold = Booking.objects.filter(user=self.request.user, seat=OuterRef("pk"), status=OrderStatus.READY)
        seat = self.get_seat(held_by_buyer=Exists(own_hold))  # a POST reads the seat here first
        if seat.remain <= 0 and not seat.held_by_buyer:
            raise SoldOut()
        return super().get_or_create_order()

    def get_order_defaults(self) -> dict:
        seat = self.get_seat()
        return {"amount": seat.table.price, "order_name": Booking(seat=seat).get_order_name()}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        seat = self.get_seat()
        context.update(
            seat=seat,
            restaurant=seat.table.restaurant,
            back_url=reverse("restaurants:detail", args=[seat.table.restaurant_id]),
        )
        if "error" in kwargs:  # the sold-out page: the buyer's own booking of this time, other times still free
            context["own_booking"] = (
                Booking.objects.filter(user=self.request.user, seat=seat, status__in=(OrderStatus.PAID, OrderStatus.PARTIAL_CANCELED))
                .order_by("-pk")
                .first()
                if self.request.user.is_authenticated
                else None
            )
            context["alternatives"] = (
                Seat.objects.upcoming()
                .filter(table__restaurant=seat.table.restaurant, remain__gt=0)
                .exclude(pk=seat.pk)
                .select_related("table")[:6]
            )
        return context


class BookingHistoryView(LoginRequiredMixin, ListView):
    """``/restaurants/bookings/``: the buyer's bookings, with a cancel button on paid ones (seed 000)."""

    template_name = "restaurants/history.html"
    context_object_name = "bookings"
    paginate_by = 20
    paginator_class = FirstPagePaginator  # a buyer with one page of them: no COUNT query

    def get_queryset(self):
        return Booking.objects.filter(user=self.request.user).select_related("seat__table__restaurant").order_by("-created", "-pk")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["now"] = timezone.now()
        return context


class BookingReturnView(ShopReturnView):
    """The PG sends the buyer back here; after a payment, on to "My bookings"."""

    order_models = [Booking]
    fallback_url_name = "restaurants:history"
    success_message = _("Payment complete: your table is booked.")

    def order_url(self, order) -> str:
        return reverse("restaurants:history") + (f"#booking-{order.order_number}" if order is not None else "")

    def get_retry_url(self, order) -> str:
        # The seat's booking page: posting it again pays the same (still held) booking.
        return reverse("restaurants:book", args=[order.seat_id])
