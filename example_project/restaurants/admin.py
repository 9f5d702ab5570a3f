from django.contrib import admin

from example_project.admin_support import order_admin

from .models import Booking, Restaurant, Seat, Table


class TableInline(admin.TabularInline):
    model = Table
    extra = 0


@admin.register(Restaurant)
class RestaurantAdmin(admin.ModelAdmin):
    list_display = ("name", "address")
    inlines = [TableInline]


@admin.register(Seat)
class SeatAdmin(admin.ModelAdmin):
    """Seats and their free places. ``remain`` is taken and given back by bookings; edit it with care."""

    list_display = ("datetime", "table", "remain", "capacity")
    list_filter = ("table__restaurant",)
    list_select_related = ("table__restaurant",)
    date_hierarchy = "datetime"


admin.site.register(Booking, order_admin())
