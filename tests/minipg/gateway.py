"""Mini PG's gateway: the recipe of docs/adding_a_pg.rst, step 1.

Wire: JSON, the API key in ``X-Mini-Key``, ``Idempotency-Key`` on refunds, errors as
``{"error": {"code", "message"}}``, webhooks signed with ``X-Mini-Signature``
(hex HMAC-SHA256 of the body under ``WEBHOOK_SECRET``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from django.utils.dateparse import parse_datetime

from django_pgpay.exceptions import AlreadyCanceled, CancelRefused, InvalidRequest, NotFound, WebhookVerificationError
from django_pgpay.gateways.pipeline import HttpGateway
from django_pgpay.gateways.results import (
    CancelEntry,
    CancelRequest,
    CancelResult,
    CheckoutResult,
    OrderSnapshot,
    ParsedWebhook,
    PaymentResult,
    PaymentState,
    ReturnParams,
)

STATES = {
    "open": PaymentState.PENDING,
    "paid": PaymentState.APPROVED,
    "partially_refunded": PaymentState.PARTIAL_CANCELED,
    "refunded": PaymentState.CANCELED,
}


class MiniPGGateway(HttpGateway):
    """Mini PG. OPTIONS: ``API_KEY``, ``WEBHOOK_SECRET``, ``API_BASE``, ``TIMEOUT``."""

    pg_name = "Mini PG"
    supports_partial_cancel = True
    supports_idempotency_key = True
    signs_webhooks = True
    requires_confirm_call = False  # the lookup is the confirmation (HttpGateway.confirm)
    required_options = ("API_KEY", "WEBHOOK_SECRET")

    ERRORS = {
        "not_found": NotFound,
        "over_refund": CancelRefused,
        "already_refunded": AlreadyCanceled,
        "invalid_amount": InvalidRequest,
    }

    def auth_headers(self, verb, token, idempotency_key=""):
        headers = {"X-Mini-Key": str(self.option("API_KEY"))}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def error_fields(self, reply):
        error = reply.data.get("error") if isinstance(reply.data, dict) else None
        return (str(error.get("code") or ""), str(error.get("message") or "")) if isinstance(error, dict) else ("", "")

    # --- the verbs -------------------------------------------------------------------

    def checkout(self, order, urls):
        body = {"order": order.order_number, "amount": int(order.amount), "return_url": urls.success_url}
        data = self.call("checkout", "POST", "/v1/payments", json_body=body)
        return CheckoutResult(kind="redirect", redirect_url=str(data["window_url"]), pg_data={"minipg_payment": str(data["id"])})

    def parse_return(self, params):
        return ReturnParams(payment_id=str(params.get("payment", "")), order_number=str(params.get("order", "")))

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        if not payment_id:
            raise NotFound("Mini PG finds payments by id only", gateway=self.alias, code="not_found")
        return self.payment(self.call("lookup", "GET", f"/v1/payments/{quote(payment_id, safe='')}"))

    def cancel(self, request: CancelRequest) -> CancelResult:
        path = f"/v1/payments/{quote(request.payment_id, safe='')}/refunds"
        body = {"amount": int(request.amount), "reason": request.reason[:100]}
        data = self.call("cancel", "POST", path, json_body=body, idempotency_key=request.idempotency_key)
        payment = self.payment(data["payment"])
        return CancelResult(
            pg_cancel_id=str(data["refund"]["id"]), amount=self.decimal(data["refund"]["amount"]), payment=payment, raw=data
        )

    def payment(self, data: Mapping) -> PaymentResult:
        try:
            return PaymentResult(
                state=STATES.get(data["status"], PaymentState.FAILED),
                payment_id=str(data["id"]),
                order_number=str(data["order"]),
                amount=self.decimal(data["amount"]),
                currency=str(data["currency"]),
                canceled_amount=self.decimal(data["refunded"]),
                approved_at=parse_datetime(data["created"]),
                cancels=tuple(CancelEntry(str(r["id"]), self.decimal(r["amount"]), reference=r.get("key", "")) for r in data["refunds"]),
                raw=dict(data),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise self.malformed("payment", exc, data) from exc

    # --- webhooks ----------------------------------------------------------------------

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
        expected = hmac.new(str(self.option("WEBHOOK_SECRET")).encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(headers.get("X-Mini-Signature", ""))):
            raise WebhookVerificationError("Mini PG: bad signature", code="BAD_SIGNATURE")
        try:
            event = json.loads(body)
            payment = self.payment(event["payment"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookVerificationError("Mini PG: malformed webhook", code="MALFORMED") from exc
        return ParsedWebhook(
            event_id=str(event["id"]),
            event_type=str(event["type"]),
            payment_id=payment.payment_id,
            order_number=payment.order_number,
            verified=True,
            payment=payment,
            raw=event,
        )
