"""Stripe sandbox test support: a Stripe client written from stripe.md, fixtures, a shop wired to the sandbox.

The client is plain ``requests`` with its own form encoder (Bearer key,
``a[b][0]=…`` bodies and queries, JSON back); it shares no code with the
sandbox or the gateway, so the API tests check the wire protocol. The shop
fixtures point OUR ``StripeGateway`` (unchanged; only ``API_BASE`` differs)
at the sandbox on the live server.

Test modules import the fixtures they use from here (the sandbox conftest
stays as it is).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from decimal import Decimal
from urllib.parse import quote, urlsplit

import pytest
import requests
from django.test import Client

from .pages import receiver

SECRET_KEY = "sk_test_sandboxTESTS0000000000"
WEBHOOK_SECRET = "whsec_sandboxTESTS0000000000"
FORM = "application/x-www-form-urlencoded"


def encode(params, prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding as stripe.md §1 describes it (nested ``[key]``, lists ``[0]``)."""
    pairs: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, (dict, list, tuple)):
            pairs += encode(value, name)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        else:
            pairs.append((name, str(value)))
    return pairs


def form_body(params) -> str:
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in encode(params))


class Stripe:
    """A Stripe v1 client from the contract notes: base URL + secret key, nothing else."""

    def __init__(self, base_url: str, key: str = SECRET_KEY, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.http = requests.Session()

    def request(self, method: str, path: str, params=None, *, idempotency_key=None, headers=None, key=None, timeout=None, body=None):
        sent = {"Authorization": f"Bearer {key if key is not None else self.key}"} if (key is None or key) else {}
        sent.update(headers or {})
        url = self.base_url + path
        data = None
        if method == "GET" and params:
            url += "?" + form_body(params)
        elif method == "POST":
            sent.setdefault("Content-Type", FORM)
            data = body if body is not None else form_body(params or {})
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        return self.http.request(method, url, data=data, headers=sent, timeout=timeout or self.timeout)

    def create_session(self, order_id: str = "order-0001", amount: int = 15000, currency: str = "krw", *, lines=None, **extra):
        params = session_params(order_id, amount, currency, lines=lines)
        params.update(extra)
        idempotency_key = params.pop("idempotency_key", None)
        timeout = params.pop("timeout", None)
        return self.request("POST", "/v1/checkout/sessions", params, idempotency_key=idempotency_key, timeout=timeout)

    def session(self, session_id: str, expand=None):
        return self.request("GET", f"/v1/checkout/sessions/{session_id}", {"expand": expand} if expand else None)

    def expire(self, session_id: str, **kwargs):
        return self.request("POST", f"/v1/checkout/sessions/{session_id}/expire", {}, **kwargs)

    def intent(self, intent_id: str, expand=("latest_charge",)):
        return self.request("GET", f"/v1/payment_intents/{intent_id}", {"expand": list(expand)} if expand else None)

    def search(self, query: str, **params):
        return self.request("GET", "/v1/payment_intents/search", {"query": query, **params})

    def refund(self, payment_intent: str, amount=None, *, idempotency_key=None, **params):
        body = {"payment_intent": payment_intent, "amount": amount, **params}
        return self.request("POST", "/v1/refunds", body, idempotency_key=idempotency_key)

    def refunds(self, payment_intent: str, **params):
        return self.request("GET", "/v1/refunds", {"payment_intent": payment_intent, **params})


def session_params(order_id: str, amount: int = 15000, currency: str = "krw", *, lines=None) -> dict:
    """A Checkout Session for one order, as stripe.md §2 shows it."""
    lines = lines or [("Order " + order_id, amount, 1)]
    return {
        "mode": "payment",
        "client_reference_id": order_id,
        "line_items": [
            {"price_data": {"currency": currency, "product_data": {"name": name}, "unit_amount": unit}, "quantity": quantity}
            for name, unit, quantity in lines
        ],
        "success_url": f"https://shop.example/pay/stripe/return/?order_id={order_id}&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"https://shop.example/pay/stripe/fail/?order_id={order_id}&code=PAY_PROCESS_CANCELED",
        "metadata": {"order_id": order_id},
        "payment_intent_data": {"metadata": {"order_id": order_id}},
    }


def signature_ok(body: bytes, header: str, secret: str = WEBHOOK_SECRET) -> bool:
    """stripe.md §6 by hand: some v1 equals HMAC-SHA256(secret, "t.body")."""
    parts = [p.split("=", 1) for p in header.split(",")]
    t = next(v for k, v in parts if k == "t")
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in parts)


@pytest.fixture
def stripe_api(sandbox_url):
    """A Stripe client pointed at the sandbox."""
    client = Stripe(sandbox_url + "/stripe")
    yield client
    client.http.close()


@pytest.fixture
def stripe_hook(sandbox_url, live_server, settings):
    """The emulated Stripe's webhooks go to the in-memory receiver of the live server."""
    receiver.reset()
    settings.PGPAY_SANDBOX = {
        **settings.PGPAY_SANDBOX,
        "STRIPE": {**settings.PGPAY_SANDBOX["STRIPE"], "WEBHOOK_URL": live_server.url + "/test-receiver/"},
    }
    yield receiver
    receiver.reset()


@pytest.fixture
def stripe_paid(stripe_api):
    """Create a Session and pay it (no browser): ``(session, payment_intent_id)``."""
    from django_pgpay.sandbox import stripe as emulated

    counter = iter(range(1, 10_000))

    def make(amount=15000, currency="krw", card="4242424242424242", **kwargs):
        order_id = kwargs.pop("order_id", None) or f"order-{next(counter):04d}"
        created = stripe_api.create_session(order_id, amount, currency, **kwargs)
        assert created.status_code == 200, created.text
        session = created.json()
        outcome = emulated.pay(session["id"], card=card)
        return emulated.session_state(session["id"]), outcome

    return make


# --- a shop whose Stripe gateway talks to the sandbox ------------------------------------------------


@pytest.fixture
def sandbox_gateway(sandbox_url, live_server, settings):
    """OUR StripeGateway, unchanged, with ``API_BASE`` at the sandbox; the sandbox's webhooks go to the shop."""
    from django_pgpay.conf import get_gateway

    settings.PGPAY = {
        **settings.PGPAY,
        "GATEWAYS": {
            **settings.PGPAY["GATEWAYS"],
            "stripe": {
                "CLASS": "django_pgpay.gateways.stripe.StripeGateway",
                "OPTIONS": {
                    "SECRET_KEY": SECRET_KEY,
                    "WEBHOOK_SECRETS": [WEBHOOK_SECRET],
                    "API_BASE": sandbox_url + "/stripe",
                    "TIMEOUT": (3.05, 3),
                },
            },
        },
    }
    settings.PGPAY_SANDBOX = {
        **settings.PGPAY_SANDBOX,
        "STRIPE": {**copy.deepcopy(settings.PGPAY_SANDBOX["STRIPE"]), "WEBHOOK_URL": live_server.url + "/pay/stripe/webhook/"},
    }
    return get_gateway("stripe")


@pytest.fixture
def product(db):
    from tests.testapp.models import Product

    return Product.objects.create(name="장고 책", price=Decimal("15000"))


@pytest.fixture
def shopper(buyer):
    client = Client()
    client.force_login(buyer)
    return client


def checkout(client, product, quantity: int = 1):
    """POST the shop's checkout: ``(order, session)``; the browser would go to ``session["url"]``."""
    from django_pgpay.sandbox import stripe as emulated
    from tests.testapp.models import CartOrder

    response = client.post(f"/shop/{product.pk}/{quantity}/stripe/")
    assert response.status_code == 302, response.content.decode()[:2000]
    order = CartOrder.objects.order_by("-pk").first()
    session = emulated.session_state(order.pg_data["stripe_session_id"])
    assert response["Location"] == session["url"]
    return order, session


def local(url: str) -> str:
    """The path and query of a URL on the live server (the test client has no host)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
