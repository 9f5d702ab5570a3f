"""A flash sale that cannot pass if anything races: 40 buyers for 5 places, then every buyer cancels twice at once.

Everything goes over real HTTP to a live server (one thread and one database
connection per request): the shop's checkout, return and cancel views, and
the sandbox's Toss (its payment window and its API, which the ``toss``
gateway calls on the same server). All 40 buyers post their checkout at the
same instant; each of the five who got a place pays in the sandbox's window
and comes back; then each of them cancels twice at the same instant (half by
a double click, which sends the form's token twice, half from two tabs, with
two tokens). ``bench/flash_sale.py`` is the bigger version, measured.

SQLite has no row locks (and its live server shares one connection): CI runs
this on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import threading
from decimal import Decimal

import pytest
import requests
from django.db import connection
from django.test import Client
from django.utils import timezone

from django_pgpay.sandbox.toss import sdk_payload
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.concurrency,
    pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite cannot show row locks; CI runs this on PostgreSQL and MariaDB"),
]

BUYERS = 40
PLACES = 5
#: The sandbox's made-up Toss keys in tests/settings.py.
CLIENT_KEY = "test_ck_sandboxTESTS0000000000"
SECRET_KEY = "test_sk_sandboxTESTS0000000000"
TIMEOUT = 30


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def run_together(n, target):
    """Run ``target(i)`` in ``n`` threads released at the same instant; what each returned or raised."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def body(i):
        try:
            barrier.wait(TIMEOUT)
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    return results


@pytest.fixture
def shop(live_server, settings):
    """A ``toss`` gateway whose API is the sandbox on the live server; the sandbox starts empty."""
    from django_pgpay.sandbox import control

    entry = {
        "CLASS": "django_pgpay.gateways.toss.TossGateway",
        "OPTIONS": {
            "CLIENT_KEY": CLIENT_KEY,
            "SECRET_KEY": SECRET_KEY,
            "API_BASE": live_server.url + "/sandbox/toss",
            "JS_SDK_URL": live_server.url + "/sandbox/toss/js/v2/standard",
            "TIMEOUT": (3.05, TIMEOUT),
        },
    }
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "toss": copy.deepcopy(entry)}}
    control.reset()
    return live_server.url


@pytest.fixture
def flash_seat(db):
    from tests.testapp.models import Restaurant, Seat

    restaurant = Restaurant.objects.create(name="오마카세", address="서울특별시 중구")
    table = restaurant.table_set.create(price=Decimal(50000))
    return Seat.objects.create(table=table, datetime=timezone.now() + datetime.timedelta(days=7), remain=PLACES)


@pytest.fixture
def sessions(django_user_model, shop):
    """One logged-in ``requests.Session`` per buyer (the session cookie of Django's test client)."""
    made = []
    for i in range(BUYERS):
        user = django_user_model.objects.create_user(f"flash{i:02d}", password="pw")
        client = Client()
        client.force_login(user)
        session = requests.Session()
        session.cookies.set("sessionid", client.cookies["sessionid"].value)
        made.append(session)
    yield made
    for session in made:
        session.close()


def window_params(html: str) -> dict:
    """The parameters our payment window hands to Toss's SDK."""
    return json.loads(re.search(r'<script id="pgpay-toss-params" type="application/json">(.*?)</script>', html, re.S).group(1))


def pay_in_the_window(session: requests.Session, base: str, html: str) -> requests.Response:
    """What the sandbox's Toss SDK and window do when the buyer pays; returns our return page."""
    params = window_params(html)
    payload = sdk_payload(params)
    opened = session.post(base + "/sandbox/toss/checkout", data={"payload": json.dumps(payload)}, allow_redirects=False, timeout=TIMEOUT)
    assert opened.status_code == 303, opened.text[:500]
    window = base + opened.headers["Location"]
    page = session.get(window, timeout=TIMEOUT)
    paid = session.post(
        window, data={"csrfmiddlewaretoken": csrf_token(page.text), "action": "pay"}, allow_redirects=False, timeout=TIMEOUT
    )
    assert paid.status_code == 302, paid.text[:500]
    return session.get(paid.headers["Location"], allow_redirects=False, timeout=TIMEOUT)


def _form_fields(form: str) -> tuple[str, dict]:
    action = re.search(r'action="([^"]+)"', form).group(1)
    return action, dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def cancel_form(session: requests.Session, base: str, order_number: str) -> tuple[str, dict]:
    """The confirmation form of a full cancel of the booking: action URL and fields.

    The buyer presses "Cancel" on the history page, which opens the
    confirmation step in place (the amount, nothing left after it); its
    "Refund now" is what the race sends, once (a double click) or from two tabs.
    """
    page = session.get(base + "/history/", timeout=TIMEOUT).text
    block = page.split(f'id="booking-{order_number}"', 1)[1].split("</li>", 1)[0]
    assert '<details class="pgpay-cancel-inline">' in block and "Left after the refund" in block
    action, fields = _form_fields(next(f for f in re.findall(r"<form.*?</form>", block, re.S) if 'name="amount"' not in f))
    assert fields.get("full") == "1" and fields.get("confirm") == "1"
    return base + action, fields


def test_forty_buyers_five_places_nothing_oversold_lost_or_doubled(shop, flash_seat, sessions):
    from django_pgpay.sandbox.models import SandboxIdempotency, SandboxPayment
    from tests.testapp.models import Booking, Seat

    book = f"{shop}/book/{flash_seat.pk}/toss/"
    tokens = [csrf_token(s.get(book, timeout=TIMEOUT).text) for s in sessions]

    # --- everyone books at the same instant -------------------------------------------
    answers = run_together(BUYERS, lambda i: sessions[i].post(book, data={"csrfmiddlewaretoken": tokens[i]}, timeout=TIMEOUT))
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * PLACES + [409] * (BUYERS - PLACES), statuses
    for answer in answers:
        if answer.status_code == 409:
            assert "Sold out." in answer.text
    flash_seat.refresh_from_db()
    assert flash_seat.remain == 0
    assert Booking.objects.filter(status=S.READY).count() == PLACES

    # --- the five pay in the sandbox's window, at once ---------------------------------
    holders = [i for i, a in enumerate(answers) if a.status_code == 200]
    returns = run_together(PLACES, lambda j: pay_in_the_window(sessions[holders[j]], shop, answers[holders[j]].text))
    assert not [r for r in returns if isinstance(r, BaseException)], returns
    assert [r.status_code for r in returns] == [200] * PLACES, [r.text[:300] for r in returns]
    bookings = list(Booking.objects.order_by("pk"))
    assert [b.status for b in bookings] == [S.PAID] * PLACES
    assert SandboxPayment.objects.filter(pg="toss", status="DONE").count() == PLACES
    flash_seat.refresh_from_db()
    assert flash_seat.remain == 0

    # --- each cancels twice at the same instant ------------------------------------------
    owner = {window_params(answers[i].text)["orderId"]: sessions[i] for i in holders}
    assert sorted(owner) == sorted(b.order_number for b in bookings)
    forms = {}
    for k, (number, session) in enumerate(sorted(owner.items())):
        first = cancel_form(session, shop, number)
        # Even: a double click (one form sent twice); odd: two tabs (two forms, two tokens).
        second = first if k % 2 == 0 else cancel_form(session, shop, number)
        if k % 2:
            assert first[1]["token"] != second[1]["token"]
        forms[number] = (session, first, second)
    plan = [(number, which) for number in sorted(forms) for which in (1, 2)]

    def cancel(n):
        number, which = plan[n]
        session, *both = forms[number]
        action, fields = both[which - 1]
        return session.post(action, data=fields, allow_redirects=False, timeout=TIMEOUT)

    cancels = run_together(len(plan), cancel)
    assert not [c for c in cancels if isinstance(c, BaseException)], cancels
    assert all(c.status_code < 500 for c in cancels), [(c.status_code, c.text[:300]) for c in cancels]
    assert all(c.status_code in (302, 409) for c in cancels), [c.status_code for c in cancels]

    flash_seat.refresh_from_db()
    assert flash_seat.remain == PLACES
    assert Seat.objects.get(pk=flash_seat.pk).remain == PLACES
    bookings = list(Booking.objects.order_by("pk"))
    assert [b.status for b in bookings] == [S.CANCELED] * PLACES
    model = Booking.get_transaction_model()
    assert model.objects.filter(kind=K.CANCEL, status=T.SUCCEEDED).count() == PLACES
    for booking in bookings:
        assert booking.transactions.filter(kind=K.CANCEL).exclude(status=T.FAILED).count() == 1
    # The PG's own records: one refund per payment, and one cancel request per payment
    # reached it (every cancel we send carries an Idempotency-Key; one key each).
    for payment in SandboxPayment.objects.filter(pg="toss"):
        assert payment.status == "CANCELED"
        assert len(payment.state["cancels"]) == 1, payment.state["cancels"]
        assert SandboxIdempotency.objects.filter(pg="toss", path__endswith=f"/{payment.key}/cancel").count() == 1
