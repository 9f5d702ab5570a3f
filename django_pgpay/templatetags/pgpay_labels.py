"""Filters for what buyers read: ``{% load pgpay_labels %}``.

``{{ order|pg_label }}`` (or a gateway, an alias): the PG's name in the page's
language, 토스페이먼츠 in Korean. ``{{ order.pg_data|bank_label }}`` (or a
code such as ``"20"``): the name of a virtual account's bank.
``{{ order.amount|amount_label:order.currency }}``: ``30,000원`` in Korean,
``₩30,000`` in English. See :mod:`django_pgpay.labels`.
"""

from django import template

from .. import labels

register = template.Library()


@register.filter
def pg_label(value) -> str:
    """The PG's name in the active language (an order, a gateway, an alias)."""
    return labels.pg_label(value)


@register.filter
def bank_label(value) -> str:
    """A bank's name from a bank code or an order's ``pg_data``."""
    return labels.bank_label(value)


@register.filter
def amount_label(value, currency="KRW") -> str:
    """An amount with its currency, as buyers read it in the active language."""
    return labels.money(value, currency)
