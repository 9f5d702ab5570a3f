"""PortOne V2: ``https://api.portone.io``.

V2 (``https://api.portone.io``): ``Authorization: PortOne <API secret>``; the
``paymentId`` is ours (the order number); ``POST /payments/{id}/pre-register``,
``GET /payments/{id}``, ``POST /payments/{id}/cancel`` with
``currentCancellableAmount``; typed errors ``{type, message}``; webhooks signed
with Standard Webhooks (:mod:`.standard_webhooks`), then the payment fetched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    WebhookVerificationError,
)
from ..money import MoneyError, from_minor, normalize_currency, to_minor
from . import standard_webhooks
from .http import HttpReply
from .portone_base import PortOneGateway, text
from .results import (
    CancelEntry,
    CancelRequest,
    CancelResult,
    CheckoutResult,
    CheckoutUrls,
    OrderSnapshot,
    ParsedWebhook,
    PaymentResult,
    PaymentState,
    ReturnParams,
    VirtualAccount,
)
from .wire import kst_datetime

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

PG_DATA_PREPARED_V2 = "portone_v2_prepared"


class PortOneV2Gateway(PortOneGateway):
    """PortOne V2, ``https://api.portone.io``, with the ``PortOne.requestPayment`` window.

    OPTIONS:

    ``API_SECRET`` (required)
        The V2 API secret, sent as ``Authorization: PortOne <secret>``.
    ``STORE_ID`` (required)
        ``store-…``; given to the browser and sent as ``storeId``.
    ``CHANNEL_KEY`` (required)
        ``channel-key-…`` of the channel the window opens.
    ``WEBHOOK_SECRETS``
        ``whsec_…`` (or a list of them, during a rotation). Without it every
        webhook is refused. Formerly ``WEBHOOK_SECRET`` (still read, with a
        system-check warning).
    ``PAY_METHOD``
        ``CARD`` (default), ``VIRTUAL_ACCOUNT``, ``TRANSFER``, ``MOBILE``, ``EASY_PAY`` …
    ``INCLUDE_SANDBOX``
        Default False. True lets payments on TEST channels pay orders: development only.
    ``NOTICE_URL``, ``API_BASE``, ``JS_SDK_URL``, ``TIMEOUT``
        As for V1; defaults ``https://api.portone.io`` and
        ``https://cdn.portone.io/v2/browser-sdk.js``.
    """

    pg_name = "PortOne V2"
    sends_deposit_deadline = True
    refund_bank_code_style = "enum"  # refundAccount.bank: "SHINHAN" (the V2 OpenAPI's Bank enum)
    SANDBOX_CHECK_ID = "django_pgpay.W122"
    signs_webhooks = True
    required_options = ("API_SECRET", "STORE_ID", "CHANNEL_KEY")
    option_names = ("API_SECRET", "STORE_ID", "CHANNEL_KEY", "PAY_METHOD", "WEBHOOK_SECRETS", "INCLUDE_SANDBOX", "NOTICE_URL")

    DEFAULT_API_BASE = "https://api.portone.io"
    DEFAULT_JS_SDK_URL = "https://cdn.portone.io/v2/browser-sdk.js"

    ERRORS = V2_ERRORS
    RENAMED_OPTIONS = {"WEBHOOK_SECRET": "WEBHOOK_SECRETS"}

    def auth_headers(self, verb: str, token: str | None, idempotency_key: str = "") -> dict[str, str]:
        return {"Authorization": f"PortOne {self.option('API_SECRET')}"}

    def _store(self) -> dict[str, str]:
        store_id = self._options.get("STORE_ID")
        return {"storeId": str(store_id)} if store_id else {}

    def _call(self, verb: str, method: str, path: str, *, body: Any = None) -> dict:
        """A call with ``storeId`` (in the query of a GET)."""
        return self.call(verb, method, path, json_body=body, params=self._store() if method == "GET" else None)

    def error_fields(self, reply: HttpReply) -> tuple[str, str]:
        """``{type, message}``; ``PG_PROVIDER`` adds the PG's ``pgCode`` and ``pgMessage``."""
        data = reply.data if isinstance(reply.data, dict) else {}
        kind, message = str(data.get("type") or ""), str(data.get("message") or "")
        if kind == "PG_PROVIDER" and (data.get("pgMessage") or data.get("pgCode")):
            message = f"{message} ({data.get('pgCode') or ''} {data.get('pgMessage') or ''})".strip()
        return kind, message

    # --- checkout and return ---------------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """Pre-register the amount, then the parameters of ``PortOne.requestPayment``.

        ``paymentId`` is the order number. The window's promise and, on mobile,
        ``redirectUrl`` both bring the buyer back to the return URL with ``paymentId``.
        A ``VIRTUAL_ACCOUNT`` window of an order with a deposit deadline asks for
        an account due no later (``virtualAccount.accountExpiry.validHours``,
        :meth:`~django_pgpay.gateways.base.BaseGateway.deposit_hours`).
        """
        pg_data = self._pre_register(order)
        pay_method = str(self.option("PAY_METHOD", "CARD") or "CARD")
        request: dict[str, Any] = {
            "storeId": str(self.option("STORE_ID")),
            "channelKey": str(self.option("CHANNEL_KEY")),
            "paymentId": order.order_number,
            "orderName": order.order_name[:100],
            "totalAmount": to_minor(order.amount, order.currency),
            "currency": f"CURRENCY_{order.currency}",
            "payMethod": pay_method,
            "redirectUrl": urls.success_url,
        }
        if pay_method == "VIRTUAL_ACCOUNT" and order.deposit_deadline is not None:
            # The browser SDK's virtualAccount.accountExpiry (the name a typed integration against
            # @portone/browser-sdk uses), shaped as the server API's expiry (v2.openapi.json,
            # InstantPaymentMethodInputVirtualAccountExpiry): validHours or dueDate, one of them.
            request["virtualAccount"] = {"accountExpiry": {"validHours": self.deposit_hours(order)}}
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
        account = request.refund_account
        if account is not None:
            body["refundAccount"] = {"bank": account.bank, "number": account.number, "holderName": account.holder}
            if account.phone:
                body["refundAccount"]["holderPhoneNumber"] = account.phone
        data = self._call("cancel", "POST", f"/payments/{quote(request.payment_id, safe='')}/cancel", body=body)
        cancellation = data.get("cancellation")
        if not isinstance(cancellation, Mapping):
            raise self.malformed("cancel reply (no cancellation)", data=data)
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
            raise self.malformed("cancellation", exc, data) from exc
        return CancelResult(pg_cancel_id=str(cancellation.get("id") or ""), amount=amount, payment=None, raw=dict(data))

    def withdraw(self, request: CancelRequest) -> CancelResult:
        """``POST /payments/{paymentId}/virtual-account/close`` (가상계좌 말소), then the payment as it stands."""
        self._call("withdraw", "POST", f"/payments/{quote(request.payment_id, safe='')}/virtual-account/close", body=self._store())
        payment = self.lookup(payment_id=request.payment_id)
        return CancelResult(pg_cancel_id="", amount=request.amount, payment=payment, raw=payment.raw)

    # --- webhooks -------------------------------------------------------------------------

    def webhook_secrets(self) -> list[str]:
        """``WEBHOOK_SECRETS`` as a list (a single string is one secret)."""
        value = self._options.get("WEBHOOK_SECRETS")
        if not value:
            return []
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
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
                f'{self.alias}: OPTIONS["WEBHOOK_SECRETS"] is not set; webhooks are refused', code="NO_WEBHOOK_SECRET"
            )
        try:
            message_id = standard_webhooks.verify(secrets, headers, body, now=received_at.timestamp())
        except ValueError as exc:  # a secret that is not base64 (a check reports it)
            raise WebhookVerificationError(
                f"{self.alias}: WEBHOOK_SECRETS holds a secret that is not whsec_", code="BAD_WEBHOOK_SECRET"
            ) from exc
        data = self.webhook_json(body)
        if not isinstance(data.get("type"), str):
            raise WebhookVerificationError("no type")
        kind = data["type"][:100]
        payload = data.get("data") if isinstance(data.get("data"), dict) else {}
        payment_id = str(payload.get("paymentId") or "")[:64] if kind.startswith("Transaction.") else ""
        if kind.startswith("Transaction.") and not payment_id:
            raise WebhookVerificationError(f"{kind} without data.paymentId")
        return ParsedWebhook(
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
            raise self.malformed("Payment (not an object)")
        try:
            status = str(data["status"])
            state = V2_STATUSES[status]
            currency = normalize_currency(str(data["currency"]))
            amounts = data["amount"]
            total = from_minor(amounts["total"], currency)
            cancelled = from_minor(amounts.get("cancelled") or 0, currency)
            payment_id = text(data["id"])
            entries = {
                status: tuple(
                    CancelEntry(
                        pg_cancel_id=str(c["id"]),
                        amount=from_minor(c["totalAmount"], currency),
                        canceled_at=kst_datetime(c.get("cancelledAt")),
                    )
                    for c in (data.get("cancellations") or ())
                    if isinstance(c, Mapping) and c.get("status") == status
                )
                for status in ("SUCCEEDED", "REQUESTED")
            }
            cancels = entries["SUCCEEDED"]
        except (KeyError, TypeError, ValueError, MoneyError) as exc:
            raise self.malformed("Payment object", exc, data) from exc
        if total < 0 or not 0 <= cancelled <= total:
            raise self.malformed("Payment object (inconsistent amounts)", data=data)
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
        account = None
        if method_type == "PaymentMethodVirtualAccount" and method.get("accountNumber"):
            account = VirtualAccount(
                bank=str(method.get("bank") or ""),
                number=str(method["accountNumber"]),
                holder=str(method.get("remitteeName") or ""),
                due=kst_datetime(method.get("expiredAt")),
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
            approved_at=kst_datetime(data.get("paidAt")),
            cancels=cancels,
            pending_cancels=entries["REQUESTED"],
            failure_code=str(failure.get("pgCode") or ""),
            failure_message=str(failure.get("reason") or failure.get("pgMessage") or ""),
            virtual_account=account,
            pg_data=pg_data,
            raw=dict(data),
        )

    # --- configuration checks -----------------------------------------------------------

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """Missing keys; no (or an unreadable) webhook secret; test channels accepted without DEBUG."""
        messages = super().check(debug=debug)
        where = self.where
        secrets = self.webhook_secrets()
        if not secrets:
            messages.append(
                checks.Warning(
                    f'{where}["WEBHOOK_SECRETS"] is not set: every PortOne V2 webhook will be refused.',
                    hint="Copy the webhook secret (whsec_…) from the PortOne console (결제 연동 > 웹훅).",
                    id="django_pgpay.W121",
                )
            )
        for secret in secrets:
            try:
                standard_webhooks.decode_secret(secret)
            except ValueError:
                messages.append(
                    checks.Error(f'{where}["WEBHOOK_SECRETS"] holds a secret that is not a whsec_… base64 secret.', id="django_pgpay.E121")
                )
        return messages + self.sandbox_checks(debug)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


__all__ = ["V2_ERRORS", "V2_STATUSES", "PG_DATA_PREPARED_V2", "PortOneV2Gateway"]
