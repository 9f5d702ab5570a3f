"""What both shops share on top of django-pgpay's views: a choice of PG, and their own return URLs.

Each shop's checkout view is django-pgpay's :class:`~django_pgpay.views.CheckoutMixin`
with :class:`GatewayChoiceMixin` (the buyer picks one of ``PGPAY["GATEWAYS"]``)
and :class:`ShopReturnUrlsMixin` (the PG sends the buyer back to the shop's own
:class:`ShopReturnView`, a :class:`~django_pgpay.views.ReturnView` that
redirects to the shop's page after a payment). Webhooks and cancels use
django-pgpay's own URLs (``pay/<alias>/webhook/``, ``pay/cancel/<number>/``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from django_pgpay import conf
from django_pgpay.exceptions import PgPayError
from django_pgpay.gateways.results import CheckoutUrls
from django_pgpay.labels import bank_label, pg_label
from django_pgpay.orders import find_order
from django_pgpay.status import OrderStatus
from django_pgpay.views import ReturnView, checkout_urls


def offered_aliases(shop: str) -> list[str]:
    """The aliases of ``PGPAY["GATEWAYS"]`` that ``shop`` offers (``settings.GATEWAY_SHOPS``; unnamed: every shop)."""
    shops = getattr(settings, "GATEWAY_SHOPS", {})
    return [alias for alias in conf.gateway_aliases() if shop in shops.get(alias, (shop,))]


def default_alias(shop: str) -> str:
    """``PGPAY["DEFAULT_GATEWAY"]`` when ``shop`` offers it, else the first PG it offers."""
    offered = offered_aliases(shop)
    default = conf.default_gateway_alias()
    return default if default in offered or not offered else offered[0]


def gateway_choices(shop: str) -> list[dict]:
    """Every PG ``shop`` offers, for a radio button each: alias, name (in the page's language), and whether it is the sandbox."""
    sandbox = set(getattr(settings, "SANDBOX_GATEWAYS", ()))
    default = default_alias(shop)
    choices = []
    for alias in offered_aliases(shop):
        choices.append(
            {
                "alias": alias,
                "name": pg_label(alias),
                "sandbox": alias in sandbox,
                "default": alias == default,
            }
        )
    return choices


class GatewayChoiceMixin:
    """The buyer picks the PG: a ``gateway`` field posted with the checkout form, one of those :attr:`shop` offers.

    Anything else (or nothing) takes the shop's default (:func:`default_alias`).
    """

    #: The shop's name in ``settings.GATEWAY_SHOPS``.
    shop = ""

    def get_gateway_alias(self) -> str:
        posted = self.request.POST.get("gateway", "")
        return posted if posted in offered_aliases(self.shop) else default_alias(self.shop)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["gateway_choices"] = gateway_choices(self.shop)
        return context


class ShopReturnUrlsMixin:
    """The PG sends the buyer back to the shop's own return view (``<namespace>:return`` / ``<namespace>:fail``).

    The URLs are django-pgpay's own (:func:`~django_pgpay.views.checkout_urls`)
    with the shop's views: the return and fail URLs carry the buyer token
    (``pgpay_t``) that lets the browser coming back confirm the payment without
    the buyer's session (a cleared cookie, a payment app returning in another
    browser); the webhook and attempt URLs are the library's.
    """

    url_namespace = ""

    def get_checkout_urls(self, order) -> CheckoutUrls:
        ns = self.url_namespace
        return checkout_urls(self.request, order, return_url_name=f"{ns}:return", fail_url_name=f"{ns}:fail")


class ShopReturnView(ReturnView):
    """django-pgpay's return view for one shop: redirects to the order's page after a payment.

    Failures and "being processed" are rendered in the shop's layout with a
    link back (:meth:`order_url`, or :attr:`fallback_url_name` when the order is
    not known or not the visitor's).
    """

    success_message = _("Payment complete.")
    fallback_url_name = "home"
    failure_template_name = "payment_failed.html"
    pending_template_name = "payment_pending.html"

    def order_url(self, order) -> str:
        return reverse(self.fallback_url_name)

    def get_success_url(self, order) -> str:
        if order.status == OrderStatus.WAITING_FOR_DEPOSIT:
            data = order.pg_data or {}
            messages.info(
                self.request,
                _("A virtual account was issued: %(bank)s %(account)s, transfer by %(due)s.")
                % {
                    "account": data.get("vbank_account_number", "?"),
                    "bank": bank_label(data),
                    "due": date_format(timezone.localtime(order.expires_at), "DATETIME_FORMAT") if order.expires_at else "-",
                },
            )
        else:
            messages.success(self.request, self.success_message)
        return self.order_url(order)

    def _returned_order(self):
        """The order named by the PG's return query, if the visitor may see it."""
        try:
            params = self.get_gateway().parse_return(self.request.GET)
            order = find_order(params.order_number, models=self.order_models)
        except (PgPayError, LookupError):
            return None
        return order if order is not None and order.is_owned_by(self.request.user) else None

    def page(self, template, *, order=None, **context):
        shown = order if order is not None else self._returned_order()
        visible = shown is not None and shown.is_owned_by(self.request.user)
        context.setdefault("back_url", self.order_url(shown) if visible else reverse(self.fallback_url_name))
        return super().page(template, order=order, **context)
