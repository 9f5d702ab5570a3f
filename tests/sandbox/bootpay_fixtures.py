"""Fixtures for the Bootpay sandbox tests (imported by ``conftest.py``).

:class:`Bootpay` is a client written from ``shared/gateways/bootpay.md`` with
plain ``requests`` (Basic ``client_key:secret_key``, or a Bearer token from
``POST /v2/request/token``; JSON bodies; the documented paths). It shares no
code with the sandbox, so the tests check the wire protocol. The official
``bootpay-backend`` package is the second, independent client.
"""

from __future__ import annotations

import copy
import os

import pytest
import requests

from .pages import receiver

#: What ``conftest.py`` takes with ``import *``: the fixtures only (its own
#: CLIENT_KEY/SECRET_KEY are Toss's; import Bootpay's keys from this module).
__all__ = [
    "bootpay",
    "bootpay_authenticated",
    "bootpay_hook",
    "bootpay_paid",
    "bootpay_settings",
    "bootpay_url",
    "official",
    "shop_gateway",
]

CLIENT_KEY = "test_bootpay_ck_sandboxTESTS0000"
SECRET_KEY = "test_bootpay_sk_sandboxTESTS0000"
APPLICATION_ID = "test_bootpay_app_sandboxTESTS00"
PRIVATE_KEY = "test_bootpay_pk_sandboxTESTS0000"
WEB_APPLICATION_ID = "test_bootpay_web_sandboxTESTS00"
ACK = b'{"success": true}'


class Bootpay:
    """A Bootpay REST v2 client from the docs: base URL + keys, nothing else."""

    def __init__(self, base_url: str, client_key: str = CLIENT_KEY, secret_key: str = SECRET_KEY, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.client_key = client_key
        self.secret_key = secret_key
        self.bearer: str | None = None
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, *, json=None, auth=True, headers=None, data=None, params=None):
        sent = {"Accept": "application/json", **(headers or {})}
        basic = None
        if auth and self.bearer is not None:
            sent["Authorization"] = f"Bearer {self.bearer}"
        elif auth:
            # requests' Basic auth encodes "user:password": exactly Bootpay's client_key:secret_key.
            basic = (self.client_key, self.secret_key)
        return self.session.request(
            method, self.base_url + path, json=json, data=data, params=params, headers=sent, auth=basic, timeout=self.timeout
        )

    def token(self, application_id: str = APPLICATION_ID, private_key: str = PRIVATE_KEY):
        return self.request("POST", "/request/token", json={"application_id": application_id, "private_key": private_key}, auth=False)

    def use_token(self, application_id: str = APPLICATION_ID, private_key: str = PRIVATE_KEY) -> str:
        reply = self.token(application_id, private_key)
        assert reply.status_code == 200, reply.text
        self.bearer = reply.json()["access_token"]
        return self.bearer

    def confirm(self, receipt_id: str):
        return self.request("POST", "/confirm", json={"receipt_id": receipt_id})

    def receipt(self, receipt_id: str, **params):
        return self.request("GET", f"/receipt/{receipt_id}", params={"lookup_user_data": "false", **params})

    def cancel(self, receipt_id: str, cancel_price=None, cancel_id=None, **extra):
        body = {"receipt_id": receipt_id, "cancel_username": "관리자", "cancel_message": "고객 요청", **extra}
        if cancel_price is not None:
            body["cancel_price"] = cancel_price
        if cancel_id is not None:
            body["cancel_id"] = cancel_id
        return self.request("POST", "/cancel", json=body)


@pytest.fixture
def bootpay_url(sandbox_url):
    """``API_BASE`` of the emulated Bootpay."""
    return sandbox_url + "/bootpay/v2"


@pytest.fixture
def bootpay(bootpay_url):
    """A Bootpay client (current Basic keys) pointed at the sandbox."""
    client = Bootpay(bootpay_url)
    yield client
    client.session.close()


@pytest.fixture
def official(bootpay_url):
    """The official ``bootpay-backend`` client, pointed at the sandbox by its instance's ``BASE_URL``."""
    from bootpay_backend import BootpayBackend

    def make(**keys):
        keys = keys or {"client_key": CLIENT_KEY, "secret_key": SECRET_KEY}
        client = BootpayBackend(**keys)
        client.BASE_URL = {**BootpayBackend.BASE_URL, "production": bootpay_url}
        return client

    return make


@pytest.fixture
def bootpay_authenticated(bootpay_url):
    """Make a receipt the buyer authenticated in the window (no browser); returns the SDK's event result."""
    from django_pgpay.sandbox import bootpay as emulated

    counter = iter(range(1, 10_000))
    origin = bootpay_url.rsplit("/sandbox/", 1)[0]

    def make(price=10000, method="card", **kwargs):
        order_id = kwargs.pop("order_id", None) or f"order-{next(counter):04d}-{os.urandom(3).hex()}"
        return emulated.authenticate(order_id, price, method=method, origin=origin, order_name="한우집 예약", **kwargs)

    return make


@pytest.fixture
def bootpay_paid(bootpay, bootpay_authenticated):
    """A receipt approved by the server (status 1, or 5 for a virtual account): the confirm's Receipt."""

    def make(price=10000, method="card", **kwargs):
        result = bootpay_authenticated(price, method, **kwargs)
        reply = bootpay.confirm(result["receipt_id"])
        assert reply.status_code == 200, reply.text
        return reply.json()

    return make


def _bootpay_settings(settings, **changes):
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "BOOTPAY": {**settings.PGPAY_SANDBOX["BOOTPAY"], **changes}}


@pytest.fixture
def bootpay_settings(settings):
    """Change ``PGPAY_SANDBOX["BOOTPAY"]`` for one test: ``bootpay_settings(PARTIAL_CANCEL_STATUS=1)``."""
    return lambda **changes: _bootpay_settings(settings, **changes)


@pytest.fixture
def bootpay_hook(sandbox_url, live_server, settings):
    """Webhooks of the emulated Bootpay go to an in-memory receiver answering ``{"success": true}`` unless told."""
    receiver.reset()
    _bootpay_settings(settings, WEBHOOK_URL=live_server.url + "/test-receiver/bootpay/")
    yield receiver
    receiver.reset()


@pytest.fixture
def shop_gateway(sandbox_url, live_server, settings):
    """OUR ``bootpay`` gateway, unchanged, pointed at the sandbox (``API_BASE`` and ``JS_SDK_URL`` only).

    The emulated Bootpay posts its webhooks to the shop's real webhook view.
    ``shop_gateway(legacy=True)`` uses the legacy key pair; other keywords are
    gateway OPTIONS (``OPEN_TYPE="redirect"``).
    """

    def configure(legacy: bool = False, **options):
        keys = (
            {"APPLICATION_ID": APPLICATION_ID, "PRIVATE_KEY": PRIVATE_KEY, "WEB_APPLICATION_ID": WEB_APPLICATION_ID}
            if legacy
            else {"CLIENT_KEY": CLIENT_KEY, "SECRET_KEY": SECRET_KEY}
        )
        entry = {
            "CLASS": "django_pgpay.gateways.bootpay.BootpayGateway",
            "OPTIONS": {
                **keys,
                "API_BASE": sandbox_url + "/bootpay/v2",
                "JS_SDK_URL": sandbox_url + "/bootpay/js/bootpay-5.1.4.min.js",
                "TIMEOUT": (3.05, 5),
                **options,
            },
        }
        settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "bootpay": copy.deepcopy(entry)}}
        _bootpay_settings(settings, WEBHOOK_URL=live_server.url + "/pay/bootpay/webhook/")
        from django_pgpay.conf import get_gateway

        return get_gateway("bootpay")

    return configure
