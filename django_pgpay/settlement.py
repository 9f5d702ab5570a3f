"""Settlement (정산): what each PG took in and gave back, per day, from the ledger.

The figures come from the ledger's **succeeded** rows, never from the orders'
fields: an order says where it stands now, the ledger says when money moved.

* **payments**: succeeded ``confirm`` rows (the PG took the buyer's money);
* **refunds**: succeeded ``cancel`` rows (asked for by staff or buyers) and
  ``sync`` rows (cancels found at the PG, e.g. made in its dashboard);
* **net** = payments - refunds;
* **returned automatically**: succeeded ``compensate`` rows, money the library
  gave back by itself (a second payment of one order, an amount that did not
  match). It came in and went back out; it is shown apart and is not part of
  the net.

Rows are grouped by the day the PG answered (the row's ``completed_at``) in
the shop's time zone (``TIME_ZONE``), by gateway alias and by currency (sums
across currencies mean nothing). For KRW the net is split into supply value
(공급가액) and VAT (부가세) with :func:`django_pgpay.invoices.vat_split`, the
rounding the invoices use: each line's supply and VAT add up to its net. A
total splits the total net (as a VAT return does), so the VAT of a range may
differ by a won or so from the sum of its days' VAT, each rounded on its own.

**Days without time zone tables.** MySQL and MariaDB servers often lack the
time zone tables that ``CONVERT_TZ`` needs for a named zone, and Django's
``Trunc(..., tzinfo=...)`` uses them there. So the range is cut into spans in
which the shop's UTC offset does not change (one span for Asia/Seoul, a few
around daylight-saving changes elsewhere), each span's rows are shifted by its
offset, and the day is taken with ``TruncDate`` in UTC: plain arithmetic that
every database does the same way.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Count, DateTimeField, DurationField, ExpressionWrapper, F, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import labels
from .filters import FIRST_DAY, LAST_DAY, local_day_start, quick_ranges
from .money import quantize
from .status import TransactionKind, TransactionStatus

K = TransactionKind

#: Ledger kinds by the column they count in.
PAYMENT_KINDS = (K.CONFIRM,)
REFUND_KINDS = (K.CANCEL, K.SYNC)
RETURN_KINDS = (K.COMPENSATE,)
KINDS = (*PAYMENT_KINDS, *REFUND_KINDS, *RETURN_KINDS)

#: The longest range one settlement covers.
MAX_DAYS = 400

UTC = datetime.timezone.utc


@dataclass(frozen=True)
class Line:
    """The figures of one day (or of a total), one gateway and one currency.

    ``day`` is None in totals; ``gateway`` is ``""`` in a currency's grand total.
    ``supply`` and ``vat`` are None where the currency has no VAT split.
    """

    day: datetime.date | None
    gateway: str
    currency: str
    payment_count: int = 0
    paid: Decimal = Decimal(0)
    refund_count: int = 0
    refunded: Decimal = Decimal(0)
    return_count: int = 0
    returned: Decimal = Decimal(0)
    supply: Decimal | None = None
    vat: Decimal | None = None

    @property
    def net(self) -> Decimal:
        """What the PG took and kept for the shop: payments minus refunds."""
        return self.paid - self.refunded

    @property
    def gateway_name(self) -> str:
        return labels.gateway(self.gateway) if self.gateway else str(_("All PGs"))

    def show(self, amount) -> str:
        """``amount`` formatted in this line's currency (``42,000원``); ``—`` for None."""
        return "—" if amount is None else labels.money(amount, self.currency)

    # Formatted for templates.
    paid_label = property(lambda self: self.show(self.paid))
    refunded_label = property(lambda self: self.show(self.refunded))
    net_label = property(lambda self: self.show(self.net))
    supply_label = property(lambda self: self.show(self.supply))
    vat_label = property(lambda self: self.show(self.vat))
    returned_label = property(lambda self: self.show(self.returned))

    def plus(self, other: Line) -> Line:
        """This line and ``other`` added up (same currency; the VAT split is left to the caller)."""
        return replace(
            self,
            payment_count=self.payment_count + other.payment_count,
            paid=self.paid + other.paid,
            refund_count=self.refund_count + other.refund_count,
            refunded=self.refunded + other.refunded,
            return_count=self.return_count + other.return_count,
            returned=self.returned + other.returned,
            supply=None,
            vat=None,
        )


@dataclass(frozen=True)
class Settlement:
    """One settlement: its range, its lines (by day, gateway, currency) and their totals."""

    since: datetime.date
    until: datetime.date
    lines: tuple[Line, ...]
    #: Per gateway and currency over the whole range.
    gateway_totals: tuple[Line, ...] = field(default=())
    #: Per currency over the whole range, all gateways.
    totals: tuple[Line, ...] = field(default=())

    @property
    def has_returns(self) -> bool:
        """Did the library give money back by itself in this range (the column is shown only then)?"""
        return any(line.return_count for line in self.lines)

    @property
    def days(self) -> list[tuple[datetime.date, list[Line]]]:
        """``[(day, lines of that day), ...]``, newest day first."""
        grouped: dict[datetime.date, list[Line]] = {}
        for line in self.lines:
            grouped.setdefault(line.day, []).append(line)
        return sorted(grouped.items(), key=lambda item: item[0], reverse=True)


# --- the range and its UTC offsets -------------------------------------------------------------


def _offset(moment: datetime.datetime, zone) -> datetime.timedelta:
    return moment.astimezone(zone).utcoffset() or datetime.timedelta(0)


def offset_spans(
    start: datetime.datetime, end: datetime.datetime, zone
) -> list[tuple[datetime.datetime, datetime.datetime, datetime.timedelta]]:
    """``[(from, to, offset), ...]``: ``[start, end)`` cut where ``zone``'s UTC offset changes.

    Checked hour by hour, each change found to the second by bisection.
    """
    spans = []
    begin, current = start, _offset(start, zone)
    probe = start
    step = datetime.timedelta(hours=1)
    while probe < end:
        nxt = min(probe + step, end)
        if _offset(nxt, zone) != current and nxt != end:
            low, high = probe, nxt
            while high - low > datetime.timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _offset(middle, zone) == current:
                    low = middle
                else:
                    high = middle
            spans.append((begin, high, current))
            begin, current = high, _offset(high, zone)
        probe = nxt
    spans.append((begin, end, current))
    return spans


# --- computing ---------------------------------------------------------------------------------


def _vat(net: Decimal, currency: str, rates: Mapping[str, Decimal]) -> tuple[Decimal | None, Decimal | None]:
    """The invoices' split of ``net`` (:func:`django_pgpay.invoices.vat_rate_for`), or ``(None, None)`` without VAT."""
    from .invoices import vat_rate_for, vat_split

    rate = rates.get(currency)
    if rate is None:
        rate = rates[currency] = vat_rate_for(currency)
    return vat_split(net, currency, rate) if rate else (None, None)


def vat_rate() -> Decimal:
    """``PGPAY["INVOICE"]["VAT_RATE"]``, the rate the invoices use (0.1 by default)."""
    from .invoices import vat_rate as invoice_vat_rate

    return invoice_vat_rate()


def ledger_sums(
    transaction_model, start: datetime.datetime, end: datetime.datetime, zone, *, gateways: Sequence[str] = (), orders=None
) -> Iterable[dict]:
    """Rows ``{day, gateway, currency, kind, count, total}`` of one ledger model's succeeded rows in ``[start, end)``.

    ``orders`` (a queryset of the order model) limits them to those orders' rows.
    """
    for span_start, span_end, offset in offset_spans(start, end, zone):
        rows = (
            transaction_model._base_manager.filter(status=TransactionStatus.SUCCEEDED, kind__in=KINDS)
            .annotate(moment=Coalesce("completed_at", "created", output_field=DateTimeField()))
            .filter(moment__gte=span_start, moment__lt=span_end)
        )
        if gateways:
            rows = rows.filter(order__gateway__in=list(gateways))
        if orders is not None:
            rows = rows.filter(order__in=orders.order_by().values("pk"))
        shifted = ExpressionWrapper(F("moment") + Value(offset, output_field=DurationField()), output_field=DateTimeField())
        yield from (
            rows.annotate(day=TruncDate(shifted, tzinfo=UTC))
            .values("day", "order__gateway", "currency", "kind")
            .annotate(count=Count("pk"), total=Sum("amount"))
            .order_by()
        )


def compute(
    order_models: Iterable,
    since: datetime.date,
    until: datetime.date,
    *,
    zone=None,
    gateways: Sequence[str] = (),
    scopes: Mapping | None = None,
) -> Settlement:
    """The settlement of ``order_models``' ledgers from ``since`` to ``until`` (both days included).

    ``zone`` is the time zone of the days (default: the current one, i.e.
    ``TIME_ZONE``); ``gateways`` limits it to those aliases; ``scopes`` maps an
    order model to the queryset of its orders to count (the admin passes each
    admin's ``get_queryset``, so staff see the money of the orders they may
    see, nothing more).
    """
    if until < since:
        raise ValueError("until is before since")
    zone = zone or timezone.get_current_timezone()
    start = local_day_start(since, zone)
    end = local_day_start(until + datetime.timedelta(days=1), zone)
    sums: dict[tuple, dict] = {}
    for model in order_models:
        scope = (scopes or {}).get(model)
        for row in ledger_sums(model.get_transaction_model(), start, end, zone, gateways=gateways, orders=scope):
            day = row["day"]
            if isinstance(day, datetime.datetime):
                day = day.date()
            elif isinstance(day, str):
                day = datetime.date.fromisoformat(day[:10])
            key = (day, row["order__gateway"] or "", (row["currency"] or "").upper())
            entry = sums.setdefault(key, {"payment": [0, Decimal(0)], "refund": [0, Decimal(0)], "return": [0, Decimal(0)]})
            kind = row["kind"]
            column = "payment" if kind in PAYMENT_KINDS else "refund" if kind in REFUND_KINDS else "return"
            entry[column][0] += row["count"]
            entry[column][1] += Decimal(row["total"] or 0)

    rate: dict[str, Decimal] = {}  # VAT rate by currency (the invoices' rule), read once each
    lines = []
    for (day, gateway, currency), entry in sums.items():
        paid = quantize(entry["payment"][1], currency)
        refunded = quantize(entry["refund"][1], currency)
        supply, vat = _vat(paid - refunded, currency, rate)
        lines.append(
            Line(
                day=day,
                gateway=gateway,
                currency=currency,
                payment_count=entry["payment"][0],
                paid=paid,
                refund_count=entry["refund"][0],
                refunded=refunded,
                return_count=entry["return"][0],
                returned=quantize(entry["return"][1], currency),
                supply=supply,
                vat=vat,
            )
        )
    names = labels.gateway_names()
    lines.sort(key=lambda line: (line.day, names.get(line.gateway, line.gateway), line.currency))
    return Settlement(
        since=since,
        until=until,
        lines=tuple(lines),
        gateway_totals=_totals(lines, rate, by_gateway=True),
        totals=_totals(lines, rate),
    )


def _totals(lines: Sequence[Line], rate: dict, *, by_gateway: bool = False) -> tuple[Line, ...]:
    totals: dict[tuple, Line] = {}
    for line in lines:
        key = (line.gateway if by_gateway else "", line.currency)
        base = totals.get(key) or Line(day=None, gateway=key[0], currency=line.currency)
        totals[key] = base.plus(line)
    split = []
    for total in totals.values():
        supply, vat = _vat(total.net, total.currency, rate)
        split.append(replace(total, supply=supply, vat=vat))
    names = labels.gateway_names()
    return tuple(sorted(split, key=lambda line: (names.get(line.gateway, line.gateway), line.currency)))


# --- CSV ---------------------------------------------------------------------------------------


def csv_header() -> list[str]:
    """The settlement CSV's header, in the active language."""
    return [
        str(_("date")),
        str(_("PG")),
        str(_("gateway alias")),
        str(_("currency")),
        str(_("payments")),
        str(_("amount paid")),
        str(_("refunds")),
        str(_("amount refunded")),
        str(_("net")),
        str(_("supply value")),
        str(_("VAT")),
        str(_("returned automatically")),
        str(_("amount returned automatically")),
    ]


def csv_rows(settlement: Settlement) -> Iterable[list]:
    """One CSV row per line, oldest day first; amounts as plain numbers in the currency's digits."""
    for line in settlement.lines:
        yield [
            line.day.isoformat(),
            line.gateway_name,
            line.gateway,
            line.currency,
            line.payment_count,
            line.paid,
            line.refund_count,
            line.refunded,
            quantize(line.net, line.currency),
            "" if line.supply is None else line.supply,
            "" if line.vat is None else line.vat,
            line.return_count,
            line.returned,
        ]


# --- the form of the admin's settlement page ---------------------------------------------------


def quick_links(today: datetime.date) -> list[tuple[str, str]]:
    """``[(label, query string), ...]`` of the quick ranges (today, yesterday, last 7 days, ...)."""
    from django.utils.http import urlencode

    return [(label, urlencode({"since": since.isoformat(), "until": until.isoformat()})) for label, since, until in quick_ranges(today)]


def _day_field(label) -> forms.DateField:
    """An optional date box of the settlement page: a day from ``FIRST_DAY`` to ``LAST_DAY`` (:mod:`.filters`)."""
    return forms.DateField(
        label=label,
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=[MinValueValidator(FIRST_DAY), MaxValueValidator(LAST_DAY)],
    )


class SettlementForm(forms.Form):
    """The range (both days included), the PG and the order models of a settlement.

    Every field is optional: the range defaults to the last 7 days, the PG and
    the models to all. A range that ends before it starts, or is longer than
    :data:`MAX_DAYS`, is refused.
    """

    since = _day_field(_("From"))
    until = _day_field(_("To"))
    gateway = forms.ChoiceField(label=_("PG"), required=False)
    model = forms.ChoiceField(label=_("Orders"), required=False)

    def __init__(self, *args, models: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.models = models
        names = labels.gateway_names()
        self.fields["gateway"].choices = [("", _("All PGs")), *sorted(names.items(), key=lambda item: item[1])]
        model_choices = [(label, str(model._meta.verbose_name_plural).capitalize()) for label, model in models.items()]
        self.fields["model"].choices = [("", _("All orders")), *model_choices]
        if not self.is_bound:
            defaults = self.defaults()
            self.initial.update({"since": defaults["since"], "until": defaults["until"]})

    @staticmethod
    def defaults() -> dict:
        """The last 7 days (today included), every PG, every model."""
        today = timezone.localdate()
        return {"since": today - datetime.timedelta(days=6), "until": today, "gateways": [], "models": []}

    def clean(self):
        cleaned = super().clean()
        defaults = self.defaults()
        since = cleaned.get("since") or (cleaned.get("until") or defaults["until"]) - datetime.timedelta(days=6)
        until = cleaned.get("until") or max(defaults["until"], since)
        if "since" in self.errors or "until" in self.errors:
            return cleaned
        if until < since:
            raise forms.ValidationError(_("The end of the range is before its start."), code="reversed")
        if (until - since).days + 1 > MAX_DAYS:
            raise forms.ValidationError(_("Choose at most %(days)d days."), code="too_long", params={"days": MAX_DAYS})
        cleaned.update(
            since=since,
            until=until,
            gateways=[cleaned["gateway"]] if cleaned.get("gateway") else [],
            models=[cleaned["model"]] if cleaned.get("model") else [],
        )
        return cleaned


__all__ = ["Line", "Settlement", "SettlementForm", "compute", "csv_header", "csv_rows", "offset_spans", "quick_links"]
