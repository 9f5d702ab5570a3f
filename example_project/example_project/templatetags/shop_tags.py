"""Template helpers of the example shops: ``{% load shop_tags %}``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.utils.translation import get_language

from django_pgpay.money import MoneyError, format_amount, quantize

register = template.Library()

#: Order status -> badge colour class.
STATUS_CLASSES = {
    "READY": "badge-wait",
    "WAITING_FOR_DEPOSIT": "badge-wait",
    "PAID": "badge-paid",
    "PARTIAL_CANCELED": "badge-partial",
    "CANCELED": "badge-canceled",
    "FAILED": "badge-failed",
    "EXPIRED": "badge-failed",
}


@register.filter
def money(amount, currency="KRW"):
    """``30,000원`` in Korean, ``₩30,000`` in English; other currencies as ``10.50 USD``."""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    currency = (currency or "KRW").upper()
    if currency != "KRW":
        try:
            return format_amount(value, currency)
        except MoneyError:
            return f"{value} {currency}"
    won = f"{quantize(value, 'KRW'):,}"
    if (get_language() or "").startswith("ko"):
        return f"{won}원"
    return f"₩{won}"


@register.filter
def status_class(status) -> str:
    """The badge colour class of an order status."""
    return STATUS_CLASSES.get(str(status), "badge-wait")
