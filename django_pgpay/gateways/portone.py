"""PortOne (ex-iamport): the V1 REST API of the tutorials and the V2 API of new stores.

V1 (``https://api.iamport.kr``; see ``docs/portone.rst``):

* ``POST /users/getToken`` ``{imp_key, imp_secret}`` gives an access token valid
  for 30 minutes, sent as the raw ``Authorization`` header, as the official
  client ``iamport-rest-client`` sends it. :class:`AccessTokenCache` keeps one
  per gateway until shortly before ``expired_at``; threads that need it at the
  same time make one request, and a 401 refreshes it once.
* ``POST /payments/prepare`` ``{merchant_uid, amount, currency}`` registers the
  amount before the payment window opens (PortOne blocks a window opened with
  another amount).
* There is no confirm call: ``GET /payments/{imp_uid}`` *is* the confirmation.
  The amount PortOne reports is checked by the core (a mismatch fails the
  order and cancels the payment).
* ``POST /payments/cancel`` ``{imp_uid, amount?, checksum, reason}``: ``checksum``
  is the balance we believe is left, so PortOne refuses a cancel repeated
  after a lost answer.
* Every reply is ``{code, message, response}``; ``code != 0`` is an error even
  with HTTP 200.
* Webhooks ``{imp_uid, merchant_uid, status}`` are not signed: the payment is
  fetched again and only that is applied.

V2 (``https://api.portone.io``): ``Authorization: PortOne <API secret>``; the
``paymentId`` is ours (the order number); ``POST /payments/{id}/pre-register``,
``GET /payments/{id}``, ``POST /payments/{id}/cancel`` with
``currentCancellableAmount``; typed errors ``{type, message}``; webhooks signed
with Standard Webhooks (:mod:`.standard_webhooks`), then the payment fetched.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote

from django.core import checks
from django.utils.dateparse import parse_datetime

from ..exceptions import (
    AlreadyCanceled,
    AlreadyProcessed,
    AuthenticationFailed,
    CancelRefused,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    RefundAccountRequired,
    WebhookVerificationError,
)
from ..money import MoneyError, from_minor, normalize_currency, quantize, to_json_number, to_minor
from . import standard_webhooks
from .base import HttpGateway
from .http import HttpReply, loads_json
from .results import (
    CancelEntry,
    CancelRequest,
    CancelResult,
    CheckoutResult,
    CheckoutUrls,
    ConfirmRequest,
    OrderSnapshot,
    PaymentResult,
    PaymentState,
    ReturnParams,
    WebhookEvent,
)

#: V1 ``status`` -> our PaymentState (refined by :meth:`PortOneV1Gateway.payment`: ``paid`` with a cancelled part is partial_canceled, ``ready`` with a virtual account waits for the deposit).
V1_STATUSES: dict[str, PaymentState] = {
    "ready": PaymentState.PENDING,
    "paid": PaymentState.APPROVED,
    "cancelled": PaymentState.CANCELED,
    "failed": PaymentState.FAILED,
}

#: V1 answers errors in words (``code`` is mostly 1 or -1): the known
#: messages, matched by a part of them, and what they mean.
V1_MESSAGES: tuple[tuple[str, type[GatewayError]], ...] = (
    ("이미 전액취소", AlreadyCanceled),  # 이미 전액취소된 주문입니다.
    ("존재하지 않", NotFound),  # 취소할 결제건이 존재하지 않습니다. / 존재하지 않는 결제정보입니다.
    ("환불계좌", RefundAccountRequired),  # 가상계좌 환불에는 환불계좌 정보(...)가 필요합니다.
)

#: V2 ``status`` -> our PaymentState.
V2_STATUSES: dict[str, PaymentState] = {
    "READY": PaymentState.PENDING,
    "PAY_PENDING": PaymentState.PENDING,
    "VIRTUAL_ACCOUNT_ISSUED": PaymentState.WAITING_FOR_DEPOSIT,
    "PAID": PaymentState.APPROVED,
    "PARTIAL_CANCELLED": PaymentState.PARTIAL_CANCELED,
    "CANCELLED": PaymentState.CANCELED,
    "FAILED": PaymentState.FAILED,
}

#: V2 error ``type`` -> the exception it means (types not listed follow the HTTP status).
V2_ERRORS: dict[str, type[GatewayError]] = {
    "UNAUTHORIZED": AuthenticationFailed,
    "FORBIDDEN": AuthenticationFailed,
    "INVALID_REQUEST": InvalidRequest,
    "PAYMENT_NOT_FOUND": NotFound,
    "ALREADY_PAID": AlreadyProcessed,
    "PAYMENT_ALREADY_CANCELLED": AlreadyCanceled,
    "PAYMENT_NOT_PAID": CancelRefused,
    "PAYMENT_NOT_WAITING_FOR_DEPOSIT": CancelRefused,
    "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN": CancelRefused,
    "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT": CancelRefused,
    "CANCEL_TAX_AMOUNT_EXCEEDS_CANCELLABLE_TAX_AMOUNT": CancelRefused,
    "CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT": CancelRefused,
    "SUM_OF_PARTS_EXCEEDS_CANCEL_AMOUNT": CancelRefused,
    "NEGATIVE_PROMOTION_ADJUSTED_CANCEL_AMOUNT": CancelRefused,
    "PROMOTION_DISCOUNT_RETAIN_OPTION_SHOULD_NOT_BE_CHANGED": CancelRefused,
    "MAX_CANCEL_COUNT_REACHED": CancelRefused,
    # The PG behind PortOne answered with an error (pgCode, pgMessage): this call failed.
    "PG_PROVIDER": GatewayError,
}

#: Keys this module writes into the order's ``pg_data``.
PG_DATA_PREPARED_V1 = "portone_v1_prepared"
PG_DATA_PREPARED_V2 = "portone_v2_prepared"

#: Longest ``merchant_uid`` V1 accepts.
V1_MERCHANT_UID_MAX = 40
#: Seconds before ``expired_at`` at which a V1 token is replaced.
TOKEN_REFRESH_MARGIN = 60

_EPOCH = datetime.fromtimestamp(0, tz=dt_timezone.utc)


# --- shared plumbing --------------------------------------------------------------------


class _PortOneBase(HttpGateway):
    """HTTP session, timeouts and checkout helpers shared by both API versions."""

    pg_name = "PortOne"
    supports_partial_cancel = True
    #: V1 ``checksum`` / V2 ``currentCancellableAmount``: a repeated cancel is refused by PortOne.
    supports_idempotency_key = True
    supports_lookup_by_order = True
    supports_virtual_account = True
    #: PortOne approves in the payment window; the server only verifies.
    requires_confirm_call = False

    DEFAULT_API_BASE = ""
    DEFAULT_JS_SDK_URL = ""

    @property
    def include_sandbox(self) -> bool:
        """Payments made on PortOne test channels count as real ones (development only)."""
        return bool(self._options.get("INCLUDE_SANDBOX", False))

    @property
    def script_url(self) -> str:
        return str(self.option("JS_SDK_URL", self.DEFAULT_JS_SDK_URL) or self.DEFAULT_JS_SDK_URL)

    def _notice_url(self, urls: CheckoutUrls) -> str:
        """The per-payment webhook URL, unless ``NOTICE_URL`` is False (then the console's URL is used)."""
        if self._options.get("NOTICE_URL", True) is False:
            return ""
        return urls.webhook_url

    @staticmethod
    def _prepared_marker(order: OrderSnapshot) -> str:
        return f"{quantize(order.amount, order.currency)} {order.currency}"

    def _malformed(self, what: str, exc: Exception | None = None, data: Any = None) -> GatewayUnavailable:
        detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        return GatewayUnavailable(
            f"{self.alias}: unreadable {what}{detail}",
            gateway=self.alias,
            code="MALFORMED_REPLY",
            response=dict(data) if isinstance(data, Mapping) else None,
        )

    @staticmethod
    def _return_value(params: Mapping[str, str], *names: str) -> str:
        for name in names:
            value = params.get(name)
            if value not in (None, ""):
                return str(value)
        return ""


def _unix(value) -> datetime | None:
    """V1 times are Unix seconds; 0 (or nothing) means "not happened"."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or int(value) <= 0:
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=dt_timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _rfc3339(value) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


# --- V1 access token --------------------------------------------------------------------


@dataclass(frozen=True)
class AccessToken:
    """A V1 access token and the ``time.monotonic()`` until which it is used."""

    value: str = field(repr=False)
    use_until: float


class AccessTokenCache:
    """One V1 access token per gateway, shared by every thread until shortly before it expires.

    ``fetch`` asks PortOne for a token and returns ``(token, seconds it stays
    valid)``. It runs under a lock: threads that need a token at the same time
    wait for one request instead of making one each. :meth:`get` with
    ``stale=`` the token a 401 refused replaces that token, once, however many
    threads saw the 401.
    """

    def __init__(self, fetch: Callable[[], tuple[str, float]], *, margin: float = TOKEN_REFRESH_MARGIN):
        self._fetch = fetch
        self._margin = margin
        self._lock = threading.Lock()
        self._token: AccessToken | None = None

    def __repr__(self) -> str:
        return f"<AccessTokenCache {'empty' if self._token is None else 'holding a token'}>"

    def get(self, *, stale: str | None = None) -> str:
        with self._lock:
            token = self._token
            if token is not None and token.value != stale and time.monotonic() < token.use_until:
                return token.value
            started = time.monotonic()
            value, valid_for = self._fetch()
            # Replace it a minute early (half its life when PortOne gave less than two).
            margin = self._margin if valid_for > 2 * self._margin else valid_for / 2
            self._token = AccessToken(value=value, use_until=started + valid_for - margin)
            return value

    def clear(self) -> None:
        with self._lock:
            self._token = None


# --- V1 -------------------------------------------------------------------------------------


class PortOneV1Gateway(_PortOneBase):
    """PortOne V1 (iamport), ``https://api.iamport.kr``, with the ``IMP.request_pay`` window.

    OPTIONS:

    ``IMP_KEY``, ``IMP_SECRET`` (required)
        The V1 REST API key and secret (console: 결제 연동 > 식별코드・API Keys > V1 API).
    ``MERCHANT_CODE`` (required)
        The ``imp…`` merchant code given to ``IMP.init`` in the browser.
    ``CHANNEL_KEY`` or ``PG`` (one required)
        The channel of ``IMP.request_pay``: a channel key, or the legacy
        ``"html5_inicis.MID"``-style ``pg`` string.
    ``PAY_METHOD``
        ``card`` (default), ``trans``, ``vbank``, ``phone``, ``kakaopay`` …
    ``INCLUDE_SANDBOX``
        Default False. True makes lookups include test-channel payments
        (``include_sandbox=true``), so they can pay orders: development only.
    ``NOTICE_URL``
        Default True: each payment carries ``notice_url`` = this alias's webhook
        URL. False leaves the console's webhook URL in charge.
    ``API_BASE``
        Default ``https://api.iamport.kr``; the sandbox points it at itself.
    ``JS_SDK_URL``
        Default ``https://cdn.iamport.kr/v1/iamport.js``.
    ``TIMEOUT``
        Seconds, or ``(connect, read)``; default ``(3.05, 30)``.
    """

    pg_name = "PortOne"
    signs_webhooks = False
    required_options = ("IMP_KEY", "IMP_SECRET", "MERCHANT_CODE")

    DEFAULT_API_BASE = "https://api.iamport.kr"
    DEFAULT_JS_SDK_URL = "https://cdn.iamport.kr/v1/iamport.js"

    def __init__(self, alias, options):
        super().__init__(alias, options)
        self.tokens = AccessTokenCache(self._fetch_token)

    # --- token and calls ----------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        body = {"imp_key": str(self.option("IMP_KEY")), "imp_secret": str(self.option("IMP_SECRET"))}
        try:
            reply = self.http.request("POST", "/users/getToken", json_body=body)
        except GatewayUnavailable as exc:
            # No money call was sent: the caller's outcome is known (nothing happened).
            raise GatewayUnavailable(
                f"{self.alias}: no access token ({exc.code})", gateway=self.alias, code="TOKEN_UNAVAILABLE", sent=False
            ) from exc
        if reply.status == 401:
            raise AuthenticationFailed(
                f"{self.alias}: PortOne refused IMP_KEY/IMP_SECRET", gateway=self.alias, code="UNAUTHORIZED", http_status=401
            )
        data = reply.data if isinstance(reply.data, dict) else {}
        token = data.get("response") if isinstance(data.get("response"), dict) else {}
        value, expired_at, now = token.get("access_token"), token.get("expired_at"), token.get("now")
        if not reply.ok or data.get("code") != 0 or not isinstance(value, str) or not value:
            raise GatewayUnavailable(
                f"{self.alias}: getToken answered HTTP {reply.status} without a token",
                gateway=self.alias,
                code="TOKEN_UNAVAILABLE",
                http_status=reply.status,
                sent=False,
            )
        try:
            valid_for = float(int(expired_at) - int(now))
        except (TypeError, ValueError):
            valid_for = 0.0
        return value, max(0.0, min(valid_for, 30 * 60.0))

    def _call(self, verb: str, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """One V1 call with the shared token; a 401 refreshes the token and tries once more. Returns ``response``."""
        token = self.tokens.get()
        reply = self.http.request(method, path, json_body=body, params=params, headers={"Authorization": token})
        if reply.status == 401:
            token = self.tokens.get(stale=token)
            reply = self.http.request(method, path, json_body=body, params=params, headers={"Authorization": token})
        return self.unwrap(reply, verb)

    def unwrap(self, reply: HttpReply, verb: str) -> Any:
        """``response`` of a ``{code, message, response}`` reply, or the exception it means."""
        data = reply.data if isinstance(reply.data, dict) else None
        code = data.get("code") if data is not None else None
        envelope = isinstance(code, int) and not isinstance(code, bool)
        if envelope and code == 0 and reply.ok:
            return data.get("response")
        message = str(data.get("message") or "") if data is not None else ""
        cls = self._error_class(reply.status, message, verb, envelope)
        raise cls(
            message or f"{self.alias}: {verb} failed with HTTP {reply.status}",
            gateway=self.alias,
            code=f"PORTONE_{code}" if envelope and reply.status < 500 else f"HTTP_{reply.status}",
            http_status=reply.status,
            response=data if data is not None else {"body": reply.text[:500]},
        )

    @staticmethod
    def _error_class(status: int, message: str, verb: str, envelope: bool) -> type[GatewayError]:
        if status == 401:
            return AuthenticationFailed
        if status >= 500 or status == 429 or not envelope:
            # A proxy's page, an overloaded PortOne: we cannot tell what happened.
            return GatewayUnavailable
        for fragment, cls in V1_MESSAGES:
            if fragment in message:
                return cls
        if status == 404:
            return NotFound
        if verb in ("cancel", "withdraw"):
            # PortOne answered and did not cancel (a checksum that does not match
            # the balance, a PG refusal, an account not waiting any more ...): definitive, nothing moved.
            return CancelRefused
        if verb in ("confirm", "lookup"):
            return GatewayUnavailable
        return InvalidRequest

    def _sandbox_params(self) -> dict[str, str] | None:
        return {"include_sandbox": "true"} if self.include_sandbox else None

    # --- checkout and return ---------------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """Register the amount (``POST /payments/prepare``), then the parameters of ``IMP.request_pay``.

        The buyer's window comes back by the callback (the template sends the
        browser to the return URL) and, on mobile, by ``m_redirect_url``: both
        land on the same return URL with ``imp_uid`` and ``merchant_uid``.
        """
        if len(order.order_number) > V1_MERCHANT_UID_MAX:
            raise InvalidRequest(
                f"{self.alias}: PortOne V1 takes order numbers of at most {V1_MERCHANT_UID_MAX} characters",
                gateway=self.alias,
                code="ORDER_NUMBER_TOO_LONG",
            )
        pg_data = self._prepare(order)
        request: dict[str, Any] = {"pay_method": str(self.option("PAY_METHOD", "card") or "card")}
        channel_key = self._options.get("CHANNEL_KEY")
        if channel_key:
            request["channelKey"] = str(channel_key)
        else:
            request["pg"] = str(self.option("PG"))
        request.update(
            merchant_uid=order.order_number,
            name=order.order_name[:40],
            amount=to_json_number(order.amount, order.currency),
            currency=order.currency,
            m_redirect_url=urls.success_url,
        )
        notice_url = self._notice_url(urls)
        if notice_url:
            request["notice_url"] = notice_url
        for key, value in (("buyer_email", order.buyer_email), ("buyer_name", order.buyer_name), ("buyer_tel", order.buyer_phone)):
            if value:
                request[key] = value
        return CheckoutResult(
            kind="widget",
            script_url=self.script_url,
            template_name="django_pgpay/checkout/portone.html",
            params={"merchantCode": str(self.option("MERCHANT_CODE")), "request": request, "returnUrl": urls.success_url},
            pg_data=pg_data,
        )

    def _prepare(self, order: OrderSnapshot) -> dict[str, str]:
        """Pre-register the order's amount once; an existing registration is read back (and corrected)."""
        marker = self._prepared_marker(order)
        if (order.pg_data or {}).get(PG_DATA_PREPARED_V1) == marker:
            return {}
        body = {
            "merchant_uid": order.order_number,
            "amount": to_json_number(order.amount, order.currency),
            "currency": order.currency,
        }
        try:
            self._call("prepare", "POST", "/payments/prepare", body=body)
        except InvalidRequest as refused:
            # Registered before (a checkout opened again): what does PortOne hold?
            try:
                held = self._call("prepare", "GET", f"/payments/prepare/{quote(order.order_number, safe='')}")
            except (InvalidRequest, NotFound):
                raise refused from None
            if not isinstance(held, Mapping):
                raise refused from None
            same_amount = _number_equals(held.get("amount"), order.amount)
            same_currency = held.get("currency") in (None, "", order.currency)
            if not (same_amount and same_currency):
                self._call("prepare", "PUT", "/payments/prepare", body=body)
        return {PG_DATA_PREPARED_V1: marker}

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        """``?imp_uid=&merchant_uid=`` (+ ``error_code``/``error_msg`` or ``imp_success=false`` on failure)."""
        imp_uid = self._return_value(params, "imp_uid")[:200]
        merchant_uid = self._return_value(params, "merchant_uid")[:64]
        error_code = self._return_value(params, "error_code")
        failed = str(params.get("imp_success") or params.get("success") or "").lower() == "false"
        if error_code or failed:
            return ReturnParams(
                payment_id=imp_uid,
                order_number=merchant_uid,
                error_code=(error_code or "PAYMENT_FAILED")[:100],
                error_message=self._return_value(params, "error_msg")[:500],
            )
        if not imp_uid or not merchant_uid:
            raise InvalidRequest("imp_uid and merchant_uid are required", gateway=self.alias, code="INVALID_RETURN")
        return ReturnParams(payment_id=imp_uid, order_number=merchant_uid)

    # --- verify, lookup, cancel ----------------------------------------------------------

    def confirm(self, request: ConfirmRequest) -> PaymentResult:
        """``GET /payments/{imp_uid}``: V1 approves in the window; this fetch is the confirmation."""
        result = self._fetch(request.payment_id, verb="confirm")
        if result.order_number != request.order.order_number:
            raise InvalidRequest(
                f"{self.alias}: payment {request.payment_id} belongs to another order",
                gateway=self.alias,
                code="PAYMENT_ORDER_MISMATCH",
            )
        return result

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        """By ``imp_uid``, or by ``merchant_uid`` (``GET /payments/find/{merchant_uid}``: the latest attempt)."""
        if payment_id:
            return self._fetch(payment_id, verb="lookup")
        if order is None or not order.order_number:
            raise NotFound("no imp_uid or merchant_uid to look up", gateway=self.alias, code="NOT_FOUND")
        path = f"/payments/find/{quote(order.order_number, safe='')}"
        return self.payment(self._call("lookup", "GET", path, params=self._sandbox_params()))

    def _fetch(self, imp_uid: str, *, verb: str) -> PaymentResult:
        data = self._call(verb, "GET", f"/payments/{quote(imp_uid, safe='')}", params=self._sandbox_params())
        return self.payment(data)

    def cancel(self, request: CancelRequest) -> CancelResult:
        """``POST /payments/cancel`` with ``checksum`` = the balance before this cancel; ``amount`` only when partial."""
        body: dict[str, Any] = {"imp_uid": request.payment_id}
        if not request.is_full:
            body["amount"] = to_json_number(request.amount, request.currency)
        body["checksum"] = to_json_number(request.balance_before, request.currency)
        body["reason"] = (request.reason or "cancel")[:255]
        account = (request.order.pg_data or {}).get("refund_receive_account")
        if isinstance(account, Mapping) and account:
            for ours, theirs in (
                ("holderName", "refund_holder"),
                ("bank", "refund_bank"),
                ("accountNumber", "refund_account"),
                ("tel", "refund_tel"),
            ):
                if account.get(ours):
                    body[theirs] = str(account[ours])
        payment = self.payment(self._call("cancel", "POST", "/payments/cancel", body=body))
        entry = _newest(payment.cancels)
        return CancelResult(
            pg_cancel_id=entry.pg_cancel_id if entry else "",
            amount=entry.amount if entry else request.amount,
            payment=payment,
            raw=payment.raw,
        )

    def withdraw(self, request: CancelRequest) -> CancelResult:
        """``DELETE /vbanks/{imp_uid}`` (가상계좌 발급취소): closes an account before any deposit.

        PortOne answers 400 when the payment is not an account waiting for its
        deposit (paid meanwhile, or closed already): a refusal, after which the
        caller looks the payment up.
        """
        payment = self.payment(self._call("withdraw", "DELETE", f"/vbanks/{quote(request.payment_id, safe='')}"))
        return CancelResult(pg_cancel_id="", amount=request.amount, payment=payment, raw=payment.raw)

    def attempts(self, order: OrderSnapshot, known_ids=()) -> list[PaymentResult]:
        """Every attempt of ``order`` (``GET /payments/findAll/{merchant_uid}``), plus known ids it did not list.

        V1 keeps one payment per window a buyer opened for an order number
        (two tabs are two payments): each paid one that is not the order's
        must be given back.
        """
        found: dict[str, PaymentResult] = {}
        path = f"/payments/findAll/{quote(order.order_number, safe='')}"
        for page in range(1, 21):
            params = {**(self._sandbox_params() or {}), "page": str(page), "limit": "100"}
            try:
                listing = self._call("lookup", "GET", path, params=params)
            except NotFound:
                break
            if not isinstance(listing, Mapping):
                raise self._malformed("payment list", data=listing)
            for item in listing.get("list") or ():
                try:
                    result = self.payment(item)
                except NotFound:  # a test-channel payment: moves no money
                    continue
                if result.order_number == order.order_number:
                    found.setdefault(result.payment_id, result)
            if not listing.get("next"):
                break
        for payment_id in sorted({str(p) for p in known_ids} - {""} - set(found)):
            try:
                result = self._fetch(payment_id, verb="lookup")
            except NotFound:
                continue
            if result.order_number == order.order_number:
                found.setdefault(result.payment_id, result)
        return list(found.values())

    # --- webhooks -------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """``{imp_uid, merchant_uid, status[, cancellation_id]}`` as JSON or a form; trusted only after a fetch."""
        data = _json_or_form(body)
        if data is None:
            raise WebhookVerificationError("the body is neither a JSON object nor a form")
        imp_uid = str(data.get("imp_uid") or "")[:200]
        merchant_uid = str(data.get("merchant_uid") or "")[:64]
        status = str(data.get("status") or "")[:50]
        if not imp_uid and not merchant_uid:
            raise WebhookVerificationError("no imp_uid or merchant_uid")
        # V1 sends no event id: one made of what distinguishes two notifications
        # (equal for a repeated delivery of the same change).
        event_id = "portone-" + _digest(imp_uid, merchant_uid, status, data.get("cancellation_id"))
        return WebhookEvent(
            event_id=event_id,
            event_type=status or "notification",
            payment_id=imp_uid,
            order_number=merchant_uid,
            verified=False,
            raw=data,
        )

    def webhook_claim(self, event: WebhookEvent) -> str:
        """V1's ``status`` word: the body's, or the fetched payment's."""
        source = event.payment.raw if event.payment is not None else event.raw
        return str(source.get("status") or "")

    def webhook_claim_verdict(self, parsed: WebhookEvent, verified: WebhookEvent) -> str:
        """Confirmed: the body's ``status`` is the payment's (a ``cancelled`` one naming a cancel PortOne made).

        PortOne sends ``cancelled`` for a partial cancel too (the payment stays
        ``paid``): such a claim is confirmed when its ``cancellation_id`` is in
        the payment's ``cancel_history`` (or, without one, when something was
        cancelled). Stale: ``ready`` or ``paid`` for a payment that has moved on
        (deposited, cancelled). Anything else is refused.
        """
        claimed = self.webhook_claim(parsed)
        payment = verified.payment.raw if verified.payment is not None else {}
        actual = str(payment.get("status") or "")
        if claimed == "cancelled":
            named = parsed.raw.get("cancellation_id")
            history = [c.get("cancellation_id") for c in (payment.get("cancel_history") or ()) if isinstance(c, Mapping)]
            cancelled = actual == "cancelled" or bool(verified.payment and verified.payment.canceled_amount > 0)
            confirmed = named in history if named else cancelled
            return self.CLAIM_CONFIRMED if confirmed else self.CLAIM_REFUSED
        if not claimed or claimed == actual:
            return self.CLAIM_CONFIRMED
        moved_on = {"ready": ("paid", "cancelled"), "paid": ("cancelled",)}
        return self.CLAIM_STALE if actual in moved_on.get(claimed, ()) else self.CLAIM_REFUSED

    # --- Payment -> PaymentResult --------------------------------------------------------

    def payment(self, data: Any) -> PaymentResult:
        """Read a V1 Payment; a reply we cannot read is an unknown outcome, never a guess."""
        if not isinstance(data, Mapping):
            raise self._malformed("Payment (not an object)")
        try:
            status = str(data["status"])
            state = V1_STATUSES[status]
            currency = normalize_currency(str(data.get("currency") or "KRW"))
            amount = self.decimal(data["amount"])
            cancel_amount = self.decimal(data.get("cancel_amount") or 0)
            imp_uid, merchant_uid = _text(data["imp_uid"]), _text(data["merchant_uid"])
            cancels = tuple(self._cancel_entry(c) for c in (data.get("cancel_history") or ()) if isinstance(c, Mapping))
        except (KeyError, TypeError, ValueError, ArithmeticError, MoneyError) as exc:
            raise self._malformed("Payment object", exc, data) from exc
        if not (amount.is_finite() and cancel_amount.is_finite()) or amount < 0 or not 0 <= cancel_amount <= amount:
            raise self._malformed("Payment object (inconsistent amounts)", data=data)
        if data.get("sandbox") is True and not self.include_sandbox:
            # A test-channel payment moves no money: it never pays an order here.
            raise NotFound(f"{self.alias}: {imp_uid} was made on a test channel", gateway=self.alias, code="SANDBOX_PAYMENT")
        pay_method = str(data.get("pay_method") or "")
        pg_data: dict[str, Any] = {
            "portone_pg_provider": str(data.get("pg_provider") or ""),
            "portone_pg_tid": str(data.get("pg_tid") or ""),
        }
        if data.get("sandbox") is True:
            pg_data["portone_sandbox"] = True
        expires_at = None
        if pay_method == "vbank" and data.get("vbank_num"):
            expires_at = _unix(data.get("vbank_date"))
            pg_data.update(
                vbank_account_number=str(data.get("vbank_num") or ""),
                vbank_bank_code=str(data.get("vbank_code") or ""),
                vbank_bank_name=str(data.get("vbank_name") or ""),
                vbank_holder=str(data.get("vbank_holder") or ""),
                vbank_due_date=expires_at.isoformat() if expires_at else "",
            )
        canceled = cancel_amount
        if status == "paid" and cancel_amount > 0:
            state = PaymentState.PARTIAL_CANCELED
        elif status == "ready" and "vbank_account_number" in pg_data:
            state = PaymentState.WAITING_FOR_DEPOSIT
        elif status == "cancelled":
            # Nothing is left of a cancelled payment (a withdrawn virtual account may report 0 cancelled).
            canceled = amount
        return PaymentResult(
            state=state,
            payment_id=imp_uid,
            order_number=merchant_uid,
            amount=amount,
            currency=currency,
            canceled_amount=canceled,
            method=pay_method,
            receipt_url=str(data.get("receipt_url") or ""),
            approved_at=_unix(data.get("paid_at")),
            cancels=cancels,
            failure_code="",
            failure_message=str(data.get("fail_reason") or ""),
            expires_at=expires_at,
            pg_data=pg_data,
            raw=dict(data),
        )

    def _cancel_entry(self, item: Mapping[str, Any]) -> CancelEntry:
        amount = self.decimal(item["amount"])
        cancelled_at = item.get("cancelled_at")
        # cancellation_id is required by the spec; without it, an id made of what
        # the entry says keeps it recognisable from one lookup to the next.
        pg_id = str(item.get("cancellation_id") or "") or f"{item.get('pg_tid') or 'cancel'}-{cancelled_at}-{amount}"
        return CancelEntry(pg_cancel_id=pg_id, amount=amount, canceled_at=_unix(cancelled_at))

    # --- configuration checks -----------------------------------------------------------

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """Missing keys; no channel; a merchant code that is not ``imp…``; test payments accepted without DEBUG."""
        messages = super().check(debug=debug)
        where = f'PGPAY["GATEWAYS"][{self.alias!r}]["OPTIONS"]'
        if not self._options.get("CHANNEL_KEY") and not self._options.get("PG"):
            messages.append(
                checks.Error(
                    f'{where}: set "CHANNEL_KEY" (or the legacy "PG").',
                    hint="Copy the channel key from the PortOne console (결제 연동 > 채널 관리).",
                    id="django_pgpay.E111",
                )
            )
        code = str(self._options.get("MERCHANT_CODE") or "")
        if code and not code.startswith("imp"):
            messages.append(
                checks.Warning(
                    f'{where}["MERCHANT_CODE"] does not start with "imp".',
                    hint="It is the 고객사 식별코드 (imp########) shown beside the V1 API keys.",
                    id="django_pgpay.W111",
                )
            )
        if self.include_sandbox and not debug:
            messages.append(
                checks.Warning(
                    f'{where}["INCLUDE_SANDBOX"] is True with DEBUG = False: test-channel payments pay orders.',
                    hint="Remove it in production; test channels move no money.",
                    id="django_pgpay.W112",
                )
            )
        return messages


# --- V2 -------------------------------------------------------------------------------------


class PortOneV2Gateway(_PortOneBase):
    """PortOne V2, ``https://api.portone.io``, with the ``PortOne.requestPayment`` window.

    OPTIONS:

    ``API_SECRET`` (required)
        The V2 API secret, sent as ``Authorization: PortOne <secret>``.
    ``STORE_ID`` (required)
        ``store-…``; given to the browser and sent as ``storeId``.
    ``CHANNEL_KEY`` (required)
        ``channel-key-…`` of the channel the window opens.
    ``WEBHOOK_SECRET``
        ``whsec_…`` (or a list of them, during a rotation). Without it every
        webhook is refused.
    ``PAY_METHOD``
        ``CARD`` (default), ``VIRTUAL_ACCOUNT``, ``TRANSFER``, ``MOBILE``, ``EASY_PAY`` …
    ``INCLUDE_SANDBOX``
        Default False. True lets payments on TEST channels pay orders: development only.
    ``NOTICE_URL``, ``API_BASE``, ``JS_SDK_URL``, ``TIMEOUT``
        As for V1; defaults ``https://api.portone.io`` and
        ``https://cdn.portone.io/v2/browser-sdk.js``.
    """

    pg_name = "PortOne V2"
    signs_webhooks = True
    required_options = ("API_SECRET", "STORE_ID", "CHANNEL_KEY")

    DEFAULT_API_BASE = "https://api.portone.io"
    DEFAULT_JS_SDK_URL = "https://cdn.portone.io/v2/browser-sdk.js"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"PortOne {self.option('API_SECRET')}"}

    def _store(self) -> dict[str, str]:
        store_id = self._options.get("STORE_ID")
        return {"storeId": str(store_id)} if store_id else {}

    def _call(self, verb: str, method: str, path: str, *, body: Any = None) -> dict:
        params = self._store() if method == "GET" else None
        reply = self.http.request(method, path, json_body=body, params=params, headers=self._headers())
        if not reply.ok:
            raise self.error(reply, verb)
        if not isinstance(reply.data, dict):
            raise GatewayUnavailable(
                f"{self.alias}: {verb} answered {reply.status} without a JSON object",
                gateway=self.alias,
                code="MALFORMED_REPLY",
                http_status=reply.status,
            )
        return reply.data

    def error(self, reply: HttpReply, verb: str) -> GatewayError:
        """The exception a non-2xx reply means (``V2_ERRORS``, then the HTTP status)."""
        data = reply.data if isinstance(reply.data, dict) else {}
        kind = str(data.get("type") or "")
        message = str(data.get("message") or "")
        if kind == "PG_PROVIDER" and (data.get("pgMessage") or data.get("pgCode")):
            message = f"{message} ({data.get('pgCode') or ''} {data.get('pgMessage') or ''})".strip()
        cls = V2_ERRORS.get(kind)
        if not kind:
            cls = GatewayUnavailable
        elif cls is None:
            if reply.status >= 500 or reply.status == 429:
                cls = GatewayUnavailable
            elif reply.status in (401, 403):
                cls = AuthenticationFailed
            elif reply.status == 404:
                cls = NotFound
            elif verb in ("cancel", "withdraw"):
                cls = CancelRefused
            else:
                cls = InvalidRequest
        if verb in ("cancel", "withdraw") and cls is GatewayError:
            cls = CancelRefused
        return cls(
            message or f"{self.alias}: {verb} failed with HTTP {reply.status}",
            gateway=self.alias,
            code=kind or f"HTTP_{reply.status}",
            http_status=reply.status,
            response=data or {"body": reply.text[:500]},
        )

    # --- checkout and return ---------------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """Pre-register the amount, then the parameters of ``PortOne.requestPayment``.

        ``paymentId`` is the order number. The window's promise and, on mobile,
        ``redirectUrl`` both bring the buyer back to the return URL with ``paymentId``.
        """
        pg_data = self._pre_register(order)
        request: dict[str, Any] = {
            "storeId": str(self.option("STORE_ID")),
            "channelKey": str(self.option("CHANNEL_KEY")),
            "paymentId": order.order_number,
            "orderName": order.order_name[:100],
            "totalAmount": to_minor(order.amount, order.currency),
            "currency": f"CURRENCY_{order.currency}",
            "payMethod": str(self.option("PAY_METHOD", "CARD") or "CARD"),
            "redirectUrl": urls.success_url,
        }
        notice_url = self._notice_url(urls)
        if notice_url:
            request["noticeUrls"] = [notice_url]
        customer = {
            k: v for k, v in (("fullName", order.buyer_name), ("email", order.buyer_email), ("phoneNumber", order.buyer_phone)) if v
        }
        if customer:
            request["customer"] = customer
        return CheckoutResult(
            kind="widget",
            script_url=self.script_url,
            template_name="django_pgpay/checkout/portone_v2.html",
            params={"request": request, "returnUrl": urls.success_url},
            pg_data=pg_data,
        )

    def _pre_register(self, order: OrderSnapshot) -> dict[str, str]:
        marker = self._prepared_marker(order)
        if (order.pg_data or {}).get(PG_DATA_PREPARED_V2) == marker:
            return {}
        body = {**self._store(), "totalAmount": to_minor(order.amount, order.currency), "currency": order.currency}
        self._call("pre-register", "POST", f"/payments/{quote(order.order_number, safe='')}/pre-register", body=body)
        return {PG_DATA_PREPARED_V2: marker}

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        """``?paymentId=`` (+ ``code``/``message`` on failure); the paymentId is the order number."""
        payment_id = self._return_value(params, "paymentId", "payment_id")[:64]
        code = self._return_value(params, "code")
        if code:
            return ReturnParams(
                payment_id=payment_id,
                order_number=payment_id,
                error_code=code[:100],
                error_message=self._return_value(params, "message")[:500],
            )
        if not payment_id:
            raise InvalidRequest("paymentId is required", gateway=self.alias, code="INVALID_RETURN")
        return ReturnParams(payment_id=payment_id, order_number=payment_id)

    # --- verify, lookup, cancel ----------------------------------------------------------

    def confirm(self, request: ConfirmRequest) -> PaymentResult:
        """``GET /payments/{paymentId}``: the window approved it; this fetch is the confirmation."""
        result = self.lookup(payment_id=request.payment_id)
        if result.order_number != request.order.order_number:
            raise InvalidRequest(
                f"{self.alias}: payment {request.payment_id} belongs to another order", gateway=self.alias, code="PAYMENT_ORDER_MISMATCH"
            )
        return result

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        payment_id = payment_id or (order.order_number if order is not None else "")
        if not payment_id:
            raise NotFound("no paymentId to look up", gateway=self.alias, code="PAYMENT_NOT_FOUND")
        return self.payment(self._call("lookup", "GET", f"/payments/{quote(payment_id, safe='')}"))

    def cancel(self, request: CancelRequest) -> CancelResult:
        """``POST /payments/{paymentId}/cancel`` with ``currentCancellableAmount`` = the balance before this cancel."""
        currency = request.currency
        body: dict[str, Any] = {**self._store(), "reason": (request.reason or "cancel")[:200]}
        if not request.is_full:
            body["amount"] = to_minor(request.amount, currency)
        body["currentCancellableAmount"] = to_minor(request.balance_before, currency)
        account = (request.order.pg_data or {}).get("refund_receive_account")
        if isinstance(account, Mapping) and account.get("accountNumber"):
            body["refundAccount"] = {
                k: str(account[ours])
                for ours, k in (("bank", "bank"), ("accountNumber", "number"), ("holderName", "holderName"), ("tel", "holderPhoneNumber"))
                if account.get(ours)
            }
        data = self._call("cancel", "POST", f"/payments/{quote(request.payment_id, safe='')}/cancel", body=body)
        cancellation = data.get("cancellation")
        if not isinstance(cancellation, Mapping):
            raise self._malformed("cancel reply (no cancellation)", data=data)
        status = str(cancellation.get("status") or "")
        if status == "FAILED":
            raise CancelRefused(
                f"{self.alias}: PortOne could not cancel", gateway=self.alias, code="CANCELLATION_FAILED", http_status=200, response=data
            )
        if status != "SUCCEEDED":
            # REQUESTED: accepted, not done yet (a bank refund). A lookup settles it.
            raise GatewayUnavailable(
                f"{self.alias}: cancel {status or 'without status'}", gateway=self.alias, code="CANCELLATION_REQUESTED", response=data
            )
        try:
            amount = from_minor(int(cancellation["totalAmount"]), currency)
        except (KeyError, TypeError, ValueError, MoneyError) as exc:
            raise self._malformed("cancellation", exc, data) from exc
        return CancelResult(pg_cancel_id=str(cancellation.get("id") or ""), amount=amount, payment=None, raw=dict(data))

    def withdraw(self, request: CancelRequest) -> CancelResult:
        """``POST /payments/{paymentId}/virtual-account/close`` (가상계좌 말소), then the payment as it stands."""
        self._call("withdraw", "POST", f"/payments/{quote(request.payment_id, safe='')}/virtual-account/close", body=self._store())
        payment = self.lookup(payment_id=request.payment_id)
        return CancelResult(pg_cancel_id="", amount=request.amount, payment=payment, raw=payment.raw)

    # --- webhooks -------------------------------------------------------------------------

    def webhook_secrets(self) -> list[str]:
        value = self._options.get("WEBHOOK_SECRET")
        if not value:
            return []
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        return self.parse_received_webhook(headers, body, received_at=datetime.now(tz=dt_timezone.utc))

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> WebhookEvent:
        """Check the Standard Webhooks signature (as of ``received_at``), then read ``{type, timestamp, data: {paymentId, …}}``.

        The signature's timestamp is checked against when the delivery
        arrived, so a delivery whose handler failed can be processed again
        from the log later; a replayed copy (received now) is still refused as
        stale. The body names the payment only; :meth:`verify_webhook` (the
        base class's) fetches it, and only that is applied.
        """
        secrets = self.webhook_secrets()
        if not secrets:
            raise WebhookVerificationError(
                f'{self.alias}: OPTIONS["WEBHOOK_SECRET"] is not set; webhooks are refused', code="NO_WEBHOOK_SECRET"
            )
        try:
            message_id = standard_webhooks.verify(secrets, headers, body, now=received_at.timestamp())
        except ValueError as exc:  # a secret that is not base64 (a check reports it)
            raise WebhookVerificationError(f"{self.alias}: WEBHOOK_SECRET is not a whsec_ secret", code="BAD_WEBHOOK_SECRET") from exc
        try:
            data = loads_json(body)
        except ValueError as exc:
            raise WebhookVerificationError("malformed JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise WebhookVerificationError("no type")
        kind = data["type"][:100]
        payload = data.get("data") if isinstance(data.get("data"), dict) else {}
        payment_id = str(payload.get("paymentId") or "")[:64] if kind.startswith("Transaction.") else ""
        if kind.startswith("Transaction.") and not payment_id:
            raise WebhookVerificationError(f"{kind} without data.paymentId")
        return WebhookEvent(
            event_id=f"portone-v2-{message_id}"[:255],
            event_type=kind,
            payment_id=payment_id,
            order_number=payment_id,
            verified=True,
            payment=None,
            raw=data,
        )

    # --- Payment -> PaymentResult --------------------------------------------------------

    def payment(self, data: Any) -> PaymentResult:
        """Read a V2 Payment (amounts are integers of the currency's minor unit)."""
        if not isinstance(data, Mapping):
            raise self._malformed("Payment (not an object)")
        try:
            status = str(data["status"])
            state = V2_STATUSES[status]
            currency = normalize_currency(str(data["currency"]))
            amounts = data["amount"]
            total = from_minor(amounts["total"], currency)
            cancelled = from_minor(amounts.get("cancelled") or 0, currency)
            payment_id = _text(data["id"])
            cancels = tuple(
                CancelEntry(
                    pg_cancel_id=str(c["id"]),
                    amount=from_minor(c["totalAmount"], currency),
                    canceled_at=_rfc3339(c.get("cancelledAt")),
                )
                for c in (data.get("cancellations") or ())
                if isinstance(c, Mapping) and c.get("status") == "SUCCEEDED"
            )
        except (KeyError, TypeError, ValueError, MoneyError) as exc:
            raise self._malformed("Payment object", exc, data) from exc
        if total < 0 or not 0 <= cancelled <= total:
            raise self._malformed("Payment object (inconsistent amounts)", data=data)
        if state == PaymentState.CANCELED:
            # Nothing is left of a cancelled payment (a closed virtual account reports 0 cancelled).
            cancelled = total
        channel = data.get("channel") if isinstance(data.get("channel"), Mapping) else {}
        if channel.get("type") == "TEST" and not self.include_sandbox:
            raise NotFound(f"{self.alias}: {payment_id} was made on a test channel", gateway=self.alias, code="SANDBOX_PAYMENT")
        method = data.get("method") if isinstance(data.get("method"), Mapping) else {}
        method_type = str(method.get("type") or "")
        pg_data: dict[str, Any] = {
            "portone_transaction_id": str(data.get("transactionId") or ""),
            "portone_pg_tx_id": str(data.get("pgTxId") or ""),
        }
        if channel.get("type") == "TEST":
            pg_data["portone_sandbox"] = True
        expires_at = None
        if method_type == "PaymentMethodVirtualAccount":
            expires_at = _rfc3339(method.get("expiredAt"))
            pg_data.update(
                vbank_account_number=str(method.get("accountNumber") or ""),
                vbank_bank_code=str(method.get("bank") or ""),
                vbank_holder=str(method.get("remitteeName") or ""),
                vbank_due_date=str(method.get("expiredAt") or ""),
            )
        failure = data.get("failure") if isinstance(data.get("failure"), Mapping) else {}
        return PaymentResult(
            state=state,
            payment_id=payment_id,
            order_number=payment_id,
            amount=total,
            currency=currency,
            canceled_amount=cancelled,
            method=_snake(method_type.removeprefix("PaymentMethod")),
            receipt_url=str(data.get("receiptUrl") or ""),
            approved_at=_rfc3339(data.get("paidAt")),
            cancels=cancels,
            failure_code=str(failure.get("pgCode") or ""),
            failure_message=str(failure.get("reason") or failure.get("pgMessage") or ""),
            expires_at=expires_at,
            pg_data=pg_data,
            raw=dict(data),
        )

    # --- configuration checks -----------------------------------------------------------

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """Missing keys; no (or an unreadable) webhook secret; test channels accepted without DEBUG."""
        messages = super().check(debug=debug)
        where = f'PGPAY["GATEWAYS"][{self.alias!r}]["OPTIONS"]'
        secrets = self.webhook_secrets()
        if not secrets:
            messages.append(
                checks.Warning(
                    f'{where}["WEBHOOK_SECRET"] is not set: every PortOne V2 webhook will be refused.',
                    hint="Copy the webhook secret (whsec_…) from the PortOne console (결제 연동 > 웹훅).",
                    id="django_pgpay.W121",
                )
            )
        for secret in secrets:
            try:
                standard_webhooks.decode_secret(secret)
            except ValueError:
                messages.append(checks.Error(f'{where}["WEBHOOK_SECRET"] is not a whsec_… base64 secret.', id="django_pgpay.E121"))
        if self.include_sandbox and not debug:
            messages.append(
                checks.Warning(
                    f'{where}["INCLUDE_SANDBOX"] is True with DEBUG = False: test-channel payments pay orders.',
                    hint="Remove it in production; test channels move no money.",
                    id="django_pgpay.W122",
                )
            )
        return messages


# --- small helpers --------------------------------------------------------------------------


def _newest(cancels: tuple[CancelEntry, ...]) -> CancelEntry | None:
    """The latest cancel (by time; the last listed among equals): the one a cancel call just made."""
    newest = None
    for entry in cancels:
        if newest is None or (entry.canceled_at or _EPOCH) >= (newest.canceled_at or _EPOCH):
            newest = entry
    return newest


def _text(value) -> str:
    """A non-empty string from a reply, or ``ValueError``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not an id")
    return value


def _number_equals(value, amount: Decimal) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return False
    try:
        return Decimal(str(value)) == amount
    except ArithmeticError:
        return False


def _json_or_form(body: bytes) -> dict | None:
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = loads_json(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    pairs = parse_qsl(text, keep_blank_values=True)
    return dict(pairs) if pairs else None


def _digest(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p or "") for p in parts).encode("utf-8")).hexdigest()[:40]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


__all__ = [
    "V1_MESSAGES",
    "V1_STATUSES",
    "V2_ERRORS",
    "V2_STATUSES",
    "AccessToken",
    "AccessTokenCache",
    "PortOneV1Gateway",
    "PortOneV2Gateway",
]
