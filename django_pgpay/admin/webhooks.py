"""The webhook delivery log in the admin, and re-processing of failed deliveries."""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import labels, permissions, webhooks
from ..exceptions import PgPayError
from ..filters import DateRangeFilter, GatewayFilter
from ..orders import find_order
from ..status import DeliveryStatus
from .media import ADMIN_MEDIA
from .queries import QueryGuard

logger = logging.getLogger("django_pgpay.admin")


#: Delivery status -> badge colour.
STATE_COLOURS = {
    DeliveryStatus.RECEIVED: "blue",
    DeliveryStatus.APPLIED: "green",
    DeliveryStatus.DUPLICATE: "grey",
    DeliveryStatus.IGNORED: "grey",
    DeliveryStatus.REFUSED: "orange",
    DeliveryStatus.FAILED: "red",
}


class WebhookEventAdmin(QueryGuard, admin.ModelAdmin):
    """Every webhook delivery as received, read-only; failed ones can be re-processed.

    Filter by ``?order_number=``. *Re-process* runs a stored delivery through
    :func:`django_pgpay.webhooks.process` again (the same checks: source,
    parsing, duplicates, verification, then the payment operations) and records
    who did it in the admin's log. A delivery already processed is left alone.
    It needs :meth:`has_reprocess_permission`: ``django_pgpay.change_webhookevent``
    by default, or the permission named in ``reprocess_permission``.
    """

    list_display = ("display_received", "display_event", "display_order_number", "display_state")
    list_display_links = ("display_received",)
    list_filter = ("status", "verified", GatewayFilter, "event_type", ("received_at", DateRangeFilter))
    search_fields = ("^order_number", "=payment_id", "=event_id")
    actions = ["reprocess"]
    list_per_page = 100
    show_full_result_count = False
    change_form_template = "admin/django_pgpay/webhookevent/change_form.html"
    reprocess_permission: str | None = None

    def check(self, **kwargs):
        """Django's admin checks, and ``django_pgpay.W013`` for a ``reprocess_permission`` no model declares."""
        named = {f"{type(self).__name__}.reprocess_permission": self.reprocess_permission}
        return [*super().check(**kwargs), *permissions.undeclared_warnings(named, obj=self)]

    @property
    def media(self):
        return super().media + ADMIN_MEDIA

    @admin.display(description=_("received at"), ordering="received_at")
    def display_received(self, obj):
        return format_html('<span title="{}">{}</span>', labels.long_time(obj.received_at), labels.short_time(obj.received_at))

    @admin.display(description=_("event type"), ordering="event_type")
    def display_event(self, obj):
        return format_html(
            '<span class="pgpay-ellipsis pgpay-event-type" title="{}">{}</span><br><small class="pgpay-muted">{}</small>',
            obj.event_type,
            obj.event_type or "—",
            labels.gateway(obj.gateway),
        )

    @admin.display(description=_("order number"), ordering="order_number")
    def display_order_number(self, obj):
        return format_html('<span class="pgpay-order-number">{}</span>', obj.order_number or "—")

    @admin.display(description=_("state"), ordering="status")
    def display_state(self, obj):
        """One badge: what became of the delivery (:class:`~django_pgpay.status.DeliveryStatus`); its error below.

        The error is a second, small line (cut to the column, whole on hover),
        so the list keeps four columns that fit 1280 px beside the filters.
        """
        colour = STATE_COLOURS.get(obj.status, "grey")
        verified = gettext("verified") if obj.verified else gettext("not verified")
        badge = format_html('<span class="pgpay-badge pgpay-badge-{}" title="{}">{}</span>', colour, verified, obj.get_status_display())
        if not obj.error:
            return badge
        return format_html('{}<br><small class="pgpay-ellipsis pgpay-error" title="{}">{}</small>', badge, obj.error, obj.error)

    def get_readonly_fields(self, request, obj=None):
        # The detail page names the PG as the list does, and links the order it is about (for whoever may see it).
        @admin.display(description=_("order number"))
        def order_number(event):
            url = self.order_admin_url(request, event)
            if not url:
                return event.order_number or "—"
            return format_html('<a href="{}" id="pgpay-webhook-order">{}</a>', url, event.order_number)

        shown = {"gateway": "shown_gateway", "order_number": order_number}
        return [shown.get(field.name, field.name) for field in self.model._meta.fields]

    @admin.display(description=_("gateway"))
    def shown_gateway(self, obj):
        return labels.gateway(obj.gateway) or obj.gateway or "—"

    def order_admin_url(self, request, event) -> str:
        """The admin page of the order ``event`` is about, if it is found and ``request``'s user may see it; else ``""``."""
        if not event.order_number:
            return ""
        try:
            order = find_order(event.order_number, gateway=event.gateway or None)
        except PgPayError:  # the number is in two order models: link neither
            return ""
        model_admin = self.admin_site._registry.get(type(order)) if order is not None else None
        if model_admin is None or not model_admin.has_view_or_change_permission(request, order):
            return ""
        if not model_admin.get_queryset(request).filter(pk=order.pk).exists():  # an admin that scopes what it lists
            return ""
        opts = order._meta
        return reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[order.pk])

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
            webhooks.reopen(event)  # a refused delivery too: a person asks for it to be tried again
            receipt = webhooks.process(event)
        except PgPayError as exc:
            # e.g. the gateway alias is no longer configured: nothing was applied.
            event.error = f"re-process: {exc}"[:5000]
            event.status = DeliveryStatus.FAILED
            event.save(update_fields=["error", "status"])
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
        here = reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[object_id], current_app=self.admin_site.name
        )
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
