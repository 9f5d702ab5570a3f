"""Stripe test support: settings for a ``stripe`` gateway and a small Stripe server behind ``responses``.

:class:`StripeAPI` keeps Checkout Sessions, PaymentIntents, Charges and
Refunds and answers the calls of ``docs/stripe.rst`` (and
``/work/shared/gateways/stripe.md``) the way Stripe does, with objects built
from the recorded ones in ``tests/fixtures/stripe/``: form-encoded requests,
``expand[]``, Stripe's error objects, and its idempotency (the first answer
to a key is replayed with ``Idempotent-Replayed: true``; the same key with
other parameters is an ``idempotency_error``). ``fail_next()`` injects error
replies and lost answers; :meth:`StripeAPI.event` signs events with the
official ``stripe`` library. Every request stays in ``api.requests``.

Loaded as a pytest plugin by ``tests/conftest.py``; test modules import only its names.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
BASE = "https://api.stripe.com"
#: Placeholders shaped like Stripe test keys; not keys of any account.
SECRET_KEY = "sk_test_pgpayTestsOnly0000NotAKey"
PUBLISHABLE_KEY = "pk_test_pgpayTestsOnly0000NotAKey"
WEBHOOK_SECRET = "whsec_pgpayTestsOnly0000NotASecret"
OLD_WEBHOOK_SECRET = "whsec_pgpayTestsOnly0000RotatedOut"
AUTH = f"Bearer {SECRET_KEY}"
FORM = "application/x-www-form-urlencoded"
STRIPE = {
    "CLASS": "django_pgpay.gateways.stripe.StripeGateway",
    "OPTIONS": {
        "SECRET_KEY": SECRET_KEY,
        "PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "WEBHOOK_SECRETS": [WEBHOOK_SECRET],
        "TIMEOUT": (1, 2),
    },
}
TIMEOUT = requests.exceptions.ReadTimeout("Stripe did not answer in time")

__all__ = [
    "AUTH",
    "BASE",
    "FORM",
    "OLD_WEBHOOK_SECRET",
    "PUBLISHABLE_KEY",
    "SECRET_KEY",
    "TIMEOUT",
    "WEBHOOK_SECRET",
    "StripeAPI",
    "decode_form",
    "fixture",
    "signed",
    "stripe",
    "stripe_api",
    "stripe_booking",
]


def fixture(name: str) -> dict:
    """A recorded Stripe object from ``tests/fixtures/stripe/<name>.json``."""
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))


def decode_form(text: str) -> dict:
    """Stripe's bracketed form (``a[b][0][c]=1``) back into nested dicts and lists."""
    root: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = key.replace("]", "").split("[")  # a[b][0][] -> a, b, 0, ""
        node = root
        for part, following in zip(parts, parts[1:] + [None]):
            if following is None:
                if isinstance(node, list):
                    node.append(value)
                else:
                    node[part] = value
                break
            container = [] if (following == "" or following.isdigit()) else {}
            if isinstance(node, list):
                index = len(node) if part == "" else int(part)
                while len(node) <= index:
                    node.append(copy.deepcopy(container))
                node = node[index]
            else:
                node = node.setdefault(part, container)
    return root


def signed(payload: dict | bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    """``(body, Stripe-Signature)`` as Stripe sends them, signed by the official ``stripe`` library."""
    import stripe as stripe_sdk

    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode("utf-8")
    header = stripe_sdk.WebhookSignature.generate_signature_header(body.decode("utf-8"), secret, timestamp=timestamp)
    return body, header


@pytest.fixture
def stripe(settings):
    """A ``stripe`` gateway (test keys) beside the fake one."""
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "stripe": copy.deepcopy(STRIPE)}}
    from django_pgpay.conf import get_gateway

    return get_gateway("stripe")


@pytest.fixture
def stripe_api(stripe):
    """The mocked Stripe server; a request it does not know fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield StripeAPI(rsps)


@pytest.fixture
def stripe_booking(make_booking, stripe):
    """A READY booking paying through Stripe."""

    def make(**fields):
        return make_booking(gateway="stripe", **fields)

    return make


@dataclass
class Fault:
    status: int = 0
    code: str = ""
    exception: BaseException | None = None
    #: Raise ``exception`` only after Stripe acted (the answer is lost on the way back).
    after: bool = False


def _id(prefix: str) -> str:
    return f"{prefix}_test_{uuid.uuid4().hex[:24]}" if prefix == "cs" else f"{prefix}_3T{uuid.uuid4().hex[:22]}"


class StripeAPI:
    """A stateful stand-in for Stripe's v1 API, registered on a ``responses`` mock.

    Verbs for :meth:`fail_next` and :meth:`sent`: ``create`` (POST a Checkout
    Session), ``session`` (GET one), ``expire``, ``intent`` (GET a
    PaymentIntent), ``search``, ``refund`` (POST) and ``refunds`` (GET the list).
    """

    def __init__(self, rsps: responses.RequestsMock, base: str = BASE):
        self.rsps = rsps
        self.base = base
        self.lock = threading.RLock()
        self.sessions: dict[str, dict] = {}
        self.intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.keys: dict[str, tuple[tuple, int, dict]] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.errors = fixture("errors")
        self.now = int(time.time())
        b = re.escape(base)
        q = r"(?:\?.*)?$"
        rsps.add_callback(responses.POST, re.compile(rf"{b}/v1/checkout/sessions$"), callback=self._create)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/v1/checkout/sessions/([^/?]+)/expire$"), callback=self._expire)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/v1/checkout/sessions/([^/?]+){q}"), callback=self._get_session)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/v1/payment_intents/search{q}"), callback=self._search)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/v1/payment_intents/([^/?]+){q}"), callback=self._get_intent)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/v1/refunds$"), callback=self._refund)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/v1/refunds{q}"), callback=self._list_refunds)

    # --- what the buyer, the bank and the shop's staff do ----------------------

    def pay(self, session_id: str, *, delayed: bool = False) -> str:
        """The buyer pays on the hosted page: a PaymentIntent and Charge; the Session completes."""
        with self.lock:
            session = self.sessions[session_id]
            assert session["status"] == "open", session["status"]
            intent_id, charge_id = _id("pi"), _id("ch")
            order_id = session["metadata"].get("order_id")
            intent = copy.deepcopy(fixture("payment_intent"))
            intent.update(
                id=intent_id,
                amount=session["amount_total"],
                amount_received=0 if delayed else session["amount_total"],
                currency=session["currency"],
                created=self.tick(),
                latest_charge=None if delayed else charge_id,
                metadata=dict(session.get("_intent_metadata") or {}),
                status="processing" if delayed else "succeeded",
                client_secret=f"{intent_id}_secret_{uuid.uuid4().hex[:12]}",
            )
            self.intents[intent_id] = intent
            if not delayed:
                self._charge(intent, charge_id)
            session.update(status="complete", payment_status="unpaid" if delayed else "paid", payment_intent=intent_id)
            session["customer_details"] = {"email": session.get("customer_email"), "name": "Park Stripe", "address": {"country": "KR"}}
            assert order_id is None or intent["metadata"].get("order_id") == order_id
            return intent_id

    def _charge(self, intent: dict, charge_id: str | None = None) -> dict:
        charge = copy.deepcopy(fixture("charge"))
        charge.update(
            id=charge_id or _id("ch"),
            amount=intent["amount"],
            amount_captured=intent["amount"],
            currency=intent["currency"],
            created=self.tick(),
            metadata=dict(intent["metadata"]),
            payment_intent=intent["id"],
        )
        charge["payment_method_details"]["card"]["amount_authorized"] = intent["amount"]
        self.charges[charge["id"]] = charge
        intent.update(latest_charge=charge["id"], amount_received=intent["amount"], status="succeeded")
        return charge

    def settle_delayed(self, session_id: str, *, succeed: bool = True) -> None:
        """A delayed payment method (a bank debit) succeeds or fails days later."""
        with self.lock:
            session = self.sessions[session_id]
            intent = self.intents[session["payment_intent"]]
            assert intent["status"] == "processing"
            if succeed:
                self._charge(intent)
                session["payment_status"] = "paid"
            else:
                intent.update(
                    status="requires_payment_method",
                    last_payment_error={
                        "type": "invalid_request_error",
                        "code": "payment_intent_payment_attempt_failed",
                        "message": "The payment failed.",
                    },
                )

    def time_out(self, session_id: str) -> None:
        """Stripe expires an open Session whose ``expires_at`` passed."""
        with self.lock:
            assert self.sessions[session_id]["status"] == "open"
            self.sessions[session_id].update(status="expired")

    def refund_in_dashboard(self, intent_id: str, amount: int | None = None) -> dict:
        """The shop's staff refund in the Stripe Dashboard (no metadata of ours)."""
        with self.lock:
            return self._make_refund(self.intents[intent_id], amount, {})

    def fail_next(self, verb: str, code: str = "", *, status: int = 0, exception: BaseException | None = None, after: bool = False):
        """The next ``verb`` call gets Stripe's ``code`` error, or raises ``exception`` (before or ``after`` acting)."""
        if code and not status:
            status = self.errors[code]["status"]
        self.faults.setdefault(verb, []).append(Fault(status=status, code=code, exception=exception, after=after))

    def tick(self) -> int:
        self.now += 1
        return self.now

    def session_of(self, order) -> dict:
        found = [s for s in self.sessions.values() if s["client_reference_id"] == order.order_number]
        assert found, f"no Checkout Session for {order.order_number}"
        return found[-1]

    # --- events -------------------------------------------------------------------

    def event(self, event_type: str, obj: dict, **sign) -> tuple[bytes, str]:
        """``(body, Stripe-Signature)`` of an event about ``obj`` as it stands (ids not expanded)."""
        envelope = copy.deepcopy(fixture("event"))
        envelope.update(id=f"evt_{uuid.uuid4().hex[:24]}", created=self.tick(), type=event_type)
        envelope["data"] = {"object": self.public(obj)}
        return signed(envelope, **sign)

    # --- requests seen --------------------------------------------------------------

    @property
    def requests(self) -> list:
        return [call.request for call in self.rsps.calls]

    def sent(self, verb: str) -> list:
        return [r for r in self.requests if self._verb(r) == verb]

    @staticmethod
    def _verb(request) -> str:
        path = urlsplit(request.url).path
        if path == "/v1/checkout/sessions":
            return "create"
        if path.endswith("/expire"):
            return "expire"
        if path.startswith("/v1/checkout/sessions/"):
            return "session"
        if path == "/v1/payment_intents/search":
            return "search"
        if path.startswith("/v1/payment_intents/"):
            return "intent"
        if path == "/v1/refunds":
            return "refund" if request.method == "POST" else "refunds"
        return "?"

    # --- the server -------------------------------------------------------------------

    @staticmethod
    def public(obj: dict) -> dict:
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}

    def _reply(self, status: int, body: dict, headers: dict | None = None):
        return (
            status,
            {"Content-Type": "application/json", "Request-Id": f"req_{uuid.uuid4().hex[:14]}", **(headers or {})},
            json.dumps(body, ensure_ascii=False),
        )

    def _error(self, code: str, status: int | None = None):
        spec = self.errors[code]
        return (status or spec["status"]), {"error": copy.deepcopy(spec["error"])}

    def _handle(self, verb: str, request, act):
        """Auth, faults and (for POSTs) Stripe's idempotency around ``act(params) -> (status, body)``."""
        if request.headers.get("Authorization") != AUTH:
            return self._reply(*self._error("invalid_api_key"))
        if request.method == "POST":
            assert request.headers.get("Content-Type") == FORM, request.headers.get("Content-Type")
            params = decode_form(request.body.decode() if isinstance(request.body, bytes) else (request.body or ""))
        else:
            params = decode_form(urlsplit(request.url).query)
        with self.lock:
            key = request.headers.get("Idempotency-Key", "") if request.method == "POST" else ""
            fingerprint = (urlsplit(request.url).path, json.dumps(params, sort_keys=True))
            if key and key in self.keys:
                seen, status, body = self.keys[key]
                if seen != fingerprint:
                    return self._reply(*self._error("idempotency_error"))
                return self._reply(status, body, {"Idempotent-Replayed": "true"})
            queue = self.faults.get(verb) or []
            fault = queue.pop(0) if queue else None
            if fault and fault.exception is not None and not fault.after:
                raise fault.exception
            if fault and fault.code:
                status, body = self._error(fault.code, fault.status)
            else:
                status, body = act(params)
            if key:
                self.keys[key] = (fingerprint, status, body)
            if fault and fault.exception is not None:
                raise fault.exception
            return self._reply(status, body)

    def _expanded_session(self, session: dict, expand: list) -> dict:
        out = self.public(session)
        if "payment_intent" in expand and out.get("payment_intent"):
            out["payment_intent"] = self._expanded_intent(
                self.intents[out["payment_intent"]], ["latest_charge"] if "payment_intent.latest_charge" in expand else []
            )
        return out

    def _expanded_intent(self, intent: dict, expand: list) -> dict:
        out = self.public(intent)
        if "latest_charge" in expand and out.get("latest_charge"):
            charge = self.public(self.charges[out["latest_charge"]])
            out["latest_charge"] = charge
        return out

    def _create(self, request):
        def act(p):
            for name in ("mode", "success_url", "cancel_url", "line_items"):
                if name not in p:
                    return 400, {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "parameter_missing",
                            "param": name,
                            "message": f"Missing required param: {name}.",
                        }
                    }
            if "{CHECKOUT_SESSION_ID}" not in p["success_url"]:
                return 400, {"error": {"type": "invalid_request_error", "message": "success_url has no {CHECKOUT_SESSION_ID}"}}
            currency, total = None, 0
            for item in p["line_items"]:
                price = item["price_data"]
                if not price["unit_amount"].isdigit():
                    return self._error("parameter_invalid_integer")
                currency = currency or price["currency"]
                assert price["currency"] == currency and price["product_data"]["name"]
                total += int(price["unit_amount"]) * int(item.get("quantity", "1"))
            expires_at = int(p.get("expires_at") or self.now + 86400)
            if not 1800 <= expires_at - self.now <= 86400:
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "param": "expires_at",
                        "message": "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                    }
                }
            session = copy.deepcopy(fixture("checkout_session"))
            session_id = _id("cs")
            session.update(
                id=session_id,
                amount_subtotal=total,
                amount_total=total,
                currency=currency,
                cancel_url=p["cancel_url"],
                success_url=p["success_url"],
                client_reference_id=p.get("client_reference_id"),
                created=self.tick(),
                customer_email=p.get("customer_email"),
                expires_at=expires_at,
                locale=p.get("locale"),
                metadata=dict(p.get("metadata") or {}),
                payment_intent=None,
                payment_status="unpaid",
                status="open",
                url=f"https://checkout.stripe.com/c/pay/{session_id}",
            )
            session["payment_method_types"] = list(p.get("payment_method_types") or ["card"])
            session["_intent_metadata"] = dict((p.get("payment_intent_data") or {}).get("metadata") or {})
            session["_line_items"] = p["line_items"]
            self.sessions[session_id] = session
            return 200, self.public(session)

        return self._handle("create", request, act)

    def _get_session(self, request):
        session_id = re.search(r"/v1/checkout/sessions/([^/?]+)", request.url).group(1)

        def act(p):
            session = self.sessions.get(session_id)
            if session is None:
                return self._error("resource_missing")
            return 200, self._expanded_session(session, list(p.get("expand") or []))

        return self._handle("session", request, act)

    def _expire(self, request):
        session_id = re.search(r"/v1/checkout/sessions/([^/?]+)/expire", request.url).group(1)

        def act(p):
            session = self.sessions.get(session_id)
            if session is None:
                return self._error("resource_missing")
            if session["status"] != "open":
                return self._error("checkout_session_not_open")
            session["status"] = "expired"
            return 200, self.public(session)

        return self._handle("expire", request, act)

    def _get_intent(self, request):
        intent_id = re.search(r"/v1/payment_intents/([^/?]+)", request.url).group(1)

        def act(p):
            intent = self.intents.get(intent_id)
            if intent is None:
                status, body = self._error("resource_missing")
                body["error"]["message"] = f"No such payment_intent: '{intent_id}'"
                return status, body
            return 200, self._expanded_intent(intent, list(p.get("expand") or []))

        return self._handle("intent", request, act)

    def _search(self, request):
        def act(p):
            match = re.fullmatch(r"metadata\['order_id'\]:'([^']*)'", p.get("query", ""))
            assert match, p
            found = [i for i in self.intents.values() if i["metadata"].get("order_id") == match.group(1)]
            expand = [e.removeprefix("data.") for e in p.get("expand") or []]
            data = [self._expanded_intent(i, expand) for i in sorted(found, key=lambda i: -i["created"])]
            return 200, {"object": "search_result", "data": data, "has_more": False, "next_page": None, "url": "/v1/payment_intents/search"}

        return self._handle("search", request, act)

    def _refund(self, request):
        def act(p):
            intent = self.intents.get(p.get("payment_intent", ""))
            if intent is None:
                return self._error("resource_missing")
            if intent["status"] != "succeeded":
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "charge_not_refundable",
                        "message": "This PaymentIntent has no successful charge to refund.",
                    }
                }
            amount = p.get("amount")
            if amount is not None and not amount.isdigit():
                return self._error("parameter_invalid_integer")
            charge = self.charges[intent["latest_charge"]]
            if charge["amount_refunded"] >= charge["amount"]:
                return self._error("charge_already_refunded")
            if amount is not None and int(amount) > charge["amount"] - charge["amount_refunded"]:
                return self._error("amount_too_large")
            return 200, self.public(self._make_refund(intent, None if amount is None else int(amount), dict(p.get("metadata") or {})))

        return self._handle("refund", request, act)

    def _make_refund(self, intent: dict, amount: int | None, metadata: dict) -> dict:
        charge = self.charges[intent["latest_charge"]]
        left = charge["amount"] - charge["amount_refunded"]
        amount = left if amount is None else amount
        assert 0 < amount <= left
        refund = copy.deepcopy(fixture("refund"))
        refund.update(
            id=_id("re"),
            amount=amount,
            charge=charge["id"],
            created=self.tick(),
            currency=charge["currency"],
            metadata=metadata,
            payment_intent=intent["id"],
            status="succeeded",
        )
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return refund

    def _list_refunds(self, request):
        def act(p):
            found = sorted(
                (r for r in self.refunds.values() if r["payment_intent"] == p.get("payment_intent")), key=lambda r: -r["created"]
            )
            if p.get("starting_after"):
                ids = [r["id"] for r in found]
                found = found[ids.index(p["starting_after"]) + 1 :]
            limit = int(p.get("limit", "10"))
            page = found[:limit]
            return 200, {"object": "list", "data": [self.public(r) for r in page], "has_more": len(found) > limit, "url": "/v1/refunds"}

        return self._handle("refunds", request, act)
