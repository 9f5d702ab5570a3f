"""What a buyer reads: the PGs' and the banks' names, and amounts, in the page's language.

A gateway's ``pg_name`` is its name in English (``"Toss Payments"``); buyers in
Korea know the PGs by their Korean names (토스페이먼츠). :func:`pg_label` gives
the name in the active language. PGs name a virtual account's bank by a code
(Toss ``"20"``, Bootpay ``"020"``, PortOne V2 ``"WOORI"``); :func:`bank_label`
turns any of them into the bank's name (우리은행, Woori Bank).
:func:`amount_label` writes an amount as buyers expect it: ``30,000원`` in
Korean, ``₩30,000`` in English. Templates use them through
``{% load pgpay_labels %}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import get_language, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from .money import MoneyError, quantize

#: ``pg_name`` of each gateway class -> the name shown to buyers.
PG_NAMES = {
    "Toss Payments": _("Toss Payments"),
    "PortOne": _("PortOne"),
    "PortOne V2": _("PortOne V2"),
    "Bootpay": _("Bootpay"),
    "Stripe": _("Stripe"),
    "Fake PG": _("Fake PG (for tests)"),
}

_BANKS = (
    # (financial institution codes of the KFTC: 3 digits, Toss uses the last 2; PortOne V2's enum), name
    (("002",), ("KDB",), pgettext_lazy("bank", "KDB Korea Development Bank")),
    (("003",), ("IBK",), pgettext_lazy("bank", "IBK Industrial Bank of Korea")),
    (("004", "006"), ("KOOKMIN", "KB"), pgettext_lazy("bank", "KB Kookmin Bank")),
    (("007",), ("SUHYUP",), pgettext_lazy("bank", "Sh Suhyup Bank")),
    (("011",), ("NONGHYUP", "NH"), pgettext_lazy("bank", "NH NongHyup Bank")),
    (("012",), ("LOCAL_NONGHYUP",), pgettext_lazy("bank", "Local NongHyup")),
    (("020",), ("WOORI",), pgettext_lazy("bank", "Woori Bank")),
    (("023",), ("SC", "SC_FIRST"), pgettext_lazy("bank", "SC First Bank")),
    (("027",), ("CITI",), pgettext_lazy("bank", "Citibank Korea")),
    (("031",), ("DAEGU", "IM"), pgettext_lazy("bank", "iM Bank (Daegu)")),
    (("032",), ("BUSAN",), pgettext_lazy("bank", "Busan Bank")),
    (("034",), ("KWANGJU", "GWANGJU"), pgettext_lazy("bank", "Gwangju Bank")),
    (("035",), ("JEJU",), pgettext_lazy("bank", "Jeju Bank")),
    (("037",), ("JEONBUK",), pgettext_lazy("bank", "Jeonbuk Bank")),
    (("039",), ("KYONGNAM", "GYEONGNAM"), pgettext_lazy("bank", "Kyongnam Bank")),
    (("045",), ("SAEMAUL",), pgettext_lazy("bank", "MG Saemaul Geumgo")),
    (("048",), ("SHINHYUP",), pgettext_lazy("bank", "Shinhyup")),
    (("050",), ("SAVINGS_BANK",), pgettext_lazy("bank", "Savings bank")),
    (("054",), ("HSBC",), pgettext_lazy("bank", "HSBC")),
    (("064",), ("SANLIM",), pgettext_lazy("bank", "Sanlim Johap")),
    (("071",), ("POST", "KOREA_POST"), pgettext_lazy("bank", "Korea Post")),
    (("081",), ("HANA",), pgettext_lazy("bank", "Hana Bank")),
    (("088",), ("SHINHAN",), pgettext_lazy("bank", "Shinhan Bank")),
    (("089",), ("K_BANK", "KBANK"), pgettext_lazy("bank", "K Bank")),
    (("090",), ("KAKAO", "KAKAO_BANK", "KAKAOBANK"), pgettext_lazy("bank", "KakaoBank")),
    (("092",), ("TOSS", "TOSS_BANK", "TOSSBANK"), pgettext_lazy("bank", "Toss Bank")),
)

#: Bank code (3 digits, 2 digits or PortOne V2's enum) -> the bank's name.
BANKS: dict[str, Any] = {}
for _codes, _enums, _name in _BANKS:
    for _code in _codes:
        BANKS[_code] = _name
        BANKS[_code[1:]] = _name
    for _enum in _enums:
        BANKS[_enum] = _name
del _codes, _enums, _name, _code, _enum


def pg_label(value: Any) -> str:
    """The name buyers know a PG by, in the active language.

    ``value`` is an order (its gateway), a gateway, a gateway alias or a
    ``pg_name``; a PG this module does not know keeps its own name.
    """
    name = getattr(value, "pg_name", None)
    if name is None and hasattr(value, "get_gateway"):
        try:
            name = value.get_gateway().pg_name
        except Exception:  # noqa: BLE001 - a gateway no longer configured: show what the order says
            name = getattr(value, "gateway", "") or ""
    if name is None:
        from . import conf

        alias = str(value or "")
        try:
            name = conf.get_gateway(alias).pg_name if alias in conf.gateway_aliases() else alias
        except Exception:  # noqa: BLE001 - a gateway that cannot be built: its alias will do
            name = alias
    return str(PG_NAMES.get(str(name), name))


def bank_label(value: Any) -> str:
    """A bank's name from a PG's bank code, or from an order's ``pg_data``.

    With ``pg_data`` (a mapping), the code in ``vbank_bank_code`` is looked up
    first, then the PG's own ``vbank_bank_name``. An unknown code is returned
    as it is.
    """
    if isinstance(value, Mapping):
        code = str(value.get("vbank_bank_code") or "")
        name = BANKS.get(code.strip().upper())
        return str(name or value.get("vbank_bank_name") or code)
    code = str(value or "")
    name = BANKS.get(code.strip().upper())
    return str(name) if name is not None else code


#: Symbols written before an amount (in every language but Korean for KRW).
SYMBOLS = {"KRW": "₩", "USD": "$", "JPY": "¥", "EUR": "€", "GBP": "£", "CNY": "CN¥"}


def amount_label(amount: Any, currency: str = "KRW") -> str:
    """``amount`` in ``currency`` as buyers read it: ``30,000원`` (Korean), ``₩30,000``, ``$12.50``, ``12.50 CHF``."""
    currency = str(currency or "KRW").upper()
    try:
        number = f"{quantize(amount, currency):,}"
    except (MoneyError, TypeError, ValueError, ArithmeticError):
        return f"{amount} {currency}"
    if currency == "KRW" and (get_language() or "").startswith("ko"):
        return f"{number}원"
    symbol = SYMBOLS.get(currency)
    if symbol is None:
        return f"{number} {currency}"
    return f"-{symbol}{number[1:]}" if number.startswith("-") else f"{symbol}{number}"
