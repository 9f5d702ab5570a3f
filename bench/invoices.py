"""Benchmark: 200 PDF invoices our way vs. seed 002's way, side by side in one process.

Run with ``make bench-invoices`` (or ``.venv/bin/python bench/invoices.py --orders 200``).

Seed 002 (the payment chapter of *Django by Example*) renders an invoice per
order in the admin view::

    html = render_to_string("orders/order/pdf.html", {"order": order})
    weasyprint.HTML(string=html).write_pdf(response,
        stylesheets=[weasyprint.CSS(settings.STATIC_ROOT / "css/pdf.css")])

so N orders cost N WeasyPrint documents, each parsing its CSS again, building
its own font configuration and subsetting and embedding the Korean font again.
The baseline below does exactly that with *our* template and stylesheet (same
HTML, same fonts, same WeasyPrint), so only the way of rendering differs. It is
even favoured: its N PDFs are not merged into one file.

Ours: :func:`django_pgpay.invoices.render_invoices` (one document, the parsed
CSS and the font configuration reused; with a process pool beyond
``PARALLEL_THRESHOLD``), and :func:`render_invoice_files` for one file per order.
``--compare-copy`` adds chunk documents joined with ``Document.copy`` in one
process (the alternative to the pool's pypdf merge).

Then one invoice with and without HarfBuzz's subsetter: WeasyPrint chooses in
``weasyprint/pdf/fonts.py`` (``Font.subset``: ``if harfbuzz_subset and
harfbuzz.hb_version_atleast(4, 1, 0)`` else fontTools), reading the module
global ``harfbuzz_subset`` at call time, so setting
``weasyprint.pdf.fonts.harfbuzz_subset = None`` forces the fontTools path as on
a machine without ``libharfbuzz-subset0``.

Times are wall-clock (``perf_counter``) and, for single-process runs, the CPU
time of this process (``process_time``; less disturbed by other load on a
shared machine). Orders live in an in-memory SQLite database (tests.settings).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def make_orders(count: int):
    import datetime

    from django.utils import timezone

    from tests.testapp.models import Booking, Restaurant, Seat

    restaurant = Restaurant.objects.create(name="한우집", address="서울특별시 강남구 테헤란로 1")
    table = restaurant.table_set.create(price=Decimal(20000))
    seat = Seat.objects.create(table=table, datetime=timezone.now() + datetime.timedelta(days=1), remain=count)
    now = timezone.now()
    Booking.objects.bulk_create(
        Booking(
            seat=seat,
            amount=Decimal(20000 + 1000 * (i % 7)),
            currency="KRW",
            gateway="fake",
            buyer_name="김철수",
            buyer_email="buyer@example.com",
            order_number=f"BENCH{i:010d}",
        )
        for i in range(count)
    )
    Booking.objects.update(status="PAID", paid_at=now, method="카드", pg_payment_id="tgen_20261122000000abcd")
    return list(Booking.objects.select_related("seat__table__restaurant").order_by("pk"))


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def seed_way(orders, config):
    """One WeasyPrint call per order, CSS parsed each time (seed 002)."""
    import weasyprint
    from django.template.loader import render_to_string
    from django.utils import timezone

    from django_pgpay.invoices import DEFAULT_STYLESHEET, SHOP_KEYS, build_invoice

    pdfs = []
    for order in orders:
        html = render_to_string(
            "django_pgpay/invoice.html",
            {
                "invoices": [build_invoice(order, config=config, now=timezone.now())],
                "shop": {k: config.get(k) or "" for k in SHOP_KEYS},
                "language_code": "ko",
            },
        )
        pdfs.append(weasyprint.HTML(string=html).write_pdf(stylesheets=[weasyprint.CSS(str(DEFAULT_STYLESHEET))]))
    return pdfs


def pages(pdf: bytes) -> int:
    import io

    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


BASE: dict[str, float] = {}


def row(label, wall, cpu, count, base=False):
    """One line: wall and CPU time, per page, and the speed-up against the seed's way."""
    if base:
        BASE.update(wall=wall, cpu=cpu)
    wall_ratio = f"{BASE['wall'] / wall:5.2f}x"
    cpu_text = f"{cpu:7.2f} s {cpu / count * 1000:6.1f} ms/page {BASE['cpu'] / cpu:5.2f}x" if cpu is not None else " " * 30
    print(f"  {label:<44} {wall:7.2f} s {wall / count * 1000:6.1f} ms/page {wall_ratio}   {cpu_text}".rstrip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare-copy", action="store_true", help="Also time chunk documents joined with Document.copy in one process.")
    args = parser.parse_args(argv)
    setup_django()
    from django.test import override_settings
    from django.utils import translation

    from django_pgpay import invoices

    shop = {
        "SHOP_NAME": "한우집 본점",
        "BUSINESS_NUMBER": "123-45-67890",
        "CEO": "홍길동",
        "ADDRESS": "서울특별시 강남구 테헤란로 1",
        "TEL": "02-123-4567",
    }
    orders = make_orders(args.orders)
    n = len(orders)
    import weasyprint

    print(
        f"django-pgpay invoice benchmark: {n} orders, WeasyPrint {weasyprint.__version__}, {os.cpu_count()} CPUs, "
        f"HarfBuzz subsetter: {'yes' if invoices._weasyprint().text.ffi.harfbuzz_subset else 'no'}"
    )
    translation.activate("ko")
    settings_serial = {"PGPAY": {"INVOICE": {**shop, "WORKERS": 1}, "GATEWAYS": {}}}
    settings_pool = {"PGPAY": {"INVOICE": {**shop, "WORKERS": args.workers, "PARALLEL_THRESHOLD": 50}, "GATEWAYS": {}}}
    with override_settings(**settings_serial):
        invoices.render_invoices(orders[:2])  # warm up both ways (imports, fontconfig cache)
        seed_way(orders[:2], invoices.invoice_settings())

        print(f"\n{n} invoices")
        seed_pdfs, seed_wall, seed_cpu = timed(lambda: seed_way(orders, invoices.invoice_settings()))
        assert sum(pages(p) for p in seed_pdfs) == n
        print(f"  {'':<44} {'wall clock':^30}   {'CPU of this process':^30}".rstrip())
        row("seed 002: one WeasyPrint call per order", seed_wall, seed_cpu, n, base=True)

        pdf, wall, cpu = timed(lambda: invoices.render_invoices(orders))
        assert pages(pdf) == n
        row("ours: one document, 1 process", wall, cpu, n)
        serial_wall = wall

        def copy_merge():
            docs = [invoices._document(invoices.render_html(chunk), None) for chunk in invoices._chunks(orders, -(-n // args.workers))]
            return docs[0].copy([p for d in docs for p in d.pages]).write_pdf()

        if args.compare_copy:
            pdf, wall, cpu = timed(copy_merge)
            assert pages(pdf) == n
            row(f"(alt.) {args.workers} chunks + Document.copy, 1 process", wall, cpu, n)

        files, wall, cpu = timed(lambda: invoices.render_invoice_files(orders))
        assert len(files) == n
        row("ours: one PDF per order (ZIP), 1 layout", wall, cpu, n)

    with override_settings(**settings_pool):
        pdf, wall, _cpu = timed(lambda: invoices.render_invoices(orders))
        assert pages(pdf) == n
        row(f"ours: {args.workers} processes, pool started (cold)", wall, None, n)
        pdf, wall, _cpu = timed(lambda: invoices.render_invoices(orders))
        row(f"ours: {args.workers} processes, pool running (warm)", wall, None, n)
        print(f"  (parallel vs one process: {serial_wall / wall:.2f}x)")

    # One invoice, HarfBuzz vs fontTools subsetting.
    import weasyprint.pdf.fonts as pdf_fonts

    print("\none invoice (median of 5), font subsetting")
    with override_settings(**settings_serial):

        def one():
            return statistics.median(timed(lambda: invoices.render_invoice(orders[0]))[1] for _ in range(5))

        hb = one() if pdf_fonts.harfbuzz_subset else None
        saved = pdf_fonts.harfbuzz_subset
        pdf_fonts.harfbuzz_subset = None
        import logging

        logging.getLogger("weasyprint").setLevel(logging.ERROR)  # its "using fontTools" warning, once per font
        try:
            ft = one()
        finally:
            pdf_fonts.harfbuzz_subset = saved
        print(f"  fontTools (no libharfbuzz-subset0)   {ft * 1000:7.0f} ms")
        if hb is not None:
            print(f"  HarfBuzz subsetter                   {hb * 1000:7.0f} ms   {ft / hb:.1f}x faster")
    invoices.shutdown_pool()


if __name__ == "__main__":
    main()
