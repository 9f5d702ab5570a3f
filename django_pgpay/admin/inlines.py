"""The ledger as a read-only inline table (the order page shows it as a timeline instead)."""

from __future__ import annotations

from functools import cache

from django.contrib import admin
from django.utils.translation import gettext_lazy as _


class TransactionInline(admin.TabularInline):
    """The ledger rows of an order as a read-only table, oldest first.

    The order page shows the ledger as a timeline instead; add this inline to
    ``inlines`` if you also want the table. Not usable as is (it has no
    model): :func:`transaction_inline` builds one for an order model.
    """

    extra = 0
    can_delete = False
    show_change_link = False
    fields = (
        "created",
        "kind",
        "status",
        "amount",
        "currency",
        "source",
        "actor",
        "reason",
        "error_code",
        "error_message",
        "pg_transaction_id",
    )
    readonly_fields = fields
    ordering = ("created", "pk")
    verbose_name = _("ledger row")
    verbose_name_plural = _("ledger")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@cache
def transaction_inline(order_model) -> type[TransactionInline]:
    """A :class:`TransactionInline` for ``order_model``'s ledger (one class per model)."""
    transaction_model = order_model.get_transaction_model()
    return type(f"{transaction_model.__name__}Inline", (TransactionInline,), {"model": transaction_model})
