#!/usr/bin/env python
"""Flash sale: 200 logged-in buyers, 50 in flight, for 20 places, on PostgreSQL under gunicorn.

Run with ``make bench-flash`` (``ARGS="--buyers 40 --seats 5"`` for a quick run).

The example project (django-pgpay's views, ``restaurants``) and a faithful
copy of the seed tutorial's views (``bench/tutorial``, races kept) are served
side by side by the same gunicorn server (``bench.settings``), against the
sandbox's Toss, which a second gunicorn server of the same project serves
(its state is in the database, so every worker shares it; a separate server
means a shop worker waiting on the PG never waits behind itself). The
database is created for the run and dropped afterwards.

For each layout (one seat row with ``remain=20``; 20 rows with ``remain=1``)
and each app, in the same run:

1. every buyer opens the page with the button (ours: the booking summary; the
   tutorial's: the restaurant page) and stops there when it already shows the
   seat sold out, as a person would; otherwise books (ours: POST the summary;
   the tutorial's: GET its booking page), pays in the sandbox's payment window
   (what its SDK and Pay button post) and follows the redirect to the shop's
   return URL; a quarter of the buyers load that return page twice at once;
2. every buyer who paid at the PG cancels twice at the same instant (ours: the
   history page's cancel button, its confirmation page, and its "Refund now"
   sent twice, a double click; the tutorial's: its cancel link, twice).

It then prints, from the shop's tables, the sandbox's own records and a log
of every call that reached the sandbox's API (``bench/pg_log.py``): places
oversold, PAID orders beyond capacity, the final ``remain`` against what it
should be, PG approvals and refunds against PAID and CANCELED orders,
duplicate calls and duplicate refunds at the PG, HTTP 5xx, requests per
second and latency, and the tutorial's figures against ours.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
TIMEOUT = 60


# --- command line and environment -------------------------------------------------------


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=200, help="distinct logged-in buyers (default 200)")
    parser.add_argument("--seats", type=int, default=20, help="places on sale (default 20)")
    parser.add_argument("--in-flight", type=int, default=50, help="buyers in flight at once (default 50)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers of the shop (default 4)")
    parser.add_argument("--threads", type=int, default=4, help="threads per shop worker (default 4)")
    parser.add_argument("--pg-workers", type=int, default=2, help="gunicorn workers of the sandbox PG (default 2, 8 threads each)")
    parser.add_argument("--layouts", default="one,many", help="one (one row, remain=seats), many (seats rows, remain=1)")
    parser.add_argument("--apps", default="ours,tutorial", help="ours, tutorial")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "pgpay_bench_flash"))
    parser.add_argument("--pg-host", default=os.environ.get("PGPAY_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", default=os.environ.get("PGPAY_PG_PORT", "5432"))
    parser.add_argument("--pg-user", default=os.environ.get("PGPAY_PG_USER", "postgres"))
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each app and layout, alternating (default 3; the median round is shown)"
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=1,
        help="shop servers (app 'hosts'), each gunicorn --workers x --threads on its own port, one database; "
        "the buyers' requests go round-robin (default 1)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the median round of each app and layout to FILE (bench/scale.py reads it)"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also print the requests and mean latency of each step, and the shop's SQL statements per request by path",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind (to look at it)")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_sql(args, statement: str) -> None:
    import psycopg

    with psycopg.connect(host=args.pg_host, port=args.pg_port, user=args.pg_user, dbname="postgres", autocommit=True) as conn:
        conn.execute(statement)


# --- the servers ---------------------------------------------------------------------------


class Server:
    """One gunicorn serving the benchmark's settings; stopped by its own process id."""

    def __init__(self, name: str, port: int, workers: int, threads: int, env: dict, logs: Path):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "example_project.wsgi:application",
            f"--chdir={EXAMPLE}",
            f"--pythonpath={ROOT},{EXAMPLE}",
            f"--bind=127.0.0.1:{port}",
            "--worker-class=gthread",
            f"--workers={workers}",
            f"--threads={threads}",
            "--timeout=120",
            # Longer than any pause of a run: a buyer's kept-alive connection is never closed under it.
            "--keep-alive=120",
            "--log-level=warning",
        ]
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} server exited; see {self.log.name}")
            try:
                if requests.get(self.url + "/restaurants/", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} server did not answer in 60 s; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


# --- the round-robin in front of several shop hosts ------------------------------------------


class RoundRobin:
    """Sends each shop request to the next host in turn (a load balancer's simplest policy).

    URLs are built against :attr:`base`; an absolute URL of any host (the PG's
    redirect to the return URL names the first one) is rerouted too.
    """

    def __init__(self, hosts: list[str]):
        self.hosts = hosts
        self.base = hosts[0]
        self._next = 0
        self._lock = threading.Lock()

    def route(self, url: str) -> str:
        if len(self.hosts) == 1:
            return url
        for host in self.hosts:
            if url.startswith(host + "/"):
                with self._lock:
                    target = self.hosts[self._next]
                    self._next = (self._next + 1) % len(self.hosts)
                return target + url[len(host) :]
        return url


ROUTER = RoundRobin(["http://127.0.0.1"])


# --- where the machine's CPU goes during a sale ------------------------------------------------

#: Process group of each server (each gunicorn is started in a session of its own) -> its part.
CPU_PARTS: dict[int, str] = {}
CPU_PART_NAMES = ("shop", "PG (sandbox)", "PostgreSQL", "buyers (this script)")


def cpu_seconds() -> Counter:
    """CPU seconds (user + system) used so far by the shop's servers, the PG's, PostgreSQL and this script.

    Read from ``/proc`` (Linux; elsewhere nothing is counted). The difference over a sale says
    where the machine's cores went: the servers run on the same cores as the buyers. Each
    process counts its own time and its reaped children's (``cutime``, ``cstime``): a PostgreSQL
    backend or a gunicorn worker that ends during the sale (a connection closed after a server
    error, a worker replaced) would otherwise take its seconds with it, and the part's CPU could
    come out below zero (it did, for the tutorial's one-row sale); its parent, the postmaster or
    the gunicorn arbiter in the same part, holds them once it has reaped it.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out = Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name, fields = text[text.find("(") + 1 : text.rfind(")")], text[text.rfind(")") + 2 :].split()
        # Fields 14-17 of proc(5): utime, stime, cutime, cstime (``fields`` starts at field 3).
        group, used = int(fields[2]), sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
        if group in CPU_PARTS:
            out[CPU_PARTS[group]] += used
        elif name.startswith("postgres"):
            out["PostgreSQL"] += used
        elif stat.parent.name == str(os.getpid()):
            out["buyers (this script)"] += used
    return out


# --- the buyers ----------------------------------------------------------------------------


@dataclass
class Call:
    where: str  # "shop" or "pg"
    phase: str  # "buy" or "cancel"
    status: int  # 0: no answer
    seconds: float
    label: str = ""


@dataclass
class Buyer:
    index: int
    session: requests.Session
    seat: int
    restaurant: int
    double_return: bool
    outcome: str = ""  # sold-out, paid, error ...
    order_number: str = ""
    booking_id: str = ""
    return_url: str = ""


@dataclass
class Run:
    app: str
    layout: str
    calls: list = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seconds: float = 0.0

    def call(self, session, method, url, *, where, phase, label="", **kwargs) -> requests.Response | None:
        started = time.perf_counter()
        if where == "shop":
            url = ROUTER.route(url)
        try:
            response = session.request(method, url, allow_redirects=False, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            response = None
            with self.lock:
                self.errors[type(exc).__name__] += 1
        elapsed = time.perf_counter() - started
        with self.lock:
            self.calls.append(
                Call(where, phase, response.status_code if response is not None else 0, elapsed, label or f"{where} {method}")
            )
        return response


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    return found.group(1) if found else ""


def hidden_fields(html: str, marker: str) -> dict:
    """The hidden inputs of the page's form whose tag contains ``marker``."""
    form = next((f for f in re.findall(r"<form\b[^>]*>.*?</form>", html, re.S) if marker in f.split(">", 1)[0]), "")
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def window_params(html: str) -> dict | None:
    found = re.search(r'<script id="pgpay-toss-params" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1)) if found else None


def together(n: int, action) -> list:
    """``action(i)`` for i < n in n threads released at the same instant (a double click)."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def body(i):
        barrier.wait()
        results[i] = action(i)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(1, n)]
    for t in threads:
        t.start()
    body(0)
    for t in threads:
        t.join()
    return results


def pay_at_pg(run: Run, buyer: Buyer, pg: str, params: dict) -> str:
    """The sandbox's SDK and Pay button: open the window, pay; the redirect to the shop's return URL."""
    from django_pgpay.sandbox.toss import sdk_payload  # Django is set up by then (main)

    payload = sdk_payload(params)
    s = buyer.session
    opened = run.call(
        s, "POST", pg + "/sandbox/toss/checkout", data={"payload": json.dumps(payload)}, where="pg", phase="buy", label="pg: open window"
    )
    if opened is None or opened.status_code != 303:
        return ""
    window = pg + opened.headers["Location"]
    page = run.call(s, "GET", window, where="pg", phase="buy", label="pg: window")
    if page is None or page.status_code != 200:
        return ""
    paid = run.call(
        s, "POST", window, data={"csrfmiddlewaretoken": csrf_token(page.text), "action": "pay"}, where="pg", phase="buy", label="pg: pay"
    )
    if paid is None or paid.status_code != 302 or "paymentKey=" not in paid.headers.get("Location", ""):
        return ""
    return paid.headers["Location"]


def come_back(run: Run, buyer: Buyer) -> None:
    if buyer.double_return:
        together(2, lambda i: run.call(buyer.session, "GET", buyer.return_url, where="shop", phase="buy", label="return (confirm)"))
    else:
        run.call(buyer.session, "GET", buyer.return_url, where="shop", phase="buy", label="return (confirm)")


def buy_ours(run: Run, buyer: Buyer, shop: str, pg: str) -> None:
    url = f"{shop}/restaurants/seats/{buyer.seat}/book/"
    start = run.call(buyer.session, "GET", url, where="shop", phase="buy", label="page before booking")
    if start is None or start.status_code != 200:
        buyer.outcome = "error"
        return
    if 'id="proceed" disabled' in start.text:  # the page already says "Sold out": a buyer stops here
        buyer.outcome = "sold-out"
        return
    # As a browser posts the form: to its action, with its hidden fields (the CSRF token, the page load's checkout token).
    action = re.search(r'<form method="post" action="([^"]*)"[^>]*id="book-form"', start.text)
    window = run.call(
        buyer.session,
        "POST",
        shop + html.unescape(action.group(1)) if action else url,
        data={**hidden_fields(start.text, 'id="book-form"'), "gateway": "toss"},
        where="shop",
        phase="buy",
        label="book",
    )
    if window is None or window.status_code >= 500 or window.status_code == 0:
        buyer.outcome = "error"
        return
    if window.status_code == 409:
        buyer.outcome = "sold-out"
        return
    params = window_params(window.text)
    if window.status_code != 200 or params is None:
        buyer.outcome = "error"
        return
    buyer.order_number = params["orderId"]
    buyer.return_url = pay_at_pg(run, buyer, pg, params)
    if not buyer.return_url:
        buyer.outcome = "pay-failed"
        return
    buyer.outcome = "paid"
    come_back(run, buyer)


def buy_tutorial(run: Run, buyer: Buyer, shop: str, pg: str) -> None:
    # The restaurant's page with the "book" links (ours: the summary page with the button).
    listing = run.call(
        buyer.session, "GET", f"{shop}/tutorial/restaurant/{buyer.restaurant}/", where="shop", phase="buy", label="page before booking"
    )
    if listing is None or listing.status_code != 200:
        buyer.outcome = "error"
        return
    if f"/tutorial/booking/{buyer.restaurant}/{buyer.seat}/" not in listing.text:  # no "book" link left: a buyer stops here
        buyer.outcome = "sold-out"
        return
    page = run.call(
        buyer.session, "GET", f"{shop}/tutorial/booking/{buyer.restaurant}/{buyer.seat}/", where="shop", phase="buy", label="book"
    )
    if page is None or page.status_code != 200:
        # The tutorial's sold-out branch returns a redirect as the context: a server error.
        buyer.outcome = "sold-out" if page is not None and page.status_code == 500 else "error"
        return
    params = window_params(page.text)
    buyer.order_number = params["orderId"]
    buyer.booking_id = re.search(r'data-booking-id="(\d+)"', page.text).group(1)
    buyer.return_url = pay_at_pg(run, buyer, pg, params)
    if not buyer.return_url:
        buyer.outcome = "pay-failed"
        return
    buyer.outcome = "paid"
    come_back(run, buyer)


def cancel_ours(run: Run, buyer: Buyer, shop: str) -> None:
    """The history page's "Cancel" (a full cancel), then "Refund now" sent twice at once (a double click).

    The full cancel's confirmation step opens in the page (the amount, nothing
    left after it); a form without ``confirm`` (an older page) gets the
    confirmation page from the server first, as a typed partial amount does.
    """
    history = run.call(buyer.session, "GET", f"{shop}/restaurants/bookings/", where="shop", phase="cancel", label="history")
    if history is None or history.status_code != 200 or f"{buyer.order_number}" not in history.text:
        return
    # The form's action, as a browser posts it (``/pay/cancel/<model>/<order number>/``).
    forms = [
        f
        for f in re.findall(r"<form\b[^>]*>.*?</form>", history.text, re.S)
        if re.search(rf'action="[^"]*/pay/cancel/[^"]*{buyer.order_number}/"', f) and 'name="full"' in f
    ]
    if not forms:  # not cancellable (not PAID)
        return
    action = re.search(r'action="([^"]+)"', forms[0]).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', forms[0]))
    if fields.get("confirm") != "1":
        page = run.call(buyer.session, "POST", shop + action, data=fields, where="shop", phase="cancel", label="cancel: confirmation page")
        if page is None or page.status_code != 200:
            return
        confirm = next((f for f in re.findall(r"<form\b[^>]*>.*?</form>", page.text, re.S) if 'name="confirm"' in f), None)
        if confirm is None:
            return
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', confirm))
    together(2, lambda i: run.call(buyer.session, "POST", shop + action, data=fields, where="shop", phase="cancel", label="cancel"))


def cancel_tutorial(run: Run, buyer: Buyer, shop: str) -> None:
    # The buyer opens the history page and clicks the cancel link (twice).
    history = run.call(buyer.session, "GET", f"{shop}/tutorial/history/", where="shop", phase="cancel", label="history")
    if history is None or f"/tutorial/cancel/{buyer.booking_id}/" not in history.text:
        return
    url = f"{shop}/tutorial/cancel/{buyer.booking_id}/"
    together(2, lambda i: run.call(buyer.session, "GET", url, where="shop", phase="cancel", label="cancel"))


# --- one run ----------------------------------------------------------------------------------


def prepare(app: str, layout: str, seats: int):
    """Empty the shop's and the sandbox's tables; put the places on sale; the seat (and restaurant) ids."""
    import datetime

    from django.db import connection
    from django.utils import timezone
    from restaurants.models import Booking, BookingTransaction, Restaurant, Seat, Table

    from bench.tutorial.models import AvailableSeat
    from bench.tutorial.models import Booking as TutorialBooking
    from django_pgpay.models import WebhookEvent
    from django_pgpay.sandbox import control

    BookingTransaction.objects.all().delete()
    WebhookEvent.objects.all().delete()
    Booking.objects.all().delete()
    TutorialBooking.objects.all().delete()
    AvailableSeat.objects.all().delete()
    Seat.objects.all().delete()
    control.reset()
    restaurant, _ = Restaurant.objects.get_or_create(name="Flash Omakase", defaults={"address": "Seoul"})
    table, _ = Table.objects.get_or_create(restaurant=restaurant, name="Counter", defaults={"price": 50000})
    start = timezone.now() + datetime.timedelta(days=7)
    rows = [(seats, 1)] if layout == "one" else [(1, seats)]
    places, count = rows[0]
    ids = []
    for i in range(count):
        when = start + datetime.timedelta(minutes=30 * i)
        if app == "ours":
            ids.append(Seat.objects.create(table=table, datetime=when, capacity=places, remain=places).pk)
        else:
            ids.append(AvailableSeat.objects.create(restaurant=restaurant, table=table, datetime=when, remain=places).pk)
    # Every run starts from the same database state, as pgbench starts its runs (it vacuums first):
    # the rows the last run deleted are vacuumed away and its writes flushed now, not by autovacuum
    # or a checkpoint in the middle of the next app's sale.
    from django.db import DatabaseError

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        try:
            cursor.execute("CHECKPOINT")
        except DatabaseError:  # a --pg-user without the right (superuser or pg_checkpoint): skipped
            pass
    connection.close()
    return restaurant.pk, ids, places


def pg_log_offsets(folder: Path) -> dict:
    return {p: p.stat().st_size for p in folder.glob("pg-*.log")}


def pg_calls_since(folder: Path, offsets: dict) -> list[dict]:
    calls = []
    for path in folder.glob("pg-*.log"):
        with open(path, encoding="utf-8") as f:
            f.seek(offsets.get(path, 0))
            calls += [json.loads(line) for line in f if line.strip()]
    return calls


def holding(app: str) -> dict:
    """Per seat id: (orders holding a place, PAID orders, CANCELED orders, remain, capacity)."""
    from restaurants.models import Booking, Seat

    from bench.tutorial.models import AvailableSeat
    from bench.tutorial.models import Booking as TutorialBooking

    out = {}
    if app == "ours":
        for seat in Seat.objects.all():
            rows = Counter(Booking.objects.filter(seat=seat).values_list("status", flat=True))
            held = rows["READY"] + rows["PAID"] + rows["PARTIAL_CANCELED"] + rows["WAITING_FOR_DEPOSIT"]
            out[seat.pk] = (held, rows["PAID"], rows["CANCELED"], seat.remain, seat.capacity)
    else:
        for seat in AvailableSeat.objects.all():
            rows = Counter(TutorialBooking.objects.filter(seat=seat).values_list("status", flat=True))
            # The tutorial's seat keeps no capacity: run_one() knows what was put on sale.
            out[seat.pk] = (rows["READY"] + rows["PAID"], rows["PAID"], rows["CANCELED"], seat.remain, None)
    return out


def run_one(app: str, layout: str, args, sessions, shop: str, pg: str, logs: Path) -> dict:
    from django.db import connection

    from django_pgpay.sandbox.models import SandboxPayment

    restaurant, seat_ids, places = prepare(app, layout, args.seats)
    capacity = {pk: places for pk in seat_ids}
    buyers = [Buyer(i, sessions[i], seat_ids[i % len(seat_ids)], restaurant, double_return=(i % 4 == 0)) for i in range(args.buyers)]
    run = Run(app, layout)
    offsets = pg_log_offsets(logs)
    buy = buy_ours if app == "ours" else buy_tutorial
    cancel = cancel_ours if app == "ours" else cancel_tutorial

    cpu = Counter()  # CPU seconds of each part during the sale's two phases
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.in_flight) as pool:
        list(pool.map(lambda b: buy(run, b, shop, pg), buyers))
    bought = time.perf_counter()
    cpu.update(cpu_seconds())
    cpu.subtract(cpu_before)
    cpu_buy = Counter(cpu)
    # The benchmark's own reads between the phases are not part of the sale (time or CPU).
    after_buy = holding(app)
    cpu_before = cpu_seconds()
    cancel_started = time.perf_counter()
    with ThreadPoolExecutor(args.in_flight) as pool:
        list(pool.map(lambda b: cancel(run, b, shop), [b for b in buyers if b.outcome == "paid"]))
    cancelled = time.perf_counter()
    cpu.update(cpu_seconds())
    cpu.subtract(cpu_before)
    run.seconds = (bought - started) + (cancelled - cancel_started)
    after_cancel = holding(app)

    # From the shop's tables.
    total_capacity = sum(capacity.values())
    oversold = sum(max(0, held - capacity[pk]) for pk, (held, *_rest) in after_buy.items())
    paid_after_buy = sum(v[1] for v in after_buy.values())
    still_held = {pk: v[0] for pk, v in after_cancel.items()}
    expected_remain = sum(capacity[pk] - still_held[pk] for pk in capacity)
    final_remain = sum(v[3] for v in after_cancel.values())
    canceled = sum(v[2] for v in after_cancel.values())
    # Each cancel must give its place back once: count the ones whose "+1" never landed.
    returns_applied = final_remain - sum(v[3] for v in after_buy.values())
    cancels_done = canceled - sum(v[2] for v in after_buy.values())
    beyond = sum(max(0, v[3] - capacity[pk]) for pk, v in after_cancel.items())
    paid_left = sum(v[1] for v in after_cancel.values())

    # The PG's own records (the sandbox's payments) and the calls that reached its API.
    approvals = refunds = double_refunds = 0
    for payment in SandboxPayment.objects.filter(pg="toss"):
        state = payment.state or {}
        approvals += 1 if state.get("approvedAt") else 0
        n = len(state.get("cancels") or [])
        refunds += n
        double_refunds += 1 if n > 1 else 0
    connection.close()
    pg_calls = pg_calls_since(logs, offsets)
    per_key = defaultdict(Counter)
    for c in pg_calls:
        per_key[c["op"]][c["key"]] += 1
    duplicates = {op: sum(n - 1 for n in per_key[op].values()) for op in ("confirm", "cancel")}
    refused = Counter(c["op"] for c in pg_calls if c["status"] >= 400)

    shop_calls = [c for c in run.calls if c.where == "shop"]
    latencies = sorted(c.seconds for c in shop_calls)
    return {
        "app": app,
        "layout": layout,
        "buyers": args.buyers,
        "capacity": total_capacity,
        "sold-out answers (page or 409; tutorial: or 500)": Counter(b.outcome for b in buyers)["sold-out"],
        "paid at the PG (buyers)": Counter(b.outcome for b in buyers)["paid"],
        "PAID orders after the sale": paid_after_buy,
        "PAID beyond capacity": max(0, paid_after_buy - total_capacity),
        "places oversold": oversold,
        "final remain": final_remain,
        "expected remain": expected_remain,
        "seat returns lost (cancels - places given back)": cancels_done - returns_applied,
        "remain above capacity after the sale": beyond,
        "PG approvals (sandbox)": approvals,
        "PG refunds (sandbox)": refunds,
        "CANCELED orders": canceled,
        "PAID orders left": paid_left,
        "paid, not booked (approvals - PAID - CANCELED)": approvals - paid_left - canceled,
        "refunded, not cancelled (refunds - CANCELED)": refunds - canceled,
        "confirm calls at the PG": sum(per_key["confirm"].values()),
        "cancel calls at the PG": sum(per_key["cancel"].values()),
        "duplicate confirms at the PG": duplicates["confirm"],
        "duplicate cancels at the PG": duplicates["cancel"],
        "PG calls refused (4xx)": sum(refused.values()),
        "duplicate refunds at the PG": double_refunds,
        "HTTP 5xx (shop)": sum(1 for c in shop_calls if c.status >= 500),
        "no answer (shop)": sum(1 for c in shop_calls if c.status == 0),
        "HTTP 5xx (PG)": sum(1 for c in run.calls if c.where == "pg" and c.status >= 500),
        "no answer (PG)": sum(1 for c in run.calls if c.where == "pg" and c.status == 0),
        "requests (shop)": len(shop_calls),
        "requests (PG)": len(run.calls) - len(shop_calls),
        "seconds (sale: buy + cancel)": round(run.seconds, 2),
        "buy phase seconds": round(bought - started, 2),
        "cancel phase seconds": round(cancelled - cancel_started, 2),
        "buyers served/s": round(args.buyers / run.seconds, 2),
        "requests/s (shop)": round(len(shop_calls) / run.seconds, 1),
        "requests/s (shop + PG)": round(len(run.calls) / run.seconds, 1),
        "shop p50 ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0,
        "shop p95 ms": round(latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000, 1) if latencies else 0,
        **{f"CPU s: {part}": round(cpu[part], 2) for part in CPU_PART_NAMES},
        "CPU s: all of these": round(sum(cpu[part] for part in CPU_PART_NAMES), 2),
        "_errors": dict(run.errors),
        "_cpu_by_phase": {part: (round(cpu_buy[part], 2), round(cpu[part] - cpu_buy[part], 2)) for part in CPU_PART_NAMES},
        "_by_label": {label: (len(xs), round(statistics.mean(xs) * 1000, 1)) for label, xs in sorted(_group(run.calls).items())},
    }


def _group(calls) -> dict:
    out = defaultdict(list)
    for c in calls:
        out[c.label].append(c.seconds)
    return out


# --- the whole benchmark --------------------------------------------------------------------------


def make_sessions(n: int) -> list[requests.Session]:
    """``n`` buyers, each logged in (a database session, as a login makes) in its own requests.Session."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection

    User = get_user_model()
    unusable = make_password(None)
    User.objects.bulk_create([User(username=f"flash{i:04d}", password=unusable) for i in range(n)], ignore_conflicts=True)
    sessions = []
    for user in User.objects.filter(username__startswith="flash").order_by("username")[:n]:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        session = requests.Session()
        session.cookies.set("sessionid", store.session_key)
        sessions.append(session)
    connection.close()
    return sessions


ROWS_GOOD_AT_ZERO = (
    "PAID beyond capacity",
    "places oversold",
    "seat returns lost (cancels - places given back)",
    "remain above capacity after the sale",
    "paid, not booked (approvals - PAID - CANCELED)",
    "refunded, not cancelled (refunds - CANCELED)",
    "duplicate confirms at the PG",
    "duplicate cancels at the PG",
    "duplicate refunds at the PG",
    "HTTP 5xx (shop)",
    "no answer (shop)",
    "HTTP 5xx (PG)",
    "no answer (PG)",
)


def median_round(runs: list[dict]) -> dict:
    """The run whose throughput (buyers served per second) is the median of its app's and layout's runs."""
    ordered = sorted(runs, key=lambda r: r["buyers served/s"])
    return ordered[(len(ordered) - 1) // 2]


def report(rounds: list[dict], args) -> bool:
    groups = defaultdict(list)
    for r in rounds:
        groups[(r["layout"], r["app"])].append(r)
    results = [median_round(runs) for runs in groups.values()]
    print()
    print(
        f"Flash sale: {args.buyers} buyers, {args.in_flight} in flight, {args.seats} places; "
        f"PostgreSQL; {args.hosts} shop host(s), each gunicorn {args.workers}x{args.threads} gthread"
        f"{' (round-robin)' if args.hosts > 1 else ''}, PG gunicorn {args.pg_workers}x8; "
        f"{args.rounds} round(s)"
    )
    ok = True
    for layout in dict.fromkeys(r["layout"] for r in results):
        rows = [r for r in results if r["layout"] == layout]
        title = f"one seat row, remain={args.seats}" if layout == "one" else f"{args.seats} seat rows, remain=1"
        print()
        print(f"== layout: {title}")
        names = [r["app"] for r in rows]
        keys = [k for k in rows[0] if k not in ("app", "layout") and not k.startswith("_")]
        width = max(len(k) for k in keys) + 2
        print("".ljust(width) + "".join(n.rjust(12) for n in names))
        for key in keys:
            print(key.ljust(width) + "".join(str(r[key]).rjust(12) for r in rows))
        ours = next((r for r in rows if r["app"] == "ours"), None)
        tutorial = next((r for r in rows if r["app"] == "tutorial"), None)
        for r in rows:
            each = groups[(layout, r["app"])]
            print(
                f"{r['app']}: buyers served/s in each of {len(each)} rounds: {', '.join(str(x['buyers served/s']) for x in each)} "
                f"(the table shows the median round)"
            )
            if args.verbose:
                shown = median_round(each)["_by_label"]
                print(f"{r['app']}: requests and mean ms by step: " + "; ".join(f"{k} {n} x {ms}" for k, (n, ms) in shown.items()))
                print(
                    f"{r['app']}: CPU s in the buy + cancel phase of the round shown: "
                    + "; ".join(f"{part} {b} + {c}" for part, (b, c) in median_round(each).get("_cpu_by_phase", {}).items())
                )
                print(
                    f"{r['app']}: buy + cancel phase seconds in each round: "
                    + ", ".join(f"{x['buy phase seconds']} + {x['cancel phase seconds']}" for x in each)
                )
            failures = Counter()
            for run in each:
                failures.update(run["_errors"])
            if failures:
                print(f"{r['app']}: requests without an answer: {dict(failures)}")
        if ours is not None:
            bad = set()
            for run in groups[(layout, "ours")]:  # every round, not only the one shown
                bad.update(k for k in ROWS_GOOD_AT_ZERO if run[k])
                if run["final remain"] != run["expected remain"] or run["PAID orders after the sale"] > run["capacity"]:
                    bad.add("remain")
            verdict = "OK in every round" if not bad else "NOT OK: " + ", ".join(sorted(bad))
            print(f"ours: {verdict} (0 oversold, 0 lost seat returns, 0 duplicate calls or refunds at the PG, 0 server errors)")
            ok = ok and not bad
        if ours is not None and tutorial is not None:

            def ratio(key):
                return ours[key] / tutorial[key] if tutorial[key] else float("inf")

            print(
                f"ours / tutorial: throughput (buyers served/s) x{ratio('buyers served/s'):.2f}, "
                f"shop requests/s x{ratio('requests/s (shop)'):.2f}, "
                f"p50 x{ratio('shop p50 ms'):.2f}, p95 x{ratio('shop p95 ms'):.2f} (latency: lower is better)"
            )
            # Round n of each app ran back to back (alternating which went first): compared pairwise,
            # as the aim is stated (ours at least the tutorial's throughput in every round).
            pairs = [
                o["buyers served/s"] / t["buyers served/s"] if t["buyers served/s"] else float("inf")
                for o, t in zip(groups[(layout, "ours")], groups[(layout, "tutorial")])
            ]
            print(
                f"ours / tutorial throughput round by round: {', '.join(f'x{p:.2f}' for p in pairs)} "
                f"({sum(p >= 1 for p in pairs)} of {len(pairs)} at x1.00 or above)"
            )
            below = [str(n) for n, p in enumerate(pairs, 1) if p < 1]
            if below:
                print(f"ours: throughput below the tutorial's in round {', '.join(below)} of this run")
                ok = False
    return ok


def report_queries(logs: Path) -> None:
    """Per path (ids folded), over the whole run warm-up included: requests, SQL statements each, ms in SQL and in all."""
    groups = defaultdict(list)
    for file in logs.glob("sql-*.log"):
        for line in file.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            path = re.sub(r"/(\d+|tsbx\w+|[A-Za-z0-9_-]{14,})(?=/|$)", "/<id>", row["path"])
            groups[(row["method"], path, row["status"])].append(row)
    print("\nSQL per request, by path (the whole run):")
    print(f"{'requests':>9} {'SQL min-max':>12} {'SQL ms':>8} {'ms':>8} {'CPU ms':>8} {'CPU s':>7}  request")
    for (method, path, status), rows in sorted(groups.items(), key=lambda kv: kv[0][1]):
        counts = [r["queries"] for r in rows]
        sql_ms = statistics.mean(r["sql_seconds"] for r in rows) * 1000
        ms = statistics.mean(r["seconds"] for r in rows) * 1000
        cpu = [r.get("cpu_seconds", 0) for r in rows]
        print(
            f"{len(rows):>9} {f'{min(counts)}-{max(counts)}':>12} {sql_ms:>8.1f} {ms:>8.1f} {statistics.mean(cpu) * 1000:>8.1f} "
            f"{sum(cpu):>7.2f}  {method} {path} -> {status}"
        )


def main(argv=None) -> int:
    args = arguments(argv)
    layouts = [x for x in args.layouts.split(",") if x]
    apps = [x for x in args.apps.split(",") if x]
    global ROUTER
    shop_ports = [free_port() for _ in range(max(1, args.hosts))]
    shop_port, pg_port = shop_ports[0], free_port()
    logs = Path(tempfile.mkdtemp(prefix="pgpay-bench-flash-"))
    database_url = f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "1",  # the example settings need it for the sandbox; bench/settings.py turns DEBUG off
        "EXAMPLE_SANDBOX": "1",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
        "EXAMPLE_SITE_URL": f"http://127.0.0.1:{shop_port}",
        "TOSS_API_BASE": f"http://127.0.0.1:{pg_port}/sandbox/toss",
        "TOSS_JS_SDK_URL": f"http://127.0.0.1:{pg_port}/sandbox/toss/js/v2/standard",
        "SANDBOX_WEBHOOK_DELIVERY": "manual",
        "PGPAY_LOG_LEVEL": "WARNING",
        "BENCH_PG_LOG_DIR": str(logs),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE)]),
    }
    if args.verbose:
        env["BENCH_QUERY_LOG_DIR"] = str(logs)  # bench/query_log.py: every request's SQL statements
    os.environ.update(env)
    sys.path[:0] = [str(ROOT), str(EXAMPLE)]

    admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_sql(args, f'CREATE DATABASE "{args.database}"')
    servers = []
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        sessions = make_sessions(args.buyers)
        servers = [
            *(Server(f"shop{i or ''}", port, args.workers, args.threads, env, logs) for i, port in enumerate(shop_ports)),
            Server("pg", pg_port, args.pg_workers, 8, env, logs),
        ]
        for server in servers:
            server.wait()
        ROUTER = RoundRobin([server.url for server in servers[:-1]])
        CPU_PARTS.update({server.process.pid: "shop" for server in servers[:-1]})
        CPU_PARTS[servers[-1].process.pid] = "PG (sandbox)"
        servers = [servers[0], servers[-1], *servers[1:-1]]  # [first shop, pg, other shops]
        # Warm-up (not counted): every buyer gets a place (seats = buyers) and goes through every
        # step of a sale, so that every worker of the shop and of the PG has imported, compiled its
        # templates, started its threads and connected to the database, and every buyer's session
        # holds its kept-alive connections to the shop and the PG, before any round is measured.
        # Until 7 December 2026 the warm-up had 32 buyers and 2 places: whichever app ran first in
        # round 1 (ours) paid the rest of that start-up in its measured time.
        warm = argparse.Namespace(**{**vars(args), "seats": args.buyers})
        for app in apps:
            print(f"warming up {app} ...", file=sys.stderr, flush=True)
            run_one(app, "one", warm, sessions, servers[0].url, servers[1].url, logs)
        rounds = []
        for n in range(args.rounds):
            for layout in layouts:
                # Alternate which app goes first, so that neither always meets a busier machine.
                for app in apps if n % 2 == 0 else apps[::-1]:
                    print(f"round {n + 1}: {app} on layout {layout} ...", file=sys.stderr, flush=True)
                    rounds.append(run_one(app, layout, args, sessions, servers[0].url, servers[1].url, logs))
        ok = report(rounds, args)
        if args.verbose:
            report_queries(logs)
        if args.json:
            groups = defaultdict(list)
            for r in rounds:
                groups[(r["layout"], r["app"])].append(r)
            medians = [{k: v for k, v in median_round(runs).items() if not k.startswith("_")} for runs in groups.values()]
            Path(args.json).write_text(json.dumps({"ok": ok, "hosts": args.hosts, "results": medians}, ensure_ascii=False, indent=1))
        print(f"\nserver logs: {logs}")
        return 0 if ok else 1
    finally:
        for server in servers:
            server.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
