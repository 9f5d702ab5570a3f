from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from django_pgpay.admin import OrderAdmin, QueryGuard
from django_pgpay.exports import Column

from .models import Booking, Restaurant, Seat, Table


class TableInline(admin.TabularInline):
    model = Table
    extra = 0


@admin.register(Restaurant)
class RestaurantAdmin(QueryGuard, admin.ModelAdmin):
    list_display = ("name", "address")
    inlines = [TableInline]


@admin.register(Seat)
class SeatAdmin(QueryGuard, admin.ModelAdmin):
    """Seats and their free places. ``remain`` is taken and given back by bookings; edit it with care."""

    list_display = ("datetime", "table", "remain", "capacity")
    list_filter = ("table__restaurant",)
    list_select_related = ("table__restaurant",)
    date_hierarchy = "datetime"


@admin.register(Booking)
class BookingAdmin(OrderAdmin):
    """Bookings: django-pgpay's order admin (CSV, refunds, order page), plus the restaurant in the CSV."""

    csv_columns = (*OrderAdmin.csv_columns, Column(_("restaurant"), ("seat__table__restaurant__name",)), "seat__datetime")
    list_select_related = ("seat__table__restaurant",)
    #: What a booking sells is a table at a restaurant: search finds bookings by the restaurant's name.
    sold_search_fields = ("seat__table__restaurant__name", "seat__table__name")
