"""Stripe Checkout Sessions: creating one (``mode=payment`` on the hosted page), reading it, expiring it.

``POST /v1/checkout/sessions`` checks its parameters the way Stripe does
(unknown names, line items with ``price_data``, one currency, the minimum and
maximum charge, URLs, ``expires_at`` 30 minutes to 24 hours ahead) and refuses
what the sandbox does not play (subscriptions, embedded modes, customers,
discounts) in plain words rather than answering wrongly.
"""

from __future__ import annotations

import copy
import re
import time
from datetime import datetime
from typing import Any

from django.urls import reverse

from ..base import Answer, ApiContext
from ..models import SandboxPayment
from . import objects, wire
from .wire import StripeError

#: A Checkout Session lives 30 minutes to 24 hours (stripe.md §2).
EXPIRES_RANGE = (30 * 60, 24 * 3600)
DEFAULT_EXPIRY = 24 * 3600
#: The delayed method the hosted page offers (a US bank debit: ``processing``, settled later).
DELAYED_METHOD = "us_bank_account"
#: Payment methods the hosted page plays; others a Session may name are not shown.
EMULATED_METHODS = ("card", DELAYED_METHOD)
#: Parameters of real Stripe features the sandbox does not play.
NOT_EMULATED = ("return_url", "subscription_data", "setup_intent_data", "customer", "discounts", "optional_items")
#: Three-decimal currencies: amounts must end in 0 (stripe.md §8).
THREE_DECIMALS = ("bhd", "jod", "kwd", "omr", "tnd")


class Sessions:
    """The Checkout Session endpoints; mixed into the emulator."""

    def api_create_session(self, ctx: ApiContext, fault=None) -> Answer:
        p = ctx.data
        wire.unknown_params(p, wire.SESSION_PARAMS)
        expand = wire.expand_param(p)
        ui_mode = _ui_mode(p)
        success_url, cancel_url = _return_urls(p)
        items, currency = self._line_items(p, ctx.now)
        total = _total(items, currency, p)
        session_id = wire.random_id("cs")
        origin = self.public_origin(ctx.origin)
        session = objects.made(
            objects.SESSION,
            id=session_id,
            amount_subtotal=total,
            amount_total=total,
            cancel_url=cancel_url,
            client_reference_id=wire.optional_string(p, "client_reference_id", max_length=200),
            created=wire.ts(ctx.now),
            currency=currency,
            customer_email=_customer_email(p),
            expires_at=_expires_at(p, ctx.now),
            locale=_locale(p),
            metadata=wire.metadata(p.get("metadata")),
            payment_method_types=_methods(p),
            presentment_details=objects.presentment(total, currency),
            success_url=success_url,
            ui_mode=ui_mode,
            url=origin + reverse("pgpay_sandbox:stripe-pay", args=[session_id]),
        )
        notes = {"origin": origin, "webhook_origin": ctx.origin, "line_items": items, "intent": _intent_notes(p)}
        self._create(session, order_id=self._order_of(session), notes=notes, due_at=wire.from_ts(session["expires_at"]))
        return wire.answer(200, self.expand(copy.deepcopy(session), expand))

    def _line_items(self, p: dict[str, Any], now: datetime) -> tuple[list[dict[str, Any]], str]:
        raw = p.get("line_items")
        if raw in (None, "", []):
            raise wire.missing("line_items", "`line_items` is required in `payment` mode.")
        if not isinstance(raw, list):
            raise wire.invalid("line_items", "Invalid array")
        if len(raw) > 100:
            raise wire.invalid("line_items", "You may only specify up to 100 line items.")
        items: list[dict[str, Any]] = []
        currency = None
        for index, item in enumerate(raw):
            line, code = _line_item(item, f"line_items[{index}]", now)
            if currency is not None and code != currency:
                # unconfirmed wording; Stripe refuses mixed currencies.
                raise wire.invalid(f"line_items[{index}][price_data][currency]", "All line items must have the same currency.")
            currency = code
            items.append(line)
        return items, str(currency)

    def refresh_session(self, row: SandboxPayment, now: datetime) -> bool:
        """Apply the sandbox clock to a (locked) Session: past ``expires_at`` an open one expires."""
        if row.state.get("status") == "open" and wire.ts(now) >= int(row.state.get("expires_at") or 0):
            self._expire(row, now)
            return True
        return False

    def _expire(self, row: SandboxPayment, now: datetime, ctx: ApiContext | None = None) -> None:
        """open -> expired; an unfinished PaymentIntent of the Session is canceled (checkout.session.expired)."""
        session = row.state
        session.update(status="expired", url=None)
        intent_row = self._row(session.get("payment_intent"), lock=True)
        if intent_row is not None and intent_row.state.get("status") in (
            "requires_payment_method",
            "requires_action",
            "requires_confirmation",
        ):
            intent_row.state.update(status="canceled", canceled_at=wire.ts(now), cancellation_reason="abandoned", next_action=None)
            self._save(intent_row)
            self._tell(row, now, ("payment_intent.canceled", intent_row))
        self._save(row, due_at=None)
        self._tell(row, now, ("checkout.session.expired", row), ctx=ctx)

    def _session_row(self, session_id: str) -> SandboxPayment:
        """The locked Session of the URL, brought up to the sandbox clock (404 when there is none)."""
        row = self._row(session_id, lock=True) if session_id.startswith("cs_") else None
        if row is None:
            raise wire.no_such("checkout.session", session_id, "session")
        return row

    def api_retrieve_session(self, ctx: ApiContext, fault=None, session_id: str = "") -> Answer:
        expand = wire.expand_param(self.query(ctx, wire.RETRIEVE_PARAMS))
        row = self._session_row(session_id)
        self.refresh_session(row, ctx.now)
        return wire.answer(200, self.expand(copy.deepcopy(row.state), expand))

    def api_expire_session(self, ctx: ApiContext, fault=None, session_id: str = "") -> Answer:
        wire.unknown_params(ctx.data, wire.RETRIEVE_PARAMS)
        expand = wire.expand_param(ctx.data)
        row = self._session_row(session_id)
        self.refresh_session(row, ctx.now)
        if row.state.get("status") != "open":
            raise StripeError(400, 'Only Checkout Sessions with a status in ["open"] can be expired.')
        self._expire(row, ctx.now, ctx)
        return wire.answer(200, self.expand(copy.deepcopy(row.state), expand))


def _ui_mode(p: dict[str, Any]) -> str:
    """``mode=payment`` on the hosted page is what the sandbox plays; the rest is said plainly."""
    mode = p.get("mode")
    if mode is None:
        raise wire.missing("mode")
    if mode not in ("payment", "setup", "subscription"):
        raise wire.invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
    if mode != "payment":
        raise wire.not_emulated("mode", f"mode={mode} (only mode=payment)")
    ui_mode = p.get("ui_mode", "hosted_page")
    if ui_mode not in ("hosted", "hosted_page"):
        raise wire.not_emulated("ui_mode", f"ui_mode={ui_mode} (only the hosted page)")
    for name in NOT_EMULATED:
        if p.get(name) not in (None, ""):
            raise wire.not_emulated(name, name)
    return ui_mode


def _return_urls(p: dict[str, Any]) -> tuple[str, str | None]:
    if "success_url" not in p:
        raise wire.missing("success_url")
    urls = [wire.string_value(p["success_url"], "success_url"), wire.optional_string(p, "cancel_url")]
    for name, url in zip(("success_url", "cancel_url"), urls, strict=True):
        if url is not None and not wire.is_http_url(url):
            raise wire.invalid(name, "Not a valid URL", code="url_invalid")
    return urls[0], urls[1]


def _total(items: list[dict[str, Any]], currency: str, p: dict[str, Any]) -> int:
    """The Session's total, within Stripe's minimum and maximum charge for its currency (:data:`wire.MINIMUM_AMOUNTS`)."""
    total = sum(item["amount_total"] for item in items)
    minimum = wire.MINIMUM_AMOUNTS.get(currency)
    if minimum is not None and total < minimum:
        raise StripeError(
            400,
            f"The Checkout Session's total amount due must add up to at least {wire.amount_text(minimum, currency)} {currency}",
            code="amount_too_small",
            param="line_items",
            keep=False,
        )
    if total > wire.MAXIMUM_AMOUNT:
        raise StripeError(
            400, "The Checkout Session's total amount due is too large.", code="amount_too_large", param="line_items", keep=False
        )
    if p.get("currency") not in (None, "") and wire.currency(p["currency"], "currency") != currency:
        raise wire.invalid("currency", "currency must match the currency of the line items.")
    return total


def _expires_at(p: dict[str, Any], now: datetime) -> int:
    if p.get("expires_at") in (None, ""):
        return wire.ts(now) + DEFAULT_EXPIRY
    given = wire.integer(p["expires_at"], "expires_at")
    # The caller computed it on its own (real) clock; objects carry the sandbox clock's time.
    real_now = int(time.time())
    low, high = EXPIRES_RANGE
    if not low - 5 <= given - real_now <= high + 5:
        raise wire.invalid(
            "expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation."
        )
    return given + (wire.ts(now) - real_now)


def _customer_email(p: dict[str, Any]) -> str | None:
    email = wire.optional_string(p, "customer_email", max_length=800)
    if email is not None and not wire.EMAIL.match(email):
        raise wire.invalid("customer_email", f"Invalid email address: {email}", code="email_invalid")
    return email


def _locale(p: dict[str, Any]) -> str | None:
    locale = p.get("locale")
    if locale is not None and locale not in wire.LOCALES:
        raise wire.invalid("locale", f"Invalid locale: must be one of {', '.join(sorted(wire.LOCALES))}")
    return locale


def _intent_notes(p: dict[str, Any]) -> dict[str, Any]:
    """What ``payment_intent_data`` gives the PaymentIntent the first payment attempt makes."""
    data = p.get("payment_intent_data") or {}
    if not isinstance(data, dict):
        raise wire.invalid("payment_intent_data", "Invalid hash: payment_intent_data")
    wire.unknown_params(data, wire.INTENT_DATA_PARAMS, "payment_intent_data")
    if data.get("capture_method") not in (None, "", "automatic", "automatic_async"):
        raise wire.not_emulated("payment_intent_data[capture_method]", "separate authorisation and capture (capture_method=manual)")
    notes: dict[str, Any] = {"metadata": wire.metadata(data.get("metadata"), "payment_intent_data[metadata]")}
    for name in ("description", "receipt_email", "statement_descriptor"):
        notes[name] = data.get(name) if isinstance(data.get(name), str) else None
    return notes


def _methods(p: dict[str, Any]) -> list[str]:
    """``payment_method_types`` of the Session (older API versions) or ``allowed_payment_method_types``."""
    for name in ("payment_method_types", "allowed_payment_method_types"):
        value = p.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and re.fullmatch(r"[a-z_]{2,40}", v) for v in value):
            raise wire.invalid(name, f"Invalid array: {name}")
        if not any(v in EMULATED_METHODS for v in value):
            raise wire.not_emulated(name, f"the payment methods {', '.join(value)} (the hosted page plays card and {DELAYED_METHOD})")
        return list(dict.fromkeys(value))
    return ["card", DELAYED_METHOD]


def _line_item(item: Any, where: str, now: datetime) -> tuple[dict[str, Any], str]:
    """One ``line_items[i]`` with ``price_data`` as the Session's line item, and its currency."""
    if not isinstance(item, dict):
        raise wire.invalid(where, "Invalid hash")
    wire.unknown_params(item, wire.LINE_ITEM_PARAMS, where)
    if item.get("price") not in (None, ""):
        raise wire.no_such_param("price", item["price"], f"{where}[price]")
    price = item.get("price_data")
    if not isinstance(price, dict):
        raise wire.missing(f"{where}[price_data]", f"You must specify either `price` or `price_data` in {where}.")
    code, unit = _price(price, f"{where}[price_data]")
    name = _product_name(price, f"{where}[price_data]")
    if "quantity" not in item:
        raise wire.missing(f"{where}[quantity]")
    quantity = wire.integer(item["quantity"], f"{where}[quantity]", minimum=1)
    if quantity > 999_999:
        raise wire.invalid(f"{where}[quantity]", "This value must be less than or equal to 999999.")
    amount = unit * quantity
    price_object = objects.made(
        objects.PRICE,
        id=wire.random_id("price"),
        created=wire.ts(now),
        currency=code,
        product=wire.random_id("prod", 14),
        unit_amount=unit,
        unit_amount_decimal=str(unit),
    )
    line = {"id": wire.random_id("li"), "object": "item", "amount_discount": 0, "amount_subtotal": amount, "amount_tax": 0}
    line.update(amount_total=amount, currency=code, description=name, price=price_object, quantity=quantity)
    return line, code


def _price(price: dict[str, Any], where: str) -> tuple[str, int]:
    """``price_data``'s currency and unit amount (minor units)."""
    wire.unknown_params(price, wire.PRICE_DATA_PARAMS, where)
    if price.get("recurring") not in (None, ""):
        raise wire.invalid(
            f"{where}[recurring]",
            "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
        )
    if "currency" not in price:
        raise wire.missing(f"{where}[currency]")
    code = wire.currency(price["currency"], f"{where}[currency]")
    if price.get("unit_amount") not in (None, ""):
        unit = wire.integer(price["unit_amount"], f"{where}[unit_amount]", minimum=0)
    elif price.get("unit_amount_decimal") not in (None, ""):
        text = price["unit_amount_decimal"]
        if not isinstance(text, str) or not re.fullmatch(r"\d{1,12}(\.0+)?", text):
            raise wire.not_emulated(f"{where}[unit_amount_decimal]", "fractional unit_amount_decimal")
        unit = int(text.split(".")[0])
    else:
        raise wire.missing(f"{where}[unit_amount]")
    if code in THREE_DECIMALS and unit % 10:
        # The wording is unconfirmed.
        raise wire.invalid(f"{where}[unit_amount]", f"Amounts in {code} must be divisible by 10.", code="invalid_amount")
    return code, unit


def _product_name(price: dict[str, Any], where: str) -> str:
    if price.get("product") not in (None, ""):
        raise wire.no_such_param("product", price["product"], f"{where}[product]")
    product = price.get("product_data")
    if not isinstance(product, dict):
        raise wire.missing(f"{where}[product_data]")
    wire.unknown_params(product, wire.PRODUCT_DATA_PARAMS, f"{where}[product_data]")
    if "name" not in product:
        raise wire.missing(f"{where}[product_data][name]")
    return wire.string_value(product["name"], f"{where}[product_data][name]", max_length=5000)
