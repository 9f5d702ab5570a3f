"""The example project's settings and catalogue (its pages are driven by the e2e tests and ``make demo-check``).

Switching a PG between the sandbox and its real test environment is one
environment variable per key: these tests load ``settings.py`` with a given
environment and look at what it configures.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
#: Variables of the example project's settings and of scripts/demo.sh: a developer's own never reach the tests.
PREFIXES = ("DJANGO_", "PGPAY_", "TOSS_", "STRIPE_", "PORTONE_", "BOOTPAY_", "SANDBOX_", "EXAMPLE_", "DATABASE_URL", "DEMO_")
SETTINGS = EXAMPLE / "example_project" / "settings.py"
CATALOGUE = EXAMPLE / "locale" / "ko" / "LC_MESSAGES" / "django.po"
pytestmark = pytest.mark.skipif(not SETTINGS.exists(), reason="no example_project/ here (the sdist leaves it out)")

VARIABLES = (
    "DJANGO_DEBUG",
    "DATABASE_URL",
    "EXAMPLE_SITE_URL",
    "EXAMPLE_SANDBOX",
    "PGPAY_DEFAULT_GATEWAY",
    "PGPAY_READY_TIMEOUT",
    "TOSS_CLIENT_KEY",
    "TOSS_SECRET_KEY",
    "TOSS_API_BASE",
    "TOSS_JS_SDK_URL",
    "TOSS_TIMEOUT",
    "BOOTPAY_CLIENT_KEY",
    "BOOTPAY_SECRET_KEY",
    "BOOTPAY_API_BASE",
    "BOOTPAY_JS_SDK_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "PORTONE_IMP_KEY",
    "PORTONE_IMP_SECRET",
    "PORTONE_MERCHANT_CODE",
    "PORTONE_CHANNEL_KEY",
    "PORTONE_V2_API_SECRET",
    "PORTONE_STORE_ID",
    "PORTONE_V2_CHANNEL_KEY",
    "PORTONE_V2_WEBHOOK_SECRET",
    "PORTONE_VERSIONS",
)

ALL_PGS = ["toss", "stripe", "portone", "portone-v2", "bootpay"]


@pytest.fixture
def load(monkeypatch):
    """``settings.py`` executed with exactly these example variables in the environment."""

    def run(**env: str) -> dict:
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS))

    return run


def test_by_default_toss_talks_to_the_sandbox_on_this_server(load):
    settings = load()
    toss = settings["PGPAY"]["GATEWAYS"]["toss"]
    assert toss["CLASS"] == "django_pgpay.gateways.toss.TossGateway"
    assert toss["OPTIONS"] == {
        "CLIENT_KEY": "test_ck_sandbox_example_shop",
        "SECRET_KEY": "test_sk_sandbox_example_shop",
        "API_BASE": "http://127.0.0.1:8000/sandbox/toss",
        "JS_SDK_URL": "http://127.0.0.1:8000/sandbox/toss/js/v2/standard",
    }
    assert settings["PGPAY"]["DEFAULT_GATEWAY"] == "toss"
    assert settings["SANDBOX_GATEWAYS"] == ALL_PGS and "django_pgpay.sandbox" in settings["INSTALLED_APPS"]
    # The sandbox accepts exactly the gateway's keys and posts webhooks to the shop's URL.
    assert settings["PGPAY_SANDBOX"]["TOSS"]["SECRET_KEYS"] == [toss["OPTIONS"]["SECRET_KEY"]]
    assert settings["PGPAY_SANDBOX"]["TOSS"]["CLIENT_KEYS"] == [toss["OPTIONS"]["CLIENT_KEY"]]
    assert settings["PGPAY_SANDBOX"]["TOSS"]["WEBHOOK_URL"] == "/pay/toss/webhook/"
    assert settings["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert settings["DATABASES"]["default"]["NAME"] == str(EXAMPLE / "db.sqlite3")


def test_the_server_url_comes_from_the_environment(load):
    settings = load(EXAMPLE_SITE_URL="http://127.0.0.1:8123/")
    options = settings["PGPAY"]["GATEWAYS"]["toss"]["OPTIONS"]
    assert options["API_BASE"] == "http://127.0.0.1:8123/sandbox/toss"
    assert options["JS_SDK_URL"] == "http://127.0.0.1:8123/sandbox/toss/js/v2/standard"
    assert settings["PGPAY_SANDBOX"]["SITE_URL"] == "http://127.0.0.1:8123"


def test_real_test_keys_switch_toss_to_its_own_test_environment(load):
    settings = load(TOSS_CLIENT_KEY="test_ck_mine", TOSS_SECRET_KEY="test_sk_mine")
    options = settings["PGPAY"]["GATEWAYS"]["toss"]["OPTIONS"]
    # No API_BASE / JS_SDK_URL: the gateway's defaults, https://api.tosspayments.com and js.tosspayments.com.
    assert options == {"CLIENT_KEY": "test_ck_mine", "SECRET_KEY": "test_sk_mine"}
    assert "toss" not in settings["SANDBOX_GATEWAYS"] and "stripe" in settings["SANDBOX_GATEWAYS"]
    assert "test_sk_mine" not in settings["PGPAY_SANDBOX"]["TOSS"]["SECRET_KEYS"]


def test_urls_and_timeout_can_be_set_one_by_one(load):
    settings = load(TOSS_API_BASE="http://proxy.local/toss", TOSS_TIMEOUT="5")
    options = settings["PGPAY"]["GATEWAYS"]["toss"]["OPTIONS"]
    assert options["API_BASE"] == "http://proxy.local/toss" and options["TIMEOUT"] == (3.05, 5.0)
    assert options["JS_SDK_URL"] == "http://127.0.0.1:8000/sandbox/toss/js/v2/standard"


def test_one_toss_key_without_the_other_is_refused(load):
    with pytest.raises(ImproperlyConfigured, match="both TOSS_CLIENT_KEY and TOSS_SECRET_KEY"):
        load(TOSS_SECRET_KEY="test_sk_mine")


def test_without_debug_the_sandbox_is_off_and_real_keys_are_required(load):
    with pytest.raises(ImproperlyConfigured, match="sandbox is off"):
        load(DJANGO_DEBUG="0")
    settings = load(DJANGO_DEBUG="0", TOSS_CLIENT_KEY="live_ck_x", TOSS_SECRET_KEY="live_sk_x")
    assert "django_pgpay.sandbox" not in settings["INSTALLED_APPS"]
    assert "SANDBOX_ALLOW_WITHOUT_DEBUG" not in settings["PGPAY"]
    # The sandbox never runs without DEBUG here, not even when asked to.
    with pytest.raises(ImproperlyConfigured, match="EXAMPLE_SANDBOX=1 needs DJANGO_DEBUG=1"):
        load(DJANGO_DEBUG="0", EXAMPLE_SANDBOX="1")


def test_every_pg_is_on_the_sandbox_by_default(load):
    """``make demo`` with no variables: four PGs (PortOne in V1 and V2), each on the sandbox with keys it accepts."""
    settings = load()
    gateways, sandbox = settings["PGPAY"]["GATEWAYS"], settings["PGPAY_SANDBOX"]
    assert list(gateways) == ALL_PGS
    stripe = gateways["stripe"]["OPTIONS"]
    assert stripe["API_BASE"] == "http://127.0.0.1:8000/sandbox/stripe"
    assert sandbox["STRIPE"]["SECRET_KEYS"] == [stripe["SECRET_KEY"]] and sandbox["STRIPE"]["WEBHOOK_SECRET"] == stripe["WEBHOOK_SECRETS"]
    v1, v2 = gateways["portone"]["OPTIONS"], gateways["portone-v2"]["OPTIONS"]
    assert gateways["portone"]["CLASS"].endswith("PortOneV1Gateway") and gateways["portone-v2"]["CLASS"].endswith("PortOneV2Gateway")
    assert (v1["API_BASE"], v1["JS_SDK_URL"]) == (
        "http://127.0.0.1:8000/sandbox/portone",
        "http://127.0.0.1:8000/sandbox/portone/v1/iamport.js",
    )
    assert sandbox["PORTONE"]["IMP_KEYS"] == [v1["IMP_KEY"]] and sandbox["PORTONE"]["MERCHANT_CODES"] == [v1["MERCHANT_CODE"]]
    assert sandbox["PORTONE"]["V2_API_SECRETS"] == [v2["API_SECRET"]] and sandbox["PORTONE"]["STORE_IDS"] == [v2["STORE_ID"]]
    assert sandbox["PORTONE"]["V2_WEBHOOK_SECRET"] == v2["WEBHOOK_SECRETS"]
    bootpay = gateways["bootpay"]["OPTIONS"]
    assert bootpay["API_BASE"] == "http://127.0.0.1:8000/sandbox/bootpay/v2"
    assert sandbox["BOOTPAY"]["CLIENT_KEYS"] == [bootpay["CLIENT_KEY"]] and sandbox["BOOTPAY"]["SECRET_KEYS"] == [bootpay["SECRET_KEY"]]
    assert {sandbox[pg]["WEBHOOK_URL"] for pg in ("STRIPE", "PORTONE", "BOOTPAY")} == {
        "/pay/stripe/webhook/",
        "/pay/portone/webhook/",
        "/pay/bootpay/webhook/",
    }
    assert settings["GATEWAY_SHOPS"] == {"stripe": ["shop"]}  # Stripe in the cart shop only


def test_real_test_keys_switch_each_pg_on_its_own(load):
    settings = load(
        BOOTPAY_CLIENT_KEY="bp-client",
        BOOTPAY_SECRET_KEY="bp-secret",
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
        PORTONE_V2_API_SECRET="v2-secret",
        PORTONE_STORE_ID="store-x",
        PORTONE_V2_CHANNEL_KEY="channel-key-x",
    )
    gateways = settings["PGPAY"]["GATEWAYS"]
    assert list(gateways) == ALL_PGS
    assert gateways["bootpay"]["OPTIONS"] == {"CLIENT_KEY": "bp-client", "SECRET_KEY": "bp-secret"}
    assert gateways["stripe"]["OPTIONS"] == {"SECRET_KEY": "sk_test_x", "WEBHOOK_SECRETS": "whsec_x"}
    assert gateways["portone-v2"]["OPTIONS"] == {
        "API_SECRET": "v2-secret",
        "STORE_ID": "store-x",
        "CHANNEL_KEY": "channel-key-x",
        "INCLUDE_SANDBOX": True,
    }
    # PortOne V1 and Toss had no keys: still the sandbox.
    assert settings["SANDBOX_GATEWAYS"] == ["toss", "portone"]
    assert "bp-secret" not in settings["PGPAY_SANDBOX"]["BOOTPAY"]["SECRET_KEYS"]


def test_portone_versions_and_incomplete_keys(load):
    assert [a for a in load(PORTONE_VERSIONS="v2")["PGPAY"]["GATEWAYS"] if a.startswith("portone")] == ["portone-v2"]
    assert [a for a in load(PORTONE_VERSIONS="v1")["PGPAY"]["GATEWAYS"] if a.startswith("portone")] == ["portone"]
    with pytest.raises(ImproperlyConfigured, match="PORTONE_IMP_SECRET, PORTONE_MERCHANT_CODE, PORTONE_CHANNEL_KEY"):
        load(PORTONE_IMP_KEY="imp-key")
    with pytest.raises(ImproperlyConfigured, match="BOOTPAY_CLIENT_KEY"):
        load(BOOTPAY_SECRET_KEY="bp-secret")


def test_without_the_sandbox_only_pgs_with_keys_are_offered(load):
    settings = load(DJANGO_DEBUG="0", TOSS_CLIENT_KEY="live_ck_x", TOSS_SECRET_KEY="live_sk_x", STRIPE_SECRET_KEY="sk_live_x")
    assert list(settings["PGPAY"]["GATEWAYS"]) == ["toss", "stripe"] and settings["SANDBOX_GATEWAYS"] == []


def test_database_url(load):
    settings = load(DATABASE_URL="postgres://shop:p%40ss@db.local:5433/example")
    assert settings["DATABASES"]["default"] == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "example",
        "USER": "shop",
        "PASSWORD": "p@ss",
        "HOST": "db.local",
        "PORT": "5433",
    }
    assert load(DATABASE_URL="sqlite:////tmp/x.sqlite3")["DATABASES"]["default"]["NAME"] == "/tmp/x.sqlite3"
    with pytest.raises(ImproperlyConfigured):
        load(DATABASE_URL="mysql://x/y")


def test_korean_catalogue_is_complete_and_compiled(tmp_path):
    text = CATALOGUE.read_text("utf-8")
    assert "#, fuzzy" not in text
    stats = subprocess.run(
        ["msgfmt", "--statistics", "--check", "-o", str(tmp_path / "x.mo"), str(CATALOGUE)], capture_output=True, text=True, check=True
    )
    assert "untranslated" not in stats.stderr and "fuzzy" not in stats.stderr, stats.stderr
    assert (tmp_path / "x.mo").read_bytes() == CATALOGUE.with_suffix(".mo").read_bytes(), "recompile the example's catalogue"


# --- make demo ---------------------------------------------------------------------------


def demo_setup(tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    environ.update(
        PYTHON=sys.executable,
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DEMO_PASSWORD_FILE=str(tmp_path / "password"),
        SANDBOX_WEBHOOK_DELIVERY="manual",
        **env,
    )
    done = subprocess.run([str(ROOT / "scripts" / "demo.sh"), "setup"], env=environ, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


LOGS_IN = """
import json
from django.contrib.auth import authenticate
print(json.dumps({name: authenticate(username=name, password=%r) is not None for name in ("admin", "demo-buyer")}))
"""


def logs_in(tmp_path, password: str) -> dict[str, bool]:
    """Whether ``admin`` and ``demo-buyer`` of the demo's database (:func:`demo_setup`) log in with ``password``."""
    return example_shell(tmp_path / "demo.sqlite3", LOGS_IN % password)


@pytest.mark.skipif(
    connection.vendor == "postgresql",
    reason="the demo runs on its own SQLite file whatever the suite's database: CI runs this in the SQLite "
    "step (Django 6.1) and the MariaDB step (Django 5.2); the PostgreSQL step would repeat the first (27 s)",
)
def test_make_demo_is_one_line_a_step_and_keeps_the_admins_password(tmp_path):
    first = demo_setup(tmp_path)
    steps = [line for line in first.stdout.splitlines() if line.startswith("  ") and line.rstrip().endswith(("ok", " s)"))]
    assert [s.split("  ")[1].strip() for s in steps] == [
        "database migrated",
        "system checks pass",
        "demo restaurants, seats and products",
        "superuser admin",
        "sample orders for the admin",
    ]
    # A buyer's orders in the statuses the admin works on, made through the shop and the sandbox once.
    assert (
        "    Sample orders of demo-buyer: 1 CANCELED, 2 PAID, 1 PARTIAL_CANCELED, 1 READY, 1 WAITING_FOR_DEPOSIT; "
        "8 webhooks delivered; log in as demo-buyer with the admin's password.\n" in first.stdout
    )
    assert "Operations to perform" not in first.stdout and first.stderr == ""  # quiet: migrate's own output stays hidden
    password = (tmp_path / "password").read_text().strip()
    assert len(password) >= 12 and f"Password:  {password} " in first.stdout
    assert (tmp_path / "password").stat().st_mode & 0o077 == 0  # only its owner reads it
    # The demo buyer logs in with the admin's password, to see the samples from the buyer's side.
    assert logs_in(tmp_path, password) == {"admin": True, "demo-buyer": True}
    # The next run prints the same password (and adds no orders); DEMO_ADMIN_PASSWORD replaces it, the buyer's too.
    second = demo_setup(tmp_path).stdout
    assert f"Password:  {password} " in second
    assert "    Sample orders: kept (the demo buyer has orders).\n" in second
    assert "Password:  chosen-Password-1 " in demo_setup(tmp_path, DEMO_ADMIN_PASSWORD="chosen-Password-1").stdout
    assert (tmp_path / "password").read_text().strip() == "chosen-Password-1"
    assert logs_in(tmp_path, "chosen-Password-1") == {"admin": True, "demo-buyer": True}
    assert logs_in(tmp_path, password) == {"admin": False, "demo-buyer": False}
    # The samples are paid in the sandbox's window: with Toss's own test keys there are none, and no error.
    last = demo_setup(tmp_path, TOSS_CLIENT_KEY="test_ck_0000000000000000", TOSS_SECRET_KEY="test_sk_0000000000000000").stdout
    assert "Password:  chosen-Password-1 " in last
    assert "    Sample orders: none (Toss is not on the sandbox in both shops).\n" in last


# --- the example driven in process (its own settings and SQLite file, another process) --------------


def example_shell(database: Path, code: str, **env) -> dict:
    """``manage.py shell -c code`` of the example project on the SQLite file ``database``: the last line it prints, as JSON.

    The sandbox's webhooks are not delivered (``SANDBOX_WEBHOOK_DELIVERY=manual``): what the shop
    does is what its pages did.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    environ.update(
        DATABASE_URL=f"sqlite:///{database}",
        SANDBOX_WEBHOOK_DELIVERY="manual",
        PYTHONDONTWRITEBYTECODE="1",
        **env,
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code], cwd=EXAMPLE, env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOST_SESSION = r"""
import json, re
from urllib.parse import parse_qs, urlsplit
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import reverse
from django_pgpay import permissions
from django_pgpay.sandbox.toss import sdk_payload
from django_pgpay.views import checkout_urls
from example_project.inprocess import served_in_process
from restaurants.models import Booking, Seat
from restaurants.views import BookingView
from shop.models import CartOrder, Product
from shop.views import OrderPaymentView

call_command("migrate", interactive=False, verbosity=0)
call_command("demo_data", days=1, verbosity=0)
host = urlsplit(settings.SITE_URL).netloc
report = {}

def window(response):
    found = re.search(r'<script id="pgpay-toss-params" type="application/json">(.*?)</script>', response.content.decode(), re.S)
    return json.loads(found.group(1))

def paid_in_the_window(params):
    # The PG's window is another site: none of the shop's cookies.
    pg = Client(HTTP_HOST=host)
    opened = pg.post("/sandbox/toss/checkout", {"payload": json.dumps(sdk_payload(params))})
    page = urlsplit(opened["Location"]).path
    parts = urlsplit(pg.post(page, {"action": "pay"})["Location"])
    return f"{parts.path}?{parts.query}"

def came_back(url):
    # The buyer's session is lost (a cleared cookie, a payment app returning in another browser).
    response = Client(HTTP_HOST=host).get(url)
    return {"status": response.status_code, "location": response.get("Location", ""), "code": "NOT_THE_BUYER" if b"NOT_THE_BUYER" in response.content else ""}

def without_token(url):
    parts = urlsplit(url)
    return parts.path + "?" + "&".join(p for p in parts.query.split("&") if not p.startswith("pgpay_t="))

def url_facts(url, order_number):
    parts = urlsplit(url)
    tokens = parse_qs(parts.query).get(permissions.BUYER_TOKEN_PARAM, [])
    return {"path": parts.path, "tokens": len(tokens), "verifies": bool(tokens) and permissions.has_buyer_token(order_number, tokens[0])}

buyer = get_user_model().objects.create_user("lost-session")
client = Client(HTTP_HOST=host)
client.force_login(buyer)
with served_in_process(settings.SITE_URL):
    # A booking: the window's URLs, then the buyer returns without their session.
    seat = Seat.objects.upcoming().filter(remain__gt=0).order_by("pk").first()
    start = client.get(reverse("restaurants:book", args=[seat.pk])).content.decode()
    form = {"gateway": "toss", "pgpay_form": re.search(r'name="pgpay_form" value="([^"]+)"', start).group(1)}
    params = window(client.post(reverse("restaurants:book", args=[seat.pk]), form))
    booking = Booking.objects.get(user=buyer, seat=seat)
    report["window"] = {name: url_facts(params[name], booking.order_number) for name in ("successUrl", "failUrl")}
    report["paths"] = {name: reverse(name, kwargs={"alias": "toss"}) for name in ("restaurants:return", "restaurants:fail", "shop:return", "shop:fail")}
    for view_class, shop in ((BookingView, "restaurants"), (OrderPaymentView, "shop")):
        view = view_class()
        view.request, view.kwargs = RequestFactory().get("/", HTTP_HOST=host), {}
        ours, library = view.get_checkout_urls(booking), checkout_urls(view.request, booking)
        report[shop] = {
            "success": url_facts(ours.success_url, booking.order_number),
            "fail": url_facts(ours.fail_url, booking.order_number),
            "same_query": [urlsplit(ours.success_url).query, urlsplit(ours.fail_url).query] == [urlsplit(library.success_url).query] * 2,
            "webhook_and_attempt": [ours.webhook_url, ours.attempt_url] == [library.webhook_url, library.attempt_url] and bool(ours.attempt_url),
        }
    back = paid_in_the_window(params)
    report["booking_without_token"] = came_back(without_token(back))
    booking.refresh_from_db()
    report["booking_status_then"] = booking.status
    report["booking_back"] = came_back(back)
    booking.refresh_from_db()
    report["booking_status"] = booking.status
    report["history"] = reverse("restaurants:history")
    # The same page's form sent again after paying, places left: the paid booking, not a second one.
    Seat.objects.filter(pk=seat.pk).update(capacity=6, remain=5)
    import time
    time.sleep(1.1)  # a page made after the payment (beyond checkout_forms.MARGIN): not stale, so the buyer is asked
    after = client.get(reverse("restaurants:book", args=[seat.pk])).content.decode()
    action = re.search(r'<form method="post" action="([^"]*)"[^>]*id="book-form"', after).group(1)
    fresh = {"gateway": "toss", "pgpay_form": re.search(r'name="pgpay_form" value="([^"]+)"', after).group(1)}
    asked = client.post(action, fresh)
    report["page_after"] = {
        "action": action,
        "asked": asked.status_code == 200 and 'id="paid-before"' in asked.content.decode() and booking.get_absolute_url() in asked.content.decode(),
        "bookings": Booking.objects.filter(user=buyer, seat=seat).count(),
    }
    again = client.post(reverse("restaurants:book", args=[seat.pk]), form)
    report["again_same_form"] = {
        "status": again.status_code,
        "location": again.get("Location", ""),
        "bookings": Booking.objects.filter(user=buyer, seat=seat).count(),
        "remain": Seat.objects.get(pk=seat.pk).remain,
    }
    # The form sent again after paying (the back button, "Confirm form resubmission") when no place is left:
    # the sold-out page said "Nothing was reserved and nothing was charged" as if the place were someone else's.
    Seat.objects.filter(pk=seat.pk).update(remain=0)
    again = client.post(reverse("restaurants:book", args=[seat.pk]), {"gateway": "toss"})
    page = again.content.decode()
    report["again"] = {"status": again.status_code, "own": 'id="own-booking"' in page, "link": booking.get_absolute_url() in page}

    # A cart order, through the other shop's return view.
    product = Product.objects.order_by("pk").first()
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
    client.post(reverse("shop:order-create"), {"recipient": "Kim", "address": "Seoul", "phone": "", "gateway": "toss"})
    order = CartOrder.objects.get(user=buyer)
    params = window(client.post(reverse("shop:pay", args=[order.order_number])))
    report["order_back"] = came_back(paid_in_the_window(params))
    order.refresh_from_db()
    report["order_status"] = order.status
    report["order_page"] = order.get_absolute_url()
print(json.dumps(report))
"""


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the example runs on its own SQLite file whatever the suite's database")
def test_a_buyer_who_lost_the_session_still_gets_the_payment_confirmed(tmp_path):
    """Regression: the shops' return URLs lacked the buyer token, so a buyer back without their session (a cleared
    cookie, a payment app returning in another browser) got 403 NOT_THE_BUYER and a Toss payment was never confirmed.
    """
    report = example_shell(tmp_path / "example.sqlite3", LOST_SESSION)
    paths = report["paths"]
    # The URLs the payment window is given: the shop's own, each with one buyer token that the library accepts.
    assert report["window"] == {
        "successUrl": {"path": paths["restaurants:return"], "tokens": 1, "verifies": True},
        "failUrl": {"path": paths["restaurants:fail"], "tokens": 1, "verifies": True},
    }
    # Both shops: the library's query (its token) on the shop's paths; its webhook and attempt URLs as they are.
    for shop in ("restaurants", "shop"):
        assert report[shop] == {
            "success": {"path": paths[f"{shop}:return"], "tokens": 1, "verifies": True},
            "fail": {"path": paths[f"{shop}:fail"], "tokens": 1, "verifies": True},
            "same_query": True,
            "webhook_and_attempt": True,
        }
    # Without the token a sessionless return is still refused, and nothing is confirmed ...
    assert report["booking_without_token"] == {"status": 403, "location": "", "code": "NOT_THE_BUYER"}
    assert report["booking_status_then"] == "READY"
    # ... with it (the URL the PG sends the buyer to), the payment is confirmed and the buyer sent on.
    assert report["booking_back"]["status"] == 302 and report["booking_back"]["location"].startswith(report["history"])
    assert report["booking_status"] == "PAID"
    # The booking page's form sent again after paying: back to the paid booking, no second one, no place taken.
    assert report["again_same_form"] == {"status": 302, "location": report["booking_back"]["location"], "bookings": 1, "remain": 5}
    # A booking page loaded anew after paying: its form asks first (naming the paid booking), nothing reserved.
    assert report["page_after"] == {"action": report["page_after"]["action"], "asked": True, "bookings": 1}
    assert report["page_after"]["action"].endswith("?pgpay_checkout=1")
    assert report["again"] == {"status": 409, "own": True, "link": True}
    assert report["order_back"] == {"status": 302, "location": report["order_page"], "code": ""}
    assert report["order_status"] == "PAID"


DEMO_PASSWORD = """
import json, os
from example_project.management.commands.demo_orders import demo_password
found = {"file": demo_password()}
os.environ["DEMO_ADMIN_PASSWORD"] = "given-Password-2"
found["given"] = demo_password()
del os.environ["DEMO_ADMIN_PASSWORD"]
os.environ["DEMO_PASSWORD_FILE"] += ".missing"
found["none"] = demo_password()
print(json.dumps(found))
"""


def test_the_demo_buyers_password_is_the_admins_read_as_make_demo_reads_it(tmp_path):
    """``DEMO_ADMIN_PASSWORD``, else the file ``scripts/demo.sh`` keeps it in (``DEMO_PASSWORD_FILE``), else none."""
    kept = tmp_path / "password"
    kept.write_text("kept-Password-1\n")
    found = example_shell(tmp_path / "unused.sqlite3", DEMO_PASSWORD, DEMO_PASSWORD_FILE=str(kept))
    assert found == {"file": "kept-Password-1", "given": "given-Password-2", "none": None}


@pytest.fixture
def first_page_paginator():
    """example_project/example_project/paging.py's paginator, loaded from its file (the example is not an installed app here)."""
    return runpy.run_path(str(EXAMPLE / "example_project" / "paging.py"))["FirstPagePaginator"]


@pytest.mark.django_db
def test_a_buyers_single_page_is_read_without_a_count(first_page_paginator, make_booking, seat, django_assert_num_queries):
    from tests.testapp.models import Booking

    seat.remain = 10
    seat.save()
    for _ in range(3):
        make_booking()
    with django_assert_num_queries(1):  # the page itself; no SELECT COUNT(*)
        page = first_page_paginator(Booking.objects.order_by("-pk"), 20).page(1)
        assert len(page.object_list) == 3 and page.paginator.count == 3 and page.paginator.num_pages == 1
        assert not page.has_other_pages()
    empty = first_page_paginator(Booking.objects.filter(pk=-1).order_by("pk"), 20)
    with django_assert_num_queries(1):
        page = empty.page(1)
        assert list(page) == [] and page.paginator.num_pages == 1


@pytest.mark.django_db
def test_a_buyer_with_more_than_a_page_is_counted_and_paged_as_django_does(first_page_paginator, make_booking, seat):
    from django.core.paginator import EmptyPage, Paginator

    from tests.testapp.models import Booking

    seat.remain = 10
    seat.save()
    for _ in range(5):
        make_booking()
    queryset = Booking.objects.order_by("-pk")
    for per_page, orphans in ((2, 0), (4, 1), (4, 0), (5, 0)):
        ours, django = first_page_paginator(queryset, per_page, orphans=orphans), Paginator(queryset, per_page, orphans=orphans)
        for number in range(1, django.num_pages + 1):
            assert [b.pk for b in ours.page(number)] == [b.pk for b in django.page(number)]
        assert (ours.count, ours.num_pages) == (django.count, django.num_pages)
        with pytest.raises(EmptyPage):
            first_page_paginator(queryset, per_page, orphans=orphans).page(django.num_pages + 1)
    with pytest.raises(EmptyPage):
        first_page_paginator(Booking.objects.none(), 20, allow_empty_first_page=False).page(1)


CART_QUANTITIES = r"""
import json
from urllib.parse import urlsplit
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from shop.models import Product

call_command("migrate", interactive=False, verbosity=0)
call_command("demo_data", days=1, verbosity=0)
product = Product.objects.filter(is_active=True).order_by("pk").first()
client = Client(HTTP_HOST=urlsplit(settings.SITE_URL).netloc, HTTP_ACCEPT_LANGUAGE="en")
seen = {}

def step(name, url, quantity):
    page = client.post(url, {"quantity": quantity}, follow=True).content.decode()
    seen[name] = {
        "cart": dict(client.session.get("cart", {})),
        "says": [text for text in ("Enter a quantity from 0 to 20.", "Enter a quantity from 1 to 20.", "At most 20 of") if text in page],
    }

add, update = reverse("shop:cart-add", args=[product.pk]), reverse("shop:cart-update", args=[product.pk])
step("add 2", add, "2")
step("update 1e2", update, "1e2")
step("update -1", update, "-1")
step("update 25", update, "25")
step("add 0", add, "0")
step("add 30", add, "30")
step("update 0", update, "0")
print(json.dumps({"product": str(product.pk), "seen": seen}))
"""


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the example runs on its own SQLite file whatever the suite's database")
def test_a_cart_quantity_that_is_not_a_whole_number_changes_nothing_and_says_so(tmp_path):
    # A browser walk: "1e2" in the cart's quantity box removed the line (read as 0), and more than
    # 20 was cut to 20 without a word.
    found = example_shell(tmp_path / "cart.sqlite3", CART_QUANTITIES)
    pk, seen = found["product"], found["seen"]
    assert seen["add 2"] == {"cart": {pk: 2}, "says": []}
    assert seen["update 1e2"] == {"cart": {pk: 2}, "says": ["Enter a quantity from 0 to 20."]}
    assert seen["update -1"] == {"cart": {pk: 2}, "says": ["Enter a quantity from 0 to 20."]}
    assert seen["update 25"] == {"cart": {pk: 20}, "says": ["At most 20 of"]}
    assert seen["add 0"] == {"cart": {pk: 20}, "says": ["Enter a quantity from 1 to 20."]}
    assert seen["add 30"] == {"cart": {pk: 20}, "says": ["At most 20 of"]}
    assert seen["update 0"] == {"cart": {}, "says": []}  # 0 removes the line, as the page says
