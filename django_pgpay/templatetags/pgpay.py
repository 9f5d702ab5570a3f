"""Template tags of django-pgpay: ``{% load pgpay %}``."""

import secrets

from django import template
from django.utils.translation import gettext_lazy as _

from ..money import MoneyError, quantize

register = template.Library()


@register.inclusion_tag("django_pgpay/cancel_form.html", takes_context=True)
def pgpay_cancel_form(context, order, partial=False, next=None, label=None):
    """A POST form that cancels ``order`` (all of it, or an amount when ``partial``).

    Each rendering carries a fresh idempotency token, so submitting the same
    form twice (a double click, a resubmitted page) cancels once.
    ``{% pgpay_cancel_form order next=request.path %}``
    """
    try:
        # What is left, in the currency's decimals (20000, 10.50), not the stored 3 places.
        balance = quantize(order.balance, order.currency)
    except MoneyError:
        balance = order.balance
    return {
        "order": order,
        "balance": balance,
        "partial": partial,
        "next": next or "",
        "label": label or _("Cancel"),
        "token": secrets.token_hex(16),
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }
