"""Fixtures for the sandbox tests: a live server, a Toss client written from toss.md, a receiver.

The Toss client here is deliberately plain ``requests`` following
``shared/gateways/toss.md`` (Basic auth with ``secret_key + ":"``, JSON
bodies, the documented paths and headers); it shares no code with the
sandbox, so the tests check the wire protocol, not the implementation.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import requests

from .pages import receiver

SECRET_KEY = "test_sk_sandboxTESTS0000000000"
CLIENT_KEY = "test_ck_sandboxTESTS0000000000"
#: Live-server tests flush only these apps' tables between tests (a full flush
#: costs about half a second per test on PostgreSQL); django_pgpay stays for
#: its Korean catalogue.
AVAILABLE_APPS = ["django_pgpay", "django_pgpay.sandbox"]
ARTIFACTS = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts"))


class Toss:
    """A Toss core-API client from the docs: base URL + secret key, nothing else."""

    def __init__(self, base_url: str, secret_key: str = SECRET_KEY, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.secret_key = secret_key
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, *, json=None, idempotency_key=None, headers=None, auth=True, timeout=None, data=None):
        sent = dict(headers or {})
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        return self.session.request(
            method,
            self.base_url + path,
            json=json,
            data=data,
            headers=sent,
            # requests' Basic auth encodes "user:password": secret key, empty password.
            auth=(self.secret_key, "") if auth else None,
            timeout=timeout or self.timeout,
        )

    def confirm(self, payment_key: str, order_id: str, amount, **kwargs):
        body = {"paymentKey": payment_key, "orderId": order_id, "amount": amount}
        return self.request("POST", "/v1/payments/confirm", json=body, **kwargs)

    def cancel(self, payment_key: str, reason: str = "고객 변심", amount=None, **kwargs):
        body = {"cancelReason": reason}
        if amount is not None:
            body["cancelAmount"] = amount
        body.update(kwargs.pop("extra", {}))
        return self.request("POST", f"/v1/payments/{payment_key}/cancel", json=body, **kwargs)

    def payment(self, payment_key: str, **kwargs):
        return self.request("GET", f"/v1/payments/{payment_key}", **kwargs)

    def by_order(self, order_id: str, **kwargs):
        return self.request("GET", f"/v1/payments/orders/{order_id}", **kwargs)


@pytest.fixture
def sandbox_url(live_server, transactional_db, settings):
    """Base URL of the sandbox on a real socket (test pages mounted too)."""
    settings.ROOT_URLCONF = "tests.sandbox.urls"
    from django.urls import clear_url_caches

    clear_url_caches()
    from django_pgpay.sandbox import control

    control.reset()
    yield live_server.url + "/sandbox"
    clear_url_caches()


@pytest.fixture
def toss(sandbox_url):
    """A Toss client pointed at the sandbox."""
    client = Toss(sandbox_url + "/toss")
    yield client
    client.session.close()


@pytest.fixture
def hook(sandbox_url, live_server, settings):
    """Webhooks of the emulated Toss go to an in-memory receiver of the live server."""
    receiver.reset()
    settings.PGPAY_SANDBOX = {
        **settings.PGPAY_SANDBOX,
        "TOSS": {**settings.PGPAY_SANDBOX["TOSS"], "WEBHOOK_URL": live_server.url + "/test-receiver/"},
    }
    yield receiver
    receiver.reset()


@pytest.fixture(autouse=True)
def _own_sandbox_settings(settings):
    """Each test its own copy of PGPAY_SANDBOX: a test that changes a key in place changes no other test's."""
    settings.PGPAY_SANDBOX = copy.deepcopy(settings.PGPAY_SANDBOX)


@pytest.fixture(autouse=True)
def _no_worker_left():
    yield
    from django_pgpay.sandbox.worker import stop_worker

    stop_worker()


@pytest.fixture
def paid(toss):
    """Make a payment the buyer authenticated (no browser) and return its success-redirect params."""
    from django_pgpay.sandbox import toss as emulated

    counter = iter(range(1, 10_000))

    def make(amount=15000, method="CARD", **kwargs):
        order_id = kwargs.pop("order_id", None) or f"order-{next(counter):04d}-{os.urandom(3).hex()}"
        origin = toss.base_url.rsplit("/sandbox/", 1)[0]
        return emulated.authenticate(order_id, amount, method=method, origin=origin, **kwargs)

    return make


@pytest.fixture
def artifacts():
    """Folder for screenshots (``$PGPAY_ARTIFACTS_DIR/sandbox``)."""
    folder = ARTIFACTS / "sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


from .bootpay_fixtures import *  # noqa: E402, F403  (Bootpay's fixtures)
