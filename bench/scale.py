#!/usr/bin/env python
"""When one server is not enough: a webhook burst, a fanned-out reconcile and a flash sale on two app hosts.

Run with ``make bench-scale`` (``ARGS="--deliveries 5000 --orders 100000"`` for
the issue's sizes; the defaults finish in a few minutes on 2 cores). Needs
PostgreSQL at 127.0.0.1:5432; the database is created for the run and dropped
afterwards. Side by side, in one run:

1. **Webhook burst**: ``--deliveries`` Toss ``PAYMENT_STATUS_CHANGED``
   deliveries, ``--in-flight`` at once, for orders whose confirm answer was
   lost (READY here, DONE at the sandbox's Toss); every delivery is sent twice
   (a PG's retry), in shuffled order. Once to a shop that processes them inline
   (no ``TASKS``), once to a shop with ``django-tasks-db``, whose deliveries are
   then drained by 1 and, for a second set of orders, by 2 ``db_worker``
   processes. Printed: acknowledgement p50/p95 inline vs queued, time to drain,
   deliveries applied twice and orders lost (both must be 0).
2. **Reconcile**: ``--orders`` open orders (READY, past their time, unknown to
   the PG) reconciled by ``pgpay_reconcile --enqueue`` and 1, then 2, workers:
   orders per second.
3. **Flash sale on two app hosts**: ``bench/flash_sale.py`` with ``--hosts 1``
   and ``--hosts 2`` (two gunicorn servers on two ports, the buyers' requests
   round-robin, one PostgreSQL): oversold, double charges, throughput of two
   hosts against one.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flash_sale import EXAMPLE, ROOT, Server, admin_sql, free_port  # noqa: E402

AMOUNT = 10000


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000, help="webhook deliveries per burst, each order's sent twice (default 2000)")
    parser.add_argument("--in-flight", type=int, default=200, help="deliveries in flight at once (default 200)")
    parser.add_argument("--orders", type=int, default=2000, help="open orders to reconcile per worker count (default 2000)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers of each shop (default 4)")
    parser.add_argument("--threads", type=int, default=4, help="threads per shop worker (default 4)")
    parser.add_argument("--pg-workers", type=int, default=2, help="gunicorn workers of the sandbox PG (default 2, 8 threads each)")
    parser.add_argument("--flash-buyers", type=int, default=100, help="buyers of the flash sale on one and two hosts (default 100)")
    parser.add_argument("--flash-seats", type=int, default=20, help="places of the flash sale (default 20)")
    parser.add_argument(
        "--reconcile-workers", default="1,2", help="worker counts the reconcile runs with, in turn (default 1,2; each gets --orders orders)"
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: burst, reconcile, flash")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "pgpay_bench_scale"))
    parser.add_argument("--pg-host", default=os.environ.get("PGPAY_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", default=os.environ.get("PGPAY_PG_PORT", "5432"))
    parser.add_argument("--pg-user", default=os.environ.get("PGPAY_PG_USER", "postgres"))
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    return parser.parse_args(argv)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(len(ordered) * q)) - 1)] if ordered else 0.0


# --- orders ------------------------------------------------------------------------------------


def seat():
    import datetime

    from django.utils import timezone
    from restaurants.models import Restaurant, Seat, Table

    restaurant, _ = Restaurant.objects.get_or_create(name="Scale Omakase", defaults={"address": "Seoul"})
    table, _ = Table.objects.get_or_create(restaurant=restaurant, name="Hall", defaults={"price": AMOUNT})
    return Seat.objects.create(table=table, datetime=timezone.now() + datetime.timedelta(days=30), capacity=10_000_000, remain=5_000_000)


def bookings(place, n: int, label: str, *, expired: bool = False) -> list:
    """``n`` READY bookings of ``place`` (a seat, or a list of seats taken in turn), made in bulk as checkouts would have left them."""
    import datetime

    from django.utils import timezone
    from restaurants.models import Booking

    now = timezone.now()
    expires = now - datetime.timedelta(minutes=5) if expired else now + datetime.timedelta(hours=1)
    tag = secrets.token_hex(3)
    places = place if isinstance(place, list) else [place]
    made = [
        Booking(
            seat=places[i % len(places)],
            order_number=f"{label}-{tag}-{i:07d}",
            amount=Decimal(AMOUNT),
            currency="KRW",
            gateway="toss",
            expires_at=expires,
            order_name="Scale Omakase",
        )
        for i in range(n)
    ]
    return Booking.objects.bulk_create(made, batch_size=2000)


def paid_at_the_pg(orders, pg_url: str) -> dict[str, str]:
    """Each order's payment authenticated and confirmed at the sandbox's Toss (the shop never heard the answer)."""
    from django.conf import settings
    from django.test import Client

    from django_pgpay.sandbox import toss as emulated

    secret = settings.PGPAY["GATEWAYS"]["toss"]["OPTIONS"]["SECRET_KEY"]
    auth = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
    client = Client(HTTP_HOST="127.0.0.1")
    keys = {}
    for order in orders:
        params = emulated.authenticate(order.order_number, AMOUNT, origin=pg_url)
        reply = client.post(
            "/sandbox/toss/v1/payments/confirm",
            data=json.dumps({"paymentKey": params["paymentKey"], "orderId": order.order_number, "amount": AMOUNT}),
            content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )
        if reply.status_code != 200:
            raise SystemExit(f"the sandbox did not confirm {order.order_number}: {reply.status_code} {reply.content[:200]!r}")
        keys[order.order_number] = params["paymentKey"]
    return keys


def deliveries(keys: dict[str, str], seed: int) -> list[bytes]:
    """Each payment's PAYMENT_STATUS_CHANGED twice (the PG's retry), shuffled."""
    from django_pgpay.sandbox import toss as emulated

    bodies = []
    for key in keys.values():
        body = {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-12-06T10:00:00.000000", "data": emulated.payment_state(key)}
        bodies.append(json.dumps(body, ensure_ascii=False).encode())
    bodies *= 2
    random.Random(seed).shuffle(bodies)
    return bodies


def fire(url: str, bodies: list[bytes], in_flight: int) -> dict:
    """POST every body to ``url``, ``in_flight`` at once: acknowledgement latencies and statuses."""
    local = threading.local()
    latencies, statuses = [], {}
    lock = threading.Lock()

    def send(body: bytes):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.perf_counter()
        try:
            status = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120).status_code
        except requests.RequestException:
            status = 0
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(send, bodies))
    return {
        "burst seconds": round(time.perf_counter() - started, 1),
        "p50 ms": round(statistics.median(latencies) * 1000, 1),
        "p95 ms": round(percentile(latencies, 0.95) * 1000, 1),
        "statuses": statuses,
    }


def verdict(orders) -> dict:
    """From the shop's tables: orders left unpaid (lost) and anything applied twice."""
    from django.db.models import Count, Q
    from restaurants.models import Booking, BookingTransaction

    from django_pgpay.models import WebhookEvent

    numbers = [o.order_number for o in orders]
    lost = Booking.objects.filter(order_number__in=numbers).exclude(status="PAID").count()
    twice_confirmed = (
        BookingTransaction.objects.filter(order__order_number__in=numbers, kind="confirm", status="succeeded")
        .values("order")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    events = WebhookEvent.objects.filter(order_number__in=numbers)
    twice_applied = events.filter(status="applied", duplicate_of=None).values("event_id").annotate(n=Count("pk")).filter(n__gt=1).count()
    return {
        "orders lost (not PAID)": lost,
        "applied twice (orders confirmed twice + events applied twice)": twice_confirmed + twice_applied,
        "deliveries not settled": events.filter(~Q(status__in=["applied", "duplicate"])).count(),
    }


# --- workers ------------------------------------------------------------------------------------


def drain(workers: int, env: dict) -> float:
    """Start ``workers`` db_worker processes (``--batch``: each exits when nothing is left); seconds until all exited."""
    command = [sys.executable, "-m", "django", "db_worker", "--batch", "--no-startup-delay", "--no-reload", "--interval", "0.05"]
    started = time.perf_counter()
    processes = [
        subprocess.Popen([*command, "--worker-id", f"bench-{i}"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(workers)
    ]
    for process in processes:
        _out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"a worker failed: {err.decode()[-2000:]}")
    return time.perf_counter() - started


def analyze() -> None:
    """Refresh PostgreSQL's statistics of the tables the benchmark has just filled in bulk.

    Autovacuum does this within a minute of such a load; this machine's PostgreSQL runs with
    autovacuum off, and with the statistics of an empty table the task backend's claim query
    sorts every queued task (120 ms a claim with 100,000 queued) instead of reading its index.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def tasks_left() -> int:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.exclude(status__in=["SUCCESSFUL", "FAILED"]).count()


# --- the parts -----------------------------------------------------------------------------------


def burst(args, place, urls: dict, pg_url: str, worker_env: dict) -> dict:
    pairs = max(1, args.deliveries // 2)
    out = {}
    print(f"webhook burst: {2 * pairs} deliveries ({pairs} payments x 2), {args.in_flight} in flight", file=sys.stderr, flush=True)
    sets = {}
    for name in ("inline", "queued-1", "queued-2"):
        orders = bookings(place, pairs, name.replace("-", ""))
        print(f"  paying {pairs} orders at the sandbox for {name} ...", file=sys.stderr, flush=True)
        sets[name] = (orders, deliveries(paid_at_the_pg(orders, pg_url), seed=len(name)))
    analyze()
    from django.db import connections

    connections.close_all()

    print("  inline ...", file=sys.stderr, flush=True)
    orders, bodies = sets["inline"]
    out["inline"] = {**fire(urls["inline"], bodies, args.in_flight), **verdict(orders)}
    for workers in (1, 2):
        name = f"queued-{workers}"
        orders, bodies = sets[name]
        print(f"  queued, then {workers} worker(s) ...", file=sys.stderr, flush=True)
        acked = fire(urls["queued"], bodies, args.in_flight)
        analyze()
        drained = drain(workers, worker_env)
        out[name] = {**acked, "drain seconds": round(drained, 1), "tasks left": tasks_left(), **verdict(orders)}
        connections.close_all()
    return out


def reconcile(args, worker_env: dict) -> dict:
    from django.core.management import call_command
    from django.db import connections
    from restaurants.models import Booking

    out = {}
    # The orders are spread over 100 seats, as a marketplace's are over its products: each
    # expiry gives its place back, and one seat for all would make every worker wait for
    # the same row (a contention of the benchmark, not of reconcile).
    places = [seat() for _ in range(100)]
    for workers in [int(w) for w in args.reconcile_workers.split(",") if w.strip()]:
        orders = bookings(places, args.orders, f"rec{workers}", expired=True)
        print(f"reconcile: {args.orders} open orders, enqueued, {workers} worker(s) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            call_command("pgpay_reconcile", "--enqueue", "--no-webhooks", stdout=quiet)
        enqueued = time.perf_counter() - started
        analyze()
        connections.close_all()
        drained = drain(workers, worker_env)
        numbers = [o.order_number for o in orders]
        left = Booking.objects.filter(order_number__in=numbers).exclude(status="EXPIRED").count()
        out[f"{workers} worker(s)"] = {
            "orders": args.orders,
            "enqueue seconds": round(enqueued, 1),
            "drain seconds": round(drained, 1),
            "orders/s": round(args.orders / drained, 1),
            "not reconciled": left,
        }
    return out


def flash(args) -> dict:
    out = {}
    for hosts in (1, 2):
        print(f"flash sale on {hosts} host(s) ...", file=sys.stderr, flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as result:
            command = [
                sys.executable,
                str(ROOT / "bench" / "flash_sale.py"),
                "--apps=ours",
                "--layouts=one,many",
                "--rounds=1",
                f"--buyers={args.flash_buyers}",
                f"--seats={args.flash_seats}",
                f"--hosts={hosts}",
                f"--workers={args.workers}",
                f"--threads={args.threads}",
                f"--database={args.database}_flash",
                f"--json={result.name}",
            ]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
            if not Path(result.name).read_text():
                raise SystemExit(f"bench/flash_sale.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            data = json.loads(Path(result.name).read_text())
        out[f"{hosts} host(s)"] = {
            "ok": data["ok"],
            **{
                f"{r['layout']}: {key}": r[key]
                for r in data["results"]
                for key in ("places oversold", "duplicate confirms at the PG", "duplicate refunds at the PG", "buyers served/s")
            },
        }
    return out


def show(title: str, table: dict) -> None:
    print()
    print(f"== {title}")
    names = list(table)
    keys = list(dict.fromkeys(k for row in table.values() for k in row))
    width = max(len(k) for k in keys) + 2
    print("".ljust(width) + "".join(n.rjust(16) for n in names))
    for key in keys:
        print(key.ljust(width) + "".join(str(table[n].get(key, "")).rjust(16) for n in names))


def main(argv=None) -> int:
    args = arguments(argv)
    skip = {x for x in args.skip.split(",") if x}
    inline_port, queued_port, pg_port = free_port(), free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="pgpay-bench-scale-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}",
        "DJANGO_DEBUG": "1",  # the example settings need it for the sandbox; bench/settings.py turns DEBUG off
        "EXAMPLE_SANDBOX": "1",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
        "EXAMPLE_SITE_URL": f"http://127.0.0.1:{inline_port}",
        "TOSS_API_BASE": f"http://127.0.0.1:{pg_port}/sandbox/toss",
        "TOSS_JS_SDK_URL": f"http://127.0.0.1:{pg_port}/sandbox/toss/js/v2/standard",
        "SANDBOX_WEBHOOK_DELIVERY": "manual",
        "PGPAY_LOG_LEVEL": "ERROR",
        "BENCH_PG_LOG_DIR": str(logs),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE)]),
    }
    queued_env = {**env, "BENCH_TASKS": "db"}
    os.environ.update(queued_env)  # this process enqueues (pgpay_reconcile --enqueue) like the queued shop
    sys.path[:0] = [str(ROOT), str(EXAMPLE)]
    figures: dict = {"machine": f"{os.cpu_count()} cores", "arguments": vars(args)}

    admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_sql(args, f'CREATE DATABASE "{args.database}"')
    servers = []
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from django_pgpay.sandbox import control

        control.reset()
        place = seat()
        servers = [
            Server("shop-inline", inline_port, args.workers, args.threads, env, logs),
            Server("shop-queued", queued_port, args.workers, args.threads, queued_env, logs),
            Server("pg", pg_port, args.pg_workers, 8, env, logs),
        ]
        for server in servers:
            server.wait()
        urls = {"inline": servers[0].url + "/pay/toss/webhook/", "queued": servers[1].url + "/pay/toss/webhook/"}
        # Warm-up (not counted): every shop worker thread imports, connects and answers a few deliveries.
        for url in urls.values():
            fire(url, [b"{}"] * (4 * args.workers * args.threads), args.workers * args.threads)
        if "burst" not in skip:
            figures["burst"] = burst(args, place, urls, servers[2].url, queued_env)
        if "reconcile" not in skip:
            figures["reconcile"] = reconcile(args, queued_env)
    finally:
        for server in servers:
            server.stop()
        from django.db import connections

        connections.close_all()
        admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    if "flash" not in skip:
        figures["flash"] = flash(args)

    ok = True
    print()
    print(f"bench-scale on {figures['machine']}, PostgreSQL, shops gunicorn {args.workers}x{args.threads} gthread, PG {args.pg_workers}x8")
    if "burst" in figures:
        b = figures["burst"]
        show(f"webhook burst: {args.deliveries} deliveries, {args.in_flight} in flight", b)
        ratio = b["queued-1"]["p95 ms"] / b["inline"]["p95 ms"] if b["inline"]["p95 ms"] else 0
        print(f"queued acknowledgement p95 / inline p95: {ratio:.3f} (must be at most 0.25)")
        bad = sum(
            row["orders lost (not PAID)"] + row["applied twice (orders confirmed twice + events applied twice)"] for row in b.values()
        )
        ok = ok and ratio <= 0.25 and bad == 0
    if "reconcile" in figures:
        show(f"reconcile: {args.orders} open orders per run (over 100 seats), pgpay_reconcile --enqueue", figures["reconcile"])
        ok = ok and all(row["not reconciled"] == 0 for row in figures["reconcile"].values())
    if "flash" in figures:
        show(f"flash sale: {args.flash_buyers} buyers, {args.flash_seats} places, ours, one and two app hosts", figures["flash"])
        one, two = figures["flash"]["1 host(s)"], figures["flash"]["2 host(s)"]
        for layout in ("one", "many"):
            key = f"{layout}: buyers served/s"
            if one.get(key):
                print(f"two hosts / one host, layout {layout}: throughput x{two[key] / one[key]:.2f}")
        ok = ok and one["ok"] and two["ok"]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    print(f"\n{'OK' if ok else 'NOT OK'}; server logs: {logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
