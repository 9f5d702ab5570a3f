"""PortOne V2, emulated: the REST API, ``browser-sdk.js`` and its window (see :mod:`..portone`)."""

from __future__ import annotations

import copy
import secrets
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, re_path, reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from ...gateways import standard_webhooks
from .. import clock, faults, lifecycle, webhooks
from ..base import Answer, ApiContext, ApiError, Problem, dumps, framed, guard, loads
from ..lifecycle import Ledger, RefundFields, Refusal, Stage
from ..models import SandboxPayment, SandboxPrepared
from ..window import Choice
from ..wire import with_query
from . import search
from .common import (
    _DIGITS,
    KST,
    _format,
    _hash,
    _mask,
    _PortOneCommon,
    _random,
    _same,
    _site,
    number,
    rfc3339,
    truthy,
)

#: V2 error types: type -> (HTTP status, message) (PortOne's V2 OpenAPI file gives the statuses).
V2_ERRORS: dict[str, tuple[int, str]] = {
    "INVALID_REQUEST": (400, "요청된 입력 정보가 유효하지 않습니다."),
    "UNAUTHORIZED": (401, "인증 정보가 올바르지 않습니다."),
    "FORBIDDEN": (403, "요청이 거절되었습니다."),
    "PAYMENT_NOT_FOUND": (404, "결제 건이 존재하지 않습니다."),
    "NOT_FOUND": (404, "존재하지 않는 API 경로입니다."),
    "METHOD_NOT_ALLOWED": (405, "허용되지 않은 HTTP 메서드입니다."),
    "ALREADY_PAID": (409, "결제가 이미 완료되었습니다."),
    "PAYMENT_NOT_PAID": (409, "결제가 완료되지 않았습니다."),
    "PAYMENT_ALREADY_CANCELLED": (409, "결제가 이미 취소되었습니다."),
    "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN": (409, "취소 가능 잔액 검증에 실패했습니다."),
    "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT": (409, "결제 취소 금액이 취소 가능 금액을 초과했습니다."),
    "PAYMENT_NOT_WAITING_FOR_DEPOSIT": (409, "결제 건이 입금 대기 상태가 아닙니다."),
    "FAILED_INTERNAL_SYSTEM_PROCESSING": (500, "일시적인 오류가 발생했습니다."),
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": (500, "일시적인 오류가 발생했습니다."),
}
#: The pipeline's problems in V2's words.
V2_PROBLEMS = {
    Problem.MALFORMED_BODY: "INVALID_REQUEST",
    Problem.INTERNAL: "FAILED_INTERNAL_SYSTEM_PROCESSING",
    Problem.INTERNAL_AFTER_COMMIT: "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
}
#: The lifecycle's refusals in V2's words (the V2 OpenAPI file's error types of ``POST /payments/{paymentId}/cancel``).
V2_REFUSALS = {
    Refusal.ALREADY_CANCELED: "PAYMENT_ALREADY_CANCELLED",
    Refusal.NOT_CANCELABLE: "PAYMENT_NOT_PAID",
    Refusal.BALANCE_MISMATCH: "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
    Refusal.INVALID_AMOUNT: ("INVALID_REQUEST", "amount는 0보다 커야 합니다."),
    Refusal.OVER_BALANCE: "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
    Refusal.PARTIAL_UNPAID_ACCOUNT: "PAYMENT_NOT_PAID",
    Refusal.PARTIAL_NOT_ALLOWED: ("INVALID_REQUEST", "부분 취소를 지원하지 않는 결제입니다."),
    # The spec names no error of its own for a virtual-account refund without ``refundAccount``
    # ("계좌 환불일 경우 입력합니다"): InvalidRequestError (400) is its error for a missing
    # or invalid input. unconfirmed: the message.
    Refusal.REFUND_ACCOUNT_REQUIRED: ("INVALID_REQUEST", "가상계좌 환불에는 환불 계좌(refundAccount)가 필요합니다."),
    Refusal.REFUND_ACCOUNT_INVALID: ("INVALID_REQUEST", "refundAccount에는 bank, number, holderName이 필요합니다."),
}
#: ``refundAccount`` of ``CancelPaymentBody`` (``CancelPaymentBodyRefundAccount``: bank, number, holderName required).
V2_REFUND_FIELDS = RefundFields(bank="bank", number="number", holder="holderName", phone="holderPhoneNumber", digits_only=False)
#: ``payMethod`` of ``requestPayment`` -> (``method.type`` of the Payment, label).
V2_METHODS: dict[str, tuple[str, str]] = {
    "CARD": ("PaymentMethodCard", "카드"),
    "VIRTUAL_ACCOUNT": ("PaymentMethodVirtualAccount", "가상계좌"),
    "TRANSFER": ("PaymentMethodTransfer", "계좌이체"),
    "MOBILE": ("PaymentMethodMobile", "휴대폰"),
    "EASY_PAY": ("PaymentMethodEasyPay", "간편결제"),
}
#: What the window answers ``requestPayment`` on failure: (code, message). Unconfirmed
#: beyond the shape ``{code, message, paymentId, txId, transactionType}``.
V2_WINDOW_ERRORS: dict[str, tuple[str, str]] = {
    "closed": ("FAILURE_TYPE_PG", "[PG사 에러] 사용자가 결제를 취소하였습니다."),
    "declined": ("FAILURE_TYPE_PG", "[PG사 에러] 카드사 승인 거절 (한도초과)"),
    "amount_mismatch": ("FAILURE_TYPE_PROCESS", "사전 등록된 결제 정보와 결제 금액이 일치하지 않습니다."),
    "already_paid": ("FAILURE_TYPE_PROCESS", "이미 결제가 완료된 paymentId입니다."),
    "invalid": ("INVALID_REQUEST", "결제 요청 파라미터가 올바르지 않습니다."),
    "store": ("INVALID_REQUEST", "등록되지 않은 storeId입니다."),
    # The sandbox's wording: an account asked for after its accountExpiry.dueDate.
    "expired": ("INVALID_REQUEST", "가상계좌 입금 기한(accountExpiry)이 이미 지났습니다."),
}


def parse_account_expiry(req: dict[str, Any]) -> dict[str, Any] | None:
    """``virtualAccount.accountExpiry`` of a request: ``{}`` when absent, None when malformed.

    One of ``validHours`` (a positive whole number) or ``dueDate`` (ISO 8601 with
    its offset), as the server API's ``expiry`` (v2.openapi.json,
    ``InstantPaymentMethodInputVirtualAccountExpiry``).
    """
    virtual = req.get("virtualAccount")
    expiry = virtual.get("accountExpiry") if isinstance(virtual, dict) else None
    if expiry is None:
        return {}
    if not isinstance(expiry, dict) or len(expiry) != 1:
        return None
    hours, due = expiry.get("validHours"), expiry.get("dueDate")
    if isinstance(hours, int) and not isinstance(hours, bool) and hours > 0:
        return {"validHours": hours}
    parsed = parse_datetime(due) if isinstance(due, str) else None
    if parsed is not None and parsed.utcoffset() is not None:
        return {"dueDate": parsed.isoformat()}
    return None


#: V2's statuses in the lifecycle's terms (any other: not paid yet).
V2_STAGES = {"PAID": Stage.PAID, "PARTIAL_CANCELLED": Stage.PAID, "CANCELLED": Stage.CANCELED}
#: Webhook types sent unless ``V2_WEBHOOK_EVENTS`` says otherwise.
V2_DEFAULT_EVENTS = ("Transaction.Paid", "Transaction.VirtualAccountIssued", "Transaction.Cancelled", "Transaction.PartialCancelled")


class PortOneV2Sandbox(_PortOneCommon):
    """PortOne V2: REST API, ``browser-sdk.js`` and its window (see the module docstring).

    Settings, also in ``PGPAY_SANDBOX["PORTONE"]``: ``V2_API_SECRETS`` (made-up
    ``test_`` secrets for ``Authorization: PortOne …``), ``STORE_IDS``
    (``store-…``; the first is the secret's own store), ``V2_WEBHOOK_SECRET``
    (``whsec_…``: deliveries are signed with it), ``V2_WEBHOOK_URL``, and
    optionally ``V2_WEBHOOK_EVENTS``, ``TEST_CHANNEL`` (True: channel ``type``
    is ``TEST``), ``VBANK_HOURS``.
    """

    name = "portone-v2"
    title = "PortOne V2"
    problem_codes = V2_PROBLEMS
    refusals = V2_REFUSALS
    #: Older action names (base.ACTION_NAMES gives the uniform ones).
    action_aliases = {"payment": "state"}
    #: Up to 5 retries (portone.md §11); the spacing is unconfirmed: a minute here.
    retry_schedule = (60, 60, 60, 60, 60)

    def dashboard_context(self, base: str) -> dict[str, Any]:
        from django.utils.translation import gettext

        stores = self._list("STORE_IDS")
        console = base.rsplit("/", 1)[0] + "/portone/console/"
        return {
            "sdk_url": base + "/v2/browser-sdk.js",
            "client_keys": stores,
            "secret_keys": [_mask(k) for k in self._list("V2_API_SECRETS")],
            "webhook_url": self._v2_webhook_url(base.rsplit("/sandbox/", 1)[0]),
            "console_url": console,
            "console_title": gettext("PortOne console: payments, deposits, cancels, tokens"),
            "snippet_title": gettext("Point a PortOne V2 gateway at the sandbox:"),
            "snippet": (
                '"portone-v2": {\n'
                '    "CLASS": "django_pgpay.gateways.portone.PortOneV2Gateway",\n'
                '    "OPTIONS": {\n'
                '        "API_SECRET": os.environ["PORTONE_API_SECRET"],  # one of PGPAY_SANDBOX["PORTONE"]["V2_API_SECRETS"]\n'
                f'        "STORE_ID": "{stores[0] if stores else "store-sandbox"}",\n'
                '        "CHANNEL_KEY": "channel-key-sandbox",\n'
                '        "WEBHOOK_SECRETS": [os.environ["PORTONE_WEBHOOK_SECRET"]],  # PGPAY_SANDBOX["PORTONE"]["V2_WEBHOOK_SECRET"]\n'
                '        "INCLUDE_SANDBOX": True,   # sandbox payments are made on TEST channels\n'
                f'        "API_BASE": "{base}",\n'
                f'        "JS_SDK_URL": "{base}/v2/browser-sdk.js",\n'
                "    },\n"
                "},"
            ),
        }

    def _v2_webhook_url(self, origin: str = "") -> str:
        url = str(self.config().get("V2_WEBHOOK_URL") or "")
        return self._resolve(url, origin) if url else ""

    # --- protocol ---------------------------------------------------------------------

    def authenticate(self, ctx: ApiContext) -> str:
        header = ctx.request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme != "PortOne" or not secret or not any(_same(secret, known) for known in self._list("V2_API_SECRETS")):
            raise ApiError("UNAUTHORIZED")
        return secret

    def error_answer(self, ctx: ApiContext, error: ApiError) -> Answer:
        status, message = V2_ERRORS.get(error.code, (400, error.code))
        return Answer.json(error.status or status, {"type": error.code, "message": error.message or message})

    def _store(self, ctx: ApiContext, given: Any) -> str:
        stores = self._list("STORE_IDS")
        if given in (None, ""):
            return stores[0] if stores else "store-sandbox"
        if not isinstance(given, str) or given not in stores:
            raise ApiError("FORBIDDEN", "접근 권한이 없는 상점입니다.")
        return given

    # --- the Payment object --------------------------------------------------------------

    def _payment(self, payment_id: str, store_id: str, *, lock: bool = True) -> SandboxPayment | None:
        rows = SandboxPayment.objects.filter(pg=self.name, key=payment_id)
        row = (rows.select_for_update() if lock else rows).first()
        if row is None or row.state.get("storeId") != store_id:
            return None
        return row

    def _prepared_row(self, payment_id: str) -> SandboxPrepared | None:
        return SandboxPrepared.objects.select_for_update().filter(pg=self.name, key=payment_id).first()

    def _save(self, payment: SandboxPayment, now: datetime, status: str | None = None) -> None:
        state = payment.state
        if status is not None and status != state["status"]:
            state["status"] = status
            state["statusChangedAt"] = rfc3339(now)
        state["updatedAt"] = rfc3339(now)
        payment.status = state["status"]
        deposit_at = payment.session.get("depositAt")
        payment.due_at = parse_datetime(deposit_at) if deposit_at and payment.status == "VIRTUAL_ACCOUNT_ISSUED" else None
        payment.save(update_fields=["state", "session", "status", "due_at", "updated_at"])

    def _notify(self, payment: SandboxPayment, now: datetime, kind: str, cancellation_id: str | None = None) -> None:
        events = self.config().get("V2_WEBHOOK_EVENTS") or V2_DEFAULT_EVENTS
        if kind not in events:
            return
        origin = payment.session.get("origin", "")
        urls = [self._resolve(u, origin) for u in payment.session.get("noticeUrls") or () if u]
        if not urls:
            url = self._v2_webhook_url(origin)
            urls = [url] if url else []
        data = {"paymentId": payment.key, "storeId": payment.state["storeId"], "transactionId": payment.state["transactionId"]}
        if cancellation_id:
            data["cancellationId"] = cancellation_id
        body = dumps({"type": kind, "timestamp": rfc3339(now), "data": data})
        for url in urls:
            headers = {"Content-Type": "application/json", "webhook-id": "msg_" + uuid.uuid4().hex}
            webhooks.enqueue(self.name, kind, body, url=url, payment_key=payment.key, headers=headers, now=now)

    def delivery_headers(self, webhook, now) -> dict[str, str]:
        """Standard Webhooks: every attempt signed again with a fresh timestamp, the same ``webhook-id``."""
        headers = dict(webhook.headers or {"Content-Type": "application/json"})
        secret = self.config().get("V2_WEBHOOK_SECRET")
        msg_id = headers.get("webhook-id")
        if secret and msg_id:
            stamp = int(time.time())  # the shop checks it against its own clock
            headers["webhook-timestamp"] = str(stamp)
            headers["webhook-signature"] = standard_webhooks.sign(secret, msg_id, stamp, webhook.body.encode("utf-8"))
        return headers

    # --- state changes -----------------------------------------------------------------------

    def _open(
        self, req: dict[str, Any], *, store_id: str, now: datetime, origin: str, session: dict[str, Any], existing: SandboxPayment | None
    ) -> SandboxPayment:
        """A READY attempt, as ``requestPayment`` makes it when the window opens."""
        customer = req.get("customer") if isinstance(req.get("customer"), dict) else {}
        state = {
            "status": "READY",
            "id": req["paymentId"],
            "transactionId": str(uuid.uuid4()),
            "merchantId": "merchant-" + _hash(store_id)[:32],
            "storeId": store_id,
            "channel": {
                "type": "TEST" if self.sandbox_payments else "LIVE",
                "id": "channel-id-sandbox",
                "key": str(req.get("channelKey"))[:100],
                "name": "샌드박스 채널",
                "pgProvider": "TOSSPAYMENTS",
                "pgMerchantId": "tosstest",
            },
            "version": "V2",
            "requestedAt": rfc3339(now),
            "updatedAt": rfc3339(now),
            "statusChangedAt": rfc3339(now),
            "orderName": str(req.get("orderName"))[:200],
            "amount": _amount(req["totalAmount"], req["_currency"]),
            "currency": req["_currency"],
            "customer": _customer(customer),
            "origin": {
                "platformType": "MOBILE" if session.get("mode") == "redirect" else "PC",
                "userAgent": session.get("userAgent") or "sandbox",
                "url": session.get("url") or origin,
                "ipAddress": session.get("ip") or "127.0.0.1",
            },
            "isCulturalExpense": False,
        }
        session = {
            **session,
            "origin": origin,
            "window": True,
            "window_token": secrets.token_urlsafe(16),
            "payMethod": req.get("payMethod") or "CARD",
        }
        if existing is not None:
            existing.state, existing.session = state, session
            existing.order_id = req["paymentId"]
            self._save(existing, now)
            return existing
        return SandboxPayment.objects.create(
            pg=self.name, key=req["paymentId"], order_id=req["paymentId"], status="READY", state=state, session=session
        )

    def _pay(self, payment: SandboxPayment, now: datetime, method: str) -> None:
        state = payment.state
        payment.session["window"] = False
        state["pgTxId"] = f"tsbx{now.astimezone(KST).strftime('%Y%m%d%H%M%S')}{_random(6)}"
        if method == "VIRTUAL_ACCOUNT":
            expiry = payment.session.get("accountExpiry") or {}
            hours = float(expiry.get("validHours") or self.config().get("VBANK_HOURS", 168))
            due = parse_datetime(expiry["dueDate"]) if expiry.get("dueDate") else now + timedelta(hours=hours)
            # The bank takes no transfer after it (lifecycle.deposit_has_come, act_deposit).
            payment.session["dueDate"] = due.isoformat()
            state["method"] = {
                "type": "PaymentMethodVirtualAccount",
                "bank": "KOOKMIN",
                "accountNumber": "T" + _random(13, _DIGITS),
                "accountType": "NORMAL",
                "remitteeName": str(self.config().get("VBANK_HOLDER") or "샌드박스상점"),
                "expiredAt": rfc3339(due),
                "issuedAt": rfc3339(now),
            }
            lifecycle.start_deposit_clock(payment.session, now)
            self._save(payment, now, "VIRTUAL_ACCOUNT_ISSUED")
            self._notify(payment, now, "Transaction.VirtualAccountIssued")
            return
        kind = V2_METHODS.get(method, V2_METHODS["CARD"])[0]
        state["method"] = {"type": kind}
        if kind == "PaymentMethodCard":
            state["method"].update(
                card={
                    "publisher": "BC",
                    "issuer": "BC",
                    "brand": "LOCAL",
                    "type": "CREDIT",
                    "ownerType": "PERSONAL",
                    "bin": "910020",
                    "name": "BC카드",
                    "number": "910020******5",
                },
                approvalNumber=_random(8, _DIGITS),
                installment={"month": 0, "isInterestFree": False},
                pointUsed=False,
            )
        self._paid(payment, now)

    def _paid(self, payment: SandboxPayment, now: datetime) -> None:
        state = payment.state
        state["amount"]["paid"] = state["amount"]["total"]
        state["paidAt"] = rfc3339(now)
        state["receiptUrl"] = payment.session.get("origin", _site()) + reverse("pgpay_sandbox:portone-v2-receipt", args=[payment.key])
        state.setdefault("cancellations", [])
        state["disputes"] = []
        lifecycle.clear_deposit(payment.session)
        self._save(payment, now, "PAID")
        self._notify(payment, now, "Transaction.Paid")

    def _fail(self, payment: SandboxPayment, now: datetime, reason: str) -> None:
        code, message = V2_WINDOW_ERRORS[reason]
        payment.session["window"] = False
        payment.state["failedAt"] = rfc3339(now)
        payment.state["failure"] = {
            "reason": message,
            "pgCode": "USER_CANCEL" if reason == "closed" else "REJECT_CARD_COMPANY",
            "pgMessage": message,
        }
        self._save(payment, now, "FAILED")
        self._notify(payment, now, "Transaction.Failed")

    def balance(self, payment: SandboxPayment) -> int:
        amount = payment.state["amount"]
        return int(amount["total"]) - int(amount["cancelled"])

    def ledger(self, payment: SandboxPayment) -> Ledger:
        """The payment's money in the lifecycle's terms (an issued account is not cancellable: it is closed)."""
        state = payment.state
        stage = V2_STAGES.get(state["status"], Stage.PENDING)
        method = state.get("method") if isinstance(state.get("method"), dict) else {}
        return Ledger(
            amount=int(state["amount"]["total"]),
            canceled=int(state["amount"]["cancelled"]),
            stage=stage,
            virtual_account=method.get("type") == "PaymentMethodVirtualAccount",
        )

    def describe(self, payment: SandboxPayment) -> dict[str, Any]:
        state = payment.state
        if not isinstance(state.get("amount"), dict):
            return super().describe(payment)
        method = state.get("method") if isinstance(state.get("method"), dict) else {}
        return {"amount": state["amount"].get("total"), "balance": self.balance(payment), "method": method.get("type")}

    def _cancel(
        self,
        payment: SandboxPayment,
        now: datetime,
        *,
        amount: int | None,
        reason: str,
        current: int | None = None,
        trigger: str = "API",
        webhook: bool = True,
        refund_account: Any = None,
    ) -> dict[str, Any]:
        state = payment.state
        plan = self.plan_cancel(
            self.ledger(payment),
            amount,
            expected_balance=current,
            refund_account=refund_account,
            refund_fields=V2_REFUND_FIELDS,
            by_pg=trigger != "API",
        )
        amount, left = plan.amount, plan.left
        cancellation_id = "cancellation-" + str(uuid.uuid4())
        cancellation = {
            "status": "SUCCEEDED",
            "id": cancellation_id,
            "pgCancellationId": "tsbx-cancel-" + _random(10),
            "totalAmount": amount,
            "taxFreeAmount": 0,
            "vatAmount": (amount * 10 + 55) // 110 if state["currency"] == "KRW" else 0,
            "easyPayDiscountAmount": 0,
            "reason": reason,
            "cancelledAt": rfc3339(now),
            "requestedAt": rfc3339(now),
            "receiptUrl": state.get("receiptUrl", "") + f"?cancel={cancellation_id}",
            "trigger": trigger,
        }
        state["cancellations"] = [*(state.get("cancellations") or []), cancellation]
        state["amount"]["cancelled"] = int(state["amount"]["cancelled"]) + amount
        state["cancelledAt"] = cancellation["cancelledAt"]
        state.pop("disputes", None)
        if plan.refunds_by_transfer and isinstance(state.get("method"), dict):
            state["method"]["refundStatus"] = "COMPLETED"
        self._save(payment, now, "CANCELLED" if left == 0 else "PARTIAL_CANCELLED")
        if webhook:
            self._notify(payment, now, "Transaction.Cancelled" if left == 0 else "Transaction.PartialCancelled", cancellation_id)
        return cancellation

    # --- the API -----------------------------------------------------------------------------

    def api_pre_register(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        data = ctx.data if isinstance(ctx.data, dict) else None
        if data is None:
            raise ApiError("INVALID_REQUEST")
        store_id = self._store(ctx, data.get("storeId"))
        total = data.get("totalAmount")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total <= 0):
            raise ApiError("INVALID_REQUEST", "totalAmount는 양의 정수여야 합니다.")
        currency = data.get("currency")
        if currency is not None and (not isinstance(currency, str) or currency.removeprefix("CURRENCY_") not in ("KRW", "USD", "JPY")):
            raise ApiError("INVALID_REQUEST", "currency가 올바르지 않습니다.")
        payment = self._payment(payment_id, store_id)
        if payment is not None and payment.state["status"] not in ("READY", "FAILED"):
            raise ApiError("ALREADY_PAID")
        tax_free = data.get("taxFreeAmount")
        if tax_free is not None and (isinstance(tax_free, bool) or not isinstance(tax_free, int) or tax_free < 0):
            raise ApiError("INVALID_REQUEST", "taxFreeAmount는 0 이상의 정수여야 합니다.")
        # unconfirmed: a second pre-registration replaces the first.
        row = self._prepared_row(payment_id) or SandboxPrepared(pg=self.name, key=payment_id)
        row.store_id, row.amount, row.tax_free_amount = store_id, total, tax_free
        row.currency = currency.removeprefix("CURRENCY_") if currency else ""
        row.save()
        return Answer.json(200, {})

    def api_payment(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        store_id = self._store(ctx, ctx.request.GET.get("storeId"))
        payment = self._payment(payment_id, store_id)
        if payment is None:
            raise ApiError("PAYMENT_NOT_FOUND")
        return Answer.json(200, copy.deepcopy(payment.state))

    def api_list(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        """``GET /payments`` (결제 다건 조회): see :mod:`.search`."""
        body = self._data(ctx)
        raw = ctx.request.GET.get("requestBody")
        if raw is not None:
            try:
                body = loads(raw)
            except ValueError as exc:
                raise ApiError("INVALID_REQUEST", "requestBody가 올바른 JSON이 아닙니다.") from exc
        query = search.parse(body)
        given = query.filter.get("storeId")
        stores = [self._store(ctx, given)] if given else (self._list("STORE_IDS") or ["store-sandbox"])
        rows = SandboxPayment.objects.filter(pg=self.name).order_by("-id").only("state")
        states = [row.state for row in rows if search.matches(row.state, query, stores, ctx.now)]
        return Answer.json(200, search.page(states, query))

    def api_cancel(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        data = ctx.data if isinstance(ctx.data, dict) else None
        if data is None:
            raise ApiError("INVALID_REQUEST")
        store_id = self._store(ctx, data.get("storeId"))
        reason = data.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ApiError("INVALID_REQUEST", "reason은 필수 값입니다.")
        values = {}
        for name in ("amount", "currentCancellableAmount"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ApiError("INVALID_REQUEST", f"{name}는 정수여야 합니다.")
            values[name] = value
        payment = self._payment(payment_id, store_id)
        if payment is None:
            raise ApiError("PAYMENT_NOT_FOUND")
        cancellation = self._cancel(
            payment,
            ctx.now,
            amount=values["amount"],
            reason=reason[:200],
            current=values["currentCancellableAmount"],
            webhook=not truthy(data.get("skipWebhook")),
            refund_account=data.get("refundAccount"),
        )
        return Answer.json(200, {"cancellation": cancellation})

    def api_close_virtual_account(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        """``POST /payments/{paymentId}/virtual-account/close`` (가상계좌 말소, V2 spec): ``{closedAt}``.

        409 ``PAYMENT_NOT_WAITING_FOR_DEPOSIT`` unless the payment is an issued
        account (spec). Afterwards the payment reads ``CANCELLED`` with nothing
        cancelled of its amount (unconfirmed: the spec says only that it is closed).
        """
        data = ctx.data if isinstance(ctx.data, dict) else {}
        store_id = self._store(ctx, ctx.request.GET.get("storeId") or data.get("storeId"))
        payment = self._payment(payment_id, store_id)
        if payment is None:
            raise ApiError("PAYMENT_NOT_FOUND")
        if payment.state["status"] != "VIRTUAL_ACCOUNT_ISSUED":
            raise ApiError("PAYMENT_NOT_WAITING_FOR_DEPOSIT")
        payment.state["cancelledAt"] = rfc3339(ctx.now)
        lifecycle.clear_deposit(payment.session)
        self._save(payment, ctx.now, "CANCELLED")
        return Answer.json(200, {"closedAt": rfc3339(ctx.now)})

    # --- views ---------------------------------------------------------------------------------

    def _refuse(self, request: HttpRequest, code: str) -> HttpResponse:
        guard()
        return self.error_answer(ApiContext(request=request, now=clock.now()), ApiError(code)).response()

    def view_close(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "cancel", self.api_close_virtual_account, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_pre_register(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "prepare", self.api_pre_register, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_payment(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "GET":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "lookup", self.api_payment, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_cancel(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "cancel", self.api_cancel, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_list(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "lookup", self.api_list)

    def view_unknown(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        """Any other path: PortOne V2's JSON 404 (``{type, message}``), never an HTML page an SDK cannot parse."""
        return self._refuse(request, "NOT_FOUND")

    def view_sdk(self, request: HttpRequest) -> HttpResponse:
        """The stand-in for ``https://cdn.portone.io/v2/browser-sdk.js``."""
        return self._view_script(request, "pgpay_sandbox/portone/browser-sdk.js", "pgpay_sandbox:portone-v2-checkout")

    def _v2_failure(self, payment_id: Any, reason: str, tx_id: str | None = None) -> dict[str, Any]:
        code, message = V2_WINDOW_ERRORS[reason]
        return {
            "transactionType": "PAYMENT",
            "paymentId": payment_id if isinstance(payment_id, str) else None,
            "txId": tx_id,
            "code": code,
            "message": message,
        }

    def _redirect_url(self, session: dict[str, Any], result: dict[str, Any]) -> str:
        url = session.get("redirectUrl") or ""
        if not url:
            return ""
        query = {"paymentId": result.get("paymentId") or "", "transactionType": "PAYMENT", "txId": result.get("txId")}
        if result.get("code"):
            query.update(code=result["code"], message=result["message"])
        return with_query(url, query)

    def view_checkout(self, request: HttpRequest) -> HttpResponse:
        """Where ``PortOne.requestPayment`` posts its request: checks it and opens the window."""
        opened = self._checkout_request(request, "redirectUrl")
        if isinstance(opened, HttpResponse):
            return opened
        payload, req, session = opened
        mode = session["mode"]
        session.update(url=str(payload.get("url") or "")[:500], ip=request.META.get("REMOTE_ADDR", "127.0.0.1"))
        payment_id = req.get("paymentId")

        def refuse(reason: str) -> HttpResponse:
            result = self._v2_failure(payment_id, reason)
            return self._finish_window(request, mode, result, self._redirect_url(session, result))

        store_id = req.get("storeId")
        if not isinstance(store_id, str) or store_id not in self._list("STORE_IDS"):
            return refuse("store")
        total = req.get("totalAmount")
        currency = str(req.get("currency") or "").removeprefix("CURRENCY_")
        if (
            not isinstance(payment_id, str)
            or not payment_id
            or len(payment_id) > 200
            or "/" in payment_id
            or not req.get("channelKey")
            or not isinstance(req.get("orderName"), str)
            or isinstance(total, bool)
            or not isinstance(total, int)
            or total <= 0
            or currency not in ("KRW", "USD", "JPY")
            or (mode == "redirect" and not session["redirectUrl"])
            or parse_account_expiry(req) is None
        ):
            return refuse("invalid")
        session["accountExpiry"] = parse_account_expiry(req)
        now = clock.now()
        origin = f"{request.scheme}://{request.get_host()}"
        with transaction.atomic():
            prepared = self._prepared_row(payment_id)
            if prepared is not None:
                allowed = prepared.take_allowance()
                if not allowed and (
                    (prepared.amount is not None and prepared.amount != total) or (prepared.currency and prepared.currency != currency)
                ):
                    return refuse("amount_mismatch")
            existing = self._payment(payment_id, store_id)
            if existing is None and SandboxPayment.objects.filter(pg=self.name, key=payment_id).exists():
                return refuse("invalid")
            if existing is not None and existing.state["status"] not in ("READY", "FAILED"):
                return refuse("already_paid")
            notice = req.get("noticeUrls")
            session["noticeUrls"] = [u for u in (notice if isinstance(notice, list) else []) if isinstance(u, str) and u][:5]
            payment = self._open(
                {**req, "_currency": currency}, store_id=store_id, now=now, origin=origin, session=session, existing=existing
            )
        return HttpResponseRedirect(reverse("pgpay_sandbox:portone-v2-pay", args=[payment.key]), status=303)

    def window_act(self, request: HttpRequest, payment: SandboxPayment, choice: Choice, now: datetime) -> HttpResponse | None:
        tx_id = payment.state["transactionId"]
        if choice.gives_up:
            reason = "declined" if choice.action == "decline" else "closed"
            self._fail(payment, now, reason)
            return self.window_finish(request, payment, self._v2_failure(payment.key, reason, tx_id))
        if choice.action not in ("pay", "virtual_account"):
            return None
        requested = payment.session.get("payMethod") or "CARD"
        method = "VIRTUAL_ACCOUNT" if choice.action == "virtual_account" else ("CARD" if requested == "VIRTUAL_ACCOUNT" else requested)
        if method == "VIRTUAL_ACCOUNT" and lifecycle.deadline_passed(payment.session.get("accountExpiry") or {}, now):
            self._fail(payment, now, "expired")
            return self.window_finish(request, payment, self._v2_failure(payment.key, "expired", tx_id))
        if method == "VIRTUAL_ACCOUNT":
            payment.session["depositAfter"] = choice.deposit_after
        self.arm_window_fault(payment, choice)
        self._pay(payment, now, method)
        return self.window_finish(request, payment, {"transactionType": "PAYMENT", "paymentId": payment.key, "txId": tx_id})

    def window_context(self, payment: SandboxPayment) -> dict[str, Any]:
        state = payment.state
        requested = payment.session.get("payMethod") or "CARD"
        total = Decimal(state["amount"]["total"])
        return {
            "offers_payment": requested != "VIRTUAL_ACCOUNT",
            "offers_virtual_account": True,
            "order_name": state.get("orderName") or "",
            "order_id": payment.key,
            "payment_key": state["transactionId"],
            "amount_display": _format(total),
            "currency": state["currency"],
            "method": requested,
            "method_label": V2_METHODS.get(requested, ("", requested))[1],
            "buyer": (state.get("customer") or {}).get("name", ""),
            "merchant": state["storeId"],
            "window_token": payment.session.get("window_token", ""),
            "action_url": reverse("pgpay_sandbox:portone-v2-pay", args=[payment.key]),
            "sandbox_flag": state["channel"]["type"] == "TEST",
        }

    def view_receipt(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        guard()
        payment = SandboxPayment.objects.filter(pg=self.name, key=payment_id).first()
        if payment is None:
            return self.window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
        state = payment.state
        cancels = [
            {"cancelled_at": c.get("cancelledAt"), "amount": c["totalAmount"], "reason": c.get("reason")}
            for c in state.get("cancellations") or ()
        ]
        context = {
            "title": self.title,
            "state": state,
            "cancels": cancels,
            "status": state["status"],
            "amount": state["amount"]["total"],
            "currency": state["currency"],
            "name": state.get("orderName"),
            "order_id": payment.key,
        }
        return render(request, "pgpay_sandbox/portone/receipt.html", context)

    def urlpatterns(self) -> list:
        api = csrf_exempt
        return [
            path("payments/<str:payment_id>/pre-register", api(self.view_pre_register), name="portone-v2-pre-register"),
            path("payments/<str:payment_id>/cancel", api(self.view_cancel), name="portone-v2-cancel"),
            path("payments/<str:payment_id>/virtual-account/close", api(self.view_close), name="portone-v2-close"),
            path("payments/<str:payment_id>", api(self.view_payment), name="portone-v2-payment"),
            path("payments", api(self.view_list), name="portone-v2-payments"),
            path("v2/browser-sdk.js", self.view_sdk, name="portone-v2-sdk"),
            path("v2/checkout", framed(self.view_checkout), name="portone-v2-checkout"),
            path("v2/pay/<str:key>", framed(self.view_pay), name="portone-v2-pay"),
            path("v2/receipt/<str:payment_id>", self.view_receipt, name="portone-v2-receipt"),
            # Last: every other path under the API answers PortOne's JSON 404.
            re_path(r"^(?P<rest>.*)$", api(self.view_unknown), name="portone-v2-unknown"),
        ]

    # --- actions ---------------------------------------------------------------------------------

    def actions(self) -> dict[str, Any]:
        return {
            "pay": self.act_pay,
            "deposit": self.act_deposit,
            "cancel": self.act_cancel,
            "allow-other-amount": self.act_allow_other_amount,
            "state": self.act_payment,
        }

    def act_pay(
        self,
        payment_id: str,
        total_amount: int,
        pay_method: str = "CARD",
        outcome: str = "pay",
        order_name: str = "Sandbox order",
        currency: str = "KRW",
        store_id: str | None = None,
        notice_url: str | None = None,
        origin: str = "",
        account_expiry: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A buyer goes through the V2 window without a browser; returns what ``requestPayment`` resolves to.

        ``account_expiry`` is ``virtualAccount.accountExpiry`` (``{"validHours": 5}``
        or ``{"dueDate": "2026-12-08T18:00:00+09:00"}``).
        """
        stores = self._list("STORE_IDS")
        store_id = store_id or (stores[0] if stores else "store-sandbox")
        now = clock.now()
        with transaction.atomic():
            prepared = self._prepared_row(payment_id)
            if prepared is not None and prepared.amount not in (None, total_amount):
                if not prepared.take_allowance():
                    return self._v2_failure(payment_id, "amount_mismatch")
            existing = self._payment(payment_id, store_id)
            if existing is not None and existing.state["status"] not in ("READY", "FAILED"):
                return self._v2_failure(payment_id, "already_paid")
            req = {
                "paymentId": payment_id,
                "totalAmount": int(total_amount),
                "orderName": order_name,
                "channelKey": "channel-key-sandbox",
                "payMethod": pay_method,
                "_currency": currency,
            }
            expiry = parse_account_expiry({"virtualAccount": {"accountExpiry": account_expiry}} if account_expiry else {})
            if expiry is None:
                raise ApiError("INVALID_REQUEST", "accountExpiry: one of validHours (hours) or dueDate (ISO 8601 with its offset)")
            session = {"mode": "iframe", "noticeUrls": [notice_url] if notice_url else [], "accountExpiry": expiry}
            payment = self._open(
                req, store_id=store_id, now=now, origin=(origin or _site()).rstrip("/"), session=session, existing=existing
            )
            tx_id = payment.state["transactionId"]
            if outcome in ("decline", "close"):
                reason = "declined" if outcome == "decline" else "closed"
                self._fail(payment, now, reason)
                return self._v2_failure(payment_id, reason, tx_id)
            method = "VIRTUAL_ACCOUNT" if outcome == "vbank" else pay_method
            if method == "VIRTUAL_ACCOUNT" and lifecycle.deadline_passed(expiry, now):
                self._fail(payment, now, "expired")
                return self._v2_failure(payment_id, "expired", tx_id)
            self._pay(payment, now, method)
        return {"transactionType": "PAYMENT", "paymentId": payment_id, "txId": tx_id}

    def _act(self, payment_id: str, change) -> dict[str, Any]:
        now = clock.now()
        with transaction.atomic():
            payment = self._locked(payment_id)
            if payment is None:
                raise ApiError("PAYMENT_NOT_FOUND")
            change(payment, now)
        return copy.deepcopy(payment.state)

    def act_deposit(self, payment_id: str) -> dict[str, Any]:
        """The money for a virtual account arrives: VIRTUAL_ACCOUNT_ISSUED -> PAID (``Transaction.Paid``)."""

        def change(payment, now):
            if payment.state["status"] != "VIRTUAL_ACCOUNT_ISSUED":
                raise ApiError("PAYMENT_NOT_PAID", f"{payment.key} is not a virtual account waiting for its deposit")
            if lifecycle.deadline_passed(payment.session, now):
                raise ApiError(
                    "PAYMENT_NOT_PAID", f"{payment.key}: the account's deadline (expiredAt) has passed; the bank refuses the transfer"
                )
            self._paid(payment, now)

        return self._act(payment_id, change)

    def act_cancel(self, payment_id: str, amount: Any = None, reason: str = "관리자 콘솔 취소") -> dict[str, Any]:
        """A cancel made in PortOne's console, full or partial."""
        value = None if amount in (None, "") else number(amount)
        if amount not in (None, "") and (value is None or value <= 0 or value != value.to_integral_value()):
            raise ApiError("INVALID_REQUEST", "amount must be a positive whole number")
        return self._act(
            payment_id,
            lambda payment, now: self._cancel(payment, now, amount=None if value is None else int(value), reason=reason, trigger="CONSOLE"),
        )

    def act_payment(self, payment_id: str) -> dict[str, Any]:
        return self._act(payment_id, lambda payment, now: None)

    def act_allow_other_amount(self, payment_id: str) -> dict[str, Any]:
        """A developer fault: the next window of ``payment_id`` opens with whatever amount the browser sends."""
        with transaction.atomic():
            row = self._prepared_row(payment_id)
            if row is None:
                raise ApiError("PAYMENT_NOT_FOUND", "nothing is pre-registered for this paymentId")
            row.allow_other_amount = True
            row.save(update_fields=["allow_other_amount", "updated_at"])
        return _pre_registered(row)

    def apply_due_to(self, key: str, now: datetime) -> bool:
        payment = self._locked(key)
        if payment is None or payment.status != "VIRTUAL_ACCOUNT_ISSUED" or not payment.session.get("depositAt"):
            return False
        if parse_datetime(payment.session["depositAt"]) > now:
            return False
        if not lifecycle.deposit_has_come(payment.session, now):  # planned after the account's deadline: never arrives
            lifecycle.clear_deposit(payment.session)
            self._save(payment, now)
            return True
        self._paid(payment, now)
        return True


def _pre_registered(row: SandboxPrepared) -> dict[str, Any]:
    """What ``pre-register`` holds for a paymentId, in V2's names."""
    return {
        "storeId": row.store_id,
        "totalAmount": None if row.amount is None else int(row.amount),
        "taxFreeAmount": None if row.tax_free_amount is None else int(row.tax_free_amount),
        "currency": row.currency or None,
    }


def _amount(total: int, currency: str) -> dict[str, int]:
    """A new Payment's ``amount``: VAT is 1/11 of a KRW total, rounded half up."""
    vat = (total * 10 + 55) // 110 if currency == "KRW" else 0
    return {
        "total": total,
        "taxFree": 0,
        "vat": vat,
        "supply": total - vat,
        "discount": 0,
        "paid": 0,
        "cancelled": 0,
        "cancelledTaxFree": 0,
    }


def _customer(customer: dict[str, Any]) -> dict[str, str]:
    """``customer`` of ``requestPayment`` as the Payment shows it (what was given)."""
    given = (("name", customer.get("fullName")), ("email", customer.get("email")), ("phoneNumber", customer.get("phoneNumber")))
    return {key: str(value)[:200] for key, value in given if value}
