"""What a buyer reads: PG names, bank names and amounts in the page's language (django_pgpay.labels)."""

from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation

from django_pgpay.labels import amount_label, bank_label, pg_label


@pytest.mark.parametrize(
    ("code", "ko", "en"),
    [
        ("20", "우리은행", "Woori Bank"),  # Toss: two digits
        ("020", "우리은행", "Woori Bank"),  # Bootpay: the KFTC's three
        ("004", "KB국민은행", "KB Kookmin Bank"),
        ("06", "KB국민은행", "KB Kookmin Bank"),  # Toss's code for Kookmin
        ("088", "신한은행", "Shinhan Bank"),
        ("KOOKMIN", "KB국민은행", "KB Kookmin Bank"),  # PortOne V2's enum
        ("k_bank", "케이뱅크", "K Bank"),
        ("090", "카카오뱅크", "KakaoBank"),
        ("999", "999", "999"),  # unknown: as it came
    ],
)
def test_bank_codes_become_names(code, ko, en):
    with translation.override("ko"):
        assert bank_label(code) == ko
    with translation.override("en"):
        assert bank_label(code) == en


def test_an_orders_pg_data_prefers_the_code_then_the_pgs_own_name():
    with translation.override("en"):
        assert bank_label({"vbank_bank_code": "20", "vbank_bank_name": "우리은행"}) == "Woori Bank"
        assert bank_label({"vbank_bank_code": "", "vbank_bank_name": "새은행"}) == "새은행"
        assert bank_label({}) == ""


def test_pg_names_in_korean_and_english(settings):
    settings.PGPAY = {
        **settings.PGPAY,
        "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "toss": {"CLASS": "django_pgpay.gateways.toss.TossGateway", "OPTIONS": {}}},
    }
    with translation.override("ko"):
        assert pg_label("toss") == "토스페이먼츠"
        assert pg_label("Bootpay") == "부트페이"
        assert pg_label("not-configured") == "not-configured"
    with translation.override("en"):
        assert pg_label("toss") == "Toss Payments"


@pytest.mark.parametrize(
    ("amount", "currency", "ko", "en"),
    [
        (Decimal("30000"), "KRW", "30,000원", "₩30,000"),
        (Decimal("30000.000"), "KRW", "30,000원", "₩30,000"),
        (Decimal("12.5"), "USD", "$12.50", "$12.50"),
        (Decimal("-1000"), "KRW", "-1,000원", "-₩1,000"),
        (Decimal("10"), "CHF", "10.00 CHF", "10.00 CHF"),
        ("not a number", "KRW", "not a number KRW", "not a number KRW"),
    ],
)
def test_amounts_as_buyers_read_them(amount, currency, ko, en):
    with translation.override("ko"):
        assert amount_label(amount, currency) == ko
    with translation.override("en"):
        assert amount_label(amount, currency) == en


def test_the_template_filters(db):
    template = Template("{% load pgpay_labels %}{{ code|bank_label }} · {{ amount|amount_label:'KRW' }} · {{ 'Stripe'|pg_label }}")
    with translation.override("ko"):
        assert template.render(Context({"code": "092", "amount": Decimal(15000)})) == "토스뱅크 · 15,000원 · 스트라이프"
