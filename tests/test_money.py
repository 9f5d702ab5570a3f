from decimal import Decimal

import pytest

from django_pgpay import money


@pytest.mark.parametrize(
    "amount, currency, scheme, minor",
    [
        ("15000", "KRW", "iso", 15000),
        ("15000", "krw", "stripe", 15000),
        ("10.50", "USD", "iso", 1050),
        ("10.5", "USD", "stripe", 1050),
        ("0.01", "EUR", "iso", 1),
        ("1.230", "KWD", "stripe", 1230),
        ("1.234", "KWD", "iso", 1234),
        ("500", "JPY", "stripe", 500),
        ("3000000000", "KRW", "iso", 3000000000),
        ("12", "MGA", "stripe", 12),
        ("12", "MGA", "iso", 1200),
    ],
)
def test_to_minor(amount, currency, scheme, minor):
    assert money.to_minor(Decimal(amount), currency, scheme) == minor
    assert money.from_minor(minor, currency, scheme) == Decimal(amount)


@pytest.mark.parametrize(
    "amount, currency, scheme",
    [("15000.5", "KRW", "iso"), ("10.505", "USD", "iso"), ("1.234", "KWD", "stripe")],
)
def test_to_minor_refuses_lost_precision(amount, currency, scheme):
    with pytest.raises(money.MoneyError):
        money.to_minor(Decimal(amount), currency, scheme)


def test_floats_are_refused_everywhere():
    with pytest.raises(money.MoneyError):
        money.to_minor(10.5, "USD")
    with pytest.raises(money.MoneyError):
        money.parse_amount(10.5)
    with pytest.raises(money.MoneyError):
        money.from_minor(10.0, "USD")


@pytest.mark.parametrize("text", ["", "abc", "1e5", "NaN", "Infinity", "1,000", "+5", " ", "1.2.3", ".5", "5.", "１２"])
def test_parse_amount_rejects_junk(text):
    with pytest.raises(money.MoneyError):
        money.parse_amount(text)


def test_parse_amount_checks_the_currency_precision():
    assert money.parse_amount("15000", "KRW") == Decimal(15000)
    assert money.parse_amount("-3", "KRW") == Decimal(-3)
    with pytest.raises(money.MoneyError):
        money.parse_amount("150.5", "KRW")
    assert money.parse_amount("10.50", "USD") == Decimal("10.50")
    with pytest.raises(money.MoneyError):
        money.parse_amount("10" * 30)


def test_json_numbers_and_formatting():
    assert money.to_json_number(Decimal("15000.000"), "KRW") == 15000
    assert isinstance(money.to_json_number(Decimal("15000.000"), "KRW"), int)
    assert money.to_json_number(Decimal("181.5"), "USD") == Decimal("181.50")
    assert money.format_amount(Decimal("1234567"), "KRW") == "1,234,567 KRW"
    assert money.format_amount(Decimal("10.5"), "usd") == "10.50 USD"


def test_currency_codes():
    assert money.normalize_currency(" krw ") == "KRW"
    for bad in ["", "KR", "KRWW", "K1W", "원원원"]:
        with pytest.raises(money.MoneyError):
            money.normalize_currency(bad)


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("30,000", "KRW", Decimal(30000)),
        ("12.50", "USD", Decimal("12.50")),
        ("1.000", "KWD", Decimal(1)),
        ("1,000.5", "USD", Decimal("1000.5")),
    ],
)
def test_typed_amounts_read_as_typed(text, currency, amount):
    assert money.parse_typed_amount(text, currency) == amount


@pytest.mark.parametrize("text", ["1.000", "1.0", "10.5", "1,000.000", "0.0"])
def test_a_decimal_point_in_won_is_refused_not_read_as_one(text):
    """``1.000`` is one thousand in much of Europe: for a currency without decimals it is refused, never read as 1."""
    with pytest.raises(money.WholeUnitsOnly):
        money.parse_typed_amount(text, "KRW")
    with pytest.raises(money.WholeUnitsOnly):
        money.parse_typed_amount(text, "JPY")
