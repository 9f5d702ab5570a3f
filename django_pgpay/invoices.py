"""PDF invoices for orders, rendered by WeasyPrint (``pip install django-pgpay[pdf]``).

* :func:`render_invoice` / :func:`render_invoices`: one PDF (bytes) for one
  order, or for many orders in **one** document (one invoice per page section,
  a page break between them).
* :func:`render_invoice_files`: one PDF per order (for ZIP files and folders),
  laid out in one pass and split by page.
* :func:`invoice_response`, :func:`zip_response`: ready ``HttpResponse``
  attachments; :func:`invoice_pdf_action` and :func:`invoice_zip_action` are
  Django admin actions built on them.

The template ``django_pgpay/invoice.html`` renders a *list* of invoices and can
be overridden in a project's templates. Labels follow the active language
(Korean under ``ko``).

Why this is fast: WeasyPrint pays a large per-document cost (laying out the
user-agent stylesheet, loading fonts, and above all subsetting and embedding a
CJK font of several megabytes). So many orders become one HTML document and
one render, the parsed stylesheet (:class:`weasyprint.CSS`) and the
:class:`~weasyprint.text.fonts.FontConfiguration` are made once per thread and
reused, and large batches are split into chunks that a process pool renders on
every core (see :func:`render_invoices`). ``bench/invoices.py`` measures it.

Settings (read at call time)::

    PGPAY = {
        "INVOICE": {
            "SHOP_NAME": "한우집", "BUSINESS_NUMBER": "123-45-67890", "CEO": "홍길동",
            "ADDRESS": "서울특별시 ...", "TEL": "02-123-4567", "EMAIL": "",
            "VAT_RATE": "0.1",          # VAT included in prices; "0" for no split
            "VAT_CURRENCIES": ["KRW"],  # prices in these currencies include it (invoices and settlement)
            "TEMPLATE": "django_pgpay/invoice.html",
            "STYLESHEET": None,         # a CSS file path replacing the bundled one
            "PARALLEL_THRESHOLD": 50,   # more orders than this: a process pool
            "WORKERS": None,            # processes (default: the CPU count, at most 4)
        }
    }

VAT: Korean consumer prices include VAT (부가세 10%). The supply value
(공급가액) is ``total / (1 + rate)`` rounded half-up to the currency's unit
(whole won for KRW) and the VAT is ``total - supply``, so the two always add up
to the total: 20,000원 → 18,182원 + 1,818원. The split is of the amount the
shop **kept** (the balance after refunds): a 20,000원 order refunded 5,000원
shows 13,636원 + 1,364원, one refunded in full 0원 + 0원. The settlement view
(:mod:`django_pgpay.settlement`) uses the same :func:`vat_split`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import warnings
import zipfile
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from . import labels
from .exceptions import ConfigurationError
from .money import exponent

logger = logging.getLogger("django_pgpay.invoices")

#: The stylesheet bundled with the app.
DEFAULT_STYLESHEET = Path(__file__).resolve().parent / "static" / "django_pgpay" / "invoice.css"

INVOICE_DEFAULTS: dict[str, Any] = {
    "SHOP_NAME": "",
    "BUSINESS_NUMBER": "",
    "CEO": "",
    "ADDRESS": "",
    "TEL": "",
    "EMAIL": "",
    "VAT_RATE": "0.1",
    "VAT_CURRENCIES": ("KRW",),
    "TEMPLATE": "django_pgpay/invoice.html",
    "STYLESHEET": None,
    "PARALLEL_THRESHOLD": 50,
    "WORKERS": None,
}

#: Keys of ``PGPAY["INVOICE"]`` shown on the invoice as the seller's details.
SHOP_KEYS = ("SHOP_NAME", "BUSINESS_NUMBER", "CEO", "ADDRESS", "TEL", "EMAIL")
#: The seller's details a Korean receipt needs (상호, 사업자등록번호, 대표자, 주소):
#: the system check ``django_pgpay.W403`` names those that are missing.
SELLER_KEYS = ("SHOP_NAME", "BUSINESS_NUMBER", "CEO", "ADDRESS")


def invoice_settings() -> dict[str, Any]:
    """``PGPAY["INVOICE"]`` over :data:`INVOICE_DEFAULTS`, read now."""
    from . import conf

    user = conf.setting("INVOICE") or {}
    if not isinstance(user, dict):
        raise ConfigurationError('PGPAY["INVOICE"] must be a dict.')
    return {**INVOICE_DEFAULTS, **user}


def vat_rate(config: dict[str, Any] | None = None) -> Decimal:
    """The VAT rate included in prices (``Decimal("0.1")`` by default)."""
    raw = (config or invoice_settings()).get("VAT_RATE")
    if isinstance(raw, float):
        raise ConfigurationError('PGPAY["INVOICE"]["VAT_RATE"] must be a string or Decimal, not a float.')
    try:
        rate = Decimal(str(raw if raw is not None else 0))
    except InvalidOperation as exc:
        raise ConfigurationError(f'PGPAY["INVOICE"]["VAT_RATE"] = {raw!r} is not a number.') from exc
    if not rate.is_finite() or rate < 0 or rate >= 1:
        raise ConfigurationError(f'PGPAY["INVOICE"]["VAT_RATE"] = {raw!r} must be >= 0 and < 1.')
    return rate


def vat_currencies(config: dict[str, Any] | None = None) -> frozenset[str]:
    """``VAT_CURRENCIES``: the currencies whose prices include VAT at :func:`vat_rate` (``KRW`` by default).

    Korean VAT is on sales in won; a sale in dollars (a buyer abroad through
    Stripe) is often zero-rated. The invoices and the settlement read this one rule.
    """
    raw = (config or invoice_settings()).get("VAT_CURRENCIES", ("KRW",))
    if isinstance(raw, str) or not isinstance(raw, (list, tuple, set, frozenset)):
        raise ConfigurationError(f'PGPAY["INVOICE"]["VAT_CURRENCIES"] = {raw!r} must be a list of currency codes, e.g. ["KRW"].')
    codes = {str(code).strip().upper() for code in raw}
    if not all(len(code) == 3 and code.isascii() and code.isalpha() for code in codes):
        raise ConfigurationError(f'PGPAY["INVOICE"]["VAT_CURRENCIES"] = {raw!r} must hold three-letter currency codes.')
    return frozenset(codes)


def vat_rate_for(currency: str, config: dict[str, Any] | None = None) -> Decimal:
    """The VAT rate included in prices in ``currency``: :func:`vat_rate` for :func:`vat_currencies`, else 0."""
    config = config or invoice_settings()
    return vat_rate(config) if str(currency or "").upper() in vat_currencies(config) else Decimal(0)


def vat_split(total: Decimal, currency: str, rate: Decimal = Decimal("0.1")) -> tuple[Decimal, Decimal]:
    """``(supply value, VAT)`` of a VAT-inclusive ``total``.

    The supply value is ``total / (1 + rate)`` rounded half-up to the currency's
    unit; the VAT is the remainder, so ``supply + vat == total`` always::

        >>> vat_split(Decimal(20000), "KRW")
        (Decimal('18182'), Decimal('1818'))
    """
    total = Decimal(total)
    unit = Decimal(1).scaleb(-exponent(currency))
    supply = (total / (1 + Decimal(rate))).quantize(unit, rounding=ROUND_HALF_UP)
    return supply, (total.quantize(unit, rounding=ROUND_HALF_UP) - supply)


# --- what one invoice shows ---------------------------------------------------------

#: Two Hangul syllables in a row (a word joiner goes between them; see :func:`keep_words`).
_HANGUL_PAIR = re.compile(r"(?<=[\uac00-\ud7a3])(?=[\uac00-\ud7a3])")
WORD_JOINER = "\u2060"


def keep_words(text: str) -> str:
    """``text`` with a word joiner between Hangul syllables, so that a line breaks only between
    words (CSS ``word-break: keep-all``, which WeasyPrint does not support)."""
    return _HANGUL_PAIR.sub(WORD_JOINER, str(text))


_BREAK_AFTER = re.compile(r"([_\-.:/|])")
_LONG_RUN = re.compile(r"[A-Za-z0-9]{17,}")


def breakable(text: str) -> SafeString:
    """``text`` escaped, with line-break chances (``<wbr>``) after ``_ - . : / |`` and every
    12 characters of a long run of letters and digits, so an id wraps at sensible places
    instead of anywhere (``tgen_20240605<wbr>...``)."""

    def cut(match):
        run = match.group(0)
        return "\x00".join(run[i : i + 12] for i in range(0, len(run), 12))

    marked = _LONG_RUN.sub(cut, str(text or ""))
    marked = _BREAK_AFTER.sub(lambda m: m.group(1) + "\x00", marked)
    return mark_safe(escape(marked).replace("\x00", "<wbr>"))


@dataclass(frozen=True)
class InvoiceLine:
    """One line item as printed (amounts formatted for the order's currency)."""

    name: str
    unit_amount: str
    quantity: int
    total: str


@dataclass(frozen=True)
class Invoice:
    """Everything the template prints for one order, computed in Python.

    Amount fields ending in ``_value`` are Decimals; the others are formatted
    text in the active language (``"20,000원"``, ``"₩20,000"``). Supply value
    and VAT are of the balance, the amount kept after refunds. Dates are aware
    datetimes in the current time zone.
    """

    order_number: str
    order_name: str
    status: str
    status_code: str
    method: str
    gateway: str
    pg_payment_id: str
    buyer_name: str
    buyer_email: str
    buyer_phone: str
    issued_at: Any
    paid_at: Any
    canceled_at: Any
    currency: str
    lines: tuple[InvoiceLine, ...]
    amount_value: Decimal
    canceled_value: Decimal
    balance_value: Decimal
    supply_value: Decimal
    vat_value: Decimal
    vat_rate_value: Decimal
    #: ``(time, formatted amount)`` of each cancel that counts towards the cancelled amount, oldest first.
    cancels: tuple[tuple[Any, str], ...] = ()

    def _fmt(self, value: Decimal) -> str:
        return labels.money(value, self.currency)

    @property
    def pg_payment_id_html(self) -> SafeString:
        """The PG payment id with line-break chances at sensible places (see :func:`breakable`)."""
        return breakable(self.pg_payment_id)

    @property
    def order_number_html(self) -> SafeString:
        return breakable(self.order_number)

    @property
    def stamp(self) -> str:
        """The status to stamp on the invoice (cancelled in full or in part), or ``""``."""
        return self.status if self.status_code in ("CANCELED", "PARTIAL_CANCELED") else ""

    @property
    def amount(self) -> str:
        return self._fmt(self.amount_value)

    @property
    def canceled_amount(self) -> str:
        return self._fmt(self.canceled_value)

    @property
    def balance(self) -> str:
        return self._fmt(self.balance_value)

    @property
    def supply_amount(self) -> str:
        return self._fmt(self.supply_value)

    @property
    def vat_amount(self) -> str:
        return self._fmt(self.vat_value)

    @property
    def vat(self) -> bool:
        return self.vat_rate_value > 0

    @property
    def vat_rate_percent(self) -> str:
        return f"{(self.vat_rate_value * 100).normalize():f}"

    @property
    def vat_note(self) -> str:
        """The line under the totals that says what the VAT split is of (Korean kept whole-word).

        "The amount kept after refunds" only when something was refunded.
        """
        if not self.has_canceled:
            return keep_words(
                _(
                    "Prices include %(rate)s%% VAT. Supply value and VAT are of the amount paid (%(paid)s): "
                    "that amount divided by (1 + the VAT rate), rounded to the currency's unit, and the rest."
                )
                % {"rate": self.vat_rate_percent, "paid": self.balance}
            )
        return keep_words(
            _(
                "Prices include %(rate)s%% VAT. Supply value and VAT are of the amount kept after refunds (%(kept)s): "
                "that amount divided by (1 + the VAT rate), rounded to the currency's unit, and the rest."
            )
            % {"rate": self.vat_rate_percent, "kept": self.balance}
        )

    @property
    def has_canceled(self) -> bool:
        return self.canceled_value > 0

    @property
    def anchor(self) -> str:
        return f"invoice-{self.order_number}"


def build_invoice(order, *, config: dict[str, Any] | None = None, now=None) -> Invoice:
    """The :class:`Invoice` of one order (reads its line items, e.g. from the database)."""
    from django.utils import timezone

    config = config or invoice_settings()
    currency = order.currency
    rate = vat_rate_for(currency, config)
    kept = Decimal(order.balance) if order.is_paid else Decimal(0)
    supply, vat = vat_split(kept, currency, rate) if rate else (kept, Decimal(0))
    local = timezone.localtime
    lines = tuple(
        InvoiceLine(
            name=str(item.name),
            unit_amount=labels.money(item.unit_amount, currency),
            quantity=int(item.quantity),
            total=labels.money(item.total, currency),
        )
        for item in order.get_line_items()
    )
    return Invoice(
        order_number=order.order_number,
        order_name=str(order.get_order_name()),
        status=str(order.get_status_display()),
        status_code=str(order.status),
        method=labels.method(order.method),
        gateway=labels.gateway(order.gateway),
        pg_payment_id=str(order.pg_payment_id or ""),
        buyer_name=str(order.buyer_name or _account_name(order)),
        buyer_email=str(order.buyer_email or (getattr(order.user, "email", "") if order.user_id else "")),
        buyer_phone=str(order.buyer_phone or ""),
        issued_at=local(now or timezone.now()),
        paid_at=local(order.paid_at) if order.paid_at else None,
        canceled_at=local(order.canceled_at) if order.canceled_at else None,
        currency=currency,
        lines=lines,
        amount_value=Decimal(order.amount),
        canceled_value=Decimal(order.canceled_amount),
        balance_value=kept,
        supply_value=supply,
        vat_value=vat,
        vat_rate_value=rate,
        cancels=_cancels(order) if order.canceled_amount else (),
    )


def _cancels(order) -> tuple[tuple[Any, str], ...]:
    """``(time, amount)`` of each cancel of ``order`` in its ``canceled_amount`` (one query; none for an order never refunded).

    ``order.canceled_at`` is the first cancel only (it is stamped when the status first changes).
    """
    from django.utils import timezone

    from . import ledger
    from .status import CANCEL_KINDS

    rows = ledger.cancelled_rows(order, *CANCEL_KINDS).order_by("completed_at", "created", "pk")
    return tuple(
        (timezone.localtime(row.completed_at or row.created), labels.money(row.amount, row.currency or order.currency)) for row in rows
    )


def _account_name(order) -> str:
    """The buyer's account name when the order has no ``buyer_name``."""
    if not order.user_id:
        return ""
    user = order.user
    full_name = getattr(user, "get_full_name", None)
    return (full_name() if callable(full_name) else "") or user.get_username()


def render_html(orders, *, config: dict[str, Any] | None = None) -> str:
    """The HTML of one document holding every order's invoice, in the active language."""
    from django.template.loader import render_to_string
    from django.utils import timezone
    from django.utils.translation import get_language

    config = config or invoice_settings()
    now = timezone.now()
    invoices = [build_invoice(order, config=config, now=now) for order in orders]
    shop = {key: config.get(key) or "" for key in SHOP_KEYS}
    context = {
        "invoices": invoices,
        "shop": shop,
        "has_seller": any(shop.values()),
        "language_code": get_language() or "en",
    }
    return render_to_string(config["TEMPLATE"], context)


# --- WeasyPrint, once per thread ---------------------------------------------------------

_lock = threading.Lock()
#: WeasyPrint's font configuration wraps a Pango font map, which is not safe to
#: share between threads: each thread keeps its own, with its parsed stylesheet.
_local = threading.local()


def _weasyprint():
    """The ``weasyprint`` module, or a :class:`ConfigurationError` saying how to get it."""
    try:
        with warnings.catch_warnings():
            # WeasyPrint warns (DeprecationWarning) at import when libharfbuzz-subset is
            # missing; checks.W402 says so in a way a project can act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango missing
        raise ConfigurationError(f"PDF invoices need WeasyPrint and its system libraries: pip install 'django-pgpay[pdf]' ({exc})") from exc
    return weasyprint


def font_config():
    """This thread's :class:`weasyprint.text.fonts.FontConfiguration`, made once and reused."""
    fonts = getattr(_local, "font_config", None)
    if fonts is None:
        _weasyprint()
        from weasyprint.text.fonts import FontConfiguration

        fonts = _local.font_config = FontConfiguration()
    return fonts


def stylesheet(path: str | os.PathLike | None = None):
    """The parsed :class:`weasyprint.CSS` for ``path`` (default: the bundled one), cached.

    Parsed once per thread, again only when the file changes (keyed on its
    modification time).
    """
    weasyprint = _weasyprint()
    path = Path(path or DEFAULT_STYLESHEET)
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError as exc:
        raise ConfigurationError(f'PGPAY["INVOICE"]["STYLESHEET"] = {str(path)!r} cannot be read: {exc}') from exc
    cached = getattr(_local, "stylesheet", None)
    if cached is None or cached[0] != key:
        cached = _local.stylesheet = (key, weasyprint.CSS(filename=str(path), font_config=font_config()))
    return cached[1]


def _document(html: str, stylesheet_path: str | None):
    """Lay out ``html`` with the shared stylesheet and fonts (a WeasyPrint Document)."""
    weasyprint = _weasyprint()
    return weasyprint.HTML(string=html, base_url=str(DEFAULT_STYLESHEET.parent)).render(
        stylesheets=[stylesheet(stylesheet_path)], font_config=font_config()
    )


def write_pdf(html: str, stylesheet_path: str | None = None) -> bytes:
    """``html`` as PDF bytes (the unit of work of a pool process, too)."""
    return _document(html, stylesheet_path).write_pdf()


# --- the public renderers ---------------------------------------------------------------


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _workers(config: dict[str, Any]) -> int:
    workers = config.get("WORKERS")
    if workers is None:
        return max(1, min(4, os.cpu_count() or 1))
    return max(1, int(workers))


_pool = None
_pool_workers = 0


def _get_pool(workers: int):
    """A process pool kept for the life of the process (workers keep WeasyPrint loaded).

    Workers start with ``forkserver`` (``spawn`` where there is none): they fork
    from a small clean server process that preloaded WeasyPrint, never from a
    threaded web server (a fork there may deadlock, and Python warns about it).
    Like any multiprocessing code, the main module must be import-safe
    (``if __name__ == "__main__":``), as ``manage.py`` and WSGI servers are.
    """
    global _pool, _pool_workers
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with _lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            try:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["django_pgpay.invoices", "weasyprint"])
            except ValueError:  # no forkserver (Windows)
                context = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            _pool_workers = workers
        return _pool


def shutdown_pool(wait: bool = True) -> None:
    """Stop the process pool, if one was started (it is stopped at exit anyway)."""
    global _pool, _pool_workers
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=wait)
            _pool = None
            _pool_workers = 0


def _merge(pdfs: list[bytes]) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(io.BytesIO(pdf))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def merge_pdfs(pdfs: list[bytes]) -> bytes:
    """One PDF with the pages of ``pdfs`` in order (the batches of a background invoice job)."""
    return _merge(pdfs)


def render_invoices(orders) -> bytes:
    """One PDF holding the invoices of ``orders`` (an iterable or queryset), in order.

    Up to ``PARALLEL_THRESHOLD`` orders become one HTML document and one
    WeasyPrint render. Beyond that, the HTML is made here (templates and the
    database stay in this process) in one chunk per worker, the chunks are laid
    out and written by a process pool on every core, and the PDFs are joined
    with pypdf (page for page; fonts stay embedded once per chunk).
    """
    config = invoice_settings()
    orders = list(orders)
    style = config.get("STYLESHEET")
    style = str(style) if style else None
    workers = _workers(config)
    threshold = int(config.get("PARALLEL_THRESHOLD") or 0)
    if workers < 2 or not threshold or len(orders) <= threshold:
        return write_pdf(render_html(orders, config=config), style)
    size = -(-len(orders) // workers)
    htmls = [render_html(chunk, config=config) for chunk in _chunks(orders, size)]
    from concurrent.futures.process import BrokenProcessPool

    try:
        pool = _get_pool(workers)
        return _merge(list(pool.map(write_pdf, htmls, [style] * len(htmls))))
    except (BrokenProcessPool, OSError) as exc:
        # A worker died (out of memory, killed) or none could start: render here instead.
        logger.warning("invoice process pool failed (%s); rendering %d orders in this process", exc, len(orders))
        shutdown_pool(wait=False)
        return write_pdf(render_html(orders, config=config), style)


def render_invoice(order) -> bytes:
    """The PDF of one order's invoice."""
    return render_invoices([order])


def render_invoice_files(orders) -> list[tuple[str, bytes]]:
    """``[(filename, pdf), ...]``: one PDF per order, from one layout pass.

    The orders are laid out as one document; its pages are then split at each
    invoice's first page (found by the invoice's anchor) and each part written
    as its own PDF.
    """
    config = invoice_settings()
    orders = list(orders)
    if not orders:
        return []
    style = config.get("STYLESHEET")
    document = _document(render_html(orders, config=config), str(style) if style else None)
    starts = {}
    for index, page in enumerate(document.pages):
        for anchor in page.anchors:
            if anchor.startswith("invoice-"):
                starts.setdefault(anchor[len("invoice-") :], index)
    files = []
    numbers = [order.order_number for order in orders]
    bounds = [starts.get(number) for number in numbers]
    if None in bounds:  # a template without the anchors: render each order on its own
        return [(invoice_filename(order), render_invoice(order)) for order in orders]
    for i, number in enumerate(numbers):
        end = bounds[i + 1] if i + 1 < len(bounds) else len(document.pages)
        files.append((f"invoice-{number}.pdf", document.copy(document.pages[bounds[i] : end]).write_pdf()))
    return files


def invoice_filename(order) -> str:
    return f"invoice-{order.order_number}.pdf"


# --- responses and admin actions ----------------------------------------------------------


def _attachment(content: bytes, content_type: str, filename: str):
    from django.http import HttpResponse

    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Content-Length"] = str(len(content))
    return response


def invoice_response(orders, *, filename: str):
    """An ``application/pdf`` attachment with the invoices of ``orders`` in one document."""
    return _attachment(render_invoices(orders), "application/pdf", filename)


def zip_bytes(orders) -> bytes:
    """A ZIP archive with one PDF per order."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, pdf in render_invoice_files(orders):
            archive.writestr(name, pdf)
    return out.getvalue()


def zip_response(orders, *, filename: str):
    """An ``application/zip`` attachment with one PDF per order."""
    return _attachment(zip_bytes(orders), "application/zip", filename)


def _admin_filename(queryset, ext: str) -> str:
    from django.utils import timezone

    label = queryset.model._meta.model_name
    return f"invoices-{label}-{timezone.localtime().strftime('%Y%m%d-%H%M%S')}.{ext}"


def invoice_pdf_action(modeladmin, request, queryset):
    """Admin action: the selected orders' invoices as one PDF, one invoice per page section."""
    return invoice_response(queryset.order_by("pk"), filename=_admin_filename(queryset, "pdf"))


invoice_pdf_action.short_description = _("Download invoices (one PDF)")
invoice_pdf_action.allowed_permissions = ("view",)


def invoice_zip_action(modeladmin, request, queryset):
    """Admin action: a ZIP with one invoice PDF per selected order."""
    return zip_response(queryset.order_by("pk"), filename=_admin_filename(queryset, "zip"))


invoice_zip_action.short_description = _("Download invoices (ZIP of PDFs)")
invoice_zip_action.allowed_permissions = ("view",)


__all__ = [
    "Invoice",
    "breakable",
    "InvoiceLine",
    "build_invoice",
    "invoice_pdf_action",
    "invoice_response",
    "invoice_zip_action",
    "merge_pdfs",
    "render_html",
    "render_invoice",
    "render_invoice_files",
    "render_invoices",
    "vat_split",
    "zip_response",
]
