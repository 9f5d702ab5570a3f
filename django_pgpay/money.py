"""Money is a :class:`~decimal.Decimal` plus an ISO 4217 currency code.

This module is the only place where amounts become integers of a currency's
minor unit (what Stripe sends) or come back from them. There is no float
anywhere: ``to_minor(Decimal("10.50"), "USD") == 1050`` and
``to_minor(Decimal("15000"), "KRW") == 15000``.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

#: ISO 4217 exponents that differ from the default of 2 (ISO 4217 list one, 2024).
ISO_EXPONENTS = {
    # zero decimals
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four decimals
    "CLF": 4, "UYW": 4,
}  # fmt: skip

#: Stripe's zero-decimal currencies (docs.stripe.com/currencies#zero-decimal).
#: MGA is two-decimal in ISO but zero-decimal at Stripe; ISK is sent ×100 by
#: Stripe for backwards compatibility, so it is *not* in this list.
STRIPE_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
#: Stripe's three-decimal currencies: minor units ×1000, last digit must be 0.
STRIPE_THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

#: The largest amount the models store (``max_digits=19, decimal_places=3``).
MAX_AMOUNT = Decimal("9999999999999999.999")


class MoneyError(ValueError):
    """An amount that is not valid money for its currency (bad text, precision, sign)."""


class WholeUnitsOnly(MoneyError):
    """A typed amount with a decimal point, for a currency without decimals (``1.000`` for KRW).

    Such text is a European thousands separator (``1.000`` for one thousand) or a
    slip as often as a decimal amount: it is refused rather than read as 1.
    """


def normalize_currency(currency: str) -> str:
    """Return the upper-case ISO code, or raise :class:`MoneyError`."""
    code = (currency or "").strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code")
    return code


def exponent(currency: str, scheme: str = "iso") -> int:
    """Digits after the decimal point for ``currency``.

    ``scheme="stripe"`` follows Stripe's table, which differs from ISO for a few
    currencies (MGA is zero-decimal there).
    """
    code = normalize_currency(currency)
    if scheme == "stripe":
        if code in STRIPE_ZERO_DECIMAL:
            return 0
        if code in STRIPE_THREE_DECIMAL:
            return 3
        return 2
    return ISO_EXPONENTS.get(code, 2)


def parse_amount(value, currency: str | None = None) -> Decimal:
    """Turn text or an int/Decimal from a request into a Decimal, strictly.

    Rejects floats, NaN, infinities, exponents, signs other than a leading
    minus, and (when ``currency`` is given) more decimals than the currency has.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError("amounts must not be floats")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40:
            raise MoneyError(f"{value!r} is not an amount")
        body = text[1:] if text[0] == "-" else text
        if not body or not all(c.isdigit() or c == "." for c in body) or body.count(".") > 1:
            raise MoneyError(f"{value!r} is not an amount")
        if not body.isascii() or body.startswith(".") or body.endswith("."):
            raise MoneyError(f"{value!r} is not an amount")
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - guarded above
            raise MoneyError(f"{value!r} is not an amount") from exc
    else:
        raise MoneyError(f"{value!r} is not an amount")
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not a finite amount")
    if abs(amount) > MAX_AMOUNT:
        raise MoneyError(f"{value!r} is larger than the largest amount stored")
    if currency is not None:
        places = exponent(currency)
        if amount != amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):
            raise MoneyError(f"{value!r} has more decimals than {normalize_currency(currency)} allows")
    return amount


_TYPED_AMOUNT = re.compile(r"^(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?$")
#: Full-width digits, comma and full stop (a Korean or Japanese input method in full-width mode) -> ASCII.
_FULL_WIDTH = str.maketrans("０１２３４５６７８９，．", "0123456789,.")
#: The marks of a currency a person may type around its amount: 1000원, ₩1,000 (also the full-width ￦).
_CURRENCY_MARKS = {"KRW": (("₩", "￦"), ("원",))}


def parse_typed_amount(text, currency: str) -> Decimal:
    """An amount a person typed into a form: ``30000``, ``30,000`` or ``12.50``, strictly.

    Surrounding spaces (ASCII only) are dropped; thousands separators are
    accepted only where they group digits by three (``1,0,0,0`` is refused, not
    read as 1,000). Full-width digits (``１０００``, a Korean input method's) are
    read as digits, and the won's marks around a KRW amount (``1,000원``,
    ``₩1,000``) are dropped. Anything else (an empty field, a lone comma, a no-break
    or ideographic space, a control character, a sign, an exponent, more
    decimals than the currency has) raises :class:`MoneyError`: an amount a
    shop cannot read is never taken to mean "everything". A decimal point in an
    amount of a currency without decimals (``1.000`` or ``1.0`` won) raises
    :class:`WholeUnitsOnly`: ``1.000`` may mean one thousand as well as one.
    """
    if not isinstance(text, str):
        raise MoneyError(f"{text!r} is not an amount")
    body = text.strip(" \t\r\n").translate(_FULL_WIDTH)
    prefixes, suffixes = _CURRENCY_MARKS.get(normalize_currency(currency), ((), ()))
    body = body.removeprefix(next((mark for mark in prefixes if body.startswith(mark)), ""))
    body = body.removesuffix(next((mark for mark in suffixes if body.endswith(mark)), "")).strip(" ")
    if not body or len(body) > 40 or not _TYPED_AMOUNT.match(body):
        raise MoneyError(f"{text!r} is not an amount")
    if "." in body and exponent(currency) == 0:
        raise WholeUnitsOnly(f"{text!r} has a decimal point; {normalize_currency(currency)} has no decimals")
    return parse_amount(body.replace(",", ""), currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """``amount`` with exactly the currency's number of decimals (for display and PG bodies)."""
    places = exponent(currency)
    return Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def to_minor(amount: Decimal, currency: str, scheme: str = "iso") -> int:
    """Integer minor units of ``amount``; raises if precision would be lost."""
    if isinstance(amount, float):
        raise MoneyError("amounts must not be floats")
    amount = Decimal(amount)
    places = exponent(currency, scheme)
    scaled = amount.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} {normalize_currency(currency)} has more decimals than its minor unit allows")
    minor = int(scaled)
    if scheme == "stripe" and normalize_currency(currency) in STRIPE_THREE_DECIMAL and minor % 10:
        raise MoneyError(f"Stripe needs {normalize_currency(currency)} amounts whose last minor digit is 0")
    return minor


def from_minor(minor: int, currency: str, scheme: str = "iso") -> Decimal:
    """The Decimal amount of ``minor`` units of ``currency``."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise MoneyError(f"{minor!r} is not an integer number of minor units")
    return Decimal(minor).scaleb(-exponent(currency, scheme))


def to_json_number(amount: Decimal, currency: str) -> int | Decimal:
    """The amount as a PG expects it in a JSON body in major units.

    KRW and other zero-decimal currencies become ``int`` (``15000``); others stay
    a Decimal quantized to the currency (serialise it with a Decimal-aware
    encoder, never through float).
    """
    value = quantize(amount, currency)
    if exponent(currency) == 0:
        return int(value)
    return value


def same_amount(a, b) -> bool:
    """True when two amounts are equal as numbers (``15000 == 15000.000``)."""
    return Decimal(a) == Decimal(b)


def format_amount(amount: Decimal, currency: str) -> str:
    """``15,000 KRW`` / ``10.50 USD``: grouped digits, the currency's decimals."""
    value = quantize(amount, currency)
    return f"{value:,} {normalize_currency(currency)}"
