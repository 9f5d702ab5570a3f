"""Template tags of django-pgpay: ``{% load pgpay %}``."""

import secrets

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .. import checkout_forms, labels, permissions, refund_accounts
from ..money import MoneyError, quantize
from ..status import OrderStatus

register = template.Library()


def order_url(name: str, order) -> str:
    """``django_pgpay:<name>`` of ``order``, naming its model (``app_label.model``) and number: one model searched."""
    return reverse(f"django_pgpay:{name}", args=[order._meta.label_lower, order.order_number])


@register.simple_tag
def pgpay_invoice_url(order) -> str:
    """The URL of ``order``'s PDF invoice (:class:`~django_pgpay.views.InvoiceView`).

    ``<a href="{% pgpay_invoice_url order %}">`` gives
    ``/pay/invoice/<app_label.model>/<order_number>/``: the view looks in that
    model only (one query, however many order models the project has).
    """
    return order_url("invoice", order)


@register.simple_tag
def pgpay_checkout_token(order=None):
    """The checkout start form's hidden token field (:mod:`django_pgpay.checkout_forms`).

    ``{% pgpay_checkout_token %}`` inside the ``<form>`` that posts to a
    :class:`~django_pgpay.views.CheckoutMixin` view, as ``{% csrf_token %}``:
    each page load gets a new token, and the form posted again once its order
    is paid shows that order instead of starting a second one.
    ``{% pgpay_checkout_token order %}`` in a form that continues ``order``
    (a "Pay now" button on a list of orders) posts that order's own token.
    """
    token = checkout_forms.token_for(order) if order is not None else checkout_forms.new_token()
    return format_html('<input type="hidden" name="{}" value="{}">', checkout_forms.FIELD, token)


#: The template of :func:`pgpay_cancel_form` (override it in your project's templates).
CANCEL_FORM_TEMPLATE = "django_pgpay/cancel_form.html"


@register.simple_tag(takes_context=True)
def pgpay_cancel_form(context, order, partial=False, next=None, label=None):
    """A POST form that cancels ``order`` (all of it, or an amount when ``partial``).

    Each rendering carries a fresh idempotency token, so submitting the same
    form twice (a double click, a resubmitted page) cancels once.
    ``{% pgpay_cancel_form order next=request.path %}``

    The partial form's amount is typed, so the view's confirmation page states
    it. The full form carries its confirmation step with it: the button opens
    (``<details>``) what is refunded and what is left, and "Refund now" posts
    ``full=1`` and ``confirm=1``; no page load in between, nothing changed
    before that second click.

    An order waiting for a virtual account's deposit can only be cancelled in
    full (nothing was paid; its account is closed): for it the partial form is
    not rendered at all (an empty string, whatever the template), and the full
    one offers "Close the virtual account". Nor is it for the buyer of an order
    whose model sets ``buyer_may_cancel_part = False`` (staff still get it).
    Past the order's :meth:`~django_pgpay.models.AbstractOrder.get_buyer_cancel_deadline`
    its buyer gets no form at all (staff still do).
    """
    withdraws_account = order.status == OrderStatus.WAITING_FOR_DEPOSIT
    if partial and withdraws_account:
        # The view would refuse any amount (PARTIAL_NOT_ALLOWED): no amount box to type one in.
        return ""
    request = context.get("request")
    buyer = permissions.is_buyer(getattr(request, "user", None), order)
    if partial and not order.buyer_may_cancel_part and buyer:
        # Nor for the buyer of an order cancelled in full only (FULL_CANCEL_ONLY); staff still get it.
        return ""
    if buyer and order.is_cancelable and not order.buyer_may_cancel_now:
        # Past the buyer's deadline (BUYER_DEADLINE_PASSED): no form the view would refuse.
        return ""
    try:
        # What is left, in the currency's decimals (20000, 10.50), not the stored 3 places.
        balance = quantize(order.balance, order.currency)
    except MoneyError:
        balance = order.balance
    values = {
        "order": order,
        # The URL names the order's model: the view looks in that model only (one query).
        "action": order_url("cancel", order),
        "balance": balance,
        # As the shop's pages show money: 15,000원 in Korean, ₩15,000 in English.
        "balance_display": labels.money(order.balance, order.currency),
        "nothing_display": labels.money(0, order.currency),
        "withdraws_account": withdraws_account,
        # Paid into a virtual account: the refund needs the buyer's bank account, asked on the view's
        # confirmation page (the in-page confirmation has no fields for it).
        "needs_account": refund_accounts.needed(order),
        "partial": partial,
        "next": next or "",
        "label": label or _("Cancel"),
        "token": secrets.token_hex(16),
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }
    # As an inclusion tag renders: the page's engine, autoescaping and localisation, a context of its own.
    return context.template.engine.get_template(CANCEL_FORM_TEMPLATE).render(context.new(values))
