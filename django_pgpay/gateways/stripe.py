"""Stripe: Checkout Sessions, PaymentIntents and Refunds over plain ``requests``.

Wire contract (docs.stripe.com/api; ``docs/stripe.rst`` shows what each call sends):

* ``Authorization: Bearer {SECRET_KEY}`` on every call; request bodies are
  form-encoded with bracketed keys (``line_items[0][price_data][unit_amount]=15000``,
  lists indexed like the official SDK's: ``expand[0]=payment_intent``); replies are JSON.
* ``POST /v1/checkout/sessions`` opens Stripe's hosted payment page for an order;
  ``POST /v1/checkout/sessions/{id}/expire`` closes an open one.
* ``GET /v1/checkout/sessions/{id}`` (with the PaymentIntent and its latest Charge
  expanded) tells whether the buyer paid; Stripe has no confirm call, so the
  return URL only reads what Stripe says.
* ``GET /v1/payment_intents/{id}``, ``GET /v1/payment_intents/search`` (by
  ``metadata['order_id']``) and ``GET /v1/refunds?payment_intent=`` look a payment up.
* ``POST /v1/refunds`` gives money back, with ``Idempotency-Key`` = the ledger row's key.
* Webhooks carry ``Stripe-Signature: t=…,v1=…``: HMAC-SHA256 of ``"{t}.{raw body}"``
  keyed with the endpoint's ``whsec_`` secret, accepted for 300 seconds.

Amounts are integers of the currency's minor unit, converted only by
:mod:`django_pgpay.money` with ``scheme="stripe"`` (KRW 15000 -> ``15000``,
USD 10.50 -> ``1050``, KWD 1.230 -> ``1230``); nothing here is ever a float.
The secret key lives on the gateway instance; the ``stripe`` package is not used.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from django.core import checks
from django.utils.translation import gettext as _

from .. import conf
from ..exceptions import (
    AlreadyCanceled,
    AuthenticationFailed,
    CancelRefused,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    OperationInProgress,
    PaymentDeclined,
    PgPayError,
    RetryLater,
    WebhookVerificationError,
)
from ..money import MoneyError, normalize_currency, to_minor
from .http import HttpReply, loads_json
from .pipeline import HttpGateway
from .results import (
    CancelRequest,
    CancelResult,
    CheckoutResult,
    CheckoutUrls,
    ConfirmRequest,
    OrderSnapshot,
    ParsedWebhook,
    PaymentResult,
    PaymentState,
    ReturnParams,
)
from .stripe_objects import INTENT_STATUSES, METADATA_KEY, PG_DATA_SESSION, REFUNDED_STATUSES, StripeObjects
from .stripe_wire import (
    METADATA_ORDER,
    encode_form,
    header,
    latest_charge,
    signature_header_items,
    verify_signature,
)
from .stripe_wire import order_number as order_of

logger = logging.getLogger("django_pgpay.gateways.stripe")

#: Key of the order's ``pg_data`` that holds every Checkout Session made for it (oldest first).
PG_DATA_SESSIONS = "stripe_session_ids"
#: How many Session ids an order remembers.
MAX_SESSIONS = 20

#: An open Checkout Session with less time than this left is replaced, not reused.
REUSE_MARGIN = 300
#: Stripe lets a Checkout Session live 30 minutes to 24 hours; a minute is kept
#: for clocks and the network.
SESSION_EXPIRES_RANGE = (31 * 60, 24 * 3600 - 60)

#: Checkout Session events: their object is a Session, trusted as signed.
SESSION_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    }
)
#: A refund was made (by us or in the Dashboard): the refunds are fetched.
CHARGE_REFUNDED = "charge.refunded"
#: Events about refunds: the payment and its refunds are fetched. Besides ``charge.refunded`` (a
#: Charge), those carrying a Refund whose status changed: a ``pending`` refund that ``failed``
#: (a closed card) gave nothing back after all (stripe.md section 7).
REFUND_EVENTS = frozenset({CHARGE_REFUNDED, "charge.refund.updated", "refund.updated", "refund.failed"})

#: Stripe error ``code`` -> the exception it means. Codes not listed fall back on
#: the error ``type`` and the HTTP status (see :meth:`StripeGateway.error`).
ERRORS: dict[str, type[GatewayError]] = {
    "charge_already_refunded": AlreadyCanceled,
    "amount_too_large": CancelRefused,
    "charge_disputed": CancelRefused,
    "charge_exceeds_source_limit": CancelRefused,
    "balance_insufficient": CancelRefused,
    "resource_missing": NotFound,
    "api_key_expired": AuthenticationFailed,
    "secret_key_required": AuthenticationFailed,
    # Our own key, still running elsewhere: that call's outcome is not known yet.
    "idempotency_key_in_use": GatewayUnavailable,
    # Refused before anything ran (Stripe keeps no idempotent result for them:
    # docs.stripe.com/api/idempotent_requests): refusals, to be asked again shortly.
    "rate_limit": RetryLater,
    "lock_timeout": RetryLater,
}

_ID = re.compile(r"^[A-Za-z0-9_]{3,250}$")
_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")


def _messages() -> dict[str, str]:
    """What a buyer or the shop's staff is told for the Stripe codes they may meet (translated)."""
    return {
        "charge_already_refunded": _("Stripe has already refunded this payment in full."),
        "amount_too_large": _("Stripe refused the refund: the amount is more than what is left to refund."),
        "charge_disputed": _("Stripe refused the refund: the payment is disputed."),
        "balance_insufficient": _("Stripe refused the refund: the Stripe balance is too low."),
    }


def _clock() -> float:
    """Unix time now (a function, so tests can move the clock of this module alone)."""
    return time.time()


class StripeGateway(StripeObjects, HttpGateway):
    """Stripe Checkout (hosted page) with PaymentIntents and Refunds, on plain ``requests``.

    OPTIONS:

    ``SECRET_KEY`` (required)
        ``sk_test_…``/``sk_live_…`` (or a restricted ``rk_`` key with write access
        to Checkout Sessions and Refunds). Sent only as ``Authorization: Bearer``.
    ``PUBLISHABLE_KEY``
        ``pk_test_…``/``pk_live_…``; not needed by the hosted page, checked to be
        of the secret key's mode when given.
    ``WEBHOOK_SECRETS``
        The endpoint's signing secret ``whsec_…``, or a list of two while rolling it.
        Without it every webhook is refused (400).
    ``API_BASE``
        Default ``https://api.stripe.com``; the sandbox points it at itself.
    ``API_VERSION``
        Sent as ``Stripe-Version`` when set (default: the account's version).
    ``SESSION_EXPIRES``
        Seconds a Checkout Session stays open; default ``PGPAY["READY_TIMEOUT"]``,
        kept within Stripe's 30 minutes to 24 hours.
    ``LOCALE``
        The page's language: ``auto`` (default, the browser's), ``ko``, ``en`` …
    ``PAYMENT_METHOD_TYPES``
        E.g. ``["card"]``; default: the methods enabled in the Dashboard.
    ``TIMEOUT``
        Seconds, or ``(connect, read)``; default ``(3.05, 30)``.
    """

    pg_name = "Stripe"
    supports_partial_cancel = True
    supports_idempotency_key = True
    signs_webhooks = True
    supports_lookup_by_order = True
    supports_virtual_account = False
    requires_confirm_call = False
    required_options = ("SECRET_KEY",)
    option_names = ("SECRET_KEY", "PUBLISHABLE_KEY", "WEBHOOK_SECRETS", "API_VERSION", "SESSION_EXPIRES", "LOCALE", "PAYMENT_METHOD_TYPES")
    webhook_ack = (200, "application/json", b'{"received": true}')

    DEFAULT_API_BASE = "https://api.stripe.com"

    # --- plumbing ---------------------------------------------------------------

    @property
    def is_test_mode(self) -> bool:
        """True when the secret key is a test key (``sk_test_``/``rk_test_``)."""
        return str(self._options.get("SECRET_KEY") or "")[3:8] == "test_"

    def webhook_secrets(self) -> list[str]:
        """``WEBHOOK_SECRETS`` as a list (a single string is one secret)."""
        value = self._options.get("WEBHOOK_SECRETS") or ()
        if isinstance(value, str):
            value = [value]
        return [str(s).strip() for s in value if str(s or "").strip()]

    def auth_headers(self, verb: str, token: str | None, idempotency_key: str = "") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.option('SECRET_KEY')}"}
        version = self._options.get("API_VERSION")
        if version:
            headers["Stripe-Version"] = str(version)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _call(self, verb: str, method: str, path: str, *, form=None, query=None, idempotency_key: str = "") -> dict:
        """A call with Stripe's bracketed form encoding, for the body and the query."""
        if query:
            path = f"{path}?{encode_form(query)}"
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else None
        body = encode_form(form) if form is not None else None
        return self.call(verb, method, path, form=body, headers=headers, idempotency_key=idempotency_key)

    def error_fields(self, reply: HttpReply) -> tuple[str, str]:
        """Stripe's ``error`` object: its ``code`` (else ``type``), and our translated words for the codes a buyer meets."""
        data = reply.data if isinstance(reply.data, dict) else {}
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        if not err:
            return "", ""  # not Stripe's error shape (a proxy's page): what happened is unknown
        code = str(err.get("code") or "")
        return code or str(err.get("type") or "") or f"HTTP_{reply.status}", _messages().get(code) or str(err.get("message") or "")

    def error_class(self, reply: HttpReply, code: str, message: str, verb: str) -> type[GatewayError]:
        """Stripe's ladder: rate limits, ``Stripe-Should-Retry`` and in-flight keys before ``ERRORS`` and the status."""
        err = reply.data["error"]
        kind, status = str(err.get("type") or ""), reply.status
        retry = str(header(reply.headers, "Stripe-Should-Retry")).lower()
        if code in ("rate_limit", "lock_timeout") or (status == 429 and kind != "api_error"):
            return RetryLater  # too many requests: refused before anything ran (see ERRORS)
        if kind in ("idempotency_error", "api_error") or status in (409, 424) or status >= 500 or retry == "true":
            return GatewayUnavailable  # the same key in flight or reused, Stripe's own trouble: a lookup decides
        if code in ERRORS:
            return ERRORS[code]
        if kind == "card_error" or status == 402:
            return PaymentDeclined
        return self.status_error(status, verb)

    def error_response(self, reply: HttpReply) -> dict:
        data = reply.data if isinstance(reply.data, dict) else {}
        return {**data, "request_id": header(reply.headers, "Request-Id")} if data else {"body": reply.text[:500]}

    # --- checkout and return ----------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """A redirect to a Checkout Session of ``order``: its open one when still usable, else a new one.

        One order has at most one payable Session: an open Session too close
        to its expiry is expired before a new one is made, and a Session the
        buyer already completed sends the browser to the return URL instead.
        """
        minor = self._minor(order.amount, order.currency)
        current = str((order.pg_data or {}).get(PG_DATA_SESSION) or "")
        if current:
            reused = self._reuse(current, order, minor, urls)
            if reused is not None:
                return reused
        session = self._call("checkout", "POST", "/v1/checkout/sessions", form=self.session_params(order, urls))
        session_id, url = str(session.get("id") or ""), str(session.get("url") or "")
        if not session_id or not url:
            raise GatewayUnavailable(f"{self.alias}: the Checkout Session has no id or url", gateway=self.alias, code="MALFORMED_REPLY")
        earlier = [str(s) for s in (order.pg_data or {}).get(PG_DATA_SESSIONS) or () if s and s != session_id]
        sessions = [*earlier, session_id][-MAX_SESSIONS:]
        return CheckoutResult(kind="redirect", redirect_url=url, pg_data={PG_DATA_SESSION: session_id, PG_DATA_SESSIONS: sessions})

    def merge_checkout_data(self, stored: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        """Every Session either side knows, the new one last (two tabs checking out at once made two)."""
        merged = {**stored, **new}
        sessions = [*(stored.get(PG_DATA_SESSIONS) or ()), *(new.get(PG_DATA_SESSIONS) or ()), new.get(PG_DATA_SESSION)]
        ordered = list(dict.fromkeys(str(s) for s in sessions if s))
        if PG_DATA_SESSION in new:  # this checkout's Session is the current one: last in the list
            ordered = [s for s in ordered if s != str(new[PG_DATA_SESSION])] + [str(new[PG_DATA_SESSION])]
        merged[PG_DATA_SESSIONS] = ordered[-MAX_SESSIONS:]
        return merged

    def _sessions(self, pg_data: Mapping[str, Any]) -> list[str]:
        """The order's Checkout Sessions, oldest first, the current one last."""
        current = str((pg_data or {}).get(PG_DATA_SESSION) or "")
        listed = [str(s) for s in (pg_data or {}).get(PG_DATA_SESSIONS) or () if s and str(s) != current]
        return list(dict.fromkeys(listed)) + ([current] if current else [])

    def known_attempts(self, pg_data: Mapping[str, Any]) -> set[str]:
        """Every Checkout Session the order's checkouts made: each may have been paid."""
        ids = super().known_attempts(pg_data) | {str(s) for s in (pg_data or {}).get(PG_DATA_SESSIONS) or () if s}
        current = (pg_data or {}).get(PG_DATA_SESSION)
        return (ids | {str(current)}) - {"", "None"} if current else ids

    def session_params(self, order: OrderSnapshot, urls: CheckoutUrls) -> dict[str, Any]:
        """The form of ``POST /v1/checkout/sessions`` for ``order`` (in the order it is sent)."""
        minor = self._minor(order.amount, order.currency)
        seconds = self.option("SESSION_EXPIRES", None)
        if seconds is None:
            seconds = int(conf.ready_timeout().total_seconds())
        low, high = SESSION_EXPIRES_RANGE
        expires_at = int(_clock()) + min(max(int(seconds), low), high)
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": order.order_number,
            "line_items": self.line_items(order, minor),
            "success_url": self.return_url(urls.success_url, order.order_number),
            "cancel_url": _with_query(urls.fail_url, f"order_id={quote(order.order_number)}&code=PAY_PROCESS_CANCELED"),
            "expires_at": expires_at,
            "metadata": {METADATA_ORDER: order.order_number},
            "payment_intent_data": {"metadata": {METADATA_ORDER: order.order_number}},
        }
        if order.buyer_email:
            params["customer_email"] = order.buyer_email
        params["locale"] = str(self.option("LOCALE", "auto") or "auto")
        methods = self.option("PAYMENT_METHOD_TYPES", None)
        if methods:
            params["payment_method_types"] = [str(m) for m in methods]
        # The buyer pays the order's amount in the order's currency, which the return and the webhook
        # check. Adaptive Pricing (a Dashboard setting, on for many accounts) lets the buyer pay in
        # their own currency, and before API version 2025-03-31 the Session then reports that
        # currency and amount: a paid order would be refused and refunded as "not what was asked".
        params["adaptive_pricing"] = {"enabled": "false"}
        return params

    def line_items(self, order: OrderSnapshot, minor: int) -> list[dict[str, Any]]:
        """``order.line_items`` in minor units; one line of the whole amount when they do not add up to it."""
        currency = order.currency.lower()
        items = []
        try:
            for item in order.line_items:
                unit = to_minor(item.unit_amount, order.currency, "stripe")
                if unit < 0 or item.quantity < 1:
                    raise MoneyError("negative unit amount or quantity")
                items.append(
                    {
                        "price_data": {
                            "currency": currency,
                            "product_data": {"name": (item.name or order.order_name)[:250]},
                            "unit_amount": unit,
                        },
                        "quantity": int(item.quantity),
                    }
                )
        except MoneyError:
            items = []
        if items and len(items) <= 100 and sum(i["price_data"]["unit_amount"] * i["quantity"] for i in items) == minor:
            return items
        if order.line_items:
            logger.warning("order %s: line items do not add up to the amount in %s; sent as one line", order.order_number, order.currency)
        name = (order.order_name or order.order_number)[:250]
        return [{"price_data": {"currency": currency, "product_data": {"name": name}, "unit_amount": minor}, "quantity": 1}]

    @staticmethod
    def return_url(success_url: str, order_number: str, session_id: str = "{CHECKOUT_SESSION_ID}") -> str:
        """The success URL with our order number and Stripe's literal ``{CHECKOUT_SESSION_ID}`` template."""
        return _with_query(success_url, f"order_id={quote(order_number)}&session_id={session_id}")

    def _reuse(self, session_id: str, order: OrderSnapshot, minor: int, urls: CheckoutUrls) -> CheckoutResult | None:
        try:
            session = self._retrieve_session(session_id, expand=False)
        except NotFound:
            return None
        status = session.get("status")
        if status == "open":
            usable = (
                session.get("amount_total") == minor
                and str(session.get("currency") or "").upper() == order.currency.upper()
                and order_of(session) == order.order_number
                and isinstance(session.get("expires_at"), int)
                and session["expires_at"] - _clock() >= REUSE_MARGIN
                and session.get("url")
            )
            if usable:
                return CheckoutResult(kind="redirect", redirect_url=str(session["url"]), pg_data={PG_DATA_SESSION: session_id})
            status = self._expire(session_id)
        if status == "complete":
            # Paid (or a delayed method under way): the return URL finds out which.
            return CheckoutResult(kind="redirect", redirect_url=self.return_url(urls.success_url, order.order_number, session_id))
        return None

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        """``success_url?order_id=&session_id=cs_…`` or ``cancel_url?order_id=&code=PAY_PROCESS_CANCELED``."""
        order_id = str(params.get("order_id") or "")[:64]
        code = str(params.get("code") or "")
        if code:
            return ReturnParams(payment_id="", order_number=order_id, error_code=code[:100])
        session_id = str(params.get("session_id") or "")
        if not order_id or not _SESSION_ID.match(session_id):
            raise InvalidRequest("order_id and a Checkout Session id are required", gateway=self.alias, code="INVALID_RETURN")
        return ReturnParams(payment_id=session_id, order_number=order_id)

    # --- reading Stripe ---------------------------------------------------------

    def confirm_lookup(self, request: ConfirmRequest) -> PaymentResult:
        """Read the Checkout Session the buyer came back from (Stripe has no confirm call; the base checks the order)."""
        return self._fetch(request.payment_id, all_refunds=False)

    def confirm_mismatch(self, request: ConfirmRequest) -> InvalidRequest:
        return InvalidRequest(
            _("This Stripe Checkout Session belongs to another order."), gateway=self.alias, code="SESSION_ORDER_MISMATCH"
        )

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        """A payment by its id (``cs_`` Session or ``pi_`` PaymentIntent), or else by the order.

        For an order: its Checkout Session kept in ``pg_data``, else its
        PaymentIntent, else a search by ``metadata['order_id']``. A payment
        that does not name ``order`` is :class:`NotFound` for it.
        """
        if payment_id:
            result = self._fetch(payment_id, all_refunds=True)
        elif order is not None and (order.pg_data or {}).get(PG_DATA_SESSION):
            result = self._fetch(str(order.pg_data[PG_DATA_SESSION]), all_refunds=True)
        elif order is not None and order.payment_id:
            result = self._fetch(order.payment_id, all_refunds=True)
        elif order is not None:
            result = self._search(order.order_number)
        else:
            raise NotFound("nothing to look up", gateway=self.alias, code="resource_missing")
        if order is not None and result.order_number != order.order_number:
            raise NotFound(f"{result.payment_id} does not belong to order {order.order_number}", gateway=self.alias, code="ORDER_MISMATCH")
        return result

    def _retrieve_session(self, session_id: str, *, expand: bool = True) -> dict:
        if not _ID.match(session_id):
            raise NotFound("not a Stripe id", gateway=self.alias, code="resource_missing")
        query = {"expand": ["payment_intent", "payment_intent.latest_charge"]} if expand else None
        return self._call("lookup", "GET", f"/v1/checkout/sessions/{quote(session_id, safe='')}", query=query)

    def _fetch(self, payment_id: str, *, all_refunds: bool) -> PaymentResult:
        if not _ID.match(payment_id or ""):
            raise NotFound("not a Stripe id", gateway=self.alias, code="resource_missing")
        if payment_id.startswith("cs_"):
            session = self._retrieve_session(payment_id)
            intent = session.get("payment_intent") if isinstance(session.get("payment_intent"), Mapping) else None
            return self.session_result(session, refunds=self._refunds_for(intent, all_refunds))
        intent = self._call("lookup", "GET", f"/v1/payment_intents/{quote(payment_id, safe='')}", query={"expand": ["latest_charge"]})
        return self.intent_result(intent, refunds=self._refunds_for(intent, all_refunds))

    def _search(self, order_number: str) -> PaymentResult:
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", order_number):
            raise NotFound("not an order number", gateway=self.alias, code="resource_missing")
        query = {"query": f"metadata['{METADATA_ORDER}']:'{order_number}'", "limit": 20, "expand": ["data.latest_charge"]}
        found = self._call("lookup", "GET", "/v1/payment_intents/search", query=query)
        intents = [i for i in (found.get("data") or []) if isinstance(i, Mapping)]
        if not intents:
            raise NotFound(f"no PaymentIntent with metadata order_id {order_number}", gateway=self.alias, code="resource_missing")
        intents.sort(key=lambda i: (i.get("status") == "succeeded", i.get("created") or 0), reverse=True)
        return self.intent_result(intents[0], refunds=self._refunds_for(intents[0], True))

    def _refunds_for(self, intent: Mapping[str, Any] | None, always: bool) -> list[Mapping[str, Any]]:
        """The PaymentIntent's refunds: always for a lookup, for a confirm only when its Charge shows one."""
        if not isinstance(intent, Mapping) or intent.get("status") != "succeeded" or not intent.get("id"):
            return []
        charge = latest_charge(intent)
        if not always and not charge.get("amount_refunded") and not charge.get("refunded"):
            return []
        refunds: list[Mapping[str, Any]] = []
        query: dict[str, Any] = {"payment_intent": str(intent["id"]), "limit": 100}
        for _page in range(50):
            page = self._call("lookup", "GET", "/v1/refunds", query=query)
            data = [r for r in (page.get("data") or []) if isinstance(r, Mapping)]
            refunds += data
            if not page.get("has_more") or not data:
                break
            query = {**query, "starting_after": str(data[-1].get("id") or "")}
        return refunds

    def _minor(self, amount: Decimal, currency: str) -> int:
        try:
            return to_minor(amount, currency, "stripe")
        except MoneyError as exc:
            raise InvalidRequest(str(exc), gateway=self.alias, code="INVALID_AMOUNT") from exc

    # --- money-moving calls -------------------------------------------------------

    def cancel(self, request: CancelRequest) -> CancelResult:
        """``POST /v1/refunds`` for ``request.amount`` (always stated), keyed by the ledger row."""
        target = request.payment_id
        if target.startswith("cs_"):
            session = self._retrieve_session(target, expand=False)
            target = str(session.get("payment_intent") or "")
        if target.startswith("pi_"):
            form: dict[str, Any] = {"payment_intent": target}
        elif target.startswith("ch_"):
            form = {"charge": target}
        else:
            raise CancelRefused(_("Stripe holds no payment to refund for this order."), gateway=self.alias, code="NO_PAYMENT_INTENT")
        form["amount"] = self._minor(request.amount, request.currency)
        form["metadata"] = {
            METADATA_KEY: request.idempotency_key,
            METADATA_ORDER: request.order.order_number,
            "reason": (request.reason or "")[:500],
        }
        refund = self._call("refund", "POST", "/v1/refunds", form=form, idempotency_key=request.idempotency_key)
        try:
            refund_id, status = str(refund["id"]), str(refund.get("status") or "")
            amount = self._amount(refund["amount"], normalize_currency(str(refund["currency"])))
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self.malformed("Refund", exc, refund) from exc
        if status not in REFUNDED_STATUSES:
            raise CancelRefused(
                _("Stripe could not make the refund (%(reason)s).") % {"reason": refund.get("failure_reason") or status},
                gateway=self.alias,
                code=f"REFUND_{status.upper()}"[:100],
                response=refund,
            )
        return CancelResult(pg_cancel_id=refund_id, amount=amount, payment=None, raw=refund)

    def _expire(self, session_id: str) -> str:
        """Expire an open Session; return its status afterwards (``expired``, or ``complete`` if the buyer was faster)."""
        path = f"/v1/checkout/sessions/{quote(session_id, safe='')}/expire"
        try:
            return str(self._call("abandon", "POST", path, form={}).get("status") or "expired")
        except (InvalidRequest, NotFound) as exc:
            # Not open any more (or never ours): see what it became.
            try:
                return str(self._retrieve_session(session_id, expand=False).get("status") or "")
            except NotFound:
                return "expired"
            except GatewayError:
                raise exc from None

    def _close(self, session_id: str) -> bool:
        """Close one Session of an order given up: True when its buyer paid (or a delayed payment is under way).

        Read first (one call for the Sessions already closed, most of an
        order's old ones), expired only while open. A Session completed with a
        delayed payment that failed takes no money: closed.
        """
        try:
            session = self._retrieve_session(session_id)
        except NotFound:
            return False
        if session.get("status") == "open":
            if self._expire(session_id) != "complete":
                return False
            session = self._retrieve_session(session_id)  # completed meanwhile: how?
        if session.get("status") != "complete" or session.get("payment_status") in ("paid", "no_payment_required"):
            return session.get("status") == "complete"
        intent = session.get("payment_intent")
        # Unpaid: a delayed method under way, or failed (the intent wants another payment method).
        return not isinstance(intent, Mapping) or intent.get("status") not in ("requires_payment_method", "canceled")

    def abandon(self, order: OrderSnapshot) -> None:
        """Expire the order's open Checkout Sessions, so an expired order cannot be paid later.

        Raises :class:`OperationInProgress` (and the order is not expired) when
        the buyer completed one of them meanwhile: a lookup will apply it.
        """
        # Every Session the order's checkouts made, not only the current one: two tabs checking
        # out at once each opened one, and either may still be open.
        completed = [s for s in self._sessions(order.pg_data or {}) if self._close(s)]
        if completed:
            raise OperationInProgress(
                _("The buyer completed Stripe Checkout; the order waits for Stripe's answer."),
                code="CHECKOUT_COMPLETED",
            )

    # --- webhooks -------------------------------------------------------------------

    def payment_references(self, payment_id: str, pg_data: Mapping[str, Any]) -> set[str]:
        """The PaymentIntent id and the Checkout Session id the browser returns with."""
        return {payment_id, str((pg_data or {}).get(PG_DATA_SESSION) or "")} - {""}

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
        """Verify ``Stripe-Signature`` (as of ``received_at``), then read the event.

        Checkout Session events carry the Session: trusted as signed and
        applied as sent. ``charge.refunded`` carries a Charge without its
        refunds, the other :data:`REFUND_EVENTS` one Refund: :meth:`verify_webhook`
        fetches the payment with all of them. Other types, and Sessions
        that name no order of ours, come back with no ids: acknowledged, ignored.
        """
        secrets = self.webhook_secrets()
        if not secrets:
            raise WebhookVerificationError(f'PGPAY["GATEWAYS"][{self.alias!r}]["OPTIONS"]["WEBHOOK_SECRETS"] is not set')
        verify_signature(body, header(headers, "Stripe-Signature"), secrets, now=received_at.timestamp())
        try:
            data = loads_json(body)
        except ValueError as exc:
            raise WebhookVerificationError("malformed JSON") from exc
        inner = data.get("data") if isinstance(data, dict) else None
        obj = inner.get("object") if isinstance(inner, dict) else None
        if not isinstance(obj, dict) or not isinstance(data.get("id"), str) or not data["id"] or not isinstance(data.get("type"), str):
            raise WebhookVerificationError("not a Stripe event (id, type, data.object)")
        event_id, event_type = data["id"][:255], data["type"][:100]
        ignored = ParsedWebhook(event_id=event_id, event_type=event_type, verified=True, raw=data)
        if event_type in SESSION_EVENTS:
            order_number = order_of(obj)
            if obj.get("object") != "checkout.session" or obj.get("mode", "payment") != "payment" or not order_number:
                return ignored
            override = {
                "checkout.session.async_payment_failed": PaymentState.FAILED,
                "checkout.session.expired": PaymentState.EXPIRED,
            }.get(event_type)
            payment = self.session_result(obj, state=override)
            return ParsedWebhook(
                event_id=event_id,
                event_type=event_type,
                payment_id=payment.payment_id[:200],
                order_number=order_number[:64],
                verified=True,
                payment=payment,
                raw=data,
            )
        if event_type in REFUND_EVENTS:
            intent = obj.get("payment_intent")
            intent_id = str(intent.get("id") if isinstance(intent, dict) else intent or "")
            if not intent_id:
                return ignored
            return ParsedWebhook(
                event_id=event_id,
                event_type=event_type,
                payment_id=intent_id[:200],
                order_number=order_of(obj)[:64],
                verified=True,
                raw=data,
            )
        return ignored

    def verify_webhook(self, event: ParsedWebhook, order: OrderSnapshot | None) -> ParsedWebhook:
        """Complete a signed event with what the core needs.

        :data:`REFUND_EVENTS`: the payment and its refunds are fetched. A Session
        that expired or failed but is not the order's current one (replaced at
        checkout) says nothing about the order: its current Session is looked
        up instead.
        """
        if event.event_type in REFUND_EVENTS:
            return replace(event, payment=self.lookup(payment_id=event.payment_id, order=order), verified=True)
        payment = event.payment
        if payment is None:
            raise WebhookVerificationError(f"{event.event_type}: nothing to apply")
        if payment.state in (PaymentState.EXPIRED, PaymentState.FAILED) and order is not None:
            current = str((order.pg_data or {}).get(PG_DATA_SESSION) or "")
            if current and current != payment.pg_data.get(PG_DATA_SESSION):
                return replace(event, payment=self.lookup(order=order))
        known = order is not None and order.payment_id == payment.payment_id
        if payment.state.is_paid and not payment.method and not known:
            # The order learns of its payment from this event: worth one fetch for the details.
            return replace(event, payment=self._with_charge_details(payment))
        return event

    def _with_charge_details(self, payment: PaymentResult) -> PaymentResult:
        """A paid Session as sent in its event, completed with the method and receipt of its Charge.

        Events carry the Session with its PaymentIntent as a bare id; the
        Session is fetched once with the PaymentIntent and Charge expanded,
        so an order paid by its webhook shows the same details as one paid
        by the buyer's return. When the fetch fails, or answers for another
        payment, the event's own Session is applied as it is.
        """
        session_id = str(payment.pg_data.get(PG_DATA_SESSION) or "")
        if not session_id:
            return payment
        try:
            fetched = self.session_result(self._retrieve_session(session_id))
        except PgPayError as exc:
            logger.warning("stripe %s: Checkout Session %s not fetched for its charge details: %s", self.alias, session_id, exc)
            return payment
        same = (fetched.payment_id, fetched.order_number, fetched.amount, fetched.currency) == (
            payment.payment_id,
            payment.order_number,
            payment.amount,
            payment.currency,
        )
        return fetched if same and fetched.state.is_paid else payment

    # --- configuration checks ----------------------------------------------------------

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """Missing or misplaced keys; live keys under DEBUG; test keys with DEBUG=False; webhook secrets."""
        messages = super().check(debug=debug)
        where = self.where
        secret = str(self._options.get("SECRET_KEY") or "")
        public = str(self._options.get("PUBLISHABLE_KEY") or "")
        if secret.startswith("pk_"):
            messages.append(
                checks.Error(
                    f'{where}["SECRET_KEY"] is a publishable key (pk_).',
                    hint="Use the secret key (sk_…) from the Stripe Dashboard, Developers > API keys.",
                    id="django_pgpay.E201",
                )
            )
        elif secret and not secret.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            messages.append(
                checks.Warning(
                    f'{where}["SECRET_KEY"] does not look like a Stripe secret key (sk_test_…, sk_live_…).', id="django_pgpay.W201"
                )
            )
        mode = secret[3:7] if secret[:3] in ("sk_", "rk_") and secret[3:8] in ("test_", "live_") else ""
        public_mode = public[3:7] if public[:3] == "pk_" and public[3:8] in ("test_", "live_") else ""
        if mode and public_mode and mode != public_mode:
            messages.append(
                checks.Error(f"{where}: SECRET_KEY and PUBLISHABLE_KEY are not both test keys or both live keys.", id="django_pgpay.E202")
            )
        messages += self.live_or_test_key_checks(
            mode,
            debug,
            label="Stripe",
            ids=("django_pgpay.W202", "django_pgpay.W203"),
            hints=("Use sk_test_ keys in development.", "Use sk_live_ keys in production."),
        )
        secrets = self.webhook_secrets()
        if not secrets:
            messages.append(
                checks.Warning(
                    f'{where}["WEBHOOK_SECRETS"] is not set: every Stripe webhook will be refused.',
                    hint="Add the endpoint's signing secret (whsec_…) from Dashboard > Developers > Webhooks.",
                    id="django_pgpay.W204",
                )
            )
        elif not all(s.startswith("whsec_") for s in secrets):
            messages.append(
                checks.Warning(f'{where}["WEBHOOK_SECRETS"]: a signing secret does not start with whsec_.', id="django_pgpay.W205")
            )
        methods = self._options.get("PAYMENT_METHOD_TYPES")
        if methods is not None and (not isinstance(methods, (list, tuple)) or not all(isinstance(m, str) and m for m in methods)):
            # "card" would be sent as the list c, a, r, d
            messages.append(
                checks.Error(
                    f'{where}["PAYMENT_METHOD_TYPES"] = {methods!r} is not a list of payment method types.',
                    hint='For example ["card"] or ["card", "kakao_pay"].',
                    id="django_pgpay.E203",
                )
            )
        return messages


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


__all__ = [
    "ERRORS",
    "INTENT_STATUSES",
    "PG_DATA_SESSION",
    "StripeGateway",
    "encode_form",
    "signature_header_items",
    "verify_signature",
]
