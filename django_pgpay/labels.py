"""How amounts, PGs, banks, payment methods, statuses and times are shown to people.

The buyer's pages, the admin, the CSV export, the settlement view and the PDF
invoices show the same things; this module says once how:

* :func:`money`: an amount in its currency, in the active language:
  ``42,000원`` in Korean, ``₩42,000`` in English, ``$12.50`` for US dollars,
  ``12.50 CHF`` for a currency without a symbol here. The digits come from
  :mod:`django_pgpay.money` (KRW has none after the point, USD two).
* :func:`pg_label` and :func:`gateway`: the name buyers know a PG by, in the
  active language (토스페이먼츠 in Korean, "Toss Payments" in English).
* :func:`bank_label`: a virtual account's bank from the PG's code (Toss
  ``"20"``, Bootpay ``"020"``, PortOne V2 ``"WOORI"``): 우리은행, Woori Bank.
* :func:`method`: the PG's payment method (Toss says ``카드``, PortOne V1
  ``card``, PortOne V2 ``card``/``virtual_account``, Bootpay ``카드``, Stripe
  ``card``/``kakao_pay``) as one translated label: "Card" / "카드".
* :func:`status_class`: the CSS class of an order status badge.
* :func:`short_time`: a compact local time for list columns.
* :func:`changes`: what a webhook changed (its ledger row's ``reason``,
  ``"status PAID; cancel 5000 confirmed"``) as translated words.

Templates use them through ``{% load pgpay_labels %}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .money import MoneyError, normalize_currency, quantize
from .status import OrderStatus

#: Symbols written before the amount (in every language but Korean for KRW).
SYMBOLS = {"KRW": "₩", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "CN¥"}
#: Units written after the amount in Korean.
KOREAN_UNITS = {"KRW": "원"}


def _korean() -> bool:
    return (translation.get_language() or "").lower().startswith("ko")


def money(amount, currency: str = "KRW") -> str:
    """``amount`` of ``currency`` for people, in the active language (``42,000원``, ``$12.50``).

    Grouped digits, exactly the currency's decimals (never ``42000.000``); a
    minus sign in front for negative amounts (``-5,000원``, ``-$1.25``).
    """
    if amount is None:
        return ""
    try:
        code = normalize_currency(currency)
        value = quantize(Decimal(amount), code)
        if not value.is_finite():
            raise MoneyError(f"{amount!r} is not a finite amount")
    except (MoneyError, ArithmeticError, TypeError, ValueError):
        return f"{amount} {currency}".strip()
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,}"
    if _korean() and code in KOREAN_UNITS:
        return f"{sign}{digits}{KOREAN_UNITS[code]}"
    if code in SYMBOLS:
        return f"{sign}{SYMBOLS[code]}{digits}"
    return f"{sign}{digits} {code}"


# --- payment methods ------------------------------------------------------------------

#: Method code -> label. The codes are this library's own (PortOne V2's names).
METHOD_LABELS = {
    "card": _("Card"),
    "virtual_account": _("Virtual account"),
    "transfer": _("Bank transfer"),
    "mobile": _("Mobile phone"),
    "easy_pay": _("Easy pay"),
    "gift_certificate": _("Gift certificate"),
    "point": _("Points"),
    "kakao_pay": pgettext_lazy("payment method", "Kakao Pay"),
    "naver_pay": pgettext_lazy("payment method", "Naver Pay"),
    "toss_pay": pgettext_lazy("payment method", "Toss Pay"),
    "payco": pgettext_lazy("payment method", "PAYCO"),
    "samsung_pay": pgettext_lazy("payment method", "Samsung Pay"),
    "apple_pay": pgettext_lazy("payment method", "Apple Pay"),
    "google_pay": pgettext_lazy("payment method", "Google Pay"),
}

#: What the PGs send (lower-cased, ``-`` and spaces as ``_``) -> method code.
METHOD_ALIASES = {
    # Toss (Korean, or English under Accept-Language: en-US), Bootpay (Korean), PortOne V1/V2, Stripe.
    "카드": "card", "신용카드": "card", "체크카드": "card", "card": "card", "credit_card": "card",
    "가상계좌": "virtual_account", "virtual_account": "virtual_account", "vbank": "virtual_account",
    "계좌이체": "transfer", "transfer": "transfer", "trans": "transfer", "bank": "transfer",
    "bank_transfer": "transfer", "실시간계좌이체": "transfer",
    "휴대폰": "mobile", "mobile_phone": "mobile", "mobile": "mobile", "phone": "mobile",
    "간편결제": "easy_pay", "easy_pay": "easy_pay", "easypay": "easy_pay",
    "상품권": "gift_certificate", "문화상품권": "gift_certificate", "도서문화상품권": "gift_certificate",
    "게임문화상품권": "gift_certificate", "gift_certificate": "gift_certificate",
    "culture_gift_certificate": "gift_certificate", "book_gift_certificate": "gift_certificate",
    "game_gift_certificate": "gift_certificate", "cultureland": "gift_certificate",
    "booknlife": "gift_certificate", "smartculture": "gift_certificate",
    "포인트": "point", "point": "point",
    "카카오페이": "kakao_pay", "kakaopay": "kakao_pay", "kakao_pay": "kakao_pay",
    "네이버페이": "naver_pay", "naverpay": "naver_pay", "naver_pay": "naver_pay",
    "토스페이": "toss_pay", "tosspay": "toss_pay", "toss_pay": "toss_pay",
    "페이코": "payco", "payco": "payco",
    "삼성페이": "samsung_pay", "samsungpay": "samsung_pay", "samsung_pay": "samsung_pay",
    "apple_pay": "apple_pay", "applepay": "apple_pay", "google_pay": "google_pay", "googlepay": "google_pay",
}  # fmt: skip


def method_code(raw) -> str:
    """The library's code for a PG's method name (``"카드"`` -> ``"card"``); ``""`` when unknown."""
    key = str(raw or "").strip().lower().replace("-", "_").replace(" ", "_")
    return METHOD_ALIASES.get(key, "")


def method(raw) -> str:
    """The translated label of a PG's payment method (``"카드"``, ``"card"`` -> "Card" / "카드").

    A method this module does not know is shown as the PG sent it.
    """
    code = method_code(raw)
    if code:
        return str(METHOD_LABELS[code])
    return str(raw or "")


# --- gateways, banks and statuses -------------------------------------------------------

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
    # (financial institution codes of the KFTC: 3 digits, Toss uses the last 2 but "06" for KB (refund_accounts.
    # TOSS_BANK_CODES); PortOne V2's enum, its own spelling first: bank_enum() sends it), name
    (("002",), ("KDB",), pgettext_lazy("bank", "KDB Korea Development Bank")),
    (("003",), ("IBK",), pgettext_lazy("bank", "IBK Industrial Bank of Korea")),
    (("004", "006"), ("KOOKMIN", "KB"), pgettext_lazy("bank", "KB Kookmin Bank")),
    (("007",), ("SUHYUP",), pgettext_lazy("bank", "Sh Suhyup Bank")),
    (("011",), ("NONGHYUP", "NH"), pgettext_lazy("bank", "NH NongHyup Bank")),
    (("012",), ("LOCAL_NONGHYUP",), pgettext_lazy("bank", "Local NongHyup")),
    (("020",), ("WOORI",), pgettext_lazy("bank", "Woori Bank")),
    (("023",), ("STANDARD_CHARTERED", "SC", "SC_FIRST"), pgettext_lazy("bank", "SC First Bank")),
    (("027",), ("CITI",), pgettext_lazy("bank", "Citibank Korea")),
    (("031",), ("DAEGU", "IM"), pgettext_lazy("bank", "iM Bank (Daegu)")),
    (("032",), ("BUSAN",), pgettext_lazy("bank", "Busan Bank")),
    (("034",), ("KWANGJU", "GWANGJU"), pgettext_lazy("bank", "Gwangju Bank")),
    (("035",), ("JEJU",), pgettext_lazy("bank", "Jeju Bank")),
    (("037",), ("JEONBUK",), pgettext_lazy("bank", "Jeonbuk Bank")),
    (("039",), ("KYONGNAM", "GYEONGNAM"), pgettext_lazy("bank", "Kyongnam Bank")),
    (("045",), ("KFCC", "SAEMAUL"), pgettext_lazy("bank", "MG Saemaul Geumgo")),
    (("048",), ("SHINHYUP",), pgettext_lazy("bank", "Shinhyup")),
    (("050",), ("SAVINGS_BANK",), pgettext_lazy("bank", "Savings bank")),
    (("054",), ("HSBC",), pgettext_lazy("bank", "HSBC")),
    (("064",), ("NFCF", "SANLIM"), pgettext_lazy("bank", "Sanlim Johap")),
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


def bank_choices() -> list[tuple[str, str]]:
    """``(3-digit KFTC code, name)`` of each bank, for a form's select (a refund account)."""
    return [(codes[0], name) for codes, _enums, name in _BANKS]


def bank_enum(code: str) -> str:
    """PortOne V2's name of the bank with the KFTC ``code`` (``"088"`` -> ``"SHINHAN"``); "" for none."""
    return next((enums[0] for codes, enums, _name in _BANKS if code in codes), "")


def _pg_names() -> dict[str, str]:
    """``{alias: pg_name}`` of every configured gateway (a broken entry: its alias)."""
    from . import conf

    names = {}
    for alias in conf.gateway_aliases():
        try:
            names[alias] = str(getattr(conf.get_gateway(alias), "pg_name", "") or alias)
        except Exception:  # noqa: BLE001 - a broken entry is reported by the system checks
            names[alias] = alias
    return names


def pg_label(value: Any) -> str:
    """The name buyers know a PG by, in the active language (토스페이먼츠, "Toss Payments").

    ``value`` is an order (its gateway), a gateway, a gateway alias or a
    ``pg_name``; a PG this module does not know keeps its own name.
    """
    name = getattr(value, "pg_name", None)
    if name is None:
        alias = str(value if isinstance(value, str) else getattr(value, "gateway", "") or "")
        name = _pg_names().get(alias, alias)
    return str(PG_NAMES.get(str(name), name))


def gateway_names() -> dict[str, str]:
    """``{alias: display name}`` of every configured gateway, for staff (see :func:`gateway`)."""
    names = {alias: pg_label(pg_name) for alias, pg_name in _pg_names().items()}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {alias: (f"{name} ({alias})" if counts[name] > 1 else name) for alias, name in names.items()}


def gateway(alias: str) -> str:
    """The PG's name for a gateway alias, for staff: :func:`pg_label`, told apart by alias.

    When two aliases lead to the same PG (two accounts), the alias follows in
    brackets: "PortOne (portone-b)". An alias that is not configured is shown
    as it is.
    """
    if not alias:
        return ""
    return gateway_names().get(alias, alias)


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


#: Order status -> badge colour class (``pgpay-badge-<colour>``, see static/django_pgpay/admin.css).
STATUS_COLOURS = {
    "READY": "grey",
    "WAITING_FOR_DEPOSIT": "blue",
    "PAID": "green",
    "PARTIAL_CANCELED": "orange",
    "CANCELED": "purple",
    "FAILED": "red",
    "EXPIRED": "grey",
}


def no_invoice(order) -> str:
    """Why ``order`` (never paid) has no invoice: not *yet* while it may still be paid, never once it expired or failed."""
    if order.status in (OrderStatus.EXPIRED, OrderStatus.FAILED):
        return str(_("There is no invoice for this order: it was never paid."))
    return str(_("There is no invoice for this order yet: it has not been paid."))


def status_class(status: str) -> str:
    """``pgpay-badge pgpay-badge-green``: the CSS classes of an order status badge."""
    return f"pgpay-badge pgpay-badge-{STATUS_COLOURS.get(str(status), 'grey')}"


#: Ledger row status -> badge colour.
ROW_COLOURS = {"succeeded": "green", "failed": "red", "pending": "orange", "unknown": "orange"}


def row_class(status: str) -> str:
    """The CSS classes of a ledger row's status badge."""
    return f"pgpay-badge pgpay-badge-{ROW_COLOURS.get(str(status), 'grey')}"


# --- times ------------------------------------------------------------------------------


def short_time(value, *, now=None) -> str:
    """A compact local time for list columns: ``11-22 14:05`` this year, ``2025-11-22`` before."""
    if value is None:
        return ""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    now = timezone.localtime(now or timezone.now())
    if local.year == now.year:
        return local.strftime("%m-%d %H:%M")
    return local.strftime("%Y-%m-%d")


def long_time(value) -> str:
    """``2026-11-22 14:05:09`` in the current time zone (titles, the order page)."""
    if value is None:
        return ""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return local.strftime("%Y-%m-%d %H:%M:%S")


#: The bookkeeping's words for what a webhook changed (ledger row ``reason``, joined by "; ").
_CHANGE_WORDS = {
    "virtual account issued": _("virtual account issued"),
    "withdrawal": _("virtual account closed"),
    "compensation": _("a second payment is being refunded"),
    "confirm failed": _("payment failed"),
    "deposit reversed": _("the deposit was taken back"),
    "amount mismatch": _("the amount did not match the order"),
}
#: ``(pattern, sentence)``: a change with an amount or a status in it.
_CHANGE_PATTERNS = (
    (re.compile(r"^status (?P<status>[A-Z_]+)$"), _("status changed to %(status)s")),
    (re.compile(r"^(?:cancel|refund) (?P<amount>[\d.]+) confirmed$"), _("cancel of %(amount)s confirmed")),
    (re.compile(r"^(?:cancel|refund) (?P<amount>[\d.]+) found at the PG$"), _("cancel of %(amount)s found at the PG")),
    (re.compile(r"^(?:cancel|refund) (?P<amount>[\d.]+) not found at the PG$"), _("cancel of %(amount)s not found at the PG")),
    (re.compile(r"^(?:cancel|refund) (?P<amount>[\d.]+) failed at the PG$"), _("cancel of %(amount)s failed at the PG")),
    (re.compile(r"^refund (?P<amount>[\d.]+) that failed given back again at the PG$"), _("refund of %(amount)s made again at the PG")),
)


def changes(reason: str, currency: str = "KRW") -> str:
    """A webhook ledger row's ``reason`` in the active language: ``"status PAID"`` -> "상태 → 결제 완료".

    The bookkeeping writes what a delivery changed in fixed English words
    (``"status PAID; cancel 5000 confirmed"``); each part it knows is
    translated, anything else is shown as written.
    """
    statuses = dict(OrderStatus.choices)
    shown = []
    for part in (p.strip() for p in str(reason or "").split(";")):
        if not part:
            continue
        if part in _CHANGE_WORDS:
            shown.append(str(_CHANGE_WORDS[part]))
            continue
        for pattern, sentence in _CHANGE_PATTERNS:
            match = pattern.match(part)
            if match:
                values = match.groupdict()
                if "status" in values:
                    values["status"] = str(statuses.get(values["status"], values["status"]))
                if "amount" in values:
                    values["amount"] = money(values["amount"], currency)  # text money() cannot read is shown as written
                shown.append(str(sentence) % values)
                break
        else:
            shown.append(part)
    return "; ".join(shown)


#: The verbose names of TimeStampedModel's fields, here so that this app's
#: catalogue translates them (django-model-utils ships no Korean).
TIMESTAMP_LABELS = {"created": _("created"), "modified": _("modified")}
