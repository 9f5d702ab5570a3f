"""Admin classes the shops register their order models with.

django-pgpay's own admin (``django_pgpay.admin.OrderAdmin``: ledger inline,
refunds, CSV and PDF invoices) is used when the installed django-pgpay has it;
otherwise :class:`PlainOrderAdmin`, a read-only list and page with the ledger.
"""

from __future__ import annotations

from importlib.util import find_spec

from django.contrib import admin


def ledger_inline(order_model) -> type[admin.TabularInline]:
    """A read-only inline of ``order_model``'s ledger rows."""

    class LedgerInline(admin.TabularInline):
        model = order_model.get_transaction_model()
        extra = 0
        can_delete = False
        fields = ("created", "kind", "status", "amount", "currency", "source", "error_code", "reason")
        readonly_fields = fields
        ordering = ("created", "pk")

        def has_add_permission(self, request, obj=None):
            return False

    return LedgerInline


class PlainOrderAdmin(admin.ModelAdmin):
    """Orders, read-only: statuses and amounts change only through django-pgpay's operations."""

    list_display = ("order_number", "get_order_name", "amount", "currency", "status", "gateway", "user", "created", "paid_at")
    list_filter = ("status", "gateway")
    search_fields = ("order_number", "pg_payment_id", "buyer_name", "buyer_email")
    date_hierarchy = "created"

    def get_inlines(self, request, obj):
        return [ledger_inline(self.model)]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WebhookEventAdmin(admin.ModelAdmin):
    """Every webhook delivery as received, read-only."""

    list_display = ("received_at", "gateway", "event_type", "order_number", "verified", "processed", "error")
    list_filter = ("gateway", "event_type", "verified", "processed")
    search_fields = ("order_number", "payment_id", "event_id")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def order_admin() -> type[admin.ModelAdmin]:
    """``django_pgpay.admin.OrderAdmin`` when django-pgpay ships one, else :class:`PlainOrderAdmin`."""
    if find_spec("django_pgpay.admin") is not None:
        from django_pgpay import admin as pgpay_admin

        if hasattr(pgpay_admin, "OrderAdmin"):
            return pgpay_admin.OrderAdmin
    return PlainOrderAdmin


__all__ = ["PlainOrderAdmin", "WebhookEventAdmin", "ledger_inline", "order_admin"]
