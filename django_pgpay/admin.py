"""The Django admin for orders: ledger, webhook log, CSV export, refunds, invoices.

A shop registers each concrete order model with :class:`OrderAdmin`, or mixes
:class:`OrderAdminMixin` into its own ``ModelAdmin``::

    from django.contrib import admin
    from django_pgpay.admin import OrderAdmin

    admin.site.register(Booking, OrderAdmin)

    @admin.register(CartOrder)
    class CartOrderAdmin(OrderAdmin):
        csv_columns = (*OrderAdmin.csv_columns, "shipping_address")

What it gives: list columns, filters and search; the ledger as a read-only
inline; a link to the order's webhook deliveries; a streamed CSV export action;
a full-refund action with a confirmation page; an order page (``<pk>/detail/``)
with the ledger as a timeline, the webhook deliveries, a partial-refund form
and the invoice and CSV buttons. Statuses and amounts are read-only: they
change only through :mod:`django_pgpay.payments`.

Refunds need :meth:`OrderAdminMixin.has_refund_permission`: the model's
*change* permission by default (the admin edits nothing else, so "change"
means "may operate on orders"), or the permission named in
``refund_permission``. Every refund goes through
:func:`django_pgpay.payments.cancel` with ``source=STAFF``, the staff user as
``actor`` and the reason typed in, so the ledger says who gave back what and why.

PDF invoices come from :mod:`django_pgpay.invoices` (``django-pgpay[pdf]``),
imported only when used: without WeasyPrint the admin works and simply offers
no invoice action or button.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from functools import lru_cache
from importlib.util import find_spec
from types import ModuleType

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import router
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from . import exports, payments, permissions
from .exceptions import GatewayError, PgPayError
from .models import WebhookEvent
from .money import MoneyError, exponent, format_amount, parse_typed_amount, quantize
from .status import PAID_STATUSES, TransactionSource

logger = logging.getLogger("django_pgpay.admin")

def invoices_module() -> ModuleType | None:
    """:mod:`django_pgpay.invoices` when it and WeasyPrint can be imported, else None.

    Imported on first use, never when this module loads: a shop without the
    ``pdf`` extra (or without Pango) still gets a working admin.
    """
    try:
        if find_spec("weasyprint") is None or find_spec("django_pgpay.invoices") is None:
            return None
        return importlib.import_module("django_pgpay.invoices")
    except (ImportError, OSError) as exc:  # WeasyPrint raises OSError when Pango is missing
        logger.warning("PDF invoices are unavailable: %s", exc)
        return None


# --- the ledger inline --------------------------------------------------------


class TransactionInline(admin.TabularInline):
    """The ledger rows of an order, read-only, oldest first.

    Not usable as is (it has no model): :func:`transaction_inline` builds one
    for an order model's transaction model, which :class:`OrderAdminMixin` does.
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


@lru_cache(maxsize=None)
def transaction_inline(order_model) -> type[TransactionInline]:
    """A :class:`TransactionInline` for ``order_model``'s ledger (one class per model)."""
    transaction_model = order_model.get_transaction_model()
    return type(f"{transaction_model.__name__}Inline", (TransactionInline,), {"model": transaction_model})


# --- forms --------------------------------------------------------------------


def _token() -> str:
    return uuid.uuid4().hex[:24]


class RefundReasonForm(forms.Form):
    """The reason for a full refund of the selected orders (the action's confirmation page)."""

    reason = forms.CharField(label=_("Reason"), max_length=255, widget=forms.TextInput(attrs={"size": 60}))
    #: Makes a resubmitted confirmation the same refunds (the PG's idempotency key).
    token = forms.RegexField(regex=r"^[A-Za-z0-9_-]{1,40}$", widget=forms.HiddenInput)


class RefundForm(forms.Form):
    """A refund of part (or all) of one order's balance: amount and reason.

    The amount is checked against the currency's decimals (KRW has none), must
    be positive and at most the balance; :func:`payments.cancel` checks again
    with the order row locked.
    """

    amount = forms.CharField(label=_("Amount to refund"), max_length=40)
    reason = forms.CharField(label=_("Reason"), max_length=255, widget=forms.TextInput(attrs={"size": 50}))
    token = forms.RegexField(regex=r"^[A-Za-z0-9_-]{1,40}$", widget=forms.HiddenInput)

    def __init__(self, *args, order, **kwargs):
        self.order = order
        kwargs.setdefault("initial", {"amount": quantize(order.balance, order.currency), "token": _token()})
        super().__init__(*args, **kwargs)
        self.fields["amount"].help_text = _("At most %(balance)s (what is left of the payment).") % {
            "balance": format_amount(order.balance, order.currency)
        }

    def clean_amount(self):
        currency = self.order.currency
        try:
            amount = parse_typed_amount(self.cleaned_data["amount"], currency)
        except MoneyError:
            raise forms.ValidationError(
                _("Enter an amount in %(currency)s with at most %(digits)s decimals."),
                code="invalid",
                params={"currency": currency, "digits": exponent(currency)},
            ) from None
        if amount <= 0:
            raise forms.ValidationError(_("The amount to refund must be more than zero."), code="not_positive")
        if amount > self.order.balance:
            raise forms.ValidationError(
                _("The amount to refund exceeds what is left (%(balance)s)."),
                code="exceeds_balance",
                params={"balance": format_amount(self.order.balance, currency)},
            )
        return amount

    def clean(self):
        cleaned = super().clean()
        if not self.order.is_cancelable:
            raise forms.ValidationError(_("This order has nothing left to refund."), code="not_cancelable")
        return cleaned


# --- the order admin ----------------------------------------------------------


class OrderAdminMixin:
    """Admin behaviour for a concrete :class:`~django_pgpay.models.AbstractOrder` subclass.

    Mix into a ``ModelAdmin`` (before it) or use :class:`OrderAdmin`. A
    subclass may set:

    * ``csv_columns``: names from :data:`django_pgpay.exports.COLUMNS`, field
      paths of the model or :class:`~django_pgpay.exports.Column` objects;
    * ``csv_bom``: True/False, or None for ``PGPAY["CSV_BOM"]`` (True by default);
    * ``csv_chunk_size``: rows per database round trip when exporting;
    * ``refund_permission``: ``"app_label.codename"`` a user needs to refund,
      instead of the model's change permission.
    """

    list_display = (
        "order_number",
        "display_order_name",
        "display_amount",
        "display_canceled_amount",
        "currency",
        "display_status",
        "gateway",
        "display_buyer",
        "created",
        "paid_at",
    )
    list_display_links = ("order_number",)
    list_filter = ("status", "gateway", ("paid_at", admin.DateFieldListFilter))
    search_fields = ("=order_number", "=pg_payment_id", "buyer_name", "buyer_email")
    # No date_hierarchy: on MySQL/MariaDB it needs the server's time zone tables
    # (CONVERT_TZ), which many servers lack; the paid-date filter needs none.
    list_per_page = 50
    show_full_result_count = False
    actions = ["export_csv", "invoice_pdf", "invoice_zip", "refund_in_full"]
    change_form_template = "admin/django_pgpay/order/change_form.html"
    detail_template = "admin/django_pgpay/order/detail.html"
    refund_confirmation_template = "admin/django_pgpay/order/refund_confirmation.html"

    csv_columns: tuple = exports.DEFAULT_COLUMNS
    csv_bom: bool | None = None
    csv_chunk_size: int = exports.DEFAULT_CHUNK_SIZE
    refund_permission: str | None = None

    # --- list columns ---

    @admin.display(description=_("order name"))
    def display_order_name(self, obj):
        return obj.get_order_name()

    @admin.display(description=_("amount"), ordering="amount")
    def display_amount(self, obj):
        return f"{quantize(obj.amount, obj.currency):,}"

    @admin.display(description=_("cancelled amount"), ordering="canceled_amount")
    def display_canceled_amount(self, obj):
        return f"{quantize(obj.canceled_amount, obj.currency):,}"

    @admin.display(description=_("status"), ordering="status")
    def display_status(self, obj):
        return obj.get_status_display()

    @admin.display(description=_("buyer"), ordering="buyer_name")
    def display_buyer(self, obj):
        return obj.buyer_name or obj.buyer_email or (str(obj.user) if obj.user_id else "")

    @admin.display(description=pgettext_lazy("money", "balance"))
    def display_balance(self, obj):
        return format_amount(obj.balance, obj.currency)

    @admin.display(description=_("more"))
    def display_links(self, obj):
        if obj is None or obj.pk is None:
            return ""
        links = [(self._url("detail", obj.pk), gettext("Order page, ledger and refunds"))]
        webhooks = self.webhook_log_url(obj)
        if webhooks:
            links.append((webhooks, gettext("Webhook deliveries")))
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    # --- permissions and the read-only change form ---

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_refund_permission(self, request, obj=None) -> bool:
        """May this user give money back? Change permission, or ``refund_permission`` when set."""
        if not request.user.is_active or not request.user.is_staff:
            return False
        if self.refund_permission:
            return request.user.has_perm(self.refund_permission)
        # The same rule as the shop's cancel view (django_pgpay.permissions).
        return permissions.staff_may_refund(request.user, self.model)

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), transaction_inline(self.model)]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields] + ["display_balance", "display_links"]

    def save_model(self, request, obj, form, change):
        """Never saves: every field is read-only, and writing back the loaded row
        could undo a status change a webhook made meanwhile."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":
            # Nothing on the page is editable; a POST could only write back a stale row.
            return HttpResponseNotAllowed(["GET"])
        extra_context = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
            **(extra_context or {}),
        }
        order = self.get_object(request, object_id)
        if order is not None:
            extra_context.update(self._links_context(request, order))
        return super().change_view(request, object_id, form_url, extra_context)

    # --- actions ---

    def has_invoice_permission(self, request, obj=None) -> bool:
        """May this user download invoices? View permission, and only when PDF invoices are available."""
        return self.has_view_permission(request, obj) and invoices_module() is not None

    @admin.action(description=_("Download invoices of the selected orders (one PDF)"), permissions=["invoice"])
    def invoice_pdf(self, request, queryset):
        """One merged PDF, one invoice per order (:func:`django_pgpay.invoices.invoice_pdf_action`)."""
        return self._invoice_action("invoice_pdf_action", request, queryset)

    @admin.action(description=_("Download invoices of the selected orders (ZIP of PDFs)"), permissions=["invoice"])
    def invoice_zip(self, request, queryset):
        """A ZIP with one PDF per order (:func:`django_pgpay.invoices.invoice_zip_action`)."""
        return self._invoice_action("invoice_zip_action", request, queryset)

    def _invoice_action(self, name: str, request, queryset):
        invoices = invoices_module()
        func = getattr(invoices, name, None) if invoices is not None else None
        if func is None:
            self.message_user(request, gettext("PDF invoices need WeasyPrint: pip install 'django-pgpay[pdf]'."), messages.ERROR)
            return None
        paid = queryset.filter(status__in=PAID_STATUSES)
        left_out = queryset.count() - paid.count()
        if left_out:
            self.message_user(
                request,
                ngettext(
                    "%(count)d order was never paid and has no invoice.",
                    "%(count)d orders were never paid and have no invoice.",
                    left_out,
                )
                % {"count": left_out},
                messages.WARNING,
            )
        if not paid.exists():
            return None
        return func(self, request, paid)

    @admin.action(description=_("Export selected orders to CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        return self.csv_response(queryset)

    def csv_response(self, queryset, *, filename: str | None = None):
        """The streamed CSV of ``queryset`` with this admin's columns and options."""
        opts = self.model._meta
        return exports.streaming_response(
            queryset.order_by(*(queryset.query.order_by or opts.ordering or ["pk"])),
            self.csv_columns,
            filename=filename or f"{opts.model_name}-orders.csv",
            bom=self.csv_bom,
            chunk_size=self.csv_chunk_size,
        )

    @admin.action(description=_("Refund selected orders in full"), permissions=["refund"])
    def refund_in_full(self, request, queryset):
        """Show what would be refunded; on the confirmed POST, refund each order's balance."""
        orders = list(queryset)
        refundable = [order for order in orders if order.is_cancelable]
        if request.POST.get("post") == "yes":
            form = RefundReasonForm(request.POST)
            if form.is_valid():
                self._refund_all(request, refundable, form.cleaned_data["reason"], form.cleaned_data["token"])
                return None
        else:
            form = RefundReasonForm(initial={"token": _token()})
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Refund orders in full"),
            "subtitle": None,
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "media": self.media,
            "form": form,
            "refundable": [(order, format_amount(order.balance, order.currency)) for order in refundable],
            "not_refundable": [
                (order, self._why_not_refundable(order)) for order in orders if not order.is_cancelable
            ],
            "queryset": orders,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "refund_in_full",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, self.refund_confirmation_template, context, status=400 if form.is_bound else 200
        )

    def _why_not_refundable(self, order) -> str:
        if order.is_paid and order.balance <= 0:
            return gettext("Already refunded in full.")
        return gettext("%(status)s: no payment to refund.") % {"status": order.get_status_display()}

    def _refund_all(self, request, orders, reason: str, token: str) -> None:
        done = 0
        for order in orders:
            if self._refund(request, order, payments.FULL, reason, token):
                done += 1
        if done:
            self.message_user(
                request,
                ngettext("%(count)d order refunded in full.", "%(count)d orders refunded in full.", done)
                % {"count": done},
                messages.SUCCESS,
            )
        elif not orders:
            self.message_user(request, gettext("None of the selected orders can be refunded."), messages.WARNING)

    def _refund(self, request, order, amount, reason: str, token: str) -> bool:
        """Call :func:`payments.cancel`; report the outcome with messages. True when it succeeded."""
        try:
            outcome = payments.cancel(
                order,
                amount,
                reason=reason,
                source=TransactionSource.STAFF,
                actor=request.user,
                idempotency_key=token,
            )
        except GatewayError as exc:
            self.message_user(
                request,
                gettext("%(pg)s refused the refund of order %(number)s: %(message)s (code %(code)s)")
                % {"pg": exc.gateway or order.gateway, "number": order.order_number, "message": exc.user_message, "code": exc.code},
                messages.ERROR,
            )
            return False
        except PgPayError as exc:
            self.message_user(
                request,
                gettext("Order %(number)s was not refunded: %(message)s")
                % {"number": order.order_number, "message": exc.user_message},
                messages.ERROR,
            )
            return False
        if outcome.pending:
            self.message_user(
                request,
                gettext(
                    "The PG did not answer about the refund of order %(number)s. "
                    "Reconciliation will settle it; check the ledger later."
                )
                % {"number": order.order_number},
                messages.WARNING,
            )
            return False
        if amount is not payments.FULL:
            self.message_user(
                request,
                gettext("Refunded %(amount)s of order %(number)s.")
                % {"amount": format_amount(outcome.transaction.amount, order.currency), "number": order.order_number},
                messages.SUCCESS,
            )
        return True

    # --- extra pages ---

    def get_urls(self):
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/detail/", wrap(self.detail_view), name=f"{prefix}_detail"),
            path("<path:object_id>/refund/", wrap(self.refund_view), name=f"{prefix}_refund"),
            path("<path:object_id>/invoice/", wrap(self.invoice_view), name=f"{prefix}_invoice"),
            path("<path:object_id>/csv/", wrap(self.order_csv_view), name=f"{prefix}_csv"),
            *super().get_urls(),
        ]

    def _url(self, name: str, pk) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}",
            args=[pk],
            current_app=self.admin_site.name,
        )

    def webhook_log_url(self, order) -> str:
        """The webhook delivery list filtered by the order's number ('' when not registered)."""
        try:
            url = reverse(f"{self.admin_site.name}:django_pgpay_webhookevent_changelist", current_app=self.admin_site.name)
        except NoReverseMatch:
            return ""
        return f"{url}?{urlencode({'order_number': order.order_number})}"

    def _order_or_404(self, request, object_id):
        order = self.get_object(request, object_id)
        if order is None:
            raise Http404(gettext("No order with this id."))
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        return order

    def _links_context(self, request, order) -> dict:
        return {
            "detail_url": self._url("detail", order.pk),
            "refund_url": self._url("refund", order.pk),
            "csv_url": self._url("csv", order.pk),
            "invoice_url": self._url("invoice", order.pk) if order.is_paid and invoices_module() is not None else "",
            "webhook_log_url": self.webhook_log_url(order),
            "can_refund": self.has_refund_permission(request, order) and order.is_cancelable,
        }

    def detail_view(self, request, object_id, *, refund_form=None, status=200):
        """The order page: summary, ledger timeline, webhook deliveries and actions."""
        order = self._order_or_404(request, object_id)
        opts = self.model._meta
        links = self._links_context(request, order)
        if refund_form is None and links["can_refund"]:
            refund_form = RefundForm(order=order)
        ledger = (
            order.get_transaction_model()
            ._base_manager.filter(order=order)
            .select_related("actor")
            .order_by("created", "pk")
        )
        db = router.db_for_read(WebhookEvent)
        deliveries = WebhookEvent.objects.using(db).filter(order_number=order.order_number).order_by("-received_at", "-pk")[:50]
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Order %(number)s") % {"number": order.order_number},
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "original": order,
            "order": order,
            "order_name": order.get_order_name(),
            "amount": format_amount(order.amount, order.currency),
            "canceled_amount": format_amount(order.canceled_amount, order.currency),
            "balance": format_amount(order.balance, order.currency),
            "ledger": [(row, format_amount(row.amount, row.currency or order.currency)) for row in ledger],
            "deliveries": deliveries,
            "refund_form": refund_form if links["can_refund"] or (refund_form is not None and refund_form.is_bound) else None,
            "change_url": reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[order.pk],
                current_app=self.admin_site.name,
            ),
            "has_view_permission": True,
            **links,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.detail_template, context, status=status)

    def refund_view(self, request, object_id):
        """POST: refund an amount of one order (the form on the order page)."""
        if request.method != "POST":
            return HttpResponseRedirect(self._url("detail", object_id))
        return self._refund_post(request, object_id)

    def _refund_post(self, request, object_id):
        order = self._order_or_404(request, object_id)
        if not self.has_refund_permission(request, order):
            raise PermissionDenied
        form = RefundForm(request.POST, order=order)
        if not form.is_valid():
            return self.detail_view(request, object_id, refund_form=form, status=400)
        self._refund(request, order, form.cleaned_data["amount"], form.cleaned_data["reason"], form.cleaned_data["token"])
        return HttpResponseRedirect(self._url("detail", order.pk))

    def invoice_view(self, request, object_id):
        """The order's PDF invoice, from :mod:`django_pgpay.invoices` (404 when WeasyPrint is absent)."""
        order = self._order_or_404(request, object_id)
        invoices = invoices_module()
        if invoices is None:
            raise Http404(gettext("PDF invoices need WeasyPrint: pip install 'django-pgpay[pdf]'."))
        if not order.is_paid:
            self.message_user(request, gettext("There is no invoice for this order yet: it has not been paid."), messages.ERROR)
            return HttpResponseRedirect(self._url("detail", order.pk))
        return invoices.invoice_response([order], filename=f"invoice-{order.order_number}.pdf")

    def order_csv_view(self, request, object_id):
        """One order as CSV (the button on the order page)."""
        order = self._order_or_404(request, object_id)
        return self.csv_response(self.model._default_manager.filter(pk=order.pk), filename=f"order-{order.order_number}.csv")


class OrderAdmin(OrderAdminMixin, admin.ModelAdmin):
    """A ready admin for any concrete order model: ``admin.site.register(Booking, OrderAdmin)``."""


class WebhookEventAdmin(admin.ModelAdmin):
    """Every webhook delivery as received, read-only. Filter by ``?order_number=``."""

    list_display = ("received_at", "gateway", "event_type", "order_number", "verified", "processed", "error")
    list_filter = ("gateway", "event_type", "verified", "processed")
    search_fields = ("=order_number", "=payment_id", "=event_id")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.register(WebhookEvent, WebhookEventAdmin)


__all__ = [
    "OrderAdmin",
    "OrderAdminMixin",
    "RefundForm",
    "RefundReasonForm",
    "TransactionInline",
    "WebhookEventAdmin",
    "invoices_module",
    "transaction_inline",
]
