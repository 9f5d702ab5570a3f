"""``sandbox.toss.sdk_payload``: what the shop's Toss window and the sandbox's SDK post, for drivers without a browser."""

import re
from pathlib import Path

import django_pgpay
from django_pgpay.sandbox.toss import ANONYMOUS_CUSTOMER, WINDOW_EXTRAS, sdk_payload

PACKAGE = Path(django_pgpay.__file__).parent
WINDOW = PACKAGE / "templates" / "django_pgpay" / "checkout" / "toss.html"
SDK = PACKAGE / "sandbox" / "templates" / "pgpay_sandbox" / "toss" / "sdk.js"

PARAMS = {
    "clientKey": "test_ck_sandbox",
    "customerKey": "",
    "method": "VIRTUAL_ACCOUNT",
    "amount": {"currency": "KRW", "value": 30000},
    "orderId": "261207abc",
    "orderName": "을지로 한우집 창가 2인석",
    "successUrl": "http://127.0.0.1:8000/pay/toss/return/?pgpay_t=x",
    "failUrl": "http://127.0.0.1:8000/pay/toss/fail/",
    "customerName": "김지민",
    "customerEmail": "",
    "virtualAccount": {"validHours": 26},
}


def test_the_window_passes_on_the_same_optional_parameters_as_the_python_mirror():
    """checkout/toss.html's list of parameters it hands to requestPayment when set, read from the template."""
    listed = re.search(r"\[([^\]]*)\]\.forEach\(function \(name\) \{\s*if \(params\[name\]\)", WINDOW.read_text("utf-8"))
    assert listed, "checkout/toss.html no longer copies optional parameters the way sdk_payload mirrors"
    assert tuple(re.findall(r'"(\w+)"', listed.group(1))) == WINDOW_EXTRAS


def test_the_anonymous_customer_key_is_the_sdks():
    assert f'TossPayments.ANONYMOUS = "{ANONYMOUS_CUSTOMER}"' in SDK.read_text("utf-8")


def test_payload_of_a_virtual_account_window():
    # No customer key: the SDK's anonymous one. An empty optional parameter (customerEmail) is
    # left out, as the window leaves it out; a set one (customerName, virtualAccount) is passed on.
    expected = {name: value for name, value in PARAMS.items() if name != "customerEmail"}
    assert sdk_payload(PARAMS) == {**expected, "customerKey": "@@ANONYMOUS", "flow": "payment"}
    assert "customerEmail" not in sdk_payload(PARAMS) and sdk_payload(PARAMS)["virtualAccount"] == {"validHours": 26}
