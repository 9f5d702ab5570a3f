"""The admin's lists refuse a query a database cannot run, the way Django refuses a bad filter.

PostgreSQL refuses NUL in a text parameter (psycopg raises ``DataError``), so
``?status__exact=%00`` on a list, a filter or a field lookup of the query
string was a server error there while SQLite answered an empty list. Found by
the HTTP fuzz suite's admin family (``tests/fuzz``).

An action posted with a selected id that is not one (``_selected_action=abc``
for an integer key, a tampered form) was a 500 in Django's own
``response_action`` (the ``pk__in`` filter raises ``ValueError``), as was an
integer beyond the column's range on SQLite (``OverflowError``); both are a 400.
"""

from __future__ import annotations

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.http import HttpResponseBadRequest
from django.utils.translation import gettext as _

from .. import inputs


class QueryGuard:
    """Mixed into a ``ModelAdmin``: a list query holding NUL or a lone surrogate is an invalid lookup.

    Django's changelist then redirects to ``?e=1`` ("incorrect lookup
    parameters"), as it does for a filter on a field that does not exist;
    nothing reaches the database. An action whose selected ids are not ids
    of the model (or hold such characters) is refused with a 400. So is a
    ``date_hierarchy`` year, month or day that is not a number of its range
    (Django answered ``?datetime__year=99999999999`` with a 500: an
    ``OverflowError`` it does not catch).
    """

    #: The range of each part of a ``date_hierarchy`` query (``<field>__year`` ...). Not year 1: its first day,
    #: made aware in a time zone east of UTC, is before year 1 in UTC (Django's OverflowError again); not 9999,
    #: whose end Django computes as the first day of year 10000.
    DATE_PARTS = {"year": (2, 9998), "month": (1, 12), "day": (1, 31)}

    def get_changelist_instance(self, request):
        if inputs.has_forbidden_text(request.GET):
            raise IncorrectLookupParameters("the query holds characters no database stores")
        if not self._date_parts_in_range(request.GET):
            raise IncorrectLookupParameters("a date outside the calendar")
        return super().get_changelist_instance(request)

    def _date_parts_in_range(self, query) -> bool:
        field = getattr(self, "date_hierarchy", None)
        if not field:
            return True
        for part, (low, high) in self.DATE_PARTS.items():
            for value in query.getlist(f"{field}__{part}"):
                if not (value.isascii() and value.isdigit() and len(value) <= 4 and low <= int(value) <= high):
                    return False
        return True

    def response_action(self, request, queryset, *args, **kwargs):  # Django 6 adds action_location
        pk = self.model._meta.pk
        across = request.POST.get("select_across", "")
        # "All N items" selected: Django ignores the ids (its ActionForm reads the box as a BooleanField).
        selected = [] if across and across.lower() not in ("false", "0") else request.POST.getlist(ACTION_CHECKBOX_NAME)
        try:
            for value in selected:
                if inputs.forbidden(value):
                    raise ValidationError("forbidden characters")
                key = pk.to_python(value)
                if isinstance(key, int) and not self._in_range(key):
                    raise ValidationError("out of range")
        except ValidationError:
            return HttpResponseBadRequest(_("The selected items are not items of this list."), content_type="text/plain; charset=utf-8")
        return super().response_action(request, queryset, *args, **kwargs)

    def _in_range(self, key: int) -> bool:
        pk = self.model._meta.pk
        while pk.is_relation:  # a multi-table child's key is its parent's
            pk = pk.target_field
        try:
            low, high = connections[router.db_for_read(self.model)].ops.integer_field_range(pk.get_internal_type())
        except KeyError:  # not an integer column
            return True
        return (low is None or key >= low) and (high is None or key <= high)
