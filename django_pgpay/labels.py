"""How amounts, payment methods, gateways, statuses and times are shown to people.

The admin, the CSV export, the settlement view and the PDF invoices show the
same things; this module says once how:

* :func:`money`: an amount in its currency, in the active language:
  ``42,000원`` in Korean, ``₩42,000`` in English, ``$12.50`` for US dollars,
  ``12.50 CHF`` for a currency without a symbol here. The digits come from
  :mod:`django_pgpay.money` (KRW has none after the point, USD two).
* :func:`method`: the PG's payment method (Toss says ``카드``, PortOne V1
  ``card``, PortOne V2 ``card``/``virtual_account``, Bootpay ``카드``, Stripe
  ``card``/``kakao_pay``) as one translated label: "Card" / "카드".
* :func:`gateway`: a gateway alias as the PG's name ("Toss Payments").
* :func:`status_class`: the CSS class of an order status badge.
* :func:`short_time`: a compact local time for list columns.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .money import MoneyError, normalize_currency, quantize

#: Symbols written before the amount (in every language but Korean for KRW).
SYMBOLS = {"KRW": "₩", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
#: Units written after the amount in Korean.
KOREAN_UNITS = {"KRW": "원"}


def _korean() -> bool:
    return (translation.get_language() or "").lower().startswith("ko")


def money(amount, currency: str) -> str:
    """``amount`` of ``currency`` for people, in the active language (``42,000원``, ``$12.50``).

    Grouped digits, exactly the currency's decimals (never ``42000.000``); a
    minus sign in front for negative amounts (``-5,000원``, ``-$1.25``).
    """
    if amount is None:
        return ""
    try:
        code = normalize_currency(currency)
        value = quantize(Decimal(amount), code)
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


# --- gateways and statuses ------------------------------------------------------------


def gateway(alias: str) -> str:
    """The PG's name for a gateway alias ("Toss Payments"); the alias when it is not configured.

    When two aliases lead to the same PG (two accounts), the alias follows in
    brackets: "PortOne (portone-b)".
    """
    if not alias:
        return ""
    names = gateway_names()
    return names.get(alias, alias)


def gateway_names() -> dict[str, str]:
    """``{alias: display name}`` of every configured gateway (see :func:`gateway`)."""
    from . import conf

    names = {}
    for alias in conf.gateway_aliases():
        try:
            names[alias] = str(getattr(conf.get_gateway(alias), "pg_name", "") or alias)
        except Exception:  # noqa: BLE001 - a broken entry is reported by the system checks
            names[alias] = alias
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {alias: (f"{name} ({alias})" if counts[name] > 1 else name) for alias, name in names.items()}


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


#: The verbose names of TimeStampedModel's fields, here so that this app's
#: catalogue translates them (django-model-utils ships no Korean).
TIMESTAMP_LABELS = {"created": _("created"), "modified": _("modified")}
