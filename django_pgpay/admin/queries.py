"""The admin's lists refuse a query a database cannot run, the way Django refuses a bad filter.

PostgreSQL refuses NUL in a text parameter (psycopg raises ``DataError``), so
``?status__exact=%00`` on a list, a filter or a field lookup of the query
string was a server error there while SQLite answered an empty list. Found by
the HTTP fuzz suite's admin family (``tests/fuzz``).
"""

from __future__ import annotations

from django.contrib.admin.options import IncorrectLookupParameters

from .. import inputs


class QueryGuard:
    """Mixed into a ``ModelAdmin``: a list query holding NUL or a lone surrogate is an invalid lookup.

    Django's changelist then redirects to ``?e=1`` ("incorrect lookup
    parameters"), as it does for a filter on a field that does not exist;
    nothing reaches the database.
    """

    def get_changelist_instance(self, request):
        if inputs.has_forbidden_text(request.GET):
            raise IncorrectLookupParameters("the query holds characters no database stores")
        return super().get_changelist_instance(request)
