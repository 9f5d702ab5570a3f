"""The Django admin for orders: the order page, lists, refunds, reconciliation, webhooks, settlement.

A shop registers each concrete order model with :class:`OrderAdmin`, or mixes
:class:`OrderAdminMixin` into its own ``ModelAdmin``::

    from django.contrib import admin
    from django_pgpay.admin import OrderAdmin

    admin.site.register(Booking, OrderAdmin)

    @admin.register(CartOrder)
    class CartOrderAdmin(OrderAdmin):
        csv_columns = (*OrderAdmin.csv_columns, "shipping_address")
        sold_search_fields = ("lines__name",)    # search by what was sold
        csv_prefetch_related = ("lines",)        # the CSV's items column

What it gives:

* **The order page** is the admin's change view: a header with the status
  badge and the amounts in the order's currency (``42,000원``, ``$12.50``),
  the buyer, the PG and its ids, the ledger as a timeline, the order's webhook
  deliveries (with *re-process*), the refund form with a confirmation step,
  *reconcile now* and the invoice. Statuses and amounts are read-only: they
  change only through :mod:`django_pgpay.payments`. A list of banners
  (:meth:`OrderAdminMixin.get_order_banners`) says what needs a look.
* **Lists** that fit 1280 px: coloured status badges, the currency column only
  when several currencies exist, gateways by their PG's name, date ranges on
  created and paid, and search by order number prefix, buyer name, e-mail or
  phone (with or without hyphens), PG payment id and what was sold
  (:meth:`OrderAdminMixin.search_sold`).
* **Actions**: CSV export (streamed), invoices (one PDF or a ZIP), refund in
  full with a confirmation page and a required reason.
* **Settlement** (정산, ``<app>/<model>/settlement/``): per day and PG, from
  the ledger (:mod:`django_pgpay.settlement`), with CSV export.
* **Webhook deliveries** (:class:`WebhookEventAdmin`): columns that fit and a
  *re-process* action that runs a failed delivery through
  :func:`django_pgpay.webhooks.process` again, recorded in the admin's log.

Every operation is behind a Django permission, never ``is_staff`` alone:

==================  =================================================================
refund              ``has_refund_permission``: the model's *change* permission, or
                    ``refund_permission`` (``"app_label.codename"``)
reconcile now       ``has_reconcile_permission``: *change*, or ``reconcile_permission``
invoices            ``has_invoice_permission``: *view* (and WeasyPrint installed)
settlement          ``has_settlement_permission``: *view*, or ``settlement_permission``
re-process          ``WebhookEventAdmin.has_reprocess_permission``:
                    ``django_pgpay.change_webhookevent``, or ``reprocess_permission``
==================  =================================================================

Every refund goes through :func:`django_pgpay.payments.cancel` with
``source=STAFF``, the staff user as ``actor``, the reason typed in and the
form's token as idempotency key, so the ledger says who gave back what and
why, and a form sent twice refunds once.

PDF invoices come from :mod:`django_pgpay.invoices` (``django-pgpay[pdf]``),
imported only when used: without WeasyPrint the admin works and simply offers
no invoice action or button.
"""

from __future__ import annotations

import importlib
import logging
import re
import uuid
from functools import lru_cache
from importlib.util import find_spec
from types import ModuleType
from typing import NamedTuple

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import router
from django.db.models import Q, Value
from django.db.models.functions import Replace
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from . import exports, labels, payments, settlement, webhooks
from .exceptions import GatewayError, NotCancelable, PgPayError
from .filters import DateRangeFilter, GatewayFilter
from .models import WebhookEvent
from .money import MoneyError, exponent, parse_amount, quantize
from .status import OPEN_STATUSES, OPEN_TRANSACTION_STATUSES, PAID_STATUSES, TransactionSource

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


#: The stylesheet and script of the order admin's pages (django_pgpay/static/django_pgpay/).
ADMIN_MEDIA = forms.Media(css={"all": ["django_pgpay/admin.css"]}, js=["django_pgpay/admin.js"])


class Banner(NamedTuple):
    """A message at the top of the order page: ``level`` is ``info``, ``warning`` or ``error``."""

    level: str
    message: str


# --- the ledger inline (optional: the order page shows the ledger as a timeline) ---------------


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


@lru_cache(maxsize=None)
def transaction_inline(order_model) -> type[TransactionInline]:
    """A :class:`TransactionInline` for ``order_model``'s ledger (one class per model)."""
    transaction_model = order_model.get_transaction_model()
    return type(f"{transaction_model.__name__}Inline", (TransactionInline,), {"model": transaction_model})


# --- forms ------------------------------------------------------------------------------------


def _token() -> str:
    return uuid.uuid4().hex[:24]


TOKEN_FIELD = {"regex": r"^[A-Za-z0-9_-]{1,40}$", "widget": forms.HiddenInput}


class RefundReasonForm(forms.Form):
    """The reason for a full refund of the selected orders (the action's confirmation page)."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        help_text=_("Required. It is kept in the ledger with each refund."),
        widget=forms.TextInput(attrs={"size": 60, "required": True, "aria-required": "true"}),
    )
    #: Makes a resubmitted confirmation the same refunds (the PG's idempotency key).
    token = forms.RegexField(**TOKEN_FIELD)


class RefundForm(forms.Form):
    """A refund of part (or all) of one order's balance: amount and reason.

    The amount is checked against the currency's decimals (KRW has none), must
    be positive and, unless ``confirming``, at most the balance. The
    confirmation step leaves the balance to :func:`payments.cancel`, which
    checks it with the order row locked *after* recognising a form sent twice
    (the same token), so a double click refunds once and says so.
    """

    amount = forms.CharField(label=_("Amount to refund"), max_length=40)
    reason = forms.CharField(label=_("Reason"), max_length=255, widget=forms.TextInput(attrs={"size": 40}))
    token = forms.RegexField(**TOKEN_FIELD)

    def __init__(self, *args, order, confirming: bool = False, **kwargs):
        self.order = order
        self.confirming = confirming
        kwargs.setdefault("initial", {"token": _token()})
        super().__init__(*args, **kwargs)
        balance = labels.money(order.balance, order.currency)
        self.fields["amount"].help_text = _("At most %(balance)s (what is left of the payment).") % {"balance": balance}
        self.fields["amount"].widget.attrs.update(
            {"inputmode": "decimal", "autocomplete": "off", "placeholder": f"{quantize(order.balance, order.currency):f}"}
        )

    def clean_amount(self):
        currency = self.order.currency
        try:
            amount = parse_amount(self.cleaned_data["amount"].replace(",", "").strip(), currency)
        except MoneyError:
            raise forms.ValidationError(
                _("Enter an amount in %(currency)s with at most %(digits)s decimals."),
                code="invalid",
                params={"currency": currency, "digits": exponent(currency)},
            ) from None
        if amount <= 0:
            raise forms.ValidationError(_("The amount to refund must be more than zero."), code="not_positive")
        if not self.confirming and amount > self.order.balance:
            raise forms.ValidationError(
                _("The amount to refund exceeds what is left (%(balance)s)."),
                code="exceeds_balance",
                params={"balance": labels.money(self.order.balance, currency)},
            )
        return amount

    def clean(self):
        cleaned = super().clean()
        if not self.confirming and not self.order.is_cancelable:
            raise forms.ValidationError(_("This order has nothing left to refund."), code="not_cancelable")
        return cleaned


# --- search -----------------------------------------------------------------------------------


def _lookup(field: str) -> str:
    if field.startswith("^"):
        return f"{field[1:]}__istartswith"
    if field.startswith("="):
        return f"{field[1:]}__iexact"
    if field.startswith("@"):
        return f"{field[1:]}__search"
    return f"{field}__icontains"


def _terms(search_term: str) -> list[str]:
    terms = []
    for bit in smart_split(search_term):
        if bit[:1] in ('"', "'") and bit[-1:] == bit[:1]:
            bit = unescape_string_literal(bit)
        if bit.strip():
            terms.append(bit.strip())
    return terms


# --- the order admin --------------------------------------------------------------------------


class OrderAdminMixin:
    """Admin behaviour for a concrete :class:`~django_pgpay.models.AbstractOrder` subclass.

    Mix into a ``ModelAdmin`` (before it) or use :class:`OrderAdmin`. A
    subclass may set:

    * ``csv_columns``: names from :data:`django_pgpay.exports.COLUMNS`, field
      paths of the model or :class:`~django_pgpay.exports.Column` objects;
    * ``csv_bom``: True/False, or None for ``PGPAY["CSV_BOM"]`` (True by default);
    * ``csv_chunk_size``: rows per database round trip when exporting;
    * ``csv_prefetch_related``: ``prefetch_related`` lookups for the CSV's
      ``items`` column (what ``get_line_items`` reads, e.g. ``("lines",)``);
    * ``sold_search_fields``: field paths searched for what was sold (e.g.
      ``("lines__name",)``), or override :meth:`search_sold`;
    * ``refund_permission``, ``reconcile_permission``,
      ``settlement_permission``: ``"app_label.codename"`` a user needs for that
      operation instead of the default (see the module docstring).
    """

    list_display = (
        "order_number",
        "display_order_name",
        "display_amount",
        "display_status",
        "display_gateway",
        "display_buyer",
        "display_created",
        "display_paid_at",
    )
    list_display_links = ("order_number",)
    list_filter = ("status", GatewayFilter, ("created", DateRangeFilter), ("paid_at", DateRangeFilter))
    search_fields = ("^order_number", "^pg_payment_id", "buyer_name", "buyer_email", "buyer_phone")
    search_help_text = _("Order number (its start), buyer name, e-mail or phone, PG payment id, or what was sold.")
    sold_search_fields: tuple = ()
    # No date_hierarchy: on MySQL/MariaDB it needs the server's time zone tables
    # (CONVERT_TZ), which many servers lack; the date range filters need none.
    list_per_page = 50
    show_full_result_count = False
    actions = ["export_csv", "invoice_pdf", "invoice_zip", "refund_in_full"]
    change_form_template = "admin/django_pgpay/order/change_form.html"
    change_list_template = "admin/django_pgpay/order/change_list.html"
    refund_confirmation_template = "admin/django_pgpay/order/refund_confirmation.html"
    refund_step_template = "admin/django_pgpay/order/refund_step.html"
    settlement_template = "admin/django_pgpay/order/settlement.html"

    csv_columns: tuple = exports.DEFAULT_COLUMNS
    csv_bom: bool | None = None
    csv_chunk_size: int = exports.DEFAULT_CHUNK_SIZE
    csv_prefetch_related: tuple = ()
    refund_permission: str | None = None
    reconcile_permission: str | None = None
    settlement_permission: str | None = None

    @property
    def media(self):
        return super().media + ADMIN_MEDIA

    # --- list columns ---

    @admin.display(description=_("order name"))
    def display_order_name(self, obj):
        name = obj.get_order_name()
        return format_html('<span class="pgpay-ellipsis" title="{}">{}</span>', name, name)

    @admin.display(description=_("amount"), ordering="amount")
    def display_amount(self, obj):
        css = "pgpay-money" if obj.is_paid else "pgpay-money pgpay-unpaid"
        if obj.is_paid and obj.canceled_amount > 0:
            return format_html(
                '<span class="{}">{}</span><br><small class="pgpay-refunded" title="{}">−{}</small>',
                css,
                labels.money(obj.amount, obj.currency),
                gettext("refunded"),
                labels.money(obj.canceled_amount, obj.currency),
            )
        return format_html('<span class="{}">{}</span>', css, labels.money(obj.amount, obj.currency))

    @admin.display(description=_("status"), ordering="status")
    def display_status(self, obj):
        return format_html('<span class="{}">{}</span>', labels.status_class(obj.status), obj.get_status_display())

    @admin.display(description=_("gateway"), ordering="gateway")
    def display_gateway(self, obj):
        method = labels.method(obj.method)
        if method:
            return format_html('{}<br><small class="pgpay-muted">{}</small>', labels.gateway(obj.gateway), method)
        return labels.gateway(obj.gateway)

    @admin.display(description=_("buyer"), ordering="buyer_name")
    def display_buyer(self, obj):
        name = obj.buyer_name or obj.buyer_email or (str(obj.user) if obj.user_id else "")
        return format_html('<span class="pgpay-ellipsis pgpay-buyer" title="{}">{}</span>', name, name)

    @admin.display(description=_("created"), ordering="created")
    def display_created(self, obj):
        return format_html('<span title="{}">{}</span>', labels.long_time(obj.created), labels.short_time(obj.created))

    @admin.display(description=_("paid at"), ordering="paid_at")
    def display_paid_at(self, obj):
        if not obj.paid_at:
            return "—"
        return format_html('<span title="{}">{}</span>', labels.long_time(obj.paid_at), labels.short_time(obj.paid_at))

    @admin.display(description=pgettext_lazy("money", "balance"))
    def display_balance(self, obj):
        return labels.money(obj.balance if obj.is_paid else 0, obj.currency)

    def get_list_display(self, request):
        """The columns; ``currency`` joins them only when the orders hold more than one currency."""
        columns = list(super().get_list_display(request))
        if "currency" not in columns and self.currencies_in_use(request) > 1 and "display_amount" in columns:
            columns.insert(columns.index("display_amount") + 1, "currency")
        return columns

    def currencies_in_use(self, request) -> int:
        """How many currencies this admin's orders hold (at most 2 are counted)."""
        return len(self.get_queryset(request).order_by().values_list("currency", flat=True).distinct()[:2])

    # --- search ---

    def get_search_results(self, request, queryset, search_term):
        """Every word must match one of: the search fields, the phone digits, or :meth:`search_sold`.

        ``search_fields`` follow Django's prefixes (``^`` starts with, ``=``
        exact, none: contains). Related lookups run as ``pk IN (subquery)``,
        so an order matching twice is listed once.
        """
        terms = _terms(search_term)
        if not terms:
            return queryset, False
        for term in terms:
            queryset = queryset.filter(self.search_q(request, term))
        return queryset, False

    def search_q(self, request, term: str) -> Q:
        """The condition one search word puts on the orders."""
        q = Q()
        for field in self.get_search_fields(request):
            q |= Q(**{_lookup(field): term})
        digits = re.sub(r"\D", "", term)
        if len(digits) >= 3 and re.fullmatch(r"[\d\s()+-]+", term):
            phones = self.model._default_manager.annotate(
                _pgpay_phone=Replace(Replace(Replace("buyer_phone", Value("-"), Value("")), Value(" "), Value("")), Value("+82"), Value("0"))
            )
            q |= Q(pk__in=phones.filter(_pgpay_phone__contains=digits.removeprefix("82") if digits.startswith("82") else digits).values("pk"))
        sold = self.search_sold(request, term)
        if sold is not None:
            q |= Q(pk__in=self.model._default_manager.filter(sold).values("pk"))
        return q

    def search_sold(self, request, term: str) -> Q | None:
        """The orders that sold something matching ``term`` (a ``Q`` on the order model), or None.

        By default ``term`` is looked for (contains, any case) in
        ``sold_search_fields``. Override it for anything else, e.g.::

            def search_sold(self, request, term):
                return Q(lines__product__name__icontains=term) | Q(lines__product__sku=term)
        """
        if not self.sold_search_fields:
            return None
        q = Q()
        for field in self.sold_search_fields:
            q |= Q(**{_lookup(field): term})
        return q

    # --- permissions and the read-only change form ---

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _staff_has(self, request, permission: str | None, default) -> bool:
        if not request.user.is_active or not request.user.is_staff:
            return False
        if permission:
            return request.user.has_perm(permission)
        return bool(default())

    def has_refund_permission(self, request, obj=None) -> bool:
        """May this user give money back? Change permission, or ``refund_permission`` when set."""
        return self._staff_has(request, self.refund_permission, lambda: self.has_change_permission(request, obj))

    def has_reconcile_permission(self, request, obj=None) -> bool:
        """May this user ask the PG now ("reconcile now")? Change permission, or ``reconcile_permission``."""
        return self._staff_has(request, self.reconcile_permission, lambda: self.has_change_permission(request, obj))

    def has_settlement_permission(self, request) -> bool:
        """May this user see this model's settlement? View permission, or ``settlement_permission``."""
        return self._staff_has(request, self.settlement_permission, lambda: self.has_view_permission(request))

    def has_invoice_permission(self, request, obj=None) -> bool:
        """May this user download invoices? View permission, and only when PDF invoices are available."""
        return self.has_view_permission(request, obj) and invoices_module() is not None

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def get_fieldsets(self, request, obj=None):
        """The order's fields in groups; the shop's own fields (a seat, an address) come first."""
        own = {f.name for f in self.model._meta.fields}
        base = {
            "order": ["order_number", "order_name", "status", "amount", "currency", "canceled_amount", "gateway",
                      "method", "pg_payment_id", "receipt_url"],
            "buyer": ["user", "buyer_name", "buyer_email", "buyer_phone"],
            "times": ["created", "modified", "paid_at", "canceled_at", "expires_at"],
            "pg": ["pg_data"],
        }  # fmt: skip
        if obj is not None and obj.status not in OPEN_STATUSES:
            base["times"].remove("expires_at")  # a paid order has nothing to expire
        known = {name for names in base.values() for name in names} | {"id", "expires_at"}
        shop = [f.name for f in self.model._meta.fields if f.name not in known and not f.primary_key]
        sets = []
        if shop:
            sets.append((_("Details"), {"fields": shop, "classes": ["pgpay-shop-fields"]}))
        sets += [
            (_("Order"), {"fields": [n for n in base["order"] if n in own]}),
            (_("Buyer"), {"fields": [n for n in base["buyer"] if n in own]}),
            (_("Times"), {"fields": [n for n in base["times"] if n in own]}),
            (_("PG data"), {"fields": base["pg"]}),
        ]
        return sets

    def save_model(self, request, obj, form, change):
        """Never saves: every field is read-only, and writing back the loaded row
        could undo a status change a webhook made meanwhile."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The order page: Django's change view (its permission checks and inlines) with the order's context."""
        if request.method == "POST":
            # Nothing on the page is editable; a POST could only write back a stale row.
            return HttpResponseNotAllowed(["GET"])
        context = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        order = self.get_object(request, unquote(object_id))
        if order is not None and self.has_view_or_change_permission(request, order):
            context.update(self.order_page_context(request, order))
        context.update(extra_context or {})
        return super().change_view(request, object_id, form_url, context)

    # --- the order page ---

    def get_order_banners(self, request, order) -> list[Banner]:
        """What the order page says first: operations waiting for the PG, failed deliveries.

        Extend it in a subclass (``[*super().get_order_banners(request, order), Banner(...)]``).
        """
        banners = []
        open_rows = self._ledger(order).filter(status__in=OPEN_TRANSACTION_STATUSES).exclude(kind="webhook").count()
        if open_rows:
            banners.append(
                Banner(
                    "warning",
                    ngettext(
                        "%(count)d operation is waiting for the PG's answer. Reconcile now to settle it.",
                        "%(count)d operations are waiting for the PG's answer. Reconcile now to settle them.",
                        open_rows,
                    )
                    % {"count": open_rows},
                )
            )
        failed = self._deliveries(order).filter(processed=False).exclude(error="").count()
        if failed:
            banners.append(
                Banner(
                    "error",
                    ngettext(
                        "%(count)d webhook delivery of this order failed. Re-process it below once the cause is fixed.",
                        "%(count)d webhook deliveries of this order failed. Re-process them below once the cause is fixed.",
                        failed,
                    )
                    % {"count": failed},
                )
            )
        return banners

    def _ledger(self, order):
        return order.get_transaction_model()._base_manager.filter(order=order)

    def _deliveries(self, order):
        db = router.db_for_read(WebhookEvent)
        match = Q(order_number=order.order_number)
        if order.pg_payment_id:
            match |= Q(payment_id=order.pg_payment_id, gateway=order.gateway)
        return WebhookEvent.objects.using(db).filter(match)

    def _webhook_admin(self):
        return self.admin_site._registry.get(WebhookEvent)

    def order_page_context(self, request, order, *, refund_form=None) -> dict:
        """Everything the order page shows besides Django's change form context."""
        money = labels.money
        currency = order.currency
        took_money = order.is_paid
        links = self._links_context(request, order)
        if refund_form is None and links["can_refund"]:
            refund_form = RefundForm(order=order)
        ledger = []
        for row in self._ledger(order).select_related("actor").order_by("created", "pk"):
            ledger.append(
                {
                    "row": row,
                    "amount": money(row.amount, row.currency or currency),
                    "kind": row.get_kind_display(),
                    "kind_code": row.kind,
                    "status": row.get_status_display(),
                    "status_class": labels.row_class(row.status),
                    "time": labels.long_time(row.completed_at or row.created),
                    "source": row.get_source_display(),
                    "actor": row.actor.get_username() if row.actor_id and row.actor else "",
                }
            )
        webhook_admin = self._webhook_admin()
        can_reprocess = webhook_admin is not None and webhook_admin.has_reprocess_permission(request)
        deliveries = []
        for event in self._deliveries(order).order_by("-received_at", "-pk")[:50]:
            deliveries.append(
                {
                    "event": event,
                    "time": labels.long_time(event.received_at),
                    "url": self._webhook_url("change", event.pk),
                    "reprocess_url": self._webhook_url("reprocess", event.pk) if can_reprocess and not event.processed else "",
                }
            )
        return {
            "title": gettext("Order %(number)s") % {"number": order.order_number},
            "subtitle": None,
            "order": order,
            "order_name": order.get_order_name(),
            "status_class": labels.status_class(order.status),
            "amount": money(order.amount, currency),
            "paid_amount": money(order.amount if took_money else 0, currency),
            "canceled_amount": money(order.canceled_amount, currency),
            "balance": money(order.balance if took_money else 0, currency),
            "took_money": took_money,
            "gateway_name": labels.gateway(order.gateway),
            "method_label": labels.method(order.method),
            "created_at": labels.long_time(order.created),
            "modified_at": labels.long_time(order.modified),
            "paid_at": labels.long_time(order.paid_at),
            "canceled_at": labels.long_time(order.canceled_at),
            "expires_at": labels.long_time(order.expires_at) if order.status in OPEN_STATUSES else "",
            "ledger": ledger,
            "deliveries": deliveries,
            "banners": self.get_order_banners(request, order),
            "refund_form": refund_form if links["can_refund"] else None,
            "next_url": request.get_full_path(),
            **links,
        }

    def _links_context(self, request, order) -> dict:
        return {
            "change_url": self._url("change", order.pk),
            "refund_url": self._url("refund", order.pk),
            "reconcile_url": self._url("reconcile", order.pk),
            "csv_url": self._url("csv", order.pk),
            "invoice_url": self._url("invoice", order.pk) if order.is_paid and self.has_invoice_permission(request, order) else "",
            "webhook_log_url": self.webhook_log_url(order),
            "settlement_url": self._url("settlement") if self.has_settlement_permission(request) else "",
            "can_refund": self.has_refund_permission(request, order) and order.is_cancelable,
            "can_reconcile": self.has_reconcile_permission(request, order),
        }

    # --- actions ---

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
            prefetch=self.csv_prefetch_related,
        )

    @admin.action(description=_("Refund selected orders in full"), permissions=["refund"])
    def refund_in_full(self, request, queryset):
        """Show what would be refunded; on the confirmed POST, refund each order's balance."""
        orders = list(queryset)
        if request.POST.get("post") == "yes":
            form = RefundReasonForm(request.POST)
            if form.is_valid():
                self._refund_all(request, orders, form.cleaned_data["reason"], form.cleaned_data["token"])
                return None
        else:
            form = RefundReasonForm(initial={"token": _token()})
        refundable = [order for order in orders if order.is_cancelable]
        totals: dict[str, object] = {}
        for order in refundable:
            totals[order.currency] = totals.get(order.currency, 0) + order.balance
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Refund orders in full"),
            "subtitle": None,
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "media": self.media,
            "form": form,
            "refundable": [
                (order, labels.money(order.balance, order.currency), labels.gateway(order.gateway)) for order in refundable
            ],
            "refund_totals": [labels.money(total, currency) for currency, total in sorted(totals.items())],
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
        """Refund each order's balance; an order this token refunded already is a replay, not an error."""
        done = 0
        candidates = [o for o in orders if o.is_cancelable or o.is_paid]
        for order in candidates:
            outcome = self._cancel(request, order, None, reason, token, quiet_not_cancelable=not order.is_cancelable)
            if outcome is not None and not outcome.pending:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext("%(count)d order refunded in full.", "%(count)d orders refunded in full.", done)
                % {"count": done},
                messages.SUCCESS,
            )
        elif not any(o.is_cancelable for o in orders) and not done:
            self.message_user(request, gettext("None of the selected orders can be refunded."), messages.WARNING)

    def _cancel(self, request, order, amount, reason: str, token: str, *, quiet_not_cancelable=False):
        """Call :func:`payments.cancel`; report refusals as messages. The Outcome, or None when refused.

        :class:`NotCancelable` is raised to the caller unless ``quiet_not_cancelable``
        (then None): the single refund shows it on its form.
        """
        try:
            outcome = payments.cancel(
                order,
                amount,
                reason=reason,
                source=TransactionSource.STAFF,
                actor=request.user,
                idempotency_key=token,
            )
        except NotCancelable:
            if quiet_not_cancelable:
                return None
            raise
        except GatewayError as exc:
            self.message_user(
                request,
                gettext("%(pg)s refused the refund of order %(number)s: %(message)s (code %(code)s)")
                % {
                    "pg": labels.gateway(exc.gateway or order.gateway),
                    "number": order.order_number,
                    "message": exc.user_message,
                    "code": exc.code,
                },
                messages.ERROR,
            )
            return None
        except PgPayError as exc:
            self.message_user(
                request,
                gettext("Order %(number)s was not refunded: %(message)s")
                % {"number": order.order_number, "message": exc.user_message},
                messages.ERROR,
            )
            return None
        if outcome.pending:
            self.message_user(
                request,
                gettext(
                    "The PG has not answered about the refund of order %(number)s yet. "
                    "Reconciliation will settle it; check the ledger later."
                )
                % {"number": order.order_number},
                messages.WARNING,
            )
        return outcome

    # --- extra pages ---

    def get_urls(self):
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("settlement/", wrap(self.settlement_view), name=f"{prefix}_settlement"),
            path("<path:object_id>/detail/", wrap(self.detail_view), name=f"{prefix}_detail"),
            path("<path:object_id>/refund/", wrap(self.refund_view), name=f"{prefix}_refund"),
            path("<path:object_id>/reconcile/", wrap(self.reconcile_view), name=f"{prefix}_reconcile"),
            path("<path:object_id>/invoice/", wrap(self.invoice_view), name=f"{prefix}_invoice"),
            path("<path:object_id>/csv/", wrap(self.order_csv_view), name=f"{prefix}_csv"),
            *super().get_urls(),
        ]

    def _url(self, name: str, pk=None) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}",
            args=[] if pk is None else [pk],
            current_app=self.admin_site.name,
        )

    def _webhook_url(self, name: str, pk) -> str:
        try:
            return reverse(f"{self.admin_site.name}:django_pgpay_webhookevent_{name}", args=[pk], current_app=self.admin_site.name)
        except NoReverseMatch:
            return ""

    def webhook_log_url(self, order) -> str:
        """The webhook delivery list filtered by the order's number ('' when not registered)."""
        try:
            url = reverse(f"{self.admin_site.name}:django_pgpay_webhookevent_changelist", current_app=self.admin_site.name)
        except NoReverseMatch:
            return ""
        return f"{url}?{urlencode({'order_number': order.order_number})}"

    def _order_or_404(self, request, object_id):
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404(gettext("No order with this id."))
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        return order

    def _page_context(self, request, **context) -> dict:
        opts = self.model._meta
        request.current_app = self.admin_site.name
        return {
            **self.admin_site.each_context(request),
            "opts": opts,
            "app_label": opts.app_label,
            "media": self.media,
            "has_view_permission": self.has_view_permission(request),
            "subtitle": None,
            **context,
        }

    def detail_view(self, request, object_id):
        """The old address of the order page (``<pk>/detail/``): it is the change view now."""
        order = self._order_or_404(request, object_id)
        return HttpResponseRedirect(self._url("change", order.pk))

    def refund_view(self, request, object_id):
        """POST: refund an amount of one order, in two steps.

        The first POST (the order page's form) checks the amount and shows the
        confirmation page: the amount, the balance now and after. It changes
        nothing. The second POST (``confirm=yes``, the same token) refunds
        through :func:`payments.cancel`; sent twice, it refunds once.
        """
        if request.method != "POST":
            return HttpResponseRedirect(self._url("change", object_id))
        order = self._order_or_404(request, object_id)
        if not self.has_refund_permission(request, order):
            raise PermissionDenied
        confirming = request.POST.get("confirm") == "yes"
        form = RefundForm(request.POST, order=order, confirming=confirming)
        if not form.is_valid():
            return self._refund_step(request, order, form, status=400)
        if not confirming:
            return self._refund_step(request, order, form)
        amount, reason, token = form.cleaned_data["amount"], form.cleaned_data["reason"], form.cleaned_data["token"]
        try:
            outcome = self._cancel(request, order, amount, reason, token)
        except NotCancelable as exc:
            order.refresh_from_db()
            form = RefundForm(request.POST, order=order)
            form.is_valid()
            if not form.errors:
                form.add_error(None, exc.user_message)
            return self._refund_step(request, order, form, status=400)
        if outcome is not None and not outcome.pending:
            if outcome.replayed:
                message = gettext("This refund of %(amount)s was already made (the form was sent twice); nothing more was refunded.")
                level = messages.INFO
            else:
                message = gettext("Refunded %(amount)s of order %(number)s.")
                level = messages.SUCCESS
            self.message_user(
                request,
                message % {"amount": labels.money(outcome.transaction.amount, order.currency), "number": order.order_number},
                level,
            )
        return HttpResponseRedirect(self._url("change", order.pk))

    def _refund_step(self, request, order, form, *, status: int = 200):
        """The refund's confirmation page (or, when ``form`` has errors, the form again)."""
        amount = form.cleaned_data.get("amount") if form.is_valid() else None
        balance_after = order.balance - amount if amount is not None else None
        context = self._page_context(
            request,
            title=gettext("Refund from order %(number)s") % {"number": order.order_number},
            order=order,
            original=order,
            order_name=order.get_order_name(),
            form=form,
            amount=labels.money(amount, order.currency) if amount is not None else "",
            amount_value=f"{quantize(amount, order.currency):f}" if amount is not None else "",
            balance=labels.money(order.balance, order.currency),
            balance_after=labels.money(balance_after, order.currency) if balance_after is not None else "",
            refunds_all=balance_after is not None and balance_after == 0,
            gateway_name=labels.gateway(order.gateway),
            status_class=labels.status_class(order.status),
            change_url=self._url("change", order.pk),
            refund_url=self._url("refund", order.pk),
        )
        return TemplateResponse(request, self.refund_step_template, context, status=status)

    def reconcile_view(self, request, object_id):
        """POST: ask the order's PG now and apply what it says (:func:`payments.reconcile`, deep)."""
        if request.method != "POST":
            return HttpResponseRedirect(self._url("change", object_id))
        order = self._order_or_404(request, object_id)
        if not self.has_reconcile_permission(request, order):
            raise PermissionDenied
        before = (order.status, order.canceled_amount)
        try:
            outcome = payments.reconcile(order, deep=True)
        except PgPayError as exc:
            self.message_user(
                request,
                gettext("Could not reconcile order %(number)s with %(pg)s: %(message)s")
                % {"number": order.order_number, "pg": labels.gateway(order.gateway), "message": exc.user_message},
                messages.ERROR,
            )
            return HttpResponseRedirect(self._url("change", order.pk))
        order.refresh_from_db()
        params = {
            "number": order.order_number,
            "pg": labels.gateway(order.gateway),
            "status": order.get_status_display(),
            "balance": labels.money(order.balance if order.is_paid else 0, order.currency),
        }
        if outcome.error is not None:
            self.message_user(
                request,
                gettext("Could not reconcile order %(number)s with %(pg)s: %(message)s")
                % {**params, "message": outcome.error.user_message},
                messages.ERROR,
            )
        elif outcome.changes:
            self.message_user(
                request,
                gettext("Order %(number)s reconciled with %(pg)s: now %(status)s, balance %(balance)s.") % params
                + f" ({'; '.join(outcome.changes)})",
                messages.SUCCESS if (order.status, order.canceled_amount) != before else messages.INFO,
            )
        else:
            self.message_user(
                request,
                gettext("Order %(number)s agrees with %(pg)s: nothing to change (%(status)s, balance %(balance)s).") % params,
                messages.INFO,
            )
        return HttpResponseRedirect(self._url("change", order.pk))

    def invoice_view(self, request, object_id):
        """The order's PDF invoice, from :mod:`django_pgpay.invoices` (404 when WeasyPrint is absent)."""
        order = self._order_or_404(request, object_id)
        invoices = invoices_module()
        if invoices is None:
            raise Http404(gettext("PDF invoices need WeasyPrint: pip install 'django-pgpay[pdf]'."))
        if not self.has_invoice_permission(request, order):
            raise PermissionDenied
        if not order.is_paid:
            self.message_user(request, gettext("There is no invoice for this order yet: it has not been paid."), messages.ERROR)
            return HttpResponseRedirect(self._url("change", order.pk))
        return invoices.invoice_response([order], filename=f"invoice-{order.order_number}.pdf")

    def order_csv_view(self, request, object_id):
        """One order as CSV (the button on the order page)."""
        order = self._order_or_404(request, object_id)
        return self.csv_response(self.model._default_manager.filter(pk=order.pk), filename=f"order-{order.order_number}.csv")

    # --- settlement ---

    def settlement_admins(self, request) -> list:
        """The order admins of this site whose settlement this user may see (this one first)."""
        found = [self] if self.has_settlement_permission(request) else []
        for model_admin in self.admin_site._registry.values():
            if model_admin is self or not isinstance(model_admin, OrderAdminMixin):
                continue
            if model_admin.has_settlement_permission(request):
                found.append(model_admin)
        return found

    def settlement_view(self, request):
        """Settlement (정산) per day and PG from the ledger, for a date range; ``?format=csv`` downloads it."""
        admins = self.settlement_admins(request)
        if not admins:
            raise PermissionDenied
        models = {model_admin.model._meta.label_lower: model_admin.model for model_admin in admins}
        form = settlement.SettlementForm(request.GET or None, models=models)
        result = None
        status = 200
        if form.is_bound and not form.is_valid():
            status = 400
        else:
            data = form.cleaned_data if form.is_bound else form.defaults()
            chosen = [models[label] for label in data["models"]] or list(models.values())
            result = settlement.compute(chosen, data["since"], data["until"], gateways=data["gateways"])
            if request.GET.get("format") == "csv":
                filename = f"settlement-{data['since']:%Y%m%d}-{data['until']:%Y%m%d}.csv"
                chunks = exports.iter_table(settlement.csv_header(), settlement.csv_rows(result), bom=self.csv_bom)
                return exports.table_response(chunks, filename=filename)
        query = request.GET.copy()
        query["format"] = "csv"
        context = self._page_context(
            request,
            title=gettext("Settlement"),
            form=form,
            settlement=result,
            csv_url=f"{self._url('settlement')}?{query.urlencode()}",
            quick_ranges=settlement.quick_links(timezone.localdate()),
            settlement_url=self._url("settlement"),
            changelist_url=self._url("changelist"),
        )
        return TemplateResponse(request, self.settlement_template, context, status=status)

    def changelist_view(self, request, extra_context=None):
        extra = {"settlement_url": self._url("settlement") if self.has_settlement_permission(request) else ""}
        return super().changelist_view(request, {**extra, **(extra_context or {})})


class OrderAdmin(OrderAdminMixin, admin.ModelAdmin):
    """A ready admin for any concrete order model: ``admin.site.register(Booking, OrderAdmin)``."""


# --- webhook deliveries -----------------------------------------------------------------------


class WebhookEventAdmin(admin.ModelAdmin):
    """Every webhook delivery as received, read-only; failed ones can be re-processed.

    Filter by ``?order_number=``. *Re-process* runs a stored delivery through
    :func:`django_pgpay.webhooks.process` again (the same checks: source,
    parsing, duplicates, verification, then the payment operations) and records
    who did it in the admin's log. A delivery already processed is left alone.
    It needs :meth:`has_reprocess_permission`: ``django_pgpay.change_webhookevent``
    by default, or the permission named in ``reprocess_permission``.
    """

    list_display = (
        "display_received",
        "display_gateway",
        "display_event_type",
        "order_number",
        "verified",
        "processed",
        "display_error",
    )
    list_display_links = ("display_received",)
    list_filter = ("processed", "verified", GatewayFilter, "event_type", ("received_at", DateRangeFilter))
    search_fields = ("^order_number", "=payment_id", "=event_id")
    actions = ["reprocess"]
    list_per_page = 100
    show_full_result_count = False
    change_form_template = "admin/django_pgpay/webhookevent/change_form.html"
    reprocess_permission: str | None = None

    @property
    def media(self):
        return super().media + ADMIN_MEDIA

    @admin.display(description=_("received at"), ordering="received_at")
    def display_received(self, obj):
        return format_html('<span title="{}">{}</span>', labels.long_time(obj.received_at), labels.short_time(obj.received_at))

    @admin.display(description=_("gateway"), ordering="gateway")
    def display_gateway(self, obj):
        return labels.gateway(obj.gateway)

    @admin.display(description=_("event type"), ordering="event_type")
    def display_event_type(self, obj):
        return format_html('<span class="pgpay-ellipsis pgpay-event-type" title="{}">{}</span>', obj.event_type, obj.event_type or "—")

    @admin.display(description=_("error"))
    def display_error(self, obj):
        if not obj.error:
            return ""
        return format_html('<span class="pgpay-ellipsis pgpay-error" title="{}">{}</span>', obj.error, obj.error)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_reprocess_permission(self, request, obj=None) -> bool:
        """May this user re-process deliveries? ``django_pgpay.change_webhookevent``, or ``reprocess_permission``."""
        user = request.user
        if not user.is_active or not user.is_staff:
            return False
        opts = self.model._meta
        return user.has_perm(self.reprocess_permission or f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description=_("Re-process selected deliveries"), permissions=["reprocess"])
    def reprocess(self, request, queryset):
        """Run the selected deliveries through the webhook pipeline again (processed ones are skipped)."""
        applied = failed = skipped = 0
        for event in queryset.order_by("received_at", "pk"):
            result = self._reprocess(request, event, report=False)
            if result is None:
                skipped += 1
            elif result.event.processed:
                applied += 1
            else:
                failed += 1
        if applied:
            self.message_user(
                request,
                ngettext("%(count)d delivery re-processed and applied.", "%(count)d deliveries re-processed and applied.", applied)
                % {"count": applied},
                messages.SUCCESS,
            )
        if failed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery failed again; its error is updated.",
                    "%(count)d deliveries failed again; their errors are updated.",
                    failed,
                )
                % {"count": failed},
                messages.ERROR,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery was already processed and was left alone.",
                    "%(count)d deliveries were already processed and were left alone.",
                    skipped,
                )
                % {"count": skipped},
                messages.INFO,
            )

    def _reprocess(self, request, event, *, report: bool = True):
        """Process one stored delivery again; log it. The Receipt, or None when it was processed already."""
        if event.processed:
            if report:
                self.message_user(request, gettext("This delivery was already processed; nothing was done."), messages.INFO)
            return None
        try:
            receipt = webhooks.process(event)
        except PgPayError as exc:
            # e.g. the gateway alias is no longer configured: nothing was applied.
            event.error = f"re-process: {exc}"[:5000]
            event.save(update_fields=["error"])
            receipt = webhooks.Receipt(status=500, event=event, message=str(exc))
        outcome = gettext("applied") if receipt.event.processed else gettext("failed again: %(error)s") % {"error": receipt.event.error}
        self.log_change(request, event, f"Re-processed: HTTP {receipt.status}, {outcome}")
        logger.info("webhook #%s re-processed by %s: %s", event.pk, request.user.get_username(), receipt.status)
        if report:
            if receipt.event.processed:
                self.message_user(request, gettext("Delivery #%(pk)s re-processed and applied.") % {"pk": event.pk}, messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    gettext("Delivery #%(pk)s failed again: %(error)s") % {"pk": event.pk, "error": receipt.event.error},
                    messages.ERROR,
                )
        return receipt

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/reprocess/",
                self.admin_site.admin_view(self.reprocess_view),
                name=f"{opts.app_label}_{opts.model_name}_reprocess",
            ),
            *super().get_urls(),
        ]

    def reprocess_view(self, request, object_id):
        """POST: re-process one delivery (the button on its page and on the order page)."""
        opts = self.model._meta
        here = reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[object_id], current_app=self.admin_site.name)
        if request.method != "POST":
            return HttpResponseRedirect(here)
        if not self.has_reprocess_permission(request):
            raise PermissionDenied
        event = self.get_object(request, unquote(object_id))
        if event is None:
            raise Http404(gettext("No webhook delivery with this id."))
        self._reprocess(request, event)
        target = request.POST.get("next") or here
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            target = here
        return HttpResponseRedirect(target)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, unquote(object_id))
        extra = {}
        if event is not None and not event.processed and self.has_reprocess_permission(request, event):
            opts = self.model._meta
            extra["reprocess_url"] = reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_reprocess", args=[event.pk], current_app=self.admin_site.name
            )
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


admin.site.register(WebhookEvent, WebhookEventAdmin)


__all__ = [
    "Banner",
    "OrderAdmin",
    "OrderAdminMixin",
    "RefundForm",
    "RefundReasonForm",
    "TransactionInline",
    "WebhookEventAdmin",
    "invoices_module",
    "transaction_inline",
]
