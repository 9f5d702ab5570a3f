from django.contrib import admin

from django_pgpay.admin import OrderAdmin

from .models import CartLine, CartOrder, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "price", "is_active")
    list_editable = ("is_active",)


class CartLineInline(admin.TabularInline):
    model = CartLine
    extra = 0
    can_delete = False
    fields = ("name", "unit_price", "quantity")
    readonly_fields = fields

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
