"""The settlement page of the order admin (figures: :mod:`django_pgpay.settlement`)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext

from .. import exports
from .. import settlement as settlements


class SettlementPage:
    """``<app>/<model>/settlement/`` (a mixin of :class:`~django_pgpay.admin.OrderAdminMixin`).

    Covers every order admin of the site whose settlement the user may see
    (``has_settlement_permission``), this one first.
    """

    settlement_template = "admin/django_pgpay/order/settlement.html"

    def settlement_admins(self, request) -> list:
        """The order admins of this site whose settlement this user may see (this one first)."""
        found = [self] if self.has_settlement_permission(request) else []
        for model_admin in self.admin_site._registry.values():
            if model_admin is self or not isinstance(model_admin, SettlementPage):
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
        form = settlements.SettlementForm(request.GET or None, models=models)
        result = None
        status = 200
        if form.is_bound and not form.is_valid():
            status = 400
        else:
            data = form.cleaned_data if form.is_bound else form.defaults()
            chosen = [models[label] for label in data["models"]] or list(models.values())
            # Each admin's own queryset: a shop that limits what staff see (one branch's orders, one
            # tenant's) limits their settlement too (it summed the whole ledger: an attack review).
            scopes = {model_admin.model: model_admin.get_queryset(request) for model_admin in admins}
            result = settlements.compute(chosen, data["since"], data["until"], gateways=data["gateways"], scopes=scopes)
            if request.GET.get("format") == "csv":
                filename = f"settlement-{data['since']:%Y%m%d}-{data['until']:%Y%m%d}.csv"
                chunks = exports.iter_table(settlements.csv_header(), settlements.csv_rows(result), bom=self.csv_bom)
                return exports.table_response(chunks, filename=filename)
        query = request.GET.copy()
        query["format"] = "csv"
        context = self._page_context(
            request,
            title=gettext("Settlement"),
            form=form,
            settlement=result,
            csv_url=f"{self._url('settlement')}?{query.urlencode()}",
            quick_ranges=settlements.quick_links(timezone.localdate()),
            settlement_url=self._url("settlement"),
            changelist_url=self._url("changelist"),
        )
        return TemplateResponse(request, self.settlement_template, context, status=status)

    def changelist_view(self, request, extra_context=None):
        extra = {"settlement_url": self._url("settlement") if self.has_settlement_permission(request) else ""}
        return super().changelist_view(request, {**extra, **(extra_context or {})})
