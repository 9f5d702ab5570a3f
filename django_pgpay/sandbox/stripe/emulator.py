"""The Stripe emulator: its settings, how Stripe authenticates and answers, and its routes.

:class:`StripeSandbox` is put together from the noun modules of this package
(Sessions, PaymentIntents, Refunds, lists, events, the hosted page, the
sandbox's actions, the object store); this module holds only what is
Stripe's protocol: secret keys, the error object and HTTP statuses,
``Idempotency-Key`` scoped to the key with its parameters compared,
``Request-Id`` and ``Stripe-Version`` on every answer, and the URL map.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from .. import clock
from ..base import Answer, ApiContext, ApiError, Problem, SandboxPG, guard
from ..models import SandboxPayment
from . import wire
from .actions import Actions
from .events import DEFAULT_EVENTS, Events
from .intents import Intents
from .lists import Lists
from .objects import ObjectStore
from .pages import Pages
from .refunds import REFUSALS, Refunds
from .sessions import Sessions
from .wire import StripeError

#: ``api_version`` of events and the ``Stripe-Version`` answered by default
#: (the version the official SDK 16 pins; ``PGPAY_SANDBOX["STRIPE"]["API_VERSION"]`` changes it).
API_VERSION = "2026-10-28.endive"
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
#: The API: (path, URL name, {HTTP method: (the framework's operation, handler)}).
API_ROUTES = (
    ("v1/checkout/sessions", "stripe-sessions", {"POST": ("checkout", "api_create_session"), "GET": ("lookup", "api_list_sessions")}),
    ("v1/checkout/sessions/<str:session_id>", "stripe-session", {"GET": ("lookup", "api_retrieve_session")}),
    ("v1/checkout/sessions/<str:session_id>/expire", "stripe-session-expire", {"POST": ("expire", "api_expire_session")}),
    ("v1/checkout/sessions/<str:session_id>/line_items", "stripe-session-line-items", {"GET": ("lookup", "api_session_line_items")}),
    ("v1/payment_intents/search", "stripe-intent-search", {"GET": ("lookup", "api_search_intents")}),
    ("v1/payment_intents/<str:intent_id>", "stripe-intent", {"GET": ("lookup", "api_retrieve_intent")}),
    ("v1/charges/<str:charge_id>", "stripe-charge", {"GET": ("lookup", "api_retrieve_charge")}),
    ("v1/payment_methods/<str:method_id>", "stripe-method", {"GET": ("lookup", "api_retrieve_method")}),
    ("v1/refunds", "stripe-refunds", {"POST": ("cancel", "api_create_refund"), "GET": ("lookup", "api_list_refunds")}),
    ("v1/refunds/<str:refund_id>", "stripe-refund", {"GET": ("lookup", "api_retrieve_refund")}),
    ("v1/events", "stripe-events", {"GET": ("lookup", "api_list_events")}),
    ("v1/events/<str:event_id>", "stripe-event", {"GET": ("lookup", "api_retrieve_event")}),
)


class StripeSandbox(Sessions, Intents, Refunds, Lists, Events, Pages, Actions, ObjectStore, SandboxPG):
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
    #: The lifecycle's refusals (a refund) as Stripe's codes; :mod:`.refunds` words them with their amounts.
    refusals = {refusal: code for refusal, (code, _param, _message) in REFUSALS.items()}
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
        missing = secret in (None, "", [])
        if missing and value.get("WEBHOOK_URL"):
            hint = 'Make one up ("whsec_...") and give the same value to the gateway\'s WEBHOOK_SECRETS.'
            text = f'{where}["WEBHOOK_SECRET"] is not set: events go out unsigned and a shop refuses them.'
            messages.append(checks.Warning(text, hint=hint, id="pgpay_sandbox.W003"))
        elif not missing and (
            not isinstance(secrets_, (list, tuple)) or not all(isinstance(s, str) and s.startswith("whsec_") for s in secrets_)
        ):
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
        return wire.answer(error.status, {"error": error.body()}, error.headers)

    def _translate(self, ctx: ApiContext, error: ApiError) -> StripeError:
        """The framework's codes (faults, the idempotency layer, a crash) in Stripe's words."""
        code = error.code
        key = ctx.request.headers.get(self.idempotency_header, "")
        retry = (("Stripe-Should-Retry", "true"),)
        if code == "IDEMPOTENT_REQUEST_PROCESSING":
            status, kind, message = ERRORS["idempotency_key_in_use"]
            return StripeError(status, message.format(key=key), type=kind, code="idempotency_key_in_use", keep=False, headers=retry)
        if code == "INVALID_IDEMPOTENCY_KEY":
            return StripeError(400, f"Idempotency keys must be at most {self.idempotency_key_max} characters long.", keep=False)
        if code in ("NOT_FOUND", "METHOD_NOT_ALLOWED"):
            return self._unrecognized(ctx.request)
        if code in _INTERNAL:
            return StripeError(error.status or 500, error.message or ERRORS["api_error"][2], type="api_error")
        if code in ERRORS:
            status, kind, message = ERRORS[code]
            message = error.message or message.format(key=key)
            headers = retry if code == "lock_timeout" else ()
            return StripeError(error.status or status, message, type=kind, code=None if code == "api_error" else code, headers=headers)
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
        response["Request-Id"] = wire.request_id_of(ctx)
        response["Stripe-Version"] = ctx.request.headers.get("Stripe-Version") or self.api_version()
        key = ctx.request.headers.get(self.idempotency_header)
        if ctx.request.method == "POST" and key:
            response["Idempotency-Key"] = key
        if replayed:
            response["Idempotent-Replayed"] = "true"
        response["Cache-Control"] = "no-cache, no-store"
        return response

    def describe(self, payment) -> dict[str, Any]:
        """Amount, balance (what the charge still holds) and method of a Session, PaymentIntent or Charge."""
        state = payment.state
        charge = self._charge_of(state)
        return {
            "amount": state.get("amount_total", state.get("amount")),
            "balance": charge["amount"] - charge["amount_refunded"] if charge else None,
            "method": (state.get("payment_method_details") or {}).get("type"),
        }

    def _charge_of(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """The Charge behind a Session or PaymentIntent (the object itself for a Charge); None before one exists."""
        if state.get("object") == "checkout.session" and state.get("payment_intent"):
            state = self.render(state["payment_intent"]) or {}
        if state.get("object") == "payment_intent" and state.get("latest_charge"):
            state = self.render(state["latest_charge"]) or {}
        return state if state.get("object") == "charge" else None

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

    def _api_view(self, methods: dict[str, tuple[str, str]]) -> Callable[..., HttpResponse]:
        """The view of one API path: its handler by HTTP method (another method is Stripe's "Unrecognized request URL")."""

        def view(request: HttpRequest, **ids: str) -> HttpResponse:
            if request.method not in methods:
                return self.view_unknown(request)
            operation, handler = methods[request.method]
            return self.serve(request, operation, getattr(self, handler), match=self._match(*ids.values()), **ids)

        return csrf_exempt(view)

    def view_unknown(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        guard()
        ctx = ApiContext(request=request, now=clock.now(), lang="en")
        return self.decorate(ctx, self.error_answer(ctx, self._unrecognized(request)).response())

    def urlpatterns(self) -> list:
        api = [path(route, self._api_view(methods), name=name) for route, name, methods in API_ROUTES]
        return [
            *api,
            re_path(r"^v1/(?P<rest>.*)$", csrf_exempt(self.view_unknown), name="stripe-unknown"),
            path("c/pay/<str:session_id>", csrf_protect(self.view_pay), name="stripe-pay"),
            path("c/pay/<str:session_id>/authenticate", csrf_protect(self.view_authenticate), name="stripe-authenticate"),
            path("receipts/<str:charge_id>", self.view_receipt, name="stripe-receipt"),
        ]


def _site() -> str:
    from ..conf import site_url

    return site_url()
