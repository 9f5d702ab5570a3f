"""The order admin: list columns, filters, permissions, the order page, reconcile now, CSV and invoices."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from importlib.util import find_spec
from types import ModuleType
from typing import NamedTuple

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.db import router
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from .. import conf, exports, jobs, labels, ledger, payments, permissions, tasks
from ..exceptions import PgPayError
from ..filters import AttentionFilter, DateRangeFilter, GatewayFilter
from ..models import ExportJob, WebhookEvent
from ..status import (
    OPEN_STATUSES,
    OPEN_TRANSACTION_STATUSES,
    PAID_STATUSES,
    DeliveryStatus,
    OrderStatus,
    TransactionKind,
    TransactionStatus,
)
from .forms import RefundForm
from .media import ADMIN_MEDIA
from .queries import QueryGuard
from .refunds import RefundPages
from .search import OrderSearch
from .settlement import SettlementPage
from .webhooks import STATE_COLOURS

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


#: What a row that needs attention was trying to do, for its banner.
ATTENTION_OPERATIONS = {
    TransactionKind.COMPENSATE: _("give back a payment the shop did not keep"),
    TransactionKind.WITHDRAW: _("close a virtual account"),
}


#: Order fields "All fields" shows through the admin's own display (``shown_*``) instead of the raw value.
SHOWN_AS_FIELD = {
    "amount": "shown_amount",
    "canceled_amount": "shown_canceled_amount",
    "gateway": "shown_gateway",
    "method": "shown_method",
}
SHOWN_AS = tuple(SHOWN_AS_FIELD.values())


class Banner(NamedTuple):
    """A message at the top of the order page: ``level`` is ``info``, ``warning`` or ``error``."""

    level: str
    message: str


class OrderAdminMixin(QueryGuard, OrderSearch, RefundPages, SettlementPage):
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

    list_display = ("display_order", "display_amount", "display_status_and_pg", "display_buyer", "display_dates")
    list_display_links = ("display_order",)
    list_filter = ("status", AttentionFilter, GatewayFilter, ("created", DateRangeFilter), ("paid_at", DateRangeFilter))
    search_fields = ("^order_number", "^pg_payment_id", "buyer_name", "buyer_email", "buyer_phone")
    search_help_text = _("Order number (its start), buyer name, e-mail or phone, PG payment id, or what was sold.")
    # No date_hierarchy: on MySQL/MariaDB it needs the server's time zone tables
    # (CONVERT_TZ), which many servers lack; the date range filters need none.
    list_per_page = 50
    show_full_result_count = False
    actions = ["export_csv", "invoice_pdf", "invoice_zip", "refund_in_full"]
    change_form_template = "admin/django_pgpay/order/change_form.html"
    change_list_template = "admin/django_pgpay/order/change_list.html"

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

    def check(self, **kwargs):
        """Django's admin checks, ``django_pgpay.W013`` for a permission attribute no model declares,
        and ``django_pgpay.E014`` for a ``refund_permission`` other than the model's."""
        names = ("refund_permission", "reconcile_permission", "settlement_permission")
        named = {f"{type(self).__name__}.{name}": getattr(self, name) for name in names}
        messages = [*super().check(**kwargs), *permissions.undeclared_warnings(named, obj=self)]
        model_rule = permissions.refund_permission(self.model)
        if self.refund_permission and self.refund_permission != model_rule:
            # The shop's cancel view (/pay/cancel/...) and every other path read the model's rule: a
            # stricter admin attribute alone let a clerk the admin refused refund through that view.
            messages.append(
                checks.Error(
                    f"{type(self).__name__}.refund_permission = {self.refund_permission!r}, but "
                    f"{self.model.__name__}.get_refund_permission() is {model_rule!r}: the cancel view and every "
                    "path outside this admin use the model's, so staff this admin refuses could refund there.",
                    hint=f"Return {self.refund_permission!r} from {self.model.__name__}.get_refund_permission() "
                    "(one rule for the admin and the views) and drop the admin attribute.",
                    obj=self,
                    id="django_pgpay.E014",
                )
            )
        return messages

    # --- list columns ---
    # Five columns that fit 1280 px beside the admin's navigation and the filters:
    # a second, smaller line carries what belongs with each (the order's name,
    # the refunded amount, the PG and method, the buyer's phone, the paid time).

    @admin.display(description=_("order"), ordering="order_number")
    def display_order(self, obj):
        name = obj.get_order_name()
        return format_html(
            '<span class="pgpay-order-number">{}</span><br><small class="pgpay-ellipsis pgpay-muted" title="{}">{}</small>',
            obj.order_number,
            name,
            name,
        )

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

    @admin.display(description=_("status / PG"), ordering="status")
    def display_status_and_pg(self, obj):
        pg = labels.gateway(obj.gateway)
        method = labels.method(obj.method)
        line = f"{pg} · {method}" if method else pg
        return format_html(
            '<span class="{}">{}</span><br><small class="pgpay-ellipsis pgpay-muted pgpay-pg" title="{}">{}</small>',
            labels.status_class(obj.status),
            obj.get_status_display(),
            line,
            line,
        )

    @admin.display(description=_("gateway"), ordering="gateway")
    def display_gateway(self, obj):
        method = labels.method(obj.method)
        if method:
            return format_html('{}<br><small class="pgpay-muted">{}</small>', labels.gateway(obj.gateway), method)
        return labels.gateway(obj.gateway)

    @admin.display(description=_("buyer"), ordering="buyer_name")
    def display_buyer(self, obj):
        name = obj.buyer_name or obj.buyer_email or (str(obj.user) if obj.user_id else "")
        if obj.buyer_phone:
            return format_html(
                '<span class="pgpay-ellipsis pgpay-buyer" title="{}">{}</span><br>'
                '<small class="pgpay-ellipsis pgpay-buyer pgpay-muted" title="{}">{}</small>',
                name,
                name,
                obj.buyer_phone,
                obj.buyer_phone,
            )
        return format_html('<span class="pgpay-ellipsis pgpay-buyer" title="{}">{}</span>', name, name)

    @admin.display(description=pgettext_lazy("order list", "when"), ordering="created")
    def display_dates(self, obj):
        """When the order was made and, below in green, when it was paid."""
        created = format_html('<span title="{}">{}</span>', labels.long_time(obj.created), labels.short_time(obj.created))
        if not obj.paid_at:
            return created
        return format_html(
            '{}<br><small class="pgpay-paid-time" title="{} {}">{}</small>',
            created,
            gettext("paid at"),
            labels.long_time(obj.paid_at),
            labels.short_time(obj.paid_at),
        )

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

    def get_list_select_related(self, request):
        """The shop's own ``list_select_related``, plus ``user``: the buyer column falls back to the user's name.

        One join instead of a query per row, whatever the subclass sets (``True`` stays ``True``).
        """
        chosen = super().get_list_select_related(request)
        if chosen is True:
            return True
        if chosen is False:  # what Django would join by itself: the foreign keys shown as columns
            opts = self.model._meta
            names = {field.name for field in opts.fields if field.is_relation}
            chosen = [name for name in self.get_list_display(request) if name in names]
        return (*chosen, "user") if "user" not in chosen else tuple(chosen)

    def get_list_display(self, request):
        """The columns; ``currency`` joins them only when the orders hold more than one currency."""
        columns = list(super().get_list_display(request))
        if "currency" not in columns and self.currencies_in_use(request) > 1 and "display_amount" in columns:
            columns.insert(columns.index("display_amount") + 1, "currency")
        return columns

    def currencies_in_use(self, request) -> int:
        """How many currencies this admin's orders hold (at most 2 are counted)."""
        return len(self.get_queryset(request).order_by().values_list("currency", flat=True).distinct()[:2])

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
        """May this user give money back? ``refund_permission`` when set, else the shop's cancel view's rule.

        That rule (:func:`django_pgpay.permissions.staff_may_refund`) is the
        model's :meth:`~django_pgpay.models.AbstractOrder.get_refund_permission`
        (its change permission unless the model names another): staff status
        alone never refunds.
        """
        return self._staff_has(request, self.refund_permission, lambda: permissions.staff_may_refund(request.user, self.model))

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
        return [field.name for field in self.model._meta.fields] + list(SHOWN_AS)

    # "All fields" shows these as the rest of the page does: money in its currency, names not codes.
    @admin.display(description=_("amount"))
    def shown_amount(self, obj):
        return labels.money(obj.amount, obj.currency)

    @admin.display(description=_("cancelled amount"))
    def shown_canceled_amount(self, obj):
        return labels.money(obj.canceled_amount, obj.currency)

    @admin.display(description=_("gateway"))
    def shown_gateway(self, obj):
        return labels.gateway(obj.gateway) or "—"

    @admin.display(description=_("payment method"))
    def shown_method(self, obj):
        return labels.method(obj.method) or "—"

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
            (_("Order"), {"fields": [SHOWN_AS_FIELD.get(n, n) for n in base["order"] if n in own]}),
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
        """What the order page says first: rows needing attention, operations waiting for the PG, failed deliveries.

        Extend it in a subclass (``[*super().get_order_banners(request, order), Banner(...)]``).
        """
        banners = []
        attention = list(self._ledger(order).filter(status=TransactionStatus.ATTENTION))
        for row in attention:
            if row.error_code == ledger.REFUND_FAILED:
                banners.append(
                    Banner(
                        "error",
                        gettext(
                            "Needs attention: the PG reports that a refund of %(amount)s failed after it was made; the buyer "
                            "has not been paid back. Give the money back (a refund in the PG's dashboard is then found by "
                            "Reconcile now). %(error)s"
                        )
                        % {"amount": labels.money(row.amount, row.currency), "error": row.error_message or ""},
                    )
                )
                continue
            banners.append(
                Banner(
                    "error",
                    gettext(
                        "Needs attention: the PG refused to %(operation)s (%(amount)s) too often; it is not sent again. "
                        "Settle it in the PG's dashboard, then Reconcile now records what the PG did. Last error: %(error)s"
                    )
                    % {
                        "operation": ATTENTION_OPERATIONS.get(row.kind, row.get_kind_display()),
                        "amount": labels.money(row.amount, row.currency),
                        "error": row.error_message or "—",
                    },
                )
            )
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
        failed = self._deliveries(order).filter(status=DeliveryStatus.FAILED).count()
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
                    # A webhook's row says what it changed in the bookkeeping's words: translated here.
                    "reason": labels.changes(row.reason, row.currency or currency) if row.kind == TransactionKind.WEBHOOK else row.reason,
                }
            )
        webhook_admin = self._webhook_admin()
        can_reprocess = webhook_admin is not None and webhook_admin.has_reprocess_permission(request)
        deliveries = []
        for event in self._deliveries(order).order_by("-received_at", "-pk")[:50]:
            deliveries.append(
                {
                    "event": event,
                    "colour": STATE_COLOURS.get(event.status, "grey"),
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
            "deposit_account": self._deposit_account(order),
            "ledger": ledger,
            "deliveries": deliveries,
            "banners": self.get_order_banners(request, order),
            "refund_form": refund_form if links["can_refund"] else None,
            "next_url": request.get_full_path(),
            **links,
        }

    @staticmethod
    def _deposit_account(order) -> dict | None:
        """The virtual account a WAITING_FOR_DEPOSIT order waits on (bank, number, holder, deadline), else None."""
        data = order.pg_data or {}
        if order.status != OrderStatus.WAITING_FOR_DEPOSIT or not isinstance(data, Mapping) or not data.get("vbank_account_number"):
            return None
        return {
            "bank": labels.bank_label(data) or "—",
            "number": str(data["vbank_account_number"]),
            "holder": str(data.get("vbank_holder") or ""),
            "due": labels.long_time(order.expires_at) if order.expires_at else "",
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
        kind = {"invoice_pdf_action": ExportJob.Kind.INVOICE_PDF, "invoice_zip_action": ExportJob.Kind.INVOICE_ZIP}[name]
        limit = conf.setting("BACKGROUND_INVOICES")
        if limit is not None and not tasks.queued(tasks.render_invoice_batch) and paid.count() > int(limit):
            # Without a worker the batch would be laid out in this request, as one document (about
            # 1 MB of memory and 80 ms an invoice: 10,000 of them, minutes and gigabytes).
            self.message_user(
                request,
                gettext(
                    '%(count)s invoices are more than one request makes (PGPAY["BACKGROUND_INVOICES"] = %(limit)s) '
                    "and no task worker is configured: select fewer (filter by date), run "
                    '"manage.py pgpay_invoices", or set up a worker.'
                )
                % {"count": f"{paid.count():,}", "limit": f"{int(limit):,}"},
                messages.ERROR,
            )
            return None
        if self._in_background(tasks.render_invoice_batch, paid, "BACKGROUND_INVOICES"):
            ext = "pdf" if kind == ExportJob.Kind.INVOICE_PDF else "zip"
            return self._start_job(request, kind, paid.order_by("pk"), invoices._admin_filename(paid, ext))
        return func(self, request, paid)

    @admin.action(description=_("Export selected orders to CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        if self._in_background(tasks.write_export, queryset, "BACKGROUND_EXPORT_ROWS"):
            opts = self.model._meta
            stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
            return self._start_job(request, ExportJob.Kind.CSV, queryset, f"{opts.model_name}-orders-{stamp}.csv")
        return self.csv_response(queryset)

    def _in_background(self, task, queryset, threshold_key: str) -> bool:
        """Run this action in a worker? A queueing backend, and more orders than ``PGPAY[threshold_key]``."""
        threshold = conf.setting(threshold_key)
        return threshold is not None and tasks.queued(task) and queryset.count() > int(threshold)

    def _start_job(self, request, kind, queryset, filename: str):
        job, created = jobs.open_or_create(kind, queryset, user=request.user, filename=filename)
        if created or job.state == ExportJob.State.QUEUED:
            # Again for a queued job: its task may be lost (a task delivered twice runs the job once).
            tasks.start_job(job)
        if created:
            text = gettext("%(count)s orders are being prepared in the background; this page shows the progress and the download.")
        else:
            text = gettext("These %(count)s orders are being prepared already (asked once more): this page shows that job.")
        self.message_user(request, text % {"count": f"{job.total:,}"}, messages.INFO)
        for site_name in dict.fromkeys((self.admin_site.name, "admin")):
            try:
                return HttpResponseRedirect(reverse(f"{site_name}:django_pgpay_exportjob_change", args=[job.pk]))
            except NoReverseMatch:  # a site of the shop's own without ExportJobAdmin (the job runs all the same)
                continue
        self.message_user(
            request,
            gettext("Register django_pgpay's ExportJob admin on this admin site to follow the job and download its file."),
            messages.WARNING,
        )
        return HttpResponseRedirect(request.get_full_path())

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
            # What changed is in the ledger; the message says where the order stands now.
            self.message_user(
                request,
                gettext("Order %(number)s reconciled with %(pg)s: now %(status)s, balance %(balance)s.") % params,
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
            self.message_user(request, labels.no_invoice(order), messages.ERROR)
            return HttpResponseRedirect(self._url("change", order.pk))
        return invoices.invoice_response([order], filename=f"invoice-{order.order_number}.pdf")

    def order_csv_view(self, request, object_id):
        """One order as CSV (the button on the order page)."""
        order = self._order_or_404(request, object_id)
        return self.csv_response(self.model._default_manager.filter(pk=order.pk), filename=f"order-{order.order_number}.csv")


class OrderAdmin(OrderAdminMixin, admin.ModelAdmin):
    """A ready admin for any concrete order model: ``admin.site.register(Booking, OrderAdmin)``."""
