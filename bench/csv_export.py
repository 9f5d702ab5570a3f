#!/usr/bin/env python
"""CSV export of many orders: django-pgpay's streamed export against seed 002's in-memory action.

    python bench/csv_export.py                 # 1,000,000 orders (make bench-csv)
    python bench/csv_export.py --orders 20000  # smaller
    python bench/csv_export.py --db /tmp/orders.sqlite3   # keep and reuse the database

The orders (``tests.testapp.Booking``, Hangul buyer names, mixed statuses) are
bulk-created once in a SQLite file in a temporary folder. Then each way of
exporting runs in a fresh Python process of its own, one after the other, on
the same database and machine, so neither inherits the other's heap:

* **ours**: ``OrderAdmin.export_csv`` (a ``StreamingHttpResponse`` fed by
  ``values_list(...).iterator(chunk_size=2000)``), consumed chunk by chunk as a
  WSGI server does;
* **seed 002**: the "Django by Example" ``export_to_csv`` admin action, as the
  tutorial writes it: an ``HttpResponse`` filled by ``csv.writer`` looping over
  the queryset (every instance cached, every field read with ``getattr``). It
  gets ``Booking.objects.select_related("seat")``, as the admin hands an action
  when ``list_select_related`` is set: without it the tutorial's ``getattr``
  of the seat foreign key costs one query per row and the seed takes far longer.

Each process reports its wall time and its peak memory: the peak resident set
(``VmHWM``, reset just before the export through ``/proc/self/clear_refs``, as
``ru_maxrss`` would still count the parent's memory at fork) minus the
resident set just before the export began, i.e. what the export itself added. The script prints both, their ratios and whether
ours used at most a fifth of the seed's peak memory. It asserts nothing about
time; figures depend on the machine.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUYERS = ["김민수", "이영희", "박지성", "최유리", "정하늘", "강다온", "윤서준", "임채원"]
STATUSES = ["PAID", "PAID", "PARTIAL_CANCELED", "CANCELED", "READY"]


def setup_django(database: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["PGPAY_TEST_DB"] = "sqlite"
    os.environ["PGPAY_SQLITE_PATH"] = str(database)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def populate(database: Path, orders: int) -> None:
    """Migrate the database and bulk-create ``orders`` bookings (kept if already there)."""
    setup_django(database)
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from tests.testapp.models import Booking, Restaurant, Seat

    call_command("migrate", verbosity=0)
    if Booking.objects.count() == orders:
        print(f"Reusing {orders:,} orders in {database}", file=sys.stderr)
        return
    Booking.objects.all().delete()
    restaurant = Restaurant.objects.create(name="한우집", address="서울특별시 강남구")
    table = restaurant.table_set.create(price=Decimal(20000))
    seat = Seat.objects.create(table=table, datetime=timezone.now(), remain=0)
    started = time.perf_counter()
    now = timezone.now()
    batch = 20_000
    for start in range(0, orders, batch):
        rows = []
        for i in range(start, min(start + batch, orders)):
            status = STATUSES[i % len(STATUSES)]
            amount = Decimal(10_000 + (i % 50) * 1_000)
            canceled = {"PARTIAL_CANCELED": Decimal(5_000), "CANCELED": amount}.get(status, Decimal(0))
            paid = status != "READY"
            moment = now - datetime.timedelta(minutes=i)
            rows.append(
                Booking(
                    order_number=f"BENCH{i:012d}",
                    order_name=f"한우집 예약 {i}" if i % 3 else "",
                    amount=amount,
                    currency="KRW",
                    canceled_amount=canceled,
                    status=status,
                    paid_at=moment if paid else None,
                    canceled_at=moment if canceled else None,
                    gateway="toss",
                    pg_payment_id=f"tsbx{i:020d}" if paid else "",
                    method="카드" if paid else "",
                    buyer_name=BUYERS[i % len(BUYERS)],
                    buyer_email=f"buyer{i}@example.com",
                    seat=seat,
                )
            )
        with transaction.atomic():
            Booking.objects.bulk_create(rows)
        print(f"\rCreated {min(start + batch, orders):,} / {orders:,} orders", end="", file=sys.stderr)
    print(f" in {time.perf_counter() - started:.0f} s", file=sys.stderr)


# --- seed 002's way ----------------------------------------------------------------


def export_to_csv(modeladmin, request, queryset):
    """The admin action of seed 002 ("Django by Example", chapter on payments), unchanged."""
    from django.http import HttpResponse

    opts = modeladmin.model._meta
    content_disposition = f"attachment; filename={opts.verbose_name}.csv"
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = content_disposition
    writer = csv.writer(response)
    fields = [field for field in opts.get_fields() if not field.many_to_many and not field.one_to_many]
    # Write a first row with header information
    writer.writerow([field.verbose_name for field in fields])
    # Write data rows
    for obj in queryset:
        data_row = []
        for field in fields:
            value = getattr(obj, field.name)
            if isinstance(value, datetime.datetime):
                value = value.strftime("%d/%m/%Y")
            data_row.append(value)
        writer.writerow(data_row)
    return response


# --- one export in this process ------------------------------------------------------


def status_kb(key: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux 4.0+).

    Without it the peak would still hold what the parent process had when it
    forked this one (``ru_maxrss`` counts it), hiding the export's own peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def peak_kb() -> int:
    try:
        return status_kb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(way: str, database: Path) -> None:
    setup_django(database)
    from django.contrib import admin
    from django.test import RequestFactory

    from django_pgpay.admin import OrderAdmin
    from tests.testapp.models import Booking

    model_admin = OrderAdmin(Booking, admin.site)
    request = RequestFactory().post("/admin/testapp/booking/")
    Booking.objects.first()  # connection open, apps loaded: the baseline
    if not reset_peak():
        print("warning: cannot reset the peak RSS; figures include the parent's", file=sys.stderr)
    base = status_kb("VmRSS")
    written = 0
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        if way == "ours":
            response = model_admin.export_csv(request, Booking.objects.all())
            for chunk in response.streaming_content:
                sink.write(chunk)
                written += len(chunk)
            response.close()
        else:
            # The queryset as the admin hands it with list_select_related = ("seat",);
            # without it the seed's getattr(obj, "seat") costs one query per row.
            response = export_to_csv(model_admin, request, Booking.objects.select_related("seat"))
            sink.write(response.content)
            written = len(response.content)
    seconds = time.perf_counter() - started
    print(json.dumps({"way": way, "seconds": seconds, "base_kb": base, "peak_kb": peak_kb(), "bytes": written}))


def run_worker(way: str, database: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", way, "--db", str(database)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {way} export failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="how many orders (default 1,000,000)")
    parser.add_argument("--db", type=Path, help="SQLite file to create or reuse (default: a temporary one)")
    parser.add_argument("--worker", choices=["ours", "seed"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker(args.worker, args.db)
        return

    with tempfile.TemporaryDirectory(prefix="pgpay-bench-csv-") as folder:
        database = args.db or Path(folder) / "orders.sqlite3"
        populate(database, args.orders)
        results = {}
        for way in ("ours", "seed"):
            print(f"Exporting with {way} ...", file=sys.stderr)
            results[way] = run_worker(way, database)

    print(f"\nCSV export of {args.orders:,} orders (SQLite, Python {sys.version.split()[0]}, one process each)\n")
    print(f"{'':28}{'time':>10}{'peak memory added':>20}{'peak RSS':>12}{'CSV size':>12}")
    labels = {"ours": "django-pgpay (streamed)", "seed": "seed 002 (in memory)"}
    for way, r in results.items():
        added = max(r["peak_kb"] - r["base_kb"], 1)
        r["added_kb"] = added
        print(
            f"{labels[way]:28}{r['seconds']:>9.1f}s{added / 1024:>17.1f} MiB{r['peak_kb'] / 1024:>8.0f} MiB"
            f"{r['bytes'] / 1024 / 1024:>8.0f} MiB"
        )
    ours, seed = results["ours"], results["seed"]
    memory_ratio = seed["added_kb"] / ours["added_kb"]
    print(f"\nPeak memory: ours uses 1/{memory_ratio:.0f} of the seed's ({ours['added_kb'] / seed['added_kb']:.3f}x)")
    print(f"Time: ours takes {ours['seconds'] / seed['seconds']:.2f}x the seed's time ({seed['seconds'] / ours['seconds']:.1f}x faster)")
    verdict = "OK" if ours["added_kb"] * 5 <= seed["added_kb"] else "NOT MET"
    print(f"Goal (peak memory at most 1/5 of the in-memory way): {verdict}")


if __name__ == "__main__":
    main()
