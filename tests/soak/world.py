"""A shop and the five emulated PGs on one live server, driven the way buyers, staff, PGs and time do.

Everything the shop sees goes over real HTTP: the checkout view, the return
URL, the cancel form, the attempt beacon and every webhook (the sandbox posts
them to the shop's webhook URLs). What happens in the PG's window (paying,
declining, closing, a virtual account's deposit, a cancel in the PG's
dashboard) is the sandbox's own Python API, as its window and console do it.
:meth:`World.check` then compares the shop's database with the sandbox's
records, the PG's truth, against the invariants of ``DESIGN.md``.

Used by the stateful test (``test_stateful.py``, ``make soak``), the fault
matrix and the regression tests of issue #12.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

#: Every PG the sandbox emulates, by the gateway alias the world gives it.
ALIASES = ("toss", "portone", "portone-v2", "bootpay", "stripe")
#: Read timeout of the shop's calls to the sandbox; a "timeout" fault answers later than this.
READ_TIMEOUT = 1.5
FAULT_DELAY = 2.2
PRICE = Decimal(20000)

_SANDBOX = django_settings.PGPAY_SANDBOX


def gateway_entries(base: str) -> dict:
    """``PGPAY["GATEWAYS"]`` for the five PGs on the sandbox at ``base`` (the live server's URL)."""
    sandbox = base + "/sandbox"
    timeout = (2.0, READ_TIMEOUT)
    portone = _SANDBOX["PORTONE"]
    return {
        "toss": {
            "CLASS": "django_pgpay.gateways.toss.TossGateway",
            "OPTIONS": {
                "CLIENT_KEY": _SANDBOX["TOSS"]["CLIENT_KEYS"][0],
                "SECRET_KEY": _SANDBOX["TOSS"]["SECRET_KEYS"][0],
                "API_BASE": sandbox + "/toss",
                "TIMEOUT": timeout,
            },
        },
        "portone": {
            "CLASS": "django_pgpay.gateways.portone.PortOneV1Gateway",
            "OPTIONS": {
                "IMP_KEY": portone["IMP_KEYS"][0],
                "IMP_SECRET": portone["IMP_SECRETS"][0],
                "MERCHANT_CODE": portone["MERCHANT_CODES"][0],
                "CHANNEL_KEY": "channel-key-00000000-0000-4000-8000-000000000000",
                "API_BASE": sandbox + "/portone",
                "INCLUDE_SANDBOX": True,
                "TIMEOUT": timeout,
            },
        },
        "portone-v2": {
            "CLASS": "django_pgpay.gateways.portone.PortOneV2Gateway",
            "OPTIONS": {
                "API_SECRET": portone["V2_API_SECRETS"][0],
                "STORE_ID": portone["STORE_IDS"][0],
                "CHANNEL_KEY": "channel-key-00000000-0000-4000-8000-000000000000",
                "WEBHOOK_SECRET": portone["V2_WEBHOOK_SECRET"],
                "API_BASE": sandbox + "/portone-v2",
                "INCLUDE_SANDBOX": True,
                "TIMEOUT": timeout,
            },
        },
        "bootpay": {
            "CLASS": "django_pgpay.gateways.bootpay.BootpayGateway",
            "OPTIONS": {
                "CLIENT_KEY": _SANDBOX["BOOTPAY"]["CLIENT_KEYS"][0],
                "SECRET_KEY": _SANDBOX["BOOTPAY"]["SECRET_KEYS"][0],
                "API_BASE": sandbox + "/bootpay/v2",
                "TIMEOUT": timeout,
            },
        },
        "stripe": {
            "CLASS": "django_pgpay.gateways.stripe.StripeGateway",
            "OPTIONS": {
                "SECRET_KEY": _SANDBOX["STRIPE"]["SECRET_KEYS"][0],
                "WEBHOOK_SECRETS": [_SANDBOX["STRIPE"]["WEBHOOK_SECRET"]],
                "API_BASE": sandbox + "/stripe",
                "TIMEOUT": timeout,
            },
        },
    }


def sandbox_settings(base: str) -> dict:
    """``PGPAY_SANDBOX`` with every PG's webhooks posted to the shop on ``base``."""
    hooks = copy.deepcopy(_SANDBOX)
    hooks["TOSS"]["WEBHOOK_URL"] = base + "/pay/toss/webhook/"
    hooks["PORTONE"]["WEBHOOK_URL"] = base + "/pay/portone/webhook/"
    hooks["PORTONE"]["V2_WEBHOOK_URL"] = base + "/pay/portone-v2/webhook/"
    hooks["BOOTPAY"]["WEBHOOK_URL"] = base + "/pay/bootpay/webhook/"
    hooks["STRIPE"]["WEBHOOK_URL"] = base + "/pay/stripe/webhook/"
    hooks["WEBHOOKS"] = {"DELIVERY": "manual"}
    return hooks


def _csrf(session: requests.Session) -> str:
    """The session's CSRF cookie (whatever domain the server set it for)."""
    return next(cookie.value for cookie in session.cookies if cookie.name == "csrftoken")


@dataclass
class Checkout:
    """One checkout of a buyer: the order and what the payment window was given."""

    order_pk: int
    order_number: str
    alias: str
    amount: Decimal
    return_url: str
    attempt_url: str = ""
    stripe_session: str = ""
    #: The checkout token of the start form that was posted (``{% pgpay_checkout_token %}``).
    form_token: str = ""


@dataclass
class Attempt:
    """One try in the PG's window: the PG's payment id and what the browser brings back."""

    alias: str
    order_number: str
    payment_id: str
    query: dict = field(default_factory=dict)
    paid: bool = False
    account: bool = False


class World:
    """The test shop (``tests.testapp``) and the sandbox on ``base``, with ``buyers`` logged-in HTTP sessions."""

    def __init__(self, base: str, settings, *, buyers: int = 3, places: int = 50, queued: bool = False):
        from django.contrib.auth import get_user_model

        from django_pgpay.sandbox import control
        from tests.testapp.models import Restaurant, Seat

        self.base = base
        settings.PGPAY = {
            **settings.PGPAY,
            "GATEWAYS": {**settings.PGPAY["GATEWAYS"], **gateway_entries(base)},
            "IN_FLIGHT_TIMEOUT": 0,
            "CONFIRM_WAIT": 0,
        }
        settings.PGPAY_SANDBOX = sandbox_settings(base)
        settings.SESSION_COOKIE_AGE = 10 * 365 * 24 * 3600  # time travels; the buyers stay logged in
        #: Webhook deliveries and ``pgpay_reconcile --enqueue`` go through django-tasks-db, run by :meth:`run_workers`.
        self.queued = queued
        #: What the queue did in this world: tasks run by the workers, tasks it lost.
        self.queue_counts = {"tasks run": 0, "tasks lost": 0}
        if queued:
            from django_tasks_db.models import DBTaskResult

            settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
            DBTaskResult.objects.all().delete()
        control.reset()
        # Every world starts from an empty shop: a sequence's reconciliation visits only its own orders.
        from django_pgpay.models import ReconcileState, WebhookEvent
        from tests.testapp.models import Booking, BookingTransaction

        BookingTransaction.objects.all().delete()
        Booking.objects.all().delete()
        WebhookEvent.objects.all().delete()
        ReconcileState.objects.all().delete()
        restaurant = Restaurant.objects.create(name="소크 식당", address="서울특별시")
        table = restaurant.table_set.create(price=PRICE)
        self.places = places
        self.seat = Seat.objects.create(table=table, datetime=timezone.now() + datetime.timedelta(days=3), remain=places)
        self.sessions: list[requests.Session] = []
        self.users = []
        user_model = get_user_model()
        suffix = self.seat.pk
        for i in range(buyers):
            user = user_model.objects.create_user(f"soak{suffix}-{i}", password="pw")
            client = Client()
            client.force_login(user)
            session = requests.Session()
            session.cookies.set("sessionid", client.cookies["sessionid"].value)
            session.get(f"{base}/book/{self.seat.pk}/toss/", timeout=30)  # the CSRF cookie, as a browser gets it
            self.sessions.append(session)
            self.users.append(user)
        self.staff = user_model.objects.create_user(f"soak{suffix}-staff", password="pw", is_staff=True, is_superuser=True)
        self.orders: set[int] = set()
        self.lost_beacons: set[str] = set()
        self._travel = None
        self._coordinates = None
        #: A bug in the shop's own gateway code, per alias: how many more deliveries it breaks (:meth:`gateway_bug`).
        self.bugs: Counter = Counter()
        self._patched: list[tuple[type, object]] = []
        self.bug_hits = 0

    def close(self) -> None:
        for cls, original in self._patched:
            cls.verify_webhook = original
        self._patched.clear()
        for session in self.sessions:
            session.close()
        if self._travel is not None:
            self._travel.stop()
            self._travel = None

    # --- the buyer's side -----------------------------------------------------------------

    def checkout(self, buyer: int, alias: str) -> Checkout | None:
        """The buyer books the seat with ``alias``: our checkout view over HTTP. None when sold out."""
        from tests.testapp.models import Booking

        session = self.sessions[buyer]
        token = self._form_token(session, alias)
        for sent in (token, ""):
            response = session.post(
                f"{self.base}/book/{self.seat.pk}/{alias}/?pgpay_checkout=1",
                # A buyer of the world books the seat again on purpose (one who paid for it is asked first).
                data={"csrfmiddlewaretoken": _csrf(session), "pgpay_form": sent, "pgpay_another": "1"},
                headers={"X-CSRFToken": _csrf(session), "Referer": self.base + "/"},
                allow_redirects=False,
                timeout=30,
            )
            # A page loaded within a second of a payment counts as made before it (stale): shown the paid
            # booking, the buyer who means it reloads the page a moment later (here: posts without the token).
            if response.status_code != 409 or "This was paid already" not in response.text:
                break
            token = ""
        if response.status_code == 409:
            return None
        assert response.status_code in (200, 302), (response.status_code, response.text[:500])
        # The buyer's READY order (another PG's, when a payment there is still being confirmed).
        order = Booking.objects.filter(user=self.users[buyer], seat=self.seat, status="READY").order_by("-modified", "-pk").first()
        assert order is not None, "the checkout made no READY order"
        self.orders.add(order.pk)
        alias = order.gateway
        if alias == "stripe":
            location = response.headers["Location"]
            session_id = re.search(r"(cs_test_[A-Za-z0-9_]+)", location).group(1)
            return Checkout(order.pk, order.order_number, alias, order.amount, return_url="", stripe_session=session_id, form_token=token)
        html = response.text
        params = json.loads(re.search(r'<script id="pgpay-[a-z-]+-params" type="application/json">(.*?)</script>', html, re.S).group(1))
        return_url = params.get("successUrl") or params.get("returnUrl") or params.get("return_url")
        return Checkout(
            order.pk,
            order.order_number,
            alias,
            order.amount,
            return_url=return_url,
            attempt_url=params.get("attempt_url", ""),
            form_token=token,
        )

    def _form_token(self, session: requests.Session, alias: str) -> str:
        """The checkout token of the start page, as the browser gets it with the form."""
        page = session.get(f"{self.base}/book/{self.seat.pk}/{alias}/", timeout=30)
        assert page.status_code == 200, page.status_code
        return re.search(r'name="pgpay_form" value="([^"]+)"', page.text).group(1)

    def post_the_form_again(self, buyer: int, checkout: Checkout) -> str | None:
        """The back button after paying: the start form of ``checkout`` posted again, without "another one".

        A violation when it started an order while the buyer holds a paid (partly refunded, awaiting
        deposit) booking of the seat and no READY one to come back to; else None.
        """
        from django_pgpay.status import CANCELABLE_STATUSES
        from tests.testapp.models import Booking

        session = self.sessions[buyer]
        mine = Booking.objects.filter(user=self.users[buyer], seat=self.seat)
        before = set(mine.values_list("pk", flat=True))
        paid = mine.filter(status__in=CANCELABLE_STATUSES).exists()
        ready = mine.filter(status="READY").exists()
        response = session.post(
            f"{self.base}/book/{self.seat.pk}/{checkout.alias}/?pgpay_checkout=1",
            data={"csrfmiddlewaretoken": _csrf(session), "pgpay_form": checkout.form_token},
            headers={"X-CSRFToken": _csrf(session), "Referer": self.base + "/"},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code < 500, (response.status_code, response.text[:500])
        started = set(mine.values_list("pk", flat=True)) - before
        self.orders |= started
        if paid and not ready and started:
            return f"{checkout.order_number}: its form posted again started {len(started)} order(s) of a buyer who has paid"
        return None

    def pay(self, checkout: Checkout, *, outcome: str = "pay", account: bool = False, separately: bool = True) -> Attempt:
        """The buyer goes through the PG's window: ``outcome`` ``pay``, ``decline`` or ``close``; ``account`` for a virtual account."""
        from django_pgpay.sandbox import bootpay, portone, stripe, toss

        number, amount = checkout.order_number, int(checkout.amount)
        origin = self.base
        if checkout.alias == "toss":
            if outcome != "pay":
                return Attempt("toss", number, "", {"code": "PAY_PROCESS_CANCELED", "orderId": number})
            query = toss.authenticate(number, amount, method="VIRTUAL_ACCOUNT" if account else "CARD", origin=origin)
            return Attempt("toss", number, query["paymentKey"], query, paid=False, account=account)
        if checkout.alias == "portone":
            rsp = portone.pay(
                number,
                amount,
                outcome="vbank" if account and outcome == "pay" else outcome,
                notice_url=self.base + "/pay/portone/webhook/",
                origin=origin,
            )
            query = {"imp_uid": rsp.get("imp_uid") or "", "merchant_uid": number}
            if not rsp.get("success", True):
                query.update(error_code=rsp.get("error_code") or "", imp_success="false")
            return Attempt(
                "portone",
                number,
                rsp.get("imp_uid") or "",
                query,
                paid=outcome == "pay" and not account,
                account=account and outcome == "pay",
            )
        if checkout.alias == "portone-v2":
            rsp = portone.v2_pay(
                number,
                amount,
                pay_method="VIRTUAL_ACCOUNT" if account else "CARD",
                outcome=outcome,
                notice_url=self.base + "/pay/portone-v2/webhook/",
                origin=origin,
            )
            query = {"paymentId": number}
            if rsp.get("code"):
                query.update(code=rsp["code"], message=rsp.get("message") or "")
            return Attempt("portone-v2", number, number, query, paid=outcome == "pay" and not account, account=account and outcome == "pay")
        if checkout.alias == "bootpay":
            if outcome != "pay":
                return Attempt("bootpay", number, "", {"event": "cancel", "order_id": number})
            result = bootpay.authenticate(
                number, amount, method="vbank" if account else "card", separately_confirmed=separately, origin=origin
            )
            query = {"event": result["event"], "receipt_id": result["receipt_id"], "order_id": number}
            return Attempt("bootpay", number, result["receipt_id"], query, paid=not separately and not account, account=account)
        if checkout.alias == "stripe":
            card = "4000000000000002" if outcome == "decline" else "4242424242424242"
            if outcome == "close":
                return Attempt("stripe", number, checkout.stripe_session, {"order_id": number, "code": "PAY_PROCESS_CANCELED"})
            result = stripe.pay(checkout.stripe_session, card=card)
            query = dict(parse_qsl(urlsplit(result.get("success_url") or "").query)) if outcome == "pay" else {}
            return Attempt("stripe", number, checkout.stripe_session, query, paid=outcome == "pay")
        raise ValueError(checkout.alias)

    def come_back(self, buyer: int | None, checkout: Checkout, attempt: Attempt) -> requests.Response:
        """The buyer's browser follows the PG back to our return URL (``buyer=None``: another browser, token only)."""
        session = self.sessions[buyer] if buyer is not None else requests.Session()
        if checkout.alias == "stripe":
            query = {**self._token_query(checkout.order_number), "order_id": checkout.order_number, **attempt.query}
            url = f"{self.base}/pay/stripe/{'fail' if 'code' in attempt.query else 'return'}/?" + urlencode(query)
        else:
            separator = "&" if "?" in checkout.return_url else "?"
            url = checkout.return_url + separator + urlencode(attempt.query)
            if "error_code" in attempt.query or "code" in attempt.query or attempt.query.get("event") == "cancel":
                url = url.replace("/return/", "/fail/", 1)
        try:
            return session.get(url, timeout=30)
        finally:
            if buyer is None:
                session.close()

    @staticmethod
    def _token_query(order_number: str) -> dict:
        try:
            from django_pgpay.permissions import BUYER_TOKEN_PARAM, buyer_token
        except ImportError:  # the code before buyer tokens (regression runs against old commits)
            return {}
        return {BUYER_TOKEN_PARAM: buyer_token(order_number)}

    def beacon(self, checkout: Checkout, attempt: Attempt) -> int:
        """The window's report of its payment id (Bootpay's template sends one); returns the HTTP status."""
        if not checkout.attempt_url or not attempt.payment_id:
            self.lost_beacons.add(attempt.payment_id)
            return 0
        response = requests.post(
            checkout.attempt_url, data={"order_id": checkout.order_number, "payment_id": attempt.payment_id}, timeout=30
        )
        return response.status_code

    def buyer_cancel(self, buyer: int, order_number: str, amount: str | None) -> requests.Response:
        """The two steps of the buyer's cancel form (``amount`` None: everything)."""
        session = self.sessions[buyer]
        fields = {
            "token": f"t{timezone.now().timestamp():.6f}".replace(".", ""),
            "csrfmiddlewaretoken": _csrf(session),
            "next": "/history/",
        }
        fields.update({"full": "1"} if amount is None else {"amount": amount})
        url = f"{self.base}/pay/cancel/{order_number}/"
        headers = {"X-CSRFToken": _csrf(session), "Referer": self.base + "/"}
        first = session.post(url, data=fields, headers=headers, allow_redirects=False, timeout=30)
        if first.status_code != 200:
            return first
        return session.post(url, data={**fields, "confirm": "1"}, headers=headers, allow_redirects=False, timeout=30)

    # --- staff, PGs and time -------------------------------------------------------------------

    def staff_cancel(self, order_pk: int, amount) -> None:
        from django_pgpay import payments
        from django_pgpay.exceptions import PgPayError
        from tests.testapp.models import Booking

        order = Booking.objects.get(pk=order_pk)
        try:
            payments.cancel(order, amount, reason="관리자 환불", source="staff", actor=self.staff)
        except PgPayError:
            pass

    def wait_for_the_pg(self, limit: float = FAULT_DELAY + 3) -> None:
        """Until the sandbox has finished every request it is still working on (at most ``limit`` seconds).

        A "timeout" fault keeps its request in flight at the PG for ``FAULT_DELAY`` seconds after
        the shop gave up waiting (``READ_TIMEOUT``); meanwhile the PG answers a repeat of its
        idempotency key with "still processing" (Toss: 409 ``IDEMPOTENT_REQUEST_PROCESSING``), and
        the shop rightly leaves the row unknown. The cron that reconciles later runs after the
        PG has finished: so does the final reconciliation here.
        """
        from django_pgpay.sandbox.models import SandboxIdempotency

        deadline = time.monotonic() + limit
        while SandboxIdempotency.objects.filter(status__isnull=True).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def deliver(self) -> list:
        """The sandbox sends every pending webhook now (faults it was armed with apply)."""
        from django_pgpay.sandbox import control

        control.release_held_webhooks()
        return control.deliver_webhooks()

    def deliver_only(self, event_type: str) -> list:
        """The sandbox sends its pending webhooks of ``event_type`` now, and only those."""
        from django_pgpay.sandbox import control

        ids = [w.pk for w in control.pending_webhooks() if w.event_type == event_type]
        return control.deliver_webhooks(ids) if ids else []

    def gateway_bug(self, alias: str, deliveries: int) -> None:
        """The shop's gateway code for ``alias`` breaks for its next ``deliveries`` deliveries.

        Its ``verify_webhook`` raises ``TypeError``, an error no step of the
        webhook pipeline expects (a bug shipped in a release, not a PG fault):
        each such delivery must be a failed attempt, retried with backoff, at
        most ``webhooks.MAX_ATTEMPTS`` times, and applied once the bug is gone.
        """
        from django_pgpay import conf

        cls = type(conf.get_gateway(alias))
        if all(patched is not cls for patched, _ in self._patched):
            original, world, inside = cls.verify_webhook, self, threading.local()

            def verify_webhook(gateway, parsed, order):
                if not getattr(inside, "now", False) and world.bugs[gateway.alias] > 0:
                    world.bugs[gateway.alias] -= 1
                    world.bug_hits += 1
                    raise TypeError(f"a bug in the shop's {gateway.alias} gateway code (soak)")
                inside.now = True  # a subclass's super() call reaches the original once
                try:
                    return original(gateway, parsed, order)
                finally:
                    inside.now = False

            cls.verify_webhook = verify_webhook
            self._patched.append((cls, original))
        self.bugs[alias] += deliveries

    def fix_bugs(self) -> None:
        """A release without the bug: every delivery from now on is verified as usual."""
        self.bugs.clear()

    def failed_by_bugs(self) -> list:
        """Deliveries left *failed* by a bug that ``pgpay_reconcile`` should still try (within its window and attempts)."""
        from django_pgpay import webhooks
        from django_pgpay.models import WebhookEvent

        return list(
            WebhookEvent.objects.filter(
                status="failed",
                error__startswith="TypeError: a bug",
                attempts__lt=webhooks.MAX_ATTEMPTS,
                received_at__gte=timezone.now() - webhooks.RETRY_WINDOW,
            )
        )

    def pg_cancel(self, attempt: Attempt, amount: int | None = None) -> bool:
        """A cancel in the PG's dashboard (full, or ``amount``). False when the PG refuses it."""
        from django_pgpay.sandbox import bootpay, portone, stripe, toss
        from django_pgpay.sandbox.base import ApiError

        try:
            if attempt.alias == "toss":
                toss.cancel_at_pg(attempt.payment_id, amount)
            elif attempt.alias == "portone":
                portone.cancel_in_console(attempt.payment_id, amount)
            elif attempt.alias == "portone-v2":
                portone.v2_cancel_in_console(attempt.payment_id, amount)
            elif attempt.alias == "bootpay":
                bootpay.cancel_at_pg(attempt.payment_id, amount)
            elif attempt.alias == "stripe":
                intent = stripe.session_state(attempt.payment_id).get("payment_intent")
                if not intent:
                    return False
                stripe.refund_in_dashboard(intent, amount)
        except (ApiError, Exception):  # noqa: BLE001 - a PG that refuses is part of the game
            return False
        return True

    def deposit(self, attempt: Attempt) -> bool:
        from django_pgpay.sandbox import bootpay, portone, toss

        try:
            {"toss": toss.deposit, "portone": portone.deposit, "bootpay": bootpay.deposit}.get(attempt.alias, portone.v2_deposit)(
                attempt.payment_id
            )
        except Exception:  # noqa: BLE001
            return False
        return True

    def reverse_deposit(self, attempt: Attempt) -> bool:
        """Toss's rare DONE -> WAITING_FOR_DEPOSIT (only Toss does it)."""
        from django_pgpay.sandbox import toss

        try:
            toss.revert_deposit(attempt.payment_id)
        except Exception:  # noqa: BLE001
            return False
        return True

    def time_passes(self, *, minutes: int) -> None:
        """Time goes by for everyone at once: the shop, the PGs (the sandbox reads the same clock), signatures.

        The process's clock is moved with time-machine (every thread, the
        live server's included), so the shop's holds, the PGs' deadlines and
        webhook timestamps stay consistent with each other.
        """
        from django_pgpay.sandbox import control

        if self._travel is None:
            import time_machine

            self._travel = time_machine.travel(datetime.datetime.now(datetime.timezone.utc), tick=True)
            self._coordinates = self._travel.start()
        self._coordinates.shift(datetime.timedelta(minutes=minutes))
        control.tick()

    def reconcile(self, *, deep: bool = False, enqueue: bool = False) -> str:
        """``pgpay_reconcile`` (``--deep-since`` with ``deep``, ``--enqueue`` with ``enqueue``), every order due now."""
        from io import StringIO

        from django.core.management import call_command

        from django_pgpay import models

        # Cron runs later: backoffs of failed orders and deliveries are over.
        if hasattr(models, "ReconcileState"):
            models.ReconcileState.objects.update(next_attempt_at=None)
            models.WebhookEvent.objects.filter(status="failed").update(attempted_at=timezone.now() - datetime.timedelta(days=1))
        out, err = StringIO(), StringIO()
        args = (["--deep-since", "30d"] if deep else []) + (["--enqueue"] if enqueue else [])
        call_command("pgpay_reconcile", *args, stdout=out, stderr=err)
        return out.getvalue() + err.getvalue()

    # --- the task queue (queued worlds) ---------------------------------------------------------------

    def run_workers(self, count: int) -> None:
        """``count`` django-tasks-db workers at once, each in a thread with its own connection, until no task is ready.

        The worker of ``manage.py db_worker --batch``: it claims a task under a row lock
        (``SKIP LOCKED``), runs it and records its result, as a worker process does.
        """
        import threading

        from django.db import connections
        from django_tasks_db.management.commands.db_worker import Worker

        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                Worker(
                    queue_names=["default"],
                    interval=0,
                    batch=True,
                    backend_name="default",
                    startup_delay=False,
                    max_tasks=None,
                    worker_id=f"soak-{i}",
                    excluded_queue_names=[],
                ).run()
            except BaseException as exc:  # noqa: BLE001 - raised in the test's thread below
                errors.append(exc)
            finally:
                connections.close_all()

        from django_tasks_db.models import DBTaskResult

        finished = DBTaskResult.objects.finished().count()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        if errors:
            raise errors[0]
        self.queue_counts["tasks run"] += DBTaskResult.objects.finished().count() - finished

    def lose_a_task(self) -> bool:
        """The queue loses one waiting task (a broker restarted without its data, a job dropped). False when none waits."""
        from django_tasks_db.models import DBTaskResult

        waiting = DBTaskResult.objects.ready().order_by("?").first()
        if waiting is None:
            return False
        waiting.delete()
        self.queue_counts["tasks lost"] += 1
        return True

    def reconcile_enqueued(self, *, deep: bool = False) -> str:
        """``pgpay_reconcile --enqueue`` (``--deep-since`` with ``deep``): the command only selects, the workers visit."""
        return self.reconcile(deep=deep, enqueue=True)

    def settle(self) -> None:
        """What the workers have to do, done (tasks deferred to later run now): a queued world's queue is empty after it."""
        if not self.queued:
            return
        from django_tasks_db.models import DBTaskResult, TaskResultStatus

        for _ in range(20):
            waiting = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
            if not waiting.exists():
                return
            # A retry its task deferred to later is due: the workers run it now.
            waiting.update(run_after=timezone.now() - datetime.timedelta(seconds=1))
            self.run_workers(2)
        raise AssertionError("the task queue does not drain: a task keeps enqueueing itself")

    def unprocessed_deliveries(self) -> list:
        """Deliveries still *received*: their task was lost, or it never ran."""
        from django_pgpay.models import WebhookEvent

        return list(WebhookEvent.objects.filter(status="received"))

    # --- the PG's truth ----------------------------------------------------------------------------

    def at_pg(self, order_number: str) -> list[dict]:
        """What each PG holds for ``order_number``: one dict per payment (id, money held, account open?)."""
        from django_pgpay.sandbox.models import SandboxPayment

        found = []
        for row in SandboxPayment.objects.filter(order_id=order_number):
            state, status = row.state, str(row.state.get("status"))
            held, account = 0, False
            if row.pg == "toss":
                if status in ("DONE", "PARTIAL_CANCELED"):
                    held = int(state.get("balanceAmount") or 0)
                account = status == "WAITING_FOR_DEPOSIT"
            elif row.pg == "portone":
                if status == "paid":
                    held = int(Decimal(str(state["amount"])) - Decimal(str(state.get("cancel_amount") or 0)))
                account = status == "ready" and bool(state.get("vbank_num"))
            elif row.pg == "portone-v2":
                if status in ("PAID", "PARTIAL_CANCELLED"):
                    held = int(state["amount"]["total"]) - int(state["amount"].get("cancelled") or 0)
                account = status == "VIRTUAL_ACCOUNT_ISSUED"
            elif row.pg == "bootpay":
                if status in ("1", "20") or state.get("status") in (1, 20):
                    held = int(state.get("price") or 0) - int(state.get("cancelled_price") or 0)
                account = state.get("status") == 5
            elif row.pg == "stripe":
                if row.key.startswith("ch_") and status == "succeeded":
                    held = int(state.get("amount") or 0) - int(state.get("amount_refunded") or 0)
                else:
                    continue
            else:
                continue
            key = state.get("payment_intent") if row.pg == "stripe" else row.key
            found.append({"pg": row.pg, "payment_id": str(key), "held": Decimal(held), "account": account, "status": status})
        return found

    # --- the invariants (DESIGN.md) -----------------------------------------------------------------

    def check(self) -> list[str]:
        """Every invariant of DESIGN.md, on the shop's database and the sandbox's records; the violations."""
        from django_pgpay import ledger
        from django_pgpay.status import OPEN_TRANSACTION_STATUSES, PAID_STATUSES
        from django_pgpay.status import OrderStatus as S
        from django_pgpay.status import TransactionKind as K
        from django_pgpay.status import TransactionStatus as T
        from tests.testapp.models import Booking

        problems: list[str] = []
        holders = 0
        for order in Booking.objects.filter(pk__in=self.orders):
            name = f"{order.gateway} {order.order_number} {order.status}"
            rows = list(order.transactions.all())
            gateway = order.get_gateway()
            if order.status in (S.READY, S.WAITING_FOR_DEPOSIT, S.PAID, S.PARTIAL_CANCELED):
                holders += 1
            if not (0 <= order.canceled_amount <= order.amount):
                problems.append(f"{name}: cancelled {order.canceled_amount} of {order.amount}")
            open_rows = [r for r in rows if r.status in OPEN_TRANSACTION_STATUSES]
            if open_rows:
                problems.append(f"{name}: rows still open after reconciliation: {[(r.kind, r.status) for r in open_rows]}")
            confirms = [r for r in rows if r.kind == K.CONFIRM and r.status == T.SUCCEEDED]
            truth = self.at_pg(order.order_number)
            refs = gateway.payment_references(order.pg_payment_id, order.pg_data) if order.pg_payment_id else set()
            own = [p for p in truth if p["payment_id"] in refs]
            others = [p for p in truth if p["payment_id"] not in refs]
            attention = {r.pg_payment_id for r in rows if r.status == "attention"}
            if order.status in PAID_STATUSES:
                if len(confirms) != 1:
                    problems.append(f"{name}: {len(confirms)} succeeded confirm rows")
                elif confirms[0].amount != order.amount or confirms[0].currency != order.currency:
                    problems.append(f"{name}: confirm row {confirms[0].amount} {confirms[0].currency}")
                # Carried out, or carried out and later failed at the PG (needs attention: owed to the buyer).
                cancelled = sum((r.amount for r in rows if r.kind in (K.CANCEL, K.SYNC) and ledger.counts_as_cancelled(r)), Decimal(0))
                if cancelled != order.canceled_amount:
                    problems.append(f"{name}: ledger cancels {cancelled} != canceled_amount {order.canceled_amount}")
                held = sum((p["held"] for p in own), Decimal(0))
                if held != order.balance:
                    problems.append(f"{name}: the PG holds {held} of the order's payment, the shop counts {order.balance}")
                if (order.status == S.CANCELED) != (order.balance == 0):
                    problems.append(f"{name}: status and balance {order.balance} disagree")
            else:
                if confirms:
                    problems.append(f"{name}: an unpaid order has a succeeded confirm row")
                if order.canceled_amount:
                    problems.append(f"{name}: an unpaid order has cancelled {order.canceled_amount}")
                kept = [p for p in own if p["held"] and p["payment_id"] not in attention]
                if kept:
                    problems.append(f"{name}: money kept at the PG for an unpaid order: {kept}")
            if order.status == S.WAITING_FOR_DEPOSIT:
                waiting = [r for r in rows if r.kind == K.CONFIRM and r.status == "waiting"]
                if len(waiting) != 1 or not any(p["account"] for p in own):
                    problems.append(f"{name}: waiting for a deposit without one waiting confirm row and an open account")
            for payment in others:
                if payment["held"] and payment["payment_id"] not in attention:
                    problems.append(f"{name}: {payment['pg']} {payment['payment_id']} holds {payment['held']} the shop does not count")
                if payment["account"] and payment["payment_id"] not in attention:
                    problems.append(f"{name}: {payment['pg']} {payment['payment_id']} is an open account of another attempt")
            if order.status in (S.FAILED, S.EXPIRED, S.CANCELED) and any(p["account"] for p in own):
                problems.append(f"{name}: the order gave up but its virtual account is still open")
        from django_pgpay import webhooks
        from django_pgpay.models import WebhookEvent

        for event in WebhookEvent.objects.filter(attempts__gt=webhooks.MAX_ATTEMPTS):
            problems.append(f"webhook delivery #{event.pk} ({event.gateway}) was tried {event.attempts} times")
        for event in self.failed_by_bugs():
            problems.append(f"webhook delivery #{event.pk} ({event.gateway}) failed by a bug now fixed was not tried again")
        if self.queued:
            from django_tasks_db.models import DBTaskResult

            for task in DBTaskResult.objects.failed():
                problems.append(f"task {task.task_path}{task.args_kwargs} raised: {task.exception_class_path}: {task.traceback[-500:]}")
            for event in self.unprocessed_deliveries():
                problems.append(f"webhook delivery #{event.pk} ({event.gateway}) was never processed")
        self.seat.refresh_from_db()
        if self.seat.remain != self.places - holders:
            problems.append(f"stock: {self.seat.remain} places left, {self.places - holders} expected (returned twice or never)")
        return problems
