"""How amounts, PGs, banks, methods, gateways and times are shown (django_pgpay.labels)."""

import datetime
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation

from django_pgpay import labels
from django_pgpay.labels import bank_label, money, pg_label


@pytest.mark.parametrize(
    ("amount", "currency", "korean", "english"),
    [
        (Decimal("42000.000"), "KRW", "42,000원", "₩42,000"),
        (Decimal("0.000"), "KRW", "0원", "₩0"),
        (Decimal("-5000"), "KRW", "-5,000원", "-₩5,000"),
        (Decimal("1234567890"), "KRW", "1,234,567,890원", "₩1,234,567,890"),
        (Decimal("12.5"), "USD", "$12.50", "$12.50"),
        (Decimal("-1.25"), "USD", "-$1.25", "-$1.25"),
        (Decimal("1000"), "JPY", "¥1,000", "¥1,000"),
        (Decimal("9.9"), "CHF", "9.90 CHF", "9.90 CHF"),
        (Decimal("1.5"), "KWD", "1.500 KWD", "1.500 KWD"),
    ],
)
def test_money_in_the_orders_currency_and_the_active_language(amount, currency, korean, english):
    with translation.override("ko"):
        assert labels.money(amount, currency) == korean
    with translation.override("en"):
        assert labels.money(amount, currency) == english


def test_money_never_fails_on_a_bad_currency():
    assert labels.money(Decimal(5), "") == "5"
    assert labels.money(None, "KRW") == ""


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("카드", "card"), ("card", "card"), ("CARD", "card"), ("신용카드", "card"),
        ("가상계좌", "virtual_account"), ("vbank", "virtual_account"), ("VIRTUAL_ACCOUNT", "virtual_account"),
        ("virtual_account", "virtual_account"), ("trans", "transfer"), ("계좌이체", "transfer"), ("bank", "transfer"),
        ("휴대폰", "mobile"), ("MOBILE_PHONE", "mobile"), ("phone", "mobile"), ("간편결제", "easy_pay"),
        ("EASY_PAY", "easy_pay"), ("문화상품권", "gift_certificate"), ("kakaopay", "kakao_pay"), ("kakao_pay", "kakao_pay"),
        ("naverpay", "naver_pay"), ("", ""), ("something new", ""),
    ],
)  # fmt: skip
def test_every_pgs_method_name_maps_to_one_code(raw, code):
    assert labels.method_code(raw) == code


def test_method_labels_are_translated_and_unknown_ones_kept():
    with translation.override("ko"):
        assert labels.method("card") == "카드" and labels.method("VIRTUAL_ACCOUNT") == "가상계좌"
        assert labels.method("kakao_pay") == "카카오페이"
    with translation.override("en"):
        assert labels.method("카드") == "Card" and labels.method("가상계좌") == "Virtual account"
        assert labels.method("alipay_hk") == "alipay_hk"


def test_gateway_names(settings):
    assert labels.gateway("fake") == "Fake PG (for tests)"
    assert labels.gateway("gone") == "gone" and labels.gateway("") == ""
    settings.PGPAY = {
        **settings.PGPAY,
        "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "fake2": {"CLASS": "django_pgpay.gateways.fake.FakeGateway", "OPTIONS": {}}},
    }
    assert labels.gateway_names() == {"fake": "Fake PG (for tests) (fake)", "fake2": "Fake PG (for tests) (fake2)"}


def test_short_and_long_times(settings):
    kst = datetime.timezone(datetime.timedelta(hours=9))
    now = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=kst)
    moment = datetime.datetime(2026, 11, 21, 15, 30, tzinfo=datetime.timezone.utc)  # 11-22 00:30 in Seoul
    assert labels.short_time(moment, now=now) == "11-22 00:30"
    assert labels.short_time(moment.replace(year=2025), now=now) == "2025-11-22"
    assert labels.long_time(moment) == "2026-11-22 00:30:00"
    assert labels.short_time(None) == "" and labels.long_time(None) == ""


def test_status_badges_have_a_colour_for_every_status():
    from django_pgpay.status import OrderStatus

    assert {labels.status_class(s) for s in OrderStatus.values} >= {"pgpay-badge pgpay-badge-green", "pgpay-badge pgpay-badge-red"}
    assert set(labels.STATUS_COLOURS) == set(OrderStatus.values)


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
        assert money(amount, currency) == ko
    with translation.override("en"):
        assert money(amount, currency) == en


def test_the_template_filters(db):
    template = Template("{% load pgpay_labels %}{{ code|bank_label }} · {{ amount|amount_label:'KRW' }} · {{ 'Stripe'|pg_label }}")
    with translation.override("ko"):
        assert template.render(Context({"code": "092", "amount": Decimal(15000)})) == "토스뱅크 · 15,000원 · 스트라이프"
