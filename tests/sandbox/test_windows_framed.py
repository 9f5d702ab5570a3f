"""The sandbox's payment windows open in an iframe of the shop's page, as the real PGs' do.

A shop with Django's ``XFrameOptionsMiddleware`` (the default project
template's ``DENY``) must still see them: the window views are exempt.
"""

import pytest

from django_pgpay.sandbox import portone as emulated

pytestmark = pytest.mark.django_db

XFRAME = "django.middleware.clickjacking.XFrameOptionsMiddleware"


@pytest.fixture
def framing_shop(settings):
    settings.ROOT_URLCONF = "tests.sandbox.urls"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, XFRAME]
    settings.X_FRAME_OPTIONS = "DENY"


def test_portone_window_may_be_framed(framing_shop, client):
    payment = emulated.pay("order-framed-0001", 10000)
    window = client.get(f"/sandbox/portone/v1/pay/{payment['imp_uid']}")
    assert window.status_code == 200 and "X-Frame-Options" not in window.headers
    # Pages that are not windows keep the shop's protection.
    assert client.get("/sandbox/").headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("url", ["/sandbox/portone/v1/checkout", "/sandbox/portone-v2/v2/checkout", "/sandbox/bootpay/checkout"])
def test_windows_opening_posts_may_be_framed(framing_shop, client, url):
    answer = client.post(url, {})  # nothing to open: the PG's error page, in the frame
    assert "X-Frame-Options" not in answer.headers, answer.status_code
