"""The sandbox's WEBHOOK_URL system check, and the origin a relative WEBHOOK_URL is resolved against."""

import pytest
from django.core import checks

from django_pgpay.sandbox import conf
from django_pgpay.sandbox.checks import check_webhook_urls

GATEWAYS = {
    "toss": {"CLASS": "django_pgpay.gateways.toss.TossGateway", "OPTIONS": {}},
    "stripe": {"CLASS": "django_pgpay.gateways.stripe.StripeGateway", "OPTIONS": {}},
    "portone-v2": {"CLASS": "django_pgpay.gateways.portone.PortOneV2Gateway", "OPTIONS": {}},
}


@pytest.fixture
def sandbox(settings):
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], **GATEWAYS}}

    def configure(section: str, **values) -> list[checks.CheckMessage]:
        settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, section: {**settings.PGPAY_SANDBOX[section], **values}}
        return check_webhook_urls()

    return configure


@pytest.mark.parametrize(
    "url",
    ["/pay/toss/webhook/", "pay/toss/webhook/", "http://127.0.0.1:8123/pay/toss/webhook/", "https://shop.example/pay/toss/webhook/", ""],
)
def test_the_shops_toss_webhook_url_passes(sandbox, url):
    assert sandbox("TOSS", WEBHOOK_URL=url) == []


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/pay/webhooks/toss/", "pgpay_sandbox.E004"),  # the old docs' path: every delivery a 404
        ("http://127.0.0.1:8000/pay/webhooks/toss/", "pgpay_sandbox.E004"),
        ("/admin/", "pgpay_sandbox.E005"),
        ("/pay/toss/return/", "pgpay_sandbox.E005"),
        ("/pay/tosss/webhook/", "pgpay_sandbox.E006"),  # an alias PGPAY does not have
    ],
)
def test_a_webhook_url_that_cannot_reach_the_webhook_view_is_an_error(sandbox, url, code):
    (message,) = sandbox("TOSS", WEBHOOK_URL=url)
    assert message.id == code and message.level == checks.ERROR
    assert 'PGPAY_SANDBOX["TOSS"]["WEBHOOK_URL"]' in message.msg and "/pay/toss/webhook/" in message.hint


def test_another_pgs_alias_is_a_warning(sandbox):
    (message,) = sandbox("TOSS", WEBHOOK_URL="/pay/stripe/webhook/")
    assert message.id == "pgpay_sandbox.W003" and "StripeGateway" in message.msg and "TossGateway" in message.msg
    sandbox("TOSS", WEBHOOK_URL="/pay/toss/webhook/")
    (message,) = sandbox("PORTONE", V2_WEBHOOK_URL="/pay/toss/webhook/")
    assert message.id == "pgpay_sandbox.W003" and 'PGPAY_SANDBOX["PORTONE"]["V2_WEBHOOK_URL"]' in message.msg
    assert sandbox("PORTONE", V2_WEBHOOK_URL="/pay/portone-v2/webhook/") == []


def test_manage_py_check_reports_it(sandbox):
    sandbox("STRIPE", WEBHOOK_URL="/pay/webhooks/stripe/")
    ids = {m.id for m in checks.run_checks(tags=["django_pgpay"])}
    assert "pgpay_sandbox.E004" in ids


# --- the origin of a relative WEBHOOK_URL -----------------------------------------------------


@pytest.fixture
def fresh_origin():
    conf.forget_origin()
    yield
    conf.forget_origin()


def test_without_a_request_a_relative_url_goes_to_runservers_default(fresh_origin, settings):
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "SITE_URL": ""}
    assert conf.site_url() == "http://127.0.0.1:8000"


def test_the_host_of_the_latest_request_is_the_servers_own(fresh_origin, settings, client):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    client.get("/no-such-page/", HTTP_HOST="127.0.0.1:8114")
    assert conf.site_url() == "http://127.0.0.1:8114"
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "SITE_URL": "http://shop.internal:9000/"}
    assert conf.site_url() == "http://shop.internal:9000"  # set: it wins


def test_a_host_django_would_refuse_is_never_remembered(fresh_origin, settings, client):
    settings.ALLOWED_HOSTS = ["shop.example"]
    client.get("/no-such-page/", HTTP_HOST="attacker.example")
    assert conf.site_url() == "http://127.0.0.1:8000"
    client.get("/no-such-page/", HTTP_HOST="shop.example", secure=True)
    assert conf.site_url() == "https://shop.example"
