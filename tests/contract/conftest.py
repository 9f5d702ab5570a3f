"""One driver per PG for the contract suite: the real gateway class, pointed at the sandbox over a real socket.

A driver knows only what differs between PGs in a test: the gateway's OPTIONS
for the sandbox, how a buyer pays in the sandbox (its Python API), where the
sandbox keeps the refunds it made, and the sandbox setting that names the
webhook URL. Everything the contract asserts is in ``test_gateway_contract.py``
and ``test_sandbox_contract.py``, the same for every PG.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from requests.structures import CaseInsensitiveDict

from django_pgpay.gateways.results import CheckoutUrls, OrderSnapshot
from django_pgpay.sandbox.models import SandboxPayment
from tests.sandbox import portone_helpers as portone
from tests.sandbox import stripe_helpers as stripe
from tests.sandbox.bootpay_fixtures import CLIENT_KEY as BOOTPAY_CLIENT_KEY
from tests.sandbox.bootpay_fixtures import SECRET_KEY as BOOTPAY_SECRET_KEY
from tests.sandbox.conftest import CLIENT_KEY as TOSS_CLIENT_KEY
from tests.sandbox.conftest import SECRET_KEY as TOSS_SECRET_KEY
from tests.sandbox.conftest import _no_worker_left, _own_sandbox_settings, sandbox_url  # noqa: F401 (fixtures)
from tests.sandbox.pages import receiver

TIMEOUT = (3.05, 5)


@dataclass
class Driver:
    """What the contract needs to know of one PG (see the module docstring)."""

    alias: str
    section: str
    options: dict
    webhook_setting: str = "WEBHOOK_URL"
    receiver_path: str = "/test-receiver/"
    unknown_id: str = "unknown-payment-0000"
    gateway: object = None
    origin: str = ""
    seen: list = field(default_factory=list)

    def authorize(self, order: OrderSnapshot) -> str:
        """The buyer pays ``order.amount`` for ``order``; returns the id the shop's confirm is given."""
        raise NotImplementedError

    def refunds(self, payment_id: str) -> list:
        """The refunds the sandbox made for ``payment_id`` (its own records)."""
        raise NotImplementedError

    def payment_row(self, payment_id: str) -> SandboxPayment:
        return SandboxPayment.objects.get(pg=self.alias, key=payment_id)


class Toss(Driver):
    def authorize(self, order):
        from django_pgpay.sandbox import toss

        return toss.authenticate(order.order_number, int(order.amount), origin=self.origin)["paymentKey"]

    def refunds(self, payment_id):
        from django_pgpay.sandbox import toss

        return toss.payment_state(payment_id).get("cancels") or []


class PortOneV1(Driver):
    def authorize(self, order):
        from django_pgpay.sandbox import portone

        return portone.pay(order.order_number, int(order.amount), origin=self.origin)["imp_uid"]

    def refunds(self, payment_id):
        from django_pgpay.sandbox import portone

        return portone.payment_state(payment_id).get("cancel_history") or []


class PortOneV2(Driver):
    def authorize(self, order):
        from django_pgpay.sandbox import portone

        portone.v2_pay(order.order_number, int(order.amount), origin=self.origin)
        return order.order_number

    def refunds(self, payment_id):
        from django_pgpay.sandbox import portone

        return portone.v2_payment_state(payment_id).get("cancellations") or []


class Bootpay(Driver):
    def authorize(self, order):
        from django_pgpay.sandbox import bootpay

        return bootpay.authenticate(order.order_number, int(order.amount), origin=self.origin)["receipt_id"]

    def refunds(self, payment_id):
        return self.payment_row(payment_id).session.get("cancels", [])


class Stripe(Driver):
    def authorize(self, order):
        from django_pgpay.sandbox import stripe as emulated

        urls = CheckoutUrls(success_url=self.origin + "/shop/success/", fail_url=self.origin + "/shop/fail/")
        session_id = self.gateway.checkout(order, urls).pg_data["stripe_session_id"]
        emulated.pay(session_id)
        return session_id

    def refunds(self, payment_id):
        return list(SandboxPayment.objects.filter(pg="stripe", key__startswith="re_", state__payment_intent=payment_id))


class MiniPG(Driver):
    def authorize(self, order):
        from django_pgpay.sandbox.registry import emulator

        return emulator("minipg").act_pay(order.order_number, int(order.amount), origin=self.origin)["id"]

    def refunds(self, payment_id):
        from django_pgpay.sandbox.registry import emulator

        return emulator("minipg").act_state(payment_id)["refunds"]


def drivers(base: str) -> dict[str, Driver]:
    """Every PG of the contract, its gateway OPTIONS pointed at the sandbox at ``base``."""
    v1, v2 = portone.gateway_settings(base)["portone"], portone.gateway_settings(base)["portone-v2"]
    return {
        "toss": Toss(
            "toss",
            "TOSS",
            {
                "CLASS": "django_pgpay.gateways.toss.TossGateway",
                "OPTIONS": {"SECRET_KEY": TOSS_SECRET_KEY, "CLIENT_KEY": TOSS_CLIENT_KEY, "API_BASE": base + "/toss", "TIMEOUT": TIMEOUT},
            },
            unknown_id="tgen_unknown0000000000",
        ),  # fmt: skip
        "portone": PortOneV1("portone", "PORTONE", v1, unknown_id="imp_000000000000"),
        "portone-v2": PortOneV2("portone-v2", "PORTONE", v2, webhook_setting="V2_WEBHOOK_URL", unknown_id="order-unknown-0000"),
        "bootpay": Bootpay(
            "bootpay",
            "BOOTPAY",
            {
                "CLASS": "django_pgpay.gateways.bootpay.BootpayGateway",
                "OPTIONS": {
                    "CLIENT_KEY": BOOTPAY_CLIENT_KEY,
                    "SECRET_KEY": BOOTPAY_SECRET_KEY,
                    "API_BASE": base + "/bootpay/v2",
                    "TIMEOUT": TIMEOUT,
                },
            },
            receiver_path="/test-receiver/bootpay/",
            unknown_id="000000000000000000000000",
        ),  # fmt: skip
        "stripe": Stripe(
            "stripe",
            "STRIPE",
            {
                "CLASS": "django_pgpay.gateways.stripe.StripeGateway",
                "OPTIONS": {
                    "SECRET_KEY": stripe.SECRET_KEY,
                    "WEBHOOK_SECRETS": [stripe.WEBHOOK_SECRET],
                    "API_BASE": base + "/stripe",
                    "TIMEOUT": TIMEOUT,
                },
            },
            unknown_id="pi_3Unknown0000000000000000",
        ),  # fmt: skip
        # The gateway of the test-only Mini PG, as a project's settings would name it:
        # docs: minipg gateway
        "minipg": MiniPG(
            "minipg",
            "MINIPG",
            {
                "CLASS": "tests.minipg.gateway.MiniPGGateway",
                "OPTIONS": {
                    "API_KEY": "test_mini_sandboxTESTS0000",
                    "WEBHOOK_SECRET": "test_mini_whsec_TESTS",
                    "API_BASE": base + "/minipg",  # the sandbox; Mini PG's own API root in production
                    "TIMEOUT": TIMEOUT,
                },
            },
            unknown_id="mp_unknown0000000000",
        ),
        # docs: end
    }


#: Every PG the contract runs against: the real five and the test-only Mini PG.
PGS = ["toss", "portone", "portone-v2", "bootpay", "stripe", "minipg"]


@pytest.fixture(params=PGS)
def pg(request, sandbox_url, live_server, settings):
    """A :class:`Driver` whose gateway talks to the live sandbox; the sandbox's webhooks go to the test receiver."""
    from django_pgpay.conf import get_gateway

    driver = drivers(sandbox_url)[request.param]
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], driver.alias: copy.deepcopy(driver.options)}}
    section = copy.deepcopy(settings.PGPAY_SANDBOX[driver.section])
    section[driver.webhook_setting] = live_server.url + driver.receiver_path
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, driver.section: section}
    driver.origin = live_server.url
    driver.gateway = get_gateway(driver.alias)
    receiver.reset()
    yield driver
    receiver.reset()


@pytest.fixture
def order():
    """A fresh order snapshot of 10,000 won (no database row: the gateway contract needs none)."""

    def make(amount=Decimal(10000), number=None):
        number = number or f"order-{os.urandom(5).hex()}"
        return OrderSnapshot(order_number=number, amount=Decimal(amount), currency="KRW", order_name="계약 테스트")

    return make


def deliveries() -> list[tuple[CaseInsensitiveDict, bytes]]:
    """What the test receiver got: (headers, exact body) of each delivery."""
    with receiver.lock:
        return [(CaseInsensitiveDict(d["headers"]), d["raw"]) for d in receiver.deliveries]
