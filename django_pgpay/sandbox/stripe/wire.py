"""Stripe's wire format: bracketed forms, parameters, error objects, ids, amounts as Stripe writes them.

Holds no state: parsing ``a[b][0][c]=1`` into nested dicts and lists, the
parameters each endpoint knows (anything else is ``parameter_unknown``, on a
GET as on a POST), Stripe's error object, its object ids and timestamps, and
the money facts of ``docs.stripe.com/currencies`` the emulator checks amounts
against.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ...money import MoneyError, exponent, from_minor
from ..base import Answer, ApiContext, ApiError
from ..wire import random_text
from ..wire import unix as ts  # noqa: F401 - Stripe writes times as Unix seconds

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

#: Keys under which digits are names, not list indices.
HASH_KEYS = frozenset({"metadata"})

#: Stripe's presentment currencies (docs.stripe.com/currencies, 2026), lowercase.
CURRENCIES = frozenset(
    """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd
    cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd
    hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad
    mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln
    pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs
    uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw
    """.split()
)

#: Minimum total of a payment, in minor units. Source: docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
#: (the table per currency: USD $0.50, EUR €0.50, GBP £0.30, JPY ¥50, HKD $4.00, MXN $10, THB ฿10 …; the same
#: figures are quoted by Automattic/jetpack extensions/shared/currencies.js). A currency the table does not list
#: (KRW among them) must convert to at least the minimum of the account's settlement currency, $0.50 for the
#: sandbox's US account: ₩700 at about ₩1,400 to the dollar (the rate is the sandbox's fixed assumption; Stripe
#: converts at the day's rate). Other unlisted currencies are not checked (unconfirmed).
MINIMUM_AMOUNTS = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500, "dkk": 250, "eur": 50,
    "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50,
    "pln": 200, "ron": 200, "sek": 300, "sgd": 50, "thb": 1000, "krw": 700,
}  # fmt: skip
#: The largest total Stripe takes (eight digits for most currencies; the sandbox allows twelve, as before).
MAXIMUM_AMOUNT = 999_999_999_999

#: Symbols the hosted page writes amounts with; other currencies show their code.
SYMBOLS = {"krw": "₩", "usd": "$", "jpy": "¥", "eur": "€", "gbp": "£"}

#: Checkout's ``locale`` values (SDK 16 ``SessionCreateParams``).
LOCALES = frozenset(
    """
    auto bg cs da de el en en-GB es es-419 et fi fil fr fr-CA hr hu id it ja ko lt lv ms mt nb nl pl pt
    pt-BR ro ru sk sl sv th tr vi zh zh-HK zh-TW
    """.split()
)


#: Top-level parameters of ``POST /v1/checkout/sessions`` (SDK 16 ``SessionCreateParams`` plus the
#: older ``payment_method_types``); anything else is ``parameter_unknown``, as at Stripe.
SESSION_PARAMS = frozenset(
    """
    adaptive_pricing after_expiration allow_promotion_codes allowed_payment_method_types automatic_tax
    billing_address_collection branding_settings cancel_url client_reference_id consent_collection currency
    custom_fields custom_text customer customer_account customer_creation customer_email customer_update
    discounts excluded_payment_method_types expand expires_at integration_identifier invoice_creation
    line_items locale managed_payments metadata mode name_collection optional_items origin_context
    payment_intent_data payment_method_collection payment_method_configuration payment_method_data
    payment_method_options payment_method_types permissions phone_number_collection redirect_on_completion
    return_url saved_payment_method_options setup_intent_data shipping_address_collection shipping_options
    submit_type subscription_data success_url tax_id_collection ui_mode wallet_options
    """.split()
)
LINE_ITEM_PARAMS = frozenset({"adjustable_quantity", "dynamic_tax_rates", "metadata", "price", "price_data", "quantity", "tax_rates"})
PRICE_DATA_PARAMS = frozenset({"currency", "product", "product_data", "recurring", "tax_behavior", "unit_amount", "unit_amount_decimal"})
PRODUCT_DATA_PARAMS = frozenset({"description", "images", "metadata", "name", "tax_code", "unit_label"})
INTENT_DATA_PARAMS = frozenset(
    """
    application_fee_amount capture_method description metadata on_behalf_of receipt_email setup_future_usage
    shipping statement_descriptor statement_descriptor_suffix transfer_data transfer_group
    """.split()
)
REFUND_PARAMS = frozenset(
    {
        "amount",
        "charge",
        "currency",
        "customer",
        "expand",
        "instructions_email",
        "metadata",
        "origin",
        "payment_intent",
        "reason",
        "refund_application_fee",
        "reverse_transfer",
    }
)
#: What each list (GET) endpoint takes (SDK 16 ``…ListParams``); any other name is a 400 ``parameter_unknown``.
PAGE_PARAMS = frozenset({"ending_before", "expand", "limit", "starting_after"})
LIST_PARAMS: dict[str, frozenset[str]] = {
    "checkout.session": PAGE_PARAMS
    | {"created", "customer", "customer_account", "customer_details", "payment_intent", "payment_link", "status", "subscription"},
    "refund": PAGE_PARAMS | {"charge", "created", "payment_intent"},
    "event": PAGE_PARAMS | {"created", "delivery_success", "type", "types"},
    "item": PAGE_PARAMS,
}
#: What a search or a retrieval (GET) takes.
SEARCH_PARAMS = frozenset({"expand", "limit", "page", "query"})
RETRIEVE_PARAMS = frozenset({"expand"})
INTENT_RETRIEVE_PARAMS = frozenset({"client_secret", "expand"})
#: ``created[…]`` comparisons of a list.
RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})


def random_id(prefix: str, length: int = 24) -> str:
    """A Stripe-shaped test id: ``cs_test_…`` for Checkout Sessions, ``pi_3…`` and friends otherwise."""
    body = random_text(length)
    if prefix == "cs":
        return f"cs_test_a1{body}{random_text(32)}"
    if prefix in ("pi", "ch", "re", "pm"):
        return f"{prefix}_3S{body}"
    return f"{prefix}_1S{body}"


def request_id() -> str:
    return "req_" + random_text(14)


class StripeError(ApiError):
    """A refusal written as Stripe's error object ``{"error": {type, code, message, param, …}}``.

    ``keep`` is False for what Stripe checks before the endpoint runs
    (parameters, unknown objects): such an answer is not kept under the
    request's ``Idempotency-Key``, so a corrected retry with the same key runs.
    """

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code=None, param=None, keep=True, headers=()):  # noqa: A002 - Stripe's field name
        super().__init__(code or type, message, status=status)
        self.type, self.stripe_code, self.param, self.keep = type, code, param, keep
        #: Extra answer headers (``Stripe-Should-Retry``).
        self.headers: tuple[tuple[str, str], ...] = headers

    def __str__(self) -> str:
        return f"{self.status} {self.stripe_code or self.type}: {self.message}"

    def body(self) -> dict[str, Any]:
        """Stripe's error object: ``code`` and ``doc_url`` when there is a code, ``param`` when one is at fault."""
        error: dict[str, Any] = {}
        if self.stripe_code:
            error.update(code=self.stripe_code, doc_url=f"https://stripe.com/docs/error-codes/{self.stripe_code.replace('_', '-')}")
        error["message"] = self.message
        if self.param:
            error["param"] = self.param
        error["type"] = self.type
        return error


def missing(param: str, message: str | None = None) -> StripeError:
    return StripeError(400, message or f"Missing required param: {param}.", code="parameter_missing", param=param, keep=False)


def invalid(param: str, message: str, code: str | None = None) -> StripeError:
    return StripeError(400, message, code=code, param=param, keep=False)


def not_emulated(param: str, what: str) -> StripeError:
    """A real Stripe feature the sandbox does not play; said plainly, never silently wrong."""
    return StripeError(400, f"The payment sandbox does not emulate {what}.", code="parameter_unknown", param=param, keep=False)


def no_such(kind: str, ident: str, param: str | None = None) -> StripeError:
    """404 ``resource_missing``: the object named in the URL's path does not exist."""
    return StripeError(404, f"No such {kind}: '{ident}'", code="resource_missing", param=param or kind.split(".")[-1], keep=False)


def no_such_param(kind: str, ident: Any, param: str) -> StripeError:
    """400 ``resource_missing`` naming the parameter: the object a POST parameter names does not exist (as at Stripe)."""
    return StripeError(400, f"No such {kind}: '{ident}'", code="resource_missing", param=param, keep=False)


def parse_form(text: str) -> dict[str, Any]:
    """Stripe's bracketed form (``a[b][0][c]=1``, ``a[]=1``) as nested dicts and lists of strings.

    A name used both as a value and as a hash (``a=1&a[b]=2``) is a 400, as
    at Stripe. Under ``metadata`` digits are keys, elsewhere list indices.
    """
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True, max_num_fields=2000):
        match = _KEY.match(raw_key)
        parts = [match.group(1), *_PART.findall(match.group(2))] if match else [raw_key]
        node: Any = root
        path = parts[0]
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if part != "":
                    raise invalid(path, f"Invalid array: {path}")
                if last:
                    node.append(value)
                    break
                node.append({})
                node = node[-1]
                continue
            if last:
                if isinstance(node.get(part), (dict, list)):
                    raise invalid(path, f"Invalid hash: {path}")
                node[part] = value
                break
            following = parts[depth + 1]
            child = node.get(part)
            if child is None:
                child = [] if following == "" else {}
                node[part] = child
            elif isinstance(child, str):
                if child == "" and following != "":
                    child = {}
                    node[part] = child
                else:
                    raise invalid(path, f"Invalid hash: {path}")
            node = child
            path = f"{path}[{following}]"
    return _lists(root)


def _lists(node: Any, key: str = "") -> Any:
    """Dicts keyed ``0``, ``1`` … become lists (in index order), except under metadata."""
    if isinstance(node, list):
        return [_lists(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v, k) for k, v in node.items()}
    if converted and key not in HASH_KEYS and all(k.isdigit() and len(k) < 6 for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def fingerprint_of(params: Any) -> str:
    return json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def integer(value: Any, param: str, *, minimum: int | None = None) -> int:
    """A form value that must be a whole number (``parameter_invalid_integer`` otherwise)."""
    text = value if isinstance(value, str) else ""
    body = text[1:] if text.startswith("-") else text
    if not body.isdigit() or not body.isascii() or len(body) > 18:
        raise StripeError(
            400,
            f"Invalid integer: {value if isinstance(value, str) else '(a hash)'}",
            code="parameter_invalid_integer",
            param=param,
            keep=False,
        )
    number = int(text)
    if minimum is not None and number < minimum:
        word = "positive integer" if minimum == 1 else f"integer of at least {minimum}"
        raise StripeError(400, f"Invalid {word}", code="parameter_invalid_integer", param=param, keep=False)
    return number


def string_value(value: Any, param: str, *, max_length: int = 5000, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise invalid(param, f"Invalid string: {param} must be a string, not a hash or an array.")
    if not value and not empty:
        raise StripeError(
            400,
            f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a parameter; however '{param}' cannot be unset. You should remove '{param}' from your request or supply a non-empty value.",
            code="parameter_invalid_empty",
            param=param,
            keep=False,
        )
    if len(value) > max_length:
        raise invalid(param, f"Invalid string: {value[:20]}...; must be at most {max_length} characters", code="invalid_string_length")
    return value


def metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe's metadata rules: up to 50 keys of up to 40 characters, values up to 500."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise invalid(param, f"Invalid hash: {param}")
    if len(value) > 50:
        raise invalid(param, "You can have at most 50 metadata keys.")
    result = {}
    for key, item in value.items():
        if len(key) > 40:
            raise invalid(
                f"{param}[{key}]",
                f"Metadata keys can have up to 40 characters, but you passed in a key that is {len(key)} characters: '{key}'",
            )
        if not isinstance(item, str):
            raise invalid(f"{param}[{key}]", f"Invalid string: metadata values must be strings ({param}[{key}]).")
        if len(item) > 500:
            raise invalid(
                f"{param}[{key}]",
                f"Metadata values can have up to 500 characters, but you passed in a value that is {len(item)} characters.",
            )
        if item != "":  # an empty value unsets the key
            result[key] = item
    return result


def currency(value: Any, param: str) -> str:
    code = value.strip().lower() if isinstance(value, str) else ""
    if code not in CURRENCIES:
        raise invalid(
            param,
            f"Invalid currency: {value if isinstance(value, str) else ''}. Stripe currently supports these currencies: {', '.join(sorted(CURRENCIES))}",
        )
    return code


def amount_text(minor: int, code: str) -> str:
    """How Stripe writes an amount in a message: ``₩20,001``, ``$10.50``, ``1.230 kwd``."""
    try:
        value = from_minor(minor, code, "stripe")
        places = exponent(code, "stripe")
    except MoneyError:
        return f"{minor} {code}"
    text = f"{value:,.{places}f}"
    symbol = SYMBOLS.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code}"


def major(minor: int, code: str) -> Decimal:
    return from_minor(minor, code, "stripe")


def luhn(number: str) -> bool:
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def unknown_params(params: dict[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    """``parameter_unknown`` for the first name Stripe would not know."""
    for name in params:
        if name not in allowed:
            full = f"{prefix}[{name}]" if prefix else name
            raise StripeError(400, f"Received unknown parameter: {full}", code="parameter_unknown", param=full, keep=False)


def answer(status: int, data: Any, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """Stripe's answers and events are pretty-printed JSON (two spaces), UTF-8."""
    return Answer(status, json_text(data), "application/json", headers)


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def from_ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=dt_timezone.utc)


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 5000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def request_id_of(ctx: ApiContext) -> str:
    """The call's ``Request-Id`` (made once per call)."""
    value = getattr(ctx, "stripe_request_id", None)
    if value is None:
        value = request_id()
        ctx.stripe_request_id = value
    return value


def optional_string(p: dict[str, Any], name: str, *, max_length: int = 5000) -> str | None:
    """A string parameter that may be left out (or sent empty)."""
    return None if p.get(name) in (None, "") else string_value(p[name], name, max_length=max_length)


def expand_param(params: dict[str, Any]) -> list[str]:
    """``expand`` as a list of dotted paths (``expand[]=a`` or ``expand[0]=a``)."""
    value = params.get("expand")
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid("expand", "Invalid array")
    return value
