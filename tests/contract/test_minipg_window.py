"""Mini PG's own path through a shop: checkout -> the sandbox's window -> the return -> confirm (the contract suite does the rest)."""

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from django_pgpay.gateways.results import CheckoutUrls, ConfirmRequest, PaymentState

from .conftest import drivers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def minipg(sandbox_url, settings):
    from django_pgpay.conf import get_gateway

    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "minipg": drivers(sandbox_url)["minipg"].options}}
    return get_gateway("minipg")


@pytest.mark.parametrize("choice, state", [("pay", PaymentState.APPROVED), ("decline", PaymentState.FAILED)])
def test_checkout_window_return_and_confirm(minipg, live_server, order, choice, state):
    snapshot = order(Decimal(12000))
    checkout = minipg.checkout(
        snapshot, CheckoutUrls(success_url=live_server.url + "/shop/success/", fail_url=live_server.url + "/shop/fail/")
    )
    window = urlsplit(checkout.redirect_url).path
    browser = Client()
    assert "12,000" in browser.get(window).content.decode()
    back = browser.post(window, {"action": choice})
    assert back.status_code == 302
    returned = minipg.parse_return({k: v[0] for k, v in parse_qs(urlsplit(back["Location"]).query).items()})
    assert (returned.payment_id, returned.order_number) == (checkout.pg_data["minipg_payment"], snapshot.order_number)
    request = ConfirmRequest(order=snapshot, payment_id=returned.payment_id, amount=snapshot.amount, currency="KRW", idempotency_key="k")
    assert minipg.confirm(request).state is state
    assert browser.post(window, {"action": "pay"}).status_code == 409  # the window closed


def test_a_projects_own_emulator_is_registered_by_the_setting_alone(settings):
    from django_pgpay.sandbox import checks, registry

    assert registry.emulator("minipg").name == "minipg" and "minipg" not in registry.EMULATORS
    assert checks.check_sandbox() == []  # its settings section is known, its keys are test keys
    del settings.PGPAY_SANDBOX_EMULATORS
    with pytest.raises(KeyError):
        registry.emulator("minipg")
    assert [m.id for m in checks.check_sandbox()] == ["pgpay_sandbox.E002"]  # PGPAY_SANDBOX["MINIPG"] names no emulator now
