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
  full with a confirmation page and a required reason. With a queueing
  ``TASKS`` backend, exports and invoice batches above
  ``PGPAY["BACKGROUND_EXPORT_ROWS"]`` / ``PGPAY["BACKGROUND_INVOICES"]`` run
  in a worker: the action opens the job's page (:class:`ExportJobAdmin`),
  which shows the progress and, when done, the download.
* **Settlement** (정산, ``<app>/<model>/settlement/``): per day and PG, from
  the ledger (:mod:`django_pgpay.settlement`), with CSV export.
* **Webhook deliveries** (:class:`WebhookEventAdmin`): columns that fit and a
  *re-process* action that runs a failed delivery through
  :func:`django_pgpay.webhooks.process` again, recorded in the admin's log.

Every operation is behind a Django permission, never ``is_staff`` alone:

==================  =================================================================
refund              ``has_refund_permission``: the model's refund permission
                    (``get_refund_permission()``, *change* by default); an admin
                    ``refund_permission`` must name the same (``django_pgpay.E014``)
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

The package's modules: :mod:`~django_pgpay.admin.orders` (the order admin and its
page), :mod:`~django_pgpay.admin.search`, :mod:`~django_pgpay.admin.refunds`,
:mod:`~django_pgpay.admin.settlement` (the pages it adds), :mod:`~django_pgpay.admin.forms`,
:mod:`~django_pgpay.admin.inlines`, :mod:`~django_pgpay.admin.webhooks` and
:mod:`~django_pgpay.admin.queries` (:class:`QueryGuard`: a list query with NUL is
Django's "incorrect lookup" ``?e=1``, not a database error; every admin here has
it, a shop's own ``ModelAdmin`` may mix it in). Import from ``django_pgpay.admin``.
"""

from __future__ import annotations

from django.contrib import admin

from ..models import ExportJob, WebhookEvent
from .forms import RefundForm, RefundReasonForm
from .inlines import TransactionInline, transaction_inline
from .jobs import ExportJobAdmin
from .orders import Banner, OrderAdmin, OrderAdminMixin, invoices_module
from .queries import QueryGuard
from .webhooks import WebhookEventAdmin

admin.site.register(WebhookEvent, WebhookEventAdmin)
admin.site.register(ExportJob, ExportJobAdmin)

__all__ = [
    "Banner",
    "ExportJobAdmin",
    "OrderAdmin",
    "OrderAdminMixin",
    "QueryGuard",
    "RefundForm",
    "RefundReasonForm",
    "TransactionInline",
    "WebhookEventAdmin",
    "invoices_module",
    "transaction_inline",
]
