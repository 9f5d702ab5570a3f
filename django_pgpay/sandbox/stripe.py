"""Stripe, emulated: Checkout Sessions, PaymentIntents, Charges, Refunds, Events and the hosted payment page.

Mounted under ``sandbox/stripe/`` (see :mod:`django_pgpay.sandbox.urls`), so a
Stripe client works unchanged with its base URL set to
``http://HOST/sandbox/stripe``: our gateway with ``API_BASE``, the official
library with ``stripe.StripeClient(key, base_addresses={"api": url})``. The
contract followed is ``shared/gateways/stripe.md`` (the official SDK and
docs.stripe.com):

- ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions[/{id}[/line_items]]``,
  ``POST /v1/checkout/sessions/{id}/expire``; ``GET /v1/payment_intents/{id}``,
  ``GET /v1/payment_intents/search``; ``GET /v1/charges/{id}``,
  ``GET /v1/payment_methods/{id}``; ``POST /v1/refunds``,
  ``GET /v1/refunds[/{id}]``; ``GET /v1/events[/{id}]``; with ``expand``;
- Bearer (or Basic) auth with a secret key; form-encoded bodies with bracketed
  keys; Stripe's error object and HTTP statuses; ``Request-Id``;
- ``Idempotency-Key`` on every POST: the first answer is replayed with
  ``Idempotent-Replayed: true``, the same key with other parameters is a 400
  ``idempotency_error``, a key still in flight a 409 ``idempotency_key_in_use``,
  refusals of bad parameters are not kept, keys live 24 hours;
- the hosted page at ``session.url`` with Stripe's test cards, a 3-D Secure
  step and a delayed payment method; Session expiry on the sandbox clock;
- events with a real ``Stripe-Signature`` (signed anew at each delivery
  attempt), delivered through the sandbox's outbox; any 2xx is an ack.

Where stripe.md marks a fact "unconfirmed" the sandbox picks the likeliest
answer and says so in a comment (search "unconfirmed").
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, re_path, reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import clock, faults, webhooks
from . import stripe_wire as wire
from .base import Answer, ApiContext, ApiError, Problem, SandboxPG, guard
from .models import SandboxPayment
from .stripe_wire import StripeError

#: ``api_version`` of events and the ``Stripe-Version`` answered by default
#: (the version the official SDK 16 pins; ``PGPAY_SANDBOX["STRIPE"]["API_VERSION"]`` changes it).
API_VERSION = "2026-10-28.endive"
#: Event types a webhook endpoint gets by default: the ones docs/stripe.rst
#: tells a shop to subscribe to. ``"*"`` in ``WEBHOOK_EVENTS`` sends every type.
DEFAULT_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
)
#: A Checkout Session lives 30 minutes to 24 hours (stripe.md §2).
EXPIRES_RANGE = (30 * 60, 24 * 3600)
DEFAULT_EXPIRY = 24 * 3600
#: The delayed method the hosted page offers (a US bank debit: ``processing``, settled later).
DELAYED_METHOD = "us_bank_account"
#: Payment methods the hosted page plays; others a Session may name are not shown.
EMULATED_METHODS = ("card", DELAYED_METHOD)
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")

#: Test cards (docs.stripe.com/testing): number -> (brand, outcome, code, decline_code, message).
#: Outcomes: ``paid``, ``declined``, ``3ds`` (authentication, then paid) and ``3ds_declined``.
TEST_CARDS: dict[str, tuple[str, str, str, str, str]] = {
    "4242424242424242": ("visa", "paid", "", "", ""),
    "4000056655665556": ("visa", "paid", "", "", ""),
    "5555555555554444": ("mastercard", "paid", "", "", ""),
    "378282246310005": ("amex", "paid", "", "", ""),
    "4000004100000000": ("visa", "paid", "", "", ""),  # Korea (docs.stripe.com/testing#international-cards)
    "4000000000000002": ("visa", "declined", "card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("visa", "declined", "card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("visa", "declined", "card_declined", "lost_card", "Your card was declined."),
    "4000000000000069": ("visa", "declined", "expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": ("visa", "declined", "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": (
        "visa",
        "declined",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4000002500003155": ("visa", "3ds", "", "", ""),
    "4000002760003184": ("visa", "3ds", "", "", ""),
    "4000008400001629": ("visa", "3ds_declined", "card_declined", "card_declined", "Your card was declined."),
}
#: A Luhn-valid number that is not a test card (unconfirmed wording, seen in Stripe's test mode).
LIVE_CARD_MESSAGE = "Your card was declined. Your request was in test mode, but used a non test (live) card. For a list of valid test cards, visit: https://stripe.com/docs/testing."
AUTHENTICATION_FAILURE = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new "
    "PaymentMethod to attempt to fulfill this PaymentIntent again."
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
#: Expandable fields per object: the object type they hold (None: valid at Stripe, not emulated).
EXPANDABLE: dict[str, dict[str, str | None]] = {
    "checkout.session": {
        "payment_intent": "payment_intent",
        "line_items": "line_items",
        "customer": None,
        "invoice": None,
        "payment_link": None,
        "setup_intent": None,
        "subscription": None,
    },
    "payment_intent": {
        "latest_charge": "charge",
        "payment_method": "payment_method",
        "customer": None,
        "invoice": None,
        "review": None,
        "on_behalf_of": None,
        "application": None,
    },
    "charge": {
        "payment_intent": "payment_intent",
        "balance_transaction": None,
        "customer": None,
        "invoice": None,
        "review": None,
        "application": None,
        "on_behalf_of": None,
        "source_transfer": None,
        "transfer": None,
    },
    "refund": {
        "charge": "charge",
        "payment_intent": "payment_intent",
        "balance_transaction": None,
        "failure_balance_transaction": None,
        "source_transfer_reversal": None,
        "transfer_reversal": None,
    },
    "payment_method": {"customer": None},
    "event": {},
}
#: Stripe error codes a fault may name (``code=``): HTTP status, type, message.
ERRORS: dict[str, tuple[int, str, str]] = {
    "api_error": (500, "api_error", "An unknown error occurred"),
    "rate_limit": (
        429,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
    ),
    "lock_timeout": (
        400,
        "invalid_request_error",
        "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request. If you see this error frequently and are making multiple concurrent requests to a single object, make your requests serially or at a lower rate.",
    ),
    "api_key_expired": (401, "invalid_request_error", "Expired API Key provided."),
    "card_declined": (402, "card_error", "Your card was declined."),
    "idempotency_key_in_use": (
        409,
        "invalid_request_error",
        "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): {key}. Please try again later.",
    ),
    "balance_insufficient": (400, "invalid_request_error", "You have insufficient funds in your Stripe account for this transfer."),
    "charge_disputed": (400, "invalid_request_error", "This charge has been disputed and cannot be refunded."),
}
#: The framework's own codes (faults, crashes) and what Stripe says for them.
_INTERNAL = frozenset({"FAILED_INTERNAL_SYSTEM_PROCESSING", "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING"})


def _json_text(data: Any) -> str:
    """Stripe's answers and events are pretty-printed JSON (two spaces), UTF-8."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def _answer(status: int, data: Any, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer(status, _json_text(data), "application/json", headers)


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=dt_timezone.utc)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 5000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class PageResult:
    """What happened to a payment attempt on the hosted page."""

    #: ``paid``, ``processing`` (a delayed method), ``declined``, ``action`` (3-D Secure) or ``invalid``.
    kind: str
    message: str = ""
    #: Where the form's error belongs (``card_number``, ``card_expiry`` …) for ``invalid``.
    field: str = ""


class StripeSandbox(SandboxPG):
    """Stripe's v1 API subset of a Checkout integration, its hosted page and its events (see the module docstring).

    Settings, ``PGPAY_SANDBOX["STRIPE"]``: ``SECRET_KEYS`` (made-up
    ``sk_test_`` keys; all of them are one account), ``WEBHOOK_SECRET`` (the
    ``whsec_`` signing secret, or a list of two while rolling it: every
    delivery is signed with each), ``WEBHOOK_URL``, and optionally
    ``WEBHOOK_EVENTS`` (default :data:`DEFAULT_EVENTS`; ``["*"]`` for all),
    ``API_VERSION``, ``PUBLIC_URL`` (origin of ``session.url`` and
    ``receipt_url`` when browsers reach the sandbox by another host than the
    shop's server), ``BUSINESS_NAME`` (shown on the hosted page) and
    ``SEARCH_LAG`` (seconds before a new PaymentIntent shows in search; 0).
    """

    name = "stripe"
    #: The pipeline's problems under the names :meth:`_translate` knows.
    problem_codes = {
        Problem.MALFORMED_BODY: "INVALID_REQUEST",
        Problem.IDEMPOTENCY_KEY_INVALID: "INVALID_IDEMPOTENCY_KEY",
        Problem.IDEMPOTENCY_MISMATCH: "IDEMPOTENCY_MISMATCH",
        Problem.IDEMPOTENCY_IN_FLIGHT: "IDEMPOTENT_REQUEST_PROCESSING",
        Problem.INTERNAL: "FAILED_INTERNAL_SYSTEM_PROCESSING",
        Problem.INTERNAL_AFTER_COMMIT: "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
    }
    settings_section = "STRIPE"
    title = "Stripe"
    #: Test mode retries three times over a few hours (stripe.md §6; the intervals are unconfirmed).
    retry_schedule = (600, 3600, 3 * 3600)
    idempotency_header = "Idempotency-Key"
    idempotency_key_max = 255
    idempotency_lifetime = timedelta(hours=24)
    test_key_hint = "sk_test_"

    # --- settings ----------------------------------------------------------------

    def _keys(self) -> list[str]:
        keys = self.config().get("SECRET_KEYS") or []
        return [k for k in keys if isinstance(k, str) and k] if isinstance(keys, (list, tuple)) else []

    def signing_secrets(self) -> list[str]:
        """``WEBHOOK_SECRET`` as a list (each delivery carries one ``v1`` per secret)."""
        value = self.config().get("WEBHOOK_SECRET") or []
        if isinstance(value, str):
            value = [value]
        return [str(s) for s in value if isinstance(s, str) and s]

    def api_version(self) -> str:
        return str(self.config().get("API_VERSION") or API_VERSION)

    def public_origin(self, origin: str) -> str:
        return str(self.config().get("PUBLIC_URL") or origin or _site()).rstrip("/")

    def events_wanted(self) -> tuple[str, ...]:
        value = self.config().get("WEBHOOK_EVENTS")
        return tuple(value) if isinstance(value, (list, tuple)) else DEFAULT_EVENTS

    def is_test_key(self, setting: str, key: str) -> bool:
        return key.startswith(("sk_test_", "rk_test_"))

    def check_config(self, value: dict[str, Any]) -> list:
        from django.core import checks

        where = 'PGPAY_SANDBOX["STRIPE"]'
        messages = []
        secret = value.get("WEBHOOK_SECRET")
        secrets_ = [secret] if isinstance(secret, str) else secret
        if secret is None or secret == "" or secret == []:
            if value.get("WEBHOOK_URL"):
                messages.append(
                    checks.Warning(
                        f'{where}["WEBHOOK_SECRET"] is not set: events go out unsigned and a shop refuses them.',
                        hint='Make one up ("whsec_...") and give the same value to the gateway\'s WEBHOOK_SECRETS.',
                        id="pgpay_sandbox.W003",
                    )
                )
        elif not isinstance(secrets_, (list, tuple)) or not all(isinstance(s, str) and s.startswith("whsec_") for s in secrets_):
            messages.append(
                checks.Error(f'{where}["WEBHOOK_SECRET"] must be a "whsec_..." string or a list of them.', id="pgpay_sandbox.E002")
            )
        events = value.get("WEBHOOK_EVENTS")
        if events is not None and (not isinstance(events, (list, tuple)) or not all(isinstance(e, str) for e in events)):
            messages.append(checks.Error(f'{where}["WEBHOOK_EVENTS"] must be a list of event types (or ["*"]).', id="pgpay_sandbox.E002"))
        return messages

    # --- protocol ------------------------------------------------------------------

    def language(self, request: HttpRequest) -> str:
        return "en"

    def authenticate(self, ctx: ApiContext) -> str:
        """``Authorization: Bearer sk_test_…`` (or Basic with the key as user name, as curl ``-u`` sends)."""
        header = ctx.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8").split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer "
                "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                "details, or we can help at https://support.stripe.com/.",
            )
        if not any(hmac.compare_digest(key.encode(), known.encode()) for known in self._keys()):
            masked = f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"
            raise StripeError(401, f"Invalid API Key provided: {masked}")
        return key

    def error_answer(self, ctx: ApiContext, error: ApiError) -> Answer:
        if not isinstance(error, StripeError):
            error = self._translate(ctx, error)
        return _answer(error.status, {"error": error.body()}, error.headers)

    def _translate(self, ctx: ApiContext, error: ApiError) -> StripeError:
        """The framework's codes (faults, the idempotency layer, a crash) in Stripe's words."""
        code = error.code
        key = ctx.request.headers.get(self.idempotency_header, "")
        if code == "IDEMPOTENT_REQUEST_PROCESSING":
            status, kind, message = ERRORS["idempotency_key_in_use"]
            return StripeError(
                status,
                message.format(key=key),
                type=kind,
                code="idempotency_key_in_use",
                keep=False,
                headers=(("Stripe-Should-Retry", "true"),),
            )
        if code == "INVALID_IDEMPOTENCY_KEY":
            return StripeError(400, f"Idempotency keys must be at most {self.idempotency_key_max} characters long.", keep=False)
        if code in ("NOT_FOUND", "METHOD_NOT_ALLOWED"):
            return self._unrecognized(ctx.request)
        if code in _INTERNAL:
            return StripeError(error.status or 500, error.message or ERRORS["api_error"][2], type="api_error")
        if code in ERRORS:
            status, kind, message = ERRORS[code]
            return StripeError(
                error.status or status,
                error.message or message.format(key=key),
                type=kind,
                code=None if code == "api_error" else code,
                headers=(("Stripe-Should-Retry", "true"),) if code == "lock_timeout" else (),
            )
        status = error.status or 400
        kind = "api_error" if status >= 500 else "card_error" if status == 402 else "invalid_request_error"
        return StripeError(status, error.message or code, type=kind, code=code if kind != "api_error" else None)

    @staticmethod
    def _unrecognized(request: HttpRequest) -> StripeError:
        return StripeError(
            404,
            f"Unrecognized request URL ({request.method}: {request.path.split('/sandbox/stripe', 1)[-1] or request.path}). "
            "Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )

    def keeps_error(self, error: ApiError) -> bool:
        return error.keep if isinstance(error, StripeError) else error.code not in ("INVALID_IDEMPOTENCY_KEY",)

    def malformed_body(self) -> str:
        return '<html><head><title>502 Bad Gateway</title></head><body>{\n  "id": "'

    # --- idempotency: scoped to the key, parameters compared -------------------------------

    def params(self, ctx: ApiContext) -> dict[str, Any]:
        """The call's parameters: the form body of a POST, the query of a GET (parsed once)."""
        cached = getattr(ctx, "stripe_params", None)
        if cached is None:
            request = ctx.request
            if request.method == "POST":
                try:
                    text = request.body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise StripeError(400, "Invalid request: the body is not UTF-8 form data.", keep=False) from exc
            else:
                text = request.META.get("QUERY_STRING", "")
            cached = wire.parse_form(text)
            ctx.stripe_params = cached
        return cached

    def parse_body(self, ctx: ApiContext) -> Any:
        return self.params(ctx)

    def idempotency_scope(self, ctx: ApiContext) -> tuple[str, str]:
        return "", ""

    def idempotency_fingerprint(self, ctx: ApiContext) -> str:
        data = f"{ctx.request.method} {ctx.request.path}\n{wire.fingerprint_of(self.params(ctx))}"
        return hashlib.sha256(data.encode("utf-8")).hexdigest()

    def idempotency_mismatch(self, ctx: ApiContext, claim) -> Answer:
        key = ctx.request.headers.get(self.idempotency_header, "")
        first_path = (claim.path or "").split("?", 1)[0]
        if first_path and first_path != ctx.request.path:
            message = (
                f"Keys for idempotent requests can only be used for the same endpoint they were first used for "
                f"('{first_path.split('/sandbox/stripe', 1)[-1]}' vs '{ctx.request.path.split('/sandbox/stripe', 1)[-1]}'). "
                f"Try using a key other than '{key}' if you meant to execute a different request."
            )
        else:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request."
            )
        return self.error_answer(ctx, StripeError(400, message, type="idempotency_error", keep=False))

    def decorate(self, ctx: ApiContext, response: HttpResponse, *, replayed: bool = False) -> HttpResponse:
        response["Request-Id"] = _request_id(ctx)
        response["Stripe-Version"] = ctx.request.headers.get("Stripe-Version") or self.api_version()
        key = ctx.request.headers.get(self.idempotency_header)
        if ctx.request.method == "POST" and key:
            response["Idempotency-Key"] = key
        if replayed:
            response["Idempotent-Replayed"] = "true"
        response["Cache-Control"] = "no-cache, no-store"
        return response

    # --- webhooks ------------------------------------------------------------------------

    def delivery_headers(self, webhook, now: datetime) -> dict[str, str]:
        """Sign the stored body now: ``t=<unix time>,v1=<HMAC-SHA256(secret, "t.body")>`` per secret."""
        headers = dict(webhook.headers or {})
        note = headers.pop(faults.SIGNATURE_FAULT_HEADER, "")
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("x-sandbox-")}
        secrets_ = self.signing_secrets()
        # The shop checks freshness against its real clock, so real time it is.
        timestamp = int(time.time())
        # A signature fault spoils the first attempt; Stripe's retries are signed anew, correctly.
        kind, _, seconds = note.partition(":") if not webhook.attempts else ("", "", "")
        if kind == "stale_signature":
            timestamp -= int(float(seconds or 600))
        elif kind == "wrong_secret":
            secrets_ = ["whsec_" + hashlib.sha256(str(webhook.pk).encode()).hexdigest()[:32]]
        if secrets_:
            signed = f"{timestamp}.".encode() + webhook.body.encode("utf-8")
            parts = [f"t={timestamp}"] + [
                "v1=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest() for secret in secrets_
            ]
            headers["Stripe-Signature"] = ",".join(parts)
        return headers

    def webhook_acknowledged(self, status_code: int, body: bytes) -> bool:
        return 200 <= status_code < 300

    def describe(self, payment) -> dict[str, Any]:
        state = payment.state
        return {
            "amount": state.get("amount_total", state.get("amount")),
            "balance": None,
            "method": (state.get("payment_method_details") or {}).get("type"),
        }

    def _event(
        self,
        event_type: str,
        obj: dict[str, Any],
        now: datetime,
        *,
        order_id: str = "",
        ctx: ApiContext | None = None,
        previous: dict[str, Any] | None = None,
        origin: str = "",
    ) -> dict[str, Any]:
        """Record an event (``/v1/events``) and queue its webhook if the endpoint wants the type."""
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = previous
        request = {"id": None, "idempotency_key": None}
        if ctx is not None:
            request = {"id": _request_id(ctx), "idempotency_key": ctx.request.headers.get(self.idempotency_header)}
        event = {
            "id": wire.random_id("evt"),
            "object": "event",
            "api_version": self.api_version(),
            "created": _ts(now),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": request,
            "type": event_type,
        }
        url = self.webhook_url(origin)
        wanted = self.events_wanted()
        send = bool(url) and ("*" in wanted or event_type in wanted)
        if send:
            event["pending_webhooks"] = 1
        SandboxPayment.objects.create(
            pg=self.name, key=event["id"], order_id=order_id[:100], status="event", state=event, session={"type": event_type}
        )
        if send:
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Cache-Control": "no-cache",
            }
            webhooks.enqueue(
                self.name, event_type, _json_text(event), url=url, payment_key=str(obj.get("id") or ""), headers=headers, now=now
            )
        return event

    # --- rows ----------------------------------------------------------------------------

    def _row(self, key: Any, *, lock: bool = False) -> SandboxPayment | None:
        if not isinstance(key, str) or not key or len(key) > 200:
            return None
        rows = SandboxPayment.objects.filter(pg=self.name, key=key)
        if lock:
            rows = rows.select_for_update()
        return rows.first()

    def _create(
        self, obj: dict[str, Any], *, order_id: str = "", notes: dict[str, Any] | None = None, due_at: datetime | None = None
    ) -> SandboxPayment:
        return SandboxPayment.objects.create(
            pg=self.name,
            key=obj["id"],
            order_id=(order_id or "")[:100],
            status=str(obj.get("status") or obj.get("object") or "")[:32],
            state=obj,
            session=notes or {},
            due_at=due_at,
        )

    def _save(self, row: SandboxPayment, *, due_at: datetime | None | bool = False) -> None:
        row.status = str(row.state.get("status") or row.state.get("object") or "")[:32]
        fields = ["state", "session", "status", "updated_at"]
        if due_at is not False:
            row.due_at = due_at
            fields.append("due_at")
        row.save(update_fields=fields)

    def _order_of(self, obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        return str(obj.get("client_reference_id") or meta.get("order_id") or "")

    # --- reading objects (with expand) -------------------------------------------------------

    def render(self, key: str) -> dict[str, Any] | None:
        row = self._row(key)
        if row is None:
            return None
        if key.startswith("cs_") and row.state.get("status") == "open":
            with transaction.atomic():
                row = self._row(key, lock=True)
                self.refresh_session(row, clock.now())
        return copy.deepcopy(row.state)

    def expand(self, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        """Replace ids by objects along each dotted ``expand`` path (400 for what Stripe cannot expand)."""
        for dotted in paths:
            if not isinstance(dotted, str) or not dotted:
                raise wire.invalid("expand", "Invalid array")
            parts = dotted.split(".")
            if len(parts) > 4:
                raise wire.invalid("expand", f"You cannot expand more than 4 levels of a property. Property: {dotted}")
            self._expand_one(obj, parts, dotted)
        return obj

    def _expand_one(self, obj: dict[str, Any], parts: list[str], dotted: str) -> None:
        if not isinstance(obj, dict):
            return
        head, rest = parts[0], parts[1:]
        if obj.get("object") in ("list", "search_result") and head == "data":
            for item in obj.get("data") or []:
                if rest:
                    self._expand_one(item, rest, dotted)
            return
        fields = EXPANDABLE.get(str(obj.get("object")), {})
        if head not in fields:
            raise wire.invalid("expand", f"This property cannot be expanded ({dotted}).")
        kind = fields[head]
        if head == "line_items" and kind == "line_items":
            if not isinstance(obj.get("line_items"), dict):
                obj["line_items"] = self._line_items_list(obj["id"], {"limit": "10"})
            return
        value = obj.get(head)
        if isinstance(value, str) and value:
            if kind is None:
                raise wire.not_emulated("expand", f"expanding {dotted}")
            found = self.render(value)
            if found is None:
                return
            obj[head] = found
            value = found
        if rest and isinstance(value, dict):
            self._expand_one(value, rest, dotted)

    def _expand_param(self, params: dict[str, Any]) -> list[str]:
        value = params.get("expand")
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wire.invalid("expand", "Invalid array")
        return value

    # --- Checkout Sessions -----------------------------------------------------------------

    def api_create_session(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        p = ctx.data
        wire.unknown_params(p, SESSION_PARAMS)
        expand = self._expand_param(p)
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
        for name in ("return_url", "subscription_data", "setup_intent_data", "customer", "discounts", "optional_items"):
            if p.get(name) not in (None, ""):
                raise wire.not_emulated(name, name)
        if "success_url" not in p:
            raise wire.missing("success_url")
        success_url = wire.string_value(p["success_url"], "success_url")
        if not _is_http_url(success_url):
            raise wire.invalid("success_url", "Not a valid URL", code="url_invalid")
        cancel_url = None
        if p.get("cancel_url") not in (None, ""):
            cancel_url = wire.string_value(p["cancel_url"], "cancel_url")
            if not _is_http_url(cancel_url):
                raise wire.invalid("cancel_url", "Not a valid URL", code="url_invalid")
        now = ctx.now
        items, currency = self._line_items(p, now)
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
        if total > 999_999_999_999:
            raise StripeError(
                400, "The Checkout Session's total amount due is too large.", code="amount_too_large", param="line_items", keep=False
            )
        if p.get("currency") not in (None, "") and wire.currency(p["currency"], "currency") != currency:
            raise wire.invalid("currency", "currency must match the currency of the line items.")
        expires_at = _ts(now) + DEFAULT_EXPIRY
        if p.get("expires_at") not in (None, ""):
            given = wire.integer(p["expires_at"], "expires_at")
            # The caller computed it on its own (real) clock; objects carry the sandbox clock's time.
            real_now = int(time.time())
            low, high = EXPIRES_RANGE
            if not low - 5 <= given - real_now <= high + 5:
                raise wire.invalid(
                    "expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation."
                )
            expires_at = given + (_ts(now) - real_now)
        client_reference_id = None
        if p.get("client_reference_id") not in (None, ""):
            client_reference_id = wire.string_value(p["client_reference_id"], "client_reference_id", max_length=200)
        customer_email = None
        if p.get("customer_email") not in (None, ""):
            customer_email = wire.string_value(p["customer_email"], "customer_email", max_length=800)
            if not _EMAIL.match(customer_email):
                raise wire.invalid("customer_email", f"Invalid email address: {customer_email}", code="email_invalid")
        locale = p.get("locale")
        if locale is not None and locale not in wire.LOCALES:
            raise wire.invalid("locale", f"Invalid locale: must be one of {', '.join(sorted(wire.LOCALES))}")
        metadata = wire.metadata(p.get("metadata"))
        intent_data = p.get("payment_intent_data") or {}
        if not isinstance(intent_data, dict):
            raise wire.invalid("payment_intent_data", "Invalid hash: payment_intent_data")
        wire.unknown_params(intent_data, INTENT_DATA_PARAMS, "payment_intent_data")
        if intent_data.get("capture_method") not in (None, "", "automatic", "automatic_async"):
            raise wire.not_emulated("payment_intent_data[capture_method]", "separate authorisation and capture (capture_method=manual)")
        intent_metadata = wire.metadata(intent_data.get("metadata"), "payment_intent_data[metadata]")
        methods = self._methods(p)
        session_id = wire.random_id("cs")
        origin = self.public_origin(ctx.origin)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "adaptive_pricing": {"enabled": False},
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": _ts(now),
            "currency": currency,
            "custom_fields": [],
            "custom_text": {"after_submit": None, "shipping_address": None, "submit": None, "terms_of_service_acceptance": None},
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": customer_email,
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": {
                "enabled": False,
                "invoice_data": {
                    "account_tax_ids": None,
                    "custom_fields": None,
                    "description": None,
                    "footer": None,
                    "issuer": None,
                    "metadata": {},
                    "rendering_options": None,
                },
            },
            "livemode": False,
            "locale": locale,
            "metadata": metadata,
            "mode": "payment",
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "if_required",
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
            "payment_method_types": methods,
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "saved_payment_method_options": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_details": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": success_url,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted_page" if ui_mode == "hosted_page" else "hosted",
            "url": origin + reverse("pgpay_sandbox:stripe-pay", args=[session_id]),
        }
        notes = {
            "origin": origin,
            "webhook_origin": ctx.origin,
            "line_items": items,
            "intent": {
                "metadata": intent_metadata,
                "description": intent_data.get("description") if isinstance(intent_data.get("description"), str) else None,
                "receipt_email": intent_data.get("receipt_email") if isinstance(intent_data.get("receipt_email"), str) else None,
                "statement_descriptor": intent_data.get("statement_descriptor")
                if isinstance(intent_data.get("statement_descriptor"), str)
                else None,
            },
        }
        self._create(session, order_id=self._order_of(session), notes=notes, due_at=_from_ts(expires_at))
        return _answer(200, self.expand(copy.deepcopy(session), expand))

    def _line_items(self, p: dict[str, Any], now: datetime) -> tuple[list[dict[str, Any]], str]:
        raw = p.get("line_items")
        if raw in (None, "", []):
            raise wire.missing("line_items", "`line_items` is required in `payment` mode.")
        if not isinstance(raw, list):
            raise wire.invalid("line_items", "Invalid array")
        if len(raw) > 100:
            raise wire.invalid("line_items", "You may only specify up to 100 line items.")
        items, currency = [], None
        for index, item in enumerate(raw):
            where = f"line_items[{index}]"
            if not isinstance(item, dict):
                raise wire.invalid(where, "Invalid hash")
            wire.unknown_params(item, LINE_ITEM_PARAMS, where)
            if item.get("price") not in (None, ""):
                raise wire.no_such("price", str(item["price"]), f"{where}[price]")
            price = item.get("price_data")
            if not isinstance(price, dict):
                raise wire.missing(f"{where}[price_data]", f"You must specify either `price` or `price_data` in {where}.")
            wire.unknown_params(price, PRICE_DATA_PARAMS, f"{where}[price_data]")
            if price.get("recurring") not in (None, ""):
                raise wire.invalid(
                    f"{where}[price_data][recurring]",
                    "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
                )
            if "currency" not in price:
                raise wire.missing(f"{where}[price_data][currency]")
            code = wire.currency(price["currency"], f"{where}[price_data][currency]")
            if currency is not None and code != currency:
                # unconfirmed wording; Stripe refuses mixed currencies.
                raise wire.invalid(f"{where}[price_data][currency]", "All line items must have the same currency.")
            currency = code
            if price.get("unit_amount") not in (None, ""):
                unit = wire.integer(price["unit_amount"], f"{where}[price_data][unit_amount]", minimum=0)
            elif price.get("unit_amount_decimal") not in (None, ""):
                text = price["unit_amount_decimal"]
                if not isinstance(text, str) or not re.fullmatch(r"\d{1,12}(\.0+)?", text):
                    raise wire.not_emulated(f"{where}[price_data][unit_amount_decimal]", "fractional unit_amount_decimal")
                unit = int(text.split(".")[0])
            else:
                raise wire.missing(f"{where}[price_data][unit_amount]")
            if code in ("bhd", "jod", "kwd", "omr", "tnd") and unit % 10:
                # Stripe: three-decimal amounts must end in 0 (stripe.md §8); the wording is unconfirmed.
                raise wire.invalid(
                    f"{where}[price_data][unit_amount]", f"Amounts in {code} must be divisible by 10.", code="invalid_amount"
                )
            product = price.get("product_data")
            if price.get("product") not in (None, ""):
                raise wire.no_such("product", str(price["product"]), f"{where}[price_data][product]")
            if not isinstance(product, dict):
                raise wire.missing(f"{where}[price_data][product_data]")
            wire.unknown_params(product, PRODUCT_DATA_PARAMS, f"{where}[price_data][product_data]")
            if "name" not in product:
                raise wire.missing(f"{where}[price_data][product_data][name]")
            name = wire.string_value(product["name"], f"{where}[price_data][product_data][name]", max_length=5000)
            if "quantity" not in item:
                raise wire.missing(f"{where}[quantity]")
            quantity = wire.integer(item["quantity"], f"{where}[quantity]", minimum=1)
            if quantity > 999_999:
                raise wire.invalid(f"{where}[quantity]", "This value must be less than or equal to 999999.")
            price_id = wire.random_id("price")
            items.append(
                {
                    "id": wire.random_id("li"),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": unit * quantity,
                    "amount_tax": 0,
                    "amount_total": unit * quantity,
                    "currency": code,
                    "description": name,
                    "price": {
                        "id": price_id,
                        "object": "price",
                        "active": False,
                        "billing_scheme": "per_unit",
                        "created": _ts(now),
                        "currency": code,
                        "custom_unit_amount": None,
                        "livemode": False,
                        "lookup_key": None,
                        "metadata": {},
                        "nickname": None,
                        "product": wire.random_id("prod", 14),
                        "recurring": None,
                        "tax_behavior": "unspecified",
                        "tiers_mode": None,
                        "transform_quantity": None,
                        "type": "one_time",
                        "unit_amount": unit,
                        "unit_amount_decimal": str(unit),
                    },
                    "quantity": quantity,
                }
            )
        return items, currency

    def _methods(self, p: dict[str, Any]) -> list[str]:
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

    def _line_items_list(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        row = self._row(session_id)
        items = copy.deepcopy(row.session.get("line_items") or []) if row else []
        return self._paginate(items, params, f"/v1/checkout/sessions/{session_id}/line_items", newest_first=False)

    def refresh_session(self, row: SandboxPayment, now: datetime) -> bool:
        """Apply the sandbox clock to a (locked) Session: past ``expires_at`` an open one expires."""
        if row.state.get("status") == "open" and _ts(now) >= int(row.state.get("expires_at") or 0):
            self._expire(row, now)
            return True
        return False

    def _expire(self, row: SandboxPayment, now: datetime, ctx: ApiContext | None = None) -> None:
        """open -> expired; an unfinished PaymentIntent of the Session is canceled (checkout.session.expired)."""
        session = row.state
        session["status"] = "expired"
        session["url"] = None
        intent_id = session.get("payment_intent")
        if intent_id:
            intent_row = self._row(intent_id, lock=True)
            if intent_row is not None and intent_row.state.get("status") in (
                "requires_payment_method",
                "requires_action",
                "requires_confirmation",
            ):
                intent_row.state.update(status="canceled", canceled_at=_ts(now), cancellation_reason="abandoned", next_action=None)
                self._save(intent_row)
                self._event(
                    "payment_intent.canceled",
                    intent_row.state,
                    now,
                    order_id=intent_row.order_id,
                    origin=row.session.get("webhook_origin", ""),
                )
        self._save(row, due_at=None)
        self._event("checkout.session.expired", session, now, order_id=row.order_id, ctx=ctx, origin=row.session.get("webhook_origin", ""))

    def api_retrieve_session(self, ctx: ApiContext, fault: faults.Fault | None = None, session_id: str = "") -> Answer:
        expand = self._expand_param(self.params(ctx))
        row = self._row(session_id, lock=True)
        if row is None or not session_id.startswith("cs_"):
            raise wire.no_such("checkout.session", session_id, "session")
        self.refresh_session(row, ctx.now)
        return _answer(200, self.expand(copy.deepcopy(row.state), expand))

    def api_expire_session(self, ctx: ApiContext, fault: faults.Fault | None = None, session_id: str = "") -> Answer:
        p = ctx.data
        wire.unknown_params(p, frozenset({"expand"}))
        expand = self._expand_param(p)
        row = self._row(session_id, lock=True)
        if row is None or not session_id.startswith("cs_"):
            raise wire.no_such("checkout.session", session_id, "session")
        self.refresh_session(row, ctx.now)
        if row.state.get("status") != "open":
            raise StripeError(400, 'Only Checkout Sessions with a status in ["open"] can be expired.')
        self._expire(row, ctx.now, ctx)
        return _answer(200, self.expand(copy.deepcopy(row.state), expand))

    def api_session_line_items(self, ctx: ApiContext, fault: faults.Fault | None = None, session_id: str = "") -> Answer:
        p = self.params(ctx)
        if self._row(session_id) is None or not session_id.startswith("cs_"):
            raise wire.no_such("checkout.session", session_id, "session")
        return _answer(200, self.expand(self._line_items_list(session_id, p), self._expand_param(p)))

    def api_list_sessions(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        p = self.params(ctx)
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith="cs_").order_by("-id")
        if p.get("status") not in (None, ""):
            rows = rows.filter(status=p["status"])
        objects = [r.state for r in rows[:1000]]
        if p.get("payment_intent") not in (None, ""):
            objects = [o for o in objects if o.get("payment_intent") == p["payment_intent"]]
        return _answer(200, self.expand(self._paginate(objects, p, "/v1/checkout/sessions"), self._expand_param(p)))

    # --- PaymentIntents, Charges, PaymentMethods -------------------------------------------

    def _retrieve(self, ctx: ApiContext, key: str, prefix: str, kind: str) -> Answer:
        expand = self._expand_param(self.params(ctx))
        obj = self.render(key) if key.startswith(prefix) else None
        if obj is None:
            raise wire.no_such(kind, key, "id")
        return _answer(200, self.expand(obj, expand))

    def api_retrieve_intent(self, ctx: ApiContext, fault: faults.Fault | None = None, intent_id: str = "") -> Answer:
        return self._retrieve(ctx, intent_id, "pi_", "payment_intent")

    def api_retrieve_charge(self, ctx: ApiContext, fault: faults.Fault | None = None, charge_id: str = "") -> Answer:
        return self._retrieve(ctx, charge_id, "ch_", "charge")

    def api_retrieve_method(self, ctx: ApiContext, fault: faults.Fault | None = None, method_id: str = "") -> Answer:
        return self._retrieve(ctx, method_id, "pm_", "payment_method")

    def api_search_intents(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        """``GET /v1/payment_intents/search?query=…``: ``metadata['k']:'v'``, ``status:'…'``, ``currency:'…'``,
        ``amount``/``created`` comparisons, joined by ``AND`` or ``OR``, ``-`` to negate."""
        p = self.params(ctx)
        query = p.get("query")
        if query in (None, ""):
            raise wire.missing("query")
        clauses, joiner = _parse_query(query)
        limit = _limit(p)
        lag = float(self.config().get("SEARCH_LAG") or 0)
        newest = _ts(ctx.now - timedelta(seconds=lag)) if lag else None
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith="pi_").order_by("-id")
        wanted_order = next(
            (value for field, op, value, negated in clauses if field == "metadata.order_id" and op == ":" and not negated), None
        )
        if wanted_order is not None and joiner == "AND":
            rows = rows.filter(order_id=wanted_order[:100])
        found = []
        for row in rows[:2000]:
            intent = row.state
            if newest is not None and int(intent.get("created") or 0) > newest:
                continue
            results = [_matches(intent, clause) for clause in clauses]
            if all(results) if joiner == "AND" else any(results):
                found.append(copy.deepcopy(intent))
        offset = 0
        if p.get("page") not in (None, ""):
            try:
                offset = int(base64.urlsafe_b64decode(str(p["page"]).encode()).decode())
            except ValueError as exc:
                raise wire.invalid("page", "Invalid page token.") from exc
        page = found[offset : offset + limit]
        more = len(found) > offset + limit
        result = {
            "object": "search_result",
            "data": page,
            "has_more": more,
            "next_page": base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None,
            "url": "/v1/payment_intents/search",
        }
        return _answer(200, self.expand(result, self._expand_param(p)))

    def _ensure_intent(self, row: SandboxPayment, now: datetime) -> SandboxPayment:
        """The Session's PaymentIntent, made at the first payment attempt (since API 2022-08-01)."""
        session = row.state
        if session.get("payment_intent"):
            return self._row(session["payment_intent"], lock=True)
        notes = row.session.get("intent") or {}
        intent_id = wire.random_id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic_async",
            "client_secret": f"{intent_id}_secret_{wire.random_id('x', 20)[4:]}",
            "confirmation_method": "automatic",
            "created": _ts(now),
            "currency": session["currency"],
            "customer": None,
            "description": notes.get("description"),
            "invoice": None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": dict(notes.get("metadata") or {}),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {"installments": None, "mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
            },
            "payment_method_types": list(session.get("payment_method_types") or ["card"]),
            "processing": None,
            "receipt_email": notes.get("receipt_email"),
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": notes.get("statement_descriptor"),
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
        }
        intent_row = self._create(intent, order_id=intent["metadata"].get("order_id", ""), notes={"session": session["id"], "charges": []})
        # unconfirmed: whether an open Session shows its PaymentIntent before completion; it does here.
        session["payment_intent"] = intent_id
        self._save(row)
        self._event("payment_intent.created", intent, now, order_id=intent_row.order_id, origin=row.session.get("webhook_origin", ""))
        return SandboxPayment.objects.select_for_update().get(pk=intent_row.pk)

    def _payment_method(self, now: datetime, *, kind: str, card: dict[str, Any] | None = None, billing: dict[str, Any]) -> dict[str, Any]:
        method = {
            "id": wire.random_id("pm"),
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": billing,
            "created": _ts(now),
            "customer": None,
            "livemode": False,
            "metadata": {},
            "type": kind,
        }
        if kind == "card":
            method["card"] = card
        else:
            method[DELAYED_METHOD] = _BANK_ACCOUNT
        self._create(method)
        return method

    def _charge(
        self,
        intent_row: SandboxPayment,
        method: dict[str, Any],
        now: datetime,
        *,
        status: str,
        origin: str,
        failure: tuple[str, str, str] | None = None,
        three_d_secure: dict | None = None,
    ) -> dict[str, Any]:
        intent = intent_row.state
        charge_id = wire.random_id("ch")
        paid = status == "succeeded"
        details: dict[str, Any] = {"type": method["type"]}
        if method["type"] == "card":
            card = method["card"]
            details["card"] = {
                "amount_authorized": intent["amount"] if paid else None,
                "brand": card["brand"],
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass" if paid else "unavailable"},
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "funding": card["funding"],
                "last4": card["last4"],
                "network": card["brand"],
                "three_d_secure": three_d_secure,
                "wallet": None,
            }
        else:
            details[DELAYED_METHOD] = _BANK_ACCOUNT
        code, decline_code, message = failure or (None, None, None)
        outcome = (
            {
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "risk_score": 21,
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
            if status != "failed"
            else {
                "network_status": "declined_by_network",
                "reason": decline_code,
                "risk_level": "normal",
                "risk_score": 21,
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }
        )
        charge = {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if paid else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": wire.random_id("txn") if paid else None,
            "billing_details": method["billing_details"],
            "calculated_statement_descriptor": (self.business_name()[:22] or "SANDBOX").upper(),
            "captured": paid,
            "created": _ts(now),
            "currency": intent["currency"],
            "customer": None,
            "description": intent.get("description"),
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": code,
            "failure_message": message,
            "fraud_details": {},
            "livemode": False,
            "metadata": dict(intent.get("metadata") or {}),
            "on_behalf_of": None,
            "outcome": outcome,
            "paid": paid,
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": details,
            "receipt_email": intent.get("receipt_email"),
            "receipt_number": None,
            "receipt_url": origin + reverse("pgpay_sandbox:stripe-receipt", args=[charge_id]),
            "refunded": False,
            "review": None,
            "shipping": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": status,
            "transfer_data": None,
            "transfer_group": None,
        }
        self._create(charge, order_id=intent_row.order_id, notes={"refunds": []})
        intent_row.session.setdefault("charges", []).append(charge_id)
        intent["latest_charge"] = charge_id
        return charge

    def business_name(self) -> str:
        return str(self.config().get("BUSINESS_NAME") or "Sandbox shop")

    # --- what the buyer does on the hosted page ----------------------------------------------

    def attempt_card(self, row: SandboxPayment, form: dict[str, str], now: datetime) -> PageResult:
        """The buyer submits a card on the (locked, open) Session's page."""
        number = re.sub(r"[\s-]", "", form.get("card_number", ""))
        if not number.isdigit() or not 12 <= len(number) <= 19 or not wire.luhn(number):
            return PageResult("invalid", _("Your card number is invalid."), "card_number")
        match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", form.get("card_expiry", ""))
        if not match or not 1 <= int(match.group(1)) <= 12:
            return PageResult("invalid", _("Your card's expiration date is incomplete."), "card_expiry")
        month, year = int(match.group(1)), int(match.group(2))
        year = year + 2000 if year < 100 else year
        if (year, month) < (now.year, now.month):
            return PageResult("invalid", _("Your card's expiration year is in the past."), "card_expiry")
        cvc = form.get("card_cvc", "").strip()
        if not cvc.isdigit() or len(cvc) not in (3, 4):
            return PageResult("invalid", _("Your card's security code is incomplete."), "card_cvc")
        email = form.get("email", "").strip() or row.state.get("customer_email") or ""
        if not _EMAIL.match(email):
            return PageResult("invalid", _("Your email address is invalid."), "email")
        brand, outcome, code, decline_code, message = TEST_CARDS.get(
            number, ("visa" if number[0] == "4" else "mastercard", "declined", "card_declined", "test_mode_live_card", LIVE_CARD_MESSAGE)
        )
        fault = faults.take(self.name, "confirm", [row.key, row.order_id])
        if fault is not None:
            # An armed confirm fault declines this attempt whatever the card (decline_code from code=).
            code = str(fault.param("code", "card_declined")) if fault.kind == "decline" else "processing_error"
            decline_code = code if code != "card_declined" else "generic_decline"
            message = str(
                fault.param("message", "Your card was declined." if fault.kind == "decline" else TEST_CARDS["4000000000000119"][4])
            )
            outcome = "declined"
        card = {
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "unchecked"},
            "country": "KR" if number == "4000004100000000" else "US",
            "display_brand": brand,
            "exp_month": month,
            "exp_year": year,
            "fingerprint": hashlib.sha256(number.encode()).hexdigest()[:16],
            "funding": "credit",
            "last4": number[-4:],
            "networks": {"available": [brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        }
        billing = _billing(email, form.get("card_name", ""), form.get("country", ""))
        intent_row = self._ensure_intent(row, now)
        method = self._payment_method(now, kind="card", card=card, billing=billing)
        intent = intent_row.state
        intent.update(payment_method=method["id"], last_payment_error=None, payment_method_types=["card"])
        if outcome in ("3ds", "3ds_declined"):
            intent.update(
                status="requires_action",
                next_action={
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {
                        "type": "three_d_secure_redirect",
                        "stripe_js": row.session.get("origin", "") + reverse("pgpay_sandbox:stripe-authenticate", args=[row.key]),
                    },
                },
            )
            intent_row.session["pending_3ds"] = {
                "method": method["id"],
                "then": "declined" if outcome == "3ds_declined" else "paid",
                "failure": [code, decline_code, message],
            }
            self._save(intent_row)
            self._event(
                "payment_intent.requires_action", intent, now, order_id=intent_row.order_id, origin=row.session.get("webhook_origin", "")
            )
            return PageResult("action")
        if outcome == "declined":
            self._decline(row, intent_row, method, now, (code, decline_code, message))
            return PageResult("declined", _decline_text(decline_code, message))
        self._succeed(row, intent_row, method, now, email=email)
        return PageResult("paid")

    def authenticate_3ds(self, row: SandboxPayment, *, complete: bool, now: datetime) -> PageResult:
        """The buyer passes (or fails) the 3-D Secure challenge of the Session's PaymentIntent."""
        intent_row = self._row(row.state.get("payment_intent"), lock=True)
        pending = intent_row.session.pop("pending_3ds", None) if intent_row is not None else None
        if intent_row is None or pending is None or intent_row.state.get("status") != "requires_action":
            return PageResult("invalid", _("There is no authentication to complete."))
        method = self.render(pending["method"])
        intent = intent_row.state
        intent["next_action"] = None
        if not complete:
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "code": "payment_intent_authentication_failure",
                    "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
                    "message": AUTHENTICATION_FAILURE,
                    "payment_method": method,
                    "type": "invalid_request_error",
                },
            )
            self._save(intent_row)
            self._event(
                "payment_intent.payment_failed", intent, now, order_id=intent_row.order_id, origin=row.session.get("webhook_origin", "")
            )
            return PageResult("declined", _authentication_failed())
        secure = {
            "authentication_flow": "challenge",
            "electronic_commerce_indicator": "05",
            "result": "authenticated",
            "result_reason": None,
            "transaction_id": wire.random_id("x", 20),
            "version": "2.2.0",
        }
        if pending["then"] == "declined":
            code, decline_code, message = pending["failure"]
            self._decline(row, intent_row, method, now, (code, decline_code, message), three_d_secure=secure)
            return PageResult("declined", _decline_text(decline_code, message))
        self._succeed(row, intent_row, method, now, email=(method.get("billing_details") or {}).get("email") or "", three_d_secure=secure)
        return PageResult("paid")

    def attempt_delayed(self, row: SandboxPayment, form: dict[str, str], now: datetime) -> PageResult:
        """The buyer pays with the delayed method: the Session completes unpaid, the money comes (or not) later."""
        if DELAYED_METHOD not in (row.state.get("payment_method_types") or []):
            return PageResult("invalid", _("This payment method is not available."), "method")
        email = form.get("email", "").strip() or row.state.get("customer_email") or ""
        if not _EMAIL.match(email):
            return PageResult("invalid", _("Your email address is invalid."), "email")
        outcome = form.get("delayed_outcome", "manual")
        billing = _billing(email, form.get("account_holder", "") or form.get("card_name", ""), form.get("country", ""))
        intent_row = self._ensure_intent(row, now)
        method = self._payment_method(now, kind=DELAYED_METHOD, billing=billing)
        origin = row.session.get("origin", "")
        intent = intent_row.state
        intent.update(payment_method=method["id"], last_payment_error=None, status="processing", payment_method_types=[DELAYED_METHOD])
        charge = self._charge(intent_row, method, now, status="pending", origin=origin)
        due = None
        if outcome not in ("", "manual"):
            succeed, _sep, seconds = outcome.partition(":")
            try:
                delay = max(float(seconds or 0), 0.0)
            except ValueError:
                delay = 0.0
            due = now + timedelta(seconds=delay)
            intent_row.session["settle"] = {"at": due.isoformat(), "succeed": succeed != "fail"}
        self._save(intent_row, due_at=due)
        webhook_origin = row.session.get("webhook_origin", "")
        self._event("charge.pending", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event("payment_intent.processing", intent, now, order_id=intent_row.order_id, origin=webhook_origin)
        session = row.state
        session.update(status="complete", payment_status="unpaid", customer_details=_customer_details(billing), url=None)
        self._save(row, due_at=None)
        self._event("checkout.session.completed", session, now, order_id=row.order_id, origin=webhook_origin)
        return PageResult("processing")

    def _succeed(
        self,
        row: SandboxPayment,
        intent_row: SandboxPayment,
        method: dict[str, Any],
        now: datetime,
        *,
        email: str,
        three_d_secure: dict | None = None,
    ) -> None:
        origin = row.session.get("origin", "")
        webhook_origin = row.session.get("webhook_origin", "")
        charge = self._charge(intent_row, method, now, status="succeeded", origin=origin, three_d_secure=three_d_secure)
        intent = intent_row.state
        intent.update(status="succeeded", amount_received=intent["amount"], next_action=None, last_payment_error=None)
        self._save(intent_row)
        self._event("charge.succeeded", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event("payment_intent.succeeded", intent, now, order_id=intent_row.order_id, origin=webhook_origin)
        session = row.state
        session.update(status="complete", payment_status="paid", customer_details=_customer_details(method["billing_details"]), url=None)
        self._save(row, due_at=None)
        self._event("checkout.session.completed", session, now, order_id=row.order_id, origin=webhook_origin)

    def _decline(
        self,
        row: SandboxPayment,
        intent_row: SandboxPayment,
        method: dict[str, Any],
        now: datetime,
        failure: tuple[str, str, str],
        three_d_secure: dict | None = None,
    ) -> None:
        code, decline_code, message = failure
        webhook_origin = row.session.get("webhook_origin", "")
        charge = self._charge(
            intent_row, method, now, status="failed", origin=row.session.get("origin", ""), failure=failure, three_d_secure=three_d_secure
        )
        intent = intent_row.state
        intent.update(
            status="requires_payment_method",
            next_action=None,
            last_payment_error={
                "charge": charge["id"],
                "code": code,
                "decline_code": decline_code,
                "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
                "message": message,
                "payment_method": method,
                "type": "card_error",
            },
        )
        self._save(intent_row)
        self._event("charge.failed", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event("payment_intent.payment_failed", intent, now, order_id=intent_row.order_id, origin=webhook_origin)

    def settle(self, intent_row: SandboxPayment, now: datetime, *, succeed: bool) -> None:
        """A ``processing`` PaymentIntent (the delayed method) succeeds or fails; the Session's async event follows."""
        intent = intent_row.state
        if intent.get("status") != "processing":
            raise StripeError(400, f"This PaymentIntent's status is {intent.get('status')}, not processing.")
        intent_row.session.pop("settle", None)
        session_row = self._row(intent_row.session.get("session"), lock=True)
        webhook_origin = session_row.session.get("webhook_origin", "") if session_row else ""
        charge_row = self._row(intent.get("latest_charge"), lock=True)
        charge = charge_row.state
        if succeed:
            charge.update(
                status="succeeded", paid=True, captured=True, amount_captured=charge["amount"], balance_transaction=wire.random_id("txn")
            )
            intent.update(status="succeeded", amount_received=intent["amount"])
        else:
            charge.update(
                status="failed",
                failure_code="insufficient_funds",
                failure_message="The customer's account has insufficient funds to cover this payment.",
                outcome={
                    **charge["outcome"],
                    "network_status": "declined_by_network",
                    "type": "issuer_declined",
                    "seller_message": "The bank returned the decline code `insufficient_funds`.",
                },
            )
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "charge": charge["id"],
                    "code": "payment_intent_payment_attempt_failed",
                    "doc_url": "https://stripe.com/docs/error-codes/payment-intent-payment-attempt-failed",
                    "message": "The latest payment attempt of this PaymentIntent has failed or been canceled, and the attached payment method has been removed. You can try confirming again with a new payment method.",
                    "type": "invalid_request_error",
                },
            )
        self._save(charge_row)
        self._save(intent_row, due_at=None)
        self._event("charge.succeeded" if succeed else "charge.failed", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event(
            "payment_intent.succeeded" if succeed else "payment_intent.payment_failed",
            intent,
            now,
            order_id=intent_row.order_id,
            origin=webhook_origin,
        )
        if session_row is not None:
            if succeed:
                session_row.state["payment_status"] = "paid"
                self._save(session_row)
            kind = "checkout.session.async_payment_succeeded" if succeed else "checkout.session.async_payment_failed"
            self._event(kind, session_row.state, now, order_id=session_row.order_id, origin=webhook_origin)

    # --- Refunds ---------------------------------------------------------------------------

    def api_create_refund(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        p = ctx.data
        wire.unknown_params(p, REFUND_PARAMS)
        expand = self._expand_param(p)
        amount = None
        if p.get("amount") not in (None, ""):
            amount = wire.integer(p["amount"], "amount", minimum=1)
        reason = p.get("reason")
        if reason not in (None, "") and reason not in REFUND_REASONS:
            raise wire.invalid("reason", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
        meta = wire.metadata(p.get("metadata"))
        for name in ("customer", "origin", "instructions_email"):
            if p.get(name) not in (None, ""):
                raise wire.not_emulated(name, f"refunds with {name}")
        charge_row = self._charge_to_refund(p.get("payment_intent"), p.get("charge"))
        refund = self.refund(charge_row, amount, ctx.now, metadata=meta, reason=reason or None, ctx=ctx)
        return _answer(200, self.expand(refund, expand))

    def _charge_to_refund(self, intent_id: Any, charge_id: Any) -> SandboxPayment:
        """The (locked) Charge a refund draws on, found by ``payment_intent`` or ``charge``."""
        if intent_id in (None, "") and charge_id in (None, ""):
            # unconfirmed wording.
            raise wire.missing("payment_intent", "One of `charge` or `payment_intent` is required.")
        if intent_id not in (None, ""):
            intent_row = self._row(intent_id)
            if intent_row is None or not str(intent_id).startswith("pi_"):
                raise wire.no_such("payment_intent", str(intent_id), "payment_intent")
            intent = intent_row.state
            if intent.get("status") != "succeeded" or not intent.get("latest_charge"):
                raise StripeError(
                    400,
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            if charge_id not in (None, "") and charge_id != intent["latest_charge"]:
                raise wire.invalid("charge", "The charge does not belong to this PaymentIntent.")
            charge_id = intent["latest_charge"]
        charge_row = self._row(charge_id, lock=True)
        if charge_row is None or not str(charge_id).startswith("ch_"):
            raise wire.no_such("charge", str(charge_id), "charge")
        if charge_row.state.get("status") != "succeeded":
            raise StripeError(
                400, f"Charge {charge_id} has not succeeded and cannot be refunded.", code="charge_not_refundable", param="charge"
            )
        return charge_row

    def refund(
        self,
        charge_row: SandboxPayment,
        amount: int | None,
        now: datetime,
        *,
        metadata: dict[str, str],
        reason: str | None = None,
        ctx: ApiContext | None = None,
    ) -> dict[str, Any]:
        """Give back ``amount`` (None: what is left) of a locked succeeded Charge; ``refund.created`` and ``charge.refunded``."""
        charge = charge_row.state
        left = charge["amount"] - charge["amount_refunded"]
        if left <= 0:
            raise StripeError(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        if amount is None:
            amount = left
        if amount > left:
            raise StripeError(
                400,
                f"Refund amount ({wire.amount_text(amount, charge['currency'])}) is greater than unrefunded amount on charge ({wire.amount_text(left, charge['currency'])})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": wire.random_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": wire.random_id("txn"),
            "charge": charge["id"],
            "created": _ts(now),
            "currency": charge["currency"],
            "destination_details": {
                "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
                "type": "card",
            }
            if charge["payment_method_details"]["type"] == "card"
            else {"type": DELAYED_METHOD, DELAYED_METHOD: {"reference": None, "reference_status": "pending"}},
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        self._create(refund, order_id=charge_row.order_id)
        previous = {"amount_refunded": charge["amount_refunded"]}
        charge["amount_refunded"] += amount
        if charge["amount_refunded"] == charge["amount"]:
            previous["refunded"] = False
            charge["refunded"] = True
        charge_row.session.setdefault("refunds", []).append(refund["id"])
        self._save(charge_row)
        origin = ""
        intent_row = self._row(charge.get("payment_intent"))
        if intent_row is not None:
            session_row = self._row(intent_row.session.get("session"))
            origin = session_row.session.get("webhook_origin", "") if session_row else ""
        self._event("refund.created", refund, now, order_id=charge_row.order_id, ctx=ctx, origin=origin)
        self._event("charge.refunded", charge, now, order_id=charge_row.order_id, ctx=ctx, previous=previous, origin=origin)
        return copy.deepcopy(refund)

    def api_list_refunds(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        p = self.params(ctx)
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith="re_").order_by("-id")
        objects = [r.state for r in rows[:5000]]
        for name in ("payment_intent", "charge"):
            if p.get(name) not in (None, ""):
                objects = [o for o in objects if o.get(name) == p[name]]
        return _answer(200, self.expand(self._paginate(objects, p, "/v1/refunds"), self._expand_param(p)))

    def api_retrieve_refund(self, ctx: ApiContext, fault: faults.Fault | None = None, refund_id: str = "") -> Answer:
        return self._retrieve(ctx, refund_id, "re_", "refund")

    # --- Events ----------------------------------------------------------------------------

    def api_list_events(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        p = self.params(ctx)
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith="evt_").order_by("-id")
        objects = [r.state for r in rows[:5000]]
        types = p.get("types") or ([p["type"]] if p.get("type") not in (None, "") else [])
        if types:
            patterns = [re.compile("^" + re.escape(t).replace(r"\*", "[^.]+") + "$") for t in types if isinstance(t, str)]
            objects = [o for o in objects if any(pattern.match(o["type"]) for pattern in patterns)]
        created = p.get("created")
        if isinstance(created, dict):
            for op, value in created.items():
                bound = wire.integer(value, f"created[{op}]")
                compare = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}.get(op)
                if compare is None:
                    raise wire.invalid(f"created[{op}]", f"Received unknown parameter: created[{op}]")
                objects = [o for o in objects if compare(int(o["created"]), bound)]
        elif created not in (None, ""):
            bound = wire.integer(created, "created")
            objects = [o for o in objects if int(o["created"]) == bound]
        return _answer(200, self._paginate(objects, p, "/v1/events"))

    def api_retrieve_event(self, ctx: ApiContext, fault: faults.Fault | None = None, event_id: str = "") -> Answer:
        return self._retrieve(ctx, event_id, "evt_", "event")

    # --- lists -------------------------------------------------------------------------------

    def _paginate(self, objects: list[dict[str, Any]], p: dict[str, Any], url: str, *, newest_first: bool = True) -> dict[str, Any]:
        limit = _limit(p)
        ids = [o.get("id") for o in objects]
        if p.get("starting_after") not in (None, ""):
            if p["starting_after"] not in ids:
                raise wire.invalid("starting_after", f"Invalid starting_after id: {p['starting_after']}")
            objects = objects[ids.index(p["starting_after"]) + 1 :]
        elif p.get("ending_before") not in (None, ""):
            if p["ending_before"] not in ids:
                raise wire.invalid("ending_before", f"Invalid ending_before id: {p['ending_before']}")
            objects = objects[: ids.index(p["ending_before"])][-limit:]
        page = objects[:limit]
        return {"object": "list", "data": [copy.deepcopy(o) for o in page], "has_more": len(objects) > limit, "url": url}

    # --- views: the API ---------------------------------------------------------------------

    def _match(self, *keys: Any) -> Callable[[ApiContext], list[str]]:
        def match(ctx: ApiContext) -> list[str]:
            found = [k for k in keys if isinstance(k, str) and k]
            data = ctx.data if isinstance(ctx.data, dict) else {}
            for name in ("payment_intent", "charge", "client_reference_id"):
                if isinstance(data.get(name), str):
                    found.append(data[name])
            meta = data.get("metadata")
            if isinstance(meta, dict) and isinstance(meta.get("order_id"), str):
                found.append(meta["order_id"])
            for key in list(found):
                order = SandboxPayment.objects.filter(pg=self.name, key=key).values_list("order_id", flat=True).first()
                if order:
                    found.append(order)
            return found

        return match

    def _route(self, request: HttpRequest, routes: dict[str, tuple[str, Callable[..., Answer]]], *keys: str, **kwargs) -> HttpResponse:
        if request.method not in routes:
            return self.view_unknown(request)
        operation, handler = routes[request.method]
        return self.serve(request, operation, handler, match=self._match(*keys), **kwargs)

    def view_sessions(self, request: HttpRequest) -> HttpResponse:
        return self._route(request, {"POST": ("checkout", self.api_create_session), "GET": ("lookup", self.api_list_sessions)})

    def view_session(self, request: HttpRequest, session_id: str) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_retrieve_session)}, session_id, session_id=session_id)

    def view_session_expire(self, request: HttpRequest, session_id: str) -> HttpResponse:
        return self._route(request, {"POST": ("expire", self.api_expire_session)}, session_id, session_id=session_id)

    def view_session_line_items(self, request: HttpRequest, session_id: str) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_session_line_items)}, session_id, session_id=session_id)

    def view_intent_search(self, request: HttpRequest) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_search_intents)})

    def view_intent(self, request: HttpRequest, intent_id: str) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_retrieve_intent)}, intent_id, intent_id=intent_id)

    def view_charge(self, request: HttpRequest, charge_id: str) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_retrieve_charge)}, charge_id, charge_id=charge_id)

    def view_method(self, request: HttpRequest, method_id: str) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_retrieve_method)}, method_id, method_id=method_id)

    def view_refunds(self, request: HttpRequest) -> HttpResponse:
        return self._route(request, {"POST": ("cancel", self.api_create_refund), "GET": ("lookup", self.api_list_refunds)})

    def view_refund(self, request: HttpRequest, refund_id: str) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_retrieve_refund)}, refund_id, refund_id=refund_id)

    def view_events(self, request: HttpRequest) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_list_events)})

    def view_event(self, request: HttpRequest, event_id: str) -> HttpResponse:
        return self._route(request, {"GET": ("lookup", self.api_retrieve_event)}, event_id, event_id=event_id)

    def view_unknown(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        guard()
        ctx = ApiContext(request=request, now=clock.now(), lang="en")
        return self.decorate(ctx, self.error_answer(ctx, self._unrecognized(request)).response())

    # --- views: the hosted page ---------------------------------------------------------------

    def page_language(self, request: HttpRequest, session: dict[str, Any]) -> str:
        """The page's language: the Session's ``locale``, or the browser's for ``auto`` (English when not translated)."""
        available = {code for code, _name in getattr(django_settings, "LANGUAGES", [])}
        locale = (session.get("locale") or "auto").split("-")[0]
        if locale != "auto":
            return locale if locale in available else "en"
        return translation.get_language_from_request(request) or "en"

    def view_pay(self, request: HttpRequest, session_id: str) -> HttpResponse:
        """The hosted Checkout page at ``session.url``: the order, a card form, the delayed method, the way back."""
        guard()
        now = clock.now()
        row = self._row(session_id) if session_id.startswith("cs_") else None
        if row is None:
            return self._page_missing(request)
        with transaction.atomic():
            row = self._row(session_id, lock=True)
            self.refresh_session(row, now)
            if request.method != "POST" or row.state.get("status") != "open":
                error = ""
                if request.method != "POST" and request.GET.get("error") == "authentication":
                    with translation.override(self.page_language(request, row.state)):
                        error = str(_authentication_failed())
                return self._page(request, row, status=200 if request.method != "POST" else 409, error=error)
            method = request.POST.get("method", "card")
            form = {
                k: request.POST.get(k, "")
                for k in ("email", "card_number", "card_expiry", "card_cvc", "card_name", "country", "delayed_outcome", "account_holder")
            }
            with translation.override(self.page_language(request, row.state)):
                result = self.attempt_delayed(row, form, now) if method == DELAYED_METHOD else self.attempt_card(row, form, now)
        if result.kind in ("paid", "processing"):
            return self._to_success(request, row)
        if result.kind == "action":
            return HttpResponseRedirect(reverse("pgpay_sandbox:stripe-authenticate", args=[row.key]), status=303)
        return self._page(
            request,
            row,
            status=402 if result.kind == "declined" else 400,
            error=result.message,
            error_field=result.field,
            form=form,
            method=method,
        )

    def view_authenticate(self, request: HttpRequest, session_id: str) -> HttpResponse:
        """The stand-in for the card issuer's 3-D Secure challenge ("Complete" / "Fail")."""
        guard()
        now = clock.now()
        row = self._row(session_id) if session_id.startswith("cs_") else None
        if row is None:
            return self._page_missing(request)
        with transaction.atomic():
            row = self._row(session_id, lock=True)
            self.refresh_session(row, now)
            intent = self.render(row.state["payment_intent"]) if row.state.get("payment_intent") else None
            waiting = row.state.get("status") == "open" and intent is not None and intent.get("status") == "requires_action"
            if not waiting:
                return HttpResponseRedirect(reverse("pgpay_sandbox:stripe-pay", args=[row.key]), status=303)
            with translation.override(self.page_language(request, row.state)):
                if request.method != "POST":
                    return render(request, "pgpay_sandbox/stripe/authenticate.html", self._page_context(row, intent=intent))
                result = self.authenticate_3ds(row, complete=request.POST.get("action") == "complete", now=now)
        if result.kind == "paid":
            return self._to_success(request, row)
        # Back to the page (a fresh GET), which says why.
        return HttpResponseRedirect(reverse("pgpay_sandbox:stripe-pay", args=[row.key]) + "?error=authentication", status=303)

    def _to_success(self, request: HttpRequest, row: SandboxPayment) -> HttpResponse:
        url = row.state["success_url"].replace("{CHECKOUT_SESSION_ID}", row.key)
        return HttpResponseRedirect(url, status=303)

    def _page_context(self, row: SandboxPayment, **extra: Any) -> dict[str, Any]:
        session = row.state
        currency = session["currency"]
        items = [
            {
                "name": item["description"],
                "quantity": item["quantity"],
                "unit": wire.amount_text(item["price"]["unit_amount"], currency),
                "total": wire.amount_text(item["amount_total"], currency),
            }
            for item in row.session.get("line_items") or []
        ]
        return {
            "session": session,
            "row": row,
            "business_name": self.business_name(),
            "items": items,
            "total": wire.amount_text(session["amount_total"], currency),
            "currency": currency.upper(),
            "card": "card" in (session.get("payment_method_types") or []),
            "delayed": DELAYED_METHOD in (session.get("payment_method_types") or []),
            "expires": _from_ts(int(session["expires_at"])),
            "form": {},
            "error": "",
            "error_field": "",
            "method": "card",
            **extra,
        }

    def _page(self, request: HttpRequest, row: SandboxPayment, *, status: int = 200, **extra: Any) -> HttpResponse:
        template = "pgpay_sandbox/stripe/pay.html" if row.state.get("status") == "open" else "pgpay_sandbox/stripe/closed.html"
        context = self._page_context(row, **extra)
        form = {"card_number": "", "card_expiry": "", "card_name": "", "email": "", **(context.get("form") or {})}
        context["form"] = form
        context["email_value"] = row.state.get("customer_email") or form["email"]
        if row.state.get("status") == "complete" and row.state.get("success_url"):
            context["success_url"] = row.state["success_url"].replace("{CHECKOUT_SESSION_ID}", row.key)
        with translation.override(self.page_language(request, row.state)):
            return render(request, template, context, status=status)

    def _page_missing(self, request: HttpRequest) -> HttpResponse:
        return render(request, "pgpay_sandbox/stripe/closed.html", {"session": None}, status=404)

    def view_receipt(self, request: HttpRequest, charge_id: str) -> HttpResponse:
        """What a Charge's ``receipt_url`` shows."""
        guard()
        charge = self.render(charge_id) if charge_id.startswith("ch_") else None
        if charge is None:
            return self._page_missing(request)
        refunds = [self.render(r) for r in (self._row(charge_id).session.get("refunds") or [])]
        context = {
            "charge": charge,
            "business_name": self.business_name(),
            "amount": wire.amount_text(charge["amount"], charge["currency"]),
            "refunded": wire.amount_text(charge["amount_refunded"], charge["currency"]),
            "refunds": [
                {"id": r["id"], "amount": wire.amount_text(r["amount"], r["currency"]), "created": _from_ts(r["created"])}
                for r in refunds
                if r
            ],
            "paid_at": _from_ts(charge["created"]),
        }
        return render(request, "pgpay_sandbox/stripe/receipt.html", context)

    def urlpatterns(self) -> list:
        api = csrf_exempt
        return [
            path("v1/checkout/sessions", api(self.view_sessions), name="stripe-sessions"),
            path("v1/checkout/sessions/<str:session_id>", api(self.view_session), name="stripe-session"),
            path("v1/checkout/sessions/<str:session_id>/expire", api(self.view_session_expire), name="stripe-session-expire"),
            path("v1/checkout/sessions/<str:session_id>/line_items", api(self.view_session_line_items), name="stripe-session-line-items"),
            path("v1/payment_intents/search", api(self.view_intent_search), name="stripe-intent-search"),
            path("v1/payment_intents/<str:intent_id>", api(self.view_intent), name="stripe-intent"),
            path("v1/charges/<str:charge_id>", api(self.view_charge), name="stripe-charge"),
            path("v1/payment_methods/<str:method_id>", api(self.view_method), name="stripe-method"),
            path("v1/refunds", api(self.view_refunds), name="stripe-refunds"),
            path("v1/refunds/<str:refund_id>", api(self.view_refund), name="stripe-refund"),
            path("v1/events", api(self.view_events), name="stripe-events"),
            path("v1/events/<str:event_id>", api(self.view_event), name="stripe-event"),
            re_path(r"^v1/(?P<rest>.*)$", api(self.view_unknown), name="stripe-unknown"),
            path("c/pay/<str:session_id>", csrf_protect(self.view_pay), name="stripe-pay"),
            path("c/pay/<str:session_id>/authenticate", csrf_protect(self.view_authenticate), name="stripe-authenticate"),
            path("receipts/<str:charge_id>", self.view_receipt, name="stripe-receipt"),
        ]

    # --- the dashboard -------------------------------------------------------------------------

    def dashboard_panel(self, request: HttpRequest) -> dict[str, Any] | None:
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith="cs_").order_by("-id")[:30]
        sessions = []
        for row in rows:
            session = row.state
            intent = self.render(session["payment_intent"]) if session.get("payment_intent") else None
            charge = self.render(intent["latest_charge"]) if intent and intent.get("latest_charge") else None
            currency = session["currency"]
            sessions.append(
                {
                    "id": row.key,
                    "order_id": row.order_id,
                    "status": session["status"],
                    "payment_status": session["payment_status"],
                    "total": wire.amount_text(session["amount_total"], currency),
                    "intent": intent,
                    "charge": charge,
                    "refunded": wire.amount_text(charge["amount_refunded"], currency) if charge else "",
                    "refundable": charge is not None and charge["status"] == "succeeded" and charge["amount_refunded"] < charge["amount"],
                    "left": charge["amount"] - charge["amount_refunded"] if charge else 0,
                    "unit": currency.upper(),
                }
            )
        origin = f"{request.scheme}://{request.get_host()}"
        secrets_ = self.signing_secrets()
        return {
            "template": "pgpay_sandbox/stripe/panel.html",
            "sessions": sessions,
            "api_base": origin + reverse("pgpay_sandbox:index") + self.name,
            "webhook_secret": secrets_[0][:10] + "…" if secrets_ else "",
        }

    # --- actions (tests, the control API, the dashboard) --------------------------------------------

    def actions(self) -> dict[str, Callable[..., Any]]:
        return {
            "pay": self.act_pay,
            "pay-delayed": self.act_pay_delayed,
            "settle": self.act_settle,
            "fail": self.act_fail,
            "refund": self.act_refund,
            "expire": self.act_expire,
            "session": self.act_session,
            "payment-intent": self.act_payment_intent,
        }

    def _open_session(self, session_id: str, now: datetime) -> SandboxPayment:
        row = self._row(session_id, lock=True)
        if row is None or not session_id.startswith("cs_"):
            raise wire.no_such("checkout.session", session_id, "session")
        self.refresh_session(row, now)
        if row.state.get("status") != "open":
            raise StripeError(400, f"The Checkout Session is {row.state.get('status')}, not open.")
        return row

    def act_pay(
        self,
        session_id: str = "",
        card: str = "4242424242424242",
        email: str = "",
        complete_3ds: bool = True,
        payment_key: str = "",
        **_ignored: Any,
    ) -> dict[str, Any]:
        """The buyer pays on the hosted page (no browser); 3-D Secure cards are authenticated unless ``complete_3ds=False``.

        Returns ``{"outcome", "message", "session", "success_url"}`` (the Session as the API returns it).
        """
        session_id = session_id or payment_key
        now = clock.now()
        with transaction.atomic():
            row = self._open_session(session_id, now)
            form = {
                "email": email or row.state.get("customer_email") or "buyer@example.com",
                "card_number": card,
                "card_expiry": f"12 / {(now.year + 3) % 100:02d}",
                "card_cvc": "123",
                "card_name": "Sandbox Buyer",
                "country": "KR",
            }
            result = self.attempt_card(row, form, now)
            if result.kind == "action":
                result = self.authenticate_3ds(row, complete=bool(complete_3ds), now=now)
        return self._outcome(session_id, result)

    def act_pay_delayed(
        self, session_id: str = "", email: str = "", outcome: str = "manual", payment_key: str = "", **_ignored: Any
    ) -> dict[str, Any]:
        """The buyer pays with the delayed method: ``outcome`` ``manual`` (settle later), ``succeed:SECONDS`` or ``fail:SECONDS``."""
        session_id = session_id or payment_key
        now = clock.now()
        with transaction.atomic():
            row = self._open_session(session_id, now)
            result = self.attempt_delayed(
                row,
                {
                    "email": email or row.state.get("customer_email") or "buyer@example.com",
                    "delayed_outcome": outcome,
                    "account_holder": "Sandbox Buyer",
                },
                now,
            )
        return self._outcome(session_id, result)

    def _outcome(self, session_id: str, result: PageResult) -> dict[str, Any]:
        session = self.render(session_id)
        success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id) if result.kind in ("paid", "processing") else None
        return {"outcome": result.kind, "message": result.message, "session": session, "success_url": success}

    def _intent_row(self, key: str) -> SandboxPayment:
        """A locked PaymentIntent by its id, its Checkout Session's id or one of its Charges' ids."""
        if key.startswith("cs_"):
            session = self.render(key)
            key = session.get("payment_intent") or "" if session else ""
        elif key.startswith("ch_"):
            charge = self.render(key)
            key = charge.get("payment_intent") or "" if charge else ""
        row = self._row(key, lock=True) if key.startswith("pi_") else None
        if row is None:
            raise wire.no_such("payment_intent", key or "?", "payment_intent")
        return row

    def act_settle(self, payment_key: str, succeed: bool = True, **_ignored: Any) -> dict[str, Any]:
        """The delayed payment of ``payment_key`` (a ``pi_``, ``cs_`` or ``ch_`` id) succeeds (or fails)."""
        now = clock.now()
        with transaction.atomic():
            row = self._intent_row(payment_key)
            self.settle(row, now, succeed=bool(succeed) and succeed not in ("false", "0"))
        return self.render(row.key)

    def act_fail(self, payment_key: str, **_ignored: Any) -> dict[str, Any]:
        """The delayed payment of ``payment_key`` fails."""
        return self.act_settle(payment_key, succeed=False)

    def act_refund(self, payment_key: str, amount: Any = None, reason: str | None = None, **_ignored: Any) -> dict[str, Any]:
        """A refund made in the Stripe Dashboard: ``amount`` in the minor unit (None: the rest); no metadata."""
        minor = None if amount in (None, "") else wire.integer(str(amount), "amount", minimum=1)
        now = clock.now()
        with transaction.atomic():
            intent_row = self._intent_row(payment_key) if not payment_key.startswith("ch_") else None
            charge_row = self._charge_to_refund(intent_row.key if intent_row else None, payment_key if intent_row is None else None)
            return self.refund(charge_row, minor, now, metadata={}, reason=reason or "requested_by_customer")

    def act_expire(self, payment_key: str = "", session_id: str = "", **_ignored: Any) -> dict[str, Any]:
        """Stripe expires an open Checkout Session now (as when ``expires_at`` passes)."""
        session_id = session_id or payment_key
        now = clock.now()
        with transaction.atomic():
            row = self._open_session(session_id, now)
            self._expire(row, now)
        return self.render(session_id)

    def act_session(self, payment_key: str = "", session_id: str = "", **_ignored: Any) -> dict[str, Any]:
        """The Checkout Session as ``GET /v1/checkout/sessions/{id}`` returns it (unexpanded)."""
        found = self.render(session_id or payment_key)
        if found is None:
            raise wire.no_such("checkout.session", session_id or payment_key, "session")
        return found

    def act_payment_intent(self, payment_key: str, **_ignored: Any) -> dict[str, Any]:
        """The PaymentIntent of ``payment_key`` (``pi_``, ``cs_`` or ``ch_`` id)."""
        with transaction.atomic():
            return copy.deepcopy(self._intent_row(payment_key).state)

    def apply_due_to(self, key: str, now: datetime) -> bool:
        row = self._row(key, lock=True)
        if row is None or row.due_at is None or row.due_at > now:
            return False
        if key.startswith("cs_"):
            return bool(self.refresh_session(row, now))
        if key.startswith("pi_") and row.session.get("settle"):
            self.settle(row, now, succeed=bool(row.session["settle"].get("succeed")))
            return True
        row.due_at = None
        row.save(update_fields=["due_at"])
        return False


_BANK_ACCOUNT = {
    "account_holder_type": "individual",
    "account_type": "checking",
    "bank_name": "STRIPE TEST BANK",
    "financial_connections_account": None,
    "fingerprint": "sandboxBankAcct01",
    "last4": "6789",
    "routing_number": "110000000",
}


def _billing(email: str, name: str, country: str) -> dict[str, Any]:
    return {
        "address": {
            "city": None,
            "country": (country or "KR")[:2].upper(),
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": email or None,
        "name": name.strip()[:100] or None,
        "phone": None,
        "tax_id": None,
    }


def _customer_details(billing: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": billing["address"],
        "email": billing["email"],
        "name": billing["name"],
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def _decline_text(decline_code: str, message: str) -> str:
    """What the page tells the buyer (translated for the codes the test cards produce)."""
    texts = {
        "generic_decline": _("Your card was declined."),
        "insufficient_funds": _("Your card has insufficient funds."),
        "lost_card": _("Your card was declined."),
        "card_declined": _("Your card was declined."),
        "expired_card": _("Your card has expired."),
        "incorrect_cvc": _("Your card's security code is incorrect."),
        "processing_error": _("An error occurred while processing your card. Try again in a little bit."),
        "test_mode_live_card": _("Your card was declined. This is a sandbox: use a test card such as 4242 4242 4242 4242."),
    }
    return texts.get(decline_code, message)


def _authentication_failed() -> str:
    """What the page says after a failed 3-D Secure challenge (Stripe's wording)."""
    return _("We are unable to authenticate your payment method. Please choose a different payment method and try again.")


def _request_id(ctx: ApiContext) -> str:
    value = getattr(ctx, "stripe_request_id", None)
    if value is None:
        value = wire.request_id()
        ctx.stripe_request_id = value
    return value


def _limit(p: dict[str, Any]) -> int:
    if p.get("limit") in (None, ""):
        return 10
    limit = wire.integer(p["limit"], "limit", minimum=1)
    if limit > 100:
        raise wire.invalid("limit", "This value must be less than or equal to 100.")
    return limit


_CLAUSE = re.compile(
    r"""^(-?)(metadata\[(['"])(?P<key>[^'"]{1,40})\3\]|[a-z_]+)\s*(?P<op>:|>=|<=|>|<)\s*(?P<value>'[^']*'|"[^"]*"|-?\d+)$"""
)


def _parse_query(query: Any) -> tuple[list[tuple[str, str, str, bool]], str]:
    """Stripe's search query language, the part a shop needs: equality and numeric comparisons, AND or OR."""
    if not isinstance(query, str) or len(query) > 10000:
        raise wire.invalid("query", "Invalid query.")
    has_and, has_or = " AND " in query, " OR " in query
    if has_and and has_or:
        raise wire.invalid("query", "Search queries cannot mix AND and OR.")
    joiner = "OR" if has_or else "AND"
    clauses = []
    for text in query.split(f" {joiner} "):
        match = _CLAUSE.match(text.strip())
        if match is None:
            raise wire.invalid("query", f"Invalid query: could not parse '{text.strip()[:100]}'.")
        field = f"metadata.{match.group('key')}" if match.group("key") else match.group(2)
        if field not in ("status", "currency", "amount", "created", "customer") and not field.startswith("metadata."):
            raise wire.invalid("query", f"Field '{field}' is an unsupported search field for resource payment_intents.")
        value = match.group("value")
        value = value[1:-1] if value[0] in "'\"" else value
        clauses.append((field, match.group("op"), value, match.group(1) == "-"))
    return clauses, joiner


def _matches(intent: dict[str, Any], clause: tuple[str, str, str, bool]) -> bool:
    field, op, value, negated = clause
    if field.startswith("metadata."):
        actual: Any = (intent.get("metadata") or {}).get(field.split(".", 1)[1])
    else:
        actual = intent.get(field)
    if op == ":":
        result = str(actual) == value if actual is not None else False
    else:
        try:
            left, right = int(actual), int(value)
        except (TypeError, ValueError):
            return False
        result = {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]
    return not result if negated else result


def _site() -> str:
    from .conf import site_url

    return site_url()


# --- the Python API (what tests call) -------------------------------------------------------


def _stripe() -> StripeSandbox:
    from .base import emulator

    return emulator("stripe")


def pay(session_id: str, card: str = "4242424242424242", **kwargs: Any) -> dict[str, Any]:
    """The buyer pays the Checkout Session with ``card`` (no browser): ``{"outcome", "message", "session", "success_url"}``."""
    return _stripe().act_pay(session_id, card=card, **kwargs)


def pay_delayed(session_id: str, outcome: str = "manual", **kwargs: Any) -> dict[str, Any]:
    """The buyer pays with the delayed method; ``outcome`` ``manual``, ``succeed:SECONDS`` or ``fail:SECONDS``."""
    return _stripe().act_pay_delayed(session_id, outcome=outcome, **kwargs)


def settle(payment_key: str, succeed: bool = True) -> dict[str, Any]:
    """A delayed payment succeeds (or fails): ``checkout.session.async_payment_succeeded`` / ``_failed``."""
    return _stripe().act_settle(payment_key, succeed=succeed)


def refund_in_dashboard(payment_key: str, amount: int | None = None) -> dict[str, Any]:
    """A refund made in Stripe's Dashboard (``amount`` in the minor unit; None: the rest): ``charge.refunded``."""
    return _stripe().act_refund(payment_key, amount)


def expire(session_id: str) -> dict[str, Any]:
    """Stripe expires an open Checkout Session now: ``checkout.session.expired``."""
    return _stripe().act_expire(session_id)


def session_state(session_id: str) -> dict[str, Any]:
    """The Checkout Session as the API returns it."""
    return _stripe().act_session(session_id)


def payment_intent_state(payment_key: str) -> dict[str, Any]:
    """The PaymentIntent of a ``pi_``, ``cs_`` or ``ch_`` id."""
    return _stripe().act_payment_intent(payment_key)


def events(event_type: str | None = None) -> list[dict[str, Any]]:
    """Every event recorded (oldest first), as ``/v1/events`` holds them."""
    rows = SandboxPayment.objects.filter(pg="stripe", key__startswith="evt_").order_by("id")
    found = [row.state for row in rows]
    return [e for e in found if event_type is None or e["type"] == event_type]


__all__ = [
    "API_VERSION",
    "DEFAULT_EVENTS",
    "TEST_CARDS",
    "StripeSandbox",
    "events",
    "expire",
    "pay",
    "pay_delayed",
    "payment_intent_state",
    "refund_in_dashboard",
    "session_state",
    "settle",
]
