"""The test shop's admin: both order models through django-pgpay's OrderAdmin."""

from django.contrib import admin

from django_pgpay.admin import OrderAdmin

from .models import Booking, CartOrder


@admin.register(Booking)
class BookingAdmin(OrderAdmin):
    list_select_related = ("seat__table__restaurant",)


@admin.register(CartOrder)
class CartOrderAdmin(OrderAdmin):
    #: The cart shop's own column after the defaults (a field of the model).
    csv_columns = (*OrderAdmin.csv_columns, "shipping_address")
    #: The same rule as CartOrder.get_refund_permission() (the only one the cancel view reads;
    #: another value is django_pgpay.E014), kept to show the attribute agrees.
    refund_permission = "testapp.delete_cartorder"
    #: Search by what was sold (the admin's hook), and the lines for the CSV's items column.
    sold_search_fields = ("lines__product__name",)
    csv_prefetch_related = ("lines__product",)
