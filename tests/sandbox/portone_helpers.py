"""Fixtures of the PortOne sandbox tests: plain clients written from portone.md, and our gateways pointed at the sandbox.

Test modules import the fixtures they use (``from .portone_helpers import v1, ...``).
"""

from __future__ import annotations

import copy

import pytest
import requests
from django.conf import settings as django_settings

from .pages import receiver

IMP_KEY = django_settings.PGPAY_SANDBOX["PORTONE"]["IMP_KEYS"][0]
IMP_SECRET = django_settings.PGPAY_SANDBOX["PORTONE"]["IMP_SECRETS"][0]
MERCHANT_CODE = django_settings.PGPAY_SANDBOX["PORTONE"]["MERCHANT_CODES"][0]
V2_SECRET = django_settings.PGPAY_SANDBOX["PORTONE"]["V2_API_SECRETS"][0]
STORE_ID = django_settings.PGPAY_SANDBOX["PORTONE"]["STORE_IDS"][0]
WEBHOOK_SECRET = django_settings.PGPAY_SANDBOX["PORTONE"]["V2_WEBHOOK_SECRET"]
CHANNEL_KEY = "channel-key-00000000-0000-4000-8000-000000000000"


class V1Client:
    """PortOne V1 from the docs: a token from users/getToken, then the raw token in Authorization."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self._token = None

    def get_token(self, imp_key=IMP_KEY, imp_secret=IMP_SECRET, **kwargs):
        return self.session.post(self.base + "/users/getToken", json={"imp_key": imp_key, "imp_secret": imp_secret}, timeout=10, **kwargs)

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.get_token().json()["response"]["access_token"]
        return self._token

    def call(self, method, path, *, token=None, json=None, data=None, params=None, headers=None, timeout=10):
        sent = {"Authorization": self.token if token is None else token, **(headers or {})}
        return self.session.request(method, self.base + path, json=json, data=data, params=params, headers=sent, timeout=timeout)

    def prepare(self, merchant_uid, amount, **extra):
        return self.call("POST", "/payments/prepare", json={"merchant_uid": merchant_uid, "amount": amount, **extra})

    def payment(self, imp_uid, include_sandbox=True, **kwargs):
        return self.call("GET", f"/payments/{imp_uid}", params={"include_sandbox": "true"} if include_sandbox else None, **kwargs)

    def find(self, merchant_uid, include_sandbox=True, **kwargs):
        return self.call("GET", f"/payments/find/{merchant_uid}", params={"include_sandbox": "true"} if include_sandbox else None, **kwargs)

    def cancel(self, **body):
        return self.call("POST", "/payments/cancel", json=body)


class V2Client:
    """PortOne V2 from the docs: ``Authorization: PortOne <secret>``, typed errors."""

    def __init__(self, base: str, secret: str = V2_SECRET):
        self.base = base.rstrip("/")
        self.secret = secret
        self.session = requests.Session()

    def call(self, method, path, *, json=None, params=None, secret=None, timeout=10):
        headers = {"Authorization": f"PortOne {self.secret if secret is None else secret}"}
        return self.session.request(method, self.base + path, json=json, params=params, headers=headers, timeout=timeout)

    def pre_register(self, payment_id, total, currency="KRW"):
        return self.call(
            "POST", f"/payments/{payment_id}/pre-register", json={"storeId": STORE_ID, "totalAmount": total, "currency": currency}
        )

    def payment(self, payment_id):
        return self.call("GET", f"/payments/{payment_id}", params={"storeId": STORE_ID})

    def cancel(self, payment_id, **body):
        return self.call("POST", f"/payments/{payment_id}/cancel", json={"storeId": STORE_ID, "reason": "고객 요청", **body})


@pytest.fixture
def v1(sandbox_url):
    client = V1Client(sandbox_url + "/portone")
    yield client
    client.session.close()


@pytest.fixture
def v2(sandbox_url):
    client = V2Client(sandbox_url + "/portone-v2")
    yield client
    client.session.close()


@pytest.fixture
def sandbox_portone(settings):
    """Change keys of ``PGPAY_SANDBOX["PORTONE"]`` for one test (a copy: the settings' dict is never mutated)."""

    def change(**values):
        settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "PORTONE": {**copy.deepcopy(settings.PGPAY_SANDBOX["PORTONE"]), **values}}

    return change


@pytest.fixture
def portone_hook(sandbox_url, live_server, settings):
    """PortOne's webhooks (console URLs) go to the in-memory receiver of the live server."""
    receiver.reset()
    section = copy.deepcopy(settings.PGPAY_SANDBOX["PORTONE"])
    section.update(WEBHOOK_URL=live_server.url + "/test-receiver/", V2_WEBHOOK_URL=live_server.url + "/test-receiver/")
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "PORTONE": section}
    yield receiver
    receiver.reset()


def gateway_settings(sandbox_url: str, **options) -> dict:
    """The exact PGPAY["GATEWAYS"] entries a shop writes to use the sandbox (only API_BASE/JS_SDK_URL differ from PortOne)."""
    return {
        "portone": {
            "CLASS": "django_pgpay.gateways.portone.PortOneV1Gateway",
            "OPTIONS": {
                "IMP_KEY": IMP_KEY,
                "IMP_SECRET": IMP_SECRET,
                "MERCHANT_CODE": MERCHANT_CODE,
                "CHANNEL_KEY": CHANNEL_KEY,
                "INCLUDE_SANDBOX": True,
                "API_BASE": sandbox_url + "/portone",
                "JS_SDK_URL": sandbox_url + "/portone/v1/iamport.js",
                "TIMEOUT": (3, 5),
                **options,
            },
        },
        "portone-v2": {
            "CLASS": "django_pgpay.gateways.portone.PortOneV2Gateway",
            "OPTIONS": {
                "API_SECRET": V2_SECRET,
                "STORE_ID": STORE_ID,
                "CHANNEL_KEY": CHANNEL_KEY,
                "WEBHOOK_SECRETS": [WEBHOOK_SECRET],
                "INCLUDE_SANDBOX": True,
                "API_BASE": sandbox_url + "/portone-v2",
                "JS_SDK_URL": sandbox_url + "/portone-v2/v2/browser-sdk.js",
                "TIMEOUT": (3, 5),
                **options,
            },
        },
    }


@pytest.fixture
def shop(settings, sandbox_url):
    """PGPAY with the ``portone`` and ``portone-v2`` gateways pointed at the live sandbox."""

    def configure(**options):
        settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], **gateway_settings(sandbox_url, **options)}}

    configure()
    return configure
