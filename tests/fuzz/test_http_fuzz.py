"""Generated HTTP against every endpoint: no 5xx, and nothing changes that the request had no right to change.

The shop (the test app) and the five emulated PGs run on a live server
(:class:`~tests.soak.world.World`): each PG has a paid order, an order
awaiting payment and (but Stripe) one awaiting the deposit of a virtual
account, all settled with the sandbox first. Then hypothesis generates one
request per example against one of:

* each PG's return and fail URLs (known parameter names, real and made-up ids,
  tampered amounts, NUL, no token, another buyer's session);
* the cancel URL (every role, every content type, unreadable amounts, reasons
  with NUL, the confirmation step) - the order's buyer only with input that
  must be refused;
* every webhook URL (PG-shaped bodies naming real payments with made-up
  claims, random JSON, deep nesting, bytes, NUL, bogus signatures);
* the attempt beacon, the invoice, the checkout (GET, unknown PGs, anonymous;
  a guest's start form with made-up and other buyers' tokens),
  the admin (actions and refunds as staff without permissions; its lists and
  settlement as a superuser, with generated filters, searches and dates, the
  calendar's ends among them);
* the sandbox's control API (without its header, from another site, with
  numbers it cannot use).

After each request: the status is below 500, and a snapshot of the orders,
the ledger, the effective webhook log and the sandbox's payments equals the
one taken before (a delivery may be *stored*, never applied to change money).
The budget is ``PGPAY_FUZZ_EXAMPLES`` (``make fuzz BUDGET=5000``); CI runs at
least 1,000 on PostgreSQL, which refuses NUL where SQLite does not.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.soak.world import ALIASES, World

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="the fuzz suite runs on PostgreSQL (NUL, locks): SQLite shares one connection with the live server",
    ),
]

EXAMPLES = int(os.environ.get("PGPAY_FUZZ_EXAMPLES", "300"))
ARTIFACTS = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts"))
STATS = {"requests": 0, "server_errors": 0, "unintended_changes": 0, "by_endpoint": {}}

#: Text a hostile or confused client sends.
NASTY = [
    "",
    " ",
    ",",
    "\t",
    "\n",
    "\u00a0",
    "\u3000",
    "\x1c",
    "\x00",
    "a\x00b",
    "1,0,0,0",
    "1e3",
    "1e400",
    "-1",
    "0",
    "NaN",
    "inf",
    "９９",
    "99999999999999999999999999",
    "20000",
    "1000",
    "<script>",
    "' OR 1=1 --",
    "../../etc/passwd",
    "ア" * 300,
    "{}",
    "[]",
    "null",
]
TEXT = st.one_of(st.sampled_from(NASTY), st.text(st.characters(exclude_categories=("Cs",)), max_size=40))


def _not_an_int(text: str) -> bool:
    """True when ``int()`` refuses ``text`` (it takes ' 7', '+7', '7_0' and other scripts' digits)."""
    try:
        int(text)
    except ValueError:
        return True
    return False


#: The admin's lists that take actions.
ADMIN_LIST_URLS = (
    "/admin/testapp/booking/",
    "/admin/testapp/cartorder/",
    "/admin/django_pgpay/exportjob/",
    "/admin/django_pgpay/webhookevent/",
)
#: The admin's URLs that name one object, Django's and django-pgpay's own.
ADMIN_OBJECT_URLS = [
    *(
        f"/admin/testapp/booking/{{id}}/{view}/"
        for view in ("change", "history", "delete", "detail", "refund", "reconcile", "invoice", "csv")
    ),
    *(f"/admin/django_pgpay/exportjob/{{id}}/{view}/" for view in ("change", "download", "again")),
    *(f"/admin/django_pgpay/webhookevent/{{id}}/{view}/" for view in ("change", "reprocess")),
]
RETURN_KEYS = [
    "paymentKey",
    "orderId",
    "amount",
    "imp_uid",
    "merchant_uid",
    "paymentId",
    "payment_id",
    "receipt_id",
    "order_id",
    "order_number",
    "event",
    "session_id",
    "code",
    "message",
    "error_code",
    "imp_success",
    "pgpay_t",
]


class Fixture:
    """The world and what the generator may name: order numbers, payment ids, clients per role."""

    def __init__(self, world: World, staff, refund_staff):
        from tests.testapp.models import Booking

        self.world = world
        self.orders: dict[str, dict] = {}
        for alias in ALIASES:
            paid = world.checkout(0, alias)
            attempt = world.pay(paid)
            world.come_back(0, paid, attempt)
            ready = world.checkout(1, alias)
            entry = {"paid": paid.order_number, "paid_id": attempt.payment_id, "ready": ready.order_number}
            if alias != "stripe":
                waiting = world.checkout(2, alias)
                account = world.pay(waiting, account=True, separately=False)
                world.come_back(2, waiting, account)
                entry.update(waiting=waiting.order_number, waiting_id=account.payment_id)
            self.orders[alias] = entry
        world.deliver()
        world.reconcile()
        self.numbers = list(Booking.objects.filter(pk__in=world.orders).values_list("order_number", flat=True))
        self.payment_ids = list(
            Booking.objects.filter(pk__in=world.orders).exclude(pg_payment_id="").values_list("pg_payment_id", flat=True)
        )
        self.owner_of = dict(Booking.objects.filter(pk__in=world.orders).values_list("order_number", "user_id"))
        from django_pgpay.permissions import buyer_token

        self.tokens = [buyer_token(number) for number in self.numbers]
        from django_pgpay import checkout_forms

        # The start forms' tokens the orders recorded, and the "Pay now" tokens of the orders (a guest's
        # post of another buyer's token must not reach that buyer's order).
        recorded = Booking.objects.filter(pk__in=world.orders).values_list("pg_data", flat=True)
        self.form_tokens = [t for data in recorded for t in (data or {}).get(checkout_forms.PG_DATA_KEY, [])]
        self.form_tokens += [checkout_forms.order_token(number) for number in self.numbers]
        self.clients = {"anonymous": Client(raise_request_exception=False)}
        from django.contrib.auth import get_user_model

        superuser = get_user_model().objects.create_superuser(f"fuzz-admin-{world.seat.pk}", password="pw")
        roles = (("buyer", world.users[0]), ("other", world.users[1]), ("staff", staff), ("refund_staff", refund_staff))
        for role, user in (*roles, ("superuser", superuser)):
            client = Client(raise_request_exception=False)
            client.force_login(user)
            self.clients[role] = client
        self.buyer_pk = world.users[0].pk


def snapshot(world: World) -> dict:
    """What a request without rights must not change."""
    from django_pgpay.models import WebhookEvent
    from django_pgpay.sandbox.models import SandboxPayment
    from tests.testapp.models import Booking, BookingTransaction

    orders = sorted(
        Booking.objects.filter(pk__in=world.orders).values_list("pk", "status", "amount", "canceled_amount", "pg_payment_id", "method")
    )
    ledger = sorted(BookingTransaction.objects.values_list("pk", "kind", "status", "amount", "pg_payment_id"))
    applied = WebhookEvent.objects.filter(status="applied").count()
    sandbox = sorted(
        (
            p.pg,
            p.key,
            p.status,
            json.dumps(p.state.get("amount"), default=str),
            str(p.state.get("balanceAmount") or p.state.get("cancel_amount") or p.state.get("cancelled_price") or ""),
        )
        for p in SandboxPayment.objects.filter(pg__in=ALIASES).exclude(status="event")
    )
    return {"orders": orders, "ledger": ledger, "applied": applied, "sandbox": sandbox}


# --- the requests -----------------------------------------------------------------------------


@st.composite
def return_request(draw, fx: Fixture):
    alias = draw(st.sampled_from([*ALIASES, "fake", "nope"]))
    keys = draw(st.lists(st.sampled_from(RETURN_KEYS), max_size=6, unique=True))
    values = st.one_of(TEXT, st.sampled_from(fx.numbers), st.sampled_from(fx.payment_ids), st.sampled_from(fx.tokens), st.just("20000"))
    query = {key: draw(values) for key in keys}
    role = draw(st.sampled_from(["anonymous", "other", "staff", "buyer"]))
    if role == "buyer" and "pgpay_t" in query:
        query.pop("pgpay_t")
    kind = draw(st.sampled_from(["return", "fail"]))
    return role, "GET", f"/pay/{alias}/{kind}/?" + urlencode(query), None, None


#: The model segment of ``cancel/<model>/<number>/`` and ``invoice/<model>/<number>/`` (as
#: ``{% pgpay_cancel_form %}`` and ``{% pgpay_invoice_url %}`` write them): none (the old URL), the
#: right model, another order model, a model that is no order, one that does not exist, or text.
MODEL_SEGMENT = st.one_of(
    st.none(),
    st.sampled_from(["testapp.booking", "TESTAPP.Booking", "testapp.cartorder", "auth.user", "nosuch.model", "testapp"]),
    TEXT.map(lambda t: quote(t, safe="") or "x"),
)


def with_model(draw, number: str) -> str:
    """``number``, or ``<model>/<number>`` with a drawn model segment."""
    model = draw(MODEL_SEGMENT)
    return number if model is None else f"{model}/{number}"


@st.composite
def cancel_request(draw, fx: Fixture):
    number = with_model(draw, draw(st.one_of(st.sampled_from(fx.numbers), TEXT.map(lambda t: quote(t, safe="") or "x"))))
    role = draw(st.sampled_from(["anonymous", "other", "staff", "buyer"]))
    # Each field mostly gets a value that would be accepted, so requests reach the checks behind the first ones.
    likely = {
        "amount": st.sampled_from(["1000", "5,000", "20000", "19999"]),
        "full": st.sampled_from(["1", "on", "true"]),
        "token": st.sampled_from(["t1", "t2", "form-token-1"]),
        "confirm": st.just("1"),
        "reason": st.sampled_from(["고객 요청", "changed my mind"]),
        "next": st.sampled_from(["/history/", "https://evil.example/", "//evil.example"]),
    }
    fields = {}
    for name in draw(st.lists(st.sampled_from(list(likely)), min_size=1, max_size=6, unique=True)):
        fields[name] = draw(st.one_of(likely[name], likely[name], TEXT))
    if role == "buyer":
        # The buyer's own cancels are allowed: only input that must be refused is generated.
        fields["amount"] = draw(
            st.sampled_from([",", " ", "\u00a0", "\u3000", "1,0,0,0", "1e3", "-1", "0", "\x00", "abc", "20001", "12.5"])
        )
        fields.pop("full", None)
    content_type = draw(st.sampled_from(["form", "form", "multipart", "json", "text/plain", "application/xml"]))
    if content_type == "form":
        return role, "POST", f"/pay/cancel/{number}/", urlencode(fields), "application/x-www-form-urlencoded"
    if content_type == "multipart":
        return role, "POST", f"/pay/cancel/{number}/", {k: v.replace("\x00", "") for k, v in fields.items()}, None
    body = json.dumps(fields) if content_type == "json" else "&".join(f"{k}={v}" for k, v in fields.items())
    return role, "POST", f"/pay/cancel/{number}/", body, content_type if content_type != "json" else "application/json"


def _pg_shaped(draw, fx: Fixture, alias: str) -> dict:
    entry = fx.orders.get(alias) or fx.orders["toss"]
    number = draw(
        st.sampled_from([entry["paid"], entry["ready"], entry.get("waiting", entry["ready"]), *fx.numbers[:3], "NO_SUCH_ORDER_1"])
    )
    payment = draw(st.sampled_from([entry["paid_id"], entry.get("waiting_id", ""), "made_up_id", *fx.payment_ids[:3]]))
    if alias == "toss":
        status = draw(
            st.sampled_from(["DONE", "CANCELED", "PARTIAL_CANCELED", "WAITING_FOR_DEPOSIT", "ABORTED", "EXPIRED", "IN_PROGRESS", ""])
        )
        if draw(st.booleans()):
            return {"createdAt": "2024-06-11T17:30:00.000000", "secret": draw(TEXT), "status": status, "orderId": number}
        return {
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": "2024-06-11T15:14:43.000000",
            "data": {"paymentKey": payment, "orderId": number, "status": status, "totalAmount": draw(st.integers(-5, 10**7))},
        }
    if alias == "portone":
        return {
            "imp_uid": payment,
            "merchant_uid": number,
            "status": draw(st.sampled_from(["paid", "ready", "cancelled", "failed", ""])),
            **({"cancellation_id": draw(TEXT)} if draw(st.booleans()) else {}),
        }
    if alias == "bootpay":
        return {
            "receipt_id": payment,
            "order_id": number,
            "status": draw(st.sampled_from([0, 1, 2, 5, 20, -1, "1", None])),
            "webhook_type": draw(
                st.sampled_from(
                    ["PAYMENT_COMPLETED", "PAYMENT_CANCELLED", "PAYMENT_PARTIAL_CANCELLED", "PAYMENT_VIRTUAL_ACCOUNT_ISSUED", "X"]
                )
            ),
            "price": 20000,
            "cancelled_price": draw(st.integers(0, 30000)),
        }
    if alias == "stripe":
        return {
            "id": "evt_" + draw(TEXT),
            "type": draw(st.sampled_from(["checkout.session.completed", "charge.refunded", "checkout.session.expired"])),
            "data": {
                "object": {
                    "object": "checkout.session",
                    "id": payment,
                    "client_reference_id": number,
                    "status": "complete",
                    "payment_status": "paid",
                    "amount_total": 20000,
                    "currency": "krw",
                }
            },
        }
    return {
        "type": "Transaction.Paid",
        "timestamp": "2024-06-11T00:00:00Z",
        "data": {"paymentId": number, "storeId": "store", "transactionId": payment},
    }


def _deep(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


@st.composite
def webhook_request(draw, fx: Fixture):
    alias = draw(st.sampled_from([*ALIASES, "fake"]))
    kind = draw(st.sampled_from(["shaped", "shaped", "shaped", "json", "bytes", "deep", "nul"]))
    if kind == "shaped":
        body = json.dumps(_pg_shaped(draw, fx, alias), ensure_ascii=draw(st.booleans())).encode()
    elif kind == "json":
        body = json.dumps(
            draw(
                st.recursive(
                    st.none() | st.booleans() | st.integers() | TEXT,
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXT, c, max_size=3),
                    max_leaves=8,
                )
            )
        ).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "deep":
        body = _deep(draw(st.integers(40, 20000)))
    else:
        body = (
            json.dumps(_pg_shaped(draw, fx, alias)).encode().replace(b'"', b'"\x00', 1)
            if draw(st.booleans())
            else b'{"imp_uid": "a\\u0000b", "merchant_uid": "x"}'
        )
    headers = {}
    if draw(st.booleans()):
        headers["HTTP_STRIPE_SIGNATURE"] = "t=" + str(int(time.time())) + ",v1=" + draw(st.text("0123456789abcdef", max_size=64))
    if draw(st.booleans()):
        headers.update(
            HTTP_WEBHOOK_ID=draw(TEXT).replace("\n", ""),
            HTTP_WEBHOOK_TIMESTAMP=str(int(time.time())),
            HTTP_WEBHOOK_SIGNATURE="v1," + draw(st.text("ABCDEFabcdef0123456789+/=", max_size=44)),
        )
    if draw(st.integers(0, 9)) == 0:
        headers["HTTP_X_EVIL"] = "a\x00b"
    content_type = draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]))
    return "anonymous", "POST", f"/pay/{alias}/webhook/", (body, headers), content_type


OTHER_KINDS = ("attempt", "invoice", "checkout", "guest checkout", "admin", "admin id", "admin query", "control")
#: Checkout tokens of the library's shapes (``t<ms>_<24 hex>``, ``o<32 hex>``), the calendar's ends among them.
HEX = "0123456789abcdef"
SHAPED_TOKENS = st.one_of(
    st.builds(lambda ms, tail: f"t{ms:x}_{tail}", st.integers(0, 16**12 - 1), st.text(HEX, min_size=24, max_size=24)),
    st.text(HEX, min_size=32, max_size=32).map(lambda h: "o" + h),
)
#: The admin's pages that read their query (lists: filters, search, paging, ordering; the
#: settlement), each with the parameters it reads.
_LIST_KEYS = ["status__exact", "attention", "gateway", "q", "o", "p", "_facets", "all"]
_ORDER_DATES = ["created__range__gte", "created__range__lte", "paid_at__range__gte", "paid_at__range__lte"]
ADMIN_QUERY_PAGES = {
    "/admin/testapp/booking/": (_ORDER_DATES, _LIST_KEYS),
    "/admin/testapp/cartorder/": (_ORDER_DATES, _LIST_KEYS),
    "/admin/testapp/booking/settlement/": (["since", "until"], ["gateway", "model", "format"]),
    "/admin/django_pgpay/exportjob/": ([], ["q", "o", "p", "state__exact", "kind__exact"]),
    "/admin/django_pgpay/webhookevent/": ([], ["q", "o", "p", "status__exact", "gateway"]),
}
#: Days, the calendar's ends among them (9999-12-31's next midnight does not exist: it was a 500).
DAYS = st.one_of(st.dates().map(lambda d: d.isoformat()), st.sampled_from(["0001-01-01", "9999-12-31", "1900-01-01", "9998-12-31"]))


@st.composite
def other_request(draw, fx: Fixture, kind: str | None = None):
    """A request to one of the other endpoints (``kind``: one of :data:`OTHER_KINDS`, or any)."""
    choice = kind or draw(st.sampled_from(OTHER_KINDS))
    number = draw(st.sampled_from(fx.numbers))
    if choice == "attempt":
        alias = draw(st.sampled_from([*ALIASES, "nope"]))
        fields = {"order_id": draw(st.one_of(st.just(number), TEXT)), "payment_id": draw(TEXT)}
        query = {"pgpay_t": draw(TEXT)} if draw(st.booleans()) else {}
        return (
            draw(st.sampled_from(["anonymous", "other", "staff"])),
            "POST",
            f"/pay/{alias}/attempt/?" + urlencode(query),
            urlencode(fields),
            "application/x-www-form-urlencoded",
        )
    if choice == "invoice":
        return (
            draw(st.sampled_from(["anonymous", "other", "staff", "buyer"])),
            "GET",
            f"/pay/invoice/{with_model(draw, draw(st.one_of(st.just(number), TEXT.map(lambda t: quote(t, safe='') or 'x'))))}/",
            None,
            None,
        )
    if choice == "checkout":
        role = draw(st.sampled_from(["anonymous", "other", "buyer"]))
        method = "GET" if role != "anonymous" else draw(st.sampled_from(["GET", "POST"]))
        alias = draw(st.sampled_from([*ALIASES, "nope", "x" * 70]))
        return role, method, f"/book/{fx.world.seat.pk}/{alias}/", None, None
    if choice == "guest checkout":
        # A buyer without an account (the test app's allow_anonymous view) posts a start form with
        # generated fields: made-up tokens of the library's shapes, other buyers' recorded tokens,
        # junk. It may book a place of its own (a new READY order); it must never reach another
        # buyer's order (the snapshot), and never be a 500. Not Stripe: its checkout writes to the PG.
        alias = draw(st.sampled_from(["toss", "portone", "portone-v2", "bootpay", "nope"]))
        fields = {
            "pgpay_form": draw(st.one_of(SHAPED_TOKENS, st.sampled_from(fx.form_tokens), TEXT)),
            "pgpay_another": draw(st.one_of(st.just("1"), TEXT)),
            "gateway": draw(TEXT),
        }
        fields = {key: value for key, value in fields.items() if draw(st.booleans()) or key == "pgpay_form"}
        return "anonymous", "POST", f"/guest/{fx.world.seat.pk}/{alias}/?pgpay_checkout=1", fields, None
    if choice == "admin":
        from tests.testapp.models import Booking

        pk = Booking.objects.get(order_number=number).pk
        action = draw(st.sampled_from(["refund_in_full", "export_csv", "invoice_pdf", "delete_selected", draw(TEXT)]))
        path = draw(
            st.sampled_from(
                [
                    "/admin/testapp/booking/",
                    f"/admin/testapp/booking/{pk}/refund/",
                    f"/admin/testapp/booking/{pk}/detail/",
                    f"/admin/testapp/booking/{pk}/change/",
                ]
            )
        )
        fields = {
            "action": action,
            "_selected_action": [str(pk)],
            "post": "yes",
            "reason": draw(TEXT),
            "amount": draw(TEXT),
            "token": "tok1",
            "index": "0",
        }
        return "staff", draw(st.sampled_from(["GET", "POST"])), path, fields, None
    if choice == "admin id":
        # Every admin URL that names an object, as a superuser, with an id that names none: a 404 or a
        # redirect, never a 500 (the export job pages answered 'abc' with one).
        object_id = draw(
            st.one_of(
                TEXT.filter(lambda t: not t.strip().isdigit()).map(lambda t: quote(t, safe="") or "x"),
                st.integers(min_value=10**12, max_value=10**30).map(str),
                st.integers(max_value=-1).map(str),
            )
        )
        if draw(st.booleans()):
            # A list's action with selected ids that name nothing ('abc' was a 500 in Django's own code).
            path = draw(st.sampled_from(ADMIN_LIST_URLS))
            fields = {
                "action": draw(st.sampled_from(["refund_in_full", "export_csv", "invoice_pdf", "delete_selected", "reprocess"])),
                "_selected_action": draw(st.lists(st.one_of(st.just(object_id), TEXT.filter(_not_an_int)), min_size=1, max_size=3)),
                "post": "yes",
                "index": "0",
            }
            return "superuser", "POST", path, fields, None
        path = draw(st.sampled_from(ADMIN_OBJECT_URLS)).format(id=object_id)
        return "superuser", draw(st.sampled_from(["GET", "POST"])), path, {"amount": "1000", "reason": "x", "token": "t"}, None
    if choice == "admin query":
        # The admin's lists and settlement as a superuser (who may see everything), with generated
        # filters, dates, searches, pages and orderings: a page, a form error or the admin's ?e=1.
        page = draw(st.sampled_from(sorted(ADMIN_QUERY_PAGES)))
        dates, others = ADMIN_QUERY_PAGES[page]
        chosen = draw(st.lists(st.sampled_from(dates), max_size=2, unique=True)) if dates else []
        query = {key: draw(st.one_of(DAYS, DAYS, TEXT)) for key in chosen}
        query.update({key: draw(st.one_of(TEXT, DAYS)) for key in draw(st.lists(st.sampled_from(others), max_size=3, unique=True))})
        return "superuser", "GET", page + "?" + urlencode(query), None, None
    endpoint = draw(st.sampled_from(["reset", "clock", "faults", "tick", "webhooks/deliver", "toss/cancel", "toss/deposit"]))
    body = json.dumps(
        {
            "advance": draw(st.one_of(st.integers(), TEXT)),
            "offset": draw(TEXT),
            "pg": "toss",
            "operation": "confirm",
            "kind": "timeout_after",
            "params": {"delay": draw(TEXT)},
            "payment_key": draw(TEXT),
            "amount": draw(TEXT),
        }
    )
    header = draw(
        st.sampled_from(
            [
                {},
                {"HTTP_ORIGIN": "https://evil.example", "HTTP_X_SANDBOX_CONTROL": "1"},
                {"HTTP_X_SANDBOX_TOKEN": draw(TEXT).replace("\n", "")},
            ]
        )
    )
    return "anonymous", "POST", f"/sandbox/control/{endpoint}", (body.encode(), header), "application/json"


def every_endpoint(fx: Fixture):
    """Requests to every endpoint family, the money ones (return, cancel, webhook, admin refund) twice as often.

    Each family is a branch of its own: with one branch for all the others, the
    rarer ones (the admin's object URLs) got a few requests in a thousand.
    """
    money = [return_request(fx), cancel_request(fx), webhook_request(fx), other_request(fx, "admin")]
    rest = [other_request(fx, kind) for kind in OTHER_KINDS if kind != "admin"]
    return st.one_of(*money, *money, *rest)


def endpoint_of(path: str) -> str:
    """The route a generated path hit, for the summary (``pay/<alias>/webhook``, ``pay/cancel/<order>`` ...)."""
    parts = path.split("?")[0].strip("/").split("/")
    if parts[:2] in (["pay", "cancel"], ["pay", "invoice"]):
        return "/".join(parts[:2]) + "/<order>"
    if parts[0] == "admin":
        return "admin/" + ("<action>" if len(parts) == 3 else parts[-1])
    if parts[0] in ("book", "guest"):
        return f"{parts[0]}/<seat>/<alias>"
    return "/".join(parts[:3])


def send(fx: Fixture, request) -> int:
    role, method, path, data, content_type = request
    client = fx.clients[role]
    extra = {}
    if isinstance(data, tuple):
        data, extra = data
    if method == "GET":
        return client.get(path, **extra).status_code
    if content_type is None:
        return client.post(path, data=data or {}, **extra).status_code
    return client.post(path, data=data if data is not None else b"", content_type=content_type, **extra).status_code


def test_generated_requests_answer_below_500_and_change_nothing(world, staff, refund_staff):
    fx = Fixture(world, staff, refund_staff)
    requests_ = every_endpoint(fx)
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(request=requests_)
    def probe(request):
        before = snapshot(world)
        status = send(fx, request)
        STATS["requests"] += 1
        STATS["by_endpoint"][endpoint_of(request[2])] = STATS["by_endpoint"].get(endpoint_of(request[2]), 0) + 1
        if status >= 500:
            STATS["server_errors"] += 1
        after = snapshot(world)
        if after != before:
            STATS["unintended_changes"] += 1
        assert status < 500, (status, request)
        assert after == before, ("changed", request, {k: (before[k], after[k]) for k in before if before[k] != after[k]})

    try:
        probe()
    finally:
        summary = {**STATS, "seconds": round(time.monotonic() - started, 1), "examples": EXAMPLES}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "fuzz-summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        print(
            f"\nfuzz: {summary['requests']} requests, {summary['server_errors']} server errors, {summary['unintended_changes']} unintended changes in {summary['seconds']} s"
        )


def test_generated_webhooks_through_a_task_queue_change_nothing(world, staff, refund_staff, settings):
    """The queued webhook path: the view stores, screens and enqueues; a worker applies. Nothing changes, nothing raises.

    The deliveries are the generated ones above (a quarter of the budget), answered by the
    view with a queueing backend (django-tasks-db on the test's database); a worker then
    runs what was queued, processing the stored copy rather than the bytes that came in.
    """
    pytest.importorskip("django_tasks_db", reason="the queued webhook path runs through django-tasks-db")
    from django_tasks_db.models import DBTaskResult

    fx = Fixture(world, staff, refund_staff)  # its orders paid and their webhooks applied inline, first
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    DBTaskResult.objects.all().delete()
    counts = {"requests": 0, "queued": 0, "server_errors": 0, "unintended_changes": 0, "tasks raised": 0}
    started = time.monotonic()

    @settings_for(max(1, EXAMPLES // 4))
    @given(request=webhook_request(fx))
    def probe(request):
        before = snapshot(world)
        queued = DBTaskResult.objects.count()
        status = send(fx, request)
        counts["requests"] += 1
        counts["queued"] += DBTaskResult.objects.count() - queued
        world.run_workers(1)
        failed = [f"{t.exception_class_path}: {t.traceback[-800:]}" for t in DBTaskResult.objects.failed()]
        after = snapshot(world)
        counts["server_errors"] += status >= 500
        counts["unintended_changes"] += after != before
        counts["tasks raised"] += len(failed)
        assert status < 500, (status, request)
        assert not failed, failed
        assert after == before, ("changed", request, {k: (before[k], after[k]) for k in before if before[k] != after[k]})

    try:
        probe()
    finally:
        summary = {**counts, "seconds": round(time.monotonic() - started, 1)}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "fuzz-queued-summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        print(f"\nfuzz (queued webhooks): {summary}")


def settings_for(examples: int):
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
