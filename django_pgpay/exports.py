"""Streaming CSV export of orders.

Seed tutorials build the whole CSV in an ``HttpResponse`` from model instances;
at a million orders that holds every instance and every line in memory at
once. Here a generator reads the rows in chunks with
``queryset.values_list(...).iterator(chunk_size=...)`` (a server-side cursor on
PostgreSQL), formats a few hundred lines at a time and hands them to a
:class:`~django.http.StreamingHttpResponse`, so memory stays flat whatever the
number of orders.

The file opens correctly in Excel, Hangul included: it is UTF-8 with a byte
order mark by default (``PGPAY["CSV_BOM"]`` or ``bom=False`` turns it off).

Columns are :class:`Column` objects or names: a built-in name from
:data:`COLUMNS` (``"order_number"``, ``"status"``, ``"paid_at"`` ...) or any
field path of the order model (``"seat__table__restaurant__name"``), read with
the same ``values_list`` query. A column built with ``instance=True`` (the
``"items"`` column: :meth:`~django_pgpay.models.AbstractOrder.get_line_items`)
gets the order instance instead; those are loaded 500 at a time, with the
``prefetch`` lookups the caller names, and only when such a column is asked for.

**Money that never came.** ``paid_amount`` and ``balance`` are 0 for an order
that never took money (awaiting payment or deposit, failed, expired), so the
sum of the balance column is what the shop kept. ``amount`` stays the price
the order asked for.

:func:`iter_table` and :func:`table_response` stream any other table (the
settlement view's) with the same CSV dialect, BOM and pinned language.

**Formula injection.** A text cell that starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return gets a leading apostrophe, so a spreadsheet shows it
as text instead of running it (a buyer named ``=HYPERLINK(...)``); so does one
whose first such character comes after spaces or line breaks (some spreadsheets
trim them on import), or is the full-width form (``＝``, ``＋``, ``－``, ``＠``)
that an East Asian input method types and some spreadsheets convert. Cells this
module renders itself from numbers and dates (amounts, times) are left alone:
they hold only digits, ``.``, ``-``, ``:`` and spaces, a spreadsheet reads
``-5`` as the number -5, and an apostrophe would turn amounts into text that
no longer sums. Stored amounts are never negative anyway (a database
constraint), so in practice the exemption covers dates and ``0``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models.constants import LOOKUP_SEP
from django.http import StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from . import conf, labels
from .money import MoneyError, exponent
from .status import PAID_STATUSES, OrderStatus

#: First characters that make a spreadsheet treat a cell as a formula (OWASP), and their
#: full-width forms (U+FF1D, U+FF0B, U+FF0D, U+FF20), which a Korean or Japanese input method types.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")

#: What a spreadsheet may trim before it looks for a formula: spaces (the ideographic one too) and line breaks.
_TRIMMED = " \n\u3000\u00a0"

#: Rows formatted before a chunk of text is handed to the response.
ROWS_PER_CHUNK = 500

#: Rows fetched from the database per round trip.
DEFAULT_CHUNK_SIZE = 2000


def neutralize(value: str) -> str:
    """``value`` with a leading apostrophe when a spreadsheet would run it as a formula.

    The first character that is not a space or a line break decides (``"  =1+1"`` is guarded too).
    """
    first = value.lstrip(_TRIMMED)[:1]
    if first and first in FORMULA_PREFIXES:
        return "'" + value
    return value


@dataclass(frozen=True)
class Column:
    """One CSV column: its header, the order fields it reads and how it renders them.

    ``render`` receives the values of ``fields`` in order (as ``values_list``
    returns them). ``trusted`` marks a column whose cells this module produces
    itself from numbers or dates: it skips the formula guard (see the module
    docstring). Every other cell is text from the database and is guarded.
    ``memo`` caches the cell of each distinct value during one export (for
    columns with few distinct values whose rendering costs, like labels).
    ``instance`` makes ``render`` receive the order instance (``fields`` is
    then ignored): for what only a model method knows, such as line items.
    """

    header: object
    fields: tuple[str, ...]
    render: Callable[..., object] | None = None
    trusted: bool = False
    memo: bool = False
    instance: bool = False

    def cell(self, values: Sequence, zone=None) -> str:
        """The text of one cell; ``zone`` is the time zone of times (default: the current one)."""
        return self.cell_function(zone)(tuple(values))

    def cell_function(self, zone=None) -> Callable[[tuple], str]:
        """A function ``values -> text`` for one export (time zone bound, memo dict fresh)."""
        render = self.render
        if render is not None and getattr(render, "needs_zone", False):
            zone = zone or timezone.get_current_timezone()
            base = render

            def render(*values):
                return base(*values, zone=zone)

        trusted = self.trusted

        def cell(values: tuple) -> str:
            value = render(*values) if render is not None else values[0]
            if value is None:
                return ""
            text = str(value)
            return text if trusted else neutralize(text)

        if not self.memo:
            return cell
        seen: dict[tuple, str] = {}

        def memo_cell(values: tuple) -> str:
            try:
                return seen[values]
            except KeyError:
                text = seen[values] = cell(values)
                if len(seen) > 1000:  # not a low-cardinality column after all
                    seen.clear()
                return text

        return memo_cell


@lru_cache(maxsize=64)
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


def _amount(value, currency) -> str:
    if value is None:
        return ""
    try:
        return str(Decimal(value).quantize(_quantum(currency), rounding=ROUND_HALF_UP))
    except (MoneyError, InvalidOperation):
        return str(value)


def _took_money(status) -> bool:
    """Did the order take money at some point (paid, even if all went back since)?"""
    return status in PAID_STATUSES


def _paid(amount, status, currency) -> str:
    if amount is None:
        return ""
    return _amount(amount if _took_money(status) else Decimal(0), currency)


def _balance(amount, canceled, currency, status) -> str:
    if amount is None:
        return ""
    if not _took_money(status):
        return _amount(Decimal(0), currency)
    return _amount(Decimal(amount) - Decimal(canceled or 0), currency)


def _method(value) -> str:
    return labels.method(value)


def _gateway(value) -> str:
    return labels.gateway(value or "")


def _items(order) -> str:
    """``김치 ×3; 된장 ×1``: the order's line items (:meth:`get_line_items`)."""
    if order is None:  # deleted while the export ran
        return ""
    return "; ".join(f"{item.name} ×{item.quantity}" for item in order.get_line_items())


def _no_items() -> str:
    return ""


def lists_items(model) -> bool:
    """Does ``model`` say what it sold (override ``get_line_items``)? Otherwise its one line is the order name."""
    from .models import AbstractOrder

    return getattr(model, "get_line_items", None) is not AbstractOrder.get_line_items


def _status(value) -> str:
    try:
        return str(OrderStatus(value).label)
    except ValueError:
        return value or ""


def _order_name(name, number) -> str:
    return name or str(_("Order %(number)s") % {"number": number})


def _local_time(value, *, zone=None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in ``zone`` (the current time zone by default)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = value.astimezone(zone or timezone.get_current_timezone())
        return value.replace(tzinfo=None).isoformat(" ", "seconds")
    return str(value)


_local_time.needs_zone = True


#: The built-in columns, by name.
COLUMNS: dict[str, Column] = {
    "order_number": Column(_("order number"), ("order_number",)),
    "order_name": Column(_("order name"), ("order_name", "order_number"), _order_name),
    "status": Column(_("status"), ("status",), _status, memo=True),
    "items": Column(_("items"), (), _items, instance=True),
    "amount": Column(_("amount"), ("amount", "currency"), _amount, trusted=True),
    "paid_amount": Column(_("paid amount"), ("amount", "status", "currency"), _paid, trusted=True),
    "canceled_amount": Column(_("cancelled amount"), ("canceled_amount", "currency"), _amount, trusted=True),
    "balance": Column(pgettext_lazy("money", "balance"), ("amount", "canceled_amount", "currency", "status"), _balance, trusted=True),
    "currency": Column(_("currency"), ("currency",)),
    "gateway": Column(_("gateway"), ("gateway",), _gateway, memo=True),
    "gateway_alias": Column(_("gateway alias"), ("gateway",)),
    "pg_payment_id": Column(_("PG payment id"), ("pg_payment_id",)),
    "method": Column(_("payment method"), ("method",), _method, memo=True),
    "buyer_name": Column(_("buyer name"), ("buyer_name",)),
    "buyer_email": Column(_("buyer email"), ("buyer_email",)),
    "buyer_phone": Column(_("buyer phone"), ("buyer_phone",)),
    "created": Column(_("created"), ("created",), _local_time, trusted=True),
    "paid_at": Column(_("paid at"), ("paid_at",), _local_time, trusted=True),
    "canceled_at": Column(_("cancelled at"), ("canceled_at",), _local_time, trusted=True),
}

#: What an export holds unless the admin class or the command says otherwise.
DEFAULT_COLUMNS: tuple[str, ...] = (
    "order_number",
    "order_name",
    "items",
    "status",
    "amount",
    "paid_amount",
    "canceled_amount",
    "balance",
    "currency",
    "gateway",
    "pg_payment_id",
    "method",
    "buyer_name",
    "buyer_email",
    "created",
    "paid_at",
    "canceled_at",
)


def resolve_columns(model, columns: Iterable[str | Column] | None = None) -> list[Column]:
    """Turn names and :class:`Column` objects into columns for ``model``.

    A name that is not built in must be a field path of ``model``; its header
    is the last field's verbose name. Raises ``ImproperlyConfigured`` naming
    the bad entry. ``"items"`` stays empty (and loads no instance) for a model
    that does not override ``get_line_items``.
    """
    resolved = []
    for entry in DEFAULT_COLUMNS if columns is None else columns:
        if isinstance(entry, Column):
            resolved.append(entry)
        elif entry == "items" and not lists_items(model):
            resolved.append(Column(COLUMNS["items"].header, (), _no_items))
        elif entry in COLUMNS:
            resolved.append(COLUMNS[entry])
        else:
            resolved.append(_field_column(model, entry))
    return resolved


def _field_column(model, path: str) -> Column:
    current, field = model, None
    for part in str(path).split(LOOKUP_SEP):
        if current is None:
            raise ImproperlyConfigured(f"CSV column {path!r}: {part!r} follows a field that is not a relation")
        try:
            field = current._meta.get_field(part)
        except FieldDoesNotExist as exc:
            raise ImproperlyConfigured(
                f"CSV column {path!r} is neither a built-in column ({', '.join(COLUMNS)}) nor a field of {current._meta.label}"
            ) from exc
        current = field.related_model if field.is_relation else None
    header = capfirst(getattr(field, "verbose_name", path))
    return Column(header, (path,), _local_time if field.get_internal_type() == "DateTimeField" else None)


def bom_default() -> bool:
    """``PGPAY["CSV_BOM"]``: start CSV files with a UTF-8 byte order mark (True by default)."""
    return conf.setting("CSV_BOM") is not False  # only False turns it off ("False" as text is django_pgpay.E010)


class _Buffer:
    """A file-like object for :func:`csv.writer` that collects the text it is given."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


def iter_csv(
    queryset,
    columns: Iterable[str | Column] | None = None,
    *,
    bom: bool | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_rows: Callable[[int], None] | None = None,
    prefetch: Sequence[str] = (),
    header: bool = True,
) -> Iterator[str]:
    """Yield the CSV text of ``queryset`` in chunks of :data:`ROWS_PER_CHUNK` rows.

    Reads only the fields the columns need, ``chunk_size`` rows per database
    round trip, never a model instance unless a column asks for one
    (``instance=True``); those are loaded per chunk, with ``prefetch``
    (``prefetch_related`` lookups such as ``("lines",)``). Times are shown in
    the current time zone and labels in the current language *of the moment
    each chunk is made*: :func:`streaming_response` pins both to the
    request's. ``on_rows(n)`` is called after each chunk with the rows it held
    (for a progress bar). ``header=False`` leaves out the BOM and the header
    row (the rest of a file written in parts).
    """
    cols = resolve_columns(queryset.model, columns)
    wants_instances = any(col.instance for col in cols)
    fields: list[str] = ["pk"] if wants_instances else []
    for col in cols:
        for name in () if col.instance else col.fields:
            if name not in fields:
                fields.append(name)
    picks = [None if col.instance else tuple(fields.index(name) for name in col.fields) for col in cols]
    zone = timezone.get_current_timezone()
    cells = list(zip([col.cell_function(zone) for col in cols], picks))
    buffer = _Buffer()
    writer = csv.writer(buffer)
    if header:
        if bom_default() if bom is None else bom:
            buffer.write("\ufeff")
        writer.writerow([str(col.header) for col in cols])

    def write(rows: list[tuple]) -> None:
        instances = {}
        if wants_instances:
            loader = queryset.model._base_manager.filter(pk__in=[row[0] for row in rows])
            if prefetch:
                loader = loader.prefetch_related(*prefetch)
            instances = {order.pk: order for order in loader}
        for row in rows:
            writer.writerow([cell((instances.get(row[0]),) if pick is None else tuple([row[i] for i in pick])) for cell, pick in cells])

    pending: list[tuple] = []
    for row in queryset.values_list(*fields).iterator(chunk_size=chunk_size):
        pending.append(row)
        if len(pending) == ROWS_PER_CHUNK:
            write(pending)
            yield buffer.take()
            if on_rows is not None:
                on_rows(len(pending))
            pending = []
    write(pending)
    yield buffer.take()
    if on_rows is not None and pending:
        on_rows(len(pending))


def iter_table(header: Sequence, rows: Iterable[Sequence], *, bom: bool | None = None) -> Iterator[str]:
    """Yield the CSV text of any table (a header and rows of cells) in chunks, like :func:`iter_csv`.

    Cells are written as ``str()``; text cells that a spreadsheet would run as
    formulas are guarded (see :func:`neutralize`), numbers are left alone.
    """
    buffer = _Buffer()
    writer = csv.writer(buffer)
    if bom_default() if bom is None else bom:
        buffer.write("\ufeff")
    writer.writerow([str(cell) for cell in header])
    pending = 0
    for row in rows:
        writer.writerow([_table_cell(cell) for cell in row])
        pending += 1
        if pending == ROWS_PER_CHUNK:
            yield buffer.take()
            pending = 0
    yield buffer.take()


def _table_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return neutralize(str(value))


def _pinned(chunks: Iterator[str], language: str | None, zone) -> Iterator[str]:
    """Run ``chunks`` with the language and time zone of the request that asked for it.

    A streaming response is consumed after the view has returned, possibly
    after middleware reset them.
    """
    while True:
        with translation.override(language), timezone.override(zone):
            try:
                chunk = next(chunks)
            except StopIteration:
                return
        yield chunk


def table_response(chunks: Iterator[str], *, filename: str) -> StreamingHttpResponse:
    """A ``text/csv`` attachment streamed from ``chunks``, in the language and time zone of now."""
    response = StreamingHttpResponse(
        _pinned(iter(chunks), translation.get_language(), timezone.get_current_timezone()),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def streaming_response(
    queryset,
    columns: Iterable[str | Column] | None = None,
    *,
    filename: str,
    bom: bool | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    prefetch: Sequence[str] = (),
) -> StreamingHttpResponse:
    """A ``text/csv`` attachment streamed from :func:`iter_csv`."""
    # Resolve the columns now: a misconfigured column fails in the view, not mid-stream.
    resolved = resolve_columns(queryset.model, columns)
    return table_response(iter_csv(queryset, resolved, bom=bom, chunk_size=chunk_size, prefetch=prefetch), filename=filename)


def write_csv(
    queryset, stream: io.TextIOBase, columns=None, *, bom=None, chunk_size=DEFAULT_CHUNK_SIZE, on_rows=None, prefetch=(), header=True
) -> None:
    """Write the CSV of ``queryset`` to a text stream (used by ``manage.py pgpay_export``)."""
    for chunk in iter_csv(queryset, columns, bom=bom, chunk_size=chunk_size, on_rows=on_rows, prefetch=prefetch, header=header):
        stream.write(chunk)


__all__ = [
    "COLUMNS",
    "DEFAULT_COLUMNS",
    "Column",
    "iter_csv",
    "iter_table",
    "lists_items",
    "neutralize",
    "resolve_columns",
    "streaming_response",
    "table_response",
    "write_csv",
]
