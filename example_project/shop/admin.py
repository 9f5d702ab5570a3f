from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from django_pgpay import labels
from django_pgpay.admin import OrderAdmin, QueryGuard

from .models import CartLine, CartOrder, Product


@admin.register(Product)
class ProductAdmin(QueryGuard, admin.ModelAdmin):
    list_display = ("name", "price", "is_active")
    list_editable = ("is_active",)


class CartLineInline(admin.TabularInline):
    """The order's lines, amounts in the order's currency (django_pgpay.labels.money: 12,000원)."""

    model = CartLine
    extra = 0
    can_delete = False
    fields = ("name", "display_unit_price", "quantity", "display_total")
    readonly_fields = fields

    @admin.display(description=_("unit price"))
    def display_unit_price(self, line):
        return labels.money(line.unit_price, line.order.currency)

    @admin.display(description=_("total"))
    def display_total(self, line):
        return labels.money(line.total, line.order.currency)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CartOrder)
class CartOrderAdmin(OrderAdmin):
    """Cart orders: django-pgpay's order admin with the cart lines above the ledger.

    Search finds an order by what it sold (a product name), and the CSV's
    items column reads the lines prefetched 500 orders at a time.
    """

    sold_search_fields = ("lines__name",)
    csv_prefetch_related = ("lines",)
    csv_columns = (*OrderAdmin.csv_columns, "buyer_phone", "address")

    def get_inlines(self, request, obj):
        return [CartLineInline, *super().get_inlines(request, obj)]
