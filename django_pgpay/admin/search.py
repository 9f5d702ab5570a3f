"""Searching orders: order number and PG id prefixes, names, phone digits, and what was sold."""

from __future__ import annotations

import re

from django.db.models import Q, Value
from django.db.models.functions import Replace
from django.utils.text import smart_split, unescape_string_literal


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
        if len(bit) >= 2 and bit[:1] in ('"', "'") and bit[-1:] == bit[:1]:  # a lone quote is a word, not an empty phrase
            bit = unescape_string_literal(bit)
        if bit.strip():
            terms.append(bit.strip())
    return terms


class OrderSearch:
    """The order admin's search (a mixin of :class:`~django_pgpay.admin.OrderAdminMixin`).

    A subclass sets ``sold_search_fields`` (field paths of what an order sold,
    e.g. ``("lines__name",)``) or overrides :meth:`search_sold`.
    """

    sold_search_fields: tuple = ()

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
                _pgpay_phone=Replace(
                    Replace(Replace("buyer_phone", Value("-"), Value("")), Value(" "), Value("")), Value("+82"), Value("0")
                )
            )
            q |= Q(
                pk__in=phones.filter(_pgpay_phone__contains=digits.removeprefix("82") if digits.startswith("82") else digits).values("pk")
            )
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
