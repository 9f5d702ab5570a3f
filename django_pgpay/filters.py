"""List filters of the admin: a date range on any date field, and gateways by their PG's name.

``DateRangeFilter`` is a ``FieldListFilter``: ``list_filter = [("created",
DateRangeFilter), ("paid_at", DateRangeFilter)]``. It shows two date fields
and quick ranges (today, yesterday, the last 7 days, this month, last month).
Days are the shop's (``TIME_ZONE``): the bounds become aware datetimes in
Python, so the database compares plain timestamps and needs no time zone
tables (MySQL and MariaDB servers often lack them; ``date_hierarchy`` needs
them, which is why the order admin has none).

``GatewayFilter`` lists the gateway aliases of the orders as their PG's name
("Toss Payments", "Stripe") instead of the aliases.

``AttentionFilter`` finds the orders a person must look at: a follow-up the
PG refused too often (*needs attention*), an operation still waiting for the
PG's answer, a webhook delivery that failed.
"""

from __future__ import annotations

import datetime

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import labels
from .status import OPEN_TRANSACTION_STATUSES, DeliveryStatus, TransactionStatus


def local_day_start(day: datetime.date, zone=None) -> datetime.datetime:
    """The aware datetime at which ``day`` starts in ``zone`` (the current time zone)."""
    zone = zone or timezone.get_current_timezone()
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min), zone)


def day_bounds(since: datetime.date | None, until: datetime.date | None, zone=None):
    """``(start, end)``: aware datetimes for ``since`` 00:00 and the day after ``until`` 00:00 (None when open)."""
    start = local_day_start(since, zone) if since else None
    end = local_day_start(until + datetime.timedelta(days=1), zone) if until else None
    return start, end


def quick_ranges(today: datetime.date) -> list[tuple[str, datetime.date, datetime.date]]:
    """``[(label, since, until), ...]``: today, yesterday, the last 7 days, this month, last month."""
    first = today.replace(day=1)
    last_month_end = first - datetime.timedelta(days=1)
    return [
        (str(_("Today")), today, today),
        (str(_("Yesterday")), today - datetime.timedelta(days=1), today - datetime.timedelta(days=1)),
        (str(_("Last 7 days")), today - datetime.timedelta(days=6), today),
        (str(_("This month")), first, today),
        (str(_("Last month")), last_month_end.replace(day=1), last_month_end),
    ]


#: The first and the last day a date box of the admin or a date option of a command accepts:
#: any day a shop's records can carry, far enough from the calendar's ends (years 1 and 9999)
#: that the day after, the week before and the day's midnight in any time zone exist
#: (``date.max + 1 day`` is an ``OverflowError``, which was a server error).
FIRST_DAY = datetime.date(1900, 1, 1)
LAST_DAY = datetime.date(9998, 12, 31)


def parse_day(value: str) -> datetime.date:
    """``YYYY-MM-DD`` as a date from :data:`FIRST_DAY` to :data:`LAST_DAY`, or ``ValueError``."""
    day = datetime.date.fromisoformat(str(value).strip())
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{day.isoformat()} is not between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}")
    return day


class DateRangeFilter(admin.FieldListFilter):
    """From / to dates (both included, in the shop's time zone) on a ``DateTimeField``.

    Parameters: ``<field>__range__gte`` and ``<field>__range__lte`` as
    ``YYYY-MM-DD``. A value that is not a date, and a range whose end is
    before its start, are refused the admin's way (the list reloads with
    ``?e=1``), never a 500 nor an empty list.
    """

    template = "admin/django_pgpay/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.lookup_since = f"{field_path}__range__gte"
        self.lookup_until = f"{field_path}__range__lte"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = getattr(field, "verbose_name", field_path)

    def expected_parameters(self):
        return [self.lookup_since, self.lookup_until]

    def _value(self, name: str) -> str:
        value = self.used_parameters.get(name)
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        return str(value or "")

    @property
    def since_value(self) -> str:
        return self._value(self.lookup_since)

    @property
    def until_value(self) -> str:
        return self._value(self.lookup_until)

    def bounds(self):
        """``(since, until)`` as dates (None when not given); ``IncorrectLookupParameters`` for bad input or a reversed range."""
        try:
            since = parse_day(self.since_value) if self.since_value else None
            until = parse_day(self.until_value) if self.until_value else None
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        if since and until and until < since:
            # It would list nothing, as if there were no orders; refused as the settlement form does.
            raise IncorrectLookupParameters(f"{self.lookup_until} {until.isoformat()} is before {self.lookup_since} {since.isoformat()}")
        return since, until

    def queryset(self, request, queryset):
        since, until = self.bounds()
        start, end = day_bounds(since, until)
        if start is not None:
            queryset = queryset.filter(**{f"{self.field_path}__gte": start})
        if end is not None:
            queryset = queryset.filter(**{f"{self.field_path}__lt": end})
        return queryset

    def choices(self, changelist):
        """The quick ranges as links; the form in the template keeps the other parameters."""
        self.hidden_params = [
            (name, value)
            for name, values in changelist.get_filters_params().items()
            if name not in self.expected_parameters()
            for value in (values if isinstance(values, list) else [values])
        ]
        for key in ("o", "q"):
            if key in changelist.params:
                self.hidden_params.append((key, changelist.params[key]))
        yield {
            "selected": not (self.since_value or self.until_value),
            "query_string": changelist.get_query_string(remove=self.expected_parameters()),
            "display": _("Any date"),
        }
        today = timezone.localdate()
        for label, since, until in quick_ranges(today):
            yield {
                "selected": (self.since_value, self.until_value) == (since.isoformat(), until.isoformat()),
                "query_string": changelist.get_query_string({self.lookup_since: since.isoformat(), self.lookup_until: until.isoformat()}),
                "display": label,
            }


class GatewayFilter(admin.SimpleListFilter):
    """The orders' gateway aliases, shown as their PG's name ("Toss Payments")."""

    title = _("gateway")
    parameter_name = "gateway"

    def lookups(self, request, model_admin):
        names = labels.gateway_names()
        used = model_admin.get_queryset(request).order_by().values_list("gateway", flat=True).distinct()
        aliases = sorted(set(used) | set(names))
        return [(alias, names.get(alias, alias)) for alias in aliases if alias]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.parameter_name: self.value()})
        return queryset


class AttentionFilter(admin.SimpleListFilter):
    """Orders a person must look at (the order admin's "attention" filter).

    * *Needs attention*: a ledger row the PG refused too often (returning a
      payment the shop did not keep, closing a virtual account); the
      ``payment_needs_attention`` signal was sent for it. Settle it at the PG;
      "Reconcile now" then records what the PG did.
    * *Waiting for the PG*: an operation whose answer never came; reconcile
      settles it.
    * *Failed webhook*: a delivery of the order that failed; re-process it once
      the cause is fixed.
    """

    title = _("attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("needed", _("Needs attention")),
            ("waiting", _("Waiting for the PG")),
            ("webhook", _("Failed webhook")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "webhook":
            from .models import WebhookEvent

            failed = WebhookEvent.objects.filter(status=DeliveryStatus.FAILED).exclude(order_number="")
            return queryset.filter(order_number__in=failed.values("order_number"))
        rows = queryset.model.get_transaction_model()._base_manager
        if value == "needed":
            rows = rows.filter(status=TransactionStatus.ATTENTION)
        elif value == "waiting":
            rows = rows.filter(Q(status__in=OPEN_TRANSACTION_STATUSES) & ~Q(kind="webhook"))
        else:
            raise IncorrectLookupParameters(f"attention={value!r}")
        return queryset.filter(pk__in=rows.values("order_id"))
