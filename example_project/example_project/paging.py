"""Paging of the buyers' lists ("My bookings", "My orders"): no COUNT for a buyer whose list fits on one page.

Django's :class:`~django.core.paginator.Paginator` counts the rows (``SELECT
COUNT(*)``) before it reads the page. Most buyers have fewer bookings than a
page holds, so the first page is read with one row more than it shows: when
that row is not there, the count is known and the COUNT query is not sent.
"""

from __future__ import annotations

from django.core.paginator import EmptyPage, Paginator


class FirstPagePaginator(Paginator):
    """A :class:`~django.core.paginator.Paginator` whose first page, when it is the only one, costs one query."""

    def page(self, number):
        if "count" not in self.__dict__ and str(number) == "1":
            # per_page + orphans rows still make one page; one row more says there is another.
            limit = self.per_page + self.orphans
            rows = list(self.object_list[: limit + 1])
            if len(rows) <= limit:
                self.count = len(rows)  # the cached_property's value, without the COUNT
                if not rows and not self.allow_empty_first_page:
                    raise EmptyPage(self.error_messages["no_results"])  # as Django says it
                return self._get_page(rows, 1, self)
        return super().page(number)
