"""Toss Payments, core API v1 (version 2022-11-16), with the v2 JavaScript SDK.

Wire contract (``docs.tosspayments.com``; see ``docs/toss.rst`` for what each
call sends):

* ``Authorization: Basic base64("{SECRET_KEY}:")``, the secret key as user
  name with an empty password (the trailing colon is required).
* ``POST /v1/payments/confirm`` ``{paymentKey, orderId, amount}`` approves a
  payment after the buyer's window redirects to the success URL.
* ``POST /v1/payments/{paymentKey}/cancel`` ``{cancelReason[, cancelAmount]}``
  gives money back; without ``cancelAmount`` the whole balance.
* ``GET /v1/payments/{paymentKey}`` and ``GET /v1/payments/orders/{orderId}``
  look a payment up.
* Every POST carries ``Idempotency-Key``: the key of the ledger row written
  before the call, so a call repeated after a lost answer is answered once.
* Webhooks are not signed. ``PAYMENT_STATUS_CHANGED`` is trusted only through
  a lookup; ``DEPOSIT_CALLBACK`` carries the payment's ``secret``, compared
  with the digest stored when the virtual account was issued.

Every reply and webhook body is a Payment object (or ``{code, message}`` on
errors), turned into :class:`~django_pgpay.gateways.results.PaymentResult`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.core import checks

from ..exceptions import (
    AlreadyCanceled,
    AlreadyProcessed,
    AuthenticationFailed,
    CancelRefused,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    RefundAccountRequired,
    RetryLater,
    WebhookVerificationError,
)
from ..money import MoneyError, normalize_currency, parse_amount, to_json_number
from .pipeline import REFUSED, HttpGateway
from .results import (
    CancelEntry,
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
    VirtualAccount,
)
from .wire import digest, kst_datetime, stated_amount

#: Toss ``status`` -> our PaymentState.
STATUSES: dict[str, PaymentState] = {
    "READY": PaymentState.PENDING,
    "IN_PROGRESS": PaymentState.AUTHENTICATED,
    "WAITING_FOR_DEPOSIT": PaymentState.WAITING_FOR_DEPOSIT,
    "DONE": PaymentState.APPROVED,
    "PARTIAL_CANCELED": PaymentState.PARTIAL_CANCELED,
    "CANCELED": PaymentState.CANCELED,
    "ABORTED": PaymentState.FAILED,
    "EXPIRED": PaymentState.EXPIRED,
}

#: Toss error ``code`` -> the exception it means (docs.tosspayments.com/reference/error-codes).
#: Codes not listed fall back on the HTTP status (see :meth:`TossGateway.error`).
ERRORS: dict[str, type[GatewayError]] = {
    # Confirmed already (a reload, a second tab): look the payment up instead.
    "ALREADY_PROCESSED_PAYMENT": AlreadyProcessed,
    # Cancelled already (the dashboard, an earlier call): look it up and apply it.
    "ALREADY_CANCELED_PAYMENT": AlreadyCanceled,
    "ALREADY_REFUND_PAYMENT": AlreadyCanceled,
    # Declines at confirm: definitive, the order fails.
    "REJECT_CARD_PAYMENT": PaymentDeclined,
    "REJECT_CARD_COMPANY": PaymentDeclined,
    "REJECT_ACCOUNT_PAYMENT": PaymentDeclined,
    "REJECT_TOSSPAY_INVALID_ACCOUNT": PaymentDeclined,
    "FDS_ERROR": PaymentDeclined,
    "INVALID_STOPPED_CARD": PaymentDeclined,
    "INVALID_CARD_EXPIRATION": PaymentDeclined,
    "INVALID_CARD_NUMBER": PaymentDeclined,
    "INVALID_CARD_LOST_OR_STOLEN": PaymentDeclined,
    "INVALID_CARD_INSTALLMENT_PLAN": PaymentDeclined,
    "INVALID_PASSWORD": PaymentDeclined,
    "EXCEED_MAX_CARD_INSTALLMENT_PLAN": PaymentDeclined,
    "EXCEED_MAX_DAILY_PAYMENT_COUNT": PaymentDeclined,
    "EXCEED_MAX_PAYMENT_AMOUNT": PaymentDeclined,
    "EXCEED_MAX_AMOUNT": PaymentDeclined,
    "EXCEED_MAX_ONE_DAY_AMOUNT": PaymentDeclined,
    "EXCEED_MAX_MONTHLY_PAYMENT_AMOUNT": PaymentDeclined,
    "BELOW_MINIMUM_AMOUNT": PaymentDeclined,
    "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT": PaymentDeclined,
    "NOT_AVAILABLE_PAYMENT": PaymentDeclined,
    # Cancels Toss refuses: definitive, nothing moved.
    "NOT_CANCELABLE_AMOUNT": CancelRefused,
    "NOT_CANCELABLE_PAYMENT": CancelRefused,
    "NOT_CANCELABLE_PAYMENT_FOR_DORMANT_USER": CancelRefused,
    "EXCEED_MAX_REFUND_DUE": CancelRefused,
    "NOT_ALLOWED_PARTIAL_REFUND": CancelRefused,
    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT": CancelRefused,
    "NOT_MATCHES_REFUNDABLE_AMOUNT": CancelRefused,
    # A virtual-account refund whose account is missing or wrong: a person must supply one.
    "INVALID_REFUND_ACCOUNT_INFO": RefundAccountRequired,
    "INVALID_REFUND_ACCOUNT_NUMBER": RefundAccountRequired,
    "INVALID_BANK": RefundAccountRequired,
    "REFUND_REJECTED": CancelRefused,
    # Our credentials: a configuration problem of the shop.
    "UNAUTHORIZED_KEY": AuthenticationFailed,
    "INCORRECT_BASIC_AUTH_FORMAT": AuthenticationFailed,
    # Toss knows no such payment (or the 10-minute confirm window is over).
    "NOT_FOUND_PAYMENT": NotFound,
    "NOT_FOUND_PAYMENT_SESSION": NotFound,
    "NOT_FOUND": NotFound,
    # Malformed on our side: definitive, nothing moved.
    "INVALID_REQUEST": InvalidRequest,
    "INVALID_IDEMPOTENCY_KEY": InvalidRequest,
    # Outcome unknown: the same call may be running or may have run. Look it up.
    "IDEMPOTENT_REQUEST_PROCESSING": GatewayUnavailable,
    # A second cancel of one payment within a second (403, toss.md §4, §7): Toss
    # refused it and did nothing. A refusal, not an unknown outcome: ask again shortly.
    "FORBIDDEN_CONSECUTIVE_REQUEST": RetryLater,
    "FAILED_INTERNAL_SYSTEM_PROCESSING": GatewayUnavailable,
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": GatewayUnavailable,
    "UNKNOWN_PAYMENT_ERROR": GatewayUnavailable,
    "COMMON_ERROR": GatewayUnavailable,
    "FAILED_REFUND_PROCESS": GatewayUnavailable,
    "FAILED_PARTIAL_REFUND": GatewayUnavailable,
    "FAILED_METHOD_HANDLING_CANCEL": GatewayUnavailable,
    # The card company or bank failed this call: definitive for this attempt
    # (Toss answers the same idempotency key with the same error), so the buyer
    # pays again rather than the order failing.
    "PROVIDER_ERROR": GatewayError,
    "CARD_PROCESSING_ERROR": GatewayError,
}

#: The order in which a Toss payment's status moves (a deposit's reversal aside).
LIFECYCLE = {
    "READY": 0,
    "IN_PROGRESS": 1,
    "WAITING_FOR_DEPOSIT": 2,
    "DONE": 3,
    "PARTIAL_CANCELED": 4,
    "CANCELED": 5,
    "ABORTED": 5,
    "EXPIRED": 5,
}

#: Toss's own webhook event types we act on; others are acknowledged and ignored.
PAYMENT_STATUS_CHANGED = "PAYMENT_STATUS_CHANGED"
DEPOSIT_CALLBACK = "DEPOSIT_CALLBACK"

#: Keys this gateway writes into the order's ``pg_data``.
PG_DATA_SECRET = "toss_secret_sha256"
#: How a secret reads in a stored copy (see :func:`django_pgpay.exceptions.redact`).
MASKED = "***"

_KEY_FAMILIES = ("test_", "live_")


def secret_digest(secret: str) -> str:
    """What is stored of a virtual account's deposit-callback ``secret`` (never the secret itself)."""
    return hashlib.sha256(f"django-pgpay:toss:{secret}".encode()).hexdigest()


class TossGateway(HttpGateway):
    """Toss Payments (``https://api.tosspayments.com``), core API version 2022-11-16.

    OPTIONS:

    ``SECRET_KEY`` (required)
        ``test_sk_``/``test_gsk_`` or ``live_sk_``/``live_gsk_``; of the same
        family as the client key that opened the payment window.
    ``CLIENT_KEY`` (required)
        ``test_ck_``/``test_gck_`` or ``live_ck_``/``live_gck_``; given to the browser.
    ``API_BASE``
        Default ``https://api.tosspayments.com``; the sandbox points it at itself.
    ``JS_SDK_URL``
        Default ``https://js.tosspayments.com/v2/standard``.
    ``TIMEOUT``
        Seconds, or ``(connect, read)``; default ``(3.05, 30)``.
    ``PAY_METHOD``
        The payment window's ``method`` (default ``CARD``; ``VIRTUAL_ACCOUNT``,
        ``TRANSFER``, ``MOBILE_PHONE`` ...). Formerly ``METHOD`` (still read, with
        a system-check warning).
    ``TEST_CODE``
        Sent as ``TossPayments-Test-Code`` so Toss answers with that error; a
        string for every call, or ``{"confirm": ..., "cancel": ..., "lookup": ...}``.
        Only ever sent with a test secret key.
    """

    pg_name = "Toss Payments"
    supports_partial_cancel = True
    supports_idempotency_key = True
    refund_bank_code_style = "kftc2"  # refundReceiveAccount.bank: "88" (toss.md)
    signs_webhooks = False
    supports_lookup_by_order = True
    supports_virtual_account = True
    sends_deposit_deadline = True
    requires_confirm_call = True
    required_options = ("SECRET_KEY", "CLIENT_KEY")
    option_names = ("SECRET_KEY", "CLIENT_KEY", "PAY_METHOD", "TEST_CODE")
    webhook_ack = (200, "text/plain", b"OK")

    ERRORS = ERRORS
    #: Toss answers its refusals with 403 (declines at confirm, refused cancels: toss.md §7).
    STATUS_ERRORS = {**HttpGateway.STATUS_ERRORS, 403: REFUSED}
    RENAMED_OPTIONS = {"METHOD": "PAY_METHOD"}

    API_VERSION = "2022-11-16"
    DEFAULT_API_BASE = "https://api.tosspayments.com"
    DEFAULT_JS_SDK_URL = "https://js.tosspayments.com/v2/standard"

    # --- plumbing ---------------------------------------------------------------

    @property
    def is_test_mode(self) -> bool:
        """True when the secret key is a test key (``test_`` prefix)."""
        return str(self._options.get("SECRET_KEY") or "").startswith("test_")

    def auth_headers(self, verb: str, token: str | None, idempotency_key: str = "") -> dict[str, str]:
        """Basic auth of the secret key, ``Idempotency-Key`` on POSTs, ``TossPayments-Test-Code`` (test keys only)."""
        basic = base64.b64encode(f"{self.option('SECRET_KEY')}:".encode()).decode("ascii")
        headers = {"Authorization": f"Basic {basic}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        test_code = self._options.get("TEST_CODE")
        if isinstance(test_code, Mapping):
            test_code = test_code.get(verb)
        if test_code and self.is_test_mode:
            headers["TossPayments-Test-Code"] = str(test_code)
        return headers

    # --- checkout and return ----------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """Parameters of the v2 SDK's ``payment({customerKey}).requestPayment({...})``.

        ``customerKey`` is the order's ``pg_data["customer_key"]`` when the shop
        set one (a random, unguessable id per buyer), else ``null``: the
        template then uses ``TossPayments.ANONYMOUS``. A ``VIRTUAL_ACCOUNT``
        window of an order with a deposit deadline asks for an account due no
        later (``virtualAccount.validHours``, :meth:`valid_hours`).
        """
        method = str(self.option("PAY_METHOD", "CARD") or "CARD")
        params: dict[str, Any] = {
            "clientKey": str(self.option("CLIENT_KEY")),
            "customerKey": (order.pg_data or {}).get("customer_key") or None,
            "method": method,
            "orderId": order.order_number,
            "orderName": order.order_name[:100],
            "amount": {"currency": order.currency, "value": to_json_number(order.amount, order.currency)},
            "successUrl": urls.success_url,
            "failUrl": urls.fail_url,
        }
        if order.buyer_email:
            params["customerEmail"] = order.buyer_email
        if order.buyer_name:
            params["customerName"] = order.buyer_name
        if order.buyer_phone:
            params["customerMobilePhone"] = "".join(c for c in order.buyer_phone if c.isdigit())
        if method == "VIRTUAL_ACCOUNT" and order.deposit_deadline is not None:
            params["virtualAccount"] = {"validHours": self.valid_hours(order)}
        return CheckoutResult(
            kind="widget",
            script_url=self.script_url,
            template_name="django_pgpay/checkout/toss.html",
            params=params,
        )

    #: The longest ``validHours`` Toss takes (30 days).
    MAX_VALID_HOURS = 720

    def valid_hours(self, order: OrderSnapshot) -> int:
        """``virtualAccount.validHours``: :meth:`~BaseGateway.deposit_hours` up to the deposit deadline, at most 720."""
        return self.deposit_hours(order, maximum=self.MAX_VALID_HOURS)

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        """``successUrl?paymentKey=&orderId=&amount=`` or ``failUrl?code=&message=&orderId=``."""
        code = str(params.get("code") or "")
        if code:
            return ReturnParams(
                payment_id=str(params.get("paymentKey") or ""),
                order_number=str(params.get("orderId") or ""),
                error_code=code[:100],
                error_message=str(params.get("message") or "")[:500],
            )
        payment_key = str(params.get("paymentKey") or "")
        order_id = str(params.get("orderId") or "")
        if not payment_key or not order_id or "amount" not in params:
            raise InvalidRequest("paymentKey, orderId and amount are required", gateway=self.alias, code="INVALID_RETURN")
        try:
            amount = parse_amount(str(params.get("amount")))
        except MoneyError as exc:
            raise InvalidRequest(str(exc), gateway=self.alias, code="INVALID_AMOUNT") from exc
        return ReturnParams(payment_id=payment_key, order_number=order_id, amount=amount)

    # --- money-moving calls -------------------------------------------------------

    def confirm(self, request: ConfirmRequest) -> PaymentResult:
        body = {
            "paymentKey": request.payment_id,
            "orderId": request.order.order_number,
            "amount": to_json_number(request.amount, request.currency),
        }
        data = self.call("confirm", "POST", "/v1/payments/confirm", json_body=body, idempotency_key=request.idempotency_key)
        return self.payment(data)

    def cancel(self, request: CancelRequest) -> CancelResult:
        body: dict[str, Any] = {"cancelReason": (request.reason or "cancel")[:200]}
        if not request.is_full:
            body["cancelAmount"] = to_json_number(request.amount, request.currency)
        account = request.refund_account
        if account is not None:
            # Toss takes no phone number for a refund account.
            body["refundReceiveAccount"] = {"bank": account.bank, "accountNumber": account.number, "holderName": account.holder}
        path = f"/v1/payments/{quote(request.payment_id, safe='')}/cancel"
        data = self.call("cancel", "POST", path, json_body=body, idempotency_key=request.idempotency_key)
        payment = self.payment(data)
        entry = payment.cancels[-1] if payment.cancels else None
        return CancelResult(
            pg_cancel_id=entry.pg_cancel_id if entry else "",
            amount=entry.amount if entry else request.amount,
            payment=payment,
            raw=payment.raw,
        )

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        if payment_id:
            path = f"/v1/payments/{quote(payment_id, safe='')}"
        elif order is not None and order.order_number:
            path = f"/v1/payments/orders/{quote(order.order_number, safe='')}"
        else:
            raise NotFound("no paymentKey or orderId to look up", gateway=self.alias, code="NOT_FOUND_PAYMENT")
        return self.payment(self.call("lookup", "GET", path))

    # --- webhooks -------------------------------------------------------------------

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
        """``PAYMENT_STATUS_CHANGED`` (a Payment under ``data``) or ``DEPOSIT_CALLBACK`` (flat).

        Nothing in the body is trusted: the event's ``payment`` stays None until
        :meth:`verify_webhook` fetched it. Other event types come back with an
        empty ``payment_id``: acknowledged, nothing to apply.
        """
        data = self.webhook_json(body)
        event_type = str(data.get("eventType") or "")
        if not event_type and "secret" in data and "orderId" in data:
            event_type = DEPOSIT_CALLBACK
        if not event_type:
            raise WebhookVerificationError("no eventType")
        payload = data.get("data") if isinstance(data.get("data"), dict) else data
        if event_type == PAYMENT_STATUS_CHANGED:
            payment_key = payload.get("paymentKey")
            if not isinstance(payment_key, str) or not payment_key:
                raise WebhookVerificationError("PAYMENT_STATUS_CHANGED without data.paymentKey")
            return ParsedWebhook(
                event_id=self._event_id(
                    event_type, payment_key, payload.get("status"), payload.get("lastTransactionKey"), data.get("createdAt")
                ),
                event_type=event_type,
                payment_id=payment_key[:200],
                order_number=str(payload.get("orderId") or "")[:64],
                verified=False,
                raw=data,
            )
        if event_type == DEPOSIT_CALLBACK:
            order_id, secret = payload.get("orderId"), payload.get("secret")
            if not isinstance(order_id, str) or not order_id or not isinstance(secret, str) or not secret:
                raise WebhookVerificationError("DEPOSIT_CALLBACK without orderId and secret")
            return ParsedWebhook(
                event_id=self._event_id(
                    event_type, order_id, payload.get("status"), payload.get("transactionKey"), payload.get("createdAt")
                ),
                event_type=event_type,
                payment_id=str(payload.get("paymentKey") or "")[:200],
                order_number=order_id[:64],
                verified=False,
                raw=payload,
            )
        return ParsedWebhook(event_id=self._event_id(event_type, body.decode("utf-8", "replace")), event_type=event_type[:100], raw=data)

    @staticmethod
    def _event_id(*parts) -> str:
        """Toss sends no event id: one made of what distinguishes two changes (equal for a retried delivery)."""
        return "toss-" + digest(*parts)

    def verify_webhook(self, event: ParsedWebhook, order: OrderSnapshot | None) -> ParsedWebhook:
        """Trust a delivery only through Toss itself.

        ``PAYMENT_STATUS_CHANGED``: the payment is fetched by its paymentKey
        (the base class's lookup). ``DEPOSIT_CALLBACK``: its ``secret`` must
        match, compared in constant time, the digest kept in the order's
        ``pg_data`` when the virtual account was issued; then the payment is
        fetched so that amounts and cancels come from Toss, not the callback.
        """
        if event.event_type != DEPOSIT_CALLBACK:
            if not event.payment_id:
                raise WebhookVerificationError(f"{event.event_type}: nothing to verify")
            return super().verify_webhook(event, order)
        secret = str(event.raw.get("secret") or "")
        if secret == MASKED and order is not None:
            # Processed again from the log, where the secret is masked: only Toss's own answer is applied.
            payment = self.lookup(payment_id=order.payment_id, order=order)
            return replace(event, payment=payment, payment_id=payment.payment_id, verified=True)
        stored = str(((order.pg_data if order is not None else None) or {}).get(PG_DATA_SECRET) or "")
        if not stored or not hmac.compare_digest(secret_digest(secret), stored):
            raise WebhookVerificationError("DEPOSIT_CALLBACK secret does not match the virtual account's")
        payment = self.lookup(payment_id=order.payment_id, order=order)
        return replace(event, payment=payment, payment_id=payment.payment_id, verified=True)

    def webhook_claim(self, event: ParsedWebhook) -> str:
        """Toss's ``status``: of the body's Payment (``data.status``) or deposit callback, or of the fetched payment."""
        if event.payment is not None:
            return str(event.payment.raw.get("status") or "")
        payload = event.raw.get("data") if isinstance(event.raw.get("data"), Mapping) else event.raw
        return str(payload.get("status") or "")

    def webhook_claim_verdict(self, parsed: ParsedWebhook, verified: ParsedWebhook) -> str:
        """Confirmed when the status (and the amounts the body's Payment states) are Toss's now.

        Stale when the claim is an earlier step of the payment's life than
        what Toss reports (``DONE`` while it is ``CANCELED`` now, a larger
        balance than is left); refused otherwise.
        """
        claimed, actual = self.webhook_claim(parsed), self.webhook_claim(verified)
        payload = parsed.raw.get("data") if isinstance(parsed.raw.get("data"), Mapping) else {}
        fetched = verified.payment.raw if verified.payment is not None else {}
        amounts_match = all(
            payload.get(name) is None or str(payload.get(name)) == str(fetched.get(name)) for name in ("totalAmount", "balanceAmount")
        )
        if (not claimed or claimed == actual) and amounts_match:
            return self.CLAIM_CONFIRMED
        if str(payload.get("totalAmount", fetched.get("totalAmount"))) != str(fetched.get("totalAmount")):
            return self.CLAIM_REFUSED
        earlier = LIFECYCLE.get(claimed, -1) < LIFECYCLE.get(actual, -1)
        stated, left = stated_amount(payload.get("balanceAmount")), stated_amount(fetched.get("balanceAmount"))
        more_left = payload.get("balanceAmount") is None or (stated is not None and left is not None and stated >= left)
        return self.CLAIM_STALE if claimed in LIFECYCLE and earlier and more_left else self.CLAIM_REFUSED

    # --- Payment object -> PaymentResult -----------------------------------------------

    def payment(self, data: Mapping[str, Any]) -> PaymentResult:
        """Read a Payment object; a reply we cannot read is an unknown outcome, never a guess."""
        try:
            state = STATUSES[str(data["status"])]
            currency = normalize_currency(str(data.get("currency") or "KRW"))
            total = self.decimal(data["totalAmount"])
            balance = self.decimal(data.get("balanceAmount", total))
            cancels = tuple(
                CancelEntry(
                    pg_cancel_id=str(c.get("transactionKey") or ""),
                    amount=self.decimal(c["cancelAmount"]),
                    canceled_at=kst_datetime(c.get("canceledAt")),
                )
                for c in (data.get("cancels") or ())
                if isinstance(c, Mapping) and str(c.get("cancelStatus") or "DONE") == "DONE"
            )
            payment_key, order_id = str(data["paymentKey"]), str(data["orderId"])
        except (KeyError, TypeError, ValueError, ArithmeticError, MoneyError) as exc:
            raise self.malformed("Payment object", exc, data) from exc
        if not (total.is_finite() and balance.is_finite()) or total < 0 or balance < 0 or balance > total:
            raise GatewayUnavailable(f"{self.alias}: inconsistent amounts", gateway=self.alias, code="MALFORMED_REPLY")
        pg_data: dict[str, Any] = {}
        account = data.get("virtualAccount")
        virtual_account = None
        if isinstance(account, Mapping) and account.get("accountNumber"):
            virtual_account = VirtualAccount(
                bank=str(account.get("bankCode") or ""),
                number=str(account["accountNumber"]),
                holder=str(account.get("customerName") or ""),
                due=kst_datetime(account.get("dueDate")),
            )
        secret = data.get("secret")
        if isinstance(secret, str) and secret:
            pg_data[PG_DATA_SECRET] = secret_digest(secret)
        failure = data.get("failure") if isinstance(data.get("failure"), Mapping) else {}
        receipt = data.get("receipt") if isinstance(data.get("receipt"), Mapping) else {}
        return PaymentResult(
            state=state,
            payment_id=payment_key,
            order_number=order_id,
            amount=total,
            currency=currency,
            canceled_amount=total - balance,
            method=str(data.get("method") or ""),
            receipt_url=str(receipt.get("url") or ""),
            approved_at=kst_datetime(data.get("approvedAt")),
            cancels=cancels,
            failure_code=str(failure.get("code") or ""),
            failure_message=str(failure.get("message") or ""),
            virtual_account=virtual_account,
            pg_data=pg_data,
            raw=dict(data),
            # A new one at every approval, deposit, reversal and cancel (docs: "lastTransactionKey").
            revision=str(data.get("lastTransactionKey") or ""),
        )

    # --- configuration checks ----------------------------------------------------------

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """Missing keys; live keys under DEBUG; test keys with DEBUG=False; keys of different modes."""
        messages = super().check(debug=debug)
        where = self.where
        secret = str(self._options.get("SECRET_KEY") or "")
        client = str(self._options.get("CLIENT_KEY") or "")
        modes = {key[:5] for key in (secret, client) if key.startswith(_KEY_FAMILIES)}
        for name, key in (("SECRET_KEY", secret), ("CLIENT_KEY", client)):
            if key and not key.startswith(_KEY_FAMILIES):
                messages.append(
                    checks.Warning(
                        f'{where}["{name}"] does not start with test_ or live_.',
                        hint="Copy the key from the Toss developer centre (API keys).",
                        id="django_pgpay.W101",
                    )
                )
        if len(modes) > 1:
            messages.append(
                checks.Error(
                    f"{where}: SECRET_KEY and CLIENT_KEY are not both test keys or both live keys.",
                    hint="Use the pair of one mode (and one family: widget gck/gsk or window ck/sk).",
                    id="django_pgpay.E101",
                )
            )
        messages += self.live_or_test_key_checks(
            "live" if "live_" in modes else "test" if "test_" in modes else "",
            debug,
            label="Toss",
            ids=("django_pgpay.W102", "django_pgpay.W103"),
            hints=("Use test_ keys in development.", "Use live_ keys in production (after Toss's review of the shop)."),
        )
        if self._options.get("TEST_CODE") and "live_" in modes:
            messages.append(
                checks.Warning(
                    f'{where}["TEST_CODE"] is set with live keys; it is not sent.',
                    id="django_pgpay.W104",
                )
            )
        return messages


__all__ = ["ERRORS", "STATUSES", "TossGateway", "secret_digest"]
